import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  type ClickEvent,
  EventParser,
  isRejection,
  MAX_EVENT_ID_LENGTH,
  MAX_USER_ID_LENGTH,
  type ParseContext,
  type Parsed,
  parseEventTime,
  REJECT_REASONS,
  type Rejection,
  type RejectReason,
} from "../../functions/domain/events.js";
import { civilFromDays, DAY_MS, dayLabel, daysFromCivil, p2, p4 } from "./calendar.js";

const RUNS = { numRuns: 300 };

const NOW = Date.parse("2024-03-10T12:00:00Z");
const CTX: ParseContext = { nowMs: NOW, retentionDays: 62 };

/** A Kinesis record id as the event source mapping gives it (`eventID`, shardId:sequenceNumber). */
const RECORD_ID = "shardId-000000000000:49590338271490256608559692538361571095921575989136588898";

const GENERATOR_EVENT = {
  user_id: "u-123-45",
  site_id: 715,
  event: "view",
  sku: "sku-1",
  amount: 3,
  event_time: "2024-03-09 14:02:11",
};

function b64(text: string): string {
  return Buffer.from(text, "utf8").toString("base64");
}

/** A parse outcome as a tagged union, for readable assertions. */
type Outcome = { ok: true; event: ClickEvent } | { ok: false; rejection: Rejection };

function outcome(parsed: Parsed): Outcome {
  return isRejection(parsed) ? { ok: false, rejection: parsed } : { ok: true, event: parsed };
}

/** EventParser.check of one value, by a fresh parser (what the consumer does per record). */
function checkValue(value: unknown, ctx: ParseContext = CTX, recordId = RECORD_ID): Outcome {
  return outcome(new EventParser(ctx).check(value, recordId));
}

/** EventParser.decode of one record's base64 data, by a fresh parser. */
function decodeData(data: string, ctx: ParseContext = CTX, recordId = RECORD_ID): Outcome {
  return outcome(new EventParser(ctx).decode(data, recordId));
}

function reasonOf(result: Outcome): RejectReason | undefined {
  return result.ok ? undefined : result.rejection.reason;
}

function expectRejected(result: Outcome, reason: RejectReason, field?: string): void {
  expect(result.ok).toBe(false);
  if (result.ok) return;
  expect(result.rejection.reason).toBe(reason);
  expect(result.rejection.field).toBe(field);
  expect(result.rejection.detail.length).toBeGreaterThan(0);
}

/** Wall-clock fields of an instant, from the independent calendar. */
function fields(ms: number): { date: string; time: string; ms: number } {
  const z = Math.floor(ms / DAY_MS);
  const inDay = ms - z * DAY_MS;
  const { y, m, d } = civilFromDays(z);
  const h = Math.floor(inDay / 3_600_000);
  const mi = Math.floor((inDay % 3_600_000) / 60_000);
  const s = Math.floor((inDay % 60_000) / 1000);
  return {
    date: `${p4(y)}-${p2(m)}-${p2(d)}`,
    time: `${p2(h)}:${p2(mi)}:${p2(s)}`,
    ms: inDay % 1000,
  };
}

// 1900..2199, away from the ends so that an offset of up to ±18:59 keeps a four-digit year.
const instantArb = fc.integer({
  min: daysFromCivil(1900, 1, 2) * DAY_MS,
  max: daysFromCivil(2199, 12, 30) * DAY_MS,
});
const offsetArb = fc.record({
  sign: fc.constantFrom(1, -1),
  h: fc.integer({ min: 0, max: 18 }),
  m: fc.integer({ min: 0, max: 59 }),
  colon: fc.boolean(),
});

