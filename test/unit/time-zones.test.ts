import fc from "fast-check";
import { afterEach, describe, expect, it, vi } from "vitest";
import {
  addDays,
  expiresAtSeconds,
  type Period,
  type RetentionSettings,
  weekStartDay,
} from "../../functions/domain/periods.js";
import {
  assertTimeZone,
  TIME_ZONE_EXAMPLE,
  timeZoneProblem,
  ZoneCalendar,
} from "../../functions/domain/time-zones.js";
import { DAY_MS, dayLabel as dayLabelOf, daysFromCivil, isoWeekLabel, p2, p4 } from "./calendar.js";

const HOUR_MS = 3_600_000;
const MINUTE_MS = 60_000;
const RUNS = { numRuns: 300 };

/** The UTC instant, in ms, of a wall-clock time: hand-computed expectations read like the facts. */
function utc(y: number, m: number, d: number, h = 0, min = 0, s = 0): number {
  return Date.UTC(y, m - 1, d, h, min, s);
}

/** The local hour and minute an instant shows, from the calendar's offset. */
function localHourMinute(calendar: ZoneCalendar, instantMs: number): string {
  const local = instantMs + calendar.offsetMsAt(instantMs);
  const ofDay = ((local % DAY_MS) + DAY_MS) % DAY_MS;
  return `${p2(Math.floor(ofDay / HOUR_MS))}:${p2(Math.floor((ofDay % HOUR_MS) / MINUTE_MS))}`;
}

function year2026(zone: string): ZoneCalendar {
  return new ZoneCalendar(zone, { fromMs: utc(2026, 1, 1), toMs: utc(2026, 12, 31) });
}

describe("timeZoneProblem", () => {
  it("accepts UTC and Area/Location names in canonical case", () => {
    for (const name of [
      "UTC",
      TIME_ZONE_EXAMPLE,
      "Europe/Paris",
      // Node 22's ICU resolves these to Asia/Katmandu, Asia/Calcutta, Europe/Kiev, America/Godthab.
      "Asia/Kathmandu",
      "Asia/Kolkata",
      "Europe/Kyiv",
      "America/Nuuk",
      "America/Argentina/Buenos_Aires",
      // The old spellings the engine itself still calls canonical.
      "Asia/Katmandu",
      "Asia/Calcutta",
      "Etc/GMT+5",
      "America/Port-au-Prince",
      "America/North_Dakota/New_Salem",
      "Pacific/Chatham",
    ]) {
      expect(timeZoneProblem(name), name).toBeUndefined();
      expect(() => assertTimeZone(name)).not.toThrow();
    }
  });

  it("rejects offsets, abbreviations, wrong case and unknown names, naming what to write", () => {
    const cases: [string, RegExp][] = [
      ["", /^time zone is empty: give UTC or an IANA Area\/Location name, e\.g\. Europe\/Paris$/],
      ["   ", /is empty/],
      ["asia/kathmandu", /"asia\/kathmandu" is not in its canonical case: write Asia\/Kathmandu$/],
      ["Asia/KATHMANDU", /canonical case: write Asia\/Kathmandu$/],
      ["europe/paris", /"europe\/paris" is not in its canonical case: write Europe\/Paris$/],
      ["Europe/PARIS", /canonical case: write Europe\/Paris$/],
      ["utc", /"utc" is not in its canonical case: write UTC$/],
      ["EST", /"EST" is not an Area\/Location name .*e\.g\. Europe\/Paris$/],
      ["CET", /"CET" is not an Area\/Location name .*e\.g\. Europe\/Paris$/],
      ["GMT", /"GMT" is not an Area\/Location name: write UTC$/],
      ["+05:30", /"\+05:30" is a UTC offset.*e\.g\. Europe\/Paris$/],
      ["UTC+1", /"UTC\+1" is a UTC offset.*e\.g\. Europe\/Paris$/],
      ["GMT-05:00", /is a UTC offset/],
      ["europe/pariss", /"europe\/pariss" is not in the tz database .*written Europe\)/],
      ["Mars/Olympus", /"Mars\/Olympus" does not start with a tz database area .*Europe\/Paris$/],
      ["Europe/Pariss", /"Europe\/Pariss" is not in the tz database .*e\.g\. Europe\/Paris$/],
      ["Europe/Paris ", /not an Area\/Location name: use letters, digits/],
      ["Europe//Paris", /not an Area\/Location name: use letters, digits/],
      // Aliases Node 22 resolves to another zone: the message names the zone to write.
      ["Europe/Belfast", /"Europe\/Belfast" is an alias of Europe\/London: write Europe\/London$/],
      ["Etc/UTC", /"Etc\/UTC" is an alias of UTC: write UTC$/],
    ];
    for (const [name, message] of cases) {
      expect(timeZoneProblem(name), JSON.stringify(name)).toMatch(message);
      expect(() => assertTimeZone(name)).toThrow(RangeError);
      expect(() => assertTimeZone(name)).toThrow(message);
    }
  });

  it("accepts every zone Intl lists, and none of them in another case", () => {
    const areas =
      /^(Africa|America|Antarctica|Arctic|Asia|Atlantic|Australia|Europe|Indian|Pacific|Etc)\//;
    const listed = Intl.supportedValuesOf("timeZone").filter((name) => areas.test(name));
    expect(listed.length).toBeGreaterThan(300);
    for (const name of listed) {
      expect(timeZoneProblem(name), name).toBeUndefined();
      for (const miscased of [name.toLowerCase(), name.toUpperCase()]) {
        if (miscased !== name) {
          expect(timeZoneProblem(miscased), miscased).toMatch(/not in its canonical case/);
        }
      }
    }
  });
});

