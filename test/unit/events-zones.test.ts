/**
 * EventParser.place on a zone's calendar, against an independent conversion: the local date
 * `Intl` gives the instant, and the window rule (a day's key expires at the first instant of
 * day D + 1 + retention) found by searching Intl's dates minute by minute, then to the
 * millisecond. The calendar under test asks Intl only when it is built.
 */

import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  type ClickEvent,
  EventParser,
  isRejection,
  type TimedEvent,
} from "../../functions/domain/events.js";
import { ZoneCalendars } from "../../functions/domain/time-zones.js";
import { testNowMs } from "../helpers/clock.js";

const DAY_MS = 86_400_000;
const RETENTION_DAYS = 62;
const now = testNowMs(RETENTION_DAYS);

const ZONES = [
  "Europe/Paris",
  "America/St_Johns",
  "Pacific/Kiritimati",
  "Asia/Kathmandu",
  "Pacific/Chatham",
  "America/Santiago",
  "Australia/Lord_Howe",
  "Pacific/Pago_Pago",
  "UTC",
] as const;

const formatters = new Map<string, Intl.DateTimeFormat>();
/** The local date Intl gives an instant: `2031-06-15`. */
function intlDate(zone: string, instantMs: number): string {
  let f = formatters.get(zone);
  if (!f) {
    f = new Intl.DateTimeFormat("en-CA", {
      timeZone: zone,
      year: "numeric",
      month: "2-digit",
      day: "2-digit",
    });
    formatters.set(zone, f);
  }
  return f.format(instantMs);
}

/** The first instant whose Intl local date is `day` or later (search from a UTC day before). */
function intlFirstInstantOf(zone: string, day: string): number {
  let lo = Date.parse(`${day}T00:00:00Z`) - 2 * DAY_MS; // before: offsets stay below +16 h
  let hi = lo + 4 * DAY_MS; // at or after: offsets stay above -16 h
  while (hi - lo > 1) {
    const mid = Math.floor((lo + hi) / 2);
    if (intlDate(zone, mid) >= day) hi = mid;
    else lo = mid;
  }
  return hi;
}

function addDays(day: string, n: number): string {
  return new Date(Date.parse(`${day}T00:00:00Z`) + n * DAY_MS).toISOString().slice(0, 10);
}

function timed(eventTimeMs: number): TimedEvent {
  return { userId: "u", siteId: "s", event: "view", eventTimeMs, identity: "id" };
}

describe("EventParser.place on a zone's calendar", () => {
  const calendars = new ZoneCalendars({ pastDays: RETENTION_DAYS + 4, futureDays: 2 });
  const parser = new EventParser({ nowMs: now, retentionDays: RETENTION_DAYS });

  it("labels every accepted instant with Intl's local date, and refuses exactly the expired days", () => {
    fc.assert(
      fc.property(
        fc.constantFrom(...ZONES),
        // From well past the window to the day of tolerance ahead, to the millisecond.
        fc.integer({ min: now - (RETENTION_DAYS + 6) * DAY_MS, max: now + DAY_MS }),
        (zone, instant) => {
          const calendar = zone === "UTC" ? undefined : calendars.forZone(zone, now);
          const placed = parser.place(timed(instant), calendar);
          const localDay = intlDate(zone, instant);
          const expiresAt = intlFirstInstantOf(zone, addDays(localDay, 1 + RETENTION_DAYS));
          if (expiresAt <= now) {
            expect(isRejection(placed) && placed.reason).toBe("event_time_too_old");
          } else {
            expect(isRejection(placed)).toBe(false);
            expect((placed as ClickEvent).day).toBe(localDay);
          }
        },
      ),
      { numRuns: 400 },
    );
  });

  it("refuses at the expiry instant and accepts a millisecond before it", () => {
    for (const zone of ZONES) {
      if (zone === "UTC") continue;
      const calendar = calendars.forZone(zone, now);
      // An event on the oldest local day still in the window at `now`.
      const day = addDays(intlDate(zone, now), -RETENTION_DAYS - 1);
      const expiresAt = intlFirstInstantOf(zone, addDays(day, 1 + RETENTION_DAYS));
      const event = timed(intlFirstInstantOf(zone, day) + 3_600_000);
      const before = new EventParser({ nowMs: expiresAt - 1, retentionDays: RETENTION_DAYS });
      const at = new EventParser({ nowMs: expiresAt, retentionDays: RETENTION_DAYS });
      expect(before.place(event, calendar), zone).toMatchObject({ day });
      expect(at.place(event, calendar), zone).toMatchObject({ reason: "event_time_too_old" });
    }
  });
});
