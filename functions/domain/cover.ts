/**
 * Which unique-visitor keys answer a count over an arbitrary range of days: the smallest set of
 * month, ISO week and day periods whose days are disjoint and together are exactly the range.
 * A week or month is only used when the caller says it is usable (its key exists and no rollup
 * work is pending for any of its days); days are always usable. Pure: no Redis, no clock.
 *
 * The choice is a shortest path over the range's days (from a day, step one day, or a whole
 * usable week starting that Monday, or a whole usable month starting that 1st), so it never
 * takes more keys than "months first, then weeks, then days": taking a month greedily can split
 * the ISO weeks that straddle its edges into up to 12 day keys, where weeks alone need fewer.
 * Ties prefer the larger period.
 */

import { at, last } from "./arrays.js";
import {
  daysInPeriod,
  daysInRange,
  firstDayOf,
  isoWeekOf,
  lastDayOf,
  monthOf,
  type Period,
  weekStartDay,
} from "./periods.js";

/** Longest range a count accepts: ten years of days. */
export const MAX_RANGE_DAYS = 3660;

/** Every week and month that lies wholly inside the range (the only candidates of a cover). */
export function candidatePeriods(from: string, to: string): Period[] {
  const days = daysInRange(from, to);
  const out: Period[] = [];
  const lastDay = last(days, "day");
  for (const day of days) {
    if (day.endsWith("-01")) {
      const month: Period = { kind: "month", label: monthOf(day) };
      if (lastDayOf(month) <= lastDay) out.push(month);
    }
    const week = isoWeekOf(day);
    if (weekStartDay(week) === day) {
      const period: Period = { kind: "week", label: week };
      if (lastDayOf(period) <= lastDay) out.push(period);
    }
  }
  return out;
}

const rank = (period: Period): number => (period.kind === "month" ? 0 : 1);

/**
 * The cover of `from`..`to` (both included) with the fewest keys, in day order. `usable` is
 * asked only about weeks and months that lie wholly inside the range.
 */
export function coverRange(
  from: string,
  to: string,
  usable: (period: Period) => boolean,
): Period[] {
  const days = daysInRange(from, to);
  const n = days.length;
  // From each day index: the period starting there that begins the best cover of the rest.
  const cost = new Array<number>(n + 1).fill(0);
  const step: Period[] = [];
  const index = new Map(days.map((day, i) => [day, i]));
  const usableAt = new Map<number, Period[]>();
  for (const period of candidatePeriods(from, to)) {
    if (!usable(period)) continue;
    const start = index.get(firstDayOf(period));
    if (start === undefined) continue; // candidates lie inside the range, so never
    usableAt.set(start, [...(usableAt.get(start) ?? []), period]);
  }
  for (let i = n - 1; i >= 0; i--) {
    // Larger periods first, and only a strictly better option replaces one: ties keep the larger.
    const options = (usableAt.get(i) ?? []).sort((a, b) => rank(a) - rank(b));
    let best: Period = { kind: "day", label: at(days, i, "day") };
    let bestCost = 1 + at(cost, i + 1, "cost");
    for (const period of options) {
      const c = 1 + at(cost, i + daysInPeriod(period).length, "cost");
      if (c < bestCost || (c === bestCost && best.kind === "day")) {
        best = period;
        bestCost = c;
      }
    }
    cost[i] = bestCost;
    step[i] = best;
  }
  const cover: Period[] = [];
  for (let i = 0; i < n; ) {
    const period = at(step, i, "step");
    cover.push(period);
    i += daysInPeriod(period).length;
  }
  return cover;
}
