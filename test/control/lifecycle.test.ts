import { statSync } from "node:fs";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { ConnectorAgent } from "../../connector/agent.js";
import { dialTunnel } from "../../connector/transport.js";
import { ControlClient } from "../../control/client/client.js";
import { createKeyAndCsr } from "../../engine/identity/csr.js";
import type { Hello } from "../../engine/protocol/heads.js";
import { answerTunnelChallenge } from "../../engine/identity/proof.js";
import { api, quietLogger } from "../fixtures/control.js";
import { makeCa, makeLeaf } from "../fixtures/domain-certs.js";
import { roundTrip, startDeployment, until, type Deployment } from "../fixtures/lifecycle.js";

let deployment: Deployment | undefined;
afterEach(async () => {
  await deployment?.close();
  deployment = undefined;
});

const connected = (d: Deployment, agent: ConnectorAgent, n = 2) => until(() => d.engine.registry.connections(agent.id).length === n, 10_000, `${n} tunnels of ${agent.id}`);

describe("connector lifecycle on a live engine", () => {
  it("renews the certificate at day 180 (injected clock) without dropping traffic", async () => {
    const d = (deployment = await startDeployment({ clockOffsetDays: -181 }));
    const agent = await d.connector("renewing");
    await agent.start();
    await connected(d, agent);
    const before = d.engine.registry.connections(agent.id);
    const oldSerial = before[0]!.identity.serial;
    expect(await agent.checkRenewal()).toBe(false); // day 0: nothing to do

    // Keep requests flowing through the existing tunnels across the renewal.
    let sent = 0;
    const failures: unknown[] = [];
    let flowing = true;
    const traffic = (async () => {
      while (flowing) {
        const live = before[sent % before.length]!.session;
        const payload = Buffer.from(`request ${sent++}`);
        const res = await roundTrip(live, payload).catch((err: unknown) => (failures.push(err), null));
        if (res && (res.status !== 200 || !res.body.equals(payload))) failures.push(new Error(`bad echo ${res.status}`));
      }
    })();

    d.clock.advanceDays(181);
    expect(await agent.checkRenewal()).toBe(true);
    const admin = await d.control.mintToken({ name: "root", roles: ["Global Administrator"] }); // on the control's clock
    const shown = await api(d.control.url, "GET", `/api/v1/connectors/${agent.id}`, admin, undefined, d.control.caCertPem);
    expect(shown.status).toBe(200);
    const record = shown.body;
    expect(record.certSerial).toMatch(/^[0-9A-F]{32}$/);
    expect(record.certSerial).not.toBe(oldSerial);
    expect(statSync(join(d.dir, "renewing", "connector.key")).mode & 0o777).toBe(0o600);
    expect(agent.identity.issuedAt.getTime()).toBeGreaterThan(Date.now() - 120_000);

    // Existing tunnels carried on, and every request across the renewal succeeded.
    await new Promise((r) => setTimeout(r, 200));
    flowing = false;
    await traffic;
    expect(failures).toEqual([]);
    expect(sent).toBeGreaterThan(20);
    expect(before.every((c) => !c.session.closed)).toBe(true);
    // A new tunnel uses the new certificate.
    before[0]!.session.close();
    await until(() => d.engine.registry.connections(agent.id).some((c) => c.identity.serial === record.certSerial), 10_000, "a tunnel with the renewed certificate");
    const certs = await d.control.context.store.listCertificates(agent.id);
    expect(certs.map((c) => c.revokedAt)).toEqual([null, null]); // the old one stays valid until it expires
  }, 40_000);

  it("closes a disabled connector's tunnels within 5 s and refuses it after; a deleted one likewise", async () => {
    const d = (deployment = await startDeployment());
    const [a, b] = [await d.connector("a"), await d.connector("b")];
    await Promise.all([a.start(), b.start()]);
    await Promise.all([connected(d, a), connected(d, b)]);

    const disabled = await api(d.control.url, "PATCH", `/api/v1/connectors/${a.id}`, d.admin, { status: "disabled" }, d.control.caCertPem);
    expect(disabled.status).toBe(200);
    const tookA = await until(() => d.engine.registry.connections(a.id).length === 0, 5000, "disabled connector dropped");
    const deleted = await api(d.control.url, "DELETE", `/api/v1/connectors/${b.id}`, d.admin, undefined, d.control.caCertPem);
    expect(deleted.status).toBe(204);
    const tookB = await until(() => d.engine.registry.connections(b.id).length === 0, 5000, "deleted connector dropped");
    expect(Math.max(tookA, tookB)).toBeLessThan(5000);

    // They keep redialling with backoff and keep being refused; the engine logs why.
    await new Promise((r) => setTimeout(r, 1500));
    expect(d.engine.registry.connections(a.id)).toEqual([]);
    expect(d.engine.registry.connections(b.id)).toEqual([]);
    // Control refuses their config pulls too, naming the reason.
    for (const [agent, reason] of [[a, /is disabled/], [b, /revoked/]] as const) {
      const client = new ControlClient({ controlUrl: d.control.url, caPem: d.control.caCertPem, credentials: () => agent.identity });
      await expect(client.call("GET", "/api/v1/feed/connector?wait=0")).rejects.toMatchObject({ status: 401, code: "POSTERN_IDENTITY_REFUSED", message: expect.stringMatching(reason) });
      await client.close();
    }
  }, 30_000);

  it("refuses tunnels without a certificate, from another CA, expired, or revoked", async () => {
    const d = (deployment = await startDeployment());
    const url = d.engine.tunnelUrl;
    const ca = d.control.caCertPem;
    const refusal = async (tls: { cert?: string; key?: string }, ext: (peer: Hello | null) => Promise<Record<string, unknown>> | Record<string, unknown>) => {
      try {
        const s = await dialTunnel({ url, tls: { ca, ...tls }, connectTimeoutMs: 5000, session: { helloExt: ext } });
        const err = await new Promise<Error | undefined>((resolve) => s.once("close", resolve));
        return err?.message ?? "closed";
      } catch (err) {
        return (err as Error).message;
      }
    };

    expect(await refusal({}, () => ({}))).toMatch(/no proof of identity/);

    const rogueCa = await makeCa("Rogue CA");
    const rogue = await makeLeaf({ ca: rogueCa, dnsNames: ["rogue"] });
    // At the TLS handshake (the uWS ca_file gate)...
    expect(await refusal({ cert: rogue.certPem, key: rogue.keyPem }, () => ({}))).toMatch(/socket hang up|ECONNRESET|alert|certificate|closed/i);
    // ...and inside the tunnel when it presents no TLS certificate at all.
    expect(await refusal({}, (peer) => answerTunnelChallenge(peer?.ext, rogue))).toMatch(/not issued by the tenant CA/);

    const { keyPem, csrPem } = await createKeyAndCsr("expired");
    const past = new Date(Date.now() - 30 * 86_400_000);
    const expired = await d.control.context.ca.signCsr(csrPem, "connector", "expired-connector", 1, past);
    expect(await refusal({}, (peer) => answerTunnelChallenge(peer?.ext, { keyPem, certPem: expired.certPem }))).toMatch(/expired on/);

    const agent = await d.connector("revoked");
    await agent.start();
    await connected(d, agent);
    const identity = agent.identity;
    await agent.stop(100);
    await d.control.context.store.revokeCertificates(agent.id, new Date().toISOString());
    await until(() => d.engine.config!.revokedSerials.length > 0, 5000, "revocation in the engine feed");
    expect(await refusal({ cert: identity.certPem, key: identity.keyPem }, (peer) => answerTunnelChallenge(peer?.ext, identity))).toMatch(/revoked or unknown/);
  }, 30_000);

  it("marks a connector idle for 10 days inactive, and active again when it pulls", async () => {
    const d = (deployment = await startDeployment({ tls: "off" }));
    const agent = await d.connector("idle", { connectionsPerEngine: 1 });
    await agent.start();
    await agent.stop(100);
    d.clock.advanceDays(9);
    expect(await d.control.sweep()).toBe(0);
    d.clock.advanceDays(2);
    expect(await d.control.sweep()).toBe(1);
    const admin = await d.control.mintToken({ name: "root", roles: ["Global Administrator"] }); // on the control's clock
    expect((await api(d.control.url, "GET", `/api/v1/connectors/${agent.id}`, admin)).body.status).toBe("inactive");
    const back = new ConnectorAgent({ stateDir: join(d.dir, "idle"), version: "test", now: d.clock.now, logger: quietLogger, connectionsPerEngine: 1 });
    await back.start();
    await back.stop(100);
    expect((await api(d.control.url, "GET", `/api/v1/connectors/${agent.id}`, admin)).body.status).toBe("active");
  }, 30_000);

  it("pushes a change to the engine and the connectors within 2 s", async () => {
    const d = (deployment = await startDeployment({ tls: "off" }));
    const agent = await d.connector("feed", { connectionsPerEngine: 1 });
    await agent.start();
    await until(() => d.engine.config !== null, 5000);
    const engineVersion = d.engine.config!.version;
    const connectorVersion = agent.config!.version;
    const t0 = Date.now();
    const res = await api(d.control.url, "POST", "/api/v1/apps", d.admin, { name: "Hr", internalUrl: "http://hr.corp/", externalUrl: "https://hr.contoso.com/" });
    expect(res.status).toBe(201);
    await until(() => d.engine.config!.apps.some((a) => a.name === "Hr") && agent.config!.apps.some((a) => a.internalUrl === "http://hr.corp/"), 2000, "the change at engine and connector");
    expect(Date.now() - t0).toBeLessThan(2000);
    expect(d.engine.config!.version).toBeGreaterThan(engineVersion);
    expect(agent.config!.version).toBeGreaterThan(connectorVersion);
  }, 30_000);
});