describe("parseEventTime", () => {
  it("parses the generator's format as UTC", () => {
    expect(parseEventTime("2024-03-09 14:02:11")).toBe(1_709_992_931_000);
    expect(parseEventTime("1970-01-01 00:00:00")).toBe(0);
    expect(parseEventTime("2024-02-29 23:59:59")).toBe(Date.parse("2024-02-29T23:59:59Z"));
  });

  it("parses ISO-8601 with Z, offsets and fractions", () => {
    expect(parseEventTime("2024-03-09T14:02:11Z")).toBe(1_709_992_931_000);
    expect(parseEventTime("2024-03-09T14:02:11")).toBe(1_709_992_931_000);
    expect(parseEventTime("2024-03-09T19:32:11+05:30")).toBe(1_709_992_931_000);
    expect(parseEventTime("2024-03-09T19:32:11+0530")).toBe(1_709_992_931_000);
    expect(parseEventTime("2024-03-09T09:02:11-05:00")).toBe(1_709_992_931_000);
    expect(parseEventTime("2024-03-10T00:02:11+10:00")).toBe(1_709_992_931_000);
    expect(parseEventTime("2024-03-09T14:02:11.5Z")).toBe(1_709_992_931_500);
    expect(parseEventTime("2024-03-09T14:02:11.05Z")).toBe(1_709_992_931_050);
    expect(parseEventTime("2024-03-09T14:02:11.123Z")).toBe(1_709_992_931_123);
    expect(parseEventTime("2024-03-09T14:02:11.123456789Z")).toBe(1_709_992_931_123);
    expect(parseEventTime("2024-03-09T14:02:11+18:00")).toBe(1_709_992_931_000 - 18 * 3_600_000);
  });

  it.each([
    "2023-02-29 00:00:00",
    "2024-02-30 00:00:00",
    "2024-04-31 12:00:00",
    "2024-13-01 00:00:00",
    "2024-00-01 00:00:00",
    "2024-03-00 00:00:00",
    "2024-03-09 24:00:00",
    "2024-03-09 23:60:00",
    "2024-03-09 23:59:60",
    "2024-03-09T14:02:11+19:00",
    "2024-03-09T14:02:11+05:60",
    "2024-03-09T14:02:11+5:30",
    "2024-03-09T14:02:11.Z",
    "2024-03-09T14:02:11.1234567890Z",
    "2024-03-09",
    "2024-03-09 14:02",
    "2024-03-09  14:02:11",
    " 2024-03-09 14:02:11",
    "2024-03-09 14:02:11 ",
    "2024/03/09 14:02:11",
    "1710000000",
    "",
  ])("rejects %j", (text) => {
    expect(parseEventTime(text)).toBeUndefined();
  });

  it('round-trips any UTC instant written as "YYYY-MM-DD HH:MM:SS"', () => {
    fc.assert(
      fc.property(instantArb, (t) => {
        const f = fields(t);
        expect(parseEventTime(`${f.date} ${f.time}`)).toBe(t - f.ms);
      }),
      RUNS,
    );
  });

  it("round-trips any instant written as ISO-8601 with a random ±HH:MM offset and fraction", () => {
    fc.assert(
      fc.property(instantArb, offsetArb, fc.boolean(), (t, off, withFraction) => {
        const offsetMs = off.sign * (off.h * 60 + off.m) * 60_000;
        const local = fields(t + offsetMs);
        const zone = `${off.sign < 0 ? "-" : "+"}${p2(off.h)}${off.colon ? ":" : ""}${p2(off.m)}`;
        const fraction = withFraction ? `.${String(local.ms).padStart(3, "0")}` : "";
        const text = `${local.date}T${local.time}${fraction}${zone}`;
        const expected = withFraction ? t : t - local.ms;
        expect(parseEventTime(text)).toBe(expected);
        // The platform's own ISO parser agrees (it needs the colon form).
        if (off.colon) expect(Date.parse(text)).toBe(expected);
      }),
      RUNS,
    );
  });

  it("truncates a fraction of any 1-9 digits to whole milliseconds", () => {
    expect(parseEventTime("2024-03-09T14:02:11.9999Z")).toBe(1_709_992_931_999);
    expect(parseEventTime("2024-03-09T14:02:11.1236Z")).toBe(1_709_992_931_123);
    fc.assert(
      fc.property(
        instantArb,
        fc.string({ unit: fc.constantFrom(..."0123456789"), minLength: 1, maxLength: 9 }),
        (t, digits) => {
          const f = fields(t);
          const wholeMs = Number(digits.padEnd(3, "0").slice(0, 3));
          expect(parseEventTime(`${f.date}T${f.time}.${digits}Z`)).toBe(t - f.ms + wholeMs);
        },
      ),
      RUNS,
    );
  });

  it("reads the same instant from its Z form and its space form", () => {
    fc.assert(
      fc.property(instantArb, (t) => {
        const f = fields(t);
        expect(parseEventTime(`${f.date}T${f.time}Z`)).toBe(parseEventTime(`${f.date} ${f.time}`));
      }),
      RUNS,
    );
  });

  it("never throws and returns undefined or an integer for any string", () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 40 }), (s) => {
        const r = parseEventTime(s);
        if (r !== undefined) expect(Number.isInteger(r)).toBe(true);
      }),
      RUNS,
    );
  });

  // Date.UTC maps years 0-99 to 1900-1999, so a year-0050 time is read as 1950.
  it("does not read a year before 100 as a 20th-century instant", () => {
    const r = parseEventTime("0050-03-09 00:00:00");
    if (r !== undefined) expect(r).toBe(daysFromCivil(50, 3, 9) * DAY_MS);
    expect(parseEventTime("0999-12-31 23:59:59")).toBeUndefined();
  });
});

