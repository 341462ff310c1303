/**
 * Apps: the list with each app's status, and one page per app to add or edit every setting
 * (validation messages at the field they concern), toggle maintenance, run "Test
 * application" and upload a custom-domain certificate.
 */
import { useEffect, useState, type FormEvent } from "react";
import { api, ApiError, type AppView, type ConnectorView, type Problem } from "../api.js";
import { Badge, CheckField, Failure, Link, Loading, navigate, SelectField, Table, TextField, useLoad } from "../components.js";

/** Every app setting, as the form shows it (the API's schema is control/contract/apps.ts). */
type Kind = "text" | "url" | "check" | "number" | "list" | "map" | { select: readonly (readonly [string, string])[] } | "group";
interface Setting {
  readonly path: string;
  readonly label: string;
  readonly kind: Kind;
  readonly help?: string;
  readonly required?: boolean;
}

const SECTIONS: readonly { legend: string; settings: readonly Setting[] }[] = [
  {
    legend: "Basics",
    settings: [
      { path: "name", label: "Name", kind: "text", required: true, help: "Letters, digits, space, '.', '_' or '-'." },
      { path: "internalUrl", label: "Internal URL", kind: "url", required: true, help: "Where the connector finds the app on the private network, e.g. http://wiki.corp/." },
      { path: "externalUrl", label: "External URL", kind: "url", help: "Where users open it; empty: <name>.<tenant>.<domain suffix>." },
      { path: "connectorGroup", label: "Connector group", kind: "group" },
      { path: "preAuthentication", label: "Pre-authentication", kind: { select: [["oidc", "Sign in first (OpenID Connect)"], ["passthrough", "Passthrough (the app signs users in)"]] } },
      { path: "backendTimeout", label: "Backend timeout", kind: { select: [["default", "Default (85 s)"], ["long", "Long (180 s)"]] } },
      { path: "customHomePage", label: "Custom home page", kind: "url", help: "Where My Apps opens it; must sit under the external URL." },
      { path: "maintenanceMode", label: "Maintenance mode (users see a maintenance page)", kind: "check" },
    ],
  },
  {
    legend: "Translation and backend",
    settings: [
      { path: "translateHeaders", label: "Translate URLs in headers", kind: "check" },
      { path: "translateBody", label: "Translate URLs in the body (HTML, CSS)", kind: "check" },
      { path: "validateBackendTls", label: "Validate the backend's TLS certificate", kind: "check" },
    ],
  },
  {
    legend: "Access",
    settings: [
      { path: "assignments.users", label: "Assigned users", kind: "list", help: "One per line; with no users and no groups, every signed-in user may open the app." },
      { path: "assignments.groups", label: "Assigned groups", kind: "list", help: "One per line." },
      { path: "policy.requireMfa", label: "Require multi-factor authentication", kind: "check" },
      { path: "policy.allowedIpRanges", label: "Allowed client address ranges", kind: "list", help: "CIDR ranges, one per line; empty: any address." },
      { path: "policy.sessionLifetimeMinutes", label: "Session lifetime (minutes)", kind: "number" },
      { path: "ssoHeaders", label: "SSO headers to the backend", kind: "map", help: "One per line: Header-Name: claim (e.g. X-Remote-User: preferred_username)." },
    ],
  },
  {
    legend: "Session cookie",
    settings: [
      { path: "cookie.httpOnly", label: "HttpOnly", kind: "check" },
      { path: "cookie.secure", label: "Secure (https external URLs)", kind: "check" },
      { path: "cookie.persistent", label: "Persistent (survives a browser restart)", kind: "check" },
      { path: "cookie.sameSite", label: "SameSite", kind: { select: [["lax", "Lax"], ["strict", "Strict"], ["none", "None"]] } },
    ],
  },
  {
    legend: "Identity provider",
    settings: [
      { path: "oidc.discoveryUrl", label: "External issuer's discovery URL", kind: "url", help: "Empty: the built-in IdP." },
      { path: "oidc.clientId", label: "Client id at that issuer", kind: "text" },
      { path: "oidc.claims.username", label: "Username claim", kind: "text" },
      { path: "oidc.claims.groups", label: "Groups claim", kind: "text" },
      { path: "oidc.claims.roles", label: "Roles claim", kind: "text" },
      { path: "oidc.claims.amr", label: "Authentication methods claim", kind: "text" },
      { path: "oidc.apiAudience", label: "API audience for bearer tokens", kind: "text", help: "Empty: the external URL." },
      { path: "oidc.apiScopes", label: "Accepted API scopes", kind: "list" },
      { path: "oidc.apiRoles", label: "Accepted API roles", kind: "list" },
      { path: "oidc.identityAssertion", label: "Send a signed identity assertion (X-Postern-Identity)", kind: "check" },
    ],
  },
];

