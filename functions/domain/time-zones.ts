/**
 * Per-site time zones (DESIGN.md, "Per-site time zones"): which zone names the registry accepts,
 * and a calendar per zone that maps instants to local days and local days to their first
 * instant. The calendar asks `Intl` once, when it is built, and answers from arrays afterwards:
 * the consumer labels every record with a local day and may not pay an `Intl` call for each.
 */

import {
  DAY_MS,
  dayLabel,
  dayNumber,
  type Period,
  periodSpan,
  type RetentionSettings,
} from "./periods.js";

/** The zone name that messages and docs give as a valid example. */
export const TIME_ZONE_EXAMPLE = "Europe/Paris";

const UTC = "UTC";

/** The areas of IANA `Area/Location` names (the tz database's continents and oceans, and Etc). */
const AREAS = [
  "Africa",
  "America",
  "Antarctica",
  "Arctic",
  "Asia",
  "Atlantic",
  "Australia",
  "Europe",
  "Indian",
  "Pacific",
  "Etc",
] as const;

const AREA_SET: ReadonlySet<string> = new Set(AREAS);

/** Letters, digits, `_`, `+`, `-` in segments separated by single slashes: no spaces, no dots. */
const NAME_SHAPE_RE = /^[A-Za-z]+(?:\/[A-Za-z0-9_+-]+)+$/;

/** What offsets look like: `+05:30`, `-3`, `UTC+1`, `GMT-05:00`, `UTC−2` (with a minus sign). */
const OFFSET_RE = /^(?:UTC|GMT|Z)?\s*[+\-−]\s*\d/i;

/**
 * The tz database's current names that Node 22's ICU (which follows CLDR) resolves to an older
 * spelling: `new Intl.DateTimeFormat("en", { timeZone: "Asia/Kathmandu" }).resolvedOptions()`
 * says `Asia/Katmandu`, and `Intl.supportedValuesOf("timeZone")` lists only the old one. For
 * these the engine cannot tell us their canonical case, so this list does (CLDR never renames
 * its identifiers, so it only grows when IANA renames a zone; the tests check every entry is
 * still accepted). Computed from tzdata 2025b `Zone` lines against Node 22.23 (ICU 78, tz 2026c).
 */
const CURRENT_NAMES_RESOLVED_TO_OLD_ONES: ReadonlySet<string> = new Set([
  "Africa/Asmara",
  "America/Argentina/Buenos_Aires",
  "America/Argentina/Catamarca",
  "America/Argentina/Cordoba",
  "America/Argentina/Jujuy",
  "America/Argentina/Mendoza",
  "America/Atikokan",
  "America/Indiana/Indianapolis",
  "America/Kentucky/Louisville",
  "America/Nuuk",
  "Asia/Ho_Chi_Minh",
  "Asia/Kathmandu",
  "Asia/Kolkata",
  "Asia/Yangon",
  "Atlantic/Faroe",
  "Europe/Kyiv",
  "Pacific/Chuuk",
  "Pacific/Kanton",
  "Pacific/Pohnpei",
]);

const VALID_EXAMPLE = `give UTC or an IANA Area/Location name, e.g. ${TIME_ZONE_EXAMPLE}`;

/** The zone `Intl` resolves a name to, or undefined when `Intl` does not know the name. */
function resolvedZone(name: string): string | undefined {
  try {
    return new Intl.DateTimeFormat("en", { timeZone: name }).resolvedOptions().timeZone;
  } catch {
    return undefined;
  }
}

function sameIgnoringCase(a: string, b: string): boolean {
  return a.toLowerCase() === b.toLowerCase();
}

/** The correctly cased spelling of a name given in the wrong case, when one is known. */
function spellingOf(name: string, resolved: string | undefined): string | undefined {
  if (resolved !== undefined && sameIgnoringCase(resolved, name)) return resolved;
  for (const current of CURRENT_NAMES_RESOLVED_TO_OLD_ONES) {
    if (sameIgnoringCase(current, name)) return current;
  }
  return undefined;
}

