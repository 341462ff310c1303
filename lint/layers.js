/**
 * ESLint rule `postern/layers`: which folder may import which. The shared core (wire code,
 * mux, error catalogue, identity, HTTP rules, settings, and control's client and contract) is
 * what engine, connector and control have in common; it imports nothing outside itself.
 * Engine and connector never import each other; neither reaches into control's server
 * internals; nothing but the CLI, benchmarks and tests imports the CLI. Relative imports are
 * resolved to repository paths, so the rule holds however a path is spelled.
 */
import { dirname, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..");

export const SHARED_CORE = [
  "engine/protocol", "engine/mux", "engine/errors", "engine/identity", "engine/http", "engine/config",
  "engine/metrics", "engine/process", "control/client", "control/contract",
];

/** Folder prefix -> folder prefixes it may import (besides itself and the shared core). */
const ALLOWED = [
  // The shared core depends on nothing but itself.
  ...SHARED_CORE.map((core) => [core, []]),
  ["engine/version.ts", []],
  ["engine", ["engine"]],
  ["connector", ["connector", "engine/version.ts"]],
  ["control", ["control", "engine/version.ts"]],
  ["cli", ["cli", "engine", "connector", "control", "loadtest"]],
  // The web console is a browser bundle: it knows control only through the HTTP API.
  ["ui", ["ui"]],
  ["loadtest", ["loadtest", "engine", "connector", "control", "cli", "test/fixtures"]],
  ["native-bench", ["native-bench", "engine", "connector", "control", "loadtest", "test/fixtures"]],
  ["test", ["test", "engine", "connector", "control", "cli", "loadtest", "native-bench"]],
];

const under = (path, prefix) => path === prefix || path.startsWith(`${prefix}/`);

function rulesFor(file) {
  let best;
  for (const [prefix, allowed] of ALLOWED) if (under(file, prefix) && (!best || prefix.length > best[0].length)) best = [prefix, allowed];
  return best;
}

export const layers = {
  meta: {
    type: "problem",
    docs: { description: "keeps the dependency direction between the shared core, engine, connector, control and cli" },
    schema: [],
    messages: { forbidden: "{{from}} may not import {{to}}: {{why}}" },
  },
  create(context) {
    const file = relative(ROOT, context.filename).split("\\").join("/");
    const rule = rulesFor(file);
    if (!rule) return {};
    const [prefix, allowed] = rule;
    const isCore = SHARED_CORE.some((core) => under(file, core));
    const check = (node, source) => {
      if (typeof source !== "string" || !source.startsWith(".")) return;
      const target = relative(ROOT, resolve(dirname(context.filename), source)).split("\\").join("/").replace(/\.js$/, ".ts");
      const targetCore = SHARED_CORE.find((core) => under(target, core));
      if (under(target, prefix) && !(isCore && !targetCore && !under(target, prefix))) return;
      if (targetCore && prefix !== "ui") return; // the console is a browser bundle: no Node code, not even the core
      if (allowed.some((a) => under(target, a))) return;
      const why = isCore ? "the shared core imports only the shared core" : `${prefix} may import only ${[...allowed, "the shared core"].join(", ")}`;
      context.report({ node, messageId: "forbidden", data: { from: file, to: target, why } });
    };
    return {
      ImportDeclaration: (node) => check(node.source, node.source.value),
      ExportNamedDeclaration: (node) => node.source && check(node.source, node.source.value),
      ExportAllDeclaration: (node) => check(node.source, node.source.value),
      ImportExpression: (node) => node.source.type === "Literal" && check(node.source, node.source.value),
    };
  },
};

export default { rules: { layers } };
