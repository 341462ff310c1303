/**
 * Connectors and engines: registration (admin token + CSR -> certificate from the tenant CA),
 * renewal (proof with the current certificate + new CSR), connector groups, listing,
 * disabling and deleting (which engines see within a feed round trip), and the config feed.
 */
import { randomUUID } from "node:crypto";
import { z } from "zod";
import { CsrRejected, type IssuedCert } from "../ca.js";
import type { ControlContext } from "../context.js";
import { signInReportSchema } from "../contract/feed.js";
import { connectorConfig, engineConfig } from "../feed.js";
import { StoreConflict, type Connector, type Role } from "../store/types.js";
import { ApiError, route, type Call, type Route } from "./router.js";

const CONNECTOR_ADMINS: readonly Role[] = ["Global Administrator", "Application Administrator"];
const GLOBAL: readonly Role[] = ["Global Administrator"];
/** Longest a feed request waits for a change before answering with the current snapshot. */
const MAX_FEED_WAIT_S = 55;

const csrPem = z.string().min(1).max(16 * 1024);
const label = z.string().trim().min(1).max(253).regex(/^[\x21-\x7e][\x20-\x7e]*$/, "printable ASCII");

const connectorView = z.object({
  id: z.string(), group: z.string(), hostName: z.string(), version: z.string(), status: z.enum(["active", "inactive", "disabled"]),
  certSerial: z.string(), certFingerprint: z.string(), certNotBefore: z.string(), certNotAfter: z.string(), lastSeen: z.string(), createdAt: z.string(),
  /** Live tunnels per engine URL, as of the connector's last feed request. */
  tunnels: z.record(z.string(), z.number()),
});
const issuedView = z.object({ id: z.string(), certificate: z.string(), caCertificate: z.string(), notAfter: z.string() });
const feedQuery = z.object({
  after: z.coerce.number().int().min(-1).default(-1),
  wait: z.coerce.number().int().min(0).max(MAX_FEED_WAIT_S).default(25),
}).strict();

