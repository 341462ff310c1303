/**
 * The console's entry: one bundle for the admin console (/admin/...) and My Apps (/myapps/),
 * routed by path, talking only to control's admin API. Each admin page is offered to the roles
 * the API lets see it; the API enforces the same rules whatever the console shows.
 */
import { useEffect, useState, type JSX } from "react";
import { createRoot } from "react-dom/client";
import { api, type Me } from "./api.js";
import { accessToken, completeSignIn, signIn } from "./auth.js";
import { Failure, Frame, Loading, navigate, useLoad, type NavLink } from "./components.js";
import { AppPage, AppsPage } from "./pages/apps.js";
import { ConnectorsPage } from "./pages/connectors.js";
import { DirectoryPage } from "./pages/directory.js";
import { AuditPage, SignInsPage } from "./pages/logs.js";
import { MyAppsPage } from "./pages/myapps.js";

const GA = "Global Administrator";
const APPS = [GA, "Application Administrator", "Cloud Application Administrator"];
const CONNECTORS = [GA, "Application Administrator"];
const LOGS = [GA, "Security Reader"];

interface Page {
  readonly title: string;
  readonly roles: readonly string[];
  readonly render: () => JSX.Element;
}

function adminPage(path: string): Page | undefined {
  const app = /^\/admin\/apps\/(.+)$/.exec(path);
  if (path === "/admin/" || path === "/admin") return { title: "Apps", roles: APPS, render: () => <AppsPage /> };
  if (path === "/admin/apps/new") return { title: "Add an app", roles: APPS, render: () => <AppPage /> };
  if (app) return { title: `App ${decodeURIComponent(app[1]!)}`, roles: APPS, render: () => <AppPage name={decodeURIComponent(app[1]!)} /> };
  if (path === "/admin/connectors") return { title: "Connectors", roles: CONNECTORS, render: () => <ConnectorsPage /> };
  if (path === "/admin/users") return { title: "Users and groups", roles: [GA], render: () => <DirectoryPage /> };
  if (path === "/admin/audit") return { title: "Audit log", roles: LOGS, render: () => <AuditPage /> };
  if (path === "/admin/sign-ins") return { title: "Sign-in log", roles: LOGS, render: () => <SignInsPage /> };
  return undefined;
}

function navFor(roles: readonly string[]): NavLink[] {
  const may = (allowed: readonly string[]) => roles.some((r) => allowed.includes(r));
  return [
    ...(may(APPS) ? [{ href: "/admin/", label: "Apps" }] : []),
    ...(may(CONNECTORS) ? [{ href: "/admin/connectors", label: "Connectors" }] : []),
    ...(may([GA]) ? [{ href: "/admin/users", label: "Users and groups" }] : []),
    ...(may(LOGS) ? [{ href: "/admin/audit", label: "Audit log" }, { href: "/admin/sign-ins", label: "Sign-in log" }] : []),
    { href: "/myapps/", label: "My Apps" },
  ];
}

function usePath(): string {
  const [path, setPath] = useState(location.pathname);
  useEffect(() => {
    const update = () => setPath(location.pathname);
    addEventListener("popstate", update);
    return () => removeEventListener("popstate", update);
  }, []);
  return path;
}

function Callback() {
  const [error, setError] = useState<unknown>();
  useEffect(() => {
    completeSignIn(location.search).then((to) => navigate(to), setError);
  }, []);
  return (
    <Frame product="Postern" nav={[]} signOutTo="/myapps/" title="Signing in">
      {error === undefined ? <Loading /> : <><Failure error={error} /><p><a href="/myapps/">Start again</a></p></>}
    </Frame>
  );
}

function SignedIn(props: { path: string }) {
  const me = useLoad(() => api<Me>("GET", "/api/v1/me"), []);
  const myApps = props.path.startsWith("/myapps");
  const product = myApps ? "My Apps" : "Postern console";
  if (me.error || !me.value) {
    return <Frame product={product} nav={[]} signOutTo={myApps ? "/myapps/" : "/admin/"} title={myApps ? "My Apps" : "Postern console"}>{me.error ? <Failure error={me.error} /> : <Loading />}</Frame>;
  }
  const roles = me.value.roles;
  const nav = navFor(roles);
  if (myApps) {
    const admin = nav.length > 1 ? [{ href: "/admin/", label: "Admin console" }] : [];
    return <Frame product={product} nav={admin} user={me.value.name} signOutTo="/myapps/" title="My Apps"><MyAppsPage /></Frame>;
  }
  const page = adminPage(props.path);
  if (!page) return <Frame product={product} nav={nav} user={me.value.name} signOutTo="/admin/" title="Not found"><p>There is no such page. <a href="/admin/">Go to the apps.</a></p></Frame>;
  if (!roles.some((r) => page.roles.includes(r))) {
    return (
      <Frame product={product} nav={nav} user={me.value.name} signOutTo="/admin/" title={page.title}>
        <p className="notice">This page needs one of the roles {page.roles.join(", ")}; you have {roles.length > 0 ? roles.join(", ") : "no admin role"}.</p>
        <p><a href="/myapps/">Open My Apps</a></p>
      </Frame>
    );
  }
  return <Frame product={product} nav={nav} user={me.value.name} signOutTo="/admin/" title={page.title}>{page.render()}</Frame>;
}

function Root() {
  const path = usePath();
  if (path === "/ui/callback") return <Callback />;
  if (!accessToken()) {
    const myApps = path.startsWith("/myapps");
    return (
      <Frame product={myApps ? "My Apps" : "Postern console"} nav={[]} signOutTo="/myapps/" title={myApps ? "My Apps" : "Postern console"}>
        <p>{myApps ? "Sign in to see the apps published for you." : "Sign in to manage apps, connectors, users and logs."}</p>
        <button type="button" onClick={() => void signIn(location.pathname + location.search)}>Sign in</button>
      </Frame>
    );
  }
  return <SignedIn path={path} />;
}

createRoot(document.getElementById("root")!).render(<Root />);
