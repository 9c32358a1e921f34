/**
 * `series`: unique visitors (or, with --metric events, events) of a site per day, ISO week or
 * month of a range, as a table, the read API's JSON, or CSV. Directly against Redis (countSeries of functions/read/counts.ts, the
 * code the API runs) when API_URL is unset; through the read API, signed, when it is set. Both
 * paths give the same JSON: the API's SeriesBody.
 *
 * Visitors of different periods overlap, so the points do not add up to the range's unique
 * visitors; the table says so and names the `count` command that gives that total. An event
 * belongs to one day, so events per period do add up, within each point's HLL error.
 *
 * Dates are the site's local dates: the table says in which zone when it is not UTC, and the
 * JSON carries the API's `timeZone`.
 */

import type { RedisConnection } from "../functions/adapters/redis.js";
import { rangeRequest, type SeriesAnswer, seriesAnswer } from "../functions/api/answers.js";
import { GRANULARITIES, MAX_SERIES_POINTS, SeriesBody } from "../functions/api/schemas.js";
import { MAX_RANGE_DAYS } from "../functions/domain/cover.js";
import { messageOf } from "../functions/domain/errors.js";
import { assertEventType, assertSiteId, type Metric } from "../functions/domain/keys.js";
import { dayCount, type PeriodKind, periodsInRange } from "../functions/domain/periods.js";
import { loadRuntimeConfig } from "../functions/domain/runtime-env.js";
import { readCalendars } from "../functions/read/counts.js";
import { getFromApi, type ReadApi, type ReadApiDeps, readApiFromEnv } from "./api-client.js";
import { dayRangeFlags, parseFlags } from "./args.js";
import { METRIC_WORDS, metricFlag, zoneNote } from "./count.js";
import { type CliIo, EXIT_OK, UsageError } from "./io.js";
import { type ConnectRedis, withRedis } from "./redis.js";

export type SeriesFormat = "table" | "json" | "csv";

export interface SeriesRequest {
  readonly site: string;
  readonly event?: string;
  readonly from: string;
  readonly to: string;
  readonly granularity: PeriodKind;
  readonly metric: Metric;
  readonly format: SeriesFormat;
}

/** The series as the read API answers it (GET /v1/sites/{site}/series). */
export type Series = SeriesAnswer;

export interface SeriesDeps extends CliIo, ReadApiDeps {
  readonly connect?: ConnectRedis;
  /** The clock, for which days are past their retention. Default Date.now. */
  readonly now?: () => number;
  /** Bound on the whole Redis conversation (or the API request), ms. Default 15000. */
  readonly timeoutMs?: number;
}

/** The mark of a point some of whose days are no longer counted. */
export const INCOMPLETE_MARK = "*";

function isGranularity(text: string): text is PeriodKind {
  return (GRANULARITIES as readonly string[]).includes(text);
}

export function parseSeriesArgs(args: readonly string[]): SeriesRequest {
  const flags = parseFlags("series", args, {
    site: { type: "string" },
    event: { type: "string" },
    from: { type: "string" },
    to: { type: "string" },
    granularity: { type: "string" },
    metric: { type: "string" },
    json: { type: "boolean" },
    csv: { type: "boolean" },
  });
  if (flags.site === undefined) throw new UsageError("series: --site is required");
  const metric = metricFlag("series", flags.metric);
  try {
    assertSiteId(flags.site);
    if (flags.event !== undefined) assertEventType(flags.event);
  } catch (err) {
    throw new UsageError(`series: ${messageOf(err)}`);
  }
  const range = dayRangeFlags(flags.from, flags.to);
  if (!range) {
    throw new UsageError(
      "series: say which days with --from and --to, e.g. --from 2024-03-01 --to 2024-03-31",
    );
  }
  const granularity = flags.granularity ?? "day";
  if (!isGranularity(granularity)) {
    throw new UsageError(
      `series: --granularity must be one of ${GRANULARITIES.join(", ")}, got "${granularity}"`,
    );
  }
  if (dayCount(range.from, range.to) > MAX_RANGE_DAYS) {
    throw new UsageError(`series: a range may span at most ${MAX_RANGE_DAYS} days`);
  }
  const points = periodsInRange(range.from, range.to, granularity).length;
  if (points > MAX_SERIES_POINTS) {
    throw new UsageError(
      `series: ${range.from} to ${range.to} by ${granularity} is ${points} points, and a series may have at most ${MAX_SERIES_POINTS}: use a shorter range or a coarser --granularity`,
    );
  }
  if (flags.json && flags.csv) throw new UsageError("series: give --json or --csv, not both");
  return {
    site: flags.site,
    ...(flags.event !== undefined ? { event: flags.event } : {}),
    from: range.from,
    to: range.to,
    granularity,
    metric,
    format: flags.json ? "json" : flags.csv ? "csv" : "table",
  };
}

/** The series read from Redis: the read API's own answer (functions/api/answers.ts). */
async function seriesFromRedis(request: SeriesRequest, deps: SeriesDeps): Promise<Series> {
  const config = loadRuntimeConfig(deps.env);
  return withRedis(
    config.redis,
    { ...(deps.connect ? { connect: deps.connect } : {}), timeoutMs: deps.timeoutMs ?? 15_000 },
    (connection: RedisConnection) =>
      seriesAnswer(connection.client, rangeRequest(request), request.granularity, {
        retentionDays: config.retention.days,
        nowMs: (deps.now ?? Date.now)(),
        calendars: readCalendars(config.retention.days),
        warn: (line) => deps.stderr.write(`${line}\n`),
      }),
  );
}

