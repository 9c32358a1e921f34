/**
 * The admin API: the writes the read API must not have. It sets and removes a site's entry in
 * the zone registry (`sketchstream:{config}:time-zones`). It is a second Hono app behind a
 * second function URL: IAM cannot tell one URL's routes apart, so the boundary between reading
 * and writing is the function (its own URL, its own operator policy, and a Redis user that can
 * write the registry and nothing else).
 *
 * Routes are data (ADMIN_ROUTES), as in the read API, whose error answers, validation and Redis
 * deadline this app shares (functions/api/app.ts): `{"error","message"}`, 400 for bad input,
 * 404 for an unknown route, 405 (with Allow) for a known path and another method, 503 with
 * Retry-After when Redis does not answer within the deadline.
 */

import { type Context, Hono } from "hono";
import * as v from "valibot";
import {
  ApiError,
  errorResponse,
  failureAnswer,
  noRoute,
  parseInput,
  Unavailable,
  withDeadline,
} from "../api/app.js";
import { SiteParams, TimeZoneBody } from "../api/schemas.js";
import { messageOf } from "../domain/errors.js";
import { TIME_ZONES_KEY } from "../domain/keys.js";
import { API_DEADLINE } from "../domain/runtime-env.js";
import { TIME_ZONE_EXAMPLE, timeZoneProblem } from "../domain/time-zones.js";
import { type CatalogRedis, siteTimeZone } from "../read/catalog.js";
import { adminOpenApiDocument } from "./openapi.js";

/** The Redis commands of the admin app; an ioredis Redis or Cluster satisfies it. */
export interface AdminRedis extends Pick<CatalogRedis, "hget"> {
  hset(key: string, field: string, value: string): Promise<number>;
  hdel(key: string, ...fields: string[]): Promise<number>;
}

/** A change to the registry, for the audit log. */
export interface RegistryChange {
  readonly site: string;
  /** The zone now set; null when the entry was removed (the site is back on UTC). */
  readonly timeZone: string | null;
}

export interface AdminDeps {
  /** The Redis client, made on first use and kept; `reset` drops it after a missed deadline. */
  readonly redis: { get(): AdminRedis; reset(): void };
  /** ms within which a request's Redis conversation must finish. Default 3000. */
  readonly deadlineMs?: number;
  /** Where unexpected failures are reported (the response never carries them). */
  readonly logError?: (message: string, extra: Record<string, unknown>) => void;
  /** Told of every change, with the request (the Lambda's event names the IAM caller). */
  readonly audit?: (change: RegistryChange, c: Context) => void;
}

export const ADMIN_ERROR_KINDS = [
  "invalid_request",
  "not_found",
  "method_not_allowed",
  "unavailable",
  "internal",
] as const;

export const AdminErrorBody = v.strictObject({
  error: v.pipe(v.picklist(ADMIN_ERROR_KINDS), v.description("Machine-readable kind")),
  message: v.pipe(v.string(), v.description("What was wrong and what to do")),
});

/** PUT's body: a zone name as DESIGN.md accepts it (functions/domain/time-zones.ts). */
export const TimeZoneRequest = v.strictObject({
  timeZone: v.pipe(
    v.string(`timeZone must be a string, a zone name such as ${TIME_ZONE_EXAMPLE}`),
    v.rawCheck(({ dataset, addIssue }) => {
      const problem = dataset.typed ? timeZoneProblem(dataset.value) : undefined;
      if (problem !== undefined) addIssue({ message: problem });
    }),
    v.description(
      `UTC, or an IANA Area/Location name in its canonical case, e.g. ${TIME_ZONE_EXAMPLE} (no offsets such as +05:30, no abbreviations such as EST)`,
    ),
  ),
});

type Method = "GET" | "PUT" | "DELETE";

/** One route: method, path (OpenAPI style), inputs, documented answer and what it does. */
export interface AdminRouteDefinition {
  readonly method: Method;
  readonly operationId: string;
  readonly path: string;
  readonly summary: string;
  readonly params: v.GenericSchema<Record<string, string>, Record<string, string>>;
  readonly body?: v.GenericSchema;
  readonly response: v.GenericSchema;
  readonly run: (
    input: { params: never; body: never },
    redis: AdminRedis,
  ) => Promise<{ readonly answer: unknown; readonly change?: RegistryChange }>;
}

