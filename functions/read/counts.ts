/**
 * Counting over any range of days, shared by the CLI's `count` and the read API: which week
 * and month keys may answer for their days, the fewest keys that cover a range
 * (functions/domain/cover.ts), one PFCOUNT per answer, and which days are lost to retention.
 *
 * A week or month key is only trusted when it exists and the rollup has nothing left to merge
 * into it: none of its days is in the touched set (written since the last run) or the pending
 * set (being merged by a run now). Both are checked with SMISMEMBER on exactly the members the
 * consumer writes (`site|day`, or `site|day|event`), never with a scan: the sets of the site's
 * bookkeeping group (keys.ts groupOfSite), so one slot per site, and the single-slot sets of
 * older versions, which hold work only until the next rollup drains them. The same members stand
 * for both metrics' keys (the consumer writes `uv:` and `ev:` keys of a day together), so only
 * the keys checked for existence depend on the metric.
 *
 * Never a silent zero: a count lists in `missing` the days it cannot count, those read from a
 * day key past its retention and, for events, those before events were first recorded
 * (`notRecorded`, also in `missing`).
 *
 * Dates are the site's local dates (DESIGN.md, "Per-site time zones"): the consumer writes
 * keys under local day labels, so covers are label arithmetic. What depends on the zone is
 * "now": which local day today is, so which days are past their retention, and the local day
 * on which events were first recorded. The zone is read with one HGET of the registry, sent
 * with a count's first commands, so it costs no round trip of its own.
 */

import { candidatePeriods, coverRange } from "../domain/cover.js";
import { messageOf } from "../domain/errors.js";
import {
  AS_OF_EVENTS_SINCE,
  AS_OF_KEY,
  groupOfSite,
  LEGACY_PENDING_KEY,
  LEGACY_TOUCHED_KEY,
  type Metric,
  pendingKey,
  periodKey,
  TIME_ZONES_KEY,
  touchedKey,
  touchedMember,
} from "../domain/keys.js";
import {
  dayLabel,
  dayNumber,
  firstDayOf,
  lastDayOf,
  type Period,
  type PeriodKind,
  periodSpan,
  periodsInRange,
} from "../domain/periods.js";
import {
  TIME_ZONE_EXAMPLE,
  timeZoneProblem,
  type ZoneCalendar,
  ZoneCalendars,
} from "../domain/time-zones.js";
import { DEFAULT_TIME_ZONE } from "../domain/zone-registry.js";

/** The Redis commands counting uses; an ioredis Redis or Cluster satisfies it. */
export interface CountRedis {
  smismember(key: string, ...members: string[]): Promise<number[]>;
  exists(...keys: string[]): Promise<number>;
  pfcount(...keys: string[]): Promise<number>;
  zmscore(key: string, ...members: string[]): Promise<(string | null)[]>;
  hget(key: string, field: string): Promise<string | null>;
}

/**
 * A site's (or one of its event types') days from `from` to `to`, both included, counted in
 * one metric: unique visitors (`uv:` keys, the default) or events (`ev:` keys).
 */
export interface RangeQuery {
  readonly site: string;
  readonly event?: string;
  readonly from: string;
  readonly to: string;
  readonly metric?: Metric;
}

export interface RangeCount {
  /** The zone whose calendar said which day is today (UTC without a valid registry entry). */
  readonly timeZone: string;
  /** The keys of the cover, in day order: what one PFCOUNT counted. */
  readonly keys: readonly string[];
  readonly estimate: number;
  /**
   * Days the estimate does not fully count, in day order: those read from a day key past its
   * retention (gone, so adding nothing), and those in `notRecorded`.
   */
  readonly missing: readonly string[];
  /**
   * Days before the metric was first recorded (events: before the day of `events-since`), in
   * day order: their keys hold at most the late events stored since, so they are not counted.
   * Always empty for visitors.
   */
  readonly notRecorded: readonly string[];
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
  readonly notRecorded: readonly string[];
}

export interface SeriesCount {
  /** The zone whose calendar said which day is today (UTC without a valid registry entry). */
  readonly timeZone: string;
  readonly points: readonly SeriesPoint[];
}

/** The zone a read uses for a site: its registry entry when that is a valid zone, else UTC. */
export interface ReadZone {
  readonly timeZone: string;
  /** Why the registry's entry was not used (then timeZone is UTC): a warning for the operator. */
  readonly warning?: string;
}

/**
 * How far around now a reader's calendars reach: every day still within the daily retention
 * (and a few more), and the next two days; instants outside (a read of last year's
 * events-since) are answered by dayOfAnyInstant.
 */
