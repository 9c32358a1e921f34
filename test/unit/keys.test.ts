import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  assertEventType,
  assertSiteId,
  countingKey,
  EVENT_TYPE_RE,
  eventsKey,
  LOCK_KEY,
  METRICS,
  PENDING_KEY,
  parseKey,
  parseTouchedMember,
  periodKey,
  ROLLUP_TAG,
  SITE_ID_RE,
  siteTag,
  TOUCHED_KEY,
  touchedMember,
  uniqueVisitorsKey,
} from "../../functions/domain/keys.js";
import { parsePeriodLabel, periodOf } from "../../functions/domain/periods.js";
import { dayLabel, daysFromCivil } from "./calendar.js";

const RUNS = { numRuns: 300 };

const SITE_ALPHABET = "ABCXYZabcxyz0189_-";
const EVENT_ALPHABET = "abcxyz0189_-";
const siteIdArb = fc.string({
  unit: fc.constantFrom(...SITE_ALPHABET),
  minLength: 1,
  maxLength: 64,
});
const eventArb = fc.string({
  unit: fc.constantFrom(...EVENT_ALPHABET),
  minLength: 1,
  maxLength: 32,
});
const dayArb = fc
  .integer({ min: daysFromCivil(1970, 1, 1), max: daysFromCivil(2199, 12, 31) })
  .map(dayLabel);

/** Redis Cluster's hash-tag rule: the text between the first "{" and the first "}" after it. */
function hashTag(key: string): string | undefined {
  const open = key.indexOf("{");
  if (open < 0) return undefined;
  const close = key.indexOf("}", open + 1);
  if (close < 0 || close === open + 1) return undefined;
  return key.slice(open + 1, close);
}

function count(s: string, c: string): number {
  return s.split(c).length - 1;
}

describe("key formats (docs/contract.md)", () => {
  it("daily, weekly and monthly keys", () => {
    expect(uniqueVisitorsKey("715", "2024-03-09")).toBe("uv:{site_id=715}:2024-03-09");
    expect(uniqueVisitorsKey("715", "2024-W10")).toBe("uv:{site_id=715}:2024-W10");
    expect(uniqueVisitorsKey("715", "2024-03")).toBe("uv:{site_id=715}:2024-03");
  });

  it("per-event keys for the three periods", () => {
    expect(uniqueVisitorsKey("715", "2024-03-09", "purchase")).toBe(
      "uv:{site_id=715}:event=purchase:2024-03-09",
    );
    expect(uniqueVisitorsKey("715", "2024-W10", "purchase")).toBe(
      "uv:{site_id=715}:event=purchase:2024-W10",
    );
    expect(uniqueVisitorsKey("715", "2024-03", "purchase")).toBe(
      "uv:{site_id=715}:event=purchase:2024-03",
    );
  });

  it("events keys: the same forms under ev:", () => {
    expect(eventsKey("715", "2024-03-09")).toBe("ev:{site_id=715}:2024-03-09");
    expect(eventsKey("715", "2024-W10")).toBe("ev:{site_id=715}:2024-W10");
    expect(eventsKey("715", "2024-03")).toBe("ev:{site_id=715}:2024-03");
    expect(eventsKey("715", "2024-03-09", "purchase")).toBe(
      "ev:{site_id=715}:event=purchase:2024-03-09",
    );
    expect(countingKey("events", "715", "2024-03", "view")).toBe(
      "ev:{site_id=715}:event=view:2024-03",
    );
    expect(countingKey("visitors", "715", "2024-03", "view")).toBe(
      "uv:{site_id=715}:event=view:2024-03",
    );
    expect(periodKey("715", periodOf("week", "2024-12-30"), "view", "events")).toBe(
      "ev:{site_id=715}:event=view:2025-W01",
    );
    expect(() => eventsKey("a:b", "2024-03-09")).toThrow(RangeError);
    expect(() => eventsKey("715", "2024-03-09", "Bad")).toThrow(RangeError);
  });

  it("periodKey uses the period's label", () => {
    expect(periodKey("715", periodOf("day", "2024-03-09"))).toBe("uv:{site_id=715}:2024-03-09");
    expect(periodKey("715", periodOf("week", "2024-03-09"))).toBe("uv:{site_id=715}:2024-W10");
    expect(periodKey("715", periodOf("month", "2024-03-09"))).toBe("uv:{site_id=715}:2024-03");
    expect(periodKey("715", periodOf("week", "2024-12-30"), "view")).toBe(
      "uv:{site_id=715}:event=view:2025-W01",
    );
    expect(periodKey("shop_A-1", periodOf("day", "2024-02-29"), "cart")).toBe(
      "uv:{site_id=shop_A-1}:event=cart:2024-02-29",
    );
  });

  it("siteTag is the hash tag", () => {
    expect(siteTag("715")).toBe("{site_id=715}");
  });
});

