/**
 * Calendar periods in UTC: days (`2024-03-09`), ISO-8601 weeks (`2024-W10`, Monday start,
 * ISO week-year) and months (`2024-03`). Pure functions, no clock: callers pass instants in.
 */

export type PeriodKind = "day" | "week" | "month";

export interface Period {
  readonly kind: PeriodKind;
  /** The period's label exactly as it appears in keys: `2024-03-09`, `2024-W10`, `2024-03`. */
  readonly label: string;
}

/** Milliseconds in a UTC day: the one definition every module uses. */
export const DAY_MS = 86_400_000;
const DAY_RE = /^(\d{4})-(\d{2})-(\d{2})$/;
const WEEK_RE = /^(\d{4})-W(\d{2})$/;
const MONTH_RE = /^(\d{4})-(\d{2})$/;

function pad(n: number, width: number): string {
  return String(n).padStart(width, "0");
}

/*
 * Dates are computed as day numbers (days since 1970-01-01) with integer arithmetic, without
 * Date objects: the read API turns thousands of labels into days and back for one long range,
 * and Date plus formatting cost most of its time (npm run bench:api).
 */

/** Day number of a proleptic Gregorian date (H. Hinnant's days_from_civil). */
function daysFromCivil(y: number, m: number, d: number): number {
  const yy = m <= 2 ? y - 1 : y;
  const era = Math.floor(yy / 400);
  const yoe = yy - era * 400;
  const doy = Math.floor((153 * (m + (m > 2 ? -3 : 9)) + 2) / 5) + d - 1;
  const doe = yoe * 365 + Math.floor(yoe / 4) - Math.floor(yoe / 100) + doy;
  return era * 146_097 + doe - 719_468;
}

/** The date of a day number: [year, month 1-12, day 1-31] (H. Hinnant's civil_from_days). */
function civilFromDays(z: number): [number, number, number] {
  const zz = z + 719_468;
  const era = Math.floor(zz / 146_097);
  const doe = zz - era * 146_097;
  const yoe = Math.floor(
    (doe - Math.floor(doe / 1460) + Math.floor(doe / 36_524) - Math.floor(doe / 146_096)) / 365,
  );
  const doy = doe - (365 * yoe + Math.floor(yoe / 4) - Math.floor(yoe / 100));
  const mp = Math.floor((5 * doy + 2) / 153);
  const d = doy - Math.floor((153 * mp + 2) / 5) + 1;
  const m = mp < 10 ? mp + 3 : mp - 9;
  return [yoe + era * 400 + (m <= 2 ? 1 : 0), m, d];
}

function isLeapYear(y: number): boolean {
  return (y % 4 === 0 && y % 100 !== 0) || y % 400 === 0;
}

/** Days in month `m` (1-12) of year `y`. */
export function monthLength(y: number, m: number): number {
  return m === 2 ? (isLeapYear(y) ? 29 : 28) : [4, 6, 9, 11].includes(m) ? 30 : 31;
}

/** The label of a day number: `2024-03-09`. */
export function dayLabel(dayNumber: number): string {
  const [y, m, d] = civilFromDays(dayNumber);
  return `${pad(y, 4)}-${m < 10 ? "0" : ""}${m}-${d < 10 ? "0" : ""}${d}`;
}

/** UTC day label of an instant (milliseconds since the epoch). */
export function dayOf(epochMs: number): string {
  return dayLabel(Math.floor(epochMs / DAY_MS));
}

/** Day number (days since 1970-01-01) of a day label, or throws when it is not a real date. */
export function dayNumber(day: string): number {
  const m = DAY_RE.exec(day);
  if (!m) throw new RangeError(`"${day}" is not a day: expected YYYY-MM-DD, e.g. 2024-03-09`);
  const [y, mo, d] = [Number(m[1]), Number(m[2]), Number(m[3])];
  if (y < 1000) throw new RangeError(`"${day}" is before the year 1000, which is not supported`);
  if (mo < 1 || mo > 12 || d < 1 || d > monthLength(y, mo)) {
    throw new RangeError(`"${day}" is not a calendar date: check the month and the day`);
  }
  return daysFromCivil(y, mo, d);
}

