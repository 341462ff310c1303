/**
 * The engine's tunnel listener: TLS (uWS SSLApp) with the tenant CA as a first gate, then the
 * identity proof inside the HELLO exchange, because this uWS build lets clients without a
 * certificate through the TLS handshake and never shows JavaScript the peer certificate. Each
 * connection gets its own random challenge; the connector must sign it with the key of a
 * certificate from the tenant CA that the registry still allows.
 */
import { X509Certificate } from "node:crypto";
import { readFileSync } from "node:fs";
import type { Logger } from "pino";
import type { MuxConfigInput } from "../mux/config.js";
import type { SessionOptions } from "../mux/session.js";
import { attachTunnel } from "./uws-transport.js";
import { TUNNEL_PROOF_AUDIENCE, tunnelChallenge, verifyIdentityProof, type EngineWorker, type PeerIdentity } from "../identity/proof.js";
import { listen, uws, type Listening } from "../uws/index.js";
import type { ConnectorRegistry } from "./registry.js";
import { type Clock } from "../config/clock.js";
import { LogBudget } from "../limits/log-budget.js";

export interface TunnelListenerOptions {
  readonly host: string;
  readonly port: number;
  /** PEM files: the engine's key and certificate, and the tenant CA. */
  readonly keyFile: string;
  readonly certFile: string;
  readonly caFile: string;
  readonly registry: ConnectorRegistry;
  readonly mux?: MuxConfigInput;
  readonly logger: Logger;
  readonly now?: Clock;
  /** This process's place among the engine's workers, told to connectors in the HELLO. */
  readonly worker?: EngineWorker;
}

/** Session errors that mean the peer broke the protocol (not a network failure or a drain). */
const PROTOCOL_REFUSALS = new Set(["POSTERN_PROTOCOL", "POSTERN_FRAME_SIZE", "POSTERN_FLOW_CONTROL", "POSTERN_FLOOD", "POSTERN_HANDSHAKE"]);

export async function startTunnelListener(options: TunnelListenerOptions): Promise<Listening> {
  const { registry, logger } = options;
  const caCerts = [new X509Certificate(readFileSync(options.caFile))];
  const app = uws.SSLApp({ key_file_name: options.keyFile, cert_file_name: options.certFile, ca_file_name: options.caFile });
  // The identity each connection proved, keyed by the session options made for it.
  const proved = new WeakMap<object, PeerIdentity>();
  // Refusals (identity, protocol errors) are logged, at most 10 a second: a peer that loops
  // on bad input must not flood the log.
  const refusals = new LogBudget(10);
  const refused = (fields: Record<string, unknown>, msg: string) => {
    const budget = refusals.take();
    if (budget.ok) logger.warn({ ...fields, ...(budget.dropped ? { dropped: budget.dropped } : {}) }, msg);
  };
  attachTunnel(app, {
    session: ({ remoteAddress }) => {
      const ext = tunnelChallenge(options.worker);
      const sessionOptions: Omit<SessionOptions, "role"> = {
        ...(options.mux ? { config: options.mux } : {}),
        helloExt: () => ext,
        verifyPeer: async (hello) => {
          try {
            const identity = await verifyIdentityProof(hello.ext.proof, {
              caCerts,
              audience: TUNNEL_PROOF_AUDIENCE,
              challenge: ext.challenge,
              ...(options.now ? { now: options.now() } : {}),
              allow: (peer) => registry.refusal(peer),
            });
            proved.set(sessionOptions, identity);
          } catch (err) {
            refused({ remoteAddress, err: (err as Error).message }, "tunnel refused");
            throw err;
          }
        },
      };
      return sessionOptions;
    },
    onSession: (session, { remoteAddress, options: sessionOptions }) => {
      session.once("close", (err?: Error) => {
        // Frames that break the protocol (malformed, oversized, floods): the peer is cut off and it is said.
        const code = (err as { code?: string } | undefined)?.code;
        if (code && PROTOCOL_REFUSALS.has(code)) refused({ remoteAddress, code, err: err!.message }, "tunnel connection closed: protocol error");
      });
      session.ready.then(
        () => {
          const identity = proved.get(sessionOptions)!;
          // The table may have changed while the session finished its handshake.
          if (registry.refusal(identity) !== undefined) return session.close();
          registry.add({ identity, session, remoteAddress });
          logger.info({ connector: identity.id, serial: identity.serial, remoteAddress }, "connector connected");
          session.once("close", (err?: Error) => logger.info({ connector: identity.id, reason: err?.message }, "connector disconnected"));
        },
        () => undefined,
      );
    },
  });
  return listen(app, options.host, options.port);
}
