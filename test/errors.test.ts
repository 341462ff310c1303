import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { ERRORS, PosternError } from "../engine/errors/catalogue.js";

// docs/errors.md and the catalogue must list the same codes with the same retryability and text.
describe("error catalogue", () => {
  const doc = readFileSync(new URL("../docs/errors.md", import.meta.url), "utf8");
  const rows = new Map(
    [...doc.matchAll(/^\| `([A-Z_]+)` \| (yes|no) \| (\d{3}|-) \| (.+) \|$/gm)].map((m) => [
      m[1]!,
      { retryable: m[2] === "yes", status: m[3] === "-" ? undefined : Number(m[3]), when: m[4]! },
    ]),
  );

  it("documents every code, and only those", () => {
    expect([...rows.keys()].sort()).toEqual(Object.keys(ERRORS).sort());
  });

  it.each(Object.entries(ERRORS))("%s: same retryability and description", (code, spec) => {
    expect(rows.get(code)).toEqual({ retryable: spec.retryable, status: "status" in spec ? spec.status : undefined, when: spec.when });
  });

  it("errors carry their code and retryability", () => {
    const e = new PosternError("POSTERN_STREAM_REFUSED", "full", { wireCode: 7 });
    expect(e).toMatchObject({ code: "POSTERN_STREAM_REFUSED", retryable: true, wireCode: 7 });
    expect(new PosternError("POSTERN_HANDSHAKE", "x").retryable).toBe(false);
  });
});