function route<P, B>(definition: {
  method: Method;
  operationId: string;
  path: string;
  summary: string;
  params: v.GenericSchema<Record<string, string>, P>;
  body?: v.GenericSchema<unknown, B>;
  response: v.GenericSchema;
  run: (
    input: { params: P; body: B },
    redis: AdminRedis,
  ) => Promise<{ answer: unknown; change?: RegistryChange }>;
}): AdminRouteDefinition {
  return definition as unknown as AdminRouteDefinition;
}

const TIME_ZONE_PATH = "/v1/sites/{site}/time-zone";

export const ADMIN_ROUTES: readonly AdminRouteDefinition[] = [
  route({
    method: "GET",
    operationId: "getTimeZone",
    path: TIME_ZONE_PATH,
    summary: "The site's time zone (UTC unless the registry names one), as the read API answers",
    params: SiteParams,
    response: TimeZoneBody,
    run: async ({ params }, redis) => ({
      answer: { site: params.site, ...(await siteTimeZone(redis, params.site)) },
    }),
  }),
  route({
    method: "PUT",
    operationId: "setTimeZone",
    path: TIME_ZONE_PATH,
    summary:
      "Set the site's time zone (HSET on the registry). It applies to events ingested from then on (the consumer re-reads the registry within 60 s); keys already written keep their labels",
    params: SiteParams,
    body: TimeZoneRequest,
    response: TimeZoneBody,
    run: async ({ params, body }, redis) => {
      await redis.hset(TIME_ZONES_KEY, params.site, body.timeZone);
      return {
        answer: { site: params.site, timeZone: body.timeZone, source: "registry" },
        change: { site: params.site, timeZone: body.timeZone },
      };
    },
  }),
  route({
    method: "DELETE",
    operationId: "removeTimeZone",
    path: TIME_ZONE_PATH,
    summary:
      "Remove the site's entry from the registry (HDEL): the site is back on UTC, for events ingested from then on",
    params: SiteParams,
    response: TimeZoneBody,
    run: async ({ params }, redis) => {
      await redis.hdel(TIME_ZONES_KEY, params.site);
      return {
        answer: { site: params.site, timeZone: "UTC", source: "default" },
        change: { site: params.site, timeZone: null },
      };
    },
  }),
];

/** The request's body as JSON; a 400 saying what to send when it is not. */
async function jsonBody(c: Context): Promise<unknown> {
  const text = await c.req.text();
  try {
    return JSON.parse(text);
  } catch {
    throw new ApiError(
      400,
      "invalid_request",
      `the body must be JSON such as {"timeZone":"${TIME_ZONE_EXAMPLE}"}`,
    );
  }
}

export function createAdminApp(deps: AdminDeps): Hono {
  const deadlineMs = deps.deadlineMs ?? API_DEADLINE.default;
  const app = new Hono();

  for (const definition of ADMIN_ROUTES) {
    const honoPath = definition.path.replace(/\{(\w+)\}/g, ":$1");
    app.on(definition.method, honoPath, async (c) => {
      const params = parseInput(definition.params, c.req.param());
      const body = definition.body ? parseInput(definition.body, await jsonBody(c)) : undefined;
      let redis: AdminRedis;
      try {
        redis = deps.redis.get();
      } catch (err) {
        throw new Unavailable(`cannot connect to Redis: ${messageOf(err)}`);
      }
      // A PUT or DELETE that misses the deadline may or may not have been applied; both are
      // idempotent, so the 503's "try again" is safe.
      const { answer, change } = await withDeadline(
        definition.run({ params: params as never, body: body as never }, redis),
        deadlineMs,
        () => deps.redis.reset(),
      );
      if (change) deps.audit?.(change, c);
      return c.json(answer as object, 200, { "cache-control": "no-store" });
    });
  }

  // A known path asked with another method: 405 naming the methods it takes.
  const methodsByPath = new Map<string, Method[]>();
  for (const { path, method } of ADMIN_ROUTES) {
    methodsByPath.set(path, [...(methodsByPath.get(path) ?? []), method]);
  }
  for (const [path, methods] of methodsByPath) {
    app.all(path.replace(/\{(\w+)\}/g, ":$1"), (c) =>
      errorResponse(
        405,
        "method_not_allowed",
        `${c.req.method} is not allowed on ${path}: use ${methods.join(", ")} (see /v1/openapi.json)`,
        { allow: methods.join(", ") },
      ),
    );
  }

  app.get("/v1/openapi.json", (c) => c.json(adminOpenApiDocument(ADMIN_ROUTES)));

  app.notFound(noRoute);
  app.onError(failureAnswer(deps.logError, "admin API request failed"));

  return app;
}
