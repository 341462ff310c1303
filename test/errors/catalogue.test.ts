import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { codeOfStatus, codeOfWire, ERRORS, httpStatusOf, isErrorCode, pageOf, PosternError, wireCodeOf, type ErrorCode } from "../../engine/errors/catalogue.js";
import { errorPage } from "../../engine/edge/pages.js";
import { WireError } from "../../engine/protocol/constants.js";

// docs/errors.md and the catalogue must list the same codes with the same retryability and text.
describe("error catalogue", () => {
  const doc = readFileSync(new URL("../../docs/errors.md", import.meta.url), "utf8");
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

  it("every error a user can see has a status and a page, and the page is built from the entry", () => {
    for (const code of Object.keys(ERRORS) as ErrorCode[]) {
      const page = pageOf(code);
      if (!page) continue;
      expect(httpStatusOf(code), code).toBeGreaterThanOrEqual(400);
      const rendered = errorPage(code, "req-1");
      expect(rendered.status).toBe(httpStatusOf(code));
      expect(rendered.body).toContain(page.title);
      expect(rendered.body).toContain("req-1");
    }
  });

  it("wire reset codes map to catalogue entries and back; unknown resets mean the connector was lost", () => {
    const carried = (Object.keys(ERRORS) as ErrorCode[]).filter((c) => wireCodeOf(c) !== WireError.CANCEL);
    expect(carried.sort()).toEqual(["POSTERN_BACKEND_INVALID", "POSTERN_BACKEND_TIMEOUT", "POSTERN_BACKEND_UNREACHABLE", "POSTERN_TARGET_FORBIDDEN"]);
    for (const code of carried) expect(codeOfWire(wireCodeOf(code))).toBe(code);
    expect(codeOfWire(WireError.CANCEL)).toBe("POSTERN_CONNECTOR_LOST");
    expect(codeOfWire(undefined)).toBe("POSTERN_CONNECTOR_LOST");
  });

  it("an HTTP refusal without a code of ours maps to the entry for its status", () => {
    expect(codeOfStatus(404)).toBe("POSTERN_NOT_FOUND");
    expect(codeOfStatus(429)).toBe("POSTERN_RATE_LIMITED");
    expect(codeOfStatus(502)).toBe("POSTERN_INTERNAL");
    expect(codeOfStatus(418)).toBe("POSTERN_BAD_REQUEST");
    expect(isErrorCode("POSTERN_CONFLICT")).toBe(true);
    expect(isErrorCode("toString")).toBe(false);
  });
});