function wrongCase(name: string, spelling: string | undefined): string {
  return spelling === undefined
    ? `time zone "${name}" is not in its canonical case: capitalize it as the tz database does, e.g. ${TIME_ZONE_EXAMPLE}`
    : `time zone "${name}" is not in its canonical case: write ${spelling}`;
}

/**
 * Why `name` is not a zone the registry accepts, or undefined when it is one.
 *
 * The rule (DESIGN.md: "`UTC` or an IANA `Area/Location` name that `Intl` accepts, in its
 * canonical case"):
 * 1. `UTC` exactly; or
 * 2. an `Area/Location[/More]` name (letters, digits, `_`, `+`, `-`) whose area is one of the
 *    tz database's (Africa … Pacific, or Etc), that `Intl.DateTimeFormat` accepts, and that is
 *    spelled in canonical case, which means one of:
 *    a. it equals, case-sensitively, the zone `Intl` resolves it to (`Europe/Paris`,
 *       `Etc/GMT+5`, and old spellings the engine still treats as canonical, `Asia/Calcutta`);
 *    b. `Intl` resolves it to an older spelling and it is, case-sensitively, one of the current
 *       names listed in CURRENT_NAMES_RESOLVED_TO_OLD_ONES (`Asia/Kathmandu`).
 * Anything else is rejected: offsets (`+05:30`, `UTC+1`), abbreviations (`EST`, `GMT`), wrong
 * case (`europe/paris`, `Europe/PARIS`), unknown areas (`Mars/Olympus`), names `Intl` does not
 * know, and old aliases `Intl` resolves to another zone (`Europe/Belfast`, `Etc/UTC`), for which
 * the message names the zone to write instead. (An engine that keeps aliases as written, as
 * newer ECMA-402 specifies, accepts such aliases under rule a: they are correct names anyway.)
 */
export function timeZoneProblem(name: string): string | undefined {
  if (answers.has(name)) return answers.get(name);
  const problem = problemOf(name);
  if (answers.size >= ANSWERS_KEPT) answers.clear();
  answers.set(name, problem);
  return problem;
}

/**
 * Answers already given, by name: each costs an `Intl` formatter, and the consumer and the
 * rollup re-validate the whole registry every minute, where many sites share a few zones.
 */
const answers = new Map<string, string | undefined>();
const ANSWERS_KEPT = 1000;

function problemOf(name: string): string | undefined {
  if (name === UTC) return undefined;
  if (name.trim() === "") return `time zone is empty: ${VALID_EXAMPLE}`;
  if (sameIgnoringCase(name, UTC)) return wrongCase(name, UTC);
  if (OFFSET_RE.test(name)) {
    return `time zone "${name}" is a UTC offset, which does not follow daylight saving time: ${VALID_EXAMPLE}`;
  }
  if (!name.includes("/")) {
    return resolvedZone(name) === UTC
      ? `time zone "${name}" is not an Area/Location name: write UTC`
      : `time zone "${name}" is not an Area/Location name (abbreviations such as EST are ambiguous and ignore daylight saving time): ${VALID_EXAMPLE}`;
  }
  const area = name.slice(0, name.indexOf("/"));
  if (!AREA_SET.has(area)) {
    const cased = AREAS.find((known) => sameIgnoringCase(known, area));
    if (cased !== undefined) {
      const resolved = resolvedZone(name);
      return resolved === undefined
        ? `time zone "${name}" is not in the tz database this runtime knows (and its area is written ${cased}): check the spelling, e.g. ${TIME_ZONE_EXAMPLE}`
        : wrongCase(name, spellingOf(name, resolved));
    }
    return `time zone "${name}" does not start with a tz database area (${AREAS.join(", ")}): ${VALID_EXAMPLE}`;
  }
  if (!NAME_SHAPE_RE.test(name)) {
    return `time zone "${name}" is not an Area/Location name: use letters, digits, "_", "+" or "-" between single slashes, e.g. ${TIME_ZONE_EXAMPLE}`;
  }
  const resolved = resolvedZone(name);
  if (resolved === undefined) {
    return `time zone "${name}" is not in the tz database this runtime knows: check the spelling, e.g. ${TIME_ZONE_EXAMPLE}`;
  }
  if (resolved === name || CURRENT_NAMES_RESOLVED_TO_OLD_ONES.has(name)) return undefined;
  const spelling = spellingOf(name, resolved);
  if (spelling !== undefined) return wrongCase(name, spelling);
  return `time zone "${name}" is an alias of ${resolved}: write ${resolved}`;
}

