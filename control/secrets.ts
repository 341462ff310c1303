/**
 * The control plane's master key and sealing of secrets at rest (the tenant CA key, the IdP
 * signing keys, TOTP seeds). The key comes from POSTERN_MASTER_KEY (base64, 32 bytes) or from
 * a key file that the first run creates with mode 0600; a file readable by others is refused,
 * because anyone who can read it can mint connector certificates.
 */
import { createCipheriv, createDecipheriv, randomBytes } from "node:crypto";
import { existsSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { PosternError } from "../engine/errors/catalogue.js";

const KEY_BYTES = 32;
const IV_BYTES = 12;
const TAG_BYTES = 16;
/** Sealed blobs start with a version byte so the format can change without guessing. */
const SEAL_VERSION = 1;

export interface Sealer {
  seal(plain: Buffer | string, context: string): Buffer;
  open(sealed: Buffer, context: string): Buffer;
}

/**
 * Loads the master key: `envValue` wins; otherwise `keyFile` is read, or created when absent.
 * `context` in seal/open binds a blob to its purpose (AES-GCM associated data), so a sealed
 * TOTP seed cannot be swapped in where the CA key is expected.
 */
export function loadMasterKey(options: { envValue?: string | undefined; keyFile: string; shared?: boolean }): Sealer {
  let key: Buffer;
  if (options.envValue !== undefined && options.envValue !== "") {
    key = Buffer.from(options.envValue, "base64");
    if (key.length !== KEY_BYTES) {
      throw new PosternError("POSTERN_CONFIG", `POSTERN_MASTER_KEY: expected ${KEY_BYTES} bytes of base64, got ${key.length} bytes`);
    }
  } else if (existsSync(options.keyFile)) {
    const mode = statSync(options.keyFile).mode & 0o777;
    if ((mode & 0o077) !== 0) {
      throw new PosternError("POSTERN_CONFIG", `master key file ${options.keyFile}: mode ${mode.toString(8)} lets other users read it; chmod 600 it`);
    }
    key = Buffer.from(readFileSync(options.keyFile, "utf8").trim(), "base64");
    if (key.length !== KEY_BYTES) {
      throw new PosternError("POSTERN_CONFIG", `master key file ${options.keyFile}: expected ${KEY_BYTES} bytes of base64`);
    }
  } else if (options.shared) {
    // Replicas of one shared store must all hold the same key: never make up one of our own.
    throw new PosternError("POSTERN_CONFIG", `master key: a shared store needs the same key on every replica; set POSTERN_MASTER_KEY (openssl rand -base64 32) or put it in ${options.keyFile} (mode 0600)`);
  } else {
    key = randomBytes(KEY_BYTES);
    writeFileSync(options.keyFile, key.toString("base64") + "\n", { mode: 0o600, flag: "wx" });
  }
  return sealerFor(key);
}

function sealerFor(key: Buffer): Sealer {
  return {
    seal(plain, context) {
      const iv = randomBytes(IV_BYTES);
      const cipher = createCipheriv("aes-256-gcm", key, iv);
      cipher.setAAD(Buffer.from(context));
      const body = Buffer.concat([cipher.update(plain), cipher.final()]);
      return Buffer.concat([Buffer.of(SEAL_VERSION), iv, cipher.getAuthTag(), body]);
    },
    open(sealed, context) {
      if (sealed.length < 1 + IV_BYTES + TAG_BYTES || sealed[0] !== SEAL_VERSION) {
        throw new PosternError("POSTERN_CONFIG", `sealed ${context}: unknown format`);
      }
      const iv = sealed.subarray(1, 1 + IV_BYTES);
      const tag = sealed.subarray(1 + IV_BYTES, 1 + IV_BYTES + TAG_BYTES);
      const decipher = createDecipheriv("aes-256-gcm", key, iv);
      decipher.setAAD(Buffer.from(context));
      decipher.setAuthTag(tag);
      try {
        return Buffer.concat([decipher.update(sealed.subarray(1 + IV_BYTES + TAG_BYTES)), decipher.final()]);
      } catch (err) {
        throw new PosternError("POSTERN_CONFIG", `sealed ${context}: cannot be opened with this master key (wrong key or corrupted)`, { cause: err });
      }
    },
  };
}

/** A JSON secret sealed in the store under `name`, made by `create` on first use. */
export async function loadOrCreateSecret<T>(store: SecretStore, sealer: Sealer, name: string, create: () => Promise<T>): Promise<T> {
  const sealed = await store.getSecret(name);
  if (sealed) return JSON.parse(sealer.open(sealed, name).toString()) as T;
  // Another replica may create it at the same moment: whichever lands first is the one both use.
  const stored = await store.swapSecret(name, null, sealer.seal(JSON.stringify(await create()), name));
  return JSON.parse(sealer.open(stored, name).toString()) as T;
}

/** The part of the Store that keeps secrets. */
export interface SecretStore {
  getSecret(name: string): Promise<Buffer | null>;
  swapSecret(name: string, expected: Buffer | null, next: Buffer, options?: { feedChange?: boolean }): Promise<Buffer>;
}

/**
 * Checks that this master key is the one the store's secrets are sealed with (a marker sealed
 * by the first replica), so a replica with another key stops at start with a clear error
 * rather than failing on the first secret it opens.
 */
export async function checkMasterKey(store: SecretStore, sealer: Sealer): Promise<void> {
  const name = "master-key-check";
  const stored = await store.swapSecret(name, null, sealer.seal("postern", name));
  try {
    sealer.open(stored, name);
  } catch (err) {
    throw new PosternError("POSTERN_CONFIG", "master key: differs from the key this store's secrets are sealed with; give every replica the same POSTERN_MASTER_KEY", { cause: err });
  }
}
