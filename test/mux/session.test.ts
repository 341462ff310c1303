import { once } from "node:events";
import { describe, expect, it } from "vitest";
import { FrameType, WireError } from "../../engine/protocol/constants.js";
import { encodeRequestHead } from "../../engine/protocol/heads.js";
import { Session } from "../../engine/mux/session.js";
import type { Stream } from "../../engine/mux/stream.js";
import { memoryPair } from "../../engine/mux/transport.js";
import { CLIENT_SETTINGS, RawPeer, closeError, collect, serverWithRawClient, sessionPair } from "./helpers.js";

const GET = { method: "GET", target: "/", headers: ["host", "app"] };

function echo(client: Session): void {
  client.on("stream", (s: Stream) => {
    s.respond({ status: 200, headers: ["x-path", s.requestHead.target] });
    s.on("data", (c: Buffer) => s.write(c));
    s.on("end", () => s.end());
  });
}

describe("session over a memory transport", () => {
  it("carries a request and response with bodies both ways", async () => {
    const { server, client } = await sessionPair();
    echo(client);
    const st = server.open({ method: "POST", target: "/echo", headers: [] });
    const head = once(st, "response");
    const done = collect(st);
    st.write(Buffer.from("hello "));
    st.end(Buffer.from("world"));
    expect((await head)[0]).toEqual({ status: 200, headers: ["x-path", "/echo"] });
    const { body, err } = await done;
    expect(err).toBeUndefined();
    expect(body.toString()).toBe("hello world");
    expect(server.activeStreams).toBe(0);
    await new Promise((r) => setImmediate(r));
    expect(client.activeStreams).toBe(0);
  });

  it("a paused reader never holds more than its window; the writer sees backpressure", async () => {
    const window = 64 * 1024;
    const { server, client } = await sessionPair({ initialStreamWindow: window }, { initialStreamWindow: window });
    const total = 2 * 1024 * 1024;
    let writerBlocked = 0;
    client.on("stream", (s: Stream) => {
      s.respond({ status: 200, headers: [] });
      const chunk = Buffer.alloc(16 * 1024, 1);
      let sent = 0;
      const pump = (): void => {
        while (sent < total) {
          sent += chunk.length;
          if (!s.write(chunk)) {
            writerBlocked++;
            s.once("drain", pump);
            return;
          }
        }
        s.end();
      };
      pump();
    });
    const st = server.open(GET, { end: true });
    st.pause();
    await once(st, "response");
    await new Promise((r) => setTimeout(r, 100));
    expect(st.bufferedBytes).toBeGreaterThan(0);
    expect(st.bufferedBytes).toBeLessThanOrEqual(window);
    expect(writerBlocked).toBeGreaterThan(0);
    const done = collect(st);
    st.resume();
    const { body, err } = await done;
    expect(err).toBeUndefined();
    expect(body.length).toBe(total);
    expect(server.bufferedBytes).toBe(0);
  });

  it("refuses streams past the peer's concurrency limit, retryably", async () => {
    const { server, client } = await sessionPair({}, { maxConcurrentStreams: 2 });
    client.on("stream", () => {});
    server.open(GET);
    server.open(GET);
    expect(server.availableStreams).toBe(0);
    expect(() => server.open(GET)).toThrow(expect.objectContaining({ code: "POSTERN_STREAM_REFUSED", retryable: true }));
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

  it("resets travel both ways and fail only that stream", async () => {
    const { server, client } = await sessionPair();
    const inbound: Stream[] = [];
    client.on("stream", (s: Stream) => inbound.push(s));
    const a = server.open(GET);
    const b = server.open(GET);
    await new Promise((r) => setTimeout(r, 10));
    const aClosed = collect(inbound[0]!);
    a.reset(WireError.CANCEL);
    expect((await aClosed).err).toMatchObject({ code: "POSTERN_STREAM_RESET", wireCode: WireError.CANCEL });
    const bClosed = collect(b);
    inbound[1]!.reset(WireError.BACKEND_TIMEOUT);
    expect((await bClosed).err).toMatchObject({ code: "POSTERN_STREAM_RESET", wireCode: WireError.BACKEND_TIMEOUT });
    expect(server.closed || client.closed).toBe(false);
    expect(server.activeStreams).toBe(0);
  });

  it("GOAWAY lets in-flight streams finish and refuses new ones", async () => {
    const { server, client } = await sessionPair();
    const inbound: Stream[] = [];
    client.on("stream", (s: Stream) => inbound.push(s));
    const inflight = server.open(GET, { end: true });
    await new Promise((r) => setTimeout(r, 10));
    const goaway = once(server, "goaway");
    const drained = client.drain(5000);
    const [info] = await goaway;
    expect(info.lastStreamId).toBe(inflight.id);
    expect(() => server.open(GET)).toThrow(expect.objectContaining({ code: "POSTERN_GOAWAY", retryable: true }));
    // The in-flight stream still completes.
    const done = collect(inflight);
    inbound[0]!.respond({ status: 200, headers: [] });
    inbound[0]!.end(Buffer.from("late but whole"));
    const { body, err } = await done;
    expect(err).toBeUndefined();
    expect(body.toString()).toBe("late but whole");
    await drained;
    expect(client.closed).toBe(true);
  });

  it("measures RTT with PING", async () => {
    const { server } = await sessionPair();
    const rtt = await server.ping();
    expect(rtt).toBeGreaterThanOrEqual(0);
    expect(server.rttMs).toBe(rtt);
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