/** Throws a RangeError saying what is wrong (and naming a valid example) unless `name` is valid. */
export function assertTimeZone(name: string): void {
  const problem = timeZoneProblem(name);
  if (problem !== undefined) throw new RangeError(problem);
}

/** Days of margin the calendar covers before and after the range it is built for. */
const MARGIN_DAYS = 3;
const SECOND_MS = 1000;

/**
 * A zone's UTC offsets over a span of instants, as segments: offsets[i] (ms, local minus UTC)
 * holds from starts[i] (inclusive) to starts[i + 1] (exclusive), the last one to the span's end.
 */
interface OffsetSegments {
  readonly starts: readonly number[];
  readonly offsets: readonly number[];
}

/** Local minus UTC, in ms, at a whole-second instant, read from a formatter set to the zone. */
type OffsetAt = (instantMs: number) => number;

function intlOffsetAt(formatter: Intl.DateTimeFormat): OffsetAt {
  return (instantMs) => {
    const fields = { year: 0, month: 0, day: 0, hour: 0, minute: 0, second: 0 };
    for (const part of formatter.formatToParts(instantMs)) {
      if (part.type in fields) fields[part.type as keyof typeof fields] = Number(part.value);
    }
    const { year, month, day, hour, minute, second } = fields;
    return Date.UTC(year, month - 1, day, hour, minute, second) - instantMs;
  };
}

/**
 * The offset segments over [fromMs, toMs] (both whole seconds). Offsets are sampled every 24 h
 * and each change found is narrowed to the second by bisection (tz database transitions fall on
 * whole seconds). A change that is undone within the same 24 h would be missed: since 1970 the tz
 * database has no two offset changes less than 6 days apart.
 */
function offsetSegments(offsetAt: OffsetAt, fromMs: number, toMs: number): OffsetSegments {
  const starts = [fromMs];
  const offsets = [offsetAt(fromMs)];
  let current = offsets[0] as number;
  for (let sampleFrom = fromMs; sampleFrom < toMs; ) {
    const sampleTo = Math.min(sampleFrom + DAY_MS, toMs);
    const offsetThere = offsetAt(sampleTo);
    // More than one change may lie between two samples: find them in order.
    let unchangedAt = sampleFrom;
    while (current !== offsetThere) {
      let changedAt = sampleTo;
      let changedTo = offsetThere;
      while (changedAt - unchangedAt > SECOND_MS) {
        const mid =
          unchangedAt + Math.floor((changedAt - unchangedAt) / (2 * SECOND_MS)) * SECOND_MS;
        const offsetMid = offsetAt(mid);
        if (offsetMid === current) {
          unchangedAt = mid;
        } else {
          changedAt = mid;
          changedTo = offsetMid;
        }
      }
      starts.push(changedAt);
      offsets.push(changedTo);
      current = changedTo;
      unchangedAt = changedAt;
    }
    sampleFrom = sampleTo;
  }
  return { starts, offsets };
}

/** Index of the segment holding `instantMs` (the last one starting at or before it). */
function segmentIndex(segments: OffsetSegments, instantMs: number): number {
  const { starts } = segments;
  let lo = 0;
  let hi = starts.length - 1;
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if ((starts[mid] as number) <= instantMs) lo = mid;
    else hi = mid - 1;
  }
  return lo;
}