describe("site id and event type checks", () => {
  it.each([
    "",
    "a b",
    "{715}",
    "715}",
    "{",
    "a:b",
    "a|b",
    "a.b",
    "ä",
    "7 ",
    "a".repeat(65),
  ])("rejects site id %j", (siteId) => {
    expect(() => assertSiteId(siteId)).toThrow(RangeError);
    expect(() => uniqueVisitorsKey(siteId, "2024-03-09")).toThrow(RangeError);
    expect(SITE_ID_RE.test(siteId)).toBe(false);
  });

  it("accepts site ids of 1 to 64 allowed characters", () => {
    for (const siteId of ["7", "715", "shop_A-1", "-", "_", "a".repeat(64)]) {
      expect(() => assertSiteId(siteId)).not.toThrow();
    }
  });

  it.each([
    "",
    "Purchase",
    "a b",
    "a:b",
    "{x}",
    "é",
    "e".repeat(33),
  ])("rejects event type %j", (event) => {
    expect(() => assertEventType(event)).toThrow(RangeError);
    expect(() => uniqueVisitorsKey("715", "2024-03-09", event)).toThrow(RangeError);
    expect(EVENT_TYPE_RE.test(event)).toBe(false);
  });

  it("names the offending value in the error", () => {
    expect(() => assertSiteId("a:b")).toThrow(/"a:b"/);
    expect(() => assertEventType("Bad")).toThrow(/"Bad"/);
  });

  it("rejects any site id containing a brace, colon, space or pipe", () => {
    fc.assert(
      fc.property(
        fc.string({ maxLength: 30 }),
        fc.constantFrom("{", "}", ":", " ", "|", "\n"),
        fc.string({ maxLength: 30 }),
        (a, bad, b) => {
          expect(() => uniqueVisitorsKey(a + bad + b, "2024-03-09")).toThrow(RangeError);
        },
      ),
      RUNS,
    );
  });
});

describe("key properties", () => {
  it("any accepted site id gives keys with exactly one '{' and one '}', hash tag site_id=<id>", () => {
    const anySiteArb = fc.oneof(
      siteIdArb,
      fc.string({ maxLength: 70 }),
      fc.string({ unit: fc.constantFrom(..."ab19_-{}: |"), maxLength: 70 }),
    );
    fc.assert(
      fc.property(
        anySiteArb,
        fc.option(eventArb, { nil: undefined }),
        dayArb,
        (siteId, event, day) => {
          let accepted = true;
          try {
            assertSiteId(siteId);
          } catch {
            accepted = false;
          }
          if (!accepted) {
            expect(() => uniqueVisitorsKey(siteId, day, event)).toThrow(RangeError);
            return;
          }
          for (const kind of ["day", "week", "month"] as const) {
            for (const [metric, prefix] of [
              ["visitors", "uv"],
              ["events", "ev"],
            ] as const) {
              const key = periodKey(siteId, periodOf(kind, day), event, metric);
              expect(count(key, "{")).toBe(1);
              expect(count(key, "}")).toBe(1);
              expect(hashTag(key)).toBe(`site_id=${siteId}`);
              expect(key.startsWith(`${prefix}:{site_id=${siteId}}:`)).toBe(true);
            }
          }
        },
      ),
      RUNS,
    );
  });

  it("all keys of one site share one hash tag, keys of different sites do not", () => {
    fc.assert(
      fc.property(siteIdArb, siteIdArb, eventArb, dayArb, (a, b, event, day) => {
        const keysOf = (site: string) =>
          (["day", "week", "month"] as const).flatMap((kind) =>
            METRICS.flatMap((metric) => [
              periodKey(site, periodOf(kind, day), undefined, metric),
              periodKey(site, periodOf(kind, day), event, metric),
            ]),
          );
        const tagsA = new Set(keysOf(a).map(hashTag));
        expect(tagsA).toEqual(new Set([`site_id=${a}`]));
        if (a !== b) expect(hashTag(periodKey(b, periodOf("day", day)))).not.toBe(`site_id=${a}`);
      }),
      RUNS,
    );
  });

  it("keys are unambiguous: distinct (metric, site, event, period) give distinct keys", () => {
    fc.assert(
      fc.property(
        fc.constantFrom(...METRICS),
        fc.constantFrom(...METRICS),
        siteIdArb,
        siteIdArb,
        fc.option(eventArb, { nil: undefined }),
        fc.option(eventArb, { nil: undefined }),
        dayArb,
        dayArb,
        (m1, m2, s1, s2, e1, e2, d1, d2) => {
          const same = m1 === m2 && s1 === s2 && e1 === e2 && d1 === d2;
          expect(countingKey(m1, s1, d1, e1) === countingKey(m2, s2, d2, e2)).toBe(same);
        },
      ),
      RUNS,
    );
  });
});