describe("EventParser.check: the generator's event", () => {
  it("accepts it and normalises the fields", () => {
    expect(checkValue(GENERATOR_EVENT, CTX)).toEqual({
      ok: true,
      event: {
        userId: "u-123-45",
        siteId: "715",
        event: "view",
        eventTimeMs: 1_709_992_931_000,
        day: "2024-03-09",
        identity: RECORD_ID,
      },
    });
  });

  it("takes a numeric user_id as its decimal string", () => {
    const r = checkValue({ ...GENERATOR_EVENT, user_id: 12345 }, CTX);
    expect(r.ok && r.event.userId).toBe("12345");
  });

  it("accepts string site ids of the allowed alphabet", () => {
    for (const siteId of ["shop_A-1", "715", "x", "a".repeat(64)]) {
      const r = checkValue({ ...GENERATOR_EVENT, site_id: siteId }, CTX);
      expect(r.ok && r.event.siteId).toBe(siteId);
    }
  });

  it("accepts the generator's event types and a 32-character one", () => {
    for (const event of ["view", "like", "cart", "purchase", "a_b-9", "e".repeat(32)]) {
      const r = checkValue({ ...GENERATOR_EVENT, event }, CTX);
      expect(r.ok && r.event.event).toBe(event);
    }
  });

  it("uses the UTC day of an offset time", () => {
    const r = checkValue({ ...GENERATOR_EVENT, event_time: "2024-03-10T01:30:00+05:00" }, CTX);
    expect(r.ok && r.event.day).toBe("2024-03-09");
    expect(r.ok && r.event.eventTimeMs).toBe(Date.parse("2024-03-09T20:30:00Z"));
  });
});

