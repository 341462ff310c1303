/**
 * Who is calling the control API. Admins send IdP-issued bearer tokens: verified against the
 * issuer's keys (the built-in IdP's own, or an external issuer's JWKS found by discovery and
 * refetched at most once per 30 s), with pinned asymmetric algorithms, issuer, audience and
 * expiry. Connectors and engines send identity proofs signed with their certificate's key,
 * checked against the tenant CA and the store (revoked certificates, disabled or deleted
 * connectors are refused).
 */
import { X509Certificate } from "node:crypto";
import type { IncomingMessage } from "node:http";
import { createLocalJWKSet, createRemoteJWKSet, decodeJwt, jwtVerify, type JWK, type JWTVerifyGetKey } from "jose";
import { CONTROL_PROOF_AUDIENCE } from "../client/client.js";
import { verifyIdentityProof } from "../../engine/identity/proof.js";
import { ROLES, type Role, type Store } from "../store/types.js";
import { ApiError, type Authenticator, type Caller } from "./router.js";
import { PosternError } from "../../engine/errors/catalogue.js";
import { type Clock } from "../../engine/config/clock.js";

const ALGORITHMS = ["ES256", "ES384", "RS256", "PS256", "EdDSA"];
const CLOCK_SKEW_S = 30;

export interface IssuerTrust {
  readonly issuer: string;
  readonly audience: string;
  /** The built-in IdP's public keys; unset means fetch the issuer's JWKS from its discovery document. */
  readonly jwks?: { keys: JWK[] };
  /** Claim that lists roles (Entra and the built-in IdP: `roles`). */
  readonly rolesClaim: string;
}

/** Reads `<issuer>/.well-known/openid-configuration` for an external IdP (Entra ID, Keycloak, ...). */
export async function discoverIssuer(discoveryUrl: string): Promise<{ issuer: string; jwksUri: string }> {
  const res = await fetch(discoveryUrl, { signal: AbortSignal.timeout(10_000) });
  if (!res.ok) throw new PosternError("POSTERN_AUTH_UNAVAILABLE", `OIDC discovery ${discoveryUrl}: HTTP ${res.status}`);
  const doc = (await res.json()) as { issuer?: unknown; jwks_uri?: unknown };
  if (typeof doc.issuer !== "string" || typeof doc.jwks_uri !== "string") throw new PosternError("POSTERN_AUTH_UNAVAILABLE", `OIDC discovery ${discoveryUrl}: no issuer or jwks_uri`);
  return { issuer: doc.issuer, jwksUri: doc.jwks_uri };
}

export function createAuthenticator(options: {
  trust: IssuerTrust;
  jwksUri?: string;
  store: Store;
  caCertPem: () => string;
  now: Clock;
}): Authenticator {
  const { trust, store, now } = options;
  let keys: JWTVerifyGetKey;
  if (trust.jwks) keys = createLocalJWKSet(trust.jwks);
  else if (options.jwksUri) keys = createRemoteJWKSet(new URL(options.jwksUri), { cooldownDuration: 30_000, timeoutDuration: 5_000 });
  else throw new PosternError("POSTERN_CONFIG", "issuer trust needs local keys or a JWKS URI");

  return {
    async user(token): Promise<Caller & { kind: "user" }> {
      let claimedIssuer: unknown;
      try {
        claimedIssuer = decodeJwt(token).iss;
      } catch {
        throw new ApiError("POSTERN_TOKEN_INVALID", "bearer token refused: the token is malformed");
      }
      if (claimedIssuer !== trust.issuer) {
        throw new ApiError("POSTERN_TOKEN_INVALID", `bearer token refused: it comes from another issuer (${String(claimedIssuer)}); this control trusts ${trust.issuer}`);
      }
      let payload;
      try {
        ({ payload } = await jwtVerify(token, keys, {
          issuer: trust.issuer,
          audience: trust.audience,
          algorithms: ALGORITHMS,
          currentDate: new Date(now()),
          clockTolerance: CLOCK_SKEW_S,
          requiredClaims: ["exp", "sub"],
        }));
      } catch (err) {
        throw new ApiError("POSTERN_TOKEN_INVALID", `bearer token refused: ${describeJoseError(err)}`);
      }
      const claimed = payload[trust.rolesClaim];
      const roles = (Array.isArray(claimed) ? claimed : []).filter((r): r is Role => ROLES.includes(r as Role));
      const name = typeof payload.preferred_username === "string" ? payload.preferred_username : payload.sub!;
      const groups = (Array.isArray(payload.groups) ? (payload.groups as unknown[]) : []).filter((g: unknown): g is string => typeof g === "string").slice(0, 1000);
      return { kind: "user", sub: payload.sub!, name, roles, groups };
    },

    async peer(proof: string, _req: IncomingMessage): Promise<Caller & { kind: "peer" }> {
      const peer = await verifyIdentityProof(proof, {
        caCerts: [new X509Certificate(options.caCertPem())],
        audience: CONTROL_PROOF_AUDIENCE,
        now: now(),
        allow: async (p) => {
          const cert = await store.getCertificate(p.serial);
          if (cert === null || cert.subjectId !== p.id) return `certificate ${p.serial} is not on record`;
          if (cert.revokedAt !== null) return `certificate ${p.serial} was revoked at ${cert.revokedAt}`;
          if (p.kind === "connector") {
            const connector = await store.getConnector(p.id);
            if (connector === null) return `connector ${p.id} was deleted`;
            if (connector.status === "disabled") return `connector ${p.id} is disabled`;
          }
          return undefined;
        },
      });
      return { kind: "peer", peer };
    },
  };
}

function describeJoseError(err: unknown): string {
  const code = (err as { code?: string }).code ?? "";
  const claim = (err as { claim?: string }).claim;
  if (code === "ERR_JWT_EXPIRED") return "the token has expired";
  if (code === "ERR_JWT_CLAIM_VALIDATION_FAILED" && claim === "iss") return "the token comes from another issuer";
  if (code === "ERR_JWT_CLAIM_VALIDATION_FAILED" && claim === "aud") return "the token is for another audience";
  if (code === "ERR_JWT_CLAIM_VALIDATION_FAILED") return `claim ${claim ?? "?"} is invalid`;
  if (code === "ERR_JWS_SIGNATURE_VERIFICATION_FAILED" || code === "ERR_JWKS_NO_MATCHING_KEY") return "the signature does not match the issuer's keys";
  if (code === "ERR_JOSE_ALG_NOT_ALLOWED") return "the token's algorithm is not allowed";
  if (code === "ERR_JWS_INVALID" || code === "ERR_JWT_INVALID") return "the token is malformed";
  return err instanceof Error ? err.message : String(err);
}