describe("ZoneCalendar against hard-coded facts", () => {
  it("follows Paris across its 2026 switches (CET +01:00, CEST +02:00)", () => {
    const paris = year2026("Europe/Paris");
    expect(paris.zone).toBe("Europe/Paris");
    // Spring forward at 2026-03-29T01:00:00Z: 01:59:59 CET is followed by 03:00:00 CEST.
    expect(localHourMinute(paris, utc(2026, 3, 29, 0, 59))).toBe("01:59");
    expect(paris.offsetMsAt(utc(2026, 3, 29, 0, 59, 59))).toBe(HOUR_MS);
    expect(paris.offsetMsAt(utc(2026, 3, 29, 1))).toBe(2 * HOUR_MS);
    expect(localHourMinute(paris, utc(2026, 3, 29, 1))).toBe("03:00");
    expect(paris.midnightMs("2026-03-29")).toBe(utc(2026, 3, 28, 23));
    expect(paris.midnightMs("2026-03-30")).toBe(utc(2026, 3, 29, 22));
    expect(paris.midnightMs("2026-03-30") - paris.midnightMs("2026-03-29")).toBe(23 * HOUR_MS);
    expect(paris.dayOf(utc(2026, 3, 28, 22, 59, 59))).toBe("2026-03-28");
    expect(paris.dayOf(utc(2026, 3, 28, 23))).toBe("2026-03-29");
    expect(paris.dayOf(utc(2026, 3, 29, 21, 59, 59))).toBe("2026-03-29");
    expect(paris.dayOf(utc(2026, 3, 29, 22))).toBe("2026-03-30");
    // Fall back at 2026-10-25T01:00:00Z: 02:59:59 CEST is followed by 02:00:00 CET.
    expect(localHourMinute(paris, utc(2026, 10, 25, 0, 59))).toBe("02:59");
    expect(paris.offsetMsAt(utc(2026, 10, 25, 0, 59, 59))).toBe(2 * HOUR_MS);
    expect(paris.offsetMsAt(utc(2026, 10, 25, 1))).toBe(HOUR_MS);
    expect(localHourMinute(paris, utc(2026, 10, 25, 1))).toBe("02:00");
    expect(paris.midnightMs("2026-10-25")).toBe(utc(2026, 10, 24, 22));
    expect(paris.midnightMs("2026-10-26")).toBe(utc(2026, 10, 25, 23));
    expect(paris.midnightMs("2026-10-26") - paris.midnightMs("2026-10-25")).toBe(25 * HOUR_MS);
    expect(paris.dayOf(utc(2026, 10, 25, 22, 59, 59))).toBe("2026-10-25");
    expect(paris.dayOf(utc(2026, 10, 25, 23))).toBe("2026-10-26");
  });

  it("knows local midnight of 2026-06-01 in +14, -02:30 and +05:45 zones", () => {
    const facts: [string, string, number][] = [
      ["Pacific/Kiritimati", "2026-06-01", utc(2026, 5, 31, 10)],
      ["America/St_Johns", "2026-06-01", utc(2026, 6, 1, 2, 30)],
      ["America/St_Johns", "2026-01-15", utc(2026, 1, 15, 3, 30)],
      ["Asia/Kathmandu", "2026-06-01", utc(2026, 5, 31, 18, 15)],
    ];
    for (const [zone, day, midnight] of facts) {
      const calendar = year2026(zone);
      expect(calendar.midnightMs(day), `${zone} ${day}`).toBe(midnight);
      // A second before local midnight is the day before; midnight itself is the day.
      expect(calendar.dayOf(midnight - 1000), zone).toBe(addDays(day, -1));
      expect(calendar.dayOf(midnight - 1), zone).toBe(addDays(day, -1));
      expect(calendar.dayOf(midnight), zone).toBe(day);
      expect(calendar.dayOf(midnight + 1000), zone).toBe(day);
    }
  });

  it("starts a day whose midnight a DST jump skips at the jump (America/Santiago)", () => {
    const santiago = year2026("America/Santiago");
    // 2026-09-06T04:00:00Z: 00:00 -04 becomes 01:00 -03, so 2026-09-06 has no 00:00 and 23 hours.
    expect(santiago.midnightMs("2026-09-05")).toBe(utc(2026, 9, 5, 4));
    expect(santiago.midnightMs("2026-09-06")).toBe(utc(2026, 9, 6, 4));
    expect(localHourMinute(santiago, utc(2026, 9, 6, 4))).toBe("01:00");
    expect(santiago.dayOf(utc(2026, 9, 6, 3, 59, 59))).toBe("2026-09-05");
    expect(santiago.midnightMs("2026-09-07")).toBe(utc(2026, 9, 7, 3));
    // 2026-04-05T03:00:00Z: 00:00 -03 becomes 23:00 -04 the day before, which lasts 25 hours.
    expect(santiago.midnightMs("2026-04-04")).toBe(utc(2026, 4, 4, 3));
    expect(santiago.midnightMs("2026-04-05")).toBe(utc(2026, 4, 5, 4));
    expect(santiago.dayOf(utc(2026, 4, 5, 3, 30))).toBe("2026-04-04");
  });

  it("gives a day the zone skipped no length (Pacific/Apia skipped 2011-12-30)", () => {
    const apia = new ZoneCalendar("Pacific/Apia", {
      fromMs: utc(2011, 12, 1),
      toMs: utc(2012, 1, 31),
    });
    // 2011-12-29 24:00 at -10:00 was followed by 2011-12-31 00:00 at +14:00.
    expect(apia.midnightMs("2011-12-29")).toBe(utc(2011, 12, 29, 10));
    expect(apia.midnightMs("2011-12-30")).toBe(utc(2011, 12, 30, 10));
    expect(apia.midnightMs("2011-12-31")).toBe(utc(2011, 12, 30, 10));
    expect(apia.dayOf(utc(2011, 12, 30, 9, 59, 59))).toBe("2011-12-29");
    expect(apia.dayOf(utc(2011, 12, 30, 10))).toBe("2011-12-31");
  });

  it("computes expiry to the second in Paris across DST changes", () => {
    const paris = year2026("Europe/Paris");
    const retention: RetentionSettings = { days: 10, weeks: 1, months: 1 };
    const expiry = (kind: Period["kind"], label: string) =>
      paris.expiresAtSeconds({ kind, label }, retention);
    // Day 2026-03-20 + 1 + 10 days: 2026-03-31 starts at 00:00 CEST = 2026-03-30T22:00:00Z.
    expect(expiry("day", "2026-03-20")).toBe(utc(2026, 3, 30, 22) / 1000);
    // Day 2026-10-20 + 1 + 10 days: 2026-10-31 starts at 00:00 CET = 2026-10-30T23:00:00Z.
    expect(expiry("day", "2026-10-20")).toBe(utc(2026, 10, 30, 23) / 1000);
    // 2026-W12 is 2026-03-16..22; the week after starts 03-23; one week later Monday 03-30, CEST.
    expect(expiry("week", "2026-W12")).toBe(utc(2026, 3, 29, 22) / 1000);
    // 2026-W42 is 10-12..18; W43 starts 10-19; one week later Monday 10-26, CET.
    expect(expiry("week", "2026-W42")).toBe(utc(2026, 10, 25, 23) / 1000);
    // Month 2026-02 + 1 + 1: 2026-04-01, CEST. Month 2026-09 + 1 + 1: 2026-11-01, CET.
    expect(expiry("month", "2026-02")).toBe(utc(2026, 3, 31, 22) / 1000);
    expect(expiry("month", "2026-09")).toBe(utc(2026, 10, 31, 23) / 1000);
    // Far past the calendar's range (computed on first use): 2036-01-01 in CET.
    expect(
      paris.expiresAtSeconds({ kind: "month", label: "2026-12" }, { ...retention, months: 108 }),
    ).toBe(utc(2035, 12, 31, 23) / 1000);
    // The UTC rule, for comparison: midnight UTC.
    const utcCalendar = year2026("UTC");
    expect(utcCalendar.expiresAtSeconds({ kind: "day", label: "2026-03-20" }, retention)).toBe(
      utc(2026, 3, 31) / 1000,
    );
  });

  it("refuses instants outside its range, bad zones and bad ranges, saying what to do", () => {
    const paris = year2026("Europe/Paris");
    expect(paris.coveredFromMs).toBeLessThanOrEqual(utc(2026, 1, 1) - 3 * DAY_MS);
    expect(paris.coveredToMs).toBeGreaterThanOrEqual(utc(2026, 12, 31) + 3 * DAY_MS);
    expect(() => paris.dayOf(paris.coveredToMs)).toThrow(
      /outside the span the Europe\/Paris calendar covers \(2025-12-29T00:00:00.000Z to 2027-01-04T00:00:00.000Z, end excluded\): build a ZoneCalendar whose range includes it/,
    );
    expect(() => paris.dayOf(paris.coveredFromMs - 1)).toThrow(RangeError);
    expect(() => paris.dayOf(Number.NaN)).toThrow(RangeError);
    expect(paris.dayOf(paris.coveredFromMs)).toBe("2025-12-29");
    expect(() => paris.midnightMs("2026-02-30")).toThrow(/not a calendar date/);
    expect(() => year2026("europe/paris")).toThrow(/write Europe\/Paris/);
    expect(() => new ZoneCalendar("UTC", { fromMs: 2, toMs: 1 })).toThrow(/fromMs <= toMs/);
    expect(() => new ZoneCalendar("UTC", { fromMs: 0, toMs: Number.NaN })).toThrow(RangeError);
  });

  it("answers dayOf, midnightMs and cached expiries without calling Intl", () => {
    const paris = year2026("Europe/Paris");
    const retention: RetentionSettings = { days: 62, weeks: 26, months: 25 };
    const day: Period = { kind: "day", label: "2026-12-01" };
    const expected = paris.expiresAtSeconds(day, retention);
    // Day 2026-12-01 expires on 2027-02-02, past the range: computed once above, cached since.
    const proto = Intl.DateTimeFormat.prototype;
    const spies = [
      vi.spyOn(proto, "formatToParts"),
      vi.spyOn(proto, "resolvedOptions"),
      vi.spyOn(Intl, "DateTimeFormat"),
    ];
    let t = utc(2026, 1, 1);
    for (let i = 0; i < 2000; i++, t += 4 * HOUR_MS + 17_000) {
      paris.dayOf(t);
      paris.midnightMs(paris.dayOf(t));
    }
    expect(paris.expiresAtSeconds(day, retention)).toBe(expected);
    // 2026-W20 expires on Monday 2026-11-23, a precomputed day.
    paris.expiresAtSeconds({ kind: "week", label: "2026-W20" }, retention);
    for (const spy of spies) expect(spy).not.toHaveBeenCalled();
    // The spies do see Intl being used: building a calendar calls it.
    year2026("Asia/Kathmandu");
    expect(spies.some((spy) => spy.mock.calls.length > 0)).toBe(true);
  });
});