describe("EventParser.check: rejections", () => {
  it.each([
    null,
    [],
    [GENERATOR_EVENT],
    "event",
    5,
    true,
    undefined,
  ])("rejects %j as not_an_object", (value) => {
    expectRejected(checkValue(value, CTX), "not_an_object");
  });

  it.each([
    "user_id",
    "site_id",
    "event",
    "event_time",
  ])("rejects a record without %s as missing_field", (field) => {
    const record: Record<string, unknown> = { ...GENERATOR_EVENT };
    delete record[field];
    expectRejected(checkValue(record, CTX), "missing_field", field);
  });

  it.each([
    ["user_id", true],
    ["user_id", null],
    ["user_id", { id: 1 }],
    ["user_id", ["u"]],
    ["site_id", null],
    ["site_id", true],
    ["site_id", [715]],
    ["event", 5],
    ["event", null],
    ["event_time", 1_709_992_931_000],
    ["event_time", null],
  ])("rejects %s=%j as wrong_type", (field, value) => {
    expectRejected(checkValue({ ...GENERATOR_EVENT, [field]: value }, CTX), "wrong_type", field);
  });

  it("rejects empty and over-long user ids", () => {
    expectRejected(
      checkValue({ ...GENERATOR_EVENT, user_id: "" }, CTX),
      "user_id_empty",
      "user_id",
    );
    const longest = "u".repeat(MAX_USER_ID_LENGTH);
    expect(MAX_USER_ID_LENGTH).toBe(256);
    expect(checkValue({ ...GENERATOR_EVENT, user_id: longest }, CTX).ok).toBe(true);
    expectRejected(
      checkValue({ ...GENERATOR_EVENT, user_id: `${longest}u` }, CTX),
      "user_id_too_long",
      "user_id",
    );
  });

  it.each([
    "",
    "a b",
    "{715}",
    "715}",
    "{715",
    "a:b",
    "7:15",
    "a|b",
    "a.b",
    "ä",
    " 715",
    "a".repeat(65),
  ])("rejects site_id %j as invalid_site_id", (siteId) => {
    expectRejected(
      checkValue({ ...GENERATOR_EVENT, site_id: siteId }, CTX),
      "invalid_site_id",
      "site_id",
    );
  });

  it("rejects numeric site ids whose decimal form is not a plain id", () => {
    for (const siteId of [1.5, 1e21]) {
      expectRejected(
        checkValue({ ...GENERATOR_EVENT, site_id: siteId }, CTX),
        "invalid_site_id",
        "site_id",
      );
    }
  });

  it.each([
    "",
    "Purchase",
    "VIEW",
    "add to cart",
    "a:b",
    "{x}",
    "é",
    "e".repeat(33),
  ])("rejects event %j as invalid_event", (event) => {
    expectRejected(checkValue({ ...GENERATOR_EVENT, event }, CTX), "invalid_event", "event");
  });

  it.each([
    "2024-03-09",
    "2023-02-29 00:00:00",
    "yesterday",
    "",
    "2024-03-09 25:00:00",
  ])("rejects event_time %j as invalid_event_time", (eventTime) => {
    expectRejected(
      checkValue({ ...GENERATOR_EVENT, event_time: eventTime }, CTX),
      "invalid_event_time",
      "event_time",
    );
  });

  it("reports the first problem in field order", () => {
    expectRejected(checkValue({ event: 5 }, CTX), "missing_field", "user_id");
    expectRejected(
      checkValue({ ...GENERATOR_EVENT, site_id: "{x}", event: "BAD" }, CTX),
      "invalid_site_id",
      "site_id",
    );
  });

  // valibot's default message of v.finite() leaks through as the "reason". JSON cannot carry
  // Infinity, but check takes `unknown` and its result claims a RejectReason.
  it("rejects a non-finite numeric user_id with a reason from REJECT_REASONS", () => {
    for (const userId of [Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY]) {
      const r = checkValue({ ...GENERATOR_EVENT, user_id: userId }, CTX);
      expect(r.ok).toBe(false);
      expect(REJECT_REASONS).toContain(reasonOf(r));
    }
  });
});

