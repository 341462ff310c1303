import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { Readable } from "node:stream";
import { join } from "node:path";
import { request } from "undici";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ControlHandle } from "../../control/server.js";
import { enroll } from "../../control/client/enroll.js";
import { api, startTestControl, tempDir } from "../fixtures/control.js";
import { client, startBackend, type Backend } from "../fixtures/datapath.js";
import { until } from "../fixtures/lifecycle.js";
import { startService, type Service } from "../fixtures/processes.js";

const GiB = 1024 * 1024 * 1024;
const MiB = 1024 * 1024;
const PATTERN = Buffer.alloc(MiB);
for (let i = 0; i < PATTERN.length; i++) PATTERN[i] = (i * 31 + 7) % 256;

function rssBytes(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  return Number(m![1]) * 1024;
}

/** Peak RSS growth of each pid over its baseline while `work` runs, sampled every 50 ms. */
async function peakGrowth(pids: number[], work: () => Promise<void>): Promise<number[]> {
  const base = pids.map(rssBytes);
  const peak = [...base];
  const timer = setInterval(() => pids.forEach((pid, i) => (peak[i] = Math.max(peak[i]!, rssBytes(pid)))), 50);
  try {
    await work();
  } finally {
    clearInterval(timer);
  }
  return peak.map((p, i) => p - base[i]!);
}

describe("1 GiB each way through engine and connector processes", () => {
  let control: ControlHandle;
  let backend: Backend;
  let engine: Service;
  let connector: Service;
  let edge: string;
  const host = "bulk.contoso.test";

  beforeAll(async () => {
    const dir = tempDir();
    control = await startTestControl({ dataDir: join(dir, "control") });
    const admin = await control.mintToken({ name: "root", roles: ["Global Administrator"] }, 3600);
    backend = await startBackend((req, res) => {
      if (req.url === "/upload") {
        const hash = createHash("sha256");
        let bytes = 0;
        req.on("data", (c: Buffer) => {
          hash.update(c);
          bytes += c.length;
        });
        req.on("end", () => res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ bytes, sha256: hash.digest("hex") })));
        return;
      }
      res.writeHead(200, { "content-length": GiB });
      let left = GiB;
      const pump = () => {
        while (left > 0) {
          left -= PATTERN.length;
          if (!res.write(PATTERN)) return void res.once("drain", pump);
        }
        res.end();
      };
      pump();
    });
    await enroll({ kind: "engine", controlUrl: control.url, token: admin, stateDir: join(dir, "engine"), fields: { tunnelUrl: "wss://127.0.0.1:1/tunnel" } });
    const connectorDir = join(dir, "connector");
    await enroll({ kind: "connector", controlUrl: control.url, token: admin, stateDir: connectorDir, fields: { version: "test" } });
    engine = startService(["engine", "--workers", "1", "--state-dir", join(dir, "engine"), "--tunnel-port", "0", "--http-port", "0", "--json"], { POSTERN_LOG_LEVEL: "warn" });
    edge = `http://127.0.0.1:${(await engine.ready).httpPort}`;
    connector = startService(["connector", "run", "--workers", "1", "--state-dir", connectorDir, "--connections", "2", "--json"], { POSTERN_LOG_LEVEL: "warn" });
    await connector.ready;
    const published = await api(control.url, "POST", "/api/v1/apps", admin, { name: "Bulk", internalUrl: `${backend.origin}/`, externalUrl: `http://${host}/`, preAuthentication: "passthrough" });
    expect(published.status).toBe(201);
    await until(async () => (await request(`${edge}/upload`, { method: "POST", headers: { host }, body: "x", dispatcher: client }).then((r) => r.body.dump().then(() => r.statusCode))) === 200, 10_000, "the app served");
  }, 30_000);
  afterAll(async () => {
    await connector?.kill();
    await engine?.kill();
    await backend.close();
    await control.close();
  });

  const pids = () => [engine.child.pid!, connector.child.pid!];

  it("uploads 1 GiB byte-exact with RSS growth under 64 MiB", async () => {
    const expected = createHash("sha256");
    async function* body() {
      for (let sent = 0; sent < GiB; sent += PATTERN.length) {
        expected.update(PATTERN);
        yield PATTERN;
      }
    }
    let result: { bytes: number; sha256: string } | undefined;
    const growth = await peakGrowth(pids(), async () => {
      // Chunked: this uWS build closes any request whose Content-Length has 10 digits (>= 1e9 bytes).
      const res = await request(`${edge}/upload`, { method: "POST", headers: { host }, body: Readable.from(body()), dispatcher: client });
      result = (await res.body.json()) as { bytes: number; sha256: string };
    });
    expect(result).toEqual({ bytes: GiB, sha256: expected.digest("hex") });
    expect(growth[0], "engine RSS growth").toBeLessThan(64 * MiB);
    expect(growth[1], "connector RSS growth").toBeLessThan(64 * MiB);
  }, 120_000);

  it("downloads 1 GiB byte-exact to a reader that stalls, with RSS growth under 64 MiB", async () => {
    let received = 0;
    const hash = createHash("sha256");
    const growth = await peakGrowth(pids(), async () => {
      const res = await request(`${edge}/download`, { headers: { host }, dispatcher: client });
      expect(res.headers["content-length"]).toBe(String(GiB));
      let stalled = false;
      for await (const chunk of res.body) {
        hash.update(chunk as Buffer);
        received += (chunk as Buffer).length;
        if (!stalled && received > 64 * MiB) {
          stalled = true; // a deliberately slow reader: stop reading for 3 s mid-transfer
          await new Promise((r) => setTimeout(r, 3000));
        }
      }
    });
    const expected = createHash("sha256");
    for (let i = 0; i < GiB / MiB; i++) expected.update(PATTERN);
    expect(received).toBe(GiB);
    expect(hash.digest("hex")).toBe(expected.digest("hex"));
    expect(growth[0], "engine RSS growth").toBeLessThan(64 * MiB);
    expect(growth[1], "connector RSS growth").toBeLessThan(64 * MiB);
  }, 120_000);
});
