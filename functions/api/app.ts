/**
 * The read API: one Hono app that runs unchanged in Lambda (functions/api/handler.ts, behind a
 * function URL) and on Node (`npm run cli -- api`, the dashboard). Routes are data (ROUTES):
 * the app registers them and functions/api/openapi.ts documents them from the same schemas.
 *
 * Errors are JSON `{"error","message"}`: 400 for bad input, 404 for an unknown route or site,
 * 503 with Retry-After when Redis does not answer within the deadline, 500 (without a stack)
 * for anything else. Never a silent zero: days past retention, and for the events metric the
 * days before events were first recorded, are listed in `missing`.
 *
 * Dates are the site's local dates: a count or series says its zone (`timeZone`), and "today"
 * (which days are past retention, whether an answer may be cached) is today in that zone.
 */

import { type Context, type ErrorHandler, Hono } from "hono";
import type { ContentfulStatusCode } from "hono/utils/http-status";
import * as v from "valibot";
import { messageOf } from "../domain/errors.js";
import { dayLabel } from "../domain/periods.js";
import { API_DEADLINE } from "../domain/runtime-env.js";
import type { ZoneCalendars } from "../domain/time-zones.js";
import { DEFAULT_TIME_ZONE } from "../domain/zone-registry.js";
import { listSites, siteEventTypes, siteTimeZone } from "../read/catalog.js";
import { localTodayNumber, readCalendars } from "../read/counts.js";
import { countAnswer, type ReadRedis, rangeRequest, seriesAnswer } from "./answers.js";
import { openApiDocument } from "./openapi.js";
import {
  CountBody,
  CountQuery,
  type ErrorBody,
  EventsBody,
  SeriesBody,
  SeriesQuery,
  SiteParams,
  SitesBody,
  SitesQuery,
  TimeZoneBody,
} from "./schemas.js";

export type { ReadRedis } from "./answers.js";

export interface ApiDeps {
  /** The Redis client, made on first use and kept; `reset` drops it after a missed deadline. */
  readonly redis: { get(): ReadRedis; reset(): void };
  /** Days a daily key lives (RETENTION_DAYS), to tell which days are gone. */
  readonly retentionDays: number;
  /** The clock: today's date (in the site's zone) for Cache-Control, and `missing`. Default Date.now. */
  readonly now?: () => number;
  /**
   * The calendars of the sites' zones, built once per zone and kept while the runtime lives.
   * Default: readCalendars(retentionDays), made with the app.
   */
  readonly calendars?: ZoneCalendars;
  /** ms within which a request's Redis conversation must finish. Default 3000. */
  readonly deadlineMs?: number;
  /** Where unexpected failures are reported (the response never carries them). */
  readonly logError?: (message: string, extra: Record<string, unknown>) => void;
  /**
   * Where what an operator should fix is reported (a site's time-zone entry that is not a
   * valid zone): the answer goes on, in UTC, and says so in its `timeZone`.
   */
  readonly logWarning?: (message: string, extra: Record<string, unknown>) => void;
}

/** How long a browser or proxy may keep an answer about days that no longer change. */
export const SETTLED_MAX_AGE_S = 300;
/** Seconds a client should wait before asking again when Redis did not answer. */
export const RETRY_AFTER_S = 5;

type ErrorKind = v.InferOutput<typeof ErrorBody>["error"];

/** A failure the request's answer states: its status, kind and message (the admin app's too). */
export class ApiError extends Error {
  constructor(
    readonly status: ContentfulStatusCode,
    readonly kind: ErrorKind,
    message: string,
  ) {
    super(message);
  }
}

/** Redis did not answer in time or could not be reached: a 503, worth retrying. */
export class Unavailable extends ApiError {
  constructor(message: string) {
    super(503, "unavailable", message);
  }
}

/** Errors after which Redis is unreachable or failing over, not wrong: a 503. */
const UNREACHABLE =
  /Connection is closed|ECONNREFUSED|ECONNRESET|ETIMEDOUT|EHOSTUNREACH|ENOTFOUND|CLUSTERDOWN|TRYAGAIN|LOADING|max retries per request|None of startup nodes is available|Failed to refresh slots cache/;

interface RouteResult {
  readonly body: unknown;
  /** Whether the answer covers today (or later): then it must not be cached. */
  readonly live: boolean;
}

