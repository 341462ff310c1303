/**
 * A peer's identity on disk: key, certificate, tenant CA and id, as control/client/enroll.ts
 * stores them after registration. The key never leaves the host. Secret files are written with
 * mode 0600 (atomically: temp file, then rename), and a key file other users can read stops
 * the process with an error that says so, because that key is the peer's identity.
 */
import { X509Certificate } from "node:crypto";
import { chmodSync, existsSync, mkdirSync, readFileSync, renameSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { PosternError } from "../errors/catalogue.js";
import type { PeerKind } from "./proof.js";

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
