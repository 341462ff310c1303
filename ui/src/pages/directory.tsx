/**
 * Users and groups of the built-in IdP: who has which admin role, MFA, disabled or not, which
 * apps each user is assigned (directly or through a group, with the apps' policy), and the
 * groups with their members.
 */
import { useState, type FormEvent } from "react";
import { api, ApiError, type AppView, type Problem } from "../api.js";
import { Badge, CheckField, Failure, Loading, Table, TextField, useLoad } from "../components.js";

interface UserView {
  readonly id: string;
  readonly username: string;
  readonly displayName: string;
  readonly email: string;
  readonly roles: readonly string[];
  readonly mfa: boolean;
  readonly disabled: boolean;
}

interface Group {
  readonly name: string;
  readonly members: readonly string[];
}

const ROLES = ["Global Administrator", "Application Administrator", "Cloud Application Administrator", "Security Reader"];

function assignedApps(user: UserView, groups: readonly Group[], apps: readonly AppView[]): AppView[] {
  const mine = new Set(groups.filter((g) => g.members.some((m) => m.toLowerCase() === user.username.toLowerCase())).map((g) => g.name.toLowerCase()));
  return apps.filter((a) => {
    const as = a.assignments as { users: string[]; groups: string[] };
    if (as.users.length === 0 && as.groups.length === 0) return true;
    return as.users.some((u) => u.toLowerCase() === user.username.toLowerCase()) || as.groups.some((g) => mine.has(g.toLowerCase()));
  });
}

function policyOf(app: AppView): string {
  const p = app.policy as { requireMfa: boolean; allowedIpRanges: string[]; sessionLifetimeMinutes: number };
  return [p.requireMfa ? "MFA" : "", p.allowedIpRanges.length > 0 ? `from ${p.allowedIpRanges.join(", ")}` : "", `${p.sessionLifetimeMinutes} min`].filter(Boolean).join(", ");
}

export function DirectoryPage() {
  const data = useLoad(async () => ({
    users: (await api<{ users: UserView[] }>("GET", "/api/v1/users")).users,
    groups: (await api<{ groups: Group[] }>("GET", "/api/v1/groups")).groups,
    apps: (await api<{ apps: AppView[] }>("GET", "/api/v1/apps")).apps,
  }), []);
  const [error, setError] = useState<unknown>();
  if (data.error) return <Failure error={data.error} />;
  if (!data.value) return <Loading />;
  const { users, groups, apps } = data.value;
  const act = async (fn: () => Promise<unknown>) => {
    setError(undefined);
    try {
      await fn();
      data.reload();
    } catch (err) {
      setError(err);
    }
  };
  return (
    <>
      {error !== undefined && <Failure error={error} />}
      <Table caption="Users" head={["User", "Admin roles", "MFA", "Status", "Assigned apps (policy)", "Actions"]} rows={users.length}>
        {users.map((u) => (
          <tr key={u.id}>
            <th scope="row">{u.displayName}<br /><small>{u.username}{u.email ? ` · ${u.email}` : ""}</small></th>
            <td>{u.roles.length > 0 ? u.roles.join(", ") : "none"}</td>
            <td>{u.mfa ? "enrolled" : "no"}</td>
            <td>{u.disabled ? <Badge tone="bad">disabled</Badge> : <Badge tone="good">active</Badge>}</td>
            <td><ul className="plain">{assignedApps(u, groups, apps).map((a) => <li key={a.name}>{a.name} <small>({policyOf(a)})</small></li>)}</ul></td>
            <td><button type="button" onClick={() => void act(() => api("PATCH", `/api/v1/users/${encodeURIComponent(u.username)}`, { disabled: !u.disabled }))}>
              {u.disabled ? "Enable" : "Disable"}<span className="sr"> {u.username}</span></button></td>
          </tr>
        ))}
      </Table>
      <AddUser onAdded={data.reload} />
      <Table caption="Groups" head={["Group", "Members", "Apps assigned to it", "Actions"]} rows={groups.length} empty="No groups yet.">
        {groups.map((g) => (
          <tr key={g.name}>
            <th scope="row">{g.name}</th>
            <td>{g.members.join(", ") || "nobody"}</td>
            <td>{apps.filter((a) => (a.assignments as { groups: string[] }).groups.some((x) => x.toLowerCase() === g.name.toLowerCase())).map((a) => a.name).join(", ") || "none"}</td>
            <td><button type="button" className="danger" onClick={() => {
              if (confirm(`Remove group ${g.name}?`)) void act(() => api("DELETE", `/api/v1/groups/${encodeURIComponent(g.name)}`));
            }}>Remove<span className="sr"> group {g.name}</span></button></td>
          </tr>
        ))}
      </Table>
      <AddGroup onAdded={data.reload} />
    </>
  );
}

