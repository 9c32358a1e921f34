/**
 * `count`: the estimate of a site's unique visitors (or, with --metric events, its events) over a
 * day, week, month or any range, as one PFCOUNT over the fewest keys that cover it
 * (functions/read/counts.ts, shared with the read API), plus the redis-cli command that gives the
 * same.
 *
 * Both paths build the read API's own answer (functions/api/answers.ts) and print it the same
 * way: read from Redis when API_URL is unset; asked of the read API (GET
 * /v1/sites/{site}/count, signed with the caller's AWS credentials) when it is set. The redis-cli
 * line comes from this environment's Redis settings (the stack's cli_env has them); without
 * REDIS_ENDPOINT there is no command to show, so the text leaves the line out and --json says
 * "redisCli": null rather than print a command that names no cluster.
 *
 * Dates are the site's local dates. `--day today` and `--day yesterday` are resolved in the
 * site's zone by this run's clock: the zone comes from the registry (one HGET, whose answer the
 * count then reuses) or, through the API, from GET /v1/sites/{site}/time-zone.
 */

import type { RedisConnection } from "../functions/adapters/redis.js";
import { type CountAnswer, countAnswer, rangeRequest } from "../functions/api/answers.js";
import { CountBody, TimeZoneBody } from "../functions/api/schemas.js";
import { first, last } from "../functions/domain/arrays.js";
import { MAX_RANGE_DAYS } from "../functions/domain/cover.js";
import { messageOf } from "../functions/domain/errors.js";
import {
  assertEventType,
  assertSiteId,
  METRICS,
  type Metric,
  parseKey,
} from "../functions/domain/keys.js";
import { dayLabel, daysInMonth, daysInRange, daysInWeek } from "../functions/domain/periods.js";
import type { Env, RedisSettings, RuntimeConfig } from "../functions/domain/runtime-env.js";
import { DEFAULT_RETENTION, loadRuntimeConfig } from "../functions/domain/runtime-env.js";
import type { ZoneCalendars } from "../functions/domain/time-zones.js";
import { DEFAULT_TIME_ZONE } from "../functions/domain/zone-registry.js";
import {
  localTodayNumber,
  type ReadZone,
  readCalendars,
  readSiteZone,
  readZoneOf,
} from "../functions/read/counts.js";
import { getFromApi, type ReadApi, type ReadApiDeps, readApiFromEnv } from "./api-client.js";
import { dayFlag, dayRangeFlags, monthFlag, parseFlags, weekFlag } from "./args.js";
import { type CliIo, EXIT_OK, type Output, UsageError } from "./io.js";
import { type ConnectRedis, withRedis } from "./redis.js";

/** Days named relative to today in the site's zone: `--day today`, `--day yesterday`. */
export const RELATIVE_DAYS = { today: 0, yesterday: -1 } as const;
export type RelativeDay = keyof typeof RELATIVE_DAYS;

export interface CountRequest {
  readonly site: string;
  readonly event?: string;
  /** The days, as given; or a day relative to today, resolved once the site's zone is known. */
  readonly days:
    | { readonly from: string; readonly to: string }
    | { readonly relative: RelativeDay };
  readonly metric: Metric;
  readonly json: boolean;
}

/** A request whose days are dates: `relative` says how they were named, if they were. */
interface ResolvedRequest {
  readonly site: string;
  readonly event?: string;
  readonly from: string;
  readonly to: string;
  readonly metric: Metric;
  readonly relative?: { readonly day: RelativeDay; readonly timeZone: string };
}

export interface CountDeps extends CliIo, ReadApiDeps {
  readonly connect?: ConnectRedis;
  /** The clock, for the retention warning. Default Date.now. */
  readonly now?: () => number;
  /** Bound on the whole Redis conversation (or the API request), ms. Default 15000. */
  readonly timeoutMs?: number;
}

/** What `count --json` prints. */
export interface CountResult {
  readonly site: string;
  readonly event: string | null;
  readonly metric: Metric;
  readonly from: string;
  readonly to: string;
  /**
   * The time zone the dates are in (the site's; UTC without a valid entry). Null only when
   * an older read API did not say.
   */
  readonly timeZone: string | null;
  readonly keys: readonly string[];
  readonly estimate: number;
  /** Whether every day is counted; `missing` lists those that are not (as in the read API). */
  readonly complete: boolean;
  readonly missing: readonly string[];
  /** Days before the metric was first recorded (events only); also in `missing`. */
  readonly notRecorded: readonly string[];
  /** The same PFCOUNT with redis-cli; null when read through the API without REDIS_ENDPOINT. */
  readonly redisCli: string | null;
}

