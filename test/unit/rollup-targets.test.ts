/**
 * mergeTargets: the PFMERGEs a page of rollup work items becomes; scriptCallsOf: how a scheduled
 * page's targets are grouped into server-side script calls. Each item gives one merge per
 * HLL family (`uv:` visitors, `ev:` events) with the same period, days and deadline. Expected
 * keys and deadlines are written out from the key contract and the retention rule, not built
 * with the modules under test; in a zone, from the zone's fixed offsets on the expiry date.
 */

import { describe, expect, it } from "vitest";
import { countingKey, countingKeyPrefix } from "../../functions/domain/keys.js";
import { ZoneCalendars } from "../../functions/domain/time-zones.js";
import { MERGE_SCRIPT_MAX_TARGETS } from "../../functions/rollup/merge-script.js";
import { mergeTargets, scriptCallsOf } from "../../functions/rollup/rollup.js";

const RETENTION = { days: 62, weeks: 104, months: 36 };
// Week 2024-W10 ends Monday 2024-03-11; + 104 weeks. March 2024 ends 1 April; + 36 months.
const WEEK_DEADLINE = Date.UTC(2024, 2, 11) / 1000 + 104 * 7 * 86_400;
const MONTH_DEADLINE = Date.UTC(2027, 3, 1) / 1000;

describe("mergeTargets", () => {
  it("merges a touched day into its period key in both families, visitors first", () => {
    expect(mergeTargets(["715|2024-W10|purchase|2024-03-09"], RETENTION)).toEqual([
      {
        siteId: "715",
        metric: "visitors",
        key: "uv:{site_id=715}:event=purchase:2024-W10",
        days: ["uv:{site_id=715}:event=purchase:2024-03-09"],
        expireAt: WEEK_DEADLINE,
      },
      {
        siteId: "715",
        metric: "events",
        key: "ev:{site_id=715}:event=purchase:2024-W10",
        days: ["ev:{site_id=715}:event=purchase:2024-03-09"],
        expireAt: WEEK_DEADLINE,
      },
    ]);
  });

  it("merges a scheduled item's day into its week, then its month, in both families", () => {
    // 2024-03-09 is a Saturday of ISO week 2024-W10.
    expect(mergeTargets(["715|2024-03-09|purchase"], RETENTION)).toEqual(
      [
        ["2024-W10", WEEK_DEADLINE],
        ["2024-03", MONTH_DEADLINE],
      ].flatMap(([period, expireAt]) =>
        ["uv", "ev"].map((prefix) => ({
          siteId: "715",
          metric: prefix === "uv" ? "visitors" : "events",
          key: `${prefix}:{site_id=715}:event=purchase:${period}`,
          days: [`${prefix}:{site_id=715}:event=purchase:2024-03-09`],
          expireAt,
        })),
      ),
    );
    // A site's own day (no event): the same keys without the event segment.
    expect(mergeTargets(["715|2024-03-09"], RETENTION).map((t) => t.key)).toEqual([
      "uv:{site_id=715}:2024-W10",
      "ev:{site_id=715}:2024-W10",
      "uv:{site_id=715}:2024-03",
      "ev:{site_id=715}:2024-03",
    ]);
  });

  it("puts a day of an ISO week that began in the previous year and month in both right periods", () => {
    // Sunday 2028-01-02 is in 2027-W52 (Monday 2027-12-27); its month is 2028-01.
    expect(mergeTargets(["9|2028-01-02"], RETENTION).map((t) => t.key)).toEqual([
      "uv:{site_id=9}:2027-W52",
      "ev:{site_id=9}:2027-W52",
      "uv:{site_id=9}:2028-01",
      "ev:{site_id=9}:2028-01",
    ]);
  });

  it("rebuilds a period from all of its days in both families (backfill items)", () => {
    const [visitors, events, ...rest] = mergeTargets(["715|2024-03||"], RETENTION);
    expect(rest).toEqual([]);
    const march = Array.from({ length: 31 }, (_, i) => `2024-03-${String(i + 1).padStart(2, "0")}`);
    expect(visitors).toEqual({
      siteId: "715",
      metric: "visitors",
      key: "uv:{site_id=715}:2024-03",
      days: march.map((d) => `uv:{site_id=715}:${d}`),
      expireAt: MONTH_DEADLINE,
    });
    expect(events).toEqual({
      siteId: "715",
      metric: "events",
      key: "ev:{site_id=715}:2024-03",
      days: march.map((d) => `ev:{site_id=715}:${d}`),
      expireAt: MONTH_DEADLINE,
    });
  });

  it("keeps item order, two targets per item", () => {
    const items = ["1|2024-03||2024-03-09", "1|2024-W10||2024-03-09", "2|2024-03|view|2024-03-10"];
    const targets = mergeTargets(items, RETENTION);
    expect(targets.map((t) => t.key)).toEqual([
      "uv:{site_id=1}:2024-03",
      "ev:{site_id=1}:2024-03",
      "uv:{site_id=1}:2024-W10",
      "ev:{site_id=1}:2024-W10",
      "uv:{site_id=2}:event=view:2024-03",
      "ev:{site_id=2}:event=view:2024-03",
    ]);
    expect(mergeTargets([], RETENTION)).toEqual([]);
  });
});

