/**
 * The admin API: the writes the read API must not have. It sets and removes a site's entry in
 * the zone registry (`sketchstream:{config}:time-zones`), and deletes a site's data
 * (offboarding: functions/admin/offboard.ts). It is a second Hono app behind a second function
 * URL: IAM cannot tell one URL's routes apart, so the boundary between reading and writing is
 * the function (its own URL, its own operator policy, and a Redis user that can write the
 * registry and delete a site's keys and bookkeeping members, and read no count).
 *
 * Routes are data (ADMIN_ROUTES), as in the read API, whose error answers, validation and Redis
 * deadline this app shares (functions/api/app.ts): `{"error","message"}`, 400 for bad input,
 * 404 for an unknown route, 405 (with Allow) for a known path and another method, 503 with
 * Retry-After when Redis does not answer within the deadline.
 */

import { type Context, Hono } from "hono";
import * as v from "valibot";
import type { RedisClient } from "../adapters/redis.js";
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
import { siteTimeZone } from "../read/catalog.js";
import {
  DELETION_CURSOR_RE,
  deleteSiteData,
  type SiteDataCounts,
  SiteDeletionBody,
  type SiteDeletionStep,
} from "./offboard.js";
import { adminOpenApiDocument } from "./openapi.js";

/**
 * The Redis client of the admin app: an ioredis Redis or Cluster (a site's deletion scans the
 * node that holds its slot, so it needs the cluster's nodes, not only commands).
 */
export type AdminRedis = RedisClient;

/** A change to the registry, for the audit log. */
export interface RegistryChange {
  readonly site: string;
  /** The zone now set; null when the entry was removed (the site is back on UTC). */
  readonly timeZone: string | null;
}

/** A step of a site's deletion, for the audit log. */
export interface SiteDeletion {
  readonly site: string;
  readonly deleted: SiteDataCounts;
  /** Where the next step resumes; null when the deletion is complete. */
  readonly cursor: string | null;
}

/** What the audit log is told: every change a request made. */
export type AdminChange = RegistryChange | SiteDeletion;

