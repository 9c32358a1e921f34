/**
 * The range cover behind `count`: checked with properties against the tests' own calendar
 * (test/unit/calendar.ts, integer arithmetic, no Date), not the periods module it uses.
 */

import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { at, last } from "../../functions/domain/arrays.js";
import { candidatePeriods, coverRange } from "../../functions/domain/cover.js";
import type { Period } from "../../functions/domain/periods.js";
import {
  dayLabel,
  dayNumber,
  daysFromCivil,
  isoWeekLabel,
  isoWeekOneMonday,
  monthLength,
} from "./calendar.js";

// 1990-01-01 .. 2060-12-31 as day numbers.
const MIN_DAY = 7305;
const MAX_DAY = 33_238;

const rangeArb = fc
  .record({
    start: fc.integer({ min: MIN_DAY, max: MAX_DAY }),
    length: fc.integer({ min: 1, max: 200 }),
  })
  .map(({ start, length }) => ({ from: dayLabel(start), to: dayLabel(start + length - 1) }));

/** Day numbers of a period, from the independent calendar. */
function daysOf(period: Period): number[] {
  const y = Number(period.label.slice(0, 4));
  switch (period.kind) {
    case "day":
      return [dayNumber(period.label)];
    case "week": {
      const monday = isoWeekOneMonday(y) + (Number(period.label.slice(6)) - 1) * 7;
      return Array.from({ length: 7 }, (_, i) => monday + i);
    }
    case "month": {
      const m = Number(period.label.slice(5, 7));
      const first = daysFromCivil(y, m, 1);
      return Array.from({ length: monthLength(y, m) }, (_, i) => first + i);
    }
  }
}

/** "Months first, then weeks, then days": the greedy cover the contract describes. */
function greedyCount(from: number, to: number, usable: (p: Period) => boolean): number {
  let n = 0;
  for (let z = from; z <= to; ) {
    const label = dayLabel(z);
    const month: Period = { kind: "month", label: label.slice(0, 7) };
    const week: Period = { kind: "week", label: isoWeekLabel(z) };
    const monthDays = daysOf(month);
    const weekDays = daysOf(week);
    if (monthDays[0] === z && last(monthDays, "day of the month") <= to && usable(month)) {
      z += monthDays.length;
    } else if (weekDays[0] === z && z + 6 <= to && usable(week)) {
      z += 7;
    } else {
      z += 1;
    }
    n++;
  }
  return n;
}

describe("coverRange", () => {
  it("picks periods whose days are disjoint and together exactly the range", () => {
    fc.assert(
      fc.property(rangeArb, fc.func(fc.boolean()), ({ from, to }, usableFn) => {
        const usable = (p: Period) => usableFn(p.label);
        const cover = coverRange(from, to, usable);
        const [a, b] = [dayNumber(from), dayNumber(to)];
        const seen: number[] = [];
        for (const period of cover) {
          if (period.kind !== "day") expect(usable(period), period.label).toBe(true);
          seen.push(...daysOf(period));
        }
        expect(new Set(seen).size, "no day counted twice").toBe(seen.length);
        const expected = Array.from({ length: b - a + 1 }, (_, i) => a + i);
        expect(seen.sort((x, y) => x - y)).toEqual(expected);
      }),
      { numRuns: 300 },
    );
  });

  it("never needs more keys than months first, then weeks, then days", () => {
    fc.assert(
      fc.property(rangeArb, fc.func(fc.boolean()), ({ from, to }, usableFn) => {
        const usable = (p: Period) => usableFn(p.label);
        const cover = coverRange(from, to, usable);
        expect(cover.length).toBeLessThanOrEqual(
          greedyCount(dayNumber(from), dayNumber(to), usable),
        );
      }),
      { numRuns: 300 },
    );
  });

  it("uses only days when no week or month is usable", () => {
    fc.assert(
      fc.property(rangeArb, ({ from, to }) => {
        const cover = coverRange(from, to, () => false);
        expect(cover.every((p) => p.kind === "day")).toBe(true);
        expect(cover.length).toBe(dayNumber(to) - dayNumber(from) + 1);
      }),
    );
  });

  it("answers a whole month with its key, and a whole ISO week with its key", () => {
    expect(coverRange("2024-02-01", "2024-02-29", () => true)).toEqual([
      { kind: "month", label: "2024-02" },
    ]);
    // ISO week 1 of 2025 starts on Monday 2024-12-30.
    expect(coverRange("2024-12-30", "2025-01-05", () => true)).toEqual([
      { kind: "week", label: "2025-W01" },
    ]);
  });

  it("takes weeks over a month when the month would split its edge weeks into more days", () => {
    // 2024-04-29 (Mon) .. 2024-06-02 (Sun): five ISO weeks that straddle all of May.
    const cover = coverRange("2024-04-29", "2024-06-02", () => true);
    expect(cover.map((p) => p.label)).toEqual([
      "2024-W18",
      "2024-W19",
      "2024-W20",
      "2024-W21",
      "2024-W22",
    ]);
  });

  it("lists as candidates exactly the weeks and months wholly inside the range", () => {
    fc.assert(
      fc.property(rangeArb, ({ from, to }) => {
        const [a, b] = [dayNumber(from), dayNumber(to)];
        const expected = new Set<string>();
        for (let z = a; z <= b; z++) {
          const periods: Period[] = [
            { kind: "week", label: isoWeekLabel(z) },
            { kind: "month", label: dayLabel(z).slice(0, 7) },
          ];
          for (const p of periods) {
            const days = daysOf(p);
            if (at(days, 0, "day") >= a && last(days, "day") <= b) expected.add(p.label);
          }
        }
        expect(new Set(candidatePeriods(from, to).map((p) => p.label))).toEqual(expected);
      }),
      { numRuns: 200 },
    );
  });
});
