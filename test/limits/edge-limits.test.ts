import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { WireError } from "../../engine/protocol/constants.js";
import type { Timers } from "../../engine/edge/proxy.js";
import { Throttle } from "../../engine/limits/throttle.js";
import { resolveLimits } from "../../engine/limits/config.js";
import { edgeRequest, rawExchange, startBackend, startRig, type Backend, type Rig } from "../fixtures/datapath.js";
import { until } from "../fixtures/lifecycle.js";

/** Timers the test fires by hand, recording what was asked for. */
function manualTimers() {
  const pending = new Map<number, { fn: () => void; ms: number }>();
  let next = 1;
  const timers: Timers & { fire(ms: number): number; scheduled(): number[] } = {
    set(fn, ms) {
      const id = next++;
      pending.set(id, { fn, ms });
      return id;
    },
    clear(h) {
      pending.delete(h as number);
    },
    fire(ms) {
      let fired = 0;
      for (const [id, t] of [...pending]) {
        if (t.ms === ms) {
          pending.delete(id);
          t.fn();
          fired++;
        }
      }
      return fired;
    },
    scheduled: () => [...pending.values()].map((t) => t.ms),
  };
  return timers;
}

describe("backend timeouts (injected timers)", () => {
  let rig: Rig;
  let backend: Backend;
  const timers = manualTimers();
  const aborted: string[] = [];

  beforeAll(async () => {
    backend = await startBackend((req) => {
      // Never answers; records when the connector gives up on the request.
      req.socket.once("close", () => aborted.push(req.url!));
    });
    rig = await startRig({ engine: { timers } });
  }, 30_000);
  afterAll(async () => {
    await rig.close();
    await backend.close();
  });

  it.each([["default", 85_000], ["long", 180_000]] as const)("a %s app answers 504 after %i ms without a response head, and the backend request is aborted", async (backendTimeout, ms) => {
    const name = `Hang${backendTimeout}`;
    const { host } = await rig.publish({ name, internalUrl: `${backend.origin}/${backendTimeout}/`, backendTimeout });
    const pending = edgeRequest(rig, host, "/wait");
    await until(() => backend.seen.some((r) => r.url === `/${backendTimeout}/wait`), 5000, "the request at the backend");
    expect(timers.scheduled()).toContain(ms);
    expect(timers.fire(ms)).toBe(1);
    const res = await pending;
    expect(res.status).toBe(504);
    expect(res.text).toMatch(/did not answer within the backend timeout/);
    await until(() => aborted.includes(`/${backendTimeout}/wait`), 5000, "the backend seeing the abort");
  });
});

/** Without a shared store the throttle decides at once. */
function decided(wait: number | Promise<number>): number {
  if (typeof wait !== "number") throw new Error("a local throttle answered with a promise");
  return wait;
}

describe("throttling", () => {
  it("token buckets hold an app at its rate and a tenant at its rate across apps (injected clock)", () => {
    let now = 0;
    const throttle = new Throttle(resolveLimits(), () => now);
    const admitted = { a: 0, b: 0 };
    const refusedWaits: number[] = [];
    // 1200 requests/s to each of two apps of one tenant for 10 s.
    for (let step = 0; step < 12_000; step++) {
      now = step * (10_000 / 12_000);
      for (const app of ["a", "b"] as const) {
        const wait = decided(throttle.admit("t1", app));
        if (wait === 0) admitted[app]++;
        else refusedWaits.push(wait);
      }
    }
    const total = admitted.a + admitted.b;
    expect(total / 10).toBeGreaterThan(750 * 0.95);
    expect(total / 10).toBeLessThan(750 * 1.05);
    expect(Math.max(...refusedWaits)).toBeLessThanOrEqual(1000);
    // One app alone is held at 500/s.
    const solo = new Throttle(resolveLimits(), () => now);
    let soloAdmitted = 0;
    for (let step = 0; step < 12_000; step++) {
      now = 100_000 + step * (10_000 / 12_000);
      if (solo.admit("t2", "only") === 0) soloAdmitted++;
    }
    expect(soloAdmitted / 10).toBeGreaterThan(500 * 0.95);
    expect(soloAdmitted / 10).toBeLessThan(500 * 1.05);
  });

  describe("at the edge, in real time", () => {
    let rig: Rig;
    let backend: Backend;
    beforeAll(async () => {
      backend = await startBackend((_req, res) => res.writeHead(200).end("ok"));
      rig = await startRig();
    }, 30_000);
    afterAll(async () => {
      await rig.close();
      await backend.close();
    });

    /** Sends `perSecond` requests per second to each host for `seconds`; returns 200s per host and a 429 sample. */
    async function burst(hosts: string[], perSecond: number, seconds: number) {
      const ok = new Map(hosts.map((h) => [h, 0]));
      let sample: Awaited<ReturnType<typeof edgeRequest>> | undefined;
      const pending: Promise<void>[] = [];
      const ticks = seconds * 20;
      for (let tick = 0; tick < ticks; tick++) {
        for (const host of hosts) {
          for (let i = 0; i < perSecond / 20; i++) {
            pending.push(edgeRequest(rig, host, "/").then((res) => {
              if (res.status === 200) ok.set(host, ok.get(host)! + 1);
              else if (res.status === 429) sample ??= res;
            }));
          }
        }
        await new Promise((r) => setTimeout(r, 50));
      }
      await Promise.all(pending);
      return { ok, sample };
    }

    it("holds one app at 500/s with 429 + Retry-After above it", async () => {
      const { host } = await rig.publish({ name: "Rated", internalUrl: `${backend.origin}/rated/` });
      const started = Date.now();
      const { ok, sample } = await burst([host], 1000, 4);
      const rate = ok.get(host)! / ((Date.now() - started) / 1000);
      expect(rate).toBeGreaterThan(500 * 0.9);
      expect(rate).toBeLessThan(500 * 1.1);
      expect(sample?.status).toBe(429);
      expect(Number(sample?.headers["retry-after"])).toBeGreaterThanOrEqual(1);
    }, 30_000);

    it("holds a tenant with two apps at 750/s in total", async () => {
      const one = await rig.publish({ name: "TenantOne", internalUrl: `${backend.origin}/one/` });
      const two = await rig.publish({ name: "TenantTwo", internalUrl: `${backend.origin}/two/` });
      await new Promise((r) => setTimeout(r, 1100)); // let the previous test's tenant bucket refill
      const started = Date.now();
      const { ok } = await burst([one.host, two.host], 600, 4);
      const rate = (ok.get(one.host)! + ok.get(two.host)!) / ((Date.now() - started) / 1000);
      expect(rate).toBeGreaterThan(750 * 0.9);
      expect(rate).toBeLessThan(750 * 1.1);
    }, 30_000);
  });
});

