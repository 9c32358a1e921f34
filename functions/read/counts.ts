/**
 * Counting over any range of days, shared by the CLI's `count` and the read API: which week
 * and month keys may answer for their days, the fewest keys that cover a range
 * (functions/domain/cover.ts), one PFCOUNT per answer, and which days are lost to retention.
 *
 * A week or month key is only trusted when it exists and the rollup has nothing left to merge
 * into it: none of its days is in the touched set (written since the last run) or the pending
 * set (being merged by a run now). Both are checked with SMISMEMBER on exactly the members the
 * consumer writes (`site|day`, or `site|day|event`), never with a scan.
 */

import { candidatePeriods, coverRange } from "../domain/cover.js";
import { messageOf } from "../domain/errors.js";
import { PENDING_KEY, periodKey, TOUCHED_KEY, touchedMember } from "../domain/keys.js";
import {
  dayExpiresAtMs,
  dayLabel,
  dayNumber,
  dayStartMs,
  firstDayOf,
  lastDayOf,
  type Period,
  type PeriodKind,
  periodSpan,
  periodsInRange,
} from "../domain/periods.js";

/** The Redis commands counting uses; an ioredis Redis or Cluster satisfies it. */
export interface CountRedis {
  smismember(key: string, ...members: string[]): Promise<number[]>;
  exists(...keys: string[]): Promise<number>;
  pfcount(...keys: string[]): Promise<number>;
}

/** A site's (or one of its event types') days from `from` to `to`, both included. */
export interface RangeQuery {
  readonly site: string;
  readonly event?: string;
  readonly from: string;
  readonly to: string;
}

export interface RangeCount {
  /** The keys of the cover, in day order: what one PFCOUNT counted. */
  readonly keys: readonly string[];
  readonly estimate: number;
  /** Days counted from a day key that is past its retention: gone, so adding nothing. */
  readonly missing: readonly string[];
}

export interface SeriesPoint {
  /** The point's period label: `2024-03-09`, `2024-W10` or `2024-03`. */
  readonly period: string;
  /** The days of the period inside the range (edges of the range clip weeks and months). */
  readonly from: string;
  readonly to: string;
  readonly keys: readonly string[];
  readonly estimate: number;
  readonly missing: readonly string[];
}

const MEMBERS_PER_CALL = 5000;

async function membersIn(redis: CountRedis, key: string, members: string[]): Promise<Set<string>> {
  const found = new Set<string>();
  for (let i = 0; i < members.length; i += MEMBERS_PER_CALL) {
    const chunk = members.slice(i, i + MEMBERS_PER_CALL);
    const flags = await redis.smismember(key, ...chunk);
    chunk.forEach((m, j) => {
      if (flags[j] === 1) found.add(m);
    });
  }
  return found;
}

/**
 * The labels of the range's weeks and months whose key can answer for their days. When the
 * touched and pending sets cannot be read (a user without access to them), none: days are
 * always exact while within their retention; `warn` says so.
 */
export async function usablePeriods(
  redis: CountRedis,
  query: RangeQuery,
  warn: (line: string) => void = () => {},
): Promise<Set<string>> {
  const candidates = candidatePeriods(query.from, query.to);
  if (candidates.length === 0) return new Set();
  // The touched-set member of every day of the range, made once; a candidate's members are a
  // slice of it (weeks and months overlap, so their days would otherwise be made twice).
  const start = dayNumber(query.from);
  const members = Array.from({ length: dayNumber(query.to) - start + 1 }, (_, i) =>
    touchedMember(query.site, dayLabel(start + i), query.event),
  );
  const spans = candidates.map((period) => {
    const span = periodSpan(period);
    return { period, first: span.start - start, end: span.start - start + span.days };
  });
  const firstUsed = Math.min(...spans.map((s) => s.first));
  const asked = members.slice(firstUsed, Math.max(...spans.map((s) => s.end)));
  let busy: Set<string>;
  try {
    const [touched, pending] = await Promise.all([
      membersIn(redis, TOUCHED_KEY, asked),
      membersIn(redis, PENDING_KEY, asked),
    ]);
    busy = new Set([...touched, ...pending]);
  } catch (err) {
    if (!/^NOPERM/.test(messageOf(err))) throw err;
    warn(
      `warning: cannot read ${TOUCHED_KEY} and ${PENDING_KEY} (${messageOf(err)}); counting from daily keys only, which is exact while the days are within their retention`,
    );
    return new Set();
  }
  const exists = await Promise.all(
    candidates.map((p) => redis.exists(periodKey(query.site, p, query.event))),
  );
  const usable = new Set<string>();
  spans.forEach(({ period, first, end }, i) => {
    if (exists[i] !== 1) return;
    for (let d = first; d < end; d++) if (busy.has(members[d] ?? "")) return;
    usable.add(period.label);
  });
  return usable;
}

/** Days of a cover read from day keys that are past their retention, so gone from Redis. */
export function expiredDays(
  cover: readonly Period[],
  retentionDays: number,
  nowMs: number,
): string[] {
  return cover
    .filter(
      (period) =>
        period.kind === "day" && dayExpiresAtMs(dayStartMs(period.label), retentionDays) <= nowMs,
    )
    .map((period) => period.label);
}

/** What a count needs besides Redis: the daily retention and the clock, for `missing`. */
export interface CountContext {
  readonly retentionDays: number;
  readonly nowMs: number;
  readonly warn?: (line: string) => void;
}

function coverOf(query: RangeQuery, usable: ReadonlySet<string>): Period[] {
  return coverRange(query.from, query.to, (p) => usable.has(p.label));
}

/** The estimate of a range: one PFCOUNT over its fewest-keys cover. */
export async function countRange(
  redis: CountRedis,
  query: RangeQuery,
  context: CountContext,
): Promise<RangeCount> {
  const usable = await usablePeriods(redis, query, context.warn);
  const cover = coverOf(query, usable);
  const keys = cover.map((p) => periodKey(query.site, p, query.event));
  // One PFCOUNT: every key of a site shares its hash tag, so one slot and no CROSSSLOT.
  const estimate = await redis.pfcount(...keys);
  return { keys, estimate, missing: expiredDays(cover, context.retentionDays, context.nowMs) };
}

/**
 * One point per day, ISO week or month of the range; the first and last week or month count
 * only their days inside the range. Each point is one PFCOUNT over its own fewest-keys cover,
 * with the weeks and months that may answer decided once for the whole range; the PFCOUNTs
 * are issued together, so an auto-pipelining client sends them in one round trip per node.
 */
export async function countSeries(
  redis: CountRedis,
  query: RangeQuery,
  granularity: PeriodKind,
  context: CountContext,
): Promise<SeriesPoint[]> {
  const usable = await usablePeriods(redis, query, context.warn);
  const points = periodsInRange(query.from, query.to, granularity).map((p) => {
    // A day, or a whole period that may answer for itself, is its own fewest-keys cover.
    const whole =
      p.period.kind === "day" ||
      (usable.has(p.period.label) &&
        p.from === firstDayOf(p.period) &&
        p.to === lastDayOf(p.period));
    const cover = whole ? [p.period] : coverOf({ ...query, from: p.from, to: p.to }, usable);
    return {
      period: p.period.label,
      from: p.from,
      to: p.to,
      keys: cover.map((c) => periodKey(query.site, c, query.event)),
      missing: expiredDays(cover, context.retentionDays, context.nowMs),
    };
  });
  const estimates = await Promise.all(points.map((p) => redis.pfcount(...p.keys)));
  return points.map((p, i) => ({ ...p, estimate: estimates[i] ?? 0 }));
}
