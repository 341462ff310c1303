/**
 * The audit log and the sign-in log, newest first, with filters and paging (the API pages by
 * id: "older" asks for entries before the last one shown).
 */
import { useState, type FormEvent } from "react";
import { api } from "../api.js";
import { Badge, Failure, Loading, SelectField, Table, TextField, useLoad } from "../components.js";

const PAGE = 25;

interface AuditEntry {
  readonly id: number;
  readonly at: string;
  readonly actor: string;
  readonly action: string;
  readonly target: string;
  readonly outcome: string;
  readonly detail: Record<string, unknown>;
}

interface SignInEntry {
  readonly id: number;
  readonly at: string;
  readonly username: string;
  readonly outcome: string;
  readonly reason: string;
  readonly client: string;
  readonly app?: string;
  readonly clientIp?: string;
  readonly transactionId?: string;
}

const OUTCOMES = [["", "Any"], ["success", "Success"], ["failure", "Failure"]] as const;

/** Filters, applied on submit, and a stack of page starts for going back. */
function useLogQuery<F extends Record<string, string>>(initial: F) {
  const [draft, setDraft] = useState(initial);
  const [applied, setApplied] = useState(initial);
  const [pages, setPages] = useState<number[]>([]);
  const query = (extra: Record<string, string>) => {
    const q = new URLSearchParams({ limit: String(PAGE), ...extra });
    for (const [k, v] of Object.entries(applied)) if (v) q.set(k, v);
    if (pages.length > 0) q.set("before", String(pages[pages.length - 1]));
    return q.toString();
  };
  return {
    draft, setDraft, applied, pages, query,
    apply: (e: FormEvent) => {
      e.preventDefault();
      setApplied(draft);
      setPages([]);
    },
    older: (lastId: number) => setPages((p) => [...p, lastId]),
    newer: () => setPages((p) => p.slice(0, -1)),
  };
}

function Pager(props: { count: number; lastId: number | undefined; page: number; older: (id: number) => void; newer: () => void }) {
  return (
    <nav className="pager" aria-label="Pages">
      <button type="button" disabled={props.page === 0} onClick={props.newer}>Newer</button>
      <span>Page {props.page + 1}</span>
      <button type="button" disabled={props.count < PAGE || props.lastId === undefined} onClick={() => props.older(props.lastId!)}>Older</button>
    </nav>
  );
}

export function AuditPage() {
  const q = useLogQuery({ action: "", actor: "", outcome: "" });
  const data = useLoad(() => api<{ entries: AuditEntry[] }>("GET", `/api/v1/audit?${q.query({})}`), [q.applied, q.pages]);
  return (
    <>
      <form className="filters" onSubmit={q.apply} aria-label="Filter the audit log">
        <TextField name="action" label="Action" help="e.g. app.add, connector.update" value={q.draft.action} onChange={(v) => q.setDraft({ ...q.draft, action: v })} />
        <TextField name="actor" label="Actor" value={q.draft.actor} onChange={(v) => q.setDraft({ ...q.draft, actor: v })} />
        <SelectField name="outcome" label="Outcome" value={q.draft.outcome} options={OUTCOMES} onChange={(v) => q.setDraft({ ...q.draft, outcome: v })} />
        <button type="submit">Filter</button>
      </form>
      {data.error ? <Failure error={data.error} /> : !data.value ? <Loading /> : (
        <>
          <Table caption="Audit log, newest first" head={["When", "Actor", "Action", "Target", "Outcome", "Detail"]} rows={data.value.entries.length} empty="No entry matches.">
            {data.value.entries.map((e) => (
              <tr key={e.id}>
                <td><time dateTime={e.at}>{new Date(e.at).toLocaleString()}</time></td>
                <td>{e.actor}</td>
                <td>{e.action}</td>
                <td>{e.target}</td>
                <td><Badge tone={e.outcome === "success" ? "good" : "bad"}>{e.outcome}</Badge></td>
                <td className="mono small">{JSON.stringify(e.detail).slice(0, 200)}</td>
              </tr>
            ))}
          </Table>
          <Pager count={data.value.entries.length} lastId={data.value.entries.at(-1)?.id} page={q.pages.length} older={q.older} newer={q.newer} />
        </>
      )}
    </>
  );
}

export function SignInsPage() {
  const q = useLogQuery({ username: "", app: "", outcome: "" });
  const data = useLoad(() => api<{ entries: SignInEntry[] }>("GET", `/api/v1/sign-ins?${q.query({})}`), [q.applied, q.pages]);
  return (
    <>
      <form className="filters" onSubmit={q.apply} aria-label="Filter the sign-in log">
        <TextField name="username" label="User" value={q.draft.username} onChange={(v) => q.setDraft({ ...q.draft, username: v })} />
        <TextField name="app" label="App" value={q.draft.app} onChange={(v) => q.setDraft({ ...q.draft, app: v })} />
        <SelectField name="outcome" label="Outcome" value={q.draft.outcome} options={OUTCOMES} onChange={(v) => q.setDraft({ ...q.draft, outcome: v })} />
        <button type="submit">Filter</button>
      </form>
      {data.error ? <Failure error={data.error} /> : !data.value ? <Loading /> : (
        <>
          <Table caption="Sign-ins, newest first" head={["When", "User", "App", "Outcome", "Reason", "Client", "Address", "Transaction"]} rows={data.value.entries.length} empty="No sign-in matches.">
            {data.value.entries.map((e) => (
              <tr key={e.id}>
                <td><time dateTime={e.at}>{new Date(e.at).toLocaleString()}</time></td>
                <td>{e.username || "(unknown)"}</td>
                <td>{e.app || "console / CLI"}</td>
                <td><Badge tone={e.outcome === "success" ? "good" : "bad"}>{e.outcome}</Badge></td>
                <td>{e.reason}</td>
                <td>{e.client}</td>
                <td>{e.clientIp}</td>
                <td className="mono small">{e.transactionId}</td>
              </tr>
            ))}
          </Table>
          <Pager count={data.value.entries.length} lastId={data.value.entries.at(-1)?.id} page={q.pages.length} older={q.older} newer={q.newer} />
        </>
      )}
    </>
  );
}
