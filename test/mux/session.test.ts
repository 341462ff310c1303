import { describe, expect, it } from "vitest";
import { FrameType, WireError } from "../../engine/protocol/constants.js";
import { encodeRequestHead } from "../../engine/protocol/heads.js";
import type { MuxConfigInput } from "../../engine/mux/config.js";
import { Session } from "../../engine/mux/session.js";
import type { Stream } from "../../engine/mux/stream.js";
import { memoryPair } from "./memory-transport.js";
import { pump } from "../fixtures/pump.js";
import { runSessionContract } from "./contract.js";
import { CLIENT_SETTINGS, RawPeer, closeError, collect, serverWithRawClient, sessionPair } from "./helpers.js";

const GET = { method: "GET", target: "/", headers: ["host", "app"] };

runSessionContract("a memory transport", (client) => sessionPair({}, client));

const WINDOW = 256 * 1024;

/**
 * Connection window = one stream window, and every stream answers 1 MiB. Stream A is opened
 * and paused: without early connection credit its buffered window would use the whole
 * connection window and no other stream could move.
 */
async function pausedStreamA(server: MuxConfigInput) {
  const cfg = { initialStreamWindow: WINDOW, connectionWindow: WINDOW };
  const pair = await sessionPair({ ...cfg, ...server }, cfg);
  pair.client.on("stream", (s: Stream) => {
    s.respond({ status: 200, headers: [] });
    void pump(s, 1024 * 1024, 16 * 1024);
  });
  const a = pair.server.open(GET, { end: true });
  a.pause();
  await new Promise((r) => setTimeout(r, 50));
  return { server: pair.server, a };
}

describe("session over a memory transport", () => {
  it("refuses streams past the peer's concurrency limit, retryably", async () => {
    const { server, client } = await sessionPair({}, { maxConcurrentStreams: 2 });
    client.on("stream", () => {});
    server.open(GET);
    server.open(GET);
    expect(server.availableStreams).toBe(0);
    expect(() => server.open(GET)).toThrow(expect.objectContaining({ code: "POSTERN_STREAM_REFUSED", retryable: true }));
  });

  it("one paused reader does not stall the others while buffering stays under the session budget", async () => {
    const { server, a } = await pausedStreamA({});
    const b = await collect(server.open(GET, { end: true }));
    expect(b.body.length).toBe(1024 * 1024);
    expect(a.bufferedBytes).toBe(WINDOW);
    const rest = collect(a);
    a.resume();
    expect((await rest).body.length).toBe(1024 * 1024);
  });

  it("past the session budget, connection credit waits for readers: buffering stays bounded", async () => {
    const { server, a } = await pausedStreamA({ maxSessionBuffer: 0 });
    const b = server.open(GET, { end: true });
    let bBytes = 0;
    b.on("data", (c: Buffer) => (bBytes += c.length));
    await new Promise((r) => setTimeout(r, 200));
    expect(bBytes).toBe(0); // the whole connection window sits in A's buffer
    expect(server.bufferedBytes).toBeLessThanOrEqual(WINDOW);
    const restB = new Promise((r) => b.once("close", r));
    a.on("data", () => {});
    a.resume();
    await restB;
    expect(bBytes).toBe(1024 * 1024);
  });

  it("SETTINGS lowers the concurrency the peer may use, and is acknowledged", async () => {
    const { server, client } = await sessionPair();
    client.on("stream", () => {});
    expect(server.availableStreams).toBe(client.config.maxConcurrentStreams);
    client.updateSettings({ maxConcurrentStreams: 1 });
    await client.ping(); // the SETTINGS went before the PING, so the server has applied it
    expect(server.availableStreams).toBe(1);
    server.open(GET);
    expect(() => server.open(GET)).toThrow(expect.objectContaining({ code: "POSTERN_STREAM_REFUSED" }));
    expect(client.closed || server.closed).toBe(false);
  });

  it("answers REFUSED_STREAM to a peer that ignores the limit", async () => {
    const { server, raw } = await serverWithRawClient({ maxConcurrentStreams: 1 });
    const seen: Stream[] = [];
    server.on("stream", (s: Stream) => seen.push(s));
    raw.send((w) => {
      w.frame(FrameType.OPEN, 0, 2, encodeRequestHead(GET));
      w.frame(FrameType.OPEN, 0, 4, encodeRequestHead(GET));
    });
    const reset = await raw.waitFor((f) => f.type === FrameType.RESET);
    expect(reset.id).toBe(4);
    expect(reset.payload.readUInt32BE(0)).toBe(WireError.REFUSED_STREAM);
    expect(seen.map((s) => s.id)).toEqual([2]);
    expect(server.closed).toBe(false);
  });

  it("declares a silent peer dead after two missed pings", async () => {
    const [a, b] = memoryPair();
    const s = new Session(a, { role: "server", config: { pingIntervalMs: 30 } });
    const raw = new RawPeer(b);
    await raw.waitFor((f) => f.type === FrameType.HELLO);
    raw.hello();
    await s.ready;
    const err = await closeError(s);
    expect(err?.code).toBe("POSTERN_PING_TIMEOUT");
    expect(raw.frames.filter((f) => f.type === FrameType.PING).length).toBeGreaterThanOrEqual(2);
  });

  it("fails the handshake on no HELLO, and when the verifier refuses the peer", async () => {
    const [a, b] = memoryPair();
    const s = new Session(a, { role: "server", config: { helloTimeoutMs: 50 } });
    new RawPeer(b);
    expect((await closeError(s))?.code).toBe("POSTERN_HANDSHAKE");

    const [c, d] = memoryPair();
    const server = new Session(c, { role: "server", verifyPeer: (h) => { if (h.ext.token !== "ok") throw new Error("bad token"); } });
    const client = new Session(d, { role: "client", helloExt: () => ({ token: "nope" }) });
    const [se, ce] = await Promise.all([closeError(server), closeError(client)]);
    expect(se?.code).toBe("POSTERN_HANDSHAKE");
    expect(se?.message).toMatch(/bad token/);
    expect(ce).toMatchObject({ code: "POSTERN_HANDSHAKE", wireCode: WireError.HANDSHAKE_FAILED });
    await expect(server.ready).rejects.toThrow(/bad token/);
  });

  it("lets the client answer a challenge from the server's HELLO", async () => {
    const [a, b] = memoryPair();
    const server = new Session(a, {
      role: "server",
      helloExt: () => ({ challenge: "n-123" }),
      verifyPeer: (h) => { if (h.ext.answer !== "signed:n-123") throw new Error("wrong answer"); },
    });
    const client = new Session(b, { role: "client", helloExt: (peer) => ({ answer: `signed:${String(peer?.ext.challenge)}` }) });
    await Promise.all([server.ready, client.ready]);
    expect(client.peerHello?.ext.challenge).toBe("n-123");
  });
});

