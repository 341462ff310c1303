import { createRequire } from "node:module";

/**
 * The uWebSockets.js binding, loaded from its native binary directly. The package's own
 * entry point falls back to a slow pure-JS server when the binary does not load; Postern would
 * rather fail at start with the reason than run at a fraction of its speed.
 */
export type * from "uWebSockets.js";
type Uws = typeof import("uWebSockets.js");

const require = createRequire(import.meta.url);

function load(): Uws {
  const name = `uws_${process.platform}_${process.arch}_${process.versions.modules}.node`;
  try {
    return require(`uWebSockets.js/binaries/${name}`) as Uws;
  } catch (err) {
    throw new Error(
      `uWebSockets.js native binary ${name} did not load (Node ${process.version}); ` +
        `Postern needs it and does not run on the JS fallback: ${(err as Error).message}`,
      { cause: err },
    );
  }
}

export const uws: Uws = load();
