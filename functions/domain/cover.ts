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

import { at } from "./arrays.js";
import {
  dayLabel,
  dayNumber,
  isoWeekOfNumber,
  type Period,
  periodSpan,
  weekdayOf,
} from "./periods.js";

/** Longest range a count accepts: ten years of days. */
export const MAX_RANGE_DAYS = 3660;

/** Every week and month that lies wholly inside the range (the only candidates of a cover). */
export function candidatePeriods(from: string, to: string): Period[] {
  return candidateSpans(dayNumber(from), dayNumber(to)).map((c) => c.period);
}

interface Candidate {
  readonly period: Period;
  readonly start: number;
  readonly days: number;
}

/** The candidates of day numbers a..b, in day order, a month before the week starting with it. */
function candidateSpans(a: number, b: number): Candidate[] {
  const out: Candidate[] = [];
  let monday = a + ((7 - weekdayOf(a)) % 7);
  let firstOfMonth = dayNumber(`${dayLabel(a).slice(0, 8)}01`);
  if (firstOfMonth < a) firstOfMonth += periodSpan(monthAt(firstOfMonth)).days;
  while (monday + 6 <= b || firstOfMonth <= b) {
    if (firstOfMonth <= monday && firstOfMonth <= b) {
      const period = monthAt(firstOfMonth);
      const { days } = periodSpan(period);
      if (firstOfMonth + days - 1 <= b) out.push({ period, start: firstOfMonth, days });
      firstOfMonth += days;
      continue;
    }
    if (monday + 6 > b) break;
    out.push({ period: weekAt(monday), start: monday, days: 7 });
    monday += 7;
  }
  return out;
}

function monthAt(z: number): Period {
  return { kind: "month", label: dayLabel(z).slice(0, 7) };
}

function weekAt(monday: number): Period {
  return { kind: "week", label: isoWeekOfNumber(monday) };
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
  const a = dayNumber(from);
  const n = dayNumber(to) - a + 1;
  if (n < 1) throw new RangeError(`range ${from}..${to} ends before it starts`);
  // From each day offset: the period starting there that begins the best cover of the rest.
  const cost = new Array<number>(n + 1).fill(0);
  const step: (Candidate | undefined)[] = new Array(n);
  const usableAt = new Map<number, Candidate[]>();
  for (const candidate of candidateSpans(a, a + n - 1)) {
    if (!usable(candidate.period)) continue;
    const i = candidate.start - a;
    usableAt.set(i, [...(usableAt.get(i) ?? []), candidate]);
  }
  for (let i = n - 1; i >= 0; i--) {
    // Larger periods first, and only a strictly better option replaces one: ties keep the larger.
    const options = (usableAt.get(i) ?? []).sort((x, y) => rank(x.period) - rank(y.period));
    let best: Candidate | undefined; // undefined: the day itself
    let bestCost = 1 + at(cost, i + 1, "cost");
    for (const option of options) {
      const c = 1 + at(cost, i + option.days, "cost");
      if (c < bestCost || (c === bestCost && best === undefined)) {
        best = option;
        bestCost = c;
      }
    }
    cost[i] = bestCost;
    step[i] = best;
  }
  const cover: Period[] = [];
  for (let i = 0; i < n; ) {
    const chosen = step[i];
    cover.push(chosen ? chosen.period : { kind: "day", label: dayLabel(a + i) });
    i += chosen ? chosen.days : 1;
  }
  return cover;
}
