/**
 * Access policy, evaluated on every request (not only at sign-in), from the app settings the
 * engine holds now: a change of assignment or policy reaches live sessions as soon as the
 * configuration does. Empty assignments admit every signed-in user of the issuer.
 */
import { BlockList, isIPv4, isIPv6 } from "node:net";

export type Denial = "not_assigned" | "mfa_required" | "location_not_allowed" | "session_expired";

/** Who is signed in, as the session cookie (or a bearer token) says. */
export interface Identity {
  readonly sub: string;
  readonly username: string;
  readonly groups: readonly string[];
  readonly roles: readonly string[];
  readonly amr: readonly string[];
  readonly email?: string;
  readonly name?: string;
  /** When the user signed in at the IdP, seconds. */
  readonly authTime: number;
  /** When the session or token ends, seconds. */
  readonly exp: number;
}

export interface PolicySettings {
  readonly assignments: { readonly users: readonly string[]; readonly groups: readonly string[] };
  readonly policy: { readonly allowedIpRanges: readonly string[]; readonly requireMfa: boolean; readonly sessionLifetimeMinutes: number };
}

const blockLists = new WeakMap<readonly string[], BlockList>();

function ranges(list: readonly string[]): BlockList {
  let block = blockLists.get(list);
  if (!block) {
    block = new BlockList();
    for (const range of list) {
      const [address, bits] = range.split("/");
      const type = isIPv6(address!) ? "ipv6" : "ipv4";
      block.addSubnet(address!, Number(bits ?? (type === "ipv6" ? 128 : 32)), type);
    }
    blockLists.set(list, block);
  }
  return block;
}

/** Whether an address lies in one of the ranges (CIDR or single addresses); the list's matcher is built once. */
export function inRanges(address: string, list: readonly string[]): boolean {
  const type = isIPv4(address) ? "ipv4" : isIPv6(address) ? "ipv6" : undefined;
  return type !== undefined && ranges(list).check(address, type);
}

/** Why `who` may not use the app now, or null. */
export function denial(who: Identity, app: PolicySettings, clientAddress: string, nowS: number): Denial | null {
  if (who.exp <= nowS || nowS - who.authTime > app.policy.sessionLifetimeMinutes * 60) return "session_expired";
  const { users, groups } = app.assignments;
  if (users.length > 0 || groups.length > 0) {
    const name = who.username.toLowerCase();
    const assigned = users.some((u) => u.toLowerCase() === name || u === who.sub)
      || groups.some((g) => who.groups.some((mine) => mine.toLowerCase() === g.toLowerCase()));
    if (!assigned) return "not_assigned";
  }
  if (app.policy.allowedIpRanges.length > 0 && !inRanges(clientAddress, app.policy.allowedIpRanges)) return "location_not_allowed";
  if (app.policy.requireMfa && !who.amr.includes("mfa")) return "mfa_required";
  return null;
}
