/**
 * Scenario: the cost of link translation on the end-to-end path. One backend serves a typical
 * intranet page (about 20 KiB of HTML with links to its own internal URL); two apps publish
 * it, one with "translate URLs in body" off and one with it on, measured in the same run.
 *
 *   npm run loadtest:translation -- [--seconds 10] [--connections 50] [--bytes 20480] [--json]
 */
import { cpuCount, measure, publish, row, scenario, settle, TABLE_HEAD } from "./rig.js";

// The page links to the translated app's internal URL, /on/ (the backend answers any path).
scenario("20480", (bytes) => [bytes, "--html", "/on/"], async ({ seconds, connections, bytes, json, backendPort, engine, dataDir, pids }) => {
  await publish(dataDir, "Off", `http://localhost:${backendPort}/off/`, "http://off.default.localhost/");
  await publish(dataDir, "On", `http://localhost:${backendPort}/on/`, "http://on.default.localhost/", ["--translate-body"]);
  await settle();
  await measure(`${engine}/`, "off.default.localhost", 2, connections, pids); // warm-up
  const off = await measure(`${engine}/`, "off.default.localhost", seconds, connections, pids);
  await measure(`${engine}/`, "on.default.localhost", 2, connections, pids);
  const on = await measure(`${engine}/`, "on.default.localhost", seconds, connections, pids);
  const report = {
    scenario: "translation", seconds, connections, pageBytes: Number(bytes), off, on,
    ratio: { requestsPerSecond: +(on.requestsPerSecond / off.requestsPerSecond).toFixed(2), p99: +(on.p99Ms / Math.max(off.p99Ms, 0.01)).toFixed(2) },
    node: process.version,
    cpus: cpuCount(),
  };
  if (json) {
    process.stdout.write(JSON.stringify(report) + "\n");
    return;
  }
  process.stdout.write(`translation: ${connections} connections, ${seconds} s each, ${bytes}-byte HTML page
${TABLE_HEAD}
${row("translation off", off)}
${row("translation on", on)}
ratio on/off: ${report.ratio.requestsPerSecond}x req/s (cost ${Math.round((1 - report.ratio.requestsPerSecond) * 100)}%), ${report.ratio.p99}x p99
CPU per request of postern (engine + connector + worker pool): off ${off.cpuMicrosPerRequest[1]} µs, on ${on.cpuMicrosPerRequest[1]} µs
`);
});
