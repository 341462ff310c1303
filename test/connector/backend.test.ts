import { createServer as createHttpsServer } from "node:https";
import { createServer, type Server } from "node:http";
import { connect, type AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { api } from "../fixtures/control.js";
import { makeLeaf } from "../fixtures/domain-certs.js";
import { until } from "../fixtures/lifecycle.js";
import { edgeRequest, startBackend, startRig, type Backend, type Rig } from "../fixtures/datapath.js";

describe("connector: backend TLS, app test, outbound proxy", () => {
  let rig: Rig;
  let backend: Backend;
  let tlsBackend: Server;
  let tlsPort: number;

  beforeAll(async () => {
    backend = await startBackend((_req, res) => res.writeHead(200).end("plain"));
    const selfSigned = await makeLeaf({ dnsNames: ["localhost"] });
    tlsBackend = createHttpsServer({ cert: selfSigned.certPem, key: selfSigned.keyPem }, (_req, res) => res.writeHead(200).end("secure"));
    await new Promise<void>((resolve) => tlsBackend.listen(0, "127.0.0.1", resolve));
    tlsPort = (tlsBackend.address() as AddressInfo).port;
    rig = await startRig();
  }, 30_000);
  afterAll(async () => {
    await rig.close();
    await backend.close();
    tlsBackend.close();
  });

  it("validates the backend certificate when the app says so, and not when it does not", async () => {
    const strict = await rig.publish({ name: "Strict", internalUrl: `https://localhost:${tlsPort}/` });
    const lax = await rig.publish({ name: "Lax", internalUrl: `https://localhost:${tlsPort}/lax/`, validateBackendTls: false });
    const refused = await edgeRequest(rig, strict.host, "/");
    expect(refused.status).toBe(502);
    expect(refused.text).toMatch(/could not reach/);
    const served = await edgeRequest(rig, lax.host, "/");
    expect(served.status).toBe(200);
    expect(served.text).toBe("secure");
  });

  it("`app test` probes from a connector and names the likely fix", async () => {
    const test = async (name: string) => (await api(rig.control.url, "POST", `/api/v1/apps/${name}/test?wait=10`, rig.admin)).body;
    await rig.publish({ name: "Fine", internalUrl: `${backend.origin}/` });
    const fine = await test("Fine");
    expect(fine.connector).toBe(rig.agents[0]!.id);
    expect(fine.report).toMatchObject({ ok: true, likelyFix: "" });
    expect(fine.report.steps.map((s: { step: string; ok: boolean }) => `${s.step}:${s.ok}`)).toEqual(["dns:true", "tcp:true", "http:true"]);

    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, "127.0.0.1", resolve));
    const deadPort = (closed.address() as AddressInfo).port;
    closed.close();
    await rig.publish({ name: "Down", internalUrl: `http://localhost:${deadPort}/` });
    expect((await test("Down")).report).toMatchObject({ ok: false, likelyFix: expect.stringMatching(/Nothing accepts connections on localhost:\d+/) });

    await rig.publish({ name: "Nowhere", internalUrl: "http://no-such-host.invalid/" });
    expect((await test("Nowhere")).report).toMatchObject({ ok: false, steps: [{ step: "dns", ok: false }], likelyFix: expect.stringMatching(/cannot resolve no-such-host\.invalid/) });

    expect((await test("Strict")).report).toMatchObject({ ok: false, likelyFix: expect.stringMatching(/not trusted by the connector host/) });

    await api(rig.control.url, "POST", "/api/v1/connector-groups", rig.admin, { name: "Empty" });
    await rig.publish({ name: "Orphan", internalUrl: `${backend.origin}/orphan/`, connectorGroup: "Empty" });
    const orphan = (await api(rig.control.url, "POST", "/api/v1/apps/Orphan/test?wait=1", rig.admin)).body;
    expect(orphan).toMatchObject({ connector: null, message: expect.stringMatching(/no connector of group "Empty" answered/) });
  }, 30_000);

  it("dials the engine through an outbound HTTP proxy (CONNECT)", async () => {
    const connects: string[] = [];
    const proxy = createServer((_req, res) => res.writeHead(405).end());
    proxy.on("connect", (req, clientSocket, head) => {
      connects.push(req.url!);
      const [host, port] = req.url!.split(":");
      const upstream = connect(Number(port), host, () => {
        clientSocket.write("HTTP/1.1 200 Connection Established\r\n\r\n");
        upstream.write(head);
        upstream.pipe(clientSocket);
        clientSocket.pipe(upstream);
      });
      upstream.on("error", () => clientSocket.destroy());
      clientSocket.on("error", () => upstream.destroy());
    });
    await new Promise<void>((resolve) => proxy.listen(0, "127.0.0.1", resolve));
    const proxyUrl = `http://127.0.0.1:${(proxy.address() as AddressInfo).port}`;
    const agent = await rig.addConnector("proxied", { proxyUrl, group: "Empty" });
    await until(() => rig.engine.registry.connections(agent.id).length === 2, 5000, "proxied tunnels");
    const tunnelPort = new URL(rig.engine.tunnelUrl).port;
    expect(connects).toEqual([`127.0.0.1:${tunnelPort}`, `127.0.0.1:${tunnelPort}`]);
    const orphan = await edgeRequest(rig, "orphan.contoso.test", "/");
    expect(orphan.status).toBe(200);
    expect(orphan.text).toBe("plain");
    await agent.stop(100);
    proxy.close();
  }, 30_000);
});