/** A --metric value: visitors or events; anything else is a usage error of `command`. */
export function metricFlag(command: string, value: string | undefined): Metric {
  if (value === undefined) return "visitors";
  if ((METRICS as readonly string[]).includes(value)) return value as Metric;
  throw new UsageError(`${command}: --metric must be ${METRICS.join(" or ")}, got "${value}"`);
}

/** How the text output names what a metric counts. */
export const METRIC_WORDS: Readonly<
  Record<Metric, { readonly what: string; readonly counted: string }>
> = {
  visitors: { what: "unique visitors", counted: "distinct user ids" },
  events: {
    what: "events",
    counted: "distinct event identities: each event's event_id, else its Kinesis record id",
  },
};

export function parseCountArgs(args: readonly string[]): CountRequest {
  const flags = parseFlags("count", args, {
    site: { type: "string" },
    event: { type: "string" },
    day: { type: "string" },
    week: { type: "string" },
    month: { type: "string" },
    from: { type: "string" },
    to: { type: "string" },
    metric: { type: "string" },
    json: { type: "boolean" },
  });
  if (flags.site === undefined) throw new UsageError("count: --site is required");
  const metric = metricFlag("count", flags.metric);
  try {
    assertSiteId(flags.site);
    if (flags.event !== undefined) assertEventType(flags.event);
  } catch (err) {
    throw new UsageError(`count: ${messageOf(err)}`);
  }
  const chosen = (["day", "week", "month", "from", "to"] as const).filter(
    (f) => flags[f] !== undefined,
  );
  const selectors = chosen.filter((f) => f !== "to").map((f) => (f === "from" ? "from/to" : f));
  if (selectors.length !== 1 || (chosen.includes("to") && !chosen.includes("from"))) {
    throw new UsageError(
      chosen.length === 0
        ? "count: say which days: one of --day, --week, --month, or --from with --to"
        : `count: give exactly one of --day, --week, --month, or --from with --to (got ${chosen.map((f) => `--${f}`).join(", ")})`,
    );
  }
  const base = {
    site: flags.site,
    ...(flags.event !== undefined ? { event: flags.event } : {}),
    metric,
    json: flags.json ?? false,
  };
  if (flags.day !== undefined && Object.hasOwn(RELATIVE_DAYS, flags.day)) {
    return { ...base, days: { relative: flags.day as RelativeDay } };
  }
  let days: string[];
  if (flags.day !== undefined) days = [dayFlag("day", flags.day)];
  else if (flags.week !== undefined) days = daysInWeek(weekFlag(flags.week));
  else if (flags.month !== undefined) days = daysInMonth(monthFlag(flags.month));
  else {
    const range = dayRangeFlags(flags.from, flags.to);
    if (!range) throw new UsageError("count: --from and --to are required together");
    days = [range.from, range.to];
    if (daysInRange(range.from, range.to).length > MAX_RANGE_DAYS) {
      throw new UsageError(`count: a range may span at most ${MAX_RANGE_DAYS} days`);
    }
  }
  return { ...base, days: { from: first(days, "day"), to: last(days, "day") } };
}

