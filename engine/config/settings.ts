/**
 * Settings of every process (engine node, edge limits, connector, control, pools), validated
 * once at start by a zod schema with defaults, unknown keys rejected, then deep-frozen
 * (fastify's build-validation, rathole's deny_unknown_fields). The input type (`z.input`,
 * everything optional) and the resolved type (`z.output`, complete) differ, so code that
 * runs after start never sees an unvalidated value. A refusal names the field and says what
 * is wrong.
 */
import { z } from "zod";
import { PosternError } from "../errors/catalogue.js";

export type Resolved<T> = T extends (...args: never[]) => unknown ? T : T extends object ? { readonly [K in keyof T]: Resolved<T[K]> } : T;

/** An integer setting in [min, max], with `fallback` when unset; the unit goes in the caller's comment. */
export function integer(min: number, max: number, fallback: number) {
  return z
    .number({ error: "must be a number" })
    .int({ error: "must be an integer" })
    .min(min, { error: (i) => `must be between ${min} and ${max}, got ${String(i.input)}` })
    .max(max, { error: (i) => `must be between ${min} and ${max}, got ${String(i.input)}` })
    .default(fallback);
}

/** A TCP port (0 picks a free one). */
export function port(fallback: number) {
  return integer(0, 65_535, fallback);
}

/**
 * A nested setting whose module validates it itself (the mux, which keeps zod out of the hot
 * path): unset means its defaults; a refusal keeps the module's own message.
 */
export function resolvedBy<I extends object, T>(resolve: (input: I) => T) {
  return z
    .custom<I>((value) => value !== null && typeof value === "object" && !Array.isArray(value), { error: "must be an object" })
    .optional()
    .transform((value, ctx) => {
      try {
        return resolve(value ?? ({} as I));
      } catch (err) {
        // "mux config: maxFrameSize must be ..." becomes ".maxFrameSize must be ...", read under the field's path.
        ctx.addIssue({ code: "custom", message: `.${(err as Error).message.replace(/^[^:]*: /, "")}` });
        return z.NEVER;
      }
    });
}

/** Validates `input` against `schema`, fills defaults, rejects unknown keys, deep-freezes. */
export function resolveSettings<S extends z.ZodType>(schema: S, input: unknown, what: string): Resolved<z.output<S>> {
  const parsed = schema.safeParse(input ?? {});
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    const at = issue.path.map(String).join(".");
    const message = issue.code === "unrecognized_keys"
      ? `${issue.keys.map((k) => (at ? `${at}.${k}` : k)).join(", ")} is not a known setting`
      : issue.message.startsWith(".") ? `${at}${issue.message}` : `${at} ${issue.message}`;
    throw new PosternError("POSTERN_CONFIG", `${what}: ${message}`);
  }
  return deepFreeze(parsed.data) as Resolved<z.output<S>>;
}

function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === "object" && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const v of Object.values(value)) deepFreeze(v);
  }
  return value;
}
