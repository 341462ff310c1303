/** What the control plane's API handlers share: store, CA, clock, policy, feed. */
import type { TenantCa } from "./ca.js";
import type { FeedHub } from "./feed.js";
import type { ControlMetrics } from "./metrics.js";
import type { Sealer } from "./secrets.js";
import type { Store, Tenant } from "./store/types.js";
import { z } from "zod";
import { type Clock } from "../engine/config/clock.js";
import { integer, type Resolved } from "../engine/config/settings.js";

export const lifecyclePolicySchema = z.object({
  /** Validity of connector and engine certificates, in days. */
  certificateDays: integer(1, 3650, 365),
  /** A connector renews its certificate once it is older than this, in days. */
  renewAfterDays: integer(1, 3650, 180),
  /** A connector not seen for this long is marked inactive, in days. */
  inactiveAfterDays: integer(1, 3650, 10),
}).strict();

export type LifecyclePolicy = Resolved<z.output<typeof lifecyclePolicySchema>>;

/** The local admin credential in a data directory: `{ control, token, caCertificate }`, mode 0600. */
export const CREDENTIAL_FILE = "credentials.json";


export interface ControlContext {
  readonly store: Store;
  readonly sealer: Sealer;
  readonly tenant: Tenant;
  readonly ca: TenantCa;
  readonly feed: FeedHub;
  readonly policy: LifecyclePolicy;
  /** The clock: injectable so renewal at day 180 and inactivity at day 10 test without waiting. */
  readonly now: Clock;
  /** The built-in IdP's issuer URL, once control listens (unset with an external IdP). */
  readonly idp: { issuer?: string };
  readonly metrics?: ControlMetrics;
}
