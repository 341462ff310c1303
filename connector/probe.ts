/**
 * `postern app test`: the connector checks an app's internal URL step by step from where it
 * runs (DNS, TCP, TLS, HTTP) and says what the likely fix is for the first step that fails.
 */
import { lookup } from "node:dns/promises";
import { connect as tcpConnect, type Socket } from "node:net";
import { connect as tlsConnect, type TLSSocket } from "node:tls";
import { Agent, request } from "undici";

export interface ProbeStep {
  readonly step: "dns" | "tcp" | "tls" | "http";
  readonly ok: boolean;
  readonly ms: number;
  readonly detail: string;
}

export interface ProbeReport {
  readonly internalUrl: string;
  readonly ok: boolean;
  readonly steps: readonly ProbeStep[];
  /** What to do about the first failure; empty when every step passed. */
  readonly likelyFix: string;
}


export async function probe(internalUrl: string, validateTls: boolean, stepTimeoutMs: number): Promise<ProbeReport> {
  const url = new URL(internalUrl);
  const port = Number(url.port || (url.protocol === "https:" ? 443 : 80));
  const steps: ProbeStep[] = [];
  const done = (likelyFix: string): ProbeReport => ({ internalUrl, ok: likelyFix === "", steps, likelyFix });
  const timed = async <T>(fn: () => Promise<T>): Promise<{ value?: T; err?: Error & { code?: string }; ms: number }> => {
    const start = performance.now();
    try {
      const value = await fn();
      return { value, ms: Math.round(performance.now() - start) };
    } catch (err) {
      return { err: err as Error & { code?: string }, ms: Math.round(performance.now() - start) };
    }
  };

  const dns = await timed(() => lookup(url.hostname, { all: true }));
  if (dns.err) {
    steps.push({ step: "dns", ok: false, ms: dns.ms, detail: `${url.hostname}: ${dns.err.code ?? dns.err.message}` });
    return done(`The connector host cannot resolve ${url.hostname}. Add a DNS record it can see, or publish the app with a name the connector's DNS resolves.`);
  }
  const addresses = dns.value!.map((a) => a.address);
  steps.push({ step: "dns", ok: true, ms: dns.ms, detail: `${url.hostname} -> ${addresses.join(", ")}` });

  const tcp = await timed(() => new Promise<Socket>((resolve, reject) => {
    const socket = tcpConnect({ host: url.hostname, port, autoSelectFamily: true, timeout: stepTimeoutMs });
    socket.once("connect", () => resolve(socket));
    socket.once("timeout", () => reject(Object.assign(new Error("timed out"), { code: "ETIMEDOUT" })));
    socket.once("error", reject);
  }));
  if (tcp.err) {
    steps.push({ step: "tcp", ok: false, ms: tcp.ms, detail: `${url.hostname}:${port}: ${tcp.err.code ?? tcp.err.message}` });
    return done(tcp.err.code === "ECONNREFUSED"
      ? `Nothing accepts connections on ${url.hostname}:${port} from the connector host. Check that the app runs and listens on that port.`
      : `The connector cannot reach ${url.hostname}:${port} (${tcp.err.code ?? "error"}). A firewall between the connector host and the app probably drops the traffic.`);
  }
  steps.push({ step: "tcp", ok: true, ms: tcp.ms, detail: `connected to ${tcp.value!.remoteAddress}:${port}` });
  tcp.value!.destroy();

  if (url.protocol === "https:") {
    const tls = await timed(() => new Promise<TLSSocket>((resolve, reject) => {
      const socket = tlsConnect({ host: url.hostname, port, servername: url.hostname, rejectUnauthorized: false, timeout: stepTimeoutMs });
      socket.once("secureConnect", () => resolve(socket));
      socket.once("timeout", () => reject(Object.assign(new Error("TLS handshake timed out"), { code: "ETIMEDOUT" })));
      socket.once("error", reject);
    }));
    if (tls.err) {
      steps.push({ step: "tls", ok: false, ms: tls.ms, detail: tls.err.message });
      return done(`The TLS handshake with ${url.hostname}:${port} failed. Check that the app speaks HTTPS on this port, or publish it with http://.`);
    }
    const socket = tls.value!;
    const cert = socket.getPeerCertificate();
    const trusted = socket.authorized;
    const reason = socket.authorizationError ? String(socket.authorizationError) : "";
    socket.destroy();
    steps.push({ step: "tls", ok: trusted || !validateTls, ms: tls.ms, detail: `${socket.getProtocol()} certificate ${cert.subject?.CN ?? "?"} issued by ${cert.issuer?.CN ?? "?"}, valid to ${cert.valid_to}${trusted ? ", trusted" : `, not trusted: ${reason}`}` });
    if (!trusted && validateTls) {
      return done(`The app's certificate is not trusted by the connector host (${reason}). Install its issuing CA on the connector host, or turn off backend TLS validation for this app (postern app update NAME --no-validate-backend-tls).`);
    }
  }

  const agent = new Agent({ connect: { rejectUnauthorized: validateTls } });
  const http = await timed(async () => {
    const res = await request(internalUrl, { dispatcher: agent, headersTimeout: stepTimeoutMs, bodyTimeout: stepTimeoutMs });
    await res.body.dump();
    return res.statusCode;
  });
  await agent.close();
  if (http.err) {
    steps.push({ step: "http", ok: false, ms: http.ms, detail: http.err.message });
    return done(`The app accepted the connection but its HTTP answer failed (${http.err.code ?? http.err.message}). Check that it speaks HTTP/1.1 on this port.`);
  }
  const status = http.value!;
  steps.push({ step: "http", ok: status < 500, ms: http.ms, detail: `GET ${internalUrl} -> ${status}` });
  if (status >= 500) return done(`The app answers ${status}: it is reachable, but failing. Check the app's own logs.`);
  return done("");
}
