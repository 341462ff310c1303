/**
 * The built-in IdP's directory (users, groups), the audit and sign-in logs, and who-am-I.
 * Directory changes are Global Administrator only; the logs are for Global Administrators and
 * Security Readers.
 */
import { randomUUID } from "node:crypto";
import { z } from "zod";
import type { ControlContext } from "../context.js";
import { newTotp } from "../idp/provider.js";
import { hashPassword, MAX_PASSWORD_LENGTH } from "../idp/passwords.js";
import { ROLES, StoreConflict, type Role, type User } from "../store/types.js";
import { ApiError, route, type Route } from "./router.js";
import type { AppSettings } from "../contract/apps.js";

const GLOBAL: readonly Role[] = ["Global Administrator"];
const LOG_READERS: readonly Role[] = ["Global Administrator", "Security Reader"];

const username = z.string().trim().min(1).max(128).regex(/^[A-Za-z0-9._@-]+$/, "letters, digits, '.', '_', '@' or '-'");
const userView = z.object({ id: z.string(), username: z.string(), displayName: z.string(), email: z.string(), roles: z.array(z.string()), mfa: z.boolean(), disabled: z.boolean() });
const logPage = { limit: z.coerce.number().int().min(1).max(1000).default(100), before: z.coerce.number().int().positive().optional(), outcome: z.enum(["success", "failure"]).optional() };
const filterText = z.string().trim().max(256).optional();
const auditQuery = z.object({ ...logPage, action: filterText, actor: filterText }).strict();
const signInQuery = z.object({ ...logPage, username: filterText, app: filterText }).strict();

/** Only the filters given (an empty field in a form means "any"). */
function given<T extends Record<string, unknown>>(query: T): Partial<T> {
  return Object.fromEntries(Object.entries(query).filter(([, v]) => v !== undefined && v !== "")) as Partial<T>;
}

