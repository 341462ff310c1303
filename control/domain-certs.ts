/**
 * Custom-domain certificates: an operator uploads PEM (chain + key) or PFX (+ password) for an
 * app's external host. Every reason to refuse is its own message: not parseable, wrong PFX
 * password, no private key, key does not match, expired, not yet valid, self-signed, does not
 * cover the host. Node's TLS stack opens the PFX (it knows every PKCS#12 cipher OpenSSL
 * writes); @peculiar/x509 reads the certificate fields.
 */
import "reflect-metadata";
import { X509Certificate, SubjectAlternativeNameExtension } from "@peculiar/x509";
import { execFileSync } from "node:child_process";
import { createPrivateKey, createPublicKey, X509Certificate as NodeX509 } from "node:crypto";
import { Duplex } from "node:stream";
import { createSecureContext, TLSSocket } from "node:tls";
import type { Problem } from "./apps.js";
import { PosternError } from "../engine/errors/catalogue.js";

export type CertificateUpload =
  | { readonly format: "pem"; readonly pem: string }
  | { readonly format: "pfx"; readonly pfxBase64: string; readonly password: string };

export interface DomainCertificate {
  /** The leaf certificate. */
  readonly subject: string;
  readonly dnsNames: readonly string[];
  readonly notAfter: Date;
  readonly fingerprintSha256: string;
}

const PEM_CERT = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;
const PEM_KEY = /-----BEGIN (?:RSA |EC |ENCRYPTED )?PRIVATE KEY-----[\s\S]+?-----END (?:RSA |EC |ENCRYPTED )?PRIVATE KEY-----/;

/** Checks an upload for `host` at time `now`; the field of every problem is `certificate`. */
export function checkDomainCertificate(upload: CertificateUpload, host: string, now: Date): { ok: true; value: DomainCertificate } | { ok: false; problems: Problem[] } {
  const refuse = (message: string) => ({ ok: false as const, problems: [{ field: "certificate", message }] });
  let leafDer: Buffer;
  if (upload.format === "pfx") {
    const pfx = Buffer.from(upload.pfxBase64, "base64");
    try {
      const context = createSecureContext({ pfx, passphrase: upload.password });
      // The leaf the context would serve, read back through a TLS socket that never connects.
      const probe = new TLSSocket(new Duplex({ read() {}, write(_c, _e, done) { done(); } }), { secureContext: context, isServer: true });
      const leaf = probe.getCertificate();
      const der = leaf !== null && "raw" in leaf ? leaf.raw : undefined;
      probe.destroy();
      if (!der) return refuse("the PFX file holds no certificate");
      leafDer = der;
    } catch (err) {
      const text = err instanceof Error ? err.message : String(err);
      if (/mac verify failure|invalid password/i.test(text)) return refuse("wrong password for the PFX file");
      if (/private key/i.test(text)) return refuse("the PFX file has no private key for the certificate");
      if (/key values mismatch/i.test(text)) return refuse("the private key in the PFX file does not match the certificate");
      return refuse(`the PFX file cannot be read: ${text}`);
    }
  } else {
    const certs = upload.pem.match(PEM_CERT) ?? [];
    if (certs.length === 0) return refuse("no PEM certificate found (expected -----BEGIN CERTIFICATE-----)");
    const keyPem = upload.pem.match(PEM_KEY)?.[0];
    if (keyPem === undefined) return refuse("the upload has no private key; include the key PEM after the certificate chain");
    let leaf: NodeX509;
    try {
      leaf = new NodeX509(certs[0]!);
    } catch {
      return refuse("the first PEM certificate cannot be parsed");
    }
    try {
      const key = createPrivateKey(keyPem);
      const fromKey = createPublicKey(key).export({ type: "spki", format: "der" });
      const fromCert = leaf.publicKey.export({ type: "spki", format: "der" });
      if (!fromKey.equals(fromCert)) return refuse("the private key does not match the certificate");
    } catch {
      return refuse("the private key cannot be read (encrypted keys are not accepted; upload a PFX with a password instead)");
    }
    leafDer = leaf.raw;
  }
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(new Uint8Array(leafDer));
  } catch {
    return refuse("the certificate cannot be parsed");
  }
  if (cert.notAfter.getTime() < now.getTime()) return refuse(`the certificate expired on ${cert.notAfter.toISOString()}`);
  if (cert.notBefore.getTime() > now.getTime()) return refuse(`the certificate is not valid before ${cert.notBefore.toISOString()}`);
  if (cert.subject === cert.issuer && new NodeX509(leafDer).checkIssued(new NodeX509(leafDer))) {
    return refuse("the certificate is self-signed; use one issued by a certificate authority that browsers trust");
  }
  const dnsNames = dnsNamesOf(cert);
  if (!dnsNames.some((name) => nameCovers(name, host))) {
    return refuse(`the certificate covers ${dnsNames.length > 0 ? dnsNames.join(", ") : "no DNS name"}, not ${host}`);
  }
  return {
    ok: true,
    value: { subject: cert.subject, dnsNames, notAfter: cert.notAfter, fingerprintSha256: new NodeX509(leafDer).fingerprint256 },
  };
}