export function connectorRoutes(ctx: ControlContext): Route[] {
  const { store, tenant, ca, policy } = ctx;

  const sign = async (csr: string, kind: "connector" | "engine", id: string, serverHosts: readonly string[] = []): Promise<IssuedCert> => {
    try {
      const issued = await ca.signCsr(csr, kind, id, policy.certificateDays, new Date(ctx.now()), serverHosts);
      await store.recordCertificate({
        serial: issued.serial, kind, subjectId: id, fingerprint: issued.fingerprint,
        notBefore: issued.notBefore.toISOString(), notAfter: issued.notAfter.toISOString(), revokedAt: null,
      });
      return issued;
    } catch (err) {
      if (err instanceof CsrRejected) throw new ApiError("POSTERN_CSR_REJECTED", err.message);
      throw err;
    }
  };

  const mustGetConnector = async (id: string): Promise<Connector> => {
    const c = await store.getConnector(id);
    if (!c || c.tenantId !== tenant.id) throw new ApiError("POSTERN_NOT_FOUND", `no connector ${id}`);
    return c;
  };

  const mustGroup = async (name: string): Promise<string> => {
    const group = (await store.listConnectorGroups(tenant.id)).find((g) => g.name.toLowerCase() === name.toLowerCase());
    if (!group) throw new ApiError("POSTERN_VALIDATION", `group: no connector group named "${name}"`, [{ field: "group", message: `no connector group named "${name}"` }]);
    return group.name;
  };

  const peerOf = (call: Call, kind: "connector" | "engine") => {
    if (call.caller.kind !== "peer" || call.caller.peer.kind !== kind) throw new ApiError("POSTERN_FORBIDDEN", `only a ${kind} may call this`);
    return call.caller.peer;
  };

  const waitFeed = async (call: Call<unknown, z.infer<typeof feedQuery>>) => {
    const abort = new AbortController();
    call.req.once("close", () => abort.abort());
    await ctx.feed.waitPast(call.query.after, call.query.wait * 1000, abort.signal);
  };

  return [
    route({
      method: "GET", path: "/api/v1/connector-groups", summary: "List connector groups", auth: { roles: CONNECTOR_ADMINS },
      response: z.object({ groups: z.array(z.object({ name: z.string(), connectors: z.number(), apps: z.number() })) }),
      handler: async () => {
        const connectors = await store.listConnectors(tenant.id);
        const apps = await store.listApps(tenant.id);
        const groups = (await store.listConnectorGroups(tenant.id)).map((g) => ({
          name: g.name,
          connectors: connectors.filter((c) => c.group.toLowerCase() === g.name.toLowerCase()).length,
          apps: apps.filter((a) => a.settings.connectorGroup.toLowerCase() === g.name.toLowerCase()).length,
        }));
        return { status: 200, body: { groups } };
      },
    }),
    route({
      method: "POST", path: "/api/v1/connector-groups", summary: "Add a connector group", auth: { roles: CONNECTOR_ADMINS },
      body: z.object({ name: label.max(64) }).strict(), status: 201, action: "connector-group.add",
      response: z.object({ name: z.string() }),
      handler: async (call) => {
        call.auditDetail.group = call.body.name;
        try {
          const g = await store.addConnectorGroup(tenant.id, call.body.name);
          return { status: 201, body: { name: g.name } };
        } catch (err) {
          if (err instanceof StoreConflict) throw new ApiError("POSTERN_CONFLICT", `a connector group named "${call.body.name}" already exists`);
          throw err;
        }
      },
    }),
    route({
      method: "DELETE", path: "/api/v1/connector-groups/{name}", summary: "Remove an empty connector group", auth: { roles: CONNECTOR_ADMINS },
      action: "connector-group.remove",
      handler: async (call) => {
        const name = call.params.name!;
        if (name.toLowerCase() === "default") throw new ApiError("POSTERN_CONFLICT", 'the "Default" connector group always exists');
        const apps = (await store.listApps(tenant.id)).filter((a) => a.settings.connectorGroup.toLowerCase() === name.toLowerCase());
        const connectors = (await store.listConnectors(tenant.id)).filter((c) => c.group.toLowerCase() === name.toLowerCase());
        if (apps.length + connectors.length > 0) {
          throw new ApiError("POSTERN_CONFLICT", `connector group "${name}" is still used by ${apps.length} app(s) and ${connectors.length} connector(s); move them first`);
        }
        if (!(await store.removeConnectorGroup(tenant.id, name))) throw new ApiError("POSTERN_NOT_FOUND", `no connector group named "${name}"`);
        return { status: 204 };
      },
    }),
    route({
      method: "GET", path: "/api/v1/connectors", summary: "List connectors", auth: { roles: CONNECTOR_ADMINS },
      response: z.object({ connectors: z.array(connectorView) }),
      handler: async () => ({ status: 200, body: { connectors: (await store.listConnectors(tenant.id)).map(connectorOut) } }),
    }),
    route({
      method: "GET", path: "/api/v1/connectors/{id}", summary: "Show one connector", auth: { roles: CONNECTOR_ADMINS }, response: connectorView,
      handler: async (call) => ({ status: 200, body: connectorOut(await mustGetConnector(call.params.id!)) }),
    }),
    route({
      method: "PATCH", path: "/api/v1/connectors/{id}", summary: "Disable or enable a connector, or move it to another group", auth: { roles: CONNECTOR_ADMINS },
      body: z.object({ status: z.enum(["active", "disabled"]).optional(), group: label.max(64).optional() }).strict(), response: connectorView,
      action: "connector.update",
      handler: async (call) => {
        const existing = await mustGetConnector(call.params.id!);
        const group = call.body.group === undefined ? undefined : await mustGroup(call.body.group);
        call.auditDetail.change = call.body;
        const updated = await store.updateConnector(existing.id, { status: call.body.status, group });
        return { status: 200, body: connectorOut(updated!) };
      },
    }),
    route({
      method: "DELETE", path: "/api/v1/connectors/{id}", summary: "Delete a connector and revoke its certificates", auth: { roles: CONNECTOR_ADMINS },
      action: "connector.remove",
      handler: async (call) => {
        const existing = await mustGetConnector(call.params.id!);
        await store.revokeCertificates(existing.id, new Date(ctx.now()).toISOString());
        await store.deleteConnector(existing.id);
        return { status: 204 };
      },
    }),
    route({
      method: "POST", path: "/api/v1/connectors/register", summary: "Register a connector: CSR in, certificate out", auth: { roles: CONNECTOR_ADMINS },
      body: z.object({ csr: csrPem, hostName: label, version: label.max(64), group: label.max(64).default("Default") }).strict(),
      status: 201, response: issuedView, action: "connector.register",
      handler: async (call) => {
        const group = await mustGroup(call.body.group);
        const id = randomUUID();
        const issued = await sign(call.body.csr, "connector", id);
        const at = new Date(ctx.now()).toISOString();
        await store.addConnector({
          id, tenantId: tenant.id, group, hostName: call.body.hostName, version: call.body.version,
          certSerial: issued.serial, certFingerprint: issued.fingerprint, certNotBefore: issued.notBefore.toISOString(),
          certNotAfter: issued.notAfter.toISOString(), lastSeen: at, status: "active", createdAt: at,
        });
        Object.assign(call.auditDetail, { connector: id, hostName: call.body.hostName, serial: issued.serial });
        return { status: 201, body: { id, certificate: issued.certPem, caCertificate: ca.certPem, notAfter: issued.notAfter.toISOString() } };
      },
    }),
    route({
      method: "POST", path: "/api/v1/connectors/renew", summary: "Renew the calling connector's certificate", auth: "proof",
      body: z.object({ csr: csrPem }).strict(), response: issuedView, action: "connector.renew",
      handler: async (call) => {
        const peer = peerOf(call, "connector");
        const issued = await sign(call.body.csr, "connector", peer.id);
        await store.updateConnector(peer.id, {
          certSerial: issued.serial, certFingerprint: issued.fingerprint,
          certNotBefore: issued.notBefore.toISOString(), certNotAfter: issued.notAfter.toISOString(),
        });
        Object.assign(call.auditDetail, { previousSerial: peer.serial, serial: issued.serial });
        return { status: 200, body: { id: peer.id, certificate: issued.certPem, caCertificate: ca.certPem, notAfter: issued.notAfter.toISOString() } };
      },
    }),
    route({
      method: "POST", path: "/api/v1/engines/register", summary: "Bootstrap an engine: CSR in, certificate out", auth: { roles: GLOBAL },
      body: z.object({
        csr: csrPem,
        tunnelUrl: z.string().regex(/^wss?:\/\/[^\s]+$/, "a ws:// or wss:// URL").max(2048),
        /** More names for the tunnel listener's certificate (e.g. behind a load balancer). */
        hosts: z.array(label).max(16).default([]),
      }).strict(),
      status: 201, response: issuedView, action: "engine.register",
      handler: async (call) => {
        const id = randomUUID();
        // The engine's one key also serves its tunnel listener's TLS: name the listener's hosts.
        const hosts = [...new Set([new URL(call.body.tunnelUrl).hostname.replace(/^\[|\]$/g, ""), ...call.body.hosts])];
        const issued = await sign(call.body.csr, "engine", id, hosts);
        await store.upsertEngine({ id, tunnelUrl: call.body.tunnelUrl, lastSeen: new Date(ctx.now()).toISOString() });
        Object.assign(call.auditDetail, { engine: id, tunnelUrl: call.body.tunnelUrl });
        return { status: 201, body: { id, certificate: issued.certPem, caCertificate: ca.certPem, notAfter: issued.notAfter.toISOString() } };
      },
    }),
    route({
      method: "DELETE", path: "/api/v1/engines/self", summary: "An engine leaving (SIGTERM): connectors stop dialling it", auth: "proof", status: 204,
      action: "engine.leave",
      handler: async (call) => {
        const peer = peerOf(call, "engine");
        await store.removeEngine(peer.id);
        return { status: 204 };
      },
    }),
    route({
      method: "POST", path: "/api/v1/connectors/probes/{id}", summary: "A connector's answer to `postern app test`", auth: "proof",
      body: z.object({ report: z.record(z.string(), z.unknown()) }).strict(), action: "connector.probe",
      handler: async (call) => {
        const peer = peerOf(call, "connector");
        const stored = await store.completeProbe(call.params.id!, peer.id, call.body.report);
        return { status: stored ? 204 : 409 };
      },
    }),
    route({
      method: "GET", path: "/api/v1/feed/connector", summary: "The calling connector's configuration (long poll past version `after`)", auth: "proof",
      query: feedQuery,
      handler: async (call) => {
        const peer = peerOf(call, "connector");
        const connector = await store.getConnector(peer.id);
        const agent = call.req.headers["x-postern-version"];
        await store.touchConnector(peer.id, new Date(ctx.now()).toISOString(), typeof agent === "string" ? agent.slice(0, 64) : undefined, tunnelsReported(call.req.headers["x-postern-tunnels"]));
        if (connector?.status === "inactive") await store.updateConnector(peer.id, { status: "active" });
        await waitFeed(call);
        return { status: 200, body: await connectorConfig(store, peer.id, policy) };
      },
    }),
    route({
      method: "POST", path: "/api/v1/sign-ins", summary: "An engine records a sign-in to a published app (pre-authentication)", auth: "proof", status: 204,
      body: signInReportSchema,
      handler: async (call) => {
        peerOf(call, "engine");
        const b = call.body;
        ctx.metrics?.signIn("engine", b.outcome);
        if (b.tenantId !== tenant.id) throw new ApiError("POSTERN_VALIDATION", "tenantId: not this control's tenant", [{ field: "tenantId", message: "not this control's tenant" }]);
        await store.appendSignIn({ at: b.at, tenantId: b.tenantId, username: b.username, outcome: b.outcome, reason: b.reason, client: "engine", app: b.app, clientIp: b.clientIp, transactionId: b.transactionId });
        return { status: 204 };
      },
    }),
    route({
      method: "GET", path: "/api/v1/feed/engine", summary: "Apps, groups, connector identities and revocations for an engine (long poll)", auth: "proof",
      query: feedQuery,
      handler: async (call) => {
        const peer = peerOf(call, "engine");
        const tunnelUrl = call.req.headers["x-postern-tunnel-url"];
        if (typeof tunnelUrl === "string" && /^wss?:\/\/\S+$/.test(tunnelUrl) && tunnelUrl.length <= 2048) {
          await store.upsertEngine({ id: peer.id, tunnelUrl, lastSeen: new Date(ctx.now()).toISOString() });
        }
        await waitFeed(call);
        return { status: 200, body: await engineConfig(store, ctx.sealer, { builtInIssuer: ctx.idp.issuer, now: new Date(ctx.now()) }) };
      },
    }),
  ];
}