interface RouteContext {
  readonly redis: ReadRedis;
  readonly nowMs: number;
  readonly retentionDays: number;
  readonly calendars: ZoneCalendars;
  readonly warn: (line: string) => void;
}

/** One route: its path (OpenAPI style), inputs, documented answer and what it does. */
export interface RouteDefinition {
  readonly operationId: string;
  readonly path: string;
  readonly summary: string;
  readonly params?: v.GenericSchema<Record<string, string>, Record<string, string>>;
  readonly query?: v.GenericSchema<Record<string, string>, unknown>;
  readonly response: v.GenericSchema;
  readonly run: (
    input: { params: never; query: never },
    context: RouteContext,
  ) => Promise<RouteResult>;
}

function route<P, Q>(definition: {
  operationId: string;
  path: string;
  summary: string;
  params?: v.GenericSchema<Record<string, string>, P>;
  query?: v.GenericSchema<Record<string, string>, Q>;
  response: v.GenericSchema;
  run: (input: { params: P; query: Q }, context: RouteContext) => Promise<RouteResult>;
}): RouteDefinition {
  return definition as unknown as RouteDefinition;
}

/**
 * An answer about a range that reaches today (or later) changes until the day is over: today
 * in the zone the answer's dates are in (an answer of an older shape says none: UTC).
 */
function reachesToday(to: string, timeZone: string | undefined, context: RouteContext): boolean {
  const calendar = context.calendars.forZone(timeZone ?? DEFAULT_TIME_ZONE, context.nowMs);
  return to >= dayLabel(localTodayNumber(calendar, context.nowMs));
}

export const ROUTES: readonly RouteDefinition[] = [
  route({
    operationId: "listSites",
    path: "/v1/sites",
    summary: "Sites with counted events, a page at a time (SSCAN over the site index)",
    query: SitesQuery,
    response: SitesBody,
    run: async ({ query }, { redis }) => ({
      body: await listSites(redis, {
        prefix: query.prefix,
        limit: query.limit,
        ...(query.cursor === undefined ? {} : { cursor: query.cursor }),
      }),
      live: true,
    }),
  }),
  route({
    operationId: "listEventTypes",
    path: "/v1/sites/{site}/events",
    summary: "The event types a site has had",
    params: SiteParams,
    response: EventsBody,
    run: async ({ params }, { redis }) => {
      const events = await siteEventTypes(redis, params.site);
      if (events === undefined) {
        throw new ApiError(
          404,
          "unknown_site",
          `site ${params.site} has no counted event: check the id, or list the sites with /v1/sites`,
        );
      }
      return { body: { site: params.site, events }, live: true };
    },
  }),
  route({
    operationId: "countRange",
    path: "/v1/sites/{site}/count",
    summary:
      "Unique visitors (or events, with metric=events) over a range of days: one PFCOUNT over the fewest keys",
    params: SiteParams,
    query: CountQuery,
    response: CountBody,
    run: async ({ params, query }, context) => {
      const body = await countAnswer(context.redis, rangeRequest({ ...params, ...query }), context);
      return { body, live: reachesToday(query.to, body.timeZone, context) };
    },
  }),
  route({
    operationId: "countSeries",
    path: "/v1/sites/{site}/series",
    summary:
      "Unique visitors (or events, with metric=events) per day, ISO week or month of a range (edges clipped to it)",
    params: SiteParams,
    query: SeriesQuery,
    response: SeriesBody,
    run: async ({ params, query }, context) => {
      const body = await seriesAnswer(
        context.redis,
        rangeRequest({ ...params, ...query }),
        query.granularity,
        context,
      );
      return { body, live: reachesToday(query.to, body.timeZone, context) };
    },
  }),
  route({
    operationId: "getTimeZone",
    path: "/v1/sites/{site}/time-zone",
    summary: "The site's time zone (UTC unless the registry names one)",
    params: SiteParams,
    response: TimeZoneBody,
    run: async ({ params }, { redis }) => ({
      body: { site: params.site, ...(await siteTimeZone(redis, params.site)) },
      live: true,
    }),
  }),
];

