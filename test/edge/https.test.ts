import { connect, type TLSSocket } from "node:tls";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { api } from "../fixtures/control.js";
import { makeCa, makeLeaf, toPfx } from "../fixtures/domain-certs.js";
import { until } from "../fixtures/lifecycle.js";
import { startBackend, startRig, type Backend, type Rig } from "../fixtures/datapath.js";

/** One HTTPS request over a raw TLS socket with the given SNI; returns the peer certificate's names and the response. */
function httpsGet(port: number, servername: string, host: string, ca: string[]): Promise<{ names: string; authorized: boolean; response: string }> {
  return new Promise((resolve, reject) => {
    const socket: TLSSocket = connect({ host: "127.0.0.1", port, servername, ca, rejectUnauthorized: false }, () => {
      const names = socket.getPeerCertificate().subjectaltname ?? "";
      const authorized = socket.authorized;
      socket.write(`GET /whoami HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`);
      let response = "";
      socket.on("data", (d) => (response += d.toString()));
      socket.on("end", () => resolve({ names, authorized, response }));
    });
    socket.on("error", reject);
  });
}

describe("HTTPS listener with SNI per custom domain", () => {
  let rig: Rig;
  let backend: Backend;
  beforeAll(async () => {
    backend = await startBackend((req, res) => res.writeHead(200, { "content-type": "text/plain" }).end(`proto=${req.headers["x-forwarded-proto"]} host=${req.headers["x-forwarded-host"]}`));
    rig = await startRig({ engine: { httpsPort: 0 } });
  }, 30_000);
  afterAll(async () => {
    await rig.close();
    await backend.close();
  });

  it("serves each custom domain with its own certificate and everything else with the engine's", async () => {
    const publicCa = await makeCa("Public Test CA");
    const leaf = await makeLeaf({ ca: publicCa, dnsNames: ["shop.contoso.com"] });
    await rig.publish({ name: "Shop", internalUrl: `${backend.origin}/shop/`, externalUrl: "https://shop.contoso.com/" });
    const uploaded = await api(rig.control.url, "PUT", "/api/v1/apps/Shop/certificate", rig.admin, { format: "pem", pem: leaf.certPem + leaf.keyPem });
    expect(uploaded.status).toBe(200);
    await until(() => (rig.engine.config?.certificates.length ?? 0) === 1, 5000, "the certificate in the engine feed");
    const port = rig.engine.edge.httpsPort!;

    const shop = await httpsGet(port, "shop.contoso.com", "shop.contoso.com", [publicCa.certPem]);
    expect(shop.names).toBe("DNS:shop.contoso.com");
    expect(shop.authorized).toBe(true);
    expect(shop.response).toMatch(/^HTTP\/1\.1 200/);
    expect(shop.response).toContain("proto=https host=shop.contoso.com");

    const other = await httpsGet(port, "other.contoso.com", "other.contoso.com", [publicCa.certPem]);
    expect(other.names).not.toContain("shop.contoso.com"); // the engine's default certificate
    expect(other.response).toMatch(/^HTTP\/1\.1 404/);
  });

  it("serves a custom domain uploaded as PFX (converted to PEM by control), chain included", async () => {
    const publicCa = await makeCa("Public Test CA 2");
    const leaf = await makeLeaf({ ca: publicCa, dnsNames: ["*.portal.contoso.com"] });
    await rig.publish({ name: "Portal", internalUrl: `${backend.origin}/portal/`, externalUrl: "https://hr.portal.contoso.com/" });
    const pfxBase64 = toPfx(leaf, "pfx-pass", { chainPem: publicCa.certPem });
    const uploaded = await api(rig.control.url, "PUT", "/api/v1/apps/Portal/certificate", rig.admin, { format: "pfx", pfxBase64, password: "pfx-pass" });
    expect(uploaded.status).toBe(200);
    await until(() => (rig.engine.config?.certificates ?? []).some((c) => c.host === "hr.portal.contoso.com"), 5000, "the PFX certificate in the engine feed");
    const hr = await httpsGet(rig.engine.edge.httpsPort!, "hr.portal.contoso.com", "hr.portal.contoso.com", [publicCa.certPem]);
    expect(hr.names).toBe("DNS:*.portal.contoso.com");
    expect(hr.authorized).toBe(true);
    expect(hr.response).toContain("proto=https host=hr.portal.contoso.com");
  });
});