function shellQuote(s: string): string {
  return /^[A-Za-z0-9_./:=@%+-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`;
}

/** The redis-cli command that runs the same PFCOUNT (it asks for the password, if any). */
export function redisCliCommand(settings: RedisSettings, keys: readonly string[]): string {
  const parts = ["redis-cli"];
  if (settings.cluster) parts.push("-c");
  if (settings.tls) parts.push("--tls");
  if (settings.tls && settings.tlsCaFile) parts.push("--cacert", settings.tlsCaFile);
  parts.push("-h", settings.host, "-p", String(settings.port));
  if (settings.auth.mode !== "none") parts.push("--user", settings.auth.user, "--askpass");
  parts.push("PFCOUNT", ...keys);
  return parts.map(shellQuote).join(" ");
}

/** "; dates are local to Asia/Kathmandu" for a zone other than UTC; "" for UTC or unknown. */
export function zoneNote(timeZone: string | null | undefined): string {
  return timeZone === undefined || timeZone === null || timeZone === DEFAULT_TIME_ZONE
    ? ""
    : `; dates are local to ${timeZone}`;
}

function describe(result: CountResult, relative: ResolvedRequest["relative"]): string {
  const what = result.event === null ? "all events" : `event ${result.event}`;
  const dates = result.from === result.to ? result.from : `${result.from} to ${result.to}`;
  const range =
    relative === undefined ? dates : `${dates} (${relative.day} in ${relative.timeZone})`;
  const kinds = { month: 0, week: 0, day: 0 };
  for (const key of result.keys) kinds[parseKey(key).period.kind]++;
  const parts = (["month", "week", "day"] as const)
    .filter((k) => kinds[k] > 0)
    .map((k) => `${kinds[k]} ${k}${kinds[k] === 1 ? "" : "s"}`);
  const words = METRIC_WORDS[result.metric];
  const lines = [
    `${result.estimate}`,
    result.metric === "visitors"
      ? `  ${words.what} (HyperLogLog estimate, standard error 0.81%) of site ${result.site}, ${what}, ${range}${zoneNote(result.timeZone)}`
      : `  ${words.what} (${words.counted}; HyperLogLog estimate, standard error 0.81%) of site ${result.site}, ${what}, ${range}${zoneNote(result.timeZone)}`,
  ];
  if (result.redisCli === null) {
    lines.push(
      `  from ${parts.join(", ")} in one PFCOUNT, through the read API (set REDIS_ENDPOINT as in the stack's cli_env to see the redis-cli command)`,
    );
  } else {
    lines.push(`  from ${parts.join(", ")} in one PFCOUNT; the same with redis-cli:`);
    lines.push(`  ${result.redisCli}`);
  }
  return `${lines.join("\n")}\n`;
}

/** The warning for days counted from day keys past their retention (gone, so adding nothing). */
export function warnExpired(
  stderr: Output,
  expired: readonly string[],
  retentionDays: number | undefined,
): void {
  if (expired.length === 0) return;
  const retention =
    retentionDays === undefined ? "the retention" : `the ${retentionDays}-day retention`;
  stderr.write(
    `warning: ${expired.length} of the days counted (${daySpan(expired)}) are past ${retention} of daily keys (RETENTION_DAYS): their keys have expired and add nothing to the estimate. Older ranges are exact only in whole weeks and months.\n`,
  );
}

/** The warning for days before events were first recorded: their events were never counted. */
export function warnNotRecorded(
  stderr: Output,
  notRecorded: readonly string[],
  eventsSince: string | null,
): void {
  if (notRecorded.length === 0) return;
  stderr.write(
    eventsSince === null
      ? `warning: events have not been recorded yet (the consumer has stored no event since the events metric was added), so none of the ${notRecorded.length} days counted (${daySpan(notRecorded)}) has its events counted.\n`
      : `warning: ${notRecorded.length} of the days counted (${daySpan(notRecorded)}) are before events were first recorded (${eventsSince.slice(0, 10)}, as of ${eventsSince}): their events are not recorded, so the estimate covers the other days only.\n`,
  );
}

function daySpan(days: readonly string[]): string {
  return `${days[0]}${days.length > 1 ? ` to ${days[days.length - 1]}` : ""}`;
}

/**
 * The runtime config when the environment names a Redis endpoint, else undefined: reading
 * through the API needs none, but uses it for the redis-cli line and the retention warning.
 */
export function optionalRuntimeConfig(env: Env): RuntimeConfig | undefined {
  return env.REDIS_ENDPOINT?.trim() ? loadRuntimeConfig(env) : undefined;
}

/** The day `relative` names, in the zone of `calendars`' calendar for `timeZone`, by `nowMs`. */
export function relativeDay(
  relative: RelativeDay,
  timeZone: string,
  calendars: ZoneCalendars,
  nowMs: number,
): string {
  const today = localTodayNumber(calendars.forZone(timeZone, nowMs), nowMs);
  return dayLabel(today + RELATIVE_DAYS[relative]);
}