const DEFAULTS: Record<string, unknown> = {
  name: "", internalUrl: "", externalUrl: "", connectorGroup: "Default", preAuthentication: "oidc", backendTimeout: "default", customHomePage: "", maintenanceMode: false,
  translateHeaders: true, translateBody: false, validateBackendTls: true, assignments: { users: [], groups: [] },
  policy: { requireMfa: false, allowedIpRanges: [], sessionLifetimeMinutes: 480 }, ssoHeaders: {},
  cookie: { httpOnly: true, secure: true, persistent: false, sameSite: "lax" },
  oidc: { discoveryUrl: "", clientId: "", claims: { username: "preferred_username", groups: "groups", roles: "roles", amr: "amr" }, apiAudience: "", apiScopes: [], apiRoles: [], identityAssertion: false },
};

function get(obj: unknown, path: string): unknown {
  return path.split(".").reduce<unknown>((o, k) => (o as Record<string, unknown> | undefined)?.[k], obj);
}

function set(obj: Record<string, unknown>, path: string, value: unknown): Record<string, unknown> {
  const [head, ...rest] = path.split(".");
  return { ...obj, [head!]: rest.length === 0 ? value : set((obj[head!] as Record<string, unknown>) ?? {}, rest.join("."), value) };
}

/** The form's values as the API takes them: empty optional texts left out. */
function toSettings(values: Record<string, unknown>): Record<string, unknown> {
  const drop = (o: Record<string, unknown>): Record<string, unknown> =>
    Object.fromEntries(Object.entries(o).filter(([, v]) => v !== "").map(([k, v]) => [k, v && typeof v === "object" && !Array.isArray(v) ? drop(v as Record<string, unknown>) : v]));
  return drop(values);
}

export function AppsPage() {
  const apps = useLoad(() => api<{ apps: AppView[] }>("GET", "/api/v1/apps"), []);
  const connectors = useLoad(() => api<{ connectors: ConnectorView[] }>("GET", "/api/v1/connectors").catch(() => ({ connectors: [] as ConnectorView[] })), []);
  if (apps.error) return <Failure error={apps.error} />;
  if (!apps.value) return <Loading />;
  const active = new Set((connectors.value?.connectors ?? []).filter((c) => c.status === "active").map((c) => c.group.toLowerCase()));
  return (
    <>
      <p><Link className="button" href="/admin/apps/new">Add an app</Link></p>
      <Table caption="Published apps" head={["Name", "Status", "External URL", "Internal URL", "Pre-authentication", "Connector group"]} rows={apps.value.apps.length} empty="No app is published yet.">
        {apps.value.apps.map((a) => (
          <tr key={a.name}>
            <th scope="row"><Link href={`/admin/apps/${encodeURIComponent(a.name)}`}>{a.name}</Link></th>
            <td>{a.maintenanceMode ? <Badge tone="warn">Maintenance</Badge> : active.has(a.connectorGroup.toLowerCase()) ? <Badge tone="good">Ready</Badge> : <Badge tone="bad">No active connector</Badge>}</td>
            <td><a href={a.externalUrl}>{a.externalUrl}</a></td>
            <td>{a.internalUrl}</td>
            <td>{a.preAuthentication === "oidc" ? "Sign in first" : "Passthrough"}</td>
            <td>{a.connectorGroup}</td>
          </tr>
        ))}
      </Table>
    </>
  );
}

