import { createRequire } from "node:module";
import { PosternError } from "../errors/catalogue.js";

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
    throw new PosternError(
      "POSTERN_INTERNAL",
      `uWebSockets.js native binary ${name} did not load (Node ${process.version}); ` +
        `Postern needs it and does not run on the JS fallback: ${(err as Error).message}`,
      { cause: err },
    );
  }
}

// uWS reads this once, when the binary loads: its 4 KiB default is too small for JWT cookies.
// The edge enforces its own, exact header limit (engine/limits) below this ceiling.
process.env.UWS_HTTP_MAX_HEADERS_SIZE ??= String(32 * 1024);

export const uws: Uws = load();

/** A listening uWS app: the bound port, and close() to stop accepting. */
export interface Listening {
  readonly port: number;
  close(): void;
}

/** Starts listening; rejects with the address when the port cannot be bound. */
export function listen(app: import("uWebSockets.js").TemplatedApp, host: string, port: number): Promise<Listening> {
  return new Promise((resolve, reject) => {
    app.listen(host, port, (socket) => {
      if (socket === false) return reject(new Error(`cannot listen on ${host}:${port}`));
      resolve({ port: uws.us_socket_local_port(socket), close: () => uws.us_listen_socket_close(socket) });
    });
  });
}