function fieldErrors(err: unknown): Problem[] {
  if (err instanceof ApiError) return err.problems.length > 0 ? [...err.problems] : [{ field: "", message: err.message }];
  return [{ field: "", message: String(err) }];
}

function AddUser(props: { onAdded: () => void }) {
  const [v, setV] = useState({ username: "", password: "", displayName: "", email: "", roles: [] as string[], totp: false });
  const [problems, setProblems] = useState<Problem[]>([]);
  const [status, setStatus] = useState("");
  const err = (f: string) => problems.find((p) => p.field === f)?.message;
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    try {
      const made = await api<{ username: string; totp?: { uri: string } }>("POST", "/api/v1/users", { ...v, ...(v.email ? {} : { email: undefined }), ...(v.displayName ? {} : { displayName: undefined }) });
      setProblems([]);
      setStatus(`Added ${made.username}.${made.totp ? ` Give them this authenticator URI (shown once): ${made.totp.uri}` : ""}`);
      setV({ username: "", password: "", displayName: "", email: "", roles: [], totp: false });
      props.onAdded();
    } catch (e2) {
      setStatus("");
      setProblems(fieldErrors(e2));
    }
  };
  const general = problems.filter((p) => !["username", "password", "displayName", "email", "roles"].includes(p.field));
  return (
    <form className="card" onSubmit={(e) => void submit(e)} aria-labelledby="add-user-heading" noValidate>
      <h2 id="add-user-heading">Add a user</h2>
      {general.length > 0 && <p className="notice error" role="alert">{general.map((p) => p.message).join("; ")}</p>}
      <TextField name="username" label="Username" required value={v.username} onChange={(x) => setV({ ...v, username: x })} {...(err("username") ? { error: err("username")! } : {})} />
      <TextField name="password" label="Password" type="password" required help="8 characters or more." value={v.password} onChange={(x) => setV({ ...v, password: x })} {...(err("password") ? { error: err("password")! } : {})} />
      <TextField name="displayName" label="Display name" value={v.displayName} onChange={(x) => setV({ ...v, displayName: x })} />
      <TextField name="email" label="Email" type="email" value={v.email} onChange={(x) => setV({ ...v, email: x })} />
      <fieldset>
        <legend>Admin roles</legend>
        {ROLES.map((r) => <CheckField key={r} name={`role-${r}`} label={r} checked={v.roles.includes(r)} onChange={(on) => setV({ ...v, roles: on ? [...v.roles, r] : v.roles.filter((x) => x !== r) })} />)}
      </fieldset>
      <CheckField name="totp" label="Enrol a TOTP second factor" checked={v.totp} onChange={(on) => setV({ ...v, totp: on })} />
      <button type="submit">Add user</button>
      <p role="status" aria-live="polite">{status}</p>
    </form>
  );
}

function AddGroup(props: { onAdded: () => void }) {
  const [name, setName] = useState("");
  const [members, setMembers] = useState("");
  const [problems, setProblems] = useState<Problem[]>([]);
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    try {
      await api("POST", "/api/v1/groups", { name, members: members.split(/[\s,]+/).filter(Boolean) });
      setName("");
      setMembers("");
      setProblems([]);
      props.onAdded();
    } catch (err) {
      setProblems(fieldErrors(err));
    }
  };
  const err = (f: string) => problems.find((p) => p.field === f || p.field.startsWith(`${f}.`))?.message;
  const general = problems.filter((p) => p.field !== "name" && !p.field.startsWith("members"));
  return (
    <form className="card" onSubmit={(e) => void submit(e)} aria-labelledby="add-group-heading" noValidate>
      <h2 id="add-group-heading">Add a group</h2>
      {general.length > 0 && <p className="notice error" role="alert">{general.map((p) => p.message).join("; ")}</p>}
      <TextField name="name" label="Group name" required value={name} onChange={setName} {...(err("name") ? { error: err("name")! } : {})} />
      <TextField name="members" label="Members" help="Usernames, separated by spaces or commas." value={members} onChange={setMembers} {...(err("members") ? { error: err("members")! } : {})} />
      <button type="submit">Add group</button>
    </form>
  );
}
