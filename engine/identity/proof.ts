/**
 * Proof of identity for connectors and engines. TLS alone cannot identify a connector here
 * (the uWS build lets clients without a certificate through and never shows JavaScript the
 * peer certificate), so a peer proves it holds the key of a certificate from the tenant CA:
 * it signs a short-lived JWS (ES256) whose protected header carries its certificate (`x5c`)
 * and whose payload names the audience and, in the tunnel, echoes the engine's random
 * challenge. The same proof authenticates config-feed requests to control.
 *
 * Verification pins ES256, checks the certificate against the CA (signature, validity,
 * extended key usage clientAuth), the JWS signature against the certificate's key, audience,
 * freshness and challenge, and finally asks the caller whether the serial is still allowed
 * (revocation, disabled connectors).
 */
import { X509Certificate, createPrivateKey, randomBytes, type KeyObject } from "node:crypto";
import { SignJWT, decodeProtectedHeader, jwtVerify } from "jose";
import { PosternError } from "../errors/catalogue.js";

/** Who a certificate was issued to: the subject's CN is the id, OU the kind. */
export type PeerKind = "connector" | "engine" | "control";

export interface PeerIdentity {
  readonly kind: PeerKind;
  readonly id: string;
  readonly serial: string;
  readonly fingerprint: string;
  readonly notBefore: Date;
  readonly notAfter: Date;
}

export interface ProofInput {
  readonly keyPem: string;
  readonly certPem: string;
  readonly audience: string;
  /** The verifier's random challenge, when it sent one. */
  readonly challenge?: string;
  /** The time to check against, ms since the epoch (a Clock reading); unset: now. */
  readonly now?: number;
}

/** Lifetime of a proof; the verifier allows this much clock skew either way too. */
const PROOF_LIFETIME_S = 60;
const CLIENT_AUTH_EKU = "1.3.6.1.5.5.7.3.2";

export async function createIdentityProof(input: ProofInput): Promise<string> {
  const key = createPrivateKey(input.keyPem);
  const der = new X509Certificate(input.certPem).raw.toString("base64");
  const iat = Math.floor((input.now ?? Date.now()) / 1000);
  return new SignJWT(input.challenge === undefined ? {} : { challenge: input.challenge })
    .setProtectedHeader({ alg: "ES256", x5c: [der] })
    .setAudience(input.audience)
    .setIssuedAt(iat)
    .setExpirationTime(iat + PROOF_LIFETIME_S)
    .sign(key);
}

export interface VerifyOptions {
  /** The tenant CA(s) a certificate may chain to. */
  readonly caCerts: readonly X509Certificate[];
  readonly audience: string;
  readonly challenge?: string;
  /** The time to check against, ms since the epoch (a Clock reading); unset: now. */
  readonly now?: number;
  /** Last check with the verified identity (revocation, disabled): return a reason to refuse. */
  readonly allow?: (peer: PeerIdentity) => string | undefined | Promise<string | undefined>;
}

function refuse(reason: string): never {
  throw new PosternError("POSTERN_HANDSHAKE", `identity refused: ${reason}`);
}

