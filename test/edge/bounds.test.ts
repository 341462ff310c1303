import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { api } from "../fixtures/control.js";
import { until } from "../fixtures/lifecycle.js";
import { edgeRequest, startBackend, startRig, type Backend, type Rig } from "../fixtures/datapath.js";

describe("bounded resources at the edge", () => {
  let rig: Rig;
  let backend: Backend;
  beforeAll(async () => {
    backend = await startBackend((req, res) => {
      const delay = Number(new URL(req.url!, "http://x").searchParams.get("delay") ?? "0");
      setTimeout(() => res.writeHead(200).end("ok"), delay);
    });
    // One tunnel stream in total (one connection that accepts one stream), a queue of 2 waiting 400 ms, 4 requests in flight.
    rig = await startRig({ connectors: 0, engine: { limits: { maxQueued: 2, maxQueueWaitMs: 400, maxInflight: 4 } } });
    await rig.addConnector("narrow", { connectionsPerEngine: 1, mux: { maxConcurrentStreams: 1 } });
  }, 30_000);
  afterAll(async () => {
    await rig.close();
    await backend.close();
  });

  it("queues bodiless requests while every stream is busy, up to the bound, then answers 503 at once", async () => {
    const { host } = await rig.publish({ name: "Narrow", internalUrl: `${backend.origin}/` });
    const first = edgeRequest(rig, host, "/?delay=300");
    await until(() => rig.engine.edge.state.inflight === 1, 2000, "the first request in flight");
    const queued = [edgeRequest(rig, host, "/"), edgeRequest(rig, host, "/")];
    await until(() => rig.engine.edge.state.queue.length === 2, 2000, "two queued");
    const started = Date.now();
    const refused = await edgeRequest(rig, host, "/");
    expect(refused.status).toBe(503);
    expect(Date.now() - started).toBeLessThan(200);
    expect(refused.text).toMatch(/Too many requests are in progress/);
    expect((await first).status).toBe(200);
    expect((await Promise.all(queued)).map((r) => r.status)).toEqual([200, 200]);
  });

  it("answers 503 at once past the engine's in-flight bound", async () => {
    const { host } = await rig.publish({ name: "Full", internalUrl: `${backend.origin}/full/` });
    const state = rig.engine.edge.state;
    state.inflight += state.limits.maxInflight; // as if 4 more requests were in flight
    try {
      const res = await edgeRequest(rig, host, "/");
      expect(res.status).toBe(503);
      expect(backend.seen.some((r) => r.url.startsWith("/full"))).toBe(false);
    } finally {
      state.inflight -= state.limits.maxInflight;
    }
    expect((await edgeRequest(rig, host, "/")).status).toBe(200);
  });

  it("gives up on a queued request after the queue wait", async () => {
    const { host } = await rig.publish({ name: "Waits", internalUrl: `${backend.origin}/w/` });
    const slow = edgeRequest(rig, host, "/?delay=900");
    await until(() => rig.engine.edge.state.inflight === 1, 2000, "the slow request in flight");
    const started = Date.now();
    const waited = await edgeRequest(rig, host, "/");
    expect(waited.status).toBe(503);
    expect(Date.now() - started).toBeGreaterThanOrEqual(350);
    expect((await slow).status).toBe(200);
  });

  it("answers 503 pages for maintenance and for a group without a connector", async () => {
    const { host } = await rig.publish({ name: "Closed", internalUrl: `${backend.origin}/closed/` });
    expect((await api(rig.control.url, "PATCH", "/api/v1/apps/Closed", rig.admin, { maintenanceMode: true })).status).toBe(200);
    await until(() => rig.engine.edge.state.routes.apps.some((a) => a.name === "Closed" && a.maintenanceMode), 5000, "maintenance in the engine");
    const maintenance = await edgeRequest(rig, host, "/");
    expect(maintenance.status).toBe(503);
    expect(maintenance.text).toMatch(/maintenance mode/);
    expect(backend.seen.some((r) => r.url.startsWith("/closed"))).toBe(false);

    await api(rig.control.url, "POST", "/api/v1/connector-groups", rig.admin, { name: "Lonely" });
    const lonely = await rig.publish({ name: "Lonely", internalUrl: `${backend.origin}/lonely/`, connectorGroup: "Lonely" });
    const none = await edgeRequest(rig, lonely.host, "/");
    expect(none.status).toBe(503);
    expect(none.text).toMatch(/No connector in this application's connector group is connected/);
  });
});