afterEach(() => {
  vi.restoreAllMocks();
});

/*
 * Properties against an independent conversion: the local date Intl formats for an instant, read
 * with other options and parts than the module's own offset reading.
 */

const ZONES = [
  "UTC",
  "Europe/Paris",
  "Europe/London",
  "America/New_York",
  "America/St_Johns", // -03:30 / -02:30
  "America/Santiago", // southern DST, switches at local midnight
  "America/Havana", // switches at local midnight
  "Asia/Kathmandu", // +05:45
  "Asia/Kolkata", // +05:30
  "Asia/Tehran", // +03:30, DST until 2022
  "Australia/Adelaide", // +09:30 / +10:30, southern DST
  "Australia/Lord_Howe", // +10:30 / +11:00: a 30-minute DST
  "Pacific/Chatham", // +12:45 / +13:45
  "Pacific/Kiritimati", // +14
  "Pacific/Marquesas", // -09:30
  "Pacific/Pago_Pago", // -11
  "Africa/Casablanca", // DST suspended each Ramadan
] as const;

const FROM_MS = utc(2020, 1, 1);
const TO_MS = utc(2036, 1, 1);
const calendars = new Map<string, ZoneCalendar>();

function calendarOf(zone: string): ZoneCalendar {
  let calendar = calendars.get(zone);
  if (calendar === undefined) {
    calendar = new ZoneCalendar(zone, { fromMs: FROM_MS, toMs: TO_MS });
    calendars.set(zone, calendar);
  }
  return calendar;
}