describe("mergeTargets in sites' time zones", () => {
  // Built around 2024-03-09; expiry dates lie years ahead, which the calendars compute on demand.
  const calendars = new ZoneCalendars({ pastDays: 1, futureDays: 1 });
  const nowMs = Date.UTC(2024, 2, 9, 12);
  const ZONES: Record<string, string> = {
    kir: "Pacific/Kiritimati", // UTC+14, no DST since 1995
    stj: "America/St_Johns", // UTC-03:30, DST (-02:30) from the 2nd Sunday of March to the 1st of November
    ktm: "Asia/Kathmandu", // UTC+05:45, no DST since 1986
  };
  const calendarOf = (site: string) => calendars.forZone(ZONES[site] ?? "UTC", nowMs);
  const expiry = (items: string[]) =>
    mergeTargets(items, RETENTION, calendarOf).map((t) => [t.key, t.expireAt]);
  const at = (iso: string) => Date.parse(iso) / 1000;

  it("expires a week at local midnight of the Monday, a month at local midnight of the 1st", () => {
    // 2024-W10 + 1 + 104 weeks: Monday 2026-03-09. March 2024 + 1 + 36 months: 2027-04-01.
    expect(
      expiry([
        "kir|2024-W10||2024-03-09",
        "kir|2024-03||2024-03-09",
        "ktm|2024-W10||",
        "ktm|2024-03||",
        "utc|2024-W10||",
        "utc|2024-03||",
      ]),
    ).toEqual([
      ["uv:{site_id=kir}:2024-W10", at("2026-03-08T10:00:00Z")],
      ["ev:{site_id=kir}:2024-W10", at("2026-03-08T10:00:00Z")],
      ["uv:{site_id=kir}:2024-03", at("2027-03-31T10:00:00Z")],
      ["ev:{site_id=kir}:2024-03", at("2027-03-31T10:00:00Z")],
      ["uv:{site_id=ktm}:2024-W10", at("2026-03-08T18:15:00Z")],
      ["ev:{site_id=ktm}:2024-W10", at("2026-03-08T18:15:00Z")],
      ["uv:{site_id=ktm}:2024-03", at("2027-03-31T18:15:00Z")],
      ["ev:{site_id=ktm}:2024-03", at("2027-03-31T18:15:00Z")],
      ["uv:{site_id=utc}:2024-W10", WEEK_DEADLINE],
      ["ev:{site_id=utc}:2024-W10", WEEK_DEADLINE],
      ["uv:{site_id=utc}:2024-03", MONTH_DEADLINE],
      ["ev:{site_id=utc}:2024-03", MONTH_DEADLINE],
    ]);
  });

  it("follows St John's daylight saving time on the expiry date", () => {
    // DST starts Sunday 2026-03-08 and ends Sunday 2026-11-01: the Mondays before are in the
    // other season than the Mondays after.
    expect(
      expiry(["stj|2024-W09||", "stj|2024-W10||", "stj|2024-W43||", "stj|2024-W44||"]).filter(
        ([key]) => String(key).startsWith("uv:"),
      ),
    ).toEqual([
      ["uv:{site_id=stj}:2024-W09", at("2026-03-02T03:30:00Z")],
      ["uv:{site_id=stj}:2024-W10", at("2026-03-09T02:30:00Z")],
      ["uv:{site_id=stj}:2024-W43", at("2026-10-26T02:30:00Z")],
      ["uv:{site_id=stj}:2024-W44", at("2026-11-02T03:30:00Z")],
    ]);
  });

  it("gives each site its own zone's deadline for the same period, and UTC without zones", () => {
    const items = ["kir|2024-W10||", "utc|2024-W10||", "kir|2024-W10|view|", "stj|2024-W10||"];
    expect(expiry(items).map(([, at]) => at)).toEqual(
      [
        "2026-03-08T10:00:00Z",
        "2026-03-09T00:00:00Z",
        "2026-03-08T10:00:00Z",
        "2026-03-09T02:30:00Z",
      ].flatMap((iso) => [at(iso), at(iso)]),
    );
    // No calendars: every site in UTC, as before zones existed.
    expect(mergeTargets(items, RETENTION).map((t) => t.expireAt)).toEqual(
      Array(8).fill(WEEK_DEADLINE),
    );
  });
});

