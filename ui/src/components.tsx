/**
 * The console's building blocks: the page frame (skip link, navigation, one h1 that takes
 * focus on every page change, for screen readers), notices, scrollable tables, and form fields
 * that show their validation message under themselves (aria-invalid, aria-describedby).
 */
import { useEffect, useRef, useState, type ReactNode } from "react";
import { ApiError, SignedOut } from "./api.js";
import { signIn, signOut } from "./auth.js";

export interface NavLink {
  readonly href: string;
  readonly label: string;
}

export function navigate(href: string): void {
  history.pushState(null, "", href);
  dispatchEvent(new PopStateEvent("popstate"));
}

/** An in-app link: navigates without reloading, and stays a real link (new tab, keyboard). */
export function Link(props: { href: string; children: ReactNode; className?: string; current?: boolean }) {
  return (
    <a href={props.href} className={props.className} aria-current={props.current ? "page" : undefined}
      onClick={(e) => {
        if (e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
        e.preventDefault();
        navigate(props.href);
      }}>{props.children}</a>
  );
}

export function Frame(props: { product: string; nav: readonly NavLink[]; user?: string; signOutTo: string; title: string; children: ReactNode }) {
  const heading = useRef<HTMLHeadingElement>(null);
  useEffect(() => {
    document.title = `${props.title} · ${props.product}`;
    heading.current?.focus();
  }, [props.title, props.product]);
  const here = location.pathname;
  return (
    <>
      <a className="skip" href="#main">Skip to content</a>
      <header className="top">
        <span className="brand">{props.product}</span>
        {props.nav.length > 0 && (
          <nav aria-label="Sections">
            <ul>
              {props.nav.map((l) => (
                <li key={l.href}><Link href={l.href} current={here === l.href || (l.href !== "/admin/" && here.startsWith(l.href))}>{l.label}</Link></li>
              ))}
            </ul>
          </nav>
        )}
        {props.user !== undefined && (
          <div className="who">
            <span>{props.user}</span>
            <button type="button" className="link" onClick={() => void signOut(props.signOutTo)}>Sign out</button>
          </div>
        )}
      </header>
      <main id="main">
        <h1 tabIndex={-1} ref={heading}>{props.title}</h1>
        {props.children}
      </main>
    </>
  );
}

/** Loads `load` and renders its value; errors show as a notice, a lost session as a sign-in prompt. */
export function useLoad<T>(load: () => Promise<T>, deps: readonly unknown[]): { value: T | undefined; error: unknown; reload: () => void } {
  const [value, setValue] = useState<T>();
  const [error, setError] = useState<unknown>();
  const [tick, setTick] = useState(0);
  useEffect(() => {
    let live = true;
    load().then((v) => live && (setValue(v), setError(undefined)), (e: unknown) => live && setError(e));
    return () => {
      live = false;
    };
  }, [...deps, tick]);
  return { value, error, reload: () => setTick((t) => t + 1) };
}

export function Failure(props: { error: unknown }) {
  const e = props.error;
  if (e instanceof SignedOut) {
    return (
      <div className="notice" role="alert">
        <p>{e.message}.</p>
        <button type="button" onClick={() => void signIn(location.pathname)}>Sign in</button>
      </div>
    );
  }
  const message = e instanceof ApiError ? `${e.message} (${e.code})` : e instanceof Error ? e.message : String(e);
  return <p className="notice error" role="alert">{message}</p>;
}

export function Loading() {
  return <p role="status">Loading…</p>;
}

/** A table that scrolls sideways on a narrow screen, reachable by keyboard. */
export function Table(props: { caption: string; head: readonly string[]; children: ReactNode; empty?: string; rows: number }) {
  return (
    <div className="scroll" role="region" aria-label={props.caption} tabIndex={0}>
      <table>
        <caption>{props.caption}</caption>
        <thead><tr>{props.head.map((h) => <th key={h} scope="col">{h}</th>)}</tr></thead>
        <tbody>
          {props.rows === 0 ? <tr><td colSpan={props.head.length}>{props.empty ?? "Nothing yet."}</td></tr> : props.children}
        </tbody>
      </table>
    </div>
  );
}

export function Badge(props: { tone: "good" | "warn" | "bad" | "quiet"; children: ReactNode }) {
  return <span className={`badge ${props.tone}`}>{props.children}</span>;
}

let fieldIds = 0;
function useFieldId(): string {
  const [id] = useState(() => `f${++fieldIds}`);
  return id;
}

interface FieldProps {
  readonly label: string;
  readonly help?: string;
  readonly error?: string;
  readonly name: string;
}

function described(id: string, props: FieldProps): { "aria-describedby"?: string; "aria-invalid"?: boolean } {
  const ids = [props.help ? `${id}-help` : "", props.error ? `${id}-error` : ""].filter(Boolean).join(" ");
  return { ...(ids ? { "aria-describedby": ids } : {}), ...(props.error ? { "aria-invalid": true } : {}) };
}

function Notes(props: { id: string; help?: string; error?: string }) {
  return (
    <>
      {props.help && <p className="help" id={`${props.id}-help`}>{props.help}</p>}
      {props.error && <p className="field-error" id={`${props.id}-error`}>{props.error}</p>}
    </>
  );
}

export function TextField(props: FieldProps & { value: string; onChange: (v: string) => void; type?: string; required?: boolean; multiline?: boolean }) {
  const id = useFieldId();
  const common = { id, name: props.name, value: props.value, required: props.required, ...described(id, props) };
  return (
    <div className={`field${props.error ? " invalid" : ""}`}>
      <label htmlFor={id}>{props.label}{props.required ? " (required)" : ""}</label>
      {props.multiline
        ? <textarea {...common} rows={3} onChange={(e) => props.onChange(e.target.value)} />
        : <input {...common} type={props.type ?? "text"} onChange={(e) => props.onChange(e.target.value)} />}
      <Notes id={id} help={props.help} error={props.error} />
    </div>
  );
}

export function CheckField(props: FieldProps & { checked: boolean; onChange: (v: boolean) => void }) {
  const id = useFieldId();
  return (
    <div className={`field check${props.error ? " invalid" : ""}`}>
      <input id={id} name={props.name} type="checkbox" checked={props.checked} onChange={(e) => props.onChange(e.target.checked)} {...described(id, props)} />
      <label htmlFor={id}>{props.label}</label>
      <Notes id={id} help={props.help} error={props.error} />
    </div>
  );
}

export function SelectField(props: FieldProps & { value: string; options: readonly (readonly [string, string])[]; onChange: (v: string) => void }) {
  const id = useFieldId();
  return (
    <div className={`field${props.error ? " invalid" : ""}`}>
      <label htmlFor={id}>{props.label}</label>
      <select id={id} name={props.name} value={props.value} onChange={(e) => props.onChange(e.target.value)} {...described(id, props)}>
        {props.options.map(([value, label]) => <option key={value} value={value}>{label}</option>)}
      </select>
      <Notes id={id} help={props.help} error={props.error} />
    </div>
  );
}