/** Add (name undefined) or edit one app. */
export function AppPage(props: { name?: string }) {
  const loaded = useLoad(async () => {
    const groups = (await api<{ groups: { name: string }[] }>("GET", "/api/v1/connector-groups")).groups.map((g) => g.name);
    const app = props.name === undefined ? undefined : await api<AppView>("GET", `/api/v1/apps/${encodeURIComponent(props.name)}`);
    return { groups, app };
  }, [props.name]);
  if (loaded.error) return <Failure error={loaded.error} />;
  if (!loaded.value) return <Loading />;
  return <AppEditor key={props.name ?? "new"} app={loaded.value.app} groups={loaded.value.groups} reload={loaded.reload} />;
}

function AppEditor(props: { app: AppView | undefined; groups: readonly string[]; reload: () => void }) {
  const start = props.app ? merge(DEFAULTS, props.app) : DEFAULTS;
  const [values, setValues] = useState<Record<string, unknown>>(start);
  const [problems, setProblems] = useState<readonly Problem[]>([]);
  const [status, setStatus] = useState("");
  const [busy, setBusy] = useState(false);
  // Bumped on each refusal: once the messages are on screen, focus moves to the first field that needs attention.
  const [focusProblem, setFocusProblem] = useState(0);
  useEffect(() => {
    if (focusProblem > 0) (document.querySelector<HTMLElement>("form [aria-invalid=true]") ?? document.getElementById("problems"))?.focus();
  }, [focusProblem]);
  const errorOf = (path: string) => problems.find((p) => p.field === path || p.field.startsWith(`${path}.`) || p.field.startsWith(`${path}[`))?.message;
  const unplaced = problems.filter((p) => !SECTIONS.some((s) => s.settings.some((f) => p.field === f.path || p.field.startsWith(`${f.path}.`) || p.field.startsWith(`${f.path}[`))));

  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setBusy(true);
    setStatus("");
    try {
      const body = toSettings(values);
      const saved = props.app
        ? await api<AppView>("PATCH", `/api/v1/apps/${encodeURIComponent(props.app.name)}`, body)
        : await api<AppView>("POST", "/api/v1/apps", body);
      setProblems([]);
      setStatus(`Saved: ${saved.name} is published at ${saved.externalUrl}`);
      if (!props.app || saved.name !== props.app.name) navigate(`/admin/apps/${encodeURIComponent(saved.name)}`);
      else setValues(merge(DEFAULTS, saved));
    } catch (err) {
      if (err instanceof ApiError && err.problems.length > 0) {
        setProblems(err.problems);
        setStatus("");
        setFocusProblem((n) => n + 1);
      } else {
        setProblems([]);
        setStatus(err instanceof Error ? err.message : String(err));
      }
    } finally {
      setBusy(false);
    }
  };

  return (
    <>
      {props.app && <AppActions app={props.app} reload={props.reload} />}
      <form onSubmit={(e) => void submit(e)} noValidate aria-label={props.app ? `Settings of ${props.app.name}` : "New app"}>
        {problems.length > 0 && (
          <div id="problems" className="notice error" role="alert" tabIndex={-1}>
            <p>{problems.length === 1 ? "One setting needs attention" : `${problems.length} settings need attention`}:</p>
            <ul>{problems.map((p) => <li key={p.field + p.message}>{labelOf(p.field)}: {p.message}</li>)}</ul>
          </div>
        )}
        {SECTIONS.map((section) => (
          <fieldset key={section.legend}>
            <legend>{section.legend}</legend>
            {section.settings.map((f) => <SettingField key={f.path} setting={f} values={values} groups={props.groups} error={errorOf(f.path)}
              onChange={(v) => setValues((old) => set(old, f.path, v))} />)}
          </fieldset>
        ))}
        {unplaced.length > 0 && <p className="field-error">{unplaced.map((p) => `${p.field}: ${p.message}`).join("; ")}</p>}
        <div className="actions">
          <button type="submit" disabled={busy}>{props.app ? "Save changes" : "Publish app"}</button>
          <Link href="/admin/">Cancel</Link>
        </div>
        <p role="status" aria-live="polite">{status}</p>
      </form>
    </>
  );
}

