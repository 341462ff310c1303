/**
 * A peer's identity on disk and how it gets one. Connectors and engines both enrol the same
 * way: make a key pair and CSR here, send the CSR with an admin's token to control, store the
 * certificate beside the key. The key never leaves the host. Secret files are written with
 * mode 0600 (atomically: temp file, then rename), and a key file other users can read stops
 * the process with an error that says so, because that key is the peer's identity.
 */
import { X509Certificate } from "node:crypto";
import { chmodSync, existsSync, mkdirSync, readFileSync, renameSync, statSync, writeFileSync } from "node:fs";
import { hostname } from "node:os";
import { join } from "node:path";
import { Agent } from "undici";
import { controlRequest, controlTrust } from "./control-client.js";
import { createKeyAndCsr } from "./csr.js";
import { PosternError } from "./errors.js";
import type { PeerKind } from "./identity.js";

export interface StoredIdentity {
  readonly kind: PeerKind;
  readonly id: string;
  readonly controlUrl: string;
  readonly keyPem: string;
  readonly certPem: string;
  /** The tenant CA: it issued our certificate and the peers' we talk to. */
  readonly caPem: string;
  /** When the current certificate was issued. */
  readonly issuedAt: Date;
}

function files(dir: string, kind: PeerKind) {
  return { key: join(dir, `${kind}.key`), cert: join(dir, `${kind}.crt`), ca: join(dir, "tenant-ca.crt"), meta: join(dir, `${kind}.json`) };
}

export function identityExists(dir: string, kind: PeerKind): boolean {
  const f = files(dir, kind);
  return existsSync(f.meta) && existsSync(f.key);
}

export function loadIdentity(dir: string, kind: PeerKind): StoredIdentity {
  const f = files(dir, kind);
  if (!existsSync(f.key) || !existsSync(f.meta)) {
    throw new PosternError("POSTERN_CONFIG", `no ${kind} identity in ${dir}: run "postern ${kind === "connector" ? "connector register" : "engine"}" with --token first`);
  }
  const mode = statSync(f.key).mode & 0o777;
  if ((mode & 0o077) !== 0) {
    throw new PosternError("POSTERN_CONFIG", `key file ${f.key} has mode ${mode.toString(8)}: other users can read this ${kind}'s identity; chmod 600 it`);
  }
  const meta = JSON.parse(readFileSync(f.meta, "utf8")) as { id: string; controlUrl: string };
  const certPem = readFileSync(f.cert, "utf8");
  return {
    kind, id: meta.id, controlUrl: meta.controlUrl, keyPem: readFileSync(f.key, "utf8"), certPem, caPem: readFileSync(f.ca, "utf8"),
    issuedAt: new Date(new X509Certificate(certPem).validFrom),
  };
}

export function saveIdentity(dir: string, identity: Omit<StoredIdentity, "issuedAt">): StoredIdentity {
  const f = files(dir, identity.kind);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  writeAtomic(f.ca, identity.caPem, 0o644);
  writeAtomic(f.key, identity.keyPem, 0o600);
  writeAtomic(f.cert, identity.certPem, 0o644);
  writeAtomic(f.meta, JSON.stringify({ id: identity.id, controlUrl: identity.controlUrl }, null, 2) + "\n", 0o600);
  return { ...identity, issuedAt: new Date(new X509Certificate(identity.certPem).validFrom) };
}

function writeAtomic(file: string, text: string, mode: number): void {
  const tmp = `${file}.tmp-${process.pid}`;
  writeFileSync(tmp, text, { mode });
  chmodSync(tmp, mode); // the umask may have narrowed it; make it exact
  renameSync(tmp, file);
}

export interface EnrollOptions {
  readonly kind: "connector" | "engine";
  readonly controlUrl: string;
  /** An admin's access token from the IdP. */
  readonly token: string;
  readonly stateDir: string;
  /** CA that issued control's TLS certificate, when it is not publicly trusted. */
  readonly controlCaPem?: string;
  /** More request fields: the connector's group and version, the engine's tunnel URL. */
  readonly fields: Record<string, unknown>;
}

export async function enroll(options: EnrollOptions): Promise<StoredIdentity> {
  const host = hostname();
  const { keyPem, csrPem } = await createKeyAndCsr(host);
  const agent = new Agent({ connect: { ca: controlTrust(options.controlCaPem) } });
  try {
    const path = options.kind === "connector" ? "/api/v1/connectors/register" : "/api/v1/engines/register";
    const issued = await controlRequest<{ id: string; certificate: string; caCertificate: string }>(
      agent, options.controlUrl, "POST", path, { authorization: `Bearer ${options.token}` },
      { csr: csrPem, ...(options.kind === "connector" ? { hostName: host } : {}), ...options.fields },
    );
    return saveIdentity(options.stateDir, { kind: options.kind, id: issued.id, controlUrl: options.controlUrl, keyPem, certPem: issued.certificate, caPem: issued.caCertificate });
  } finally {
    await agent.close();
  }
}