describe("protocol violations close the connection with the right code", () => {
  const open = (id: number) => (w: import("../../engine/protocol/frame.js").FrameWriter) => w.frame(FrameType.OPEN, 0, id, encodeRequestHead(GET));
  const cases: [string, (raw: RawPeer) => void, string, number][] = [
    ["DATA for an unknown stream", (raw) => raw.send((w) => w.frame(FrameType.DATA, 0, 8, Buffer.alloc(1))), "POSTERN_PROTOCOL", WireError.PROTOCOL_ERROR],
    ["OPEN with the server's parity", (raw) => raw.send(open(3)), "POSTERN_PROTOCOL", WireError.PROTOCOL_ERROR],
    ["OPEN reusing an id", (raw) => raw.send((w) => { open(4)(w); open(2)(w); }), "POSTERN_PROTOCOL", WireError.PROTOCOL_ERROR],
    ["a frame larger than maxFrameSize", (raw) => raw.send((w) => { open(2)(w); w.frame(FrameType.DATA, 0, 2, Buffer.alloc(64 * 1024 + 1)); }), "POSTERN_FRAME_SIZE", WireError.FRAME_SIZE_ERROR],
    ["DATA beyond the stream window", (raw) => raw.send((w) => { open(2)(w); for (let i = 0; i < 5; i++) w.frame(FrameType.DATA, 0, 2, Buffer.alloc(64 * 1024)); }), "POSTERN_FLOW_CONTROL", WireError.FLOW_CONTROL_ERROR],
    ["a window overflow", (raw) => raw.send((w) => { w.frameU32(FrameType.WINDOW_UPDATE, 0, 0x7fffffff); }), "POSTERN_FLOW_CONTROL", WireError.FLOW_CONTROL_ERROR],
    ["a zero window increment", (raw) => raw.send((w) => w.frameU32(FrameType.WINDOW_UPDATE, 0, 0)), "POSTERN_PROTOCOL", WireError.PROTOCOL_ERROR],
    ["a second HELLO", (raw) => raw.hello(), "POSTERN_PROTOCOL", WireError.PROTOCOL_ERROR],
    ["a truncated-then-garbage stream", (raw) => raw.sendRaw(Buffer.from([0, 0, 4, 0x0f, 0, 0, 0, 0, 0])), "POSTERN_PROTOCOL", WireError.PROTOCOL_ERROR],
    ["an open+reset flood", (raw) => raw.send((w) => {
      for (let i = 0; i < 600; i++) { open(2 + 2 * i)(w); w.frameU32(FrameType.RESET, 2 + 2 * i, WireError.CANCEL); }
    }), "POSTERN_FLOOD", WireError.ENHANCE_YOUR_CALM],
    ["a ping flood", (raw) => raw.send((w) => { for (let i = 0; i < 300; i++) w.frame(FrameType.PING, 0, 0, Buffer.alloc(8)); }), "POSTERN_FLOOD", WireError.ENHANCE_YOUR_CALM],
  ];
  it.each(cases)("%s", async (_name, attack, code, wire) => {
    const { server, raw } = await serverWithRawClient({}, CLIENT_SETTINGS);
    server.on("stream", () => {});
    const closed = closeError(server);
    attack(raw);
    expect((await closed)?.code).toBe(code);
    expect(await raw.goawayCode()).toBe(wire);
  });

  it("a GOAWAY with an error code closes the connection even if the peer leaves it open", async () => {
    const { server, raw } = await serverWithRawClient({}, CLIENT_SETTINGS);
    const closed = closeError(server);
    raw.send((w) => {
      const p = Buffer.alloc(8);
      p.writeUInt32BE(WireError.INTERNAL_ERROR, 4);
      w.frame(FrameType.GOAWAY, 0, 0, p);
    });
    expect((await closed)?.code).toBe("POSTERN_TRANSPORT_CLOSED");
    await raw.waitFor(() => false, 1000).catch(() => {});
    expect(raw.closed).toBe(true);
  });

  it("a reset rate under the threshold is tolerated", async () => {
    const { server, raw } = await serverWithRawClient({}, CLIENT_SETTINGS);
    server.on("stream", (s: Stream) => s.respond({ status: 200, headers: [] }, { end: true }));
    raw.send((w) => {
      for (let i = 0; i < 600; i++) {
        const id = 2 + 2 * i;
        w.frame(FrameType.OPEN, 0, id, encodeRequestHead(GET));
        if (i % 3 === 0) w.frameU32(FrameType.RESET, id, WireError.CANCEL);
        else w.frame(FrameType.END, 0, id);
      }
    });
    await raw.waitFor((f) => f.type === FrameType.END && f.id === 2 + 2 * 599);
    expect(server.closed).toBe(false);
  });
});

