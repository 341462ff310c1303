import { parseArgs } from "node:util";
import { attachTunnel } from "../engine/mux/uws-transport.js";
import { dialTunnel } from "../engine/mux/ws-transport.js";
import type { Session } from "../engine/mux/session.js";
import type { Stream } from "../engine/mux/stream.js";
import { listen, uws } from "../engine/uws/index.js";

const HELP = `Usage: postern up [options]

Starts, in this process, an engine tunnel endpoint on loopback and a connector that dials it,
then checks the multiplexed tunnel end to end (round trip and streams per second) and keeps
running until Ctrl-C, when the connector drains (GOAWAY) and exits.

Options:
  --port N        Tunnel port (default 7700; 0 picks a free one)
  --check N       Streams in the start-up check (default 2000)
  --once          Exit after the check instead of staying up
  --json          Print the result as JSON
  -h, --help      Show this help
`;

export async function runUp(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      port: { type: "string", default: "7700" },
      check: { type: "string", default: "2000" },
      once: { type: "boolean", default: false },
      json: { type: "boolean", default: false },
      help: { type: "boolean", short: "h", default: false },
    },
    strict: true,
  });
  if (values.help) {
    process.stdout.write(HELP);
    return 0;
  }
  const port = Number(values.port);
  const checkCount = Number(values.check);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new Error(`--port must be 0..65535, got "${values.port}"`);
  if (!Number.isInteger(checkCount) || checkCount < 1) throw new Error(`--check must be a positive integer, got "${values.check}"`);

  const app = uws.App();
  let engineSide: Session | null = null;
  const accepted = new Promise<Session>((resolve) => {
    attachTunnel(app, { session: {}, onSession: (s) => s.ready.then(() => resolve((engineSide = s)), () => {}) });
  });
  const listener = await listen(app, "127.0.0.1", port);
  const tunnelPort = listener.port;
  const url = `ws://127.0.0.1:${tunnelPort}/tunnel`;

  const connector = await dialTunnel({ url, session: {} });
  connector.on("stream", (s: Stream) => {
    s.respond({ status: 200, headers: ["content-type", "text/plain"] });
    s.end(Buffer.from(`hello from the connector: ${s.requestHead.method} ${s.requestHead.target}\n`));
  });
  const engine = await accepted;

  const rtt = await engine.ping();
  const t0 = performance.now();
  let inFlight = 0;
  let opened = 0;
  await new Promise<void>((resolve, reject) => {
    const next = (): void => {
      while (inFlight < 100 && opened < checkCount) {
        opened++;
        inFlight++;
        const st = engine.open({ method: "GET", target: `/check/${opened}`, headers: [] }, { end: true });
        st.on("data", () => {});
        st.once("close", (err) => {
          inFlight--;
          if (err) return reject(err);
          if (opened === checkCount && inFlight === 0) resolve();
          else next();
        });
      }
    };
    next();
  });
  const streamsPerSecond = checkCount / ((performance.now() - t0) / 1000);
  const result = { tunnel: url, rttMs: Number(rtt.toFixed(3)), checkStreams: checkCount, streamsPerSecond: Math.round(streamsPerSecond) };
  if (values.json) process.stdout.write(JSON.stringify(result) + "\n");
  else {
    process.stdout.write(
      `Postern tunnel up\n  engine tunnel endpoint  ${url}\n  connector               connected, RTT ${result.rttMs} ms\n` +
        `  check                   ${checkCount} streams at ${result.streamsPerSecond.toLocaleString("en-US")} streams/s\n` +
        (values.once ? "" : "Press Ctrl-C to stop.\n"),
    );
  }

  const stop = async (): Promise<void> => {
    await connector.drain(5_000);
    (engineSide as Session | null)?.close();
    listener.close();
  };
  if (values.once) {
    await stop();
    return 0;
  }
  await new Promise<void>((resolve) => {
    const onSignal = (): void => void stop().then(resolve);
    process.once("SIGINT", onSignal);
    process.once("SIGTERM", onSignal);
  });
  return 0;
}