export function readCalendars(retentionDays: number): ZoneCalendars {
  return new ZoneCalendars({ pastDays: retentionDays + 4, futureDays: 2 });
}

/** The zone of a registry entry (null: none): a valid zone as it is, anything else UTC. */
export function readZoneOf(site: string, entry: string | null): ReadZone {
  if (entry === null) return { timeZone: DEFAULT_TIME_ZONE };
  const problem = timeZoneProblem(entry);
  if (problem === undefined) return { timeZone: entry };
  return {
    timeZone: DEFAULT_TIME_ZONE,
    warning: `warning: site ${site}'s entry in the time-zone registry (${TIME_ZONES_KEY}) is "${entry}", which is not a valid zone (${problem}); its dates are read as UTC dates until it is fixed: npm run cli -- site --site ${site} --time-zone <zone>, e.g. ${TIME_ZONE_EXAMPLE}`,
  };
}

/**
 * A site's zone from the registry (one HGET). A user that may not read the registry (NOPERM)
 * reads in UTC, with a warning; any other failure is the read's failure.
 */
export async function readSiteZone(
  redis: Pick<CountRedis, "hget">,
  site: string,
): Promise<ReadZone> {
  try {
    return readZoneOf(site, await redis.hget(TIME_ZONES_KEY, site));
  } catch (err) {
    if (!/^NOPERM/.test(messageOf(err))) throw err;
    return {
      timeZone: DEFAULT_TIME_ZONE,
      warning: `warning: cannot read the time-zone registry ${TIME_ZONES_KEY} (${messageOf(err)}); site ${site}'s dates are read as UTC dates: give this Redis user +hget on that key, as the stack's reader user has`,
    };
  }
}

/** The local day number of today in a zone, by the calendar of that zone. */
export function localTodayNumber(calendar: ZoneCalendar, nowMs: number): number {
  return calendar.dayNumberOfAnyInstant(nowMs);
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
  const group = groupOfSite(query.site);
  const sets = [touchedKey(group), pendingKey(group), LEGACY_TOUCHED_KEY, LEGACY_PENDING_KEY];
  let busy: Set<string>;
  try {
    const found = await Promise.all(sets.map((key) => membersIn(redis, key, asked)));
    busy = new Set(found.flatMap((members) => [...members]));
  } catch (err) {
    if (!/^NOPERM/.test(messageOf(err))) throw err;
    warn(
      `warning: cannot read the rollup's touched and pending sets ${sets.join(", ")} (${messageOf(err)}); counting from daily keys only, which is exact while the days are within their retention`,
    );
    return new Set();
  }
  const exists = await Promise.all(
    candidates.map((p) => redis.exists(periodKey(query.site, p, query.event, query.metric))),
  );
  const usable = new Set<string>();
  spans.forEach(({ period, first, end }, i) => {
    if (exists[i] !== 1) return;
    for (let d = first; d < end; d++) if (busy.has(members[d] ?? "")) return;
    usable.add(period.label);
  });
  return usable;
}

/**
 * Days of a cover read from day keys that are past their retention, so gone from Redis. DESIGN.md's
 * rule, in the site's zone: day D expires at the first instant of local day D + 1 + retention,
 * which is at or before now exactly when that day is at or before today's local day (a day's
 * first instant is at or before now iff the day has started, and today is the latest day that
 * has). So no midnight needs computing here, only today's local day number.
 */
export function expiredDays(
  cover: readonly Period[],
  retentionDays: number,
  todayNumber: number,
): string[] {
  return cover
    .filter(
      (period) =>
        period.kind === "day" && dayNumber(period.label) + 1 + retentionDays <= todayNumber,
    )
    .map((period) => period.label);
}

/**
 * When events were first recorded: the score of `events-since` in the as-of sorted set (epoch
 * ms, kept with ZADD LT by the consumer), null when the consumer has never stored an event.
 */
export async function readEventsSince(redis: CountRedis): Promise<number | null> {
  const [score] = await redis.zmscore(AS_OF_KEY, AS_OF_EVENTS_SINCE);
  return score === null || score === undefined ? null : Number(score);
}

/**
 * The days from `from` to `to` before a metric was first recorded. Visitors have been recorded
 * since the first batch, so none. Events: the days before the site's local day of
 * `eventsSinceMs` (that day itself counts as recorded; `calendar` is the site's zone's), or
 * every day when events were never recorded (null).
 */
export function notRecordedDays(
  metric: Metric,
  from: string,
  to: string,
  eventsSinceMs: number | null,
  calendar: ZoneCalendar,
): string[] {
  if (metric === "visitors") return [];
  const start = dayNumber(from);
  const end =
    eventsSinceMs === null
      ? dayNumber(to)
      : Math.min(dayNumber(to), calendar.dayNumberOfAnyInstant(eventsSinceMs) - 1);
  return Array.from({ length: Math.max(0, end - start + 1) }, (_, i) => dayLabel(start + i));
}