/** Start of a UTC day in ms, or throws when the label is not a real calendar date. */
export function dayStartMs(day: string): number {
  return dayNumber(day) * DAY_MS;
}

export function isDay(label: string): boolean {
  try {
    dayNumber(label);
    return true;
  } catch {
    return false;
  }
}

export function addDays(day: string, n: number): string {
  return dayLabel(dayNumber(day) + n);
}

/** Monday = 0 … Sunday = 6 of a day number (1970-01-01 was a Thursday). */
export function weekdayOf(z: number): number {
  return (((z + 3) % 7) + 7) % 7;
}

/** ISO week label of a day number. */
export function isoWeekOfNumber(z: number): string {
  const thursday = z - weekdayOf(z) + 3;
  const [weekYear] = civilFromDays(thursday);
  const week = 1 + Math.floor((thursday - daysFromCivil(weekYear, 1, 1)) / 7);
  return `${pad(weekYear, 4)}-W${week < 10 ? "0" : ""}${week}`;
}

/** ISO-8601 week of a day: weeks start on Monday; week 1 holds the year's first Thursday. */
export function isoWeekOf(day: string): string {
  return isoWeekOfNumber(dayNumber(day));
}

export function monthOf(day: string): string {
  dayNumber(day);
  return day.slice(0, 7);
}

/** Day number of the Monday of an ISO week, or throws when the label is not a week that exists. */
function weekStartNumber(week: string): number {
  const m = WEEK_RE.exec(week);
  if (!m) throw new RangeError(`"${week}" is not an ISO week: expected YYYY-Www, e.g. 2024-W10`);
  const [y, w] = [Number(m[1]), Number(m[2])];
  // January 4th is always in week 1.
  const jan4 = daysFromCivil(y, 1, 4);
  const monday = jan4 - weekdayOf(jan4) + (w - 1) * 7;
  if (w < 1 || y < 1000 || isoWeekOfNumber(monday) !== week) {
    throw new RangeError(`"${week}" does not exist: ISO year ${y} has no week ${pad(w, 2)}`);
  }
  return monday;
}

/** Monday of an ISO week, or throws when the label is not a week that exists. */
export function weekStartDay(week: string): string {
  return dayLabel(weekStartNumber(week));
}

export function monthStartDay(month: string): string {
  const m = MONTH_RE.exec(month);
  const mo = m ? Number(m[2]) : 0;
  if (!m || mo < 1 || mo > 12) {
    throw new RangeError(`"${month}" is not a month: expected YYYY-MM, e.g. 2024-03`);
  }
  return `${month}-01`;
}

/** Every day from `from` to `to`, both included. Throws when `to` is before `from`. */
export function daysInRange(from: string, to: string): string[] {
  const a = dayNumber(from);
  const b = dayNumber(to);
  if (b < a) throw new RangeError(`range ${from}..${to} ends before it starts`);
  const days: string[] = [];
  for (let z = a; z <= b; z++) days.push(dayLabel(z));
  return days;
}

/** How many days from `from` to `to`, both included (0 when `to` is before `from`). */
export function dayCount(from: string, to: string): number {
  return Math.max(0, dayNumber(to) - dayNumber(from) + 1);
}

export function daysInWeek(week: string): string[] {
  return daysOfSpan(periodSpan({ kind: "week", label: week }));
}

export function daysInMonth(month: string): string[] {
  return daysOfSpan(periodSpan({ kind: "month", label: month }));
}

/** Where a period lies, as day numbers: its first day and how many days it has. */
export interface PeriodSpan {
  readonly start: number;
  readonly days: number;
}

export function periodSpan(period: Period): PeriodSpan {
  switch (period.kind) {
    case "day":
      return { start: dayNumber(period.label), days: 1 };
    case "week":
      return { start: weekStartNumber(period.label), days: 7 };
    case "month": {
      const start = dayNumber(monthStartDay(period.label));
      const [y, m] = civilFromDays(start);
      return { start, days: monthLength(y, m) };
    }
  }
}