/** The request with its days as dates: a relative day resolved in `zone`. */
function resolve(
  request: CountRequest,
  zone: ReadZone | undefined,
  calendars: ZoneCalendars,
  nowMs: number,
): ResolvedRequest {
  const { days, json: _, ...rest } = request;
  if (!("relative" in days)) return { ...rest, from: days.from, to: days.to };
  const timeZone = zone?.timeZone ?? DEFAULT_TIME_ZONE;
  const day = relativeDay(days.relative, timeZone, calendars, nowMs);
  return { ...rest, from: day, to: day, relative: { day: days.relative, timeZone } };
}

/**
 * The count through the read API. A relative day needs the site's zone first: GET
 * /v1/sites/{site}/time-zone gives the registry's entry (one that is not a valid zone is UTC,
 * with the warning the API itself logs).
 */
async function countFromApi(
  api: ReadApi,
  request: CountRequest,
  calendars: ZoneCalendars,
  deps: CountDeps,
): Promise<{ answer: CountAnswer; resolved: ResolvedRequest }> {
  const timeoutMs = deps.timeoutMs ?? 15_000;
  const site = encodeURIComponent(request.site);
  let zone: ReadZone | undefined;
  if ("relative" in request.days) {
    const entry = await getFromApi(api, `v1/sites/${site}/time-zone`, {}, TimeZoneBody, timeoutMs);
    zone = readZoneOf(request.site, entry.source === "default" ? null : entry.timeZone);
    if (zone.warning !== undefined) deps.stderr.write(`${zone.warning}\n`);
  }
  const resolved = resolve(request, zone, calendars, (deps.now ?? Date.now)());
  const answer = await getFromApi(
    api,
    `v1/sites/${site}/count`,
    { from: resolved.from, to: resolved.to, event: resolved.event, metric: resolved.metric },
    CountBody,
    timeoutMs,
  );
  return { answer, resolved };
}

/**
 * The read API's answer, built from Redis by the code the API runs. A relative day reads the
 * site's zone first (one HGET) and the count reuses that reading.
 */
function countFromRedis(
  request: CountRequest,
  config: RuntimeConfig,
  calendars: ZoneCalendars,
  deps: CountDeps,
): Promise<{ answer: CountAnswer; resolved: ResolvedRequest }> {
  return withRedis(
    config.redis,
    { ...(deps.connect ? { connect: deps.connect } : {}), timeoutMs: deps.timeoutMs ?? 15_000 },
    async (connection: RedisConnection) => {
      const nowMs = (deps.now ?? Date.now)();
      const zone =
        "relative" in request.days ? readSiteZone(connection.client, request.site) : undefined;
      const resolved = resolve(request, await zone, calendars, nowMs);
      const answer = await countAnswer(connection.client, rangeRequest(resolved), {
        retentionDays: config.retention.days,
        nowMs,
        calendars,
        warn: (line) => deps.stderr.write(`${line}\n`),
        ...(zone === undefined ? {} : { zone }),
      });
      return { answer, resolved };
    },
  );
}

export async function runCount(args: readonly string[], deps: CountDeps): Promise<number> {
  const request = parseCountArgs(args);
  const api = readApiFromEnv(deps.env, deps);
  let config: RuntimeConfig | undefined;
  let counted: { answer: CountAnswer; resolved: ResolvedRequest };
  if (api) {
    config = optionalRuntimeConfig(deps.env);
    const calendars = readCalendars((config?.retention ?? DEFAULT_RETENTION).days);
    counted = await countFromApi(api, request, calendars, deps);
  } else {
    config = loadRuntimeConfig(deps.env);
    counted = await countFromRedis(request, config, readCalendars(config.retention.days), deps);
  }
  const { answer, resolved } = counted;
  const result: CountResult = {
    site: answer.site,
    event: answer.event,
    metric: answer.metric,
    from: answer.from,
    to: answer.to,
    timeZone: answer.timeZone ?? null,
    keys: answer.keys,
    estimate: answer.estimate,
    complete: answer.complete,
    missing: answer.missing,
    notRecorded: answer.notRecorded,
    redisCli: config ? redisCliCommand(config.redis, answer.keys) : null,
  };
  const notRecorded = new Set(answer.notRecorded);
  warnExpired(
    deps.stderr,
    answer.missing.filter((day) => !notRecorded.has(day)),
    config?.retention.days,
  );
  warnNotRecorded(deps.stderr, answer.notRecorded, answer.asOf.eventsSince);
  deps.stdout.write(
    request.json ? `${JSON.stringify(result)}\n` : describe(result, resolved.relative),
  );
  return EXIT_OK;
}