function connectorOut(c: Connector): z.infer<typeof connectorView> {
  return {
    id: c.id, group: c.group, hostName: c.hostName, version: c.version, status: c.status, certSerial: c.certSerial,
    certFingerprint: c.certFingerprint, certNotBefore: c.certNotBefore, certNotAfter: c.certNotAfter, lastSeen: c.lastSeen, createdAt: c.createdAt,
    tunnels: { ...(c.tunnels ?? {}) },
  };
}

/** A connector's `x-postern-tunnels: url=n,...` report; anything malformed is ignored (undefined keeps the last one). */
function tunnelsReported(header: string | string[] | undefined): Record<string, number> | undefined {
  if (typeof header !== "string") return undefined;
  const out: Record<string, number> = {};
  for (const pair of header.split(",").slice(0, 64)) {
    const at = pair.lastIndexOf("=");
    const url = pair.slice(0, at);
    const n = Number(pair.slice(at + 1));
    if (at > 0 && /^wss?:\/\/\S+$/.test(url) && url.length <= 2048 && Number.isInteger(n) && n >= 0 && n <= 1024) out[url] = n;
  }
  return out;
}

/** Marks connectors not seen for `inactiveAfterDays` as inactive; returns how many changed. */
export async function sweepInactive(ctx: ControlContext): Promise<number> {
  const cutoff = ctx.now() - ctx.policy.inactiveAfterDays * 86_400_000;
  let changed = 0;
  for (const c of await ctx.store.listConnectors()) {
    if (c.status === "active" && new Date(c.lastSeen).getTime() < cutoff) {
      await ctx.store.updateConnector(c.id, { status: "inactive" });
      changed++;
    }
  }
  return changed;
}

/** Removes engines not heard from for `silentMs` (killed, or cut off); returns their ids. */
export async function sweepSilentEngines(ctx: ControlContext, silentMs: number): Promise<string[]> {
  const cutoff = ctx.now() - silentMs;
  const gone: string[] = [];
  for (const e of await ctx.store.listEngines()) {
    if (Date.parse(e.lastSeen) < cutoff && (await ctx.store.removeEngine(e.id))) gone.push(e.id);
  }
  return gone;
}
