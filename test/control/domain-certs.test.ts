import { beforeAll, describe, expect, it } from "vitest";
import { checkDomainCertificate, nameCovers, type CertificateUpload } from "../../control/domain-certs.js";
import { makeCa, makeLeaf, toPfx, type KeyedCert } from "../fixtures/domain-certs.js";

const DAY = 86_400_000;
const HOST = "app.contoso.com";

describe("custom-domain certificate checks", () => {
  let ca: Awaited<ReturnType<typeof makeCa>>;
  let good: KeyedCert;
  let other: KeyedCert;
  const cases: { name: string; upload: () => Promise<CertificateUpload> | CertificateUpload; host?: string; error: RegExp | null }[] = [];

  beforeAll(async () => {
    ca = await makeCa();
    good = await makeLeaf({ ca, dnsNames: [HOST] });
    other = await makeLeaf({ ca, dnsNames: ["other.contoso.com"] });
  });

  const pem = (c: KeyedCert, withKey = true): CertificateUpload => ({ format: "pem", pem: c.certPem + ca.certPem + (withKey ? c.keyPem : "") });
  cases.push(
    { name: "a valid PEM chain with its key", upload: () => pem(good), error: null },
    { name: "a valid PFX with the right password", upload: () => ({ format: "pfx", pfxBase64: toPfx(good, "s3cret", { chainPem: ca.certPem }), password: "s3cret" }), error: null },
    { name: "an expired certificate", upload: async () => pem(await makeLeaf({ ca, dnsNames: [HOST], notBefore: new Date(Date.now() - 400 * DAY), notAfter: new Date(Date.now() - DAY) })), error: /expired on/ },
    { name: "a certificate not yet valid", upload: async () => pem(await makeLeaf({ ca, dnsNames: [HOST], notBefore: new Date(Date.now() + 5 * DAY) })), error: /not valid before/ },
    { name: "a self-signed certificate", upload: async () => pem(await makeLeaf({ dnsNames: [HOST] })), error: /self-signed/ },
    { name: "a PEM without its private key", upload: () => pem(good, false), error: /no private key/ },
    { name: "a PEM whose key belongs to another certificate", upload: () => ({ format: "pem", pem: good.certPem + other.keyPem }), error: /does not match/ },
    { name: "a PFX with a wrong password", upload: () => ({ format: "pfx", pfxBase64: toPfx(good, "s3cret"), password: "guess" }), error: /wrong password/ },
    { name: "a PFX without a private key", upload: () => ({ format: "pfx", pfxBase64: toPfx(good, "s3cret", { withKey: false }), password: "s3cret" }), error: /no private key/ },
    { name: "a certificate for another host", upload: () => pem(other), error: /covers other\.contoso\.com, not app\.contoso\.com/ },
    { name: "a wildcard one label up", upload: async () => pem(await makeLeaf({ ca, dnsNames: ["*.contoso.com"] })), error: null },
    { name: "a wildcard two labels up (*.a.com does not cover x.b.a.com)", upload: async () => pem(await makeLeaf({ ca, dnsNames: ["*.a.com"] })), host: "x.b.a.com", error: /covers \*\.a\.com, not x\.b\.a\.com/ },
    { name: "text that is not a certificate", upload: () => ({ format: "pem", pem: "hello" }), error: /no PEM certificate/ },
    { name: "bytes that are not a PFX", upload: () => ({ format: "pfx", pfxBase64: Buffer.from("nonsense").toString("base64"), password: "" }), error: /cannot be read/ },
  );

  it.each(cases.map((c) => [c.name, c] as const))("%s", async (_name, c) => {
    const result = checkDomainCertificate(await c.upload(), c.host ?? HOST, new Date());
    if (c.error === null) {
      expect(result.ok, JSON.stringify(result)).toBe(true);
    } else {
      expect(result.ok).toBe(false);
      if (!result.ok) {
        expect(result.problems[0]!.field).toBe("certificate");
        expect(result.problems[0]!.message).toMatch(c.error);
      }
    }
  });

  it.each([
    ["*.a.com", "b.a.com", true],
    ["*.a.com", "x.b.a.com", false],
    ["*.a.com", "a.com", false],
    ["a.com", "A.COM", true],
    ["a.com", "a.com.", true],
    ["*.a.com", ".a.com", false],
  ])("%s covers %s: %s", (name, host, covers) => {
    expect(nameCovers(name, host)).toBe(covers);
  });
});
