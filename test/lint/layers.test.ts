import { ESLint } from "eslint";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";

// The dependency-direction rule (lint/layers.js) on code it must refuse and code it must let through.
describe("lint: postern/layers", () => {
  const root = fileURLToPath(new URL("../..", import.meta.url));
  const eslint = new ESLint({ cwd: root });
  const problems = async (file: string, code: string) => {
    const [result] = await eslint.lintText(code, { filePath: `${root}${file}` });
    return result!.messages.filter((m) => m.ruleId === "postern/layers").map((m) => m.message);
  };

  it.each([
    ["connector/x.ts", 'import { Edge } from "../engine/edge/server.js";\nexport const x = Edge;\n', /connector may import only/],
    ["engine/edge/x.ts", 'import { BackendProxy } from "../../connector/proxy.js";\nexport const x = BackendProxy;\n', /engine may import only/],
    ["engine/mux/x.ts", 'import { Edge } from "../edge/server.js";\nexport const x = Edge;\n', /shared core imports only the shared core/],
    ["engine/auth/x.ts", 'import { openSqliteStore } from "../../control/store/sqlite.js";\nexport const x = openSqliteStore;\n', /engine may import only/],
    ["control/x.ts", 'export { runUp } from "../cli/up.js";\n', /control may import only/],
    ["control/client/x.ts", 'const m = await import("../store/sqlite.js");\nexport const x = m;\n', /shared core/],
  ])("refuses %s importing across layers", async (file, code, message) => {
    const found = await problems(file, code);
    expect(found).toHaveLength(1);
    expect(found[0]).toMatch(message);
  });

  it.each([
    ["connector/x.ts", 'import { Session } from "../engine/mux/session.js";\nimport type { ConnectorConfig } from "../control/contract/feed.js";\nexport type X = [Session, ConnectorConfig];\n'],
    ["engine/edge/x.ts", 'import { ControlClient } from "../../control/client/client.js";\nimport { RouteTable } from "./routes.js";\nexport const x = [ControlClient, RouteTable];\n'],
    ["control/x.ts", 'import { PosternError } from "../engine/errors/catalogue.js";\nexport const x = PosternError;\n'],
    ["cli/x.ts", 'import { ConnectorAgent } from "../connector/agent.js";\nexport const x = ConnectorAgent;\n'],
  ])("lets %s import the shared core and its own side", async (file, code) => {
    expect(await problems(file, code)).toEqual([]);
  });
});
