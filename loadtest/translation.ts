/**
 * Scenario: the cost of link translation on the end-to-end path. One backend serves a typical
 * intranet page (about 20 KiB of HTML with links to its own internal URL); two apps publish
 * it, one with "translate URLs in body" off and one with it on, measured in the same run.
 *
 *   npm run loadtest:translation -- [--seconds 10] [--connections 50] [--bytes 20480] [--json]
 */
import { parseArgs } from "node:util";
import { cpuCount, measure, publish, row, startBackend, startPostern, TABLE_HEAD } from "./rig.js";

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: { seconds: { type: "string", default: "10" }, connections: { type: "string", default: "50" }, bytes: { type: "string", default: "20480" }, json: { type: "boolean", default: false } },
  });
  const seconds = Number(values.seconds);
  const connections = Number(values.connections);
  // The page links to the translated app's internal URL, /on/ (the backend answers any path).
  const backend = startBackend([values.bytes, "--html", "/on/"]);
  const postern = startPostern();
  try {
    const { port } = (await backend.ready) as { port: number };
    const { engine } = (await postern.ready) as { engine: string };
    await publish(postern.dataDir, "Off", `http://localhost:${port}/off/`, "http://off.default.localhost/");
    await publish(postern.dataDir, "On", `http://localhost:${port}/on/`, "http://on.default.localhost/", ["--translate-body"]);
    await new Promise((r) => setTimeout(r, 1000));
    const pids = [backend.child.pid!, postern.child.pid!];
    await measure(`${engine}/`, "off.default.localhost", 2, connections, pids); // warm-up
    const off = await measure(`${engine}/`, "off.default.localhost", seconds, connections, pids);
    await measure(`${engine}/`, "on.default.localhost", 2, connections, pids);
    const on = await measure(`${engine}/`, "on.default.localhost", seconds, connections, pids);
    const report = {
      scenario: "translation", seconds, connections, pageBytes: Number(values.bytes), off, on,
      ratio: { requestsPerSecond: +(on.requestsPerSecond / off.requestsPerSecond).toFixed(2), p99: +(on.p99Ms / Math.max(off.p99Ms, 0.01)).toFixed(2) },
      node: process.version,
      cpus: cpuCount(),
    };
    if (values.json) {
      process.stdout.write(JSON.stringify(report) + "\n");
    } else {
      process.stdout.write(`translation: ${connections} connections, ${seconds} s each, ${values.bytes}-byte HTML page\n`);
      process.stdout.write(`${TABLE_HEAD}\n${row("translation off", off)}\n${row("translation on", on)}\n`);
      process.stdout.write(`ratio on/off: ${report.ratio.requestsPerSecond}x req/s (cost ${Math.round((1 - report.ratio.requestsPerSecond) * 100)}%), ${report.ratio.p99}x p99\n`);
      process.stdout.write(`CPU per request of postern (engine + connector + worker pool): off ${off.cpuMicrosPerRequest[1]} µs, on ${on.cpuMicrosPerRequest[1]} µs\n`);
    }
  } finally {
    backend.child.kill("SIGTERM");
    postern.child.kill("SIGTERM");
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`loadtest: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exitCode = 1;
});