describe("scriptCallsOf", () => {
  it("puts a scheduled page's targets in one call per site", () => {
    const items = ["1|2024-03-09", "1|2024-03-09|view", "2|2024-03-10"];
    expect(scriptCallsOf(mergeTargets(items, RETENTION)).map((call) => call.length)).toEqual([
      8, 4,
    ]);
  });

  it("puts each site's consecutive targets in one call, in order", () => {
    const items = ["1|2024-03||2024-03-09", "1|2024-W10||2024-03-09", "2|2024-03|view|2024-03-10"];
    const calls = scriptCallsOf(mergeTargets(items, RETENTION));
    expect(calls.map((call) => call.map((t) => t.key))).toEqual([
      [
        "uv:{site_id=1}:2024-03",
        "ev:{site_id=1}:2024-03",
        "uv:{site_id=1}:2024-W10",
        "ev:{site_id=1}:2024-W10",
      ],
      ["uv:{site_id=2}:event=view:2024-03", "ev:{site_id=2}:event=view:2024-03"],
    ]);
    expect(calls[1]?.[0]).toEqual({
      key: "uv:{site_id=2}:event=view:2024-03",
      day: "uv:{site_id=2}:event=view:2024-03-10",
      expireAt: MONTH_DEADLINE,
    });
  });

  it(`splits a site's targets into calls of at most ${MERGE_SCRIPT_MAX_TARGETS}`, () => {
    const days = Array.from({ length: 31 }, (_, i) => `2024-03-${String(i + 1).padStart(2, "0")}`);
    // 31 days × week and month × 2 families = 124 targets of one site.
    const items = days.flatMap((d) => [`9|2024-03||${d}`, `9|2024-W10||${d}`]);
    const calls = scriptCallsOf(mergeTargets(items, RETENTION));
    expect(calls.map((c) => c.length)).toEqual([64, 60]);
  });

  it("refuses a backfill target: a script call merges one touched day per key", () => {
    expect(() => scriptCallsOf(mergeTargets(["715|2024-03||"], RETENTION))).toThrow(
      /a scheduled target merges one touched day; uv:\{site_id=715\}:2024-03 has 31/,
    );
  });
});

describe("countingKeyPrefix", () => {
  it("is every counting key of a site and family but its period label, validated once", () => {
    expect(countingKeyPrefix("visitors", "715")).toBe("uv:{site_id=715}:");
    expect(countingKeyPrefix("events", "715", "purchase")).toBe("ev:{site_id=715}:event=purchase:");
    expect(`${countingKeyPrefix("events", "715", "purchase")}2024-W10`).toBe(
      countingKey("events", "715", "2024-W10", "purchase"),
    );
    expect(() => countingKeyPrefix("visitors", "bad site")).toThrow(/site id "bad site"/);
    expect(() => countingKeyPrefix("visitors", "715", "Bad")).toThrow(/event type "Bad"/);
  });
});
