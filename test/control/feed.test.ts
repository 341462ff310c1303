import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { ControlClient } from "../../control/client/client.js";
import { ConfigFeed } from "../../control/client/feed.js";
import { openSqliteStore } from "../../control/store/sqlite.js";
import { join } from "node:path";
import { tempDir } from "../fixtures/control.js";
import { makeCa, makeLeaf } from "../fixtures/domain-certs.js";

/** A stand-in control that answers feed requests from a script: long polls and pulls separately. */
async function scriptedControl(answer: (wait: number, after: number) => { version: number } | "hang"): Promise<{ url: string; server: Server; requests: string[] }> {
  const requests: string[] = [];
  const server = createServer((req, res) => {
    const url = new URL(req.url!, "http://x");
    requests.push(url.search);
    const out = answer(Number(url.searchParams.get("wait")), Number(url.searchParams.get("after")));
    if (out === "hang") return; // a long poll lost somewhere on the way
    res.writeHead(200, { "content-type": "application/json" });
    res.end(JSON.stringify(out));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, server, requests };
}

let cleanup: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const fn of cleanup) await fn();
  cleanup = [];
});

async function feedAgainst(url: string, pullIntervalMs: number) {
  const ca = await makeCa();
  const leaf = await makeLeaf({ ca, dnsNames: [] });
  const client = new ControlClient({ controlUrl: url, credentials: () => leaf });
  const feed = new ConfigFeed<{ version: number }>(client, { path: "/api/v1/feed/connector", waitSeconds: 1, pullIntervalMs });
  const seen: number[] = [];
  feed.on("config", (c) => seen.push(c.version));
  cleanup.push(async () => {
    feed.stop();
    await client.close();
  });
  return { feed, seen };
}

describe("config feed", () => {
  it("never applies a version older than the one it holds", async () => {
    const versions = [5, 3, 5, 7, 6, 9];
    let i = 0;
    const control = await scriptedControl(() => ({ version: versions[Math.min(i++, versions.length - 1)]! }));
    cleanup.push(async () => void control.server.close());
    const { feed, seen } = await feedAgainst(control.url, 60_000);
    await feed.start();
    await new Promise((r) => setTimeout(r, 300));
    expect(seen).toEqual([5, 7, 9]);
    expect(feed.current?.version).toBe(9);
  });

  it("falls back to periodic pulls when long polls are lost", async () => {
    let version = 1;
    const control = await scriptedControl((wait) => (wait > 0 ? "hang" : { version }));
    cleanup.push(async () => {
      control.server.closeAllConnections();
      control.server.close();
    });
    const { feed, seen } = await feedAgainst(control.url, 150);
    await feed.start();
    version = 2;
    await new Promise((r) => setTimeout(r, 500));
    expect(seen).toEqual([1, 2]);
    expect(control.requests.some((q) => q.includes("wait=1"))).toBe(true); // it did try to long-poll
  });
});

describe("store configuration version", () => {
  it("grows by one with every committed change and notifies listeners in order", async () => {
    const store = openSqliteStore(join(tempDir(), "control.db"));
    const notified: number[] = [];
    store.onChange((v) => notified.push(v));
    const v0 = await store.configVersion();
    await store.ensureTenant({ id: "t", name: "t", domainSuffix: "test" });
    await store.addConnectorGroup("t", "Default");
    await store.addConnectorGroup("t", "Europe");
    await store.removeConnectorGroup("t", "Europe");
    await expect(store.addConnectorGroup("t", "default")).rejects.toThrow(/already/); // refused: no version
    await store.touchConnector("nobody", new Date().toISOString()); // heartbeats do not bump the version
    expect(notified).toEqual([v0 + 1, v0 + 2, v0 + 3, v0 + 4]);
    expect(await store.configVersion()).toBe(v0 + 4);
    await store.close();
  });
});
