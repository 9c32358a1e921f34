/**
 * Calendar periods in UTC: days (`2024-03-09`), ISO-8601 weeks (`2024-W10`, Monday start,
 * ISO week-year) and months (`2024-03`). Pure functions, no clock: callers pass instants in.
 */

import { first, last } from "./arrays.js";

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

/** UTC day label of an instant (milliseconds since the epoch). */
export function dayOf(epochMs: number): string {
  const d = new Date(epochMs);
  return `${pad(d.getUTCFullYear(), 4)}-${pad(d.getUTCMonth() + 1, 2)}-${pad(d.getUTCDate(), 2)}`;
}

/** Start of a UTC day in ms, or throws when the label is not a real calendar date. */
export function dayStartMs(day: string): number {
  const m = DAY_RE.exec(day);
  if (!m) throw new RangeError(`"${day}" is not a day: expected YYYY-MM-DD, e.g. 2024-03-09`);
  const [y, mo, d] = [Number(m[1]), Number(m[2]), Number(m[3])];
  // Date.UTC reads years 0-99 as 1900-1999: refuse early years rather than mislabel them.
  if (y < 1000) throw new RangeError(`"${day}" is before the year 1000, which is not supported`);
  const ms = Date.UTC(y, mo - 1, d);
  if (dayOf(ms) !== day) {
    throw new RangeError(`"${day}" is not a calendar date: check the month and the day`);
  }
  return ms;
}

export function isDay(label: string): boolean {
  try {
    dayStartMs(label);
    return true;
  } catch {
    return false;
  }
}

export function addDays(day: string, n: number): string {
  return dayOf(dayStartMs(day) + n * DAY_MS);
}

/** ISO-8601 week of a day: weeks start on Monday; week 1 holds the year's first Thursday. */
export function isoWeekOf(day: string): string {
  const start = dayStartMs(day);
  const weekday = (new Date(start).getUTCDay() + 6) % 7; // Monday = 0
  const thursday = new Date(start + (3 - weekday) * DAY_MS);
  const weekYear = thursday.getUTCFullYear();
  const jan1 = Date.UTC(weekYear, 0, 1);
  const week = 1 + Math.floor((thursday.getTime() - jan1) / (7 * DAY_MS));
  return `${pad(weekYear, 4)}-W${pad(week, 2)}`;
}

export function monthOf(day: string): string {
  dayStartMs(day);
  return day.slice(0, 7);
}

/** Monday of an ISO week, or throws when the label is not a week that exists. */
export function weekStartDay(week: string): string {
  const m = WEEK_RE.exec(week);
  if (!m) throw new RangeError(`"${week}" is not an ISO week: expected YYYY-Www, e.g. 2024-W10`);
  const [y, w] = [Number(m[1]), Number(m[2])];
  // January 4th is always in week 1.
  const jan4 = Date.UTC(y, 0, 4);
  const jan4Weekday = (new Date(jan4).getUTCDay() + 6) % 7;
  const monday = dayOf(jan4 - jan4Weekday * DAY_MS + (w - 1) * 7 * DAY_MS);
  if (w < 1 || isoWeekOf(monday) !== week) {
    throw new RangeError(`"${week}" does not exist: ISO year ${y} has no week ${pad(w, 2)}`);
  }
  return monday;
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
  const a = dayStartMs(from);
  const b = dayStartMs(to);
  if (b < a) throw new RangeError(`range ${from}..${to} ends before it starts`);
  const days: string[] = [];
  for (let t = a; t <= b; t += DAY_MS) days.push(dayOf(t));
  return days;
}

export function daysInWeek(week: string): string[] {
  const monday = weekStartDay(week);
  return daysInRange(monday, addDays(monday, 6));
}

export function daysInMonth(month: string): string[] {
  const first = monthStartDay(month);
  const y = Number(month.slice(0, 4));
  const mo = Number(month.slice(5, 7));
  const last = dayOf(Date.UTC(y, mo, 0));
  return daysInRange(first, last);
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
  const out: PeriodInRange[] = [];
  let current: { period: Period; from: string; to: string } | undefined;
  for (const day of daysInRange(from, to)) {
    const period = periodOf(kind, day);
    if (current?.period.label === period.label) current.to = day;
    else {
      if (current) out.push(current);
      current = { period, from: day, to: day };
    }
  }
  if (current) out.push(current);
  return out;
}

export function daysInPeriod(period: Period): string[] {
  switch (period.kind) {
    case "day":
      return [period.label];
    case "week":
      return daysInWeek(period.label);
    case "month":
      return daysInMonth(period.label);
  }
}

/** The first day of a period. */
export function firstDayOf(period: Period): string {
  return first(daysInPeriod(period), "day");
}

/** The last day of a period. */
export function lastDayOf(period: Period): string {
  return last(daysInPeriod(period), "day");
}

/** Exclusive end of a period in ms: the first instant that no longer belongs to it. */
export function periodEndMs(period: Period): number {
  return dayStartMs(lastDayOf(period)) + DAY_MS;
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
