/**
 * `npm run bench`: every benchmark, each beside its baseline measured in the same run. Prints
 * markdown tables; `--out FILE` also writes them to FILE. Quote medians and ratios: machines
 * are shared and noisy.
 */
import { writeFileSync } from "node:fs";
import { cpus } from "node:os";
import { runCodecBench } from "./protocol/codec.bench.js";
import { runStreamsBench } from "./mux/streams.bench.js";
import { runTranslateBench } from "./workers/translate.bench.js";
import { runValidateBench } from "./auth/validate.bench.js";

const only = process.argv.find((a) => a.startsWith("--only="))?.slice(7);
const outAt = process.argv.indexOf("--out");
const header = `Node ${process.version}, ${cpus().length} x ${cpus()[0]?.model ?? "cpu"}, ${new Date().toISOString().slice(0, 10)}\n\n`;
let text = header;
process.stdout.write(header);
if (only === undefined || only === "codec") text += (await runCodecBench()) + "\n";
if (only === undefined || only === "mux") text += (await runStreamsBench()) + "\n";
if (only === undefined || only === "translate") text += (await runTranslateBench()) + "\n";
if (only === undefined || only === "auth") text += await runValidateBench();
if (outAt > 0) writeFileSync(process.argv[outAt + 1]!, text);
process.exit(0);