describe("EventParser.check: event_id, the identity the events metric counts", () => {
  it("takes the record id as the identity of an event without event_id", () => {
    const r = checkValue(GENERATOR_EVENT, CTX, RECORD_ID);
    expect(r.ok && r.event.identity).toBe(RECORD_ID);
    // Another record with the same data is another event.
    const other = checkValue(GENERATOR_EVENT, CTX, "shardId-000000000000:2");
    expect(other.ok && other.event.identity).toBe("shardId-000000000000:2");
  });

  it("takes event_id as the identity, whichever record carries it", () => {
    const withId = { ...GENERATOR_EVENT, event_id: "order-42/line-1" };
    for (const recordId of [RECORD_ID, "shardId-000000000003:17"]) {
      const r = checkValue(withId, CTX, recordId);
      expect(r).toEqual({
        ok: true,
        event: {
          userId: "u-123-45",
          siteId: "715",
          event: "view",
          eventTimeMs: 1_709_992_931_000,
          day: "2024-03-09",
          identity: "order-42/line-1",
        },
      });
    }
  });

  it("accepts 1 to 128 characters, counted as characters (code points) as for user_id", () => {
    expect(MAX_EVENT_ID_LENGTH).toBe(128);
    for (const id of ["x", "e".repeat(128), "😀".repeat(128), " ", "{715}:|"]) {
      const r = checkValue({ ...GENERATOR_EVENT, event_id: id }, CTX);
      expect(r.ok && r.event.identity, JSON.stringify(id)).toBe(id);
    }
  });

  it("rejects an empty, too long or non-string event_id as invalid_event_id, saying what to send instead", () => {
    const bad: unknown[] = ["", "e".repeat(129), "😀".repeat(129), 5, 0, null, true, { id: "x" }];
    bad.push(["x"]);
    for (const eventId of bad) {
      const r = checkValue({ ...GENERATOR_EVENT, event_id: eventId }, CTX);
      expect(reasonOf(r), JSON.stringify(eventId)).toBe("invalid_event_id");
      expectRejected(r, "invalid_event_id", "event_id");
      if (!r.ok) expect(r.rejection.detail).toMatch(/1-128 characters.*leave it out/);
    }
  });

  it("judges the required fields before event_id", () => {
    const badId = { ...GENERATOR_EVENT, event_id: "" };
    const { user_id: _userId, ...withoutUser } = badId;
    expectRejected(checkValue(withoutUser, CTX), "missing_field", "user_id");
    expectRejected(checkValue({ ...badId, event_time: 5 }, CTX), "wrong_type", "event_time");
  });

  it("accepts any string event_id of 1-128 code points as the identity, and rejects the rest", () => {
    fc.assert(
      fc.property(
        fc.oneof(fc.string({ maxLength: 140 }), fc.string({ unit: "grapheme", maxLength: 140 })),
        (eventId) => {
          const r = checkValue({ ...GENERATOR_EVENT, event_id: eventId }, CTX);
          const length = [...eventId].length;
          if (length >= 1 && length <= 128) expect(r.ok && r.event.identity).toBe(eventId);
          else expect(reasonOf(r)).toBe("invalid_event_id");
        },
      ),
      RUNS,
    );
  });

  it("rejects any event_id that is not a string", () => {
    fc.assert(
      fc.property(
        fc.jsonValue().filter((v) => typeof v !== "string"),
        (eventId) => {
          expect(reasonOf(checkValue({ ...GENERATOR_EVENT, event_id: eventId }, CTX))).toBe(
            "invalid_event_id",
          );
        },
      ),
      RUNS,
    );
  });
});

