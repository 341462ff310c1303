/** My Apps: the apps assigned to the signed-in user, each with its initial, to open in one click. */
import { api } from "../api.js";
import { Badge, Failure, Loading, useLoad } from "../components.js";

interface MyApp {
  readonly name: string;
  readonly url: string;
  readonly maintenance: boolean;
}

export function MyAppsPage() {
  const data = useLoad(() => api<{ apps: MyApp[] }>("GET", "/api/v1/me/apps"), []);
  if (data.error) return <Failure error={data.error} />;
  if (!data.value) return <Loading />;
  const apps = data.value.apps;
  if (apps.length === 0) {
    return (
      <div className="empty">
        <p>No app is assigned to you yet.</p>
        <p>Ask your administrator to assign you (or one of your groups) to the apps you need.</p>
      </div>
    );
  }
  return (
    <ul className="tiles" aria-label="Your apps">
      {apps.map((a) => (
        <li key={a.name}>
          <a className="tile" href={a.url}>
            <span className="initial" aria-hidden="true">{a.name.slice(0, 1).toUpperCase()}</span>
            <span className="tile-name">{a.name}</span>
            <span className="tile-url">{new URL(a.url).host}</span>
            {a.maintenance && <Badge tone="warn">Under maintenance</Badge>}
          </a>
        </li>
      ))}
    </ul>
  );
}
