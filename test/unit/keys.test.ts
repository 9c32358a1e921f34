import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  assertEventType,
  assertSiteId,
  BOOKKEEPING_GROUP_IDS,
  BOOKKEEPING_GROUP_TAGS,
  BOOKKEEPING_GROUPS,
  BOOKKEEPING_KINDS,
  bookkeepingKey,
  bookkeepingKeyPattern,
  countingKey,
  EVENT_TYPE_RE,
  eventsKey,
  everyGroupKey,
  fnv1a32,
  groupOfSite,
  LEGACY_PENDING_KEY,
  LEGACY_SITES_KEY,
  LEGACY_TOUCHED_KEY,
  LEGACY_WORK_KEY,
  LOCK_KEY,
  METRICS,
  parseKey,
  parseTouchedMember,
  parseWorkItem,
  periodKey,
  ROLLUP_TAG,
  SITE_ID_RE,
  siteOfMember,
  sitesKey,
  siteTag,
  touchedKey,
  touchedMember,
  uniqueVisitorsKey,
  workItem,
  workKey,
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
  it("lives in its site's group: one hash tag per group, the lock and legacy keys in {rollup}", () => {
    expect(ROLLUP_TAG).toBe("{rollup}");
    expect(hashTag(LOCK_KEY)).toBe("rollup");
    for (const legacy of [
      LEGACY_TOUCHED_KEY,
      LEGACY_PENDING_KEY,
      LEGACY_SITES_KEY,
      LEGACY_WORK_KEY,
    ]) {
      expect(hashTag(legacy)).toBe("rollup");
    }
    expect(touchedKey(5)).toBe("sketchstream:{rollup-5-5358}:touched");
    expect(sitesKey(0)).toBe("sketchstream:{rollup-0-29572}:sites");
    expect(workKey(15)).toBe("sketchstream:{rollup-15-5321}:work");
    for (const group of BOOKKEEPING_GROUP_IDS) {
      const keys = BOOKKEEPING_KINDS.map((kind) => bookkeepingKey(kind, group));
      expect(new Set(keys.map(hashTag))).toEqual(new Set([BOOKKEEPING_GROUP_TAGS[group]]));
      for (const key of keys) expect(count(key, "{")).toBe(1);
    }
    expect(everyGroupKey("pending")).toHaveLength(BOOKKEEPING_GROUPS);
    expect(new Set(everyGroupKey("pending")).size).toBe(BOOKKEEPING_GROUPS);
  });

  it("has 16 groups whose tags never change (their slots, i*1024+512, are checked against a cluster in bookkeeping-groups.test.ts)", () => {
    expect(BOOKKEEPING_GROUPS).toBe(16);
    expect(BOOKKEEPING_GROUP_IDS).toEqual([...Array(16).keys()]);
    expect(BOOKKEEPING_GROUP_TAGS).toEqual([
      "rollup-0-29572",
      "rollup-1-43683",
      "rollup-2-3962",
      "rollup-3-11217",
      "rollup-4-17793",
      "rollup-5-5358",
      "rollup-6-575",
      "rollup-7-2845",
      "rollup-8-50482",
      "rollup-9-1497",
      "rollup-10-1574",
      "rollup-11-20549",
      "rollup-12-15880",
      "rollup-13-14149",
      "rollup-14-15084",
      "rollup-15-5321",
    ]);
    expect(() => touchedKey(16)).toThrow(/bookkeeping group 16 does not exist: groups are 0 to 15/);
    expect(() => touchedKey(-1)).toThrow(RangeError);
    expect(() => touchedKey(1.5)).toThrow(RangeError);
  });

  it("ACL patterns match every group's key of their kind and no other kind or legacy key", () => {
    // Redis globs: `*` is any text; `{`, `}`, `:` and `-` are literal.
    const literal = (text: string) => text.replace(/[.+?^$()|[\]{}\\]/g, "\\$&");
    const glob = (pattern: string) => new RegExp(`^${pattern.split("*").map(literal).join(".*")}$`);
    for (const kind of BOOKKEEPING_KINDS) {
      const re = glob(bookkeepingKeyPattern(kind));
      for (const key of everyGroupKey(kind)) expect(key).toMatch(re);
      for (const other of BOOKKEEPING_KINDS.filter((k) => k !== kind)) {
        for (const key of everyGroupKey(other)) expect(key).not.toMatch(re);
      }
      for (const legacy of [LEGACY_TOUCHED_KEY, LEGACY_PENDING_KEY, LEGACY_SITES_KEY, LOCK_KEY]) {
        expect(legacy).not.toMatch(re);
      }
    }
  });

  it("hashes with FNV-1a 32 of the UTF-8 id: the published test vectors", () => {
    // http://www.isthe.com/chongo/tech/comp/fnv/ test vectors.
    expect(fnv1a32("")).toBe(0x811c9dc5);
    expect(fnv1a32("a")).toBe(0xe40c292c);
    expect(fnv1a32("foobar")).toBe(0xbf9cf968);
    // "1": (0x811c9dc5 ^ 0x31) = 0x811c9df4; x 0x01000193 = 0x811d69340ca71c; low 32 bits.
    expect(fnv1a32("1")).toBe(0x340ca71c);
  });

  it("gives each site a group that never changes across versions", () => {
    // Hand-computed: FNV-1a 32 mod 16 is the hash's last hex digit.
    expect(groupOfSite("a")).toBe(0xc); // 0xe40c292c
    expect(groupOfSite("foobar")).toBe(0x8); // 0xbf9cf968
    expect(groupOfSite("1")).toBe(0xc); // 0x340ca71c
    expect(groupOfSite("715")).toBe(0x0); // 0x89ca4650
    expect(groupOfSite("site-42")).toBe(0xf); // 0x7e93b63f
    expect(groupOfSite("big3")).toBe(0xe); // 0x7241903e
  });

  it("spreads sequential ids evenly over the groups", () => {
    const counts = new Array<number>(BOOKKEEPING_GROUPS).fill(0);
    const ids = 100_000;
    for (let i = 1; i <= ids; i++) {
      const group = groupOfSite(String(i));
      counts[group] = (counts[group] ?? 0) + 1;
    }
    const mean = ids / BOOKKEEPING_GROUPS;
    expect(Math.max(...counts) / mean).toBeLessThan(1.02);
    expect(Math.min(...counts) / mean).toBeGreaterThan(0.98);
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

  it.each([
    "715",
    "",
    "a|b|c|d",
    "|2024-03-09",
    "715||view",
    "715|2024-03-09|",
  ])("rejects member %j", (member) => {
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

describe("rollup work items", () => {
  it("reads a scheduled item, the touched member itself: a day to merge into its week and month", () => {
    expect(parseWorkItem("715|2024-03-09")).toStrictEqual({
      kind: "day",
      siteId: "715",
      day: "2024-03-09",
    });
    expect(parseWorkItem("715|2024-03-09|purchase")).toStrictEqual({
      kind: "day",
      siteId: "715",
      day: "2024-03-09",
      event: "purchase",
    });
  });

  it("reads a backfill item, and an earlier version's scheduled item (one period, one day)", () => {
    expect(workItem("715", "2024-03", "purchase")).toBe("715|2024-03|purchase|");
    expect(workItem("715", "2024-W10")).toBe("715|2024-W10||");
    expect(parseWorkItem("715|2024-03|purchase|")).toStrictEqual({
      kind: "period",
      siteId: "715",
      periodLabel: "2024-03",
      event: "purchase",
    });
    expect(parseWorkItem("715|2024-W10||2024-03-09")).toStrictEqual({
      kind: "period",
      siteId: "715",
      periodLabel: "2024-W10",
      day: "2024-03-09",
    });
  });

  it.each([
    "715",
    "",
    "|2024-03-09",
    "715||",
    "715|2024-03-09|",
    "|2024-03||",
    "a|b|c|d|e",
  ])("rejects item %j, saying which forms it may take", (item) => {
    expect(() => parseWorkItem(item)).toThrow(
      /is neither site\|day\[\|event\] \(scheduled\) nor site\|period\|event\|day \(backfill\)/,
    );
  });

  it("names a member's site: the text before its first |", () => {
    expect(siteOfMember("715|2024-03-09|purchase")).toBe("715");
    expect(siteOfMember("715|2024-W10||")).toBe("715");
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
      touchedKey(3),
      LEGACY_TOUCHED_KEY,
      LEGACY_PENDING_KEY,
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
