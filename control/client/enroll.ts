/**
 * Registration with control, the same for connectors and engines: make a key pair and CSR
 * here, send the CSR with an admin's token to control, store the certificate beside the key.
 */
import { hostname } from "node:os";
import { Agent } from "undici";
import { createKeyAndCsr } from "../../engine/identity/csr.js";
import { saveIdentity, type StoredIdentity } from "../../engine/identity/files.js";
import { controlRequest, controlTrust } from "./client.js";

export interface EnrollOptions {
  readonly kind: "connector" | "engine";
  readonly controlUrl: string;
  /** An admin's access token from the IdP. */
  readonly token: string;
  readonly stateDir: string;
  /** CA that issued control's TLS certificate, when it is not publicly trusted. */
  readonly controlCaPem?: string;
  /** More request fields: the connector's group and version, the engine's tunnel URL. */
  readonly fields: Record<string, unknown>;
}

export async function enroll(options: EnrollOptions): Promise<StoredIdentity> {
  const host = hostname();
  const { keyPem, csrPem } = await createKeyAndCsr(host);
  const agent = new Agent({ connect: { ca: controlTrust(options.controlCaPem) } });
  try {
    const path = options.kind === "connector" ? "/api/v1/connectors/register" : "/api/v1/engines/register";
    const issued = await controlRequest<{ id: string; certificate: string; caCertificate: string }>(
      agent, options.controlUrl, "POST", path, { authorization: `Bearer ${options.token}` },
      { csr: csrPem, ...(options.kind === "connector" ? { hostName: host } : {}), ...options.fields },
    );
    return saveIdentity(options.stateDir, { kind: options.kind, id: issued.id, controlUrl: options.controlUrl, keyPem, certPem: issued.certificate, caPem: issued.caCertificate });
  } finally {
    await agent.close();
  }
}
