/**
 * The piscina task for identity crypto, so the engine's event loop never spends itself on it:
 * opening and sealing session cookies (JWE, direct A256GCM) and verifying signed tokens (ID
 * tokens, bearer access tokens) against an issuer's keys, with the algorithm pinned to
 * asymmetric ones (never `none`, never HS* with a public key).
 */
import { compactDecrypt, CompactEncrypt, createLocalJWKSet, importJWK, jwtVerify, SignJWT, type JWK, type JWTVerifyGetKey } from "jose";
import { BoundedMap } from "../limits/bounded.js";
import { markStarted } from "./started.js";

export const TOKEN_ALGORITHMS = ["ES256", "ES384", "ES512", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "EdDSA"];

/** A session key: id and 32 bytes, base64url. */
export interface SessionKey {
  readonly kid: string;
  readonly k: string;
}

export type AuthTask =
  | { readonly op: "open"; readonly token: string; readonly keys: readonly SessionKey[]; readonly slot: number }
  | { readonly op: "seal"; readonly payload: Record<string, unknown>; readonly key: SessionKey; readonly slot: number }
  | { readonly op: "sign"; readonly payload: Record<string, unknown>; readonly key: JWK & { kid: string }; readonly slot: number }
  | {
    readonly op: "verify"; readonly token: string; readonly jwks: readonly JWK[]; readonly issuer: string; readonly audience: string;
    readonly nowS: number; readonly skewS: number; readonly slot: number;
  };

export type AuthResult = { readonly ok: true; readonly payload: Record<string, unknown>; readonly token?: string } | { readonly ok: false; readonly reason: string };

/** Imported keys, kept per key set and per signing key (a worker serves a few issuers). */
const keySets = new BoundedMap<string, JWTVerifyGetKey>(64);
const signingKeys = new BoundedMap<string, Promise<Awaited<ReturnType<typeof importJWK>>>>(64);

function keySet(jwks: readonly JWK[]): JWTVerifyGetKey {
  return keySets.getOrMake(JSON.stringify(jwks), () => createLocalJWKSet({ keys: [...jwks] }));
}

const decoder = new TextDecoder();

/** Why a token failed, in words for the sign-in log and the error page. */
function reasonOf(err: unknown): string {
  const code = (err as { code?: string }).code ?? "";
  const claim = (err as { claim?: string }).claim;
  if (code === "ERR_JWT_EXPIRED") return "the token has expired";
  if (code === "ERR_JWT_CLAIM_VALIDATION_FAILED") return claim === "nbf" ? "the token is not valid yet" : `the token's ${claim ?? "claims"} claim is wrong`;
  if (code === "ERR_JOSE_ALG_NOT_ALLOWED") return "the token's algorithm is not allowed";
  if (code === "ERR_JWKS_NO_MATCHING_KEY") return "no key of the issuer matches the token";
  if (code === "ERR_JWS_SIGNATURE_VERIFICATION_FAILED") return "the token's signature does not verify";
  if (code === "ERR_JWE_DECRYPTION_FAILED") return "the session cookie does not decrypt";
  return `the token is invalid (${code || (err as Error).message})`;
}

export default async function authTask(task: AuthTask): Promise<AuthResult> {
  markStarted(task);
  try {
    switch (task.op) {
      case "open": {
        const { plaintext } = await compactDecrypt(task.token, (header) => {
          const key = task.keys.find((k) => k.kid === header.kid);
          if (!key) throw Object.assign(new Error("unknown session key"), { code: "ERR_JWE_DECRYPTION_FAILED" });
          return Buffer.from(key.k, "base64url");
        }, { keyManagementAlgorithms: ["dir"], contentEncryptionAlgorithms: ["A256GCM"] });
        return { ok: true, payload: JSON.parse(decoder.decode(plaintext)) as Record<string, unknown> };
      }
      case "seal": {
        const token = await new CompactEncrypt(Buffer.from(JSON.stringify(task.payload)))
          .setProtectedHeader({ alg: "dir", enc: "A256GCM", kid: task.key.kid })
          .encrypt(Buffer.from(task.key.k, "base64url"));
        return { ok: true, payload: {}, token };
      }
      case "sign": {
        const key = await signingKeys.getOrMake(task.key.kid, () => importJWK(task.key, "ES256"));
        const token = await new SignJWT(task.payload).setProtectedHeader({ alg: "ES256", kid: task.key.kid, typ: "JWT" }).sign(key);
        return { ok: true, payload: {}, token };
      }
      case "verify": {
        const { payload } = await jwtVerify(task.token, keySet(task.jwks), {
          issuer: task.issuer, audience: task.audience, algorithms: TOKEN_ALGORITHMS, clockTolerance: task.skewS, currentDate: new Date(task.nowS * 1000),
        });
        if (typeof payload.iat === "number" && payload.iat > task.nowS + task.skewS) return { ok: false, reason: "the token was issued in the future" };
        return { ok: true, payload: payload as Record<string, unknown> };
      }
    }
  } catch (err) {
    return { ok: false, reason: reasonOf(err) };
  }
}