/**
 * The first instant, from segment `fromIndex` on, whose local time is at or after `localMs`
 * (a local midnight written as if it were UTC), with the segment it lies in; `endMs` is where
 * the last segment ends. Within a segment local time is instant + offset, so the first such
 * instant there is max(segment start, localMs - offset), when that is before the segment ends.
 * A day whose midnight a DST jump skips (America/Santiago switches at 00:00) thus starts at the
 * jump, its first instant; a day the zone skipped entirely (Pacific/Apia, 2011-12-30) starts
 * and ends where the next day starts.
 */
function firstInstantAtOrAfter(
  segments: OffsetSegments,
  localMs: number,
  fromIndex: number,
  endMs: number,
): { readonly instantMs: number; readonly index: number } {
  const { starts, offsets } = segments;
  for (let i = fromIndex; i < starts.length; i++) {
    const segmentEnd = i + 1 < starts.length ? (starts[i + 1] as number) : endMs;
    const candidate = Math.max(starts[i] as number, localMs - (offsets[i] as number));
    if (candidate < segmentEnd) return { instantMs: candidate, index: i };
  }
  throw new RangeError(
    `no instant before ${isoInstant(endMs)} reaches local time ${isoInstant(localMs).slice(0, 19)}`,
  );
}

function isoInstant(ms: number): string {
  return Number.isFinite(ms) ? new Date(ms).toISOString() : String(ms);
}

/**
 * One zone's calendar over a range of instants: the local day of an instant, the first instant
 * of a local day, and DESIGN.md's expiry rule in the zone. Built once per zone (the only place
 * it calls `Intl`, besides expiry midnights beyond the range, see midnightMsOfDayNumber), it
 * answers `dayOf` and friends by binary search over the zone's offset changes in the range.
 */
export class ZoneCalendar {
  readonly zone: string;
  /** First instant `dayOf` answers for: the range's start, a few days earlier at UTC midnight. */
  readonly coveredFromMs: number;
  /** First instant past the covered ones: the range's end, a few days later at UTC midnight. */
  readonly coveredToMs: number;
  readonly #segments: OffsetSegments;
  /** Day number of midnights[0]; midnights[i] is the first instant of day firstDay + i. */
  readonly #firstDay: number;
  readonly #midnights: readonly number[];
  /** Undefined for UTC, which needs no `Intl` at all. */
  readonly #offsetAt: OffsetAt | undefined;
  /** Midnights outside the precomputed days (expiry dates), computed on first use. */
  readonly #laterMidnights = new Map<number, number>();

