import { describe, expect, it } from "vitest";
import { canonicalPath, staysUnder, unsafePath } from "../../engine/http/paths.js";

// The path rules both hops apply: decide on a canonical form, forward the raw one, refuse
// whatever could make the two disagree.
describe("path rules (engine/http/paths.ts)", () => {
  it.each([
    ["/a/b/", "/a/b/"],
    ["/a//b", "/a/b"],
    ["/%61pp/x", "/app/x"],
    ["/app;jsessionid=1/page;v=2", "/app/page"],
    ["/", "/"],
    ["/caf%C3%A9", "/caf%C3%A9"],
  ])("decides on %s as %s", (raw, canonical) => {
    expect(canonicalPath(raw)).toEqual({ ok: true, path: canonical });
  });

  it.each([
    ["a/b", /start with \//],
    ["/a%2Fb", /encoded/],
    ["/a%5cb", /encoded/],
    ["/a\\b", /backslash/],
    ["/a%00b", /control/],
    ["/a b", /control/],
    ["/a#b", /fragment/],
    ["/a/../b", /dot segment/],
    ["/a/./b", /dot segment/],
    ["/a/%2e%2E/b", /dot segment/],
    ["/a/..;/b", /dot segment/],
    ["/..", /dot segment/],
    ["/a%zz", /percent/],
  ])("refuses %s", (raw, why) => {
    expect(unsafePath(raw)).toMatch(why);
    expect(canonicalPath(raw).ok).toBe(false);
  });

  it("lets the connector reach only targets under the published prefix", () => {
    expect(staysUnder("/wiki/page?x=../y", "/wiki/")).toBe(true);
    expect(staysUnder("/wiki/a;p=1", "/wiki/")).toBe(true);
    expect(staysUnder("/wikix/page", "/wiki/")).toBe(false);
    expect(staysUnder("/wiki/../admin", "/wiki/")).toBe(false);
    expect(staysUnder("//evil/wiki/", "/")).toBe(false);
    expect(staysUnder("/wiki/a b", "/wiki/")).toBe(false);
    expect(staysUnder("/wiki/%2e%2e/admin", "/wiki/")).toBe(false);
  });
});
