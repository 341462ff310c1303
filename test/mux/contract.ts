import { once } from "node:events";
import { describe, expect, it } from "vitest";
import { WireError } from "../../engine/protocol/constants.js";
import type { MuxConfigInput } from "../../engine/mux/config.js";
import type { Session } from "../../engine/mux/session.js";
import type { Stream } from "../../engine/mux/stream.js";
import { pump } from "../fixtures/pump.js";
import { collect } from "./helpers.js";

/** Makes a connected, ready pair: `server` (engine role) and `client` (connector role). */
export type PairFactory = (client?: MuxConfigInput) => Promise<{ server: Session; client: Session }>;

const GET = { method: "GET", target: "/", headers: ["host", "app"] };

/**
 * Behaviour every transport must give a session the same way (hono's common.case pattern):
 * run by session.test.ts over the memory pair and by tunnel.test.ts over uWS + ws.
 */
export function runSessionContract(name: string, create: PairFactory): void {
  describe(`session contract over ${name}`, () => {
    it("carries a request and response with bodies both ways", async () => {
      const { server, client } = await create();
      client.on("stream", (s: Stream) => {
        s.respond({ status: 200, headers: ["x-path", s.requestHead.target] });
        s.on("data", (c: Buffer) => s.write(c));
        s.on("end", () => s.end());
      });
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
      await new Promise((r) => setTimeout(r, 20));
      expect(client.activeStreams).toBe(0);
      client.close();
    });

    it("a paused reader never holds more than its window; the writer sees backpressure", async () => {
      const { server, client } = await create();
      const total = 4 * 1024 * 1024;
      let waits: Promise<number> = Promise.resolve(0);
      client.on("stream", (s: Stream) => {
        s.respond({ status: 200, headers: [] });
        waits = pump(s, total, 16 * 1024);
      });
      const st = server.open(GET, { end: true });
      st.pause();
      await once(st, "response");
      await new Promise((r) => setTimeout(r, 200));
      // The reading side's own initialStreamWindow bounds what it holds.
      expect(st.bufferedBytes).toBeGreaterThan(0);
      expect(st.bufferedBytes).toBeLessThanOrEqual(server.config.initialStreamWindow);
      const done = collect(st);
      st.resume();
      const { body, err } = await done;
      expect(err).toBeUndefined();
      expect(body.length).toBe(total);
      expect(await waits).toBeGreaterThan(0);
      expect(server.bufferedBytes).toBe(0);
      client.close();
    });

    it("a writer blocked by the transport gets 'drain' once the transport drains", async () => {
      // A 1-byte high-water mark: every flush leaves the transport "full", so a window's last
      // chunk often empties the stream's queue while the transport is still blocked.
      const { server, client } = await create({ transportHighWater: 1 });
      const total = 4 * 1024 * 1024;
      client.on("stream", (s: Stream) => {
        s.respond({ status: 200, headers: [] });
        void pump(s, total, 16 * 1024);
      });
      const { body, err } = await collect(server.open(GET, { end: true }));
      expect(err).toBeUndefined();
      expect(body.length).toBe(total);
      client.close();
    });

    it("resets travel both ways and fail only that stream", async () => {
      const { server, client } = await create();
      const inbound: Stream[] = [];
      client.on("stream", (s: Stream) => inbound.push(s));
      const a = server.open(GET);
      const b = server.open(GET);
      while (inbound.length < 2) await new Promise((r) => setTimeout(r, 5));
      const aClosed = collect(inbound[0]!);
      a.reset(WireError.CANCEL);
      expect((await aClosed).err).toMatchObject({ code: "POSTERN_STREAM_RESET", wireCode: WireError.CANCEL });
      const bClosed = collect(b);
      inbound[1]!.reset(WireError.BACKEND_TIMEOUT);
      expect((await bClosed).err).toMatchObject({ code: "POSTERN_STREAM_RESET", wireCode: WireError.BACKEND_TIMEOUT });
      expect(server.closed || client.closed).toBe(false);
      expect(server.activeStreams).toBe(0);
      client.close();
    });

    it("GOAWAY drains: in-flight streams finish, new ones are refused both ways, then the session closes", async () => {
      const { server, client } = await create();
      const inbound: Stream[] = [];
      client.on("stream", (s: Stream) => inbound.push(s));
      const inflight = server.open(GET, { end: true });
      while (inbound.length < 1) await new Promise((r) => setTimeout(r, 5));
      const clientSawGoaway = once(client, "goaway");
      const drained = server.drain(5000);
      const [info] = await clientSawGoaway;
      expect(info).toMatchObject({ code: WireError.NO_ERROR });
      expect(() => server.open(GET)).toThrow(expect.objectContaining({ code: "POSTERN_GOAWAY", retryable: true }));
      expect(() => client.open(GET)).toThrow(expect.objectContaining({ code: "POSTERN_GOAWAY", retryable: true }));
      const done = collect(inflight);
      inbound[0]!.respond({ status: 200, headers: [] });
      inbound[0]!.end(Buffer.from("late but whole"));
      const { body, err } = await done;
      expect(err).toBeUndefined();
      expect(body.toString()).toBe("late but whole");
      await drained;
      expect(server.closed).toBe(true);
      if (!client.closed) await once(client, "close");
    });

    it("measures RTT with PING", async () => {
      const { server, client } = await create();
      const rtt = await server.ping();
      expect(rtt).toBeGreaterThan(0);
      expect(server.rttMs).toBe(rtt);
      client.close();
    });
  });
}
