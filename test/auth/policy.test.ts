/** Access policy decisions, one rule at a time. */
import { describe, expect, it } from "vitest";
import { denial, type Identity, type PolicySettings } from "../../engine/auth/policy.js";

const now = 1_800_000_000;
const alice: Identity = { sub: "s-1", username: "Alice", groups: ["Sales"], roles: [], amr: ["pwd"], authTime: now - 60, exp: now + 3600 };
const open: PolicySettings = { assignments: { users: [], groups: [] }, policy: { allowedIpRanges: [], requireMfa: false, sessionLifetimeMinutes: 480 } };
const app = (patch: { assignments?: Partial<PolicySettings["assignments"]>; policy?: Partial<PolicySettings["policy"]> }): PolicySettings => ({
  assignments: { ...open.assignments, ...patch.assignments }, policy: { ...open.policy, ...patch.policy },
});

describe("access policy", () => {
  it.each([
    ["no assignments: every signed-in user", open, alice, "127.0.0.1", null],
    ["assigned by user name, any case", app({ assignments: { users: ["alice"] } }), alice, "127.0.0.1", null],
    ["assigned by subject", app({ assignments: { users: ["s-1"] } }), alice, "127.0.0.1", null],
    ["assigned by group", app({ assignments: { groups: ["sales"] } }), alice, "127.0.0.1", null],
    ["not assigned", app({ assignments: { users: ["bob"], groups: ["HR"] } }), alice, "127.0.0.1", "not_assigned"],
    ["inside an IPv4 range", app({ policy: { allowedIpRanges: ["10.0.0.0/8"] } }), alice, "10.1.2.3", null],
    ["outside every range", app({ policy: { allowedIpRanges: ["10.0.0.0/8", "2001:db8::/32"] } }), alice, "192.0.2.1", "location_not_allowed"],
    ["inside an IPv6 range", app({ policy: { allowedIpRanges: ["2001:db8::/32"] } }), alice, "2001:db8::7", null],
    ["an address that is not one", app({ policy: { allowedIpRanges: ["10.0.0.0/8"] } }), alice, "unknown", "location_not_allowed"],
    ["MFA required, password only", app({ policy: { requireMfa: true } }), alice, "127.0.0.1", "mfa_required"],
    ["MFA required and done", app({ policy: { requireMfa: true } }), { ...alice, amr: ["pwd", "otp", "mfa"] }, "127.0.0.1", null],
    ["token expired", open, { ...alice, exp: now - 1 }, "127.0.0.1", "session_expired"],
    ["signed in longer ago than the session lifetime", app({ policy: { sessionLifetimeMinutes: 60 } }), { ...alice, authTime: now - 3601 }, "127.0.0.1", "session_expired"],
  ] as const)("%s", (_name, settings, who, address, expected) => {
    expect(denial(who, settings, address, now)).toBe(expected);
  });
});