export function directoryRoutes(ctx: ControlContext): Route[] {
  const { store, tenant } = ctx;
  return [
    route({
      method: "GET", path: "/api/v1/me", summary: "Who the token belongs to", auth: "user",
      response: z.object({ sub: z.string(), name: z.string(), roles: z.array(z.string()) }),
      handler: async (call) => {
        if (call.caller.kind !== "user") throw new ApiError("POSTERN_FORBIDDEN", "not a user");
        return { status: 200, body: { sub: call.caller.sub, name: call.caller.name, roles: call.caller.roles } };
      },
    }),
    route({
      method: "GET", path: "/api/v1/me/apps", summary: "My Apps: the apps assigned to the caller (or to one of their groups), with where to open them", auth: "user",
      response: z.object({ apps: z.array(z.object({ name: z.string(), url: z.string(), maintenance: z.boolean() })) }),
      handler: async (call) => {
        if (call.caller.kind !== "user") throw new ApiError("POSTERN_FORBIDDEN", "not a user");
        const me = call.caller;
        const user = await store.getUser(me.sub) ?? await store.findUser(tenant.id, me.name);
        const name = (user?.username ?? me.name).toLowerCase();
        const groups = new Set([...(await store.listGroups(tenant.id)).filter((g) => g.members.some((m) => m.toLowerCase() === name)).map((g) => g.name.toLowerCase()), ...me.groups.map((g) => g.toLowerCase())]);
        const apps = (await store.listApps(tenant.id)).map((a) => a.settings).filter((a) => assignedTo(a, name, me.sub, groups));
        return { status: 200, body: { apps: apps.map((a) => ({ name: a.name, url: a.customHomePage ?? a.externalUrl, maintenance: a.maintenanceMode })) } };
      },
    }),
    route({
      method: "GET", path: "/api/v1/users", summary: "List the built-in IdP's users", auth: { roles: GLOBAL },
      response: z.object({ users: z.array(userView) }),
      handler: async () => ({ status: 200, body: { users: (await store.listUsers(tenant.id)).map(userOut) } }),
    }),
    route({
      method: "POST", path: "/api/v1/users", summary: "Add a user to the built-in IdP (optionally with a TOTP second factor)", auth: { roles: GLOBAL },
      body: z.object({
        username,
        password: z.string().min(8).max(MAX_PASSWORD_LENGTH),
        displayName: z.string().max(256).optional(),
        email: z.string().max(256).optional(),
        roles: z.array(z.enum(ROLES as [Role, ...Role[]])).default([]),
        totp: z.boolean().default(false),
      }).strict(),
      status: 201, action: "user.add",
      response: userView.extend({ totp: z.object({ secret: z.string(), uri: z.string() }).optional() }),
      handler: async (call) => {
        const b = call.body;
        const id = randomUUID();
        const totp = b.totp ? newTotp(b.username) : undefined;
        const user: User = {
          id, tenantId: tenant.id, username: b.username, displayName: b.displayName ?? b.username, email: b.email ?? "",
          passwordHash: await hashPassword(b.password), totpSealed: totp ? ctx.sealer.seal(totp.secret, `totp:${id}`) : null,
          roles: b.roles, disabled: false,
        };
        Object.assign(call.auditDetail, { username: b.username, roles: b.roles, mfa: b.totp });
        try {
          await store.addUser(user);
        } catch (err) {
          if (err instanceof StoreConflict) throw new ApiError("POSTERN_CONFLICT", `a user named "${b.username}" already exists`);
          throw err;
        }
        // The TOTP seed is shown once, here; it is stored sealed and never returned again.
        return { status: 201, body: { ...userOut(user), ...(totp ? { totp } : {}) } };
      },
    }),
    route({
      method: "PATCH", path: "/api/v1/users/{username}", summary: "Disable or enable a user, or change their admin roles", auth: { roles: GLOBAL }, action: "user.update",
      body: z.object({ disabled: z.boolean().optional(), roles: z.array(z.enum(ROLES as [Role, ...Role[]])).optional() }).strict(),
      response: userView,
      handler: async (call) => {
        const user = await store.findUser(tenant.id, call.params.username!);
        if (!user) throw new ApiError("POSTERN_NOT_FOUND", `no user named "${call.params.username}"`);
        if (call.caller.kind === "user" && call.caller.sub === user.id && (call.body.disabled === true || (call.body.roles && !call.body.roles.includes("Global Administrator")))) {
          throw new ApiError("POSTERN_VALIDATION", "you cannot disable yourself or drop your own Global Administrator role", [{ field: call.body.disabled ? "disabled" : "roles", message: "not on your own account" }]);
        }
        Object.assign(call.auditDetail, { username: user.username, ...call.body });
        const updated = await store.updateUser(user.id, { ...(call.body.disabled !== undefined ? { disabled: call.body.disabled } : {}), ...(call.body.roles ? { roles: call.body.roles } : {}) });
        return { status: 200, body: userOut(updated!) };
      },
    }),
    route({
      method: "GET", path: "/api/v1/groups", summary: "List user groups", auth: { roles: GLOBAL },
      response: z.object({ groups: z.array(z.object({ name: z.string(), members: z.array(z.string()) })) }),
      handler: async () => ({ status: 200, body: { groups: (await store.listGroups(tenant.id)).map((g) => ({ name: g.name, members: g.members })) } }),
    }),
    route({
      method: "POST", path: "/api/v1/groups", summary: "Add a user group", auth: { roles: GLOBAL }, status: 201, action: "group.add",
      body: z.object({ name: z.string().trim().min(1).max(128), members: z.array(username).max(10_000).default([]) }).strict(),
      response: z.object({ name: z.string(), members: z.array(z.string()) }),
      handler: async (call) => {
        call.auditDetail.group = call.body.name;
        try {
          await store.addGroup({ id: randomUUID(), tenantId: tenant.id, name: call.body.name, members: call.body.members });
        } catch (err) {
          if (err instanceof StoreConflict) throw new ApiError("POSTERN_CONFLICT", `a group named "${call.body.name}" already exists`);
          throw err;
        }
        return { status: 201, body: { name: call.body.name, members: call.body.members } };
      },
    }),
    route({
      method: "DELETE", path: "/api/v1/groups/{name}", summary: "Remove a user group", auth: { roles: GLOBAL }, action: "group.remove",
      handler: async (call) => {
        if (!(await store.removeGroup(tenant.id, call.params.name!))) throw new ApiError("POSTERN_NOT_FOUND", `no group named "${call.params.name}"`);
        return { status: 204 };
      },
    }),
    route({
      method: "GET", path: "/api/v1/audit", summary: "Audit log, newest first (filters: action, actor, outcome; page with before=<last id>)", auth: { roles: LOG_READERS }, query: auditQuery,
      response: z.object({ entries: z.array(z.object({ id: z.number(), at: z.string(), actor: z.string(), action: z.string(), target: z.string(), outcome: z.string(), detail: z.record(z.string(), z.unknown()) })) }),
      handler: async (call) => ({
        status: 200,
        body: { entries: (await store.listAudit({ ...given({ action: call.query.action, actor: call.query.actor, outcome: call.query.outcome }), tenantId: tenant.id, limit: call.query.limit, ...(call.query.before ? { beforeId: call.query.before } : {}) })).map(({ tenantId: _t, ...e }) => e) },
      }),
    }),
    route({
      method: "GET", path: "/api/v1/sign-ins", summary: "Sign-in log (built-in IdP and app pre-authentication), newest first (filters: username, app, outcome)", auth: { roles: LOG_READERS }, query: signInQuery,
      response: z.object({ entries: z.array(z.object({
        id: z.number(), at: z.string(), username: z.string(), outcome: z.string(), reason: z.string(), client: z.string(),
        app: z.string().optional(), clientIp: z.string().optional(), transactionId: z.string().optional(),
      })) }),
      handler: async (call) => ({
        status: 200,
        body: { entries: (await store.listSignIns({ ...given({ username: call.query.username, app: call.query.app, outcome: call.query.outcome }), tenantId: tenant.id, limit: call.query.limit, ...(call.query.before ? { beforeId: call.query.before } : {}) })).map(({ tenantId: _t, ...e }) => e) },
      }),
    }),
  ];
}

function userOut(u: User): z.infer<typeof userView> {
  return { id: u.id, username: u.username, displayName: u.displayName, email: u.email, roles: [...u.roles], mfa: u.totpSealed !== null, disabled: u.disabled };
}

/**
 * Whether My Apps lists `app` for a user: named in its assignments, or in a group that is;
 * an app that assigns nobody is open to every signed-in user (the gate's rule,
 * engine/auth/policy.ts), so it is listed for everyone too.
 */
function assignedTo(app: AppSettings, username: string, sub: string, groups: ReadonlySet<string>): boolean {
  const { users, groups: assigned } = app.assignments;
  if (users.length === 0 && assigned.length === 0) return true;
  return users.some((u) => u.toLowerCase() === username || u === sub) || assigned.some((g) => groups.has(g.toLowerCase()));
}
