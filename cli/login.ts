/**
 * Interactive sign-in for the CLI with the OAuth 2.0 device authorization grant (RFC 8628):
 * print a URL and a code, the admin signs in with a browser anywhere, the CLI polls for the
 * access token. Fits connector hosts, which rarely have a browser of their own.
 */
import { parseArgs } from "node:util";
import { Agent, request } from "undici";
import { CLI_CLIENT_ID, CONTROL_API_AUDIENCE } from "../control/idp/constants.js";
import { controlTrust } from "../control/client/client.js";
import { UsageError } from "./admin.js";
import { PosternError } from "../engine/errors/catalogue.js";


export async function deviceLogin(controlUrl: string, caPem: string | undefined, out: (line: string) => void): Promise<string> {
  const agent = new Agent({ connect: { ca: controlTrust(caPem) } });
  try {
    const form = async (url: string, fields: Record<string, string>) => {
      const res = await request(url, { method: "POST", dispatcher: agent, headers: { "content-type": "application/x-www-form-urlencoded" }, body: new URLSearchParams(fields).toString() });
      return { status: res.statusCode, body: (await res.body.json()) as Record<string, string> };
    };
    const discovery = await request(`${controlUrl.replace(/\/$/, "")}/oidc/.well-known/openid-configuration`, { dispatcher: agent });
    if (discovery.statusCode !== 200) throw new PosternError("POSTERN_AUTH_UNAVAILABLE", `${controlUrl} has no built-in IdP (HTTP ${discovery.statusCode}); sign in at your IdP and pass --token`);
    const meta = (await discovery.body.json()) as { device_authorization_endpoint: string; token_endpoint: string };
    const start = await form(meta.device_authorization_endpoint, { client_id: CLI_CLIENT_ID, scope: "openid", resource: CONTROL_API_AUDIENCE });
    if (start.status !== 200) throw new PosternError("POSTERN_TOKEN_INVALID", `device sign-in refused: ${start.body.error_description ?? start.body.error}`);
    out(`To sign in, open ${start.body.verification_uri_complete ?? start.body.verification_uri} and confirm the code ${start.body.user_code}`);
    let interval = Number(start.body.interval ?? 5) * 1000;
    const deadline = Date.now() + Number(start.body.expires_in ?? 600) * 1000;
    while (Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, interval));
      const token = await form(meta.token_endpoint, {
        grant_type: "urn:ietf:params:oauth:grant-type:device_code", device_code: start.body.device_code!, client_id: CLI_CLIENT_ID,
      });
      if (token.status === 200 && token.body.access_token) return token.body.access_token;
      if (token.body.error === "slow_down") interval += 5000;
      else if (token.body.error !== "authorization_pending") throw new PosternError("POSTERN_TOKEN_INVALID", `sign-in failed: ${token.body.error_description ?? token.body.error}`);
    }
    throw new PosternError("POSTERN_TOKEN_INVALID", "sign-in timed out: the code expired before it was confirmed");
  } finally {
    await agent.close();
  }
}

const HELP = `Usage: postern login --control URL [--ca-file F]

Signs in at the control plane's built-in IdP with a device code and prints the access token,
e.g. export POSTERN_TOKEN=$(postern login --control https://control.example.com)
`;

export async function runLogin(args: string[]): Promise<number> {
  const { values } = parseArgs({ args, options: { control: { type: "string" }, "ca-file": { type: "string" }, help: { type: "boolean", short: "h", default: false } }, strict: true });
  if (values.help) {
    process.stdout.write(HELP);
    return 0;
  }
  if (!values.control) throw new UsageError("postern login needs --control URL");
  const { readFileSync } = await import("node:fs");
  const token = await deviceLogin(values.control, values["ca-file"] ? readFileSync(values["ca-file"], "utf8") : undefined, (l) => process.stderr.write(`${l}\n`));
  process.stdout.write(`${token}\n`);
  return 0;
}
