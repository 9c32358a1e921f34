/**
 * Hand-written facts about a few zones, for tests that must not check the code under test
 * against `Intl` (which the code itself uses): each zone's UTC offset by its published rule.
 *
 * - Pacific/Kiritimati: UTC+14 all year.
 * - Asia/Kathmandu: UTC+05:45 all year.
 * - America/St_Johns: UTC-03:30; UTC-02:30 from the second Sunday of March at 02:00 local
 *   (05:30Z) to the first Sunday of November at 02:00 local (04:30Z).
 * - Europe/Paris: UTC+01:00; UTC+02:00 from the last Sunday of March at 01:00Z to the last
 *   Sunday of October at 01:00Z.
 * - UTC: 0.
 */

export const FACT_ZONES = [
  "Pacific/Kiritimati",
  "Asia/Kathmandu",
  "America/St_Johns",
  "Europe/Paris",
  "UTC",
] as const;
export type FactZone = (typeof FACT_ZONES)[number];

const DAY_MS = 86_400_000;
const MINUTE_MS = 60_000;

/** Day of the month of the n-th Sunday (n = 1, 2) of a month; month is 1-12. */
function nthSunday(year: number, month: number, n: number): number {
  const firstWeekday = new Date(Date.UTC(year, month - 1, 1)).getUTCDay();
  return 1 + ((7 - firstWeekday) % 7) + 7 * (n - 1);
}

/** Day of the month of the last Sunday of a month. */
function lastSunday(year: number, month: number): number {
  const last = new Date(Date.UTC(year, month, 0));
  return last.getUTCDate() - last.getUTCDay();
}

/** Local minus UTC, in minutes, at an instant, by the rules above. */
export function factOffsetMinutes(zone: FactZone, instantMs: number): number {
  const year = new Date(instantMs).getUTCFullYear();
  switch (zone) {
    case "Pacific/Kiritimati":
      return 14 * 60;
    case "Asia/Kathmandu":
      return 5 * 60 + 45;
    case "UTC":
      return 0;
    case "America/St_Johns": {
      const start = Date.UTC(year, 2, nthSunday(year, 3, 2), 5, 30);
      const end = Date.UTC(year, 10, nthSunday(year, 11, 1), 4, 30);
      return instantMs >= start && instantMs < end ? -150 : -210;
    }
    case "Europe/Paris": {
      const start = Date.UTC(year, 2, lastSunday(year, 3), 1);
      const end = Date.UTC(year, 9, lastSunday(year, 10), 1);
      return instantMs >= start && instantMs < end ? 120 : 60;
    }
  }
}

/**
 * The instant local midnight starts a day (`2031-06-16`) in the zone. None of these zones
 * changes its offset at midnight, so midnight exists and is the UTC midnight minus the offset
 * that holds there (found by trying the offsets either side).
 */
export function factMidnightMs(zone: FactZone, day: string): number {
  const utcMidnight = Date.parse(`${day}T00:00:00Z`);
  if (Number.isNaN(utcMidnight)) throw new Error(`${day} is not a day label`);
  let guess = utcMidnight;
  for (let i = 0; i < 3; i++) {
    guess = utcMidnight - factOffsetMinutes(zone, guess) * MINUTE_MS;
  }
  return guess;
}

/** The local date label of an instant in the zone. */
export function factDayOf(zone: FactZone, instantMs: number): string {
  return new Date(instantMs + factOffsetMinutes(zone, instantMs) * MINUTE_MS)
    .toISOString()
    .slice(0, 10);
}

/** The day label `n` days after `day`. */
export function dayPlus(day: string, n: number): string {
  return new Date(Date.parse(`${day}T00:00:00Z`) + n * DAY_MS).toISOString().slice(0, 10);
}
