/**
 * Scenario: the cost of link translation on the end-to-end path. One backend serves a typical
 * intranet page (about 20 KiB of HTML with links to its own internal URL); two apps publish
 * it, one with "translate URLs in body" off and one with it on, measured in the same run,
 * alternately for each of `--rounds` rounds; the ratio reported is the median of the rounds'.
 *
 * `--worker-core`: the translation worker thread gets CPU 1 to itself and everything else
 * (Postern's other threads, the backend, autocannon) shares CPU 0. On a small host this shows
 * what translation costs the event loop alone, as on a host with a core to spare for the pool.
 *
 *   npm run loadtest:translation -- [--seconds 10] [--connections 50] [--bytes 20480] [--rounds 1] [--worker-core] [--json]
 */
import { availableParallelism } from "node:os";
import { busiestThread, cpuCount, measure, pin, pinThread, publish, row, scenario, settle, TABLE_HEAD, type Figures } from "./rig.js";

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

/** CPU per request of Postern (the second watched process): all threads, and the event loop's share. */
function cpu(f: Figures): { total: number; eventLoop: number; otherThreads: number } {
  const total = f.cpuMicrosPerRequest[1]!;
  const eventLoop = f.mainThreadMicrosPerRequest[1]!;
  return { total, eventLoop, otherThreads: total - eventLoop };
}

// The page links to the translated app's internal URL, /on/ (the backend answers any path).
scenario("20480", (bytes) => [bytes, "--html", "/on/"], async ({ flags, seconds, connections, bytes, json, rounds, backendPort, engine, dataDir, pids }) => {
  const workerCore = flags["worker-core"] === true;
  if (workerCore && availableParallelism() < 2) throw new Error("--worker-core needs two CPUs or more");
  await publish(dataDir, "Off", `http://localhost:${backendPort}/off/`, "http://off.default.localhost/");
  await publish(dataDir, "On", `http://localhost:${backendPort}/on/`, "http://on.default.localhost/", ["--translate-body"]);
  await settle();
  await measure(`${engine}/`, "off.default.localhost", 2, connections, pids); // warm-up
  // The translation worker is the thread besides the main one that works while translating.
  const worker = await busiestThread(pids[1]!, () => measure(`${engine}/`, "on.default.localhost", 2, connections, pids));
  if (workerCore) {
    for (const pid of [process.pid, ...pids]) pin(pid, "0");
    pinThread(worker, "1");
  }
  const runs: { off: Figures; on: Figures }[] = [];
  for (let r = 0; r < rounds; r++) {
    const off = await measure(`${engine}/`, "off.default.localhost", seconds, connections, pids);
    const on = await measure(`${engine}/`, "on.default.localhost", seconds, connections, pids);
    runs.push({ off, on });
  }
  const ratios = runs.map(({ off, on }) => on.requestsPerSecond / off.requestsPerSecond);
  const p99Ratios = runs.map(({ off, on }) => on.p99Ms / Math.max(off.p99Ms, 0.01));
  const ratio = { requestsPerSecond: +median(ratios).toFixed(2), p99: +median(p99Ratios).toFixed(2) };
  const cpuOff = { total: median(runs.map((r) => cpu(r.off).total)), eventLoop: median(runs.map((r) => cpu(r.off).eventLoop)), otherThreads: median(runs.map((r) => cpu(r.off).otherThreads)) };
  const cpuOn = { total: median(runs.map((r) => cpu(r.on).total)), eventLoop: median(runs.map((r) => cpu(r.on).eventLoop)), otherThreads: median(runs.map((r) => cpu(r.on).otherThreads)) };
  const report = {
    scenario: "translation", seconds, connections, pageBytes: Number(bytes), workerCore, rounds: runs,
    ratio, ratios: ratios.map((x) => +x.toFixed(2)),
    cpuMicrosPerRequest: { off: cpuOff, on: cpuOn },
    node: process.version,
    cpus: cpuCount(),
  };
  if (json) {
    process.stdout.write(JSON.stringify(report) + "\n");
    return;
  }
  const rows = runs.flatMap(({ off, on }, i) => [row(`round ${i + 1}: off`, off), row(`round ${i + 1}: on`, on)]);
  process.stdout.write(`translation: ${connections} connections, ${seconds} s each, ${bytes}-byte HTML page, ${runs.length} round(s)${workerCore ? "; the worker on CPU 1, all else on CPU 0" : ""}
${TABLE_HEAD}
${rows.join("\n")}
ratio on/off: ${ratio.requestsPerSecond}x req/s (cost ${Math.round((1 - ratio.requestsPerSecond) * 100)}%), ${ratio.p99}x p99${runs.length > 1 ? ` (medians; rounds: ${report.ratios.join(", ")})` : ""}
CPU per request of postern (engine + connector + worker pool), µs: off ${cpuOff.total}, on ${cpuOn.total}
  event loop: off ${cpuOff.eventLoop}, on ${cpuOn.eventLoop}; other threads (pool workers, libuv): off ${cpuOff.otherThreads}, on ${cpuOn.otherThreads}
`);
}, ["worker-core"]);