describe("touched set", () => {
  it("has one hash tag, {rollup}", () => {
    expect(ROLLUP_TAG).toBe("{rollup}");
    expect(hashTag(TOUCHED_KEY)).toBe("rollup");
    expect(count(TOUCHED_KEY, "{")).toBe(1);
  });

  it("formats members as site|day and site|day|event", () => {
    expect(touchedMember("715", "2024-03-09")).toBe("715|2024-03-09");
    expect(touchedMember("715", "2024-03-09", "purchase")).toBe("715|2024-03-09|purchase");
  });

  it("parses members", () => {
    expect(parseTouchedMember("715|2024-03-09")).toEqual({ siteId: "715", day: "2024-03-09" });
    expect(parseTouchedMember("715|2024-03-09|purchase")).toEqual({
      siteId: "715",
      day: "2024-03-09",
      event: "purchase",
    });
    expect(parseTouchedMember("715|2024-03-09")).not.toHaveProperty("event");
  });

  it.each(["715", "", "a|b|c|d"])("rejects member %j", (member) => {
    expect(() => parseTouchedMember(member)).toThrow(RangeError);
  });

  it("round-trips any valid (site, day, event)", () => {
    fc.assert(
      fc.property(
        siteIdArb,
        dayArb,
        fc.option(eventArb, { nil: undefined }),
        (siteId, day, event) => {
          const member = touchedMember(siteId, day, event);
          expect(count(member, "|")).toBe(event === undefined ? 1 : 2);
          const expected = event === undefined ? { siteId, day } : { siteId, day, event };
          expect(parseTouchedMember(member)).toStrictEqual(expected);
        },
      ),
      RUNS,
    );
  });
});

describe("parsePeriodLabel and parseKey: the inverse of the builders", () => {
  const periodArb = fc
    .tuple(fc.constantFrom("day" as const, "week" as const, "month" as const), dayArb)
    .map(([kind, day]) => periodOf(kind, day));

  it("parsePeriodLabel gives back the period every label came from", () => {
    fc.assert(
      fc.property(periodArb, (period) => {
        expect(parsePeriodLabel(period.label)).toEqual(period);
      }),
      RUNS,
    );
  });

  it("parsePeriodLabel refuses what is not a day, week or month, naming the forms", () => {
    for (const bad of [
      "2024-3-9",
      "2024-W1",
      "2024-W54",
      "2023-W53",
      "2024-13",
      "2024-02-30",
      "W10",
      "",
    ]) {
      expect(() => parsePeriodLabel(bad), bad).toThrow(/not a|does not exist|not a calendar date/);
    }
    expect(() => parsePeriodLabel("today")).toThrow(
      /expected a day \(2024-03-09\), an ISO week \(2024-W10\) or a month \(2024-03\)/,
    );
  });

  it("parseKey gives back the metric, site, event type and period of every key", () => {
    fc.assert(
      fc.property(
        fc.constantFrom(...METRICS),
        siteIdArb,
        fc.option(eventArb, { nil: undefined }),
        periodArb,
        (metric, site, event, period) => {
          const parsed = parseKey(countingKey(metric, site, period.label, event));
          expect(parsed).toStrictEqual(
            event === undefined
              ? { metric, siteId: site, period }
              : { metric, siteId: site, event, period },
          );
        },
      ),
      RUNS,
    );
    expect(parseKey("ev:{site_id=715}:event=purchase:2024-W10")).toStrictEqual({
      metric: "events",
      siteId: "715",
      event: "purchase",
      period: periodOf("week", "2024-03-09"),
    });
  });

  it("parseKey refuses bookkeeping, temporary and malformed keys", () => {
    for (const bad of [
      TOUCHED_KEY,
      PENDING_KEY,
      LOCK_KEY,
      "uv:{site_id=715}:2024-W10:rebuild",
      "uv:{site_id=715}:event=Purchase:2024-03-09",
      "uv:{site_id=7 5}:2024-03-09",
      "uv:site_id=715:2024-03-09",
      "ev:{site_id=715}:2024-W10:rebuild",
      "ev:{site_id=715}:event=Purchase:2024-03-09",
      "xv:{site_id=715}:2024-03-09",
      "EV:{site_id=715}:2024-03-09",
      "ev{site_id=715}:2024-03-09",
      "uv:{site_id=715}:2024-02-30",
    ]) {
      expect(() => parseKey(bad), bad).toThrow(RangeError);
    }
  });
});