function daysOfSpan(span: PeriodSpan): string[] {
  return Array.from({ length: span.days }, (_, i) => dayLabel(span.start + i));
}

/**
 * The period a label names, as it appears in keys: `2024-03-09` a day, `2024-W10` an ISO week,
 * `2024-03` a month. Throws a RangeError naming the three forms when it is none of them (or a
 * date, week or month that does not exist).
 */
export function parsePeriodLabel(label: string): Period {
  if (DAY_RE.test(label)) return periodOf("day", label);
  if (WEEK_RE.test(label)) {
    weekStartDay(label);
    return { kind: "week", label };
  }
  if (MONTH_RE.test(label)) {
    monthStartDay(label);
    return { kind: "month", label };
  }
  throw new RangeError(
    `"${label}" is not a period label: expected a day (2024-03-09), an ISO week (2024-W10) or a month (2024-03)`,
  );
}

export function periodOf(kind: PeriodKind, day: string): Period {
  switch (kind) {
    case "day":
      dayStartMs(day);
      return { kind, label: day };
    case "week":
      return { kind, label: isoWeekOf(day) };
    case "month":
      return { kind, label: monthOf(day) };
  }
}

/** A period of a range, with the range's days in it (the edges of the range clip it). */
export interface PeriodInRange {
  readonly period: Period;
  readonly from: string;
  readonly to: string;
}

/** The days, ISO weeks or months that `from`..`to` touches, in order, each clipped to it. */
export function periodsInRange(from: string, to: string, kind: PeriodKind): PeriodInRange[] {
  const a = dayNumber(from);
  const b = dayNumber(to);
  const out: PeriodInRange[] = [];
  for (let z = a; z <= b; ) {
    const label = dayLabel(z);
    const period: Period =
      kind === "day"
        ? { kind, label }
        : kind === "week"
          ? { kind, label: isoWeekOfNumber(z) }
          : { kind, label: label.slice(0, 7) };
    const span = periodSpan(period);
    const end = Math.min(b, span.start + span.days - 1);
    out.push({ period, from: label, to: dayLabel(end) });
    z = end + 1;
  }
  return out;
}

export function daysInPeriod(period: Period): string[] {
  return daysOfSpan(periodSpan(period));
}

/** The first day of a period. */
export function firstDayOf(period: Period): string {
  return dayLabel(periodSpan(period).start);
}

/** The last day of a period. */
export function lastDayOf(period: Period): string {
  const span = periodSpan(period);
  return dayLabel(span.start + span.days - 1);
}

/** Exclusive end of a period in ms: the first instant that no longer belongs to it. */
export function periodEndMs(period: Period): number {
  const span = periodSpan(period);
  return (span.start + span.days) * DAY_MS;
}

/**
 * Expiry of a daily key in ms: the end of the day plus the retention in days. The hot path of
 * the consumer uses it per record, so it takes the day's start instead of a label.
 */
export function dayExpiresAtMs(dayStart: number, retentionDays: number): number {
  return dayStart + (1 + retentionDays) * DAY_MS;
}

export interface RetentionSettings {
  readonly days: number;
  readonly weeks: number;
  readonly months: number;
}

/**
 * When a period's key expires, in whole seconds since the epoch: the end of the period plus
 * the period's retention (days for a day, weeks for a week, calendar months for a month).
 * Deterministic, so `EXPIREAT … NX` from any writer or replay gives the same deadline.
 */
export function expiresAtSeconds(period: Period, retention: RetentionSettings): number {
  const end = periodEndMs(period);
  let at: number;
  switch (period.kind) {
    case "day":
      at = dayExpiresAtMs(end - DAY_MS, retention.days);
      break;
    case "week":
      at = end + retention.weeks * 7 * DAY_MS;
      break;
    case "month": {
      const d = new Date(end);
      at = Date.UTC(d.getUTCFullYear(), d.getUTCMonth() + retention.months, 1);
      break;
    }
  }
  return Math.floor(at / 1000);
}