describe("EventParser.check: time window", () => {
  const at = (ms: number) => {
    const f = fields(ms);
    return {
      ...GENERATOR_EVENT,
      event_time: `${f.date}T${f.time}.${String(f.ms).padStart(3, "0")}Z`,
    };
  };

  it("accepts up to exactly one day ahead of now, and rejects beyond", () => {
    const now = Date.parse("2024-03-10T12:00:00Z");
    const ctx = { nowMs: now, retentionDays: 62 };
    expect(checkValue({ ...GENERATOR_EVENT, event_time: "2024-03-11 12:00:00" }, ctx).ok).toBe(
      true,
    );
    expectRejected(
      checkValue({ ...GENERATOR_EVENT, event_time: "2024-03-11T12:00:00.001Z" }, ctx),
      "event_time_in_future",
      "event_time",
    );
  });

  it("rejects a day whose daily key has already expired", () => {
    // Day 2024-01-08 ends 2024-01-09; + 62 days = 2024-03-11T00:00:00Z.
    const ctx = (iso: string) => ({ nowMs: Date.parse(iso), retentionDays: 62 });
    const event = { ...GENERATOR_EVENT, event_time: "2024-01-08 23:59:59" };
    expect(checkValue(event, ctx("2024-03-10T23:59:59.999Z")).ok).toBe(true);
    expectRejected(
      checkValue(event, ctx("2024-03-11T00:00:00Z")),
      "event_time_too_old",
      "event_time",
    );
    expectRejected(
      checkValue({ ...GENERATOR_EVENT, event_time: "2020-01-01 00:00:00" }, CTX),
      "event_time_too_old",
      "event_time",
    );
  });

  it("classifies any (event time, now, retention) like an independent window check", () => {
    fc.assert(
      fc.property(
        instantArb,
        fc.integer({ min: -200 * DAY_MS, max: 200 * DAY_MS }),
        fc.integer({ min: 1, max: 120 }),
        (t, lag, retentionDays) => {
          const nowMs = t + lag;
          const r = checkValue(at(t), { nowMs, retentionDays });
          const z = Math.floor(t / DAY_MS);
          if (t > nowMs + DAY_MS) {
            expect(reasonOf(r)).toBe("event_time_in_future");
          } else if ((z + 1 + retentionDays) * DAY_MS <= nowMs) {
            expect(reasonOf(r)).toBe("event_time_too_old");
          } else {
            expect(r).toEqual({
              ok: true,
              event: {
                userId: "u-123-45",
                siteId: "715",
                event: "view",
                eventTimeMs: t,
                day: dayLabel(z),
                identity: RECORD_ID,
              },
            });
          }
        },
      ),
      RUNS,
    );
  });
});