  /**
   * Precomputes the zone's offsets over [range.fromMs, range.toMs] plus MARGIN_DAYS each side,
   * and the first instant of every local day whose midnight lies in that span. Throws a
   * RangeError when the zone is not valid (timeZoneProblem) or the range is not finite and in
   * order.
   */
  constructor(zone: string, range: { readonly fromMs: number; readonly toMs: number }) {
    assertTimeZone(zone);
    if (
      !Number.isFinite(range.fromMs) ||
      !Number.isFinite(range.toMs) ||
      range.toMs < range.fromMs
    ) {
      throw new RangeError(
        `time-zone calendar range ${isoInstant(range.fromMs)}..${isoInstant(range.toMs)} is not a range: give finite instants in ms with fromMs <= toMs, e.g. { fromMs: Date.UTC(2026, 0, 1), toMs: Date.UTC(2026, 2, 1) }`,
      );
    }
    this.zone = zone;
    this.coveredFromMs = (Math.floor(range.fromMs / DAY_MS) - MARGIN_DAYS) * DAY_MS;
    this.coveredToMs = (Math.floor(range.toMs / DAY_MS) + 1 + MARGIN_DAYS) * DAY_MS;
    if (zone === UTC) {
      this.#offsetAt = undefined;
      this.#segments = { starts: [this.coveredFromMs], offsets: [0] };
    } else {
      const formatter = new Intl.DateTimeFormat("en-US", {
        timeZone: zone,
        hourCycle: "h23",
        year: "numeric",
        month: "numeric",
        day: "numeric",
        hour: "numeric",
        minute: "numeric",
        second: "numeric",
      });
      this.#offsetAt = intlOffsetAt(formatter);
      this.#segments = offsetSegments(this.#offsetAt, this.coveredFromMs, this.coveredToMs);
    }
    // Every day whose first instant is inside the covered span: the day after the one the span
    // starts in, to the day the span ends in.
    this.#firstDay = this.dayNumberOf(this.coveredFromMs) + 1;
    const lastDay = this.dayNumberOf(this.coveredToMs - 1);
    const midnights: number[] = [];
    let index = 0;
    for (let day = this.#firstDay; day <= lastDay; day++) {
      const first = firstInstantAtOrAfter(this.#segments, day * DAY_MS, index, this.coveredToMs);
      midnights.push(first.instantMs);
      index = first.index;
    }
    this.#midnights = midnights;
  }

  /** Local minus UTC in ms at an instant of the covered span (3 600 000 for Paris in winter). */
  offsetMsAt(instantMs: number): number {
    if (!(instantMs >= this.coveredFromMs && instantMs < this.coveredToMs)) {
      throw new RangeError(
        `instant ${isoInstant(instantMs)} is outside the span the ${this.zone} calendar covers (${isoInstant(this.coveredFromMs)} to ${isoInstant(this.coveredToMs)}, end excluded): build a ZoneCalendar whose range includes it`,
      );
    }
    return this.#segments.offsets[segmentIndex(this.#segments, instantMs)] as number;
  }

  /** Local day number (days since 1970-01-01) of an instant; throws outside the covered span. */
  dayNumberOf(instantMs: number): number {
    return Math.floor((instantMs + this.offsetMsAt(instantMs)) / DAY_MS);
  }

  /**
   * Local day number of any instant: inside the covered span as dayNumberOf; outside it (a read
   * of last year, the day events were first recorded) from the midnights of the UTC day's
   * neighbours, which midnightMsOfDayNumber computes with `Intl` and caches. Not for the
   * consumer's per-record path, which stays inside its span.
   */
  dayNumberOfAnyInstant(instantMs: number): number {
    if (instantMs >= this.coveredFromMs && instantMs < this.coveredToMs) {
      return this.dayNumberOf(instantMs);
    }
    if (!Number.isFinite(instantMs)) {
      throw new RangeError(`instant ${isoInstant(instantMs)} is not a finite time in ms`);
    }
    // Offsets stay within ±16 h, so the local day is the UTC day or one of its neighbours: the
    // latest of them that has started by the instant (a skipped day starts where the next does,
    // so the next one wins).
    const utcDay = Math.floor(instantMs / DAY_MS);
    for (let day = utcDay + 1; day > utcDay - 1; day--) {
      if (this.midnightMsOfDayNumber(day) <= instantMs) return day;
    }
    return utcDay - 1;
  }

  /** Local day label of any instant: see dayNumberOfAnyInstant. */
  dayOfAnyInstant(instantMs: number): string {
    return dayLabel(this.dayNumberOfAnyInstant(instantMs));
  }

  /** Local day label (`2026-03-29`) of an instant; throws outside the covered span. */
  dayOf(instantMs: number): string {
    return dayLabel(this.dayNumberOf(instantMs));
  }

  /**
   * The first instant of a local day, by day number. Normally local midnight; when a DST jump
   * skips 00:00 (America/Santiago moves from 00:00 to 01:00), the jump, which is the day's
   * first instant. Days outside the precomputed ones (expiry dates lie months ahead) are
   * computed with `Intl` on first use and cached, one entry per day asked for.
   */
  midnightMsOfDayNumber(day: number): number {
    const precomputed = this.#midnights[day - this.#firstDay];
    if (precomputed !== undefined) return precomputed;
    if (this.#offsetAt === undefined) return day * DAY_MS;
    const cached = this.#laterMidnights.get(day);
    if (cached !== undefined) return cached;
    // UTC offsets stay within ±16 h (the tz database's extremes, in local mean time), so the
    // day's first instant lies within the 2 days either side of the day's UTC start.
    const fromMs = (day - 2) * DAY_MS;
    const toMs = (day + 2) * DAY_MS;
    const segments = offsetSegments(this.#offsetAt, fromMs, toMs);
    const { instantMs } = firstInstantAtOrAfter(segments, day * DAY_MS, 0, toMs);
    this.#laterMidnights.set(day, instantMs);
    return instantMs;
  }

  /** The first instant of a local day (`2026-03-29`): see midnightMsOfDayNumber. */
  midnightMs(day: string): number {
    return this.midnightMsOfDayNumber(dayNumber(day));
  }

  /**
   * When a period's key expires, in whole seconds since the epoch, by DESIGN.md's rule in the
   * zone: day D at the local midnight starting day D + 1 + retention.days; week W at the local
   * midnight of the Monday retention.weeks weeks after the week following W; month M at the
   * local midnight of the 1st of month M + 1 + retention.months. For UTC this is periods.ts's
   * expiresAtSeconds. Throws a RangeError when the label is not a real period.
   */
  expiresAtSeconds(period: Period, retention: RetentionSettings): number {
    const span = periodSpan(period);
    let day: number;
    switch (period.kind) {
      case "day":
        day = span.start + 1 + retention.days;
        break;
      case "week":
        day = span.start + 7 * (1 + retention.weeks);
        break;
      case "month": {
        // periodSpan checked the label: YYYY-MM with a month 1-12.
        const year = Number(period.label.slice(0, 4));
        const month = Number(period.label.slice(5, 7));
        // Date.UTC carries months past December into the following years.
        day = Date.UTC(year, month + retention.months, 1) / DAY_MS;
        break;
      }
    }
    return Math.floor(this.midnightMsOfDayNumber(day) / 1000);
  }
}

/** How far around "now" the calendars of a ZoneCalendars cover, in days. */
export interface CalendarSpan {
  /** Days before now (the consumer: the daily retention plus a few). */
  readonly pastDays: number;
  /** Days after now (the consumer: its one day of tolerance for producers' clocks, plus one). */
  readonly futureDays: number;
}

/** Extra days a calendar is built for past `futureDays`, so a warm process rebuilds it weekly. */
const REBUILD_AFTER_DAYS = 7;
/** Calendars kept: the tz database has about 600 zones, so this holds every one in use. */
const CALENDARS_KEPT = 1000;

/**
 * One ZoneCalendar per zone, built on first use to cover `span` around the clock and rebuilt
 * only when the clock has moved past what it covers (about once a week). A warm Lambda keeps
 * one of these, so building a zone's calendar (its only `Intl` work, a fraction of a
 * millisecond per month covered) happens once per zone per week, not per batch or request.
 */
export class ZoneCalendars {
  readonly #calendars = new Map<string, ZoneCalendar>();

  constructor(readonly span: CalendarSpan) {}

  /** The zone's calendar covering `span` around `nowMs`; throws a RangeError for a bad zone. */
  forZone(zone: string, nowMs: number): ZoneCalendar {
    const needFromMs = nowMs - this.span.pastDays * DAY_MS;
    const needToMs = nowMs + this.span.futureDays * DAY_MS;
    const cached = this.#calendars.get(zone);
    if (cached && cached.coveredFromMs <= needFromMs && needToMs < cached.coveredToMs) {
      return cached;
    }
    const calendar = new ZoneCalendar(zone, {
      fromMs: needFromMs,
      toMs: needToMs + REBUILD_AFTER_DAYS * DAY_MS,
    });
    if (!cached && this.#calendars.size >= CALENDARS_KEPT) this.#calendars.clear();
    this.#calendars.set(zone, calendar);
    return calendar;
  }
}
