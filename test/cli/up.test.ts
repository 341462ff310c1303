import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";

const run = promisify(execFile);
const CLI = new URL("../../dist/cli/postern.js", import.meta.url).pathname;

describe("postern CLI (built, as a child process)", () => {
  it("`up --once --json` brings up a tunnel and a connector and passes its own check", async () => {
    const { stdout } = await run(process.execPath, [CLI, "up", "--once", "--json", "--port", "0", "--check", "500"], { timeout: 30_000 });
    const r = JSON.parse(stdout) as { tunnel: string; rttMs: number; checkStreams: number; streamsPerSecond: number };
    expect(r.tunnel).toMatch(/^ws:\/\/127\.0\.0\.1:\d+\/tunnel$/);
    expect(r.checkStreams).toBe(500);
    expect(r.streamsPerSecond).toBeGreaterThan(0);
    expect(r.rttMs).toBeGreaterThan(0);
  });

  it("names the bad option and exits non-zero", async () => {
    const err = await run(process.execPath, [CLI, "up", "--port", "99999"]).catch((e: { code: number; stderr: string }) => e);
    expect(err).toMatchObject({ code: 1 });
    expect((err as { stderr: string }).stderr).toMatch(/--port must be 0\.\.65535/);
    const unknown = await run(process.execPath, [CLI, "frobnicate"]).catch((e: { code: number; stderr: string }) => e);
    expect(unknown).toMatchObject({ code: 2 });
  });
});