describe("EventParser.check: properties", () => {
  const siteChars = "abcXYZ059_-{}: |.é";
  const siteStringArb = fc.oneof(
    fc.string({ maxLength: 70 }),
    fc.string({ unit: fc.constantFrom(...siteChars), minLength: 0, maxLength: 70 }),
  );

  /** The site-id rule written out by hand, not with the module's regular expression. */
  function isAllowedSiteId(s: string): boolean {
    if (s.length < 1 || s.length > 64) return false;
    for (const c of s) {
      const code = c.charCodeAt(0);
      const ok =
        (code >= 48 && code <= 57) ||
        (code >= 65 && code <= 90) ||
        (code >= 97 && code <= 122) ||
        c === "_" ||
        c === "-";
      if (!ok) return false;
    }
    return true;
  }

  it("accepts a string site_id exactly when it is 1-64 of [A-Za-z0-9_-]", () => {
    fc.assert(
      fc.property(siteStringArb, (siteId) => {
        const r = checkValue({ ...GENERATOR_EVENT, site_id: siteId }, CTX);
        if (isAllowedSiteId(siteId)) {
          expect(r.ok && r.event.siteId).toBe(siteId);
        } else {
          expect(reasonOf(r)).toBe("invalid_site_id");
        }
      }),
      RUNS,
    );
  });

  it("rejects any site_id containing a brace, colon or space", () => {
    fc.assert(
      fc.property(
        fc.string({ maxLength: 30 }),
        fc.constantFrom("{", "}", ":", " "),
        fc.string({ maxLength: 30 }),
        (a, bad, b) => {
          expect(reasonOf(checkValue({ ...GENERATOR_EVENT, site_id: a + bad + b }, CTX))).toBe(
            "invalid_site_id",
          );
        },
      ),
      RUNS,
    );
  });

  it("accepts any integer site_id as its decimal string", () => {
    fc.assert(
      fc.property(fc.integer(), (n) => {
        const r = checkValue({ ...GENERATOR_EVENT, site_id: n }, CTX);
        expect(r.ok && r.event.siteId).toBe(String(n));
      }),
      RUNS,
    );
  });

  it("accepts a string user_id exactly when it has 1-256 characters", () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 300 }), (userId) => {
        const r = checkValue({ ...GENERATOR_EVENT, user_id: userId }, CTX);
        if (userId.length === 0) expect(reasonOf(r)).toBe("user_id_empty");
        else if (userId.length > 256) expect(reasonOf(r)).toBe("user_id_too_long");
        else expect(r.ok && r.event.userId).toBe(userId);
      }),
      RUNS,
    );
  });

  it("never throws for any value, and rejects non-JSON values without throwing", () => {
    fc.assert(
      fc.property(fc.anything(), (value) => {
        const r = checkValue(value, CTX);
        expect(typeof r.ok).toBe("boolean");
      }),
      RUNS,
    );
  });

  it("never throws for any JSON value, and every rejection reason is a known one", () => {
    fc.assert(
      fc.property(fc.jsonValue(), (value) => {
        const r = checkValue(value, CTX);
        if (!r.ok) expect(REJECT_REASONS).toContain(r.rejection.reason);
      }),
      RUNS,
    );
  });

  const fieldArb = <T>(good: fc.Arbitrary<T>) =>
    fc.option(fc.oneof(good, fc.jsonValue()), { nil: undefined });

  it("gives a known reason (or a valid event) for any record of JSON field values", () => {
    fc.assert(
      fc.property(
        fc.record(
          {
            user_id: fieldArb(fc.oneof(fc.string({ maxLength: 300 }), fc.integer())),
            site_id: fieldArb(fc.oneof(fc.integer(), siteStringArb)),
            event: fieldArb(fc.constantFrom("view", "purchase", "Bad", "")),
            event_time: fieldArb(
              fc.constantFrom(
                "2024-03-09 14:02:11",
                "2024-03-09T14:02:11+01:00",
                "2019-01-01 00:00:00",
                "2030-01-01 00:00:00",
                "x",
              ),
            ),
            event_id: fieldArb(fc.string({ maxLength: 140 })),
          },
          { requiredKeys: [] },
        ),
        (record) => {
          // JSON round trip: what a Kinesis record can actually carry.
          const value: unknown = JSON.parse(JSON.stringify(record));
          const r = checkValue(value, CTX);
          if (r.ok) {
            expect(isAllowedSiteId(r.event.siteId)).toBe(true);
            expect(r.event.userId.length).toBeGreaterThan(0);
            expect(r.event.userId.length).toBeLessThanOrEqual(256);
            const given = (value as { event_id?: unknown }).event_id;
            expect(r.event.identity).toBe(given === undefined ? RECORD_ID : given);
          } else {
            expect(REJECT_REASONS).toContain(r.rejection.reason);
          }
          expect(decodeData(b64(JSON.stringify(value)), CTX)).toEqual(r);
        },
      ),
      RUNS,
    );
  });

  it("never throws for records whose fields are any values at all", () => {
    fc.assert(
      fc.property(
        fc.record({
          user_id: fc.anything(),
          site_id: fc.anything(),
          event: fc.anything(),
          event_time: fc.anything(),
        }),
        (record) => {
          expect(typeof checkValue(record, CTX).ok).toBe("boolean");
        },
      ),
      RUNS,
    );
  });
});