/** Two lists of days in day order as one, each day once. */
function unionOfDays(a: readonly string[], b: readonly string[]): string[] {
  if (b.length === 0) return [...a];
  if (a.length === 0) return [...b];
  return [...new Set([...a, ...b])].sort();
}

/**
 * What a count needs besides Redis: the daily retention and the clock, for `missing`, and the
 * calendars of the sites' zones (kept for the life of the API runtime or the CLI run).
 */
export interface CountContext {
  readonly retentionDays: number;
  readonly nowMs: number;
  /** One per process: readCalendars(retentionDays). */
  readonly calendars: ZoneCalendars;
  readonly warn?: (line: string) => void;
  /**
   * The site's zone (readSiteZone), when the caller has read it already (`count --day today`
   * needs it before it knows the range); without it, counting reads it with its first commands.
   */
  readonly zone?: Promise<ReadZone>;
  /**
   * When events were first recorded (readEventsSince), for `notRecorded`; only awaited for the
   * events metric. A caller that reads `events-since` with other as-of members (the API's
   * `asOf`) passes its promise, so no second ZMSCORE is sent; without it, counting reads it.
   */
  readonly eventsSince?: Promise<number | null>;
}

/** The events-since time a count of `metric` needs: undefined (not needed) for visitors. */
function eventsSinceFor(
  redis: CountRedis,
  metric: Metric,
  context: CountContext,
): Promise<number | null> | undefined {
  if (metric === "visitors") return undefined;
  const since = context.eventsSince ?? readEventsSince(redis);
  // Awaited only after the cover's commands: a failure of those must not leave this one's
  // rejection unhandled (it is still seen by whoever awaits it).
  since.catch(() => {});
  return since;
}

/** The site's zone, read now (or as the caller read it) so it travels with the first commands. */
function zoneFor(redis: CountRedis, query: RangeQuery, context: CountContext): Promise<ReadZone> {
  const zone = context.zone ?? readSiteZone(redis, query.site);
  // Awaited after the cover's commands, as eventsSinceFor's.
  zone.catch(() => {});
  return zone;
}

/** What the zone decides, once it is known: its calendar and today's local day number. */
function inZone(zone: ReadZone, context: CountContext) {
  if (zone.warning !== undefined) context.warn?.(zone.warning);
  const calendar = context.calendars.forZone(zone.timeZone, context.nowMs);
  return { calendar, today: localTodayNumber(calendar, context.nowMs) };
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
  const metric = query.metric ?? "visitors";
  // Asked now, so they travel with the cover's first commands rather than after the PFCOUNT.
  const since = eventsSinceFor(redis, metric, context);
  const zone = zoneFor(redis, query, context);
  const usable = await usablePeriods(redis, query, context.warn);
  const cover = coverOf(query, usable);
  const keys = cover.map((p) => periodKey(query.site, p, query.event, metric));
  // One PFCOUNT: every key of a site shares its hash tag, so one slot and no CROSSSLOT.
  const estimate = await redis.pfcount(...keys);
  const read = await zone;
  const { calendar, today } = inZone(read, context);
  const notRecorded = notRecordedDays(
    metric,
    query.from,
    query.to,
    (await since) ?? null,
    calendar,
  );
  const expired = expiredDays(cover, context.retentionDays, today);
  return {
    timeZone: read.timeZone,
    keys,
    estimate,
    missing: unionOfDays(expired, notRecorded),
    notRecorded,
  };
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
): Promise<SeriesCount> {
  const metric = query.metric ?? "visitors";
  const since = eventsSinceFor(redis, metric, context);
  const zone = zoneFor(redis, query, context);
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
      keys: cover.map((c) => periodKey(query.site, c, query.event, metric)),
      cover,
    };
  });
  const [estimates, eventsSince, read] = await Promise.all([
    Promise.all(points.map((p) => redis.pfcount(...p.keys))),
    since,
    zone,
  ]);
  const { calendar, today } = inZone(read, context);
  return {
    timeZone: read.timeZone,
    points: points.map(({ cover, ...p }, i) => {
      const notRecorded = notRecordedDays(metric, p.from, p.to, eventsSince ?? null, calendar);
      const expired = expiredDays(cover, context.retentionDays, today);
      return {
        ...p,
        estimate: estimates[i] ?? 0,
        missing: unionOfDays(expired, notRecorded),
        notRecorded,
      };
    }),
  };
}
