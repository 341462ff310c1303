import { execFile } from "node:child_process";
import { readFileSync } from "node:fs";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { FrameType, WireError } from "../../engine/protocol/constants.js";
import { encodeRequestHead } from "../../engine/protocol/heads.js";
import type { Session } from "../../engine/mux/session.js";
import type { Stream } from "../../engine/mux/stream.js";
import { connectTransport, dialTunnel } from "../../connector/transport.js";
import { makeTestPki } from "../fixtures/certs.js";
import { startTunnelRig, type TunnelRig } from "../fixtures/tunnel-rig.js";
import type { MuxConfigInput } from "../../engine/mux/config.js";
import { runSessionContract } from "../mux/contract.js";
import { RawPeer, collect } from "../mux/helpers.js";

let contractRig: Promise<TunnelRig> | null = null;
/** One plain-WebSocket rig for the contract suite, started on first use. */
function sharedRig(): Promise<TunnelRig> {
  contractRig ??= startTunnelRig();
  return contractRig;
}

const GET = { method: "GET", target: "/", headers: [] as string[] };

function serveTargets(client: Session): void {
  client.on("stream", (s: Stream) => {
    s.respond({ status: 200, headers: ["content-type", "text/plain"] });
    s.end(Buffer.from(`body of ${s.requestHead.target}`));
  });
}

describe("mux over a real uWebSockets.js server and ws client on 127.0.0.1", () => {
  let rig: TunnelRig;
  beforeAll(async () => {
    rig = await startTunnelRig({ session: { config: { maxConcurrentStreams: 100 } } });
  });
  afterAll(() => rig.close());

  async function connect(config: MuxConfigInput = {}) {
    const accepted = rig.nextSession();
    const client = await dialTunnel({ url: `ws://127.0.0.1:${rig.port}/tunnel`, session: { config } });
    return { client, server: await accepted };
  }

  it("completes 10,000 concurrent streams on one connection", async () => {
    const { client, server } = await connect({ maxConcurrentStreams: 10_000 });
    serveTargets(client);
    const results = [];
    for (let i = 0; i < 10_000; i++) {
      const s = server.open({ method: "GET", target: `/item/${i}`, headers: [] }, { end: true });
      results.push(collect(s).then((r) => ({ i, ...r, status: s.responseHead?.status })));
    }
    expect(server.activeStreams).toBe(10_000);
    const done = await Promise.all(results);
    for (const r of done) {
      expect(r.err).toBeUndefined();
      expect(r.status).toBe(200);
      expect(r.body.toString()).toBe(`body of /item/${r.i}`);
    }
    expect(server.activeStreams).toBe(0);
    client.close();
  });

  it.each([
    ["a frame for an unknown stream", (raw: RawPeer) => raw.send((w) => w.frame(FrameType.DATA, 0, 6, Buffer.alloc(10))), WireError.PROTOCOL_ERROR],
    ["a window overflow", (raw: RawPeer) => raw.send((w) => w.frameU32(FrameType.WINDOW_UPDATE, 0, 0x7fffffff)), WireError.FLOW_CONTROL_ERROR],
    ["an oversized frame", (raw: RawPeer) => raw.send((w) => w.frame(FrameType.DATA, 0, 2, Buffer.alloc(70_000))), WireError.FRAME_SIZE_ERROR],
    ["an open+reset flood", (raw: RawPeer) => raw.send((w) => {
      for (let i = 0; i < 600; i++) {
        w.frame(FrameType.OPEN, 0, 2 + 2 * i, encodeRequestHead(GET));
        w.frameU32(FrameType.RESET, 2 + 2 * i, WireError.CANCEL);
      }
    }), WireError.ENHANCE_YOUR_CALM],
  ])("a peer that sends %s is closed with a protocol error; the server keeps serving others", async (_n, attack, code) => {
    const good = await connect();
    serveTargets(good.client);
    const transport = await connectTransport({ url: `ws://127.0.0.1:${rig.port}/tunnel` });
    const raw = new RawPeer(transport);
    await raw.waitFor((f) => f.type === FrameType.HELLO);
    raw.hello();
    await new Promise((r) => setTimeout(r, 20));
    attack(raw);
    expect(await raw.goawayCode()).toBe(code);
    await raw.waitFor(() => false, 2000).catch(() => {});
    expect(raw.closed).toBe(true);
    // The other session is untouched.
    const r = await collect(good.server.open({ method: "GET", target: "/still-here", headers: [] }, { end: true }));
    expect(r.body.toString()).toBe("body of /still-here");
    good.client.close();
  });

  it("moves 1 GiB through one stream with RSS growth under 64 MiB", async () => {
    const script = new URL("../../dist/test/fixtures/bulk-transfer.js", import.meta.url);
    const { stdout } = await promisify(execFile)(process.execPath, [script.pathname, String(1024 ** 3)], { timeout: 120_000 });
    const r = JSON.parse(stdout) as { received: number; growth: number; mbPerSecond: number; maxBuffered: number };
    expect(r.received).toBe(1024 ** 3);
    expect(r.growth).toBeLessThan(64 * 1024 * 1024);
    console.log(`1 GiB through one stream: ${r.mbPerSecond.toFixed(0)} MB/s, RSS growth ${(r.growth / 1048576).toFixed(1)} MiB`);
  }, 150_000);
});

runSessionContract("a uWS server and a ws client on 127.0.0.1", async (client) => {
  const rig = await sharedRig();
  const accepted = rig.nextSession();
  const c = await dialTunnel({ url: `ws://127.0.0.1:${rig.port}/tunnel`, session: { config: client ?? {} } });
  return { client: c, server: await accepted };
});

describe("tunnel over TLS with client certificates (uWS SSLApp)", () => {
  const pki = makeTestPki();
  let rig: TunnelRig;
  beforeAll(async () => {
    rig = await startTunnelRig({ tls: { cert_file_name: pki.serverCert, key_file_name: pki.serverKey, ca_file_name: pki.caCert } });
  });
  afterAll(() => rig.close());
  const url = () => `wss://127.0.0.1:${rig.port}/tunnel`;

  it("accepts a client certificate from the tenant CA", async () => {
    const accepted = rig.nextSession();
    const client = await dialTunnel({
      url: url(),
      tls: { cert: readFileSync(pki.clientCert), key: readFileSync(pki.clientKey), ca: readFileSync(pki.caCert) },
      session: {},
    });
    const server = await accepted;
    serveTargets(client);
    expect((await collect(server.open({ method: "GET", target: "/tls", headers: [] }, { end: true }))).body.toString()).toBe("body of /tls");
    client.close();
  });

  it("refuses a client certificate from another CA at the handshake", async () => {
    await expect(
      dialTunnel({
        url: url(),
        tls: { cert: readFileSync(pki.rogueCert), key: readFileSync(pki.rogueKey), ca: readFileSync(pki.caCert) },
        session: {},
        connectTimeoutMs: 3000,
      }),
    ).rejects.toMatchObject({ code: "POSTERN_TRANSPORT_CLOSED" });
  });

  it("refuses a server whose certificate the client does not trust", async () => {
    await expect(
      dialTunnel({ url: url(), tls: { cert: readFileSync(pki.clientCert), key: readFileSync(pki.clientKey) }, session: {}, connectTimeoutMs: 3000 }),
    ).rejects.toMatchObject({ code: "POSTERN_TRANSPORT_CLOSED" });
  });
});
