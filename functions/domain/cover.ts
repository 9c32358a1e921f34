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

import {
  daysInPeriod,
  daysInRange,
  isoWeekOf,
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
  const last = days[days.length - 1] as string;
  for (const day of days) {
    if (day.endsWith("-01")) {
      const month: Period = { kind: "month", label: monthOf(day) };
      if ((daysInPeriod(month).at(-1) as string) <= last) out.push(month);
    }
    const week = isoWeekOf(day);
    if (weekStartDay(week) === day) {
      const period: Period = { kind: "week", label: week };
      if ((daysInPeriod(period).at(-1) as string) <= last) out.push(period);
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
  const step = new Array<Period>(n);
  const index = new Map(days.map((day, i) => [day, i]));
  const usableAt = new Map<number, Period[]>();
  for (const period of candidatePeriods(from, to)) {
    if (!usable(period)) continue;
    const start = index.get(daysInPeriod(period)[0] as string) as number;
    usableAt.set(start, [...(usableAt.get(start) ?? []), period]);
  }
  for (let i = n - 1; i >= 0; i--) {
    // Larger periods first, and only a strictly better option replaces one: ties keep the larger.
    const options = (usableAt.get(i) ?? []).sort((a, b) => rank(a) - rank(b));
    let best: Period = { kind: "day", label: days[i] as string };
    let bestCost = 1 + (cost[i + 1] as number);
    for (const period of options) {
      const c = 1 + (cost[i + daysInPeriod(period).length] as number);
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
    const period = step[i] as Period;
    cover.push(period);
    i += period.kind === "day" ? 1 : daysInPeriod(period).length;
  }
  return cover;
}
