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
import { parseArgs } from "node:util";
import { cpuCount, measure, publish, row, startBackend, startPostern, TABLE_HEAD } from "./rig.js";

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: { seconds: { type: "string", default: "10" }, connections: { type: "string", default: "50" }, bytes: { type: "string", default: "1024" }, json: { type: "boolean", default: false } },
  });
  const seconds = Number(values.seconds);
  const connections = Number(values.connections);
  const backend = startBackend([values.bytes]);
  const postern = startPostern();
  try {
    const { port } = (await backend.ready) as { port: number };
    const { engine } = (await postern.ready) as { engine: string };
    const host = "bench.default.localhost";
    await publish(postern.dataDir, "Bench", `http://localhost:${port}/`, `http://${host}/`);
    await new Promise((r) => setTimeout(r, 1000)); // the engine and connector pick the app up from the feed
    const pids = [backend.child.pid!, postern.child.pid!];
    await measure(`http://127.0.0.1:${port}/`, undefined, 2, connections, pids); // warm-up
    const direct = await measure(`http://127.0.0.1:${port}/`, undefined, seconds, connections, pids);
    await measure(`${engine}/`, host, 2, connections, pids);
    const proxied = await measure(`${engine}/`, host, seconds, connections, pids);
    const report = {
      scenario: "proxy-vs-direct", seconds, connections, bodyBytes: Number(values.bytes), direct, postern: proxied,
      ratio: { requestsPerSecond: +(proxied.requestsPerSecond / direct.requestsPerSecond).toFixed(2), p50: +(proxied.p50Ms / Math.max(direct.p50Ms, 0.01)).toFixed(2), p99: +(proxied.p99Ms / Math.max(direct.p99Ms, 0.01)).toFixed(2) },
      node: process.version,
      cpus: cpuCount(),
    };
    if (values.json) {
      process.stdout.write(JSON.stringify(report) + "\n");
    } else {
      process.stdout.write(`proxy-vs-direct: ${connections} connections, ${seconds} s each, ${values.bytes}-byte responses\n`);
      process.stdout.write(`${TABLE_HEAD}\n${row("direct", direct)}\n${row("through Postern", proxied)}\n`);
      process.stdout.write(`ratio: ${report.ratio.requestsPerSecond}x req/s, ${report.ratio.p50}x p50, ${report.ratio.p99}x p99\n`);
      process.stdout.write(`CPU per request through Postern: backend ${proxied.cpuMicrosPerRequest[0]} µs, postern (engine + connector) ${proxied.cpuMicrosPerRequest[1]} µs\n`);
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