function seriesFromApi(api: ReadApi, request: SeriesRequest, deps: SeriesDeps): Promise<Series> {
  return getFromApi(
    api,
    `v1/sites/${encodeURIComponent(request.site)}/series`,
    {
      from: request.from,
      to: request.to,
      granularity: request.granularity,
      event: request.event,
      metric: request.metric,
    },
    SeriesBody,
    deps.timeoutMs ?? 15_000,
  );
}

/** Rows of cells, each column as wide as its widest cell; `right` columns are right-aligned. */
function aligned(rows: readonly (readonly string[])[], right: ReadonlySet<number>): string[] {
  const widths = (rows[0] ?? []).map((_, c) => Math.max(...rows.map((r) => (r[c] ?? "").length)));
  return rows.map((row) =>
    `  ${row
      .map((cell, c) =>
        right.has(c) ? cell.padStart(widths[c] ?? 0) : cell.padEnd(widths[c] ?? 0),
      )
      .join("  ")}`.trimEnd(),
  );
}

function daySpan(days: readonly string[]): string {
  const [firstDay] = days;
  const lastDay = days[days.length - 1];
  if (firstDay === undefined || lastDay === undefined) return "";
  const count = `${days.length} day${days.length === 1 ? "" : "s"}`;
  return firstDay === lastDay ? `${count}: ${firstDay}` : `${count}: ${firstDay} to ${lastDay}`;
}

/** The series as an aligned table, with its footnotes. */
export function formatSeriesTable(series: Series): string {
  const what = series.event === null ? "all events" : `event ${series.event}`;
  const words = METRIC_WORDS[series.metric];
  const counted =
    series.metric === "visitors"
      ? "HyperLogLog estimates, standard error 0.81%"
      : `${words.counted}; HyperLogLog estimates, standard error 0.81%`;
  const rows = [
    ["period", "from", "to", "estimate", ""],
    ...series.points.map((p) => [
      p.period,
      p.from,
      p.to,
      String(p.estimate),
      p.complete ? "" : INCOMPLETE_MARK,
    ]),
  ];
  const notRecorded = new Set(series.points.flatMap((p) => p.notRecorded));
  const missing = [...new Set(series.points.flatMap((p) => p.missing))].sort();
  const expired = missing.filter((day) => !notRecorded.has(day));
  const eventFlag = series.event === null ? "" : ` --event ${series.event}`;
  const metricFlag = series.metric === "visitors" ? "" : ` --metric ${series.metric}`;
  const lines = [
    `${words.what} (${counted}) of site ${series.site}, ${what}, ${series.from} to ${series.to}, by ${series.granularity}${zoneNote(series.timeZone)}`,
    ...aligned(rows, new Set([3])),
    "",
  ];
  if (expired.length > 0) {
    lines.push(
      `${INCOMPLETE_MARK} incomplete: days past the retention of their daily keys are no longer counted (${daySpan(expired)}); the estimate covers the other days only.`,
    );
  }
  if (notRecorded.size > 0) {
    const since = series.asOf.eventsSince;
    lines.push(
      since === null
        ? `${INCOMPLETE_MARK} not recorded yet: the consumer has stored no event since the events metric was added, so no day's events are counted (${daySpan([...notRecorded].sort())}).`
        : `${INCOMPLETE_MARK} not recorded: events are recorded from ${since.slice(0, 10)} (as of ${since}); the days before are not counted (${daySpan([...notRecorded].sort())}).`,
    );
  }
  const total = `npm run cli -- count --site ${series.site} --from ${series.from} --to ${series.to}${eventFlag}${metricFlag}`;
  lines.push(
    series.metric === "visitors"
      ? `Visitors of different ${series.granularity}s overlap, so the points do not add up to the range's unique visitors; for that total: ${total}`
      : `Each event belongs to one day, so the points add up to the range's events within their HLL error; the range's own estimate: ${total}`,
    `as of: consumer ${series.asOf.consumer ?? "never"}, rollup ${series.asOf.rollup ?? "never"}${series.metric === "events" ? `, events recorded since ${series.asOf.eventsSince ?? "never"}` : ""}`,
  );
  return `${lines.join("\n")}\n`;
}

/**
 * The series as CSV with a header; `missing_days` is how many days of a point are not counted,
 * `not_recorded_days` how many of those are before the metric was first recorded.
 */
export function formatSeriesCsv(series: Series): string {
  const lines = ["period,from,to,estimate,complete,missing_days,not_recorded_days"];
  for (const p of series.points) {
    lines.push(
      [p.period, p.from, p.to, p.estimate, p.complete, p.missing.length, p.notRecorded.length].join(
        ",",
      ),
    );
  }
  return `${lines.join("\n")}\n`;
}

export async function runSeries(args: readonly string[], deps: SeriesDeps): Promise<number> {
  const request = parseSeriesArgs(args);
  const api = readApiFromEnv(deps.env, deps);
  const series = api
    ? await seriesFromApi(api, request, deps)
    : await seriesFromRedis(request, deps);
  const text =
    request.format === "json"
      ? `${JSON.stringify(series)}\n`
      : request.format === "csv"
        ? formatSeriesCsv(series)
        : formatSeriesTable(series);
  deps.stdout.write(text);
  return EXIT_OK;
}