export interface AdminDeps {
  /** The Redis client, made on first use and kept; `reset` drops it after a missed deadline. */
  readonly redis: { get(): AdminRedis; reset(): void };
  /** ms within which a request's Redis conversation must finish. Default 3000. */
  readonly deadlineMs?: number;
  /**
   * ms after which a site's deletion stops at the end of its current page and answers a cursor
   * to resume from. Default half the deadline, so a step ends well within it.
   */
  readonly deletionBudgetMs?: number;
  /** Where unexpected failures are reported (the response never carries them). */
  readonly logError?: (message: string, extra: Record<string, unknown>) => void;
  /** Told of every change, with the request (the Lambda's event names the IAM caller). */
  readonly audit?: (change: AdminChange, c: Context) => void;
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

/** DELETE /v1/sites/{site}'s query: the confirmation, and where an earlier step stopped. */
export const SiteDeletionQuery = v.strictObject({
  confirm: v.optional(
    v.pipe(
      v.string(),
      v.description(
        "Required: the site id again, so that no request deletes a site by a slip of the path",
      ),
    ),
  ),
  cursor: v.optional(
    v.pipe(
      v.string(),
      v.regex(
        DELETION_CURSOR_RE,
        (issue) =>
          `cursor "${issue.input}" is not a deletion cursor: pass back the cursor the previous answer gave, or none to start`,
      ),
      v.description("The previous answer's cursor, to resume the deletion; absent to start"),
    ),
  ),
});

type Method = "GET" | "PUT" | "DELETE";

/** What a route's work may use besides its input. */
interface AdminRouteContext {
  readonly redis: AdminRedis;
  /** ms a long operation may work before answering a cursor to resume from. */
  readonly budgetMs: number;
}

/** One route: method, path (OpenAPI style), inputs, documented answer and what it does. */
export interface AdminRouteDefinition {
  readonly method: Method;
  readonly operationId: string;
  readonly path: string;
  readonly summary: string;
  readonly params: v.GenericSchema<Record<string, string>, Record<string, string>>;
  readonly query?: v.GenericSchema<Record<string, string>, unknown>;
  readonly body?: v.GenericSchema;
  readonly response: v.GenericSchema;
  readonly run: (
    input: { params: never; query: never; body: never },
    context: AdminRouteContext,
  ) => Promise<{ readonly answer: unknown; readonly change?: AdminChange }>;
}

function route<P, Q, B>(definition: {
  method: Method;
  operationId: string;
  path: string;
  summary: string;
  params: v.GenericSchema<Record<string, string>, P>;
  query?: v.GenericSchema<Record<string, string>, Q>;
  body?: v.GenericSchema<unknown, B>;
  response: v.GenericSchema;
  run: (
    input: { params: P; query: Q; body: B },
    context: AdminRouteContext,
  ) => Promise<{ answer: unknown; change?: AdminChange }>;
}): AdminRouteDefinition {
  return definition as unknown as AdminRouteDefinition;
}

const TIME_ZONE_PATH = "/v1/sites/{site}/time-zone";
const SITE_PATH = "/v1/sites/{site}";

export const ADMIN_ROUTES: readonly AdminRouteDefinition[] = [
  route({
    method: "GET",
    operationId: "getTimeZone",
    path: TIME_ZONE_PATH,
    summary: "The site's time zone (UTC unless the registry names one), as the read API answers",
    params: SiteParams,
    response: TimeZoneBody,
    run: async ({ params }, { redis }) => ({
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
    run: async ({ params, body }, { redis }) => {
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
    run: async ({ params }, { redis }) => {
      await redis.hdel(TIME_ZONES_KEY, params.site);
      return {
        answer: { site: params.site, timeZone: "UTC", source: "default" },
        change: { site: params.site, timeZone: null },
      };
    },
  }),
  route({
    method: "DELETE",
    operationId: "deleteSite",
    path: SITE_PATH,
    summary:
      "Delete the site's data (offboarding): every uv: and ev: key of the site (all periods, event types and metrics; SCAN on the node that holds its slot), its event-type set, its members of the site index and of the rollup's touched and pending sets, and its zone registry entry. Requires confirm={site}. Works for about half the deadline, then answers a cursor: repeat the request with it until the cursor is null. Idempotent: a repeated deletion deletes nothing. Cannot be undone",
    params: SiteParams,
    query: SiteDeletionQuery,
    response: SiteDeletionBody,
    run: async ({ params, query }, { redis, budgetMs }) => {
      const { site } = params;
      if (query.confirm !== site) {
        throw new ApiError(
          400,
          "invalid_request",
          `${query.confirm === undefined ? "confirm is required" : `confirm "${query.confirm}" is not the site id`}: deleting site ${site} removes all of its counts and cannot be undone; to go ahead, add ?confirm=${site}`,
        );
      }
      const step: SiteDeletionStep = await deleteSiteData(redis, site, {
        budgetMs,
        ...(query.cursor === undefined ? {} : { cursor: query.cursor }),
      });
      return {
        answer: step,
        change: { site, deleted: step.deleted, cursor: step.cursor },
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
  const budgetMs = deps.deletionBudgetMs ?? Math.floor(deadlineMs / 2);
  const app = new Hono();

  for (const definition of ADMIN_ROUTES) {
    const honoPath = definition.path.replace(/\{(\w+)\}/g, ":$1");
    app.on(definition.method, honoPath, async (c) => {
      const params = parseInput(definition.params, c.req.param());
      const query = definition.query ? parseInput(definition.query, c.req.query()) : undefined;
      const body = definition.body ? parseInput(definition.body, await jsonBody(c)) : undefined;
      let redis: AdminRedis;
      try {
        redis = deps.redis.get();
      } catch (err) {
        throw new Unavailable(`cannot connect to Redis: ${messageOf(err)}`);
      }
      // A PUT or DELETE that misses the deadline may or may not have been applied; all are
      // idempotent, so the 503's "try again" is safe (a deletion step, with the same cursor).
      const { answer, change } = await withDeadline(
        definition.run(
          { params: params as never, query: query as never, body: body as never },
          { redis, budgetMs },
        ),
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