/** The label of the setting a problem's field path belongs to (the path itself when none does). */
function labelOf(field: string): string {
  for (const section of SECTIONS) {
    for (const f of section.settings) if (field === f.path || field.startsWith(`${f.path}.`) || field.startsWith(`${f.path}[`)) return f.label;
  }
  return field;
}

function merge(base: Record<string, unknown>, over: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = { ...base };
  for (const [k, v] of Object.entries(over)) {
    if (!(k in base)) continue; // views carry read-only fields the form does not edit
    const b = base[k];
    out[k] = b && typeof b === "object" && !Array.isArray(b) && v && typeof v === "object" && !Array.isArray(v) ? merge(b as Record<string, unknown>, v as Record<string, unknown>) : v;
  }
  return out;
}

function SettingField(props: { setting: Setting; values: Record<string, unknown>; groups: readonly string[]; error: string | undefined; onChange: (v: unknown) => void }) {
  const { setting: f, error } = props;
  const v = get(props.values, f.path);
  const common = { name: f.path, label: f.label, ...(f.help ? { help: f.help } : {}), ...(error ? { error } : {}) };
  if (f.kind === "check") return <CheckField {...common} checked={v === true} onChange={props.onChange} />;
  if (f.kind === "group") {
    const options = [...new Set([...props.groups, String(v)])].map((g) => [g, g] as const);
    return <SelectField {...common} value={String(v)} options={options} onChange={props.onChange} />;
  }
  if (typeof f.kind === "object") return <SelectField {...common} value={String(v)} options={f.kind.select} onChange={props.onChange} />;
  if (f.kind === "number") return <TextField {...common} type="number" value={String(v ?? "")} onChange={(t) => props.onChange(t === "" ? "" : Number(t))} />;
  if (f.kind === "list") {
    return <TextField {...common} multiline value={((v as string[] | undefined) ?? []).join("\n")}
      onChange={(t) => props.onChange(t.split("\n").map((x) => x.trim()).filter(Boolean))} />;
  }
  if (f.kind === "map") {
    const text = Object.entries((v as Record<string, string> | undefined) ?? {}).map(([k, x]) => `${k}: ${x}`).join("\n");
    return <TextField {...common} multiline value={text} onChange={(t) => props.onChange(Object.fromEntries(t.split("\n").map((line) => {
      const at = line.indexOf(":");
      return at > 0 ? [line.slice(0, at).trim(), line.slice(at + 1).trim()] : [line.trim(), ""];
    }).filter(([k]) => k)))} />;
  }
  return <TextField {...common} type={f.kind === "url" ? "url" : "text"} required={f.required} value={String(v ?? "")} onChange={props.onChange} />;
}

interface ProbeStep {
  readonly step: string;
  readonly ok: boolean;
  readonly ms: number;
  readonly detail: string;
}