/** The first issue of a failed validation, naming the field it is about. */
function describeIssues(issues: readonly v.BaseIssue<unknown>[]): string {
  const [issue] = issues;
  if (!issue) return "invalid request";
  const path = v.getDotPath(issue);
  if (issue.kind === "schema" && issue.received === "undefined" && path) {
    return `${path} is required`;
  }
  // An unknown query parameter: strictObject reports it with its key as the path.
  if (issue.kind === "schema" && issue.type === "strict_object" && path) {
    return `unknown parameter "${path}": see /v1/openapi.json for this route's parameters`;
  }
  return path && !issue.message.includes(`"${path}"`) ? `${path}: ${issue.message}` : issue.message;
}

/** The input checked against its schema; a 400 naming the field when it fails. */
export function parseInput<T>(schema: v.GenericSchema<unknown, T> | undefined, input: unknown): T {
  if (!schema) return {} as T;
  const parsed = v.safeParse(schema, input);
  if (!parsed.success) throw new ApiError(400, "invalid_request", describeIssues(parsed.issues));
  return parsed.output;
}

/** `work`, or a 503 once `ms` have passed (then `onMiss` drops the connection). */
export function withDeadline<T>(work: Promise<T>, ms: number, onMiss: () => void): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const missed = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      onMiss();
      reject(new Unavailable(`Redis did not answer within ${ms} ms: try again shortly`));
    }, ms);
  });
  return Promise.race([work, missed]).finally(() => clearTimeout(timer));
}

/**
 * An error answer, `{"error","message"}`, never cached; a 503 says when to retry. `kind` is one
 * the app's error schema documents.
 */
export function errorResponse(
  status: ContentfulStatusCode,
  kind: string,
  message: string,
  headers: Record<string, string> = {},
): Response {
  return new Response(JSON.stringify({ error: kind, message }), {
    status,
    headers: {
      "content-type": "application/json; charset=utf-8",
      "cache-control": "no-store",
      ...(status === 503 ? { "retry-after": String(RETRY_AFTER_S) } : {}),
      ...headers,
    },
  });
}

/** The 404 of a request no route takes. */
export function noRoute(c: Context): Response {
  return errorResponse(
    404,
    "not_found",
    `no route ${c.req.method} ${new URL(c.req.url).pathname}: see /v1/openapi.json for the routes`,
  );
}

/**
 * What a request that failed answers: an ApiError as it says; an unreachable Redis a 503;
 * anything else a 500 without its cause, which goes to `logError` as `what`.
 */
export function failureAnswer(logError: ApiDeps["logError"], what: string): ErrorHandler {
  return (err, c) => {
    if (err instanceof ApiError) return errorResponse(err.status, err.kind, err.message);
    const message = messageOf(err);
    if (UNREACHABLE.test(message)) {
      return errorResponse(
        503,
        "unavailable",
        `Redis is unavailable (${message}): try again shortly`,
      );
    }
    logError?.(what, { path: new URL(c.req.url).pathname, error: message });
    return errorResponse(
      500,
      "internal",
      "the request failed inside the API; its log has the cause",
    );
  };
}

export function createApiApp(deps: ApiDeps): Hono {
  const now = deps.now ?? Date.now;
  const deadlineMs = deps.deadlineMs ?? API_DEADLINE.default;
  const calendars = deps.calendars ?? readCalendars(deps.retentionDays);
  const app = new Hono();

  for (const definition of ROUTES) {
    const honoPath = definition.path.replace(/\{(\w+)\}/g, ":$1");
    app.get(honoPath, async (c) => {
      const params = parseInput(definition.params, c.req.param() as Record<string, string>);
      const query = parseInput(definition.query, c.req.query());
      const nowMs = now();
      let redis: ReadRedis;
      try {
        redis = deps.redis.get();
      } catch (err) {
        throw new Unavailable(`cannot connect to Redis: ${messageOf(err)}`);
      }
      const path = new URL(c.req.url).pathname;
      const warn = (line: string) => deps.logWarning?.(line, { path });
      const result = await withDeadline(
        definition.run(
          { params: params as never, query: query as never },
          { redis, nowMs, retentionDays: deps.retentionDays, calendars, warn },
        ),
        deadlineMs,
        () => deps.redis.reset(),
      );
      return c.json(result.body as object, 200, {
        "cache-control": result.live ? "no-store" : `private, max-age=${SETTLED_MAX_AGE_S}`,
      });
    });
  }

  app.get("/v1/openapi.json", (c) => c.json(openApiDocument(ROUTES)));

  app.notFound(noRoute);
  app.onError(failureAnswer(deps.logError, "read API request failed"));

  return app;
}