describe("stream window auto-tuning", () => {
  const SMALL = 64 * 1024;
  const MAX = 512 * 1024;

  /** A session whose peer answers every stream with `bytes` of body. */
  async function answering(server: MuxConfigInput, bytes: number) {
    const pair = await sessionPair({ initialStreamWindow: SMALL, ...server });
    pair.client.on("stream", (s: Stream) => {
      s.respond({ status: 200, headers: [] });
      void pump(s, bytes, 16 * 1024);
    });
    return pair;
  }

  it("a stream whose reader keeps up doubles its window up to maxStreamWindow; the session's next streams start there", async () => {
    const { server } = await answering({ maxStreamWindow: MAX }, 4 * 1024 * 1024);
    const first = server.open(GET, { end: true });
    expect(first.receiveWindow).toBe(SMALL);
    const { body, err } = await collect(first);
    expect(err).toBeUndefined();
    expect(body.length).toBe(4 * 1024 * 1024);
    expect(first.receiveWindow).toBe(MAX);
    const next = server.open(GET, { end: true });
    expect(next.receiveWindow).toBe(MAX);
    expect((await collect(next)).body.length).toBe(4 * 1024 * 1024);
  });

  it("a reader that stops holds at most the window it grew to, never more than maxStreamWindow", async () => {
    const { server } = await answering({ maxStreamWindow: MAX }, 4 * 1024 * 1024);
    await collect(server.open(GET, { end: true })); // tunes the session
    const st = server.open(GET, { end: true });
    st.pause();
    await new Promise((r) => setTimeout(r, 200));
    expect(st.bufferedBytes).toBeGreaterThan(SMALL); // the grown window is in use...
    expect(st.bufferedBytes).toBeLessThanOrEqual(MAX); // ...and bounds what the stream holds
    expect(st.receiveWindow).toBe(MAX);
    const rest = collect(st);
    st.resume();
    expect((await rest).body.length).toBe(4 * 1024 * 1024);
  });

  it("a paused reader never grows its window", async () => {
    const { server } = await answering({ maxStreamWindow: MAX }, 1024 * 1024);
    const st = server.open(GET, { end: true });
    st.pause();
    await new Promise((r) => setTimeout(r, 100));
    expect(st.bufferedBytes).toBe(SMALL);
    // Read a little at a time: the reader never catches up with what is waiting.
    st.on("data", () => {
      st.pause();
      setImmediate(() => st.resume());
    });
    st.resume();
    await new Promise((r) => st.once("close", r));
    expect(st.receiveWindow).toBe(SMALL);
  });

  it("maxStreamWindow at or below the initial window turns growth off", async () => {
    const { server } = await answering({ maxStreamWindow: 0 }, 2 * 1024 * 1024);
    const st = server.open(GET, { end: true });
    expect((await collect(st)).body.length).toBe(2 * 1024 * 1024);
    expect(st.receiveWindow).toBe(SMALL);
    expect(server.open(GET, { end: true }).receiveWindow).toBe(SMALL);
  });
});