describe("EventParser.decode", () => {
  it("decodes and validates the generator's record", () => {
    const r = decodeData(b64(JSON.stringify(GENERATOR_EVENT)), CTX);
    expect(r).toEqual(checkValue(GENERATOR_EVENT, CTX));
    expect(r.ok).toBe(true);
  });

  it.each([
    "not base64!",
    "abc",
    "ab=c",
    "a===",
    "YWJj\n",
    "-_-_",
  ])("rejects %j as bad_base64", (data) => {
    expectRejected(decodeData(data, CTX), "bad_base64");
  });

  it("rejects invalid UTF-8 as bad_utf8", () => {
    expectRejected(decodeData(Buffer.from([0xff, 0xfe, 0x7b]).toString("base64"), CTX), "bad_utf8");
    expectRejected(decodeData(Buffer.from([0xc3, 0x28]).toString("base64"), CTX), "bad_utf8");
  });

  it("rejects text that is not JSON as bad_json", () => {
    expectRejected(decodeData(b64("{not json"), CTX), "bad_json");
    expectRejected(decodeData(b64('{"user_id":"u",}'), CTX), "bad_json");
    expectRejected(decodeData("", CTX), "bad_json");
  });

  it("rejects JSON that is not an object as not_an_object", () => {
    for (const text of ["[1,2]", "null", '"x"', "42"]) {
      expectRejected(decodeData(b64(text), CTX), "not_an_object");
    }
  });

  it("never throws for any string and answers with a known reason", () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 60 }), (s) => {
        const r = decodeData(s, CTX);
        expect(r.ok).toBe(false);
        if (!r.ok) expect(REJECT_REASONS).toContain(r.rejection.reason);
      }),
      RUNS,
    );
  });

  it("never reports bad_base64 for real base64 of any bytes, and never throws", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 64 }), (bytes) => {
        const r = decodeData(Buffer.from(bytes).toString("base64"), CTX);
        expect(r.ok).toBe(false);
        if (!r.ok) {
          expect(REJECT_REASONS).toContain(r.rejection.reason);
          expect(r.rejection.reason).not.toBe("bad_base64");
        }
      }),
      RUNS,
    );
  });

  it("equals check of the decoded JSON for any JSON value", () => {
    fc.assert(
      fc.property(fc.jsonValue(), (value) => {
        const text = JSON.stringify(value);
        expect(decodeData(b64(text), CTX)).toEqual(checkValue(JSON.parse(text), CTX));
      }),
      RUNS,
    );
  });
});

describe("one parser per batch", () => {
  // Records that share days, sites and event types (what the parser caches) and records that
  // differ from the last one seen in exactly those parts, mixed with every kind of rejection.
  const dayArb = fc.constantFrom(
    "2024-03-08",
    "2024-03-09",
    "2024-03-10",
    "2024-03-11",
    "2024-01-01",
  );
  const timeArb = fc.constantFrom("00:00:00", "14:02:11", "23:59:59", "24:00:00", "12:60:00");
  const valueArb = fc.record({
    user_id: fc.oneof(fc.constantFrom("u-1", "u-2", ""), fc.integer({ min: -5, max: 5 })),
    site_id: fc.constantFrom(715, "715", 190, "a b", "x}:{y", 0),
    event: fc.constantFrom("view", "purchase", "View", ""),
    event_time: fc.oneof(
      fc.tuple(dayArb, timeArb).map(([d, t]) => `${d} ${t}`),
      fc.tuple(dayArb, timeArb).map(([d, t]) => `${d}T${t}+05:30`),
      fc.constantFrom("2024-02-30 10:00:00", "2024-03-09 1:02:03", "yesterday"),
    ),
    event_id: fc.option(fc.constantFrom("e-1", "e-2", "", 7), { nil: undefined }),
  });
  const recordArb = fc.oneof(
    { weight: 8, arbitrary: valueArb.map((value) => b64(JSON.stringify(value))) },
    { weight: 1, arbitrary: fc.constantFrom("%%", b64("{x"), b64("[1]"), b64("null")) },
  );

  it("answers over any sequence exactly what a fresh parser per record answers", () => {
    fc.assert(
      fc.property(
        fc.array(recordArb, { minLength: 1, maxLength: 40 }),
        fc.constantFrom(
          NOW,
          Date.parse("2024-03-09T00:00:00Z"),
          Date.parse("2024-05-11T00:00:00Z"),
        ),
        (records, nowMs) => {
          const ctx = { nowMs, retentionDays: 62 };
          const shared = new EventParser(ctx);
          const id = (i: number) => `shardId-000000000001:${1000 + i}`;
          const inSequence = records.map((data, i) => shared.decode(data, id(i)));
          const oneByOne = records.map((data, i) => new EventParser(ctx).decode(data, id(i)));
          expect(inSequence).toEqual(oneByOne);
        },
      ),
      RUNS,
    );
  });
});

describe("REJECT_REASONS", () => {
  it("lists each reason once", () => {
    expect(new Set(REJECT_REASONS).size).toBe(REJECT_REASONS.length);
  });
});
