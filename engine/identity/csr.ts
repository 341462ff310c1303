/**
 * Key pair and certificate signing request made on the host that will hold the key (a
 * connector, or an engine at bootstrap): only the CSR leaves the host. P-256, because identity
 * proofs are ES256.
 */
import "reflect-metadata";
import * as x509 from "@peculiar/x509";
import { webcrypto } from "node:crypto";

x509.cryptoProvider.set(globalThis.crypto);

const EC_P256 = { name: "ECDSA", namedCurve: "P-256" } as const;
const SIGNING = { name: "ECDSA", hash: "SHA-256" } as const;

export async function createKeyAndCsr(hostName: string): Promise<{ keyPem: string; csrPem: string }> {
  const keys = (await webcrypto.subtle.generateKey(EC_P256, true, ["sign", "verify"])) as CryptoKeyPair;
  const csr = await x509.Pkcs10CertificateRequestGenerator.create({
    // The CN is only a hint for operators; control sets the subject of the certificate it issues.
    name: [{ CN: [hostName.replace(/[,=+<>#;\\"]/g, "_").slice(0, 64) || "postern"] }],
    keys,
    signingAlgorithm: SIGNING,
  });
  const pkcs8 = Buffer.from(await webcrypto.subtle.exportKey("pkcs8", keys.privateKey));
  return { keyPem: toPem(pkcs8, "PRIVATE KEY"), csrPem: csr.toString("pem") };
}

function toPem(der: Buffer, label: string): string {
  const body = der.toString("base64").replace(/.{1,64}/g, "$&\n");
  return `-----BEGIN ${label}-----\n${body}-----END ${label}-----\n`;
}
