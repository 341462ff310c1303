/**
 * Peers that break the tunnel protocol are cut off and logged, at most ten lines a second
 * however many of them there are; the count of the dropped lines comes with the next line.
 */
import { Writable } from "node:stream";
import pino from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import WebSocket from "ws";
import { until } from "../fixtures/lifecycle.js";
import { startRig, type Rig } from "../fixtures/datapath.js";

describe("tunnel port refusals", () => {
  let rig: Rig;
  const lines: Record<string, unknown>[] = [];
  const logger = pino({ level: "info" }, new Writable({
    write(chunk: Buffer, _e, done) {
      for (const line of chunk.toString().split("\n")) if (line.trim()) lines.push(JSON.parse(line) as Record<string, unknown>);
      done();
    },
  }));

  beforeAll(async () => {
    rig = await startRig({ connectors: 0, engine: { logger } });
  }, 30_000);
  afterAll(async () => {
    await rig?.close();
  });

  const garbage = () => new Promise<void>((resolve) => {
    const ws = new WebSocket(`wss://127.0.0.1:${rig.engine.tunnelPort}/tunnel`, { rejectUnauthorized: false });
    ws.on("open", () => ws.send(Buffer.from("this is not a HELLO frame at all")));
    ws.on("error", () => resolve());
    ws.on("close", () => resolve());
  });

  it("logs a protocol refusal with the peer's address, and no more than ten a second under a flood of them", async () => {
    await garbage();
    await until(() => lines.some((l) => String(l.msg).startsWith("tunnel connection closed")), 5000, "a refusal line");
    const first = lines.find((l) => String(l.msg).startsWith("tunnel connection closed"))!;
    expect(first).toMatchObject({ level: 40, remoteAddress: "127.0.0.1", code: expect.stringMatching(/^POSTERN_(HANDSHAKE|PROTOCOL|FRAME_SIZE)$/) });
    await new Promise((r) => setTimeout(r, 1100));
    const before = lines.length;
    const started = Date.now();
    await Promise.all(Array.from({ length: 40 }, garbage));
    const elapsedS = Math.ceil((Date.now() - started) / 1000);
    await new Promise((r) => setTimeout(r, 200));
    const flood = lines.slice(before).filter((l) => l.level === 40);
    expect(flood.length).toBeGreaterThan(0);
    expect(flood.length).toBeLessThanOrEqual(10 * (elapsedS + 1));
    // The connections after the flood's budget were still cut off, and the next line says how many went unlogged.
    await new Promise((r) => setTimeout(r, 1100));
    await garbage();
    await until(() => lines.slice(before).some((l) => typeof l.dropped === "number" && (l.dropped as number) > 0), 3000, "a line with the dropped count");
  }, 30_000);
});
