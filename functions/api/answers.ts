/**
 * The read API's answers to a count and a series, built from Redis: what the routes return and
 * what the CLI's direct path prints, so the two are the same JSON by construction. Both say
 * which time zone their dates are in (`timeZone`, the site's, UTC without a valid entry).
 */

import type * as v from "valibot";
import type { Metric } from "../domain/keys.js";
import type { PeriodKind } from "../domain/periods.js";
import { asOfInstants, asOfScores, type CatalogRedis } from "../read/catalog.js";
import {
  type CountContext,
  type CountRedis,
  countRange,
  countSeries,
  type RangeQuery,
} from "../read/counts.js";
import type { CountBody, SeriesBody } from "./schemas.js";

/** Every command the routes send; an ioredis Redis or Cluster satisfies it. */
export type ReadRedis = CountRedis & CatalogRedis;

export type CountAnswer = v.InferOutput<typeof CountBody>;
export type SeriesAnswer = v.InferOutput<typeof SeriesBody>;

/** A range of a site's days, and which metric to count over it. */
export interface RangeRequest extends RangeQuery {
  readonly metric: Metric;
}

/** A range request from what was asked: `event` left out when absent (all event types). */
export function rangeRequest(asked: {
  readonly site: string;
  readonly from: string;
  readonly to: string;
  readonly metric: RangeRequest["metric"];
  readonly event?: string | undefined;
}): RangeRequest {
  const { site, from, to, metric, event } = asked;
  return event === undefined ? { site, from, to, metric } : { site, from, to, metric, event };
}

/** What was asked, as every range answer starts: site, event (null for all), metric. */
function asked(request: RangeRequest) {
  return { site: request.site, event: request.event ?? null, metric: request.metric };
}

/**
 * The as-of times, read with one ZMSCORE sent beside the count's first commands; the count
 * takes `events-since` from the same reply.
 */
function readAsOf(redis: ReadRedis, context: CountContext) {
  const scores = asOfScores(redis);
  const eventsSince = scores.then((s) => s.eventsSince);
  // Awaited through `scores`; this derived promise must not report the failure a second time.
  eventsSince.catch(() => {});
  return { scores, context: { ...context, eventsSince } };
}

/** The estimate of a range: one PFCOUNT over its fewest-keys cover, read beside `asOf`. */
export async function countAnswer(
  redis: ReadRedis,
  request: RangeRequest,
  context: CountContext,
): Promise<CountAnswer> {
  const stamp = readAsOf(redis, context);
  const [counted, scores] = await Promise.all([
    countRange(redis, request, stamp.context),
    stamp.scores,
  ]);
  return {
    ...asked(request),
    from: request.from,
    to: request.to,
    timeZone: counted.timeZone,
    estimate: counted.estimate,
    keys: [...counted.keys],
    complete: counted.missing.length === 0,
    missing: [...counted.missing],
    notRecorded: [...counted.notRecorded],
    asOf: asOfInstants(scores),
  };
}

/** One point per day, ISO week or month of the range, read beside `asOf`. */
export async function seriesAnswer(
  redis: ReadRedis,
  request: RangeRequest,
  granularity: PeriodKind,
  context: CountContext,
): Promise<SeriesAnswer> {
  const stamp = readAsOf(redis, context);
  const [series, scores] = await Promise.all([
    countSeries(redis, request, granularity, stamp.context),
    stamp.scores,
  ]);
  return {
    ...asked(request),
    granularity,
    from: request.from,
    to: request.to,
    timeZone: series.timeZone,
    points: series.points.map((p) => ({
      period: p.period,
      from: p.from,
      to: p.to,
      estimate: p.estimate,
      complete: p.missing.length === 0,
      missing: [...p.missing],
      notRecorded: [...p.notRecorded],
    })),
    asOf: asOfInstants(scores),
  };
}
