/**
 * Connector groups and connectors: active or not at a glance, version, last contact, tunnels
 * per engine, disable / enable / remove, and the command that registers a new one.
 */
import { useState, type FormEvent } from "react";
import { api, ApiError, type ConnectorView } from "../api.js";
import { Badge, Failure, Loading, Table, TextField, useLoad } from "../components.js";

function ago(iso: string): string {
  const s = Math.max(0, Math.round((Date.now() - Date.parse(iso)) / 1000));
  if (s < 90) return `${s} s ago`;
  if (s < 5400) return `${Math.round(s / 60)} min ago`;
  if (s < 129_600) return `${Math.round(s / 3600)} h ago`;
  return `${Math.round(s / 86_400)} days ago`;
}

export function ConnectorsPage() {
  const data = useLoad(async () => ({
    connectors: (await api<{ connectors: ConnectorView[] }>("GET", "/api/v1/connectors")).connectors,
    groups: (await api<{ groups: { name: string }[] }>("GET", "/api/v1/connector-groups")).groups.map((g) => g.name),
  }), []);
  const [error, setError] = useState<unknown>();
  const [groupName, setGroupName] = useState("");
  const [groupError, setGroupError] = useState("");
  if (data.error) return <Failure error={data.error} />;
  if (!data.value) return <Loading />;
  const act = async (fn: () => Promise<unknown>) => {
    setError(undefined);
    try {
      await fn();
      data.reload();
    } catch (err) {
      setError(err);
    }
  };
  const addGroup = async (e: FormEvent) => {
    e.preventDefault();
    try {
      await api("POST", "/api/v1/connector-groups", { name: groupName });
      setGroupName("");
      setGroupError("");
      data.reload();
    } catch (err) {
      setGroupError(err instanceof ApiError ? (err.problems[0]?.message ?? err.message) : String(err));
    }
  };
  const { connectors, groups } = data.value;
  return (
    <>
      {error !== undefined && <Failure error={error} />}
      {groups.map((group) => {
        const members = connectors.filter((c) => c.group.toLowerCase() === group.toLowerCase());
        const active = members.filter((c) => c.status === "active").length;
        return (
          <section key={group} aria-labelledby={`group-${group}`} className="card">
            <h2 id={`group-${group}`}>Group {group} {active > 0 ? <Badge tone="good">{active} active</Badge> : <Badge tone="bad">no active connector</Badge>}</h2>
            <Table caption={`Connectors of group ${group}`} head={["Host", "Status", "Version", "Last seen", "Tunnels per engine", "Certificate until", "Actions"]} rows={members.length}
              empty="No connector in this group yet: register one with the command below.">
              {members.map((c) => (
                <tr key={c.id}>
                  <th scope="row">{c.hostName}<br /><small className="mono">{c.id}</small></th>
                  <td><Badge tone={c.status === "active" ? "good" : c.status === "inactive" ? "warn" : "quiet"}>{c.status}</Badge></td>
                  <td>{c.version}</td>
                  <td><time dateTime={c.lastSeen}>{ago(c.lastSeen)}</time></td>
                  <td>{Object.keys(c.tunnels).length === 0 ? "none reported" : (
                    <ul className="plain">{Object.entries(c.tunnels).map(([engine, n]) => <li key={engine}>{new URL(engine).host}: {n}</li>)}</ul>
                  )}</td>
                  <td>{new Date(c.certNotAfter).toLocaleDateString()}</td>
                  <td className="row-actions">
                    {c.status === "disabled"
                      ? <button type="button" onClick={() => void act(() => api("PATCH", `/api/v1/connectors/${c.id}`, { status: "active" }))}>Enable<span className="sr"> {c.hostName}</span></button>
                      : <button type="button" onClick={() => void act(() => api("PATCH", `/api/v1/connectors/${c.id}`, { status: "disabled" }))}>Disable<span className="sr"> {c.hostName}</span></button>}
                    <button type="button" className="danger" onClick={() => {
                      if (confirm(`Remove connector ${c.hostName} and revoke its certificate?`)) void act(() => api("DELETE", `/api/v1/connectors/${c.id}`));
                    }}>Remove<span className="sr"> {c.hostName}</span></button>
                  </td>
                </tr>
              ))}
            </Table>
          </section>
        );
      })}
      <section aria-labelledby="register-heading" className="card">
        <h2 id="register-heading">Register a connector</h2>
        <p>On a host of the private network that can reach the apps, with Postern installed:</p>
        <pre className="mono" tabIndex={0}>{`postern connector register --control ${location.origin} --group Default\npostern connector run`}</pre>
        <p>The first command signs you in (a code to confirm in the browser) and keeps the connector's key on that host.</p>
      </section>
      <form className="card" onSubmit={(e) => void addGroup(e)} aria-labelledby="add-group-heading">
        <h2 id="add-group-heading">Add a connector group</h2>
        <TextField name="group" label="Group name" value={groupName} onChange={setGroupName} required {...(groupError ? { error: groupError } : {})} />
        <button type="submit">Add group</button>
      </form>
    </>
  );
}