const dayFormatters = new Map<string, Intl.DateTimeFormat>();

/** The local date of an instant as Intl formats it: `2026-03-29`. */
function intlDay(zone: string, instantMs: number): string {
  let formatter = dayFormatters.get(zone);
  if (formatter === undefined) {
    formatter = new Intl.DateTimeFormat("en-GB", {
      timeZone: zone,
      year: "numeric",
      month: "2-digit",
      day: "2-digit",
    });
    dayFormatters.set(zone, formatter);
  }
  const part = (type: string) =>
    formatter.formatToParts(instantMs).find((p) => p.type === type)?.value ?? "?";
  return `${part("year")}-${part("month")}-${part("day")}`;
}

const zoneArb = fc.constantFrom(...ZONES);
const instantArb = fc.integer({ min: FROM_MS, max: TO_MS - 1 });
const dayArb = fc.integer({ min: FROM_MS / DAY_MS, max: TO_MS / DAY_MS - 1 });

describe("ZoneCalendar properties", () => {
  it("labels an instant with the local date Intl gives it", () => {
    fc.assert(
      fc.property(zoneArb, instantArb, (zone, t) => {
        expect(calendarOf(zone).dayOf(t)).toBe(intlDay(zone, t));
      }),
      { numRuns: 2000 },
    );
  });

  it("labels instants near each day's start like Intl (a second and a millisecond either side)", () => {
    fc.assert(
      fc.property(zoneArb, dayArb, (zone, z) => {
        const calendar = calendarOf(zone);
        const midnight = calendar.midnightMsOfDayNumber(z);
        for (const t of [midnight - 1000, midnight - 1, midnight, midnight + 1000]) {
          expect(calendar.dayOf(t), `${zone} ${new Date(t).toISOString()}`).toBe(intlDay(zone, t));
        }
      }),
      RUNS,
    );
  });

  it("starts each day at the first instant Intl puts in it", () => {
    fc.assert(
      fc.property(zoneArb, dayArb, (zone, z) => {
        const midnight = calendarOf(zone).midnightMs(dayLabelOf(z));
        expect(intlDay(zone, midnight)).toBe(dayLabelOf(z));
        expect(intlDay(zone, midnight - 1)).toBe(dayLabelOf(z - 1));
      }),
      { numRuns: 1000 },
    );
  });

  it("computes midnights past its range like the ones it precomputed", () => {
    const small = new Map(
      ZONES.map((zone) => [zone, new ZoneCalendar(zone, { fromMs: FROM_MS, toMs: FROM_MS })]),
    );
    fc.assert(
      fc.property(zoneArb, dayArb, (zone, z) => {
        const lazy = small.get(zone)?.midnightMsOfDayNumber(z);
        expect(lazy).toBe(calendarOf(zone).midnightMsOfDayNumber(z));
      }),
      RUNS,
    );
  });

  it("expires at the first instant of the day DESIGN.md's rule names, in every zone", () => {
    const periodArb = fc.oneof(
      dayArb.map((z): Period => ({ kind: "day", label: dayLabelOf(z) })),
      dayArb.map((z): Period => ({ kind: "week", label: isoWeekLabel(z) })),
      dayArb.map((z): Period => ({ kind: "month", label: dayLabelOf(z).slice(0, 7) })),
    );
    const retentionArb = fc.record({
      days: fc.integer({ min: 1, max: 400 }),
      weeks: fc.integer({ min: 1, max: 60 }),
      months: fc.integer({ min: 1, max: 30 }),
    });
    /** The day the rule names, by label arithmetic. */
    function expiryDay(period: Period, retention: RetentionSettings): string {
      switch (period.kind) {
        case "day":
          return addDays(period.label, 1 + retention.days);
        case "week":
          return addDays(weekStartDay(period.label), 7 * (1 + retention.weeks));
        case "month": {
          const months = Number(period.label.slice(0, 4)) * 12 + Number(period.label.slice(5, 7));
          const target = months + retention.months; // 0-based month index of M + 1 + months
          return `${p4(Math.floor(target / 12))}-${p2((target % 12) + 1)}-01`;
        }
      }
    }
    fc.assert(
      fc.property(zoneArb, periodArb, retentionArb, (zone, period, retention) => {
        const at = calendarOf(zone).expiresAtSeconds(period, retention) * 1000;
        const day = expiryDay(period, retention);
        expect(intlDay(zone, at), `${zone} ${period.label}`).toBe(day);
        expect(intlDay(zone, at - 1)).toBe(addDays(day, -1));
      }),
      RUNS,
    );
  });

  it("is today's UTC rule for UTC sites", () => {
    const utcCalendar = new ZoneCalendar("UTC", { fromMs: 0, toMs: 0 });
    const minDay = daysFromCivil(1001, 1, 1);
    const maxDay = daysFromCivil(9998, 12, 31);
    const periodArb = fc
      .integer({ min: minDay, max: maxDay })
      .chain((z) =>
        fc.constantFrom<Period>(
          { kind: "day", label: dayLabelOf(z) },
          { kind: "week", label: isoWeekLabel(z) },
          { kind: "month", label: dayLabelOf(z).slice(0, 7) },
        ),
      );
    const retentionArb = fc.record({
      days: fc.integer({ min: 1, max: 3660 }),
      weeks: fc.integer({ min: 1, max: 520 }),
      months: fc.integer({ min: 1, max: 120 }),
    });
    fc.assert(
      fc.property(periodArb, retentionArb, (period, retention) => {
        expect(utcCalendar.expiresAtSeconds(period, retention)).toBe(
          expiresAtSeconds(period, retention),
        );
      }),
      { numRuns: 1000 },
    );
  });
});