describe("connector safety", () => {
  let rig: Rig;
  let backend: Backend;
  beforeAll(async () => {
    backend = await startBackend((_req, res) => res.writeHead(200).end("reached"));
    rig = await startRig();
  }, 30_000);
  afterAll(async () => {
    await rig.close();
    await backend.close();
  });

  it("refuses a stream for an app or address not published through its group, even when the engine asks", async () => {
    await rig.publish({ name: "Known", internalUrl: `${backend.origin}/known/` });
    const session = rig.engine.registry.connections()[0]!.session;
    const attempt = (app: string, target: string) => new Promise<number | undefined>((resolve) => {
      const stream = session.open({ method: "GET", target, headers: [], ext: { app, tenant: "default", requestId: "r1", timeoutMs: 5_000, body: false } }, { end: true });
      stream.on("response", () => resolve(200));
      stream.on("close", (err?: { wireCode?: number }) => resolve(err?.wireCode));
    });
    expect(await attempt("Unpublished", "/known/")).toBe(WireError.TARGET_FORBIDDEN);
    expect(await attempt("Known", "/elsewhere/secret")).toBe(WireError.TARGET_FORBIDDEN);
    expect(await attempt("Known", "//169.254.169.254/latest")).toBe(WireError.TARGET_FORBIDDEN);
    expect(await attempt("Known", "/known/../secret")).toBe(WireError.TARGET_FORBIDDEN);
    expect(await attempt("Known", "/known/%2e%2e/secret")).toBe(WireError.TARGET_FORBIDDEN);
    expect(await attempt("Known", "/known/a\\..\\b")).toBe(WireError.TARGET_FORBIDDEN);
    expect(backend.seen).toEqual([]);
    expect(await attempt("Known", "/known/ok?next=/../x")).toBe(200); // a query is not a path
  });
});

describe("slow request bodies and graceful drain", () => {
  let rig: Rig;
  let backend: Backend;
  beforeAll(async () => {
    backend = await startBackend((req, res) => {
      const delay = Number(new URL(req.url!, "http://x").searchParams.get("delay") ?? "0");
      req.resume();
      req.on("end", () => setTimeout(() => res.writeHead(200).end("done"), delay));
    });
    rig = await startRig({ engine: { limits: { bodyIdleMs: 300 } } });
  }, 30_000);
  afterAll(async () => {
    await rig.close();
    await backend.close();
  });

  it("answers 408 when a request body stops arriving", async () => {
    const { host } = await rig.publish({ name: "Upload", internalUrl: `${backend.origin}/up/` });
    const answer = await rawExchange(rig.engine.edge.httpPort!, `POST /x HTTP/1.1\r\nHost: ${host}\r\nContent-Length: 100\r\n\r\nonly part`, 2000);
    expect(answer).toMatch(/^HTTP\/1\.1 408/);
  });

  it("drains a connector without losing an in-flight request; new requests go to the other", async () => {
    const { host } = await rig.publish({ name: "Drain", internalUrl: `${backend.origin}/drain/` });
    const second = await rig.addConnector("second");
    const first = rig.agents[0]!;
    const inflight = Array.from({ length: 40 }, () => edgeRequest(rig, host, "/work?delay=600"));
    await until(() => rig.engine.registry.connections(first.id).some((c) => c.session.activeStreams > 0), 5000, "streams on the first connector");
    const stopping = first.stop(5000);
    await until(() => rig.engine.registry.connections(first.id).every((c) => c.session.draining || c.session.closed), 2000, "GOAWAY seen");
    const during = await Promise.all(Array.from({ length: 10 }, () => edgeRequest(rig, host, "/work")));
    const results = await Promise.all(inflight);
    await stopping;
    expect(results.map((r) => r.status)).toEqual(Array(40).fill(200));
    expect(during.map((r) => r.status)).toEqual(Array(10).fill(200));
    expect(rig.engine.registry.connections(first.id)).toEqual([]);
    expect(rig.engine.registry.connections(second.id).length).toBe(2);
  }, 20_000);
});
