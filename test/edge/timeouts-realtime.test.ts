import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { edgeRequest, rawExchange, startBackend, startRig, type Backend, type Rig } from "../fixtures/datapath.js";
import { until } from "../fixtures/lifecycle.js";

// The real clock, once each: the wiring of the 85 s and 180 s backend timeouts end to end.
// Both run at the same time so the file takes ~3 minutes, alongside the other test files.
describe("backend timeouts in real time", () => {
  let rig: Rig;
  let backend: Backend;
  const aborts = new Map<string, number>();

  beforeAll(async () => {
    backend = await startBackend((req) => req.socket.once("close", () => aborts.set(req.url!, Date.now())));
    rig = await startRig();
  }, 30_000);
  afterAll(async () => {
    await rig.close();
    await backend.close();
  });

  it("504 at 85 s for a default app and at 180 s for a long one; the backend sees both aborts", async () => {
    const a = await rig.publish({ name: "Slow", internalUrl: `${backend.origin}/default/` });
    const b = await rig.publish({ name: "Slower", internalUrl: `${backend.origin}/long/`, backendTimeout: "long" });
    const timed = async (host: string) => {
      const start = Date.now();
      const res = await edgeRequest(rig, host, "/never");
      return { status: res.status, seconds: (Date.now() - start) / 1000, start };
    };
    const [short, long] = await Promise.all([timed(a.host), timed(b.host)]);
    expect(short.status).toBe(504);
    expect(Math.abs(short.seconds - 85)).toBeLessThanOrEqual(1);
    expect(long.status).toBe(504);
    expect(Math.abs(long.seconds - 180)).toBeLessThanOrEqual(1);
    // The abort reaches the backend just after the 504 reaches the user.
    await until(() => aborts.has("/long/never"), 5000, "the backend seeing the second abort");
    expect(Math.abs((aborts.get("/default/never")! - short.start) / 1000 - 85)).toBeLessThanOrEqual(1.5);
    expect(Math.abs((aborts.get("/long/never")! - long.start) / 1000 - 180)).toBeLessThanOrEqual(1.5);
  }, 200_000);

  it("closes a connection whose headers trickle in (slowloris) without forwarding anything", async () => {
    const { host } = await rig.publish({ name: "Loris", internalUrl: `${backend.origin}/loris/` });
    const started = Date.now();
    // Headers never finish: the header deadline (10 s) answers 408 and closes the connection.
    const answer = await rawExchange(rig.engine.edge.httpPort!, `GET /x HTTP/1.1\r\nHost: ${host}\r\nX-Slow: `, 15_000);
    expect(answer).toMatch(/^HTTP\/1\.1 408 /);
    expect(answer).toMatch(/connection: close/i);
    expect(Date.now() - started).toBeGreaterThanOrEqual(9_500);
    expect(Date.now() - started).toBeLessThan(12_500);
    expect(backend.seen.filter((r) => r.url.startsWith("/loris"))).toEqual([]);
  }, 30_000);
});