/** SAN DNS names; the subject CN only when there is no SAN (RFC 6125 6.4.4). */
function dnsNamesOf(cert: X509Certificate): string[] {
  const san = cert.getExtension(SubjectAlternativeNameExtension);
  if (san) return san.names.items.filter((n) => n.type === "dns").map((n) => n.value.toLowerCase());
  const cn = cert.subjectName.getField("CN")[0];
  return cn === undefined ? [] : [cn.toLowerCase()];
}

/** RFC 6125 matching: a wildcard stands for exactly one whole left-most label. */
export function nameCovers(name: string, host: string): boolean {
  const h = host.toLowerCase().replace(/\.$/, "");
  if (!name.startsWith("*.")) return name === h;
  const suffix = name.slice(1); // ".a.com"
  if (!h.endsWith(suffix)) return false;
  const label = h.slice(0, -suffix.length);
  return label.length > 0 && !label.includes(".");
}

/**
 * The PEM form (leaf certificate first, then the rest of the chain, then the key) of an
 * accepted PFX upload: engines serve PEM. Node cannot read PKCS#12 out, so openssl converts
 * it (the password goes through the environment, never argv); PFX files with legacy ciphers
 * (RC2, 3DES) need OpenSSL 3's legacy provider, tried second.
 */
export function pfxToPem(pfxBase64: string, password: string): string {
  const pfx = Buffer.from(pfxBase64, "base64");
  let out: string | undefined;
  let failure = "";
  for (const extra of [[], ["-legacy"]]) {
    try {
      out = execFileSync("openssl", ["pkcs12", "-nodes", "-passin", "env:POSTERN_PFX_PASSWORD", ...extra], {
        input: pfx, env: { ...process.env, POSTERN_PFX_PASSWORD: password }, stdio: ["pipe", "pipe", "pipe"], timeout: 10_000,
      }).toString();
      break;
    } catch (err) {
      failure = (err as { code?: string }).code === "ENOENT" ? "openssl is not installed on the control host" : ((err as { stderr?: Buffer }).stderr?.toString().trim().split("\n")[0] ?? String(err));
    }
  }
  if (out === undefined) throw new PosternError("POSTERN_VALIDATION", `the PFX file cannot be converted to PEM for the engines: ${failure}`);
  const keyPem = out.match(PEM_KEY)?.[0];
  const certs = out.match(PEM_CERT) ?? [];
  if (!keyPem || certs.length === 0) throw new PosternError("POSTERN_VALIDATION", "the PFX file cannot be converted to PEM for the engines: no key or certificate came out");
  const spki = createPublicKey(createPrivateKey(keyPem)).export({ type: "spki", format: "der" });
  const isLeaf = (pem: string) => new NodeX509(pem).publicKey.export({ type: "spki", format: "der" }).equals(spki);
  const ordered = [...certs.filter(isLeaf), ...certs.filter((c) => !isLeaf(c))];
  return `${ordered.join("\n")}\n${keyPem}\n`;
}
