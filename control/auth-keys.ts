/**
 * Keys control hands to engines for pre-authentication: the session cookie keys (AES-256,
 * rotated every week; the previous key stays a week longer so cookies sealed with it still
 * open: the overlap window) and the ES256 key engines sign identity assertions with. All of
 * them are sealed at rest with the master key.
 */
import { randomBytes, randomUUID } from "node:crypto";
import { exportJWK, generateKeyPair, type JWK } from "jose";
import { loadOrCreateSecret, type SecretStore, type Sealer } from "./secrets.js";

export const SESSION_KEY_ROTATE_DAYS = 7;
/** A retired key still opens cookies this long after it was made. */
export const SESSION_KEY_KEEP_DAYS = 14;
const DAY_MS = 86_400_000;

interface StoredSessionKey {
  readonly kid: string;
  readonly k: string;
  readonly createdAt: string;
}

/** The session keys in force at `now`, newest first (rotating when the newest is due). */
export async function sessionKeys(store: SecretStore, sealer: Sealer, now: Date): Promise<{ kid: string; k: string }[]> {
  const name = "session-keys";
  const sealed = await store.getSecret(name);
  let keys: StoredSessionKey[] = sealed ? (JSON.parse(sealer.open(sealed, name).toString()) as StoredSessionKey[]) : [];
  const t = now.getTime();
  let changed = false;
  if (keys.length === 0 || t - Date.parse(keys[0]!.createdAt) >= SESSION_KEY_ROTATE_DAYS * DAY_MS) {
    keys = [{ kid: randomUUID(), k: randomBytes(32).toString("base64url"), createdAt: now.toISOString() }, ...keys];
    changed = true;
  }
  const kept = keys.filter((key, i) => i === 0 || t - Date.parse(key.createdAt) < SESSION_KEY_KEEP_DAYS * DAY_MS);
  if (kept.length !== keys.length) changed = true;
  if (changed) {
    // Engines must learn a new key before cookies sealed with it reach them: a feed change. Two
    // replicas rotating at once keep whichever rotation landed first.
    const stored = await store.swapSecret(name, sealed, sealer.seal(JSON.stringify(kept), name), { feedChange: true });
    keys = JSON.parse(sealer.open(stored, name).toString()) as StoredSessionKey[];
    return keys.map(({ kid, k }) => ({ kid, k }));
  }
  return kept.map(({ kid, k }) => ({ kid, k }));
}

/** The private key engines sign identity assertions with (its public half is at <app>/.postern/jwks.json). */
export function assertionKey(store: SecretStore, sealer: Sealer): Promise<JWK & { kid: string }> {
  return loadOrCreateSecret(store, sealer, "assertion-key", async () => {
    const { privateKey } = await generateKeyPair("ES256", { extractable: true });
    return { ...(await exportJWK(privateKey)), kid: randomUUID(), alg: "ES256" } as JWK & { kid: string };
  });
}
