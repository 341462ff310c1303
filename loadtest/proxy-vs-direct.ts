/**
 * Scenario: the same backend, measured directly and through Postern (engine + connector),
 * in the same run, each with autocannon for a fixed time. Prints req/s, p50 and p99 latency
 * for both and the ratios, as a table and (with --json) as one JSON line.
 *
 *   npm run loadtest -- [--seconds 10] [--connections 50] [--bytes 1024] [--json]
 *
 * Everything runs on 127.0.0.1 in child processes: the backend, and `postern up --no-sample`
 * (control, engine, connector in one process); autocannon runs here.
 */
import { cpuCount, measure, publish, row, scenario, settle, TABLE_HEAD } from "./rig.js";

scenario("1024", (bytes) => [bytes], async ({ seconds, connections, bytes, json, backendPort, engine, dataDir, pids }) => {
  const host = "bench.default.localhost";
  await publish(dataDir, "Bench", `http://localhost:${backendPort}/`, `http://${host}/`);
  await settle();
  const backend = `http://127.0.0.1:${backendPort}/`;
  await measure(backend, undefined, 2, connections, pids); // warm-up
  const direct = await measure(backend, undefined, seconds, connections, pids);
  await measure(`${engine}/`, host, 2, connections, pids);
  const proxied = await measure(`${engine}/`, host, seconds, connections, pids);
  const report = {
    scenario: "proxy-vs-direct", seconds, connections, bodyBytes: Number(bytes), direct, postern: proxied,
    ratio: { requestsPerSecond: +(proxied.requestsPerSecond / direct.requestsPerSecond).toFixed(2), p50: +(proxied.p50Ms / Math.max(direct.p50Ms, 0.01)).toFixed(2), p99: +(proxied.p99Ms / Math.max(direct.p99Ms, 0.01)).toFixed(2) },
    node: process.version,
    cpus: cpuCount(),
  };
  if (json) {
    process.stdout.write(JSON.stringify(report) + "\n");
    return;
  }
  process.stdout.write(`proxy-vs-direct: ${connections} connections, ${seconds} s each, ${bytes}-byte responses
${TABLE_HEAD}
${row("direct", direct)}
${row("through Postern", proxied)}
ratio: ${report.ratio.requestsPerSecond}x req/s, ${report.ratio.p50}x p50, ${report.ratio.p99}x p99
CPU per request through Postern: backend ${proxied.cpuMicrosPerRequest[0]} µs, postern (engine + connector) ${proxied.cpuMicrosPerRequest[1]} µs
`);
});
