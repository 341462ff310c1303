import { spawn, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { connect, constants as h2, type ClientHttp2Session } from "node:http2";
import { fileURLToPath } from "node:url";
import type { Session } from "../../engine/mux/session.js";
import type { TemplatedApp } from "../../engine/uws/index.js";
import { startTunnelRig, type TunnelRig } from "../../test/fixtures/tunnel-rig.js";
import { median, printTable, type Row } from "../report.js";

/**
 * Loopback: small request/response streams per second and bulk MB/s through one mux
 * connection, beside Node's http2 (one session, same concurrency and payloads) and a raw
 * single-WebSocket pipe, measured in the same run. The opening side runs here; the answering
 * side is a child process, so each side has its own core.
 */
const PEER = fileURLToPath(new URL("./peer.js", import.meta.url));
const CONCURRENCY = 100;
const SMALL_BODY = 128;
const STREAMS_PER_ROUND = 30_000;
const BULK_BYTES = 256 * 1024 * 1024;
const ROUNDS = 3;

function child(...args: string[]): ChildProcess {
  return spawn(process.execPath, [PEER, ...args], { stdio: ["ignore", "pipe", "inherit"] });
}

async function stop(c: ChildProcess): Promise<void> {
  if (c.exitCode !== null) return;
  c.kill();
  await once(c, "exit");
}

/** Runs `count` operations with `concurrency` in flight; returns operations per second. */
async function closedLoop(count: number, concurrency: number, one: () => Promise<void>): Promise<number> {
  let started = 0;
  const t0 = performance.now();
  const worker = async (): Promise<void> => {
    while (started < count) {
      started++;
      await one();
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  return count / ((performance.now() - t0) / 1000);
}

/** Counts what a plain WebSocket pipe receives: the bulk baseline with no framing at all. */
interface RawPipe {
  bytes: number;
  start: number;
  done: (() => void) | null;
}

function rawPipeRoute(pipe: RawPipe): (app: TemplatedApp) => void {
  return (app) =>
    app.ws("/raw", {
      maxPayloadLength: 1024 * 1024,
      idleTimeout: 0,
      open: () => {
        pipe.bytes = 0;
        pipe.start = performance.now();
      },
      message: (_ws, m) => {
        pipe.bytes += m.byteLength;
      },
      close: () => pipe.done?.(),
    });
}

async function muxSession(rig: TunnelRig, bodyBytes: number): Promise<{ session: Session; peer: ChildProcess }> {
  const accepted = rig.nextSession();
  const peer = child("mux-responder", String(rig.port), String(bodyBytes));
  return { session: await accepted, peer };
}

function muxStream(session: Session): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = session.open({ method: "GET", target: "/small", headers: ["host", "bench"] }, { end: true });
    let n = 0;
    s.on("data", (c: Buffer) => (n += c.length));
    s.once("close", (err) => (err ? reject(err) : resolve(n)));
  });
}

async function h2Server(bodyBytes: number): Promise<{ client: ClientHttp2Session; peer: ChildProcess }> {
  const peer = child("h2-server", String(bodyBytes));
  const [line] = (await once(peer.stdout!, "data")) as [Buffer];
  const client = connect(`http://127.0.0.1:${line.toString().trim()}`, { settings: { initialWindowSize: 256 * 1024 } });
  await once(client, "connect");
  client.setLocalWindowSize(4 * 1024 * 1024);
  return { client, peer };
}

function h2Stream(client: ClientHttp2Session): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = client.request({ [h2.HTTP2_HEADER_PATH]: "/small", host: "bench" }, { endStream: true });
    let n = 0;
    req.on("data", (c: Buffer) => (n += c.length));
    req.on("end", () => resolve(n));
    req.on("error", reject);
  });
}

export async function runStreamsBench(): Promise<string> {
  const pipe: RawPipe = { bytes: 0, start: 0, done: null };
  const rig = await startTunnelRig({ routes: rawPipeRoute(pipe) });
  const rates = { mux: [] as number[], h2: [] as number[] };
  const bulk = { mux: [] as number[], h2: [] as number[], raw: [] as number[] };

  const small = await muxSession(rig, SMALL_BODY);
  const h2s = await h2Server(SMALL_BODY);
  await closedLoop(2000, CONCURRENCY, async () => void (await muxStream(small.session))); // warm-up
  await closedLoop(2000, CONCURRENCY, async () => void (await h2Stream(h2s.client)));
  for (let r = 0; r < ROUNDS; r++) {
    rates.mux.push(await closedLoop(STREAMS_PER_ROUND, CONCURRENCY, async () => void (await muxStream(small.session))));
    rates.h2.push(await closedLoop(STREAMS_PER_ROUND, CONCURRENCY, async () => void (await h2Stream(h2s.client))));
  }
  small.session.close();
  h2s.client.close();
  await Promise.all([stop(small.peer), stop(h2s.peer)]);

  const big = await muxSession(rig, BULK_BYTES);
  const h2b = await h2Server(BULK_BYTES);
  for (let r = 0; r < ROUNDS; r++) {
    let t0 = performance.now();
    let n = await muxStream(big.session);
    if (n !== BULK_BYTES) throw new Error(`mux bulk moved ${n} bytes`);
    bulk.mux.push(n / 1e6 / ((performance.now() - t0) / 1000));

    t0 = performance.now();
    n = await h2Stream(h2b.client);
    if (n !== BULK_BYTES) throw new Error(`http2 bulk moved ${n} bytes`);
    bulk.h2.push(n / 1e6 / ((performance.now() - t0) / 1000));

    const done = new Promise<void>((resolve) => (pipe.done = resolve));
    const sender = child("raw-sender", String(rig.port), String(BULK_BYTES));
    await done;
    bulk.raw.push(pipe.bytes / 1e6 / ((performance.now() - pipe.start) / 1000));
    await once(sender, "exit");
  }
  big.session.close();
  h2b.client.close();
  await Promise.all([stop(big.peer), stop(h2b.peer)]);
  rig.close();

  const rows: Row[] = [
    { name: "node:http2, one session", value: median(rates.h2), unit: "streams/s" },
    { name: "postern mux, one connection", value: median(rates.mux), unit: "streams/s", baseline: "node:http2, one session" },
  ];
  const bulkRows: Row[] = [
    { name: "raw WebSocket pipe (uWS <- ws)", value: median(bulk.raw), unit: "MB/s" },
    { name: "node:http2, one stream", value: median(bulk.h2), unit: "MB/s", baseline: "raw WebSocket pipe (uWS <- ws)" },
    { name: "postern mux, one stream", value: median(bulk.mux), unit: "MB/s", baseline: "raw WebSocket pipe (uWS <- ws)" },
  ];
  return (
    printTable(`Small streams: ${CONCURRENCY} in flight, ${SMALL_BODY} B responses, median of ${ROUNDS} x ${STREAMS_PER_ROUND}`, rows) +
    "\n" +
    printTable(`Bulk: ${BULK_BYTES / 1048576} MiB through one stream / pipe, median of ${ROUNDS}`, bulkRows)
  );
}