function AppActions(props: { app: AppView; reload: () => void }) {
  const app = props.app;
  const [report, setReport] = useState<{ connector: string | null; report: { ok: boolean; steps: ProbeStep[]; likelyFix: string } | null; message: string }>();
  const [busy, setBusy] = useState("");
  const [error, setError] = useState<unknown>();
  const run = async (what: string, fn: () => Promise<void>) => {
    setBusy(what);
    setError(undefined);
    try {
      await fn();
    } catch (err) {
      setError(err);
    } finally {
      setBusy("");
    }
  };
  return (
    <section aria-labelledby="actions-heading" className="card">
      <h2 id="actions-heading">{app.name} at <a href={app.externalUrl}>{app.externalUrl}</a></h2>
      <div className="actions">
        <button type="button" disabled={busy !== ""} onClick={() => void run("test", async () => setReport(await api("POST", `/api/v1/apps/${encodeURIComponent(app.name)}/test`)))}>
          {busy === "test" ? "Testing…" : "Test application"}
        </button>
        <button type="button" disabled={busy !== ""} onClick={() => void run("maintenance", async () => {
          await api("PATCH", `/api/v1/apps/${encodeURIComponent(app.name)}`, { maintenanceMode: !app.maintenanceMode });
          props.reload();
        })}>{app.maintenanceMode ? "End maintenance" : "Start maintenance"}</button>
      </div>
      {error !== undefined && <Failure error={error} />}
      <div aria-live="polite">
        {report && (
          <div className="report">
            <h3>Test report</h3>
            {report.report === null ? <p className="notice error">{report.message}</p> : (
              <>
                <p>{report.report.ok ? <Badge tone="good">The connector reached the app</Badge> : <Badge tone="bad">The connector could not reach the app</Badge>} (connector {report.connector})</p>
                <ol className="steps">
                  {report.report.steps.map((s) => <li key={s.step}><strong>{s.step.toUpperCase()}</strong> {s.ok ? "passed" : "failed"} in {s.ms} ms: {s.detail}</li>)}
                </ol>
                {report.report.likelyFix && <p><strong>Likely fix:</strong> {report.report.likelyFix}</p>}
              </>
            )}
          </div>
        )}
      </div>
      <CertificateUpload app={app} reload={props.reload} />
    </section>
  );
}

function CertificateUpload(props: { app: AppView; reload: () => void }) {
  const [problems, setProblems] = useState<readonly Problem[]>([]);
  const [status, setStatus] = useState("");
  const [password, setPassword] = useState("");
  const submit = async (e: FormEvent<HTMLFormElement>) => {
    e.preventDefault();
    const file = (e.currentTarget.elements.namedItem("certificate") as HTMLInputElement).files?.[0];
    if (!file) return setProblems([{ field: "certificate", message: "choose a PEM (certificate chain and key) or PFX file" }]);
    const bytes = new Uint8Array(await file.arrayBuffer());
    const isPem = new TextDecoder().decode(bytes.slice(0, 64)).includes("-----BEGIN");
    let binary = "";
    for (const b of bytes) binary += String.fromCharCode(b);
    const body = isPem ? { format: "pem", pem: new TextDecoder().decode(bytes) } : { format: "pfx", pfxBase64: btoa(binary), password };
    try {
      await api("PUT", `/api/v1/apps/${encodeURIComponent(props.app.name)}/certificate`, body);
      setProblems([]);
      setStatus("Certificate accepted: engines serve it within seconds.");
      props.reload();
    } catch (err) {
      setStatus("");
      setProblems(err instanceof ApiError ? (err.problems.length > 0 ? err.problems : [{ field: "certificate", message: err.message }]) : [{ field: "certificate", message: String(err) }]);
    }
  };
  const cert = props.app.certificate;
  const error = problems.map((p) => p.message).join("; ");
  return (
    <form className="upload" onSubmit={(e) => void submit(e)} aria-labelledby="cert-heading">
      <h3 id="cert-heading">Custom-domain certificate</h3>
      <p>{cert ? `Serving a certificate for ${cert.dnsNames.join(", ")}, valid until ${new Date(cert.notAfter).toLocaleDateString()}.` : "No certificate uploaded: the engine's default certificate is served."}</p>
      <div className={`field${error ? " invalid" : ""}`}>
        <label htmlFor="certificate">Certificate file (PEM with key, or PFX)</label>
        <input id="certificate" name="certificate" type="file" accept=".pem,.crt,.pfx,.p12" aria-invalid={error ? true : undefined} aria-describedby={error ? "certificate-error" : undefined} />
        {error && <p className="field-error" id="certificate-error">{error}</p>}
      </div>
      <TextField name="password" label="PFX password" type="password" value={password} onChange={setPassword} />
      <button type="submit">Upload certificate</button>
      <p role="status" aria-live="polite">{status}</p>
    </form>
  );
}