/** Verifies a proof; throws POSTERN_HANDSHAKE naming the reason. */
export async function verifyIdentityProof(proof: unknown, options: VerifyOptions): Promise<PeerIdentity> {
  if (typeof proof !== "string" || proof.length > 16_384) refuse("no proof of identity (client certificate) was presented");
  let header;
  try {
    header = decodeProtectedHeader(proof);
  } catch {
    refuse("the proof is not a JWS");
  }
  if (header.alg !== "ES256") refuse(`proof algorithm ${String(header.alg)} is not allowed`);
  const chain = header.x5c;
  if (!Array.isArray(chain) || chain.length < 1 || typeof chain[0] !== "string") refuse("the proof carries no certificate");
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(Buffer.from(chain[0], "base64"));
  } catch {
    refuse("the certificate cannot be parsed");
  }
  const issuer = options.caCerts.find((ca) => cert.checkIssued(ca) && cert.verify(ca.publicKey));
  if (issuer === undefined) refuse(`certificate ${cert.serialNumber} was not issued by the tenant CA`);
  const now = new Date(options.now ?? Date.now());
  const notBefore = new Date(cert.validFrom);
  const notAfter = new Date(cert.validTo);
  if (now < notBefore) refuse(`certificate ${cert.serialNumber} is not valid before ${notBefore.toISOString()}`);
  if (now > notAfter) refuse(`certificate ${cert.serialNumber} expired on ${notAfter.toISOString()}`);
  if (!(cert.keyUsage ?? []).includes(CLIENT_AUTH_EKU)) refuse(`certificate ${cert.serialNumber} is not for client authentication`);
  const subject = parseSubject(cert.subject);
  const kind = subject.OU;
  if ((kind !== "connector" && kind !== "engine" && kind !== "control") || !subject.CN) refuse("certificate subject is not a Postern identity");
  let payload;
  try {
    ({ payload } = await jwtVerify(proof, cert.publicKey as KeyObject, {
      algorithms: ["ES256"],
      audience: options.audience,
      currentDate: now,
      clockTolerance: PROOF_LIFETIME_S,
      maxTokenAge: PROOF_LIFETIME_S * 2,
    }));
  } catch (err) {
    refuse(`proof signature or claims invalid (${err instanceof Error ? err.message : String(err)})`);
  }
  if (options.challenge !== undefined && payload.challenge !== options.challenge) refuse("the proof does not answer this connection's challenge");
  const identity: PeerIdentity = { kind, id: subject.CN, serial: cert.serialNumber.toUpperCase(), fingerprint: cert.fingerprint256, notBefore, notAfter };
  const reason = await options.allow?.(identity);
  if (reason !== undefined) refuse(reason);
  return identity;
}

function parseSubject(subject: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of subject.split("\n")) {
    const eq = line.indexOf("=");
    if (eq > 0) out[line.slice(0, eq)] = line.slice(eq + 1);
  }
  return out;
}

/** Audience of proofs in the tunnel HELLO (control's feed uses its own). */
export const TUNNEL_PROOF_AUDIENCE = "postern-tunnel";

/** Which of an engine's worker processes a tunnel reached, and how many there are. */
export interface EngineWorker {
  readonly index: number;
  readonly count: number;
}

/**
 * The engine's HELLO ext for one connection: a fresh random challenge, and the worker the
 * connection reached (connectors keep tunnels to every worker of every engine).
 */
export function tunnelChallenge(worker?: EngineWorker): { challenge: string; worker?: number; workers?: number } {
  return { challenge: randomBytes(32).toString("base64url"), ...(worker ? { worker: worker.index, workers: worker.count } : {}) };
}

/** The worker an engine's HELLO names; undefined from a single-process engine (or anything malformed). */
export function engineWorkerOf(peerExt: Readonly<Record<string, unknown>> | undefined): EngineWorker | undefined {
  const index = peerExt?.worker;
  const count = peerExt?.workers;
  if (typeof index !== "number" || typeof count !== "number" || !Number.isInteger(index) || !Number.isInteger(count)) return undefined;
  if (count < 1 || count > 1024 || index < 0 || index >= count) return undefined;
  return { index, count };
}

/** The connector's HELLO ext: a proof over the engine's challenge. */
export async function answerTunnelChallenge(peerExt: Readonly<Record<string, unknown>> | undefined, creds: { keyPem: string; certPem: string }, now?: number): Promise<{ proof: string }> {
  const challenge = peerExt?.challenge;
  if (typeof challenge !== "string" || challenge.length < 16 || challenge.length > 256) {
    throw new PosternError("POSTERN_HANDSHAKE", "the engine sent no identity challenge");
  }
  return { proof: await createIdentityProof({ ...creds, audience: TUNNEL_PROOF_AUDIENCE, challenge, ...(now !== undefined ? { now } : {}) }) };
}
