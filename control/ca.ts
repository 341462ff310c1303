/**
 * The tenant certificate authority: one P-256 CA per tenant, its key sealed with the master
 * key in the store. It signs CSRs for connectors and engines (clientAuth, subject CN = id,
 * OU = kind) and the TLS server certificates of control and engine listeners. A CSR is only
 * accepted with a valid self-signature and a P-256 key, so a tampered CSR is refused.
 */
import "reflect-metadata";
import * as x509 from "@peculiar/x509";
import { randomBytes, webcrypto, X509Certificate as NodeX509 } from "node:crypto";
import { isIP } from "node:net";
import { PosternError } from "../engine/errors/catalogue.js";
import type { PeerKind } from "../engine/identity/proof.js";
import type { Sealer } from "./secrets.js";
import type { Store } from "./store/types.js";

x509.cryptoProvider.set(globalThis.crypto);

const EC_P256 = { name: "ECDSA", namedCurve: "P-256" } as const;
const SIGNING = { name: "ECDSA", hash: "SHA-256" } as const;
const DAY_MS = 86_400_000;
const CA_VALIDITY_DAYS = 3650;

export interface IssuedCert {
  readonly certPem: string;
  readonly serial: string;
  readonly fingerprint: string;
  readonly notBefore: Date;
  readonly notAfter: Date;
}

/** Refusal of a CSR; the message says why. */
export class CsrRejected extends PosternError {
  constructor(message: string) {
    super("POSTERN_CSR_REJECTED", message);
  }
}

export class TenantCa {
  private constructor(readonly certPem: string, private readonly cert: x509.X509Certificate, private readonly key: CryptoKey) {}

  /** Loads the tenant's CA, creating it on first use. */
  static async open(store: Store, sealer: Sealer, tenantId: string, now = new Date()): Promise<TenantCa> {
    const context = `ca-key:${tenantId}`;
    const load = async (stored: { certPem: string; keySealed: Buffer }) => {
      const pkcs8 = sealer.open(stored.keySealed, context);
      const key = await webcrypto.subtle.importKey("pkcs8", pkcs8, EC_P256, false, ["sign"]);
      return new TenantCa(stored.certPem, new x509.X509Certificate(stored.certPem), key as CryptoKey);
    };
    const existing = await store.getCa(tenantId);
    if (existing) return load(existing);
    const keys = (await webcrypto.subtle.generateKey(EC_P256, true, ["sign", "verify"])) as CryptoKeyPair;
    const cert = await x509.X509CertificateGenerator.createSelfSigned({
      serialNumber: newSerial(),
      name: `CN=Postern tenant CA ${tenantId}`,
      notBefore: new Date(now.getTime() - 60_000),
      notAfter: new Date(now.getTime() + CA_VALIDITY_DAYS * DAY_MS),
      keys,
      signingAlgorithm: SIGNING,
      extensions: [
        new x509.BasicConstraintsExtension(true, 0, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
        await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
      ],
    });
    const pkcs8 = Buffer.from(await webcrypto.subtle.exportKey("pkcs8", keys.privateKey));
    // Replicas starting together on an empty store: the first CA stored is the tenant's.
    return load(await store.putCa(tenantId, cert.toString("pem"), sealer.seal(pkcs8, context)));
  }

  /**
   * Signs a client certificate for `kind`/`id` from a PEM CSR. With `serverHosts` it is also a
   * TLS server certificate for those names (an engine's tunnel listener uses its one key for both).
   */
  async signCsr(csrPem: string, kind: PeerKind, id: string, validityDays: number, now = new Date(), serverHosts: readonly string[] = []): Promise<IssuedCert> {
    let csr: x509.Pkcs10CertificateRequest;
    try {
      csr = new x509.Pkcs10CertificateRequest(csrPem);
    } catch {
      throw new CsrRejected("the CSR is not a PEM PKCS#10 request");
    }
    let publicKey: CryptoKey;
    try {
      const algorithm = csr.publicKey.algorithm as EcKeyAlgorithm;
      if (algorithm.name !== "ECDSA" || algorithm.namedCurve !== "P-256") throw new CsrRejected("the CSR key must be ECDSA P-256");
      if (!(await csr.verify())) throw new CsrRejected("the CSR signature does not verify (tampered or corrupted request)");
      publicKey = await csr.publicKey.export(EC_P256, ["verify"]);
    } catch (err) {
      if (err instanceof CsrRejected) throw err;
      // A flipped bit can break the structure before the signature is even checked.
      throw new CsrRejected("the CSR signature does not verify (tampered or corrupted request)");
    }
    return this.#issue({
      name: `CN=${id}, OU=${kind}`,
      publicKey,
      validityDays,
      now,
      extensions: [
        new x509.BasicConstraintsExtension(false, undefined, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
        ...(serverHosts.length > 0
          ? [new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth, x509.ExtendedKeyUsage.clientAuth], false), sanFor(serverHosts)]
          : [new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.clientAuth], false)]),
      ],
    });
  }

  /** A TLS server certificate and key for a listener (control API, engine tunnel). */
  async issueServerCert(kind: PeerKind, id: string, hosts: readonly string[], validityDays: number, now = new Date()): Promise<IssuedCert & { keyPem: string }> {
    const keys = (await webcrypto.subtle.generateKey(EC_P256, true, ["sign", "verify"])) as CryptoKeyPair;
    const issued = await this.#issue({
      name: `CN=${id}, OU=${kind}`,
      publicKey: keys.publicKey,
      validityDays,
      now,
      extensions: [
        new x509.BasicConstraintsExtension(false, undefined, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
        new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth, x509.ExtendedKeyUsage.clientAuth], false),
        sanFor(hosts),
      ],
    });
    const pkcs8 = Buffer.from(await webcrypto.subtle.exportKey("pkcs8", keys.privateKey));
    const keyPem = `-----BEGIN PRIVATE KEY-----\n${pkcs8.toString("base64").replace(/.{1,64}/g, "$&\n")}-----END PRIVATE KEY-----\n`;
    return { ...issued, keyPem };
  }

  async #issue(spec: { name: string; publicKey: CryptoKey; validityDays: number; now: Date; extensions: x509.Extension[] }): Promise<IssuedCert> {
    // Back-date a minute so a peer whose clock runs slightly behind accepts it at once.
    const notBefore = new Date(spec.now.getTime() - 60_000);
    const notAfter = new Date(Math.min(spec.now.getTime() + spec.validityDays * DAY_MS, this.cert.notAfter.getTime()));
    const cert = await x509.X509CertificateGenerator.create({
      serialNumber: newSerial(),
      subject: spec.name,
      issuer: this.cert.subject,
      notBefore,
      notAfter,
      publicKey: spec.publicKey,
      signingKey: this.key,
      signingAlgorithm: SIGNING,
      extensions: [...spec.extensions, await x509.AuthorityKeyIdentifierExtension.create(this.cert)],
    });
    const pem = cert.toString("pem");
    const native = new NodeX509(pem);
    return { certPem: pem, serial: native.serialNumber.toUpperCase(), fingerprint: native.fingerprint256, notBefore, notAfter };
  }
}

function sanFor(hosts: readonly string[]): x509.SubjectAlternativeNameExtension {
  return new x509.SubjectAlternativeNameExtension(hosts.map((h): x509.JsonGeneralName => (isIP(h) !== 0 ? { type: "ip", value: h } : { type: "dns", value: h })));
}

/** 16 random bytes with the top bit clear, so the DER integer stays positive. */
function newSerial(): string {
  const bytes = randomBytes(16);
  bytes[0] = bytes[0]! & 0x7f | 0x10;
  return bytes.toString("hex");
}
