/** The OpenAPI 3.1 document, generated from the route table so it always matches the routes. */
import { z } from "zod";
import { ERRORS, httpStatusOf, type ErrorCode } from "../../engine/errors/catalogue.js";
import type { Route } from "./router.js";

const errorBody = z.object({
  error: z.object({
    code: z.enum(Object.keys(ERRORS) as [ErrorCode, ...ErrorCode[]]),
    message: z.string(),
    problems: z.array(z.object({ field: z.string(), message: z.string() })).optional(),
    requestId: z.string(),
  }),
});

function schema(s: z.ZodType, io: "input" | "output"): Record<string, unknown> {
  const { $schema: _ignored, ...rest } = z.toJSONSchema(s, { io, unrepresentable: "any" }) as Record<string, unknown>;
  return rest;
}

export function openApiDocument(routes: readonly Route[], version: string): Record<string, unknown> {
  const paths: Record<string, Record<string, unknown>> = {};
  for (const r of routes) {
    const security = r.auth === "public" ? [] : r.auth === "proof" ? [{ identityProof: [] }] : [{ bearer: [] }];
    const roles = typeof r.auth === "object" ? r.auth.roles : undefined;
    const parameters = [
      ...[...r.path.matchAll(/\{(\w+)\}/g)].map((m) => ({ name: m[1], in: "path", required: true, schema: { type: "string" } })),
      ...(r.query ? Object.entries((schema(r.query, "input").properties ?? {}) as Record<string, unknown>).map(([name, s]) => ({ name, in: "query", required: false, schema: s })) : []),
    ];
    const success = r.status ?? (r.method === "DELETE" ? 204 : 200);
    (paths[r.path] ??= {})[r.method.toLowerCase()] = {
      summary: r.summary,
      ...(roles ? { description: `Roles: ${roles.join(", ")}.`, "x-postern-roles": roles } : {}),
      security,
      ...(parameters.length > 0 ? { parameters } : {}),
      ...(r.body ? { requestBody: { required: true, content: { "application/json": { schema: schema(r.body, "input") } } } } : {}),
      responses: {
        [success]: success === 204 ? { description: "Done" } : { description: "OK", content: { "application/json": { schema: r.response ? schema(r.response, "output") : {} } } },
        default: { description: "Error (see docs/errors.md)", content: { "application/json": { schema: { $ref: "#/components/schemas/Error" } } } },
      },
    };
  }
  return {
    openapi: "3.1.0",
    info: { title: "Postern control API", version },
    paths,
    components: {
      schemas: { Error: schema(errorBody, "output") },
      securitySchemes: {
        bearer: { type: "http", scheme: "bearer", bearerFormat: "JWT", description: "Access token from the IdP (audience urn:postern:control)" },
        identityProof: { type: "apiKey", in: "header", name: "Authorization", description: "Postern-Proof <JWS signed with the connector or engine certificate key>" },
      },
    },
    "x-postern-error-statuses": Object.fromEntries(Object.keys(ERRORS).map((c) => [c, httpStatusOf(c as ErrorCode) ?? null])),
  };
}
