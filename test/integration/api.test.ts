/**
 * The read API against a real Redis Cluster loaded through the real consumer and rolled up by
 * the real state machine (test/helpers/read-fixture.ts), as the stack's reader ACL user. Every
 * number is checked against Redis itself: a count is the same registers as PFCOUNT over the
 * union of the range's day keys, so the numbers are equal, not merely close. The same holds for
 * the events metric (`ev:` keys), whose days before `events-since` are reported, not hidden.
 */

import { type AddressInfo, createServer, type Socket } from "node:net";
import { serve } from "@hono/node-server";
import { Validator } from "@seriousme/openapi-schema-validator";
import { Cluster } from "ioredis";
import * as v from "valibot";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ROUTES } from "../../functions/api/app.js";
import { type ApiRuntime, createApiRuntime, handler } from "../../functions/api/handler.js";
import {
  CountBody,
  ErrorBody,
  EventsBody,
  SeriesBody,
  SitesBody,
  TimeZoneBody,
} from "../../functions/api/schemas.js";
import { at, first, last } from "../../functions/domain/arrays.js";
import {
  AS_OF_EVENTS_SINCE,
  AS_OF_KEY,
  groupOfSite,
  LEGACY_SITES_KEY,
  LEGACY_TOUCHED_KEY,
  siteEventTypesKey,
  sitesKey,
  TIME_ZONES_KEY,
  touchedKey,
} from "../../functions/domain/keys.js";
import { lambdaContext } from "../../local/lambda-context.js";
import { DAY_MS, utcDay } from "../helpers/clock.js";
import { functionUrlEvent } from "../helpers/function-url.js";
import { type ReadFixture, siteEvent, startReadFixture } from "../helpers/read-fixture.js";
import { isoWeekLabel } from "../unit/calendar.js";

let fixture: ReadFixture;
let api: ApiRuntime;
let site: string;
let from: string;
let to: string;

beforeAll(async () => {
  fixture = await startReadFixture();
  api = createApiRuntime(fixture.readerEnv, { now: () => fixture.nowMs });
  site = at(fixture.sites, 1, "site");
  from = first(fixture.days, "day");
  to = last(fixture.days, "day");
}, 60_000);

afterAll(async () => {
  api?.close();
  await fixture?.stop();
});

async function get(path: string): Promise<{ status: number; body: unknown; headers: Headers }> {
  const response = await api.app.request(path);
  return { status: response.status, body: await response.json(), headers: response.headers };
}

async function getOk<T>(schema: v.GenericSchema<unknown, T>, path: string): Promise<T> {
  const { status, body } = await get(path);
  expect(status, JSON.stringify(body)).toBe(200);
  return v.parse(schema, body);
}

const dayKey = (s: string, day: string, event?: string, prefix: "uv" | "ev" = "uv") =>
  event ? `${prefix}:{site_id=${s}}:event=${event}:${day}` : `${prefix}:{site_id=${s}}:${day}`;

function daysBetween(a: string, b: string): string[] {
  const out: string[] = [];
  for (let t = Date.parse(`${a}T00:00:00Z`); t <= Date.parse(`${b}T00:00:00Z`); t += DAY_MS) {
    out.push(utcDay(t));
  }
  return out;
}

/** PFCOUNT over the union of the days' keys, asked of Redis directly. */
async function unionOfDays(s: string, a: string, b: string, event?: string): Promise<number> {
  return fixture.admin.pfcount(...daysBetween(a, b).map((d) => dayKey(s, d, event)));
}

/** The same over the days' events (`ev:`) keys. */
async function unionOfEventDays(s: string, a: string, b: string, event?: string): Promise<number> {
  return fixture.admin.pfcount(...daysBetween(a, b).map((d) => dayKey(s, d, event, "ev")));
}

describe("count", () => {
  it("equals PFCOUNT over the union of the range's day keys, using week and month keys", async () => {
    const body = await getOk(CountBody, `/v1/sites/${site}/count?from=${from}&to=${to}`);
    const union = await unionOfDays(site, from, to);
    expect(union).toBeGreaterThan(0);
    expect(body.estimate).toBe(union);
    // Rolled up: whole weeks or months answer for their days, so far fewer keys than days.
    expect(body.keys.some((k) => /:\d{4}-(W\d\d|\d\d)$/.test(k))).toBe(true);
    expect(body.keys.length).toBeLessThan(fixture.days.length / 2);
    expect(body).toMatchObject({ site, event: null, metric: "visitors", from, to });
    expect(body).toMatchObject({ complete: true, missing: [] });
    // A site without an entry in the zone registry: UTC dates.
    expect(body.timeZone).toBe("UTC");
  });

  it("is exact for an event type and for ranges that cut weeks and months", async () => {
    for (const [a, b] of [
      [at(fixture.days, 3, "day"), at(fixture.days, 47, "day")],
      [at(fixture.days, 10, "day"), at(fixture.days, 10, "day")],
    ] as const) {
      for (const event of [undefined, "purchase"]) {
        const query = `from=${a}&to=${b}${event ? `&event=${event}` : ""}`;
        const body = await getOk(CountBody, `/v1/sites/${site}/count?${query}`);
        const union = await unionOfDays(site, a, b, event);
        expect(union).toBeGreaterThan(0);
        expect(body.estimate, query).toBe(union);
        expect(body.event).toBe(event ?? null);
      }
    }
  });

  it("lists days past retention as missing instead of a silent zero", async () => {
    // 100 days back: the 40 days before the fixture's first are past the 62-day retention
    // (their keys were never written, as the consumer refuses events that old).
    const early = utcDay(Date.parse(`${from}T00:00:00Z`) - 40 * DAY_MS);
    const body = await getOk(CountBody, `/v1/sites/${site}/count?from=${early}&to=${to}`);
    const expired = daysBetween(early, to).filter(
      (d) => Date.parse(`${d}T00:00:00Z`) + (1 + 62) * DAY_MS <= fixture.nowMs,
    );
    // A month or week key that exists answers for its days even when they are gone; every
    // other expired day is read from its own (gone) key, so it is missing.
    const fromDayKeys = expired.filter((d) => body.keys.includes(dayKey(site, d)));
    expect(fromDayKeys.length).toBeGreaterThan(0);
    expect(body.complete).toBe(false);
    expect(body.missing).toEqual(fromDayKeys);
    expect(body.estimate).toBe(await unionOfDays(site, from, to));
  });

  it("answers exactly while rollup work is pending for a week of the range", async () => {
    const s = at(fixture.sites, 2, "site");
    const day = at(fixture.days, 20, "day");
    const z = Date.parse(`${day}T00:00:00Z`) / DAY_MS;
    await fixture.consume([siteEvent(s, z, 987_654, "view"), siteEvent(s, z, 987_655, "view")]);
    expect(await fixture.admin.sismember(touchedKey(groupOfSite(s)), `${s}|${day}`)).toBe(1);
    const body = await getOk(CountBody, `/v1/sites/${s}/count?from=${from}&to=${to}`);
    // The week holding the late day is read from its days, which have the new users.
    expect(body.keys).not.toContain(`uv:{site_id=${s}}:${isoWeekLabel(z)}`);
    expect(body.keys).toContain(dayKey(s, day));
    expect(body.estimate).toBe(await unionOfDays(s, from, to));
    const week = await getOk(
      SeriesBody,
      `/v1/sites/${s}/series?from=${from}&to=${to}&granularity=week`,
    );
    const point = week.points.find((p) => p.period === isoWeekLabel(z));
    expect(point?.estimate).toBe(await unionOfDays(s, point?.from ?? "", point?.to ?? ""));
  });
});

describe("series", () => {
  for (const granularity of ["day", "week", "month"] as const) {
    it(`by ${granularity}: each point equals PFCOUNT of its days inside the range`, async () => {
      const a = at(fixture.days, 2, "day");
      const b = at(fixture.days, 57, "day");
      const body = await getOk(
        SeriesBody,
        `/v1/sites/${site}/series?from=${a}&to=${b}&granularity=${granularity}`,
      );
      // The points partition the range, in order, each inside one period.
      expect(body.points.flatMap((p) => daysBetween(p.from, p.to))).toEqual(daysBetween(a, b));
      const label = (d: string) =>
        granularity === "day"
          ? d
          : granularity === "month"
            ? d.slice(0, 7)
            : isoWeekLabel(Date.parse(`${d}T00:00:00Z`) / DAY_MS);
      for (const p of body.points) {
        const days = daysBetween(p.from, p.to);
        expect(days.every((d) => label(d) === p.period)).toBe(true);
        expect(p.estimate, p.period).toBe(await unionOfDays(site, p.from, p.to));
        expect(p.estimate).toBeGreaterThan(0);
        expect(p.complete).toBe(true);
      }
      const labels = new Set(daysBetween(a, b).map(label));
      expect(body.points.map((p) => p.period)).toEqual([...labels]);
    });
  }
});

describe("the events metric", () => {
  it("count equals PFCOUNT over the union of the range's ev: day keys, using ev: weeks and months", async () => {
    for (const [a, b, event] of [
      [from, to, undefined],
      [at(fixture.days, 3, "day"), at(fixture.days, 47, "day"), "purchase"],
    ] as const) {
      const query = `from=${a}&to=${b}&metric=events${event ? `&event=${event}` : ""}`;
      const body = await getOk(CountBody, `/v1/sites/${site}/count?${query}`);
      const union = await unionOfEventDays(site, a, b, event);
      expect(union).toBeGreaterThan(0);
      expect(body.estimate, query).toBe(union);
      expect(body).toMatchObject({ metric: "events", event: event ?? null, complete: true });
      expect(body).toMatchObject({ missing: [], notRecorded: [] });
      expect(body.keys.every((k) => k.startsWith(`ev:{site_id=${site}}:`))).toBe(true);
      expect(
        body.keys.some((k) => /:\d{4}-(W\d\d|\d\d)$/.test(k)),
        query,
      ).toBe(true);
      // More events than visitors: each visitor has at least one, most several.
      const visitors = await unionOfDays(site, a, b, event);
      expect(body.estimate).toBeGreaterThan(visitors);
    }
  });

  it("uses an ev: week or month only when that key exists, whatever the uv: one does", async () => {
    const path = `/v1/sites/${site}/count?from=${from}&to=${to}&metric=events`;
    const rolledUp = (await getOk(CountBody, path)).keys.find((k) =>
      /:\d{4}-(W\d\d|\d\d)$/.test(k),
    );
    if (rolledUp === undefined) throw new Error("the events cover must use a week or month key");
    const saved = await fixture.admin.dumpBuffer(rolledUp);
    if (saved === null) throw new Error(`${rolledUp} must exist`);
    // The visitors' key of the same period stays; only the events' is gone.
    expect(await fixture.admin.exists(rolledUp.replace(/^ev:/, "uv:"))).toBe(1);
    await fixture.admin.del(rolledUp);
    try {
      const body = await getOk(CountBody, path);
      expect(body.keys).not.toContain(rolledUp);
      expect(body.estimate).toBe(await unionOfEventDays(site, from, to));
    } finally {
      await fixture.admin.restore(rolledUp, 0, saved, "REPLACE");
    }
  });

  it("series by week: each point equals PFCOUNT of its ev: days inside the range", async () => {
    const a = at(fixture.days, 2, "day");
    const b = at(fixture.days, 57, "day");
    const body = await getOk(
      SeriesBody,
      `/v1/sites/${site}/series?from=${a}&to=${b}&granularity=week&metric=events`,
    );
    expect(body.metric).toBe("events");
    expect(body.points.flatMap((p) => daysBetween(p.from, p.to))).toEqual(daysBetween(a, b));
    for (const p of body.points) {
      const union = await unionOfEventDays(site, p.from, p.to);
      expect(union).toBeGreaterThan(0);
      expect(p.estimate, p.period).toBe(union);
      expect(p).toMatchObject({ complete: true, missing: [], notRecorded: [] });
    }
  });

  it("reports the days before the UTC day of events-since as not recorded, and every day when never recorded", async () => {
    const [saved] = await fixture.admin.zmscore(AS_OF_KEY, AS_OF_EVENTS_SINCE);
    // Mid-afternoon of the fixture's 21st day: that day counts as recorded, the 20 before not.
    const boundary = at(fixture.days, 20, "day");
    const sinceMs = Date.parse(`${boundary}T15:30:00Z`);
    const before = fixture.days.slice(0, 20);
    try {
      await fixture.admin.zadd(AS_OF_KEY, sinceMs, AS_OF_EVENTS_SINCE);
      const count = await getOk(
        CountBody,
        `/v1/sites/${site}/count?from=${from}&to=${to}&metric=events`,
      );
      expect(count.asOf.eventsSince).toBe(new Date(sinceMs).toISOString());
      expect(count).toMatchObject({ complete: false, missing: before, notRecorded: before });
      // Not recorded is not lost: the estimate is still the keys' own.
      expect(count.estimate).toBe(await unionOfEventDays(site, from, to));
      // Visitors were recorded all along.
      const visitors = await getOk(CountBody, `/v1/sites/${site}/count?from=${from}&to=${to}`);
      expect(visitors).toMatchObject({ complete: true, missing: [], notRecorded: [] });
      expect(visitors.asOf.eventsSince).toBe(count.asOf.eventsSince);

      const a = at(fixture.days, 18, "day");
      const b = at(fixture.days, 22, "day");
      const series = await getOk(
        SeriesBody,
        `/v1/sites/${site}/series?from=${a}&to=${b}&granularity=day&metric=events`,
      );
      expect(series.points.map((p) => [p.period, p.complete, p.notRecorded])).toEqual(
        daysBetween(a, b).map((d) => [d, d >= boundary, d < boundary ? [d] : []]),
      );
      // A range that starts on the boundary day is complete.
      const recorded = await getOk(
        CountBody,
        `/v1/sites/${site}/count?from=${boundary}&to=${to}&metric=events`,
      );
      expect(recorded).toMatchObject({ complete: true, missing: [], notRecorded: [] });

      // Never recorded: every day is.
      await fixture.admin.zrem(AS_OF_KEY, AS_OF_EVENTS_SINCE);
      const never = await getOk(
        CountBody,
        `/v1/sites/${site}/count?from=${a}&to=${b}&metric=events`,
      );
      expect(never.asOf.eventsSince).toBeNull();
      expect(never).toMatchObject({ complete: false, notRecorded: daysBetween(a, b) });
      expect(never.missing).toEqual(daysBetween(a, b));
    } finally {
      if (saved === null || saved === undefined)
        await fixture.admin.zrem(AS_OF_KEY, AS_OF_EVENTS_SINCE);
      else await fixture.admin.zadd(AS_OF_KEY, saved, AS_OF_EVENTS_SINCE);
    }
  });

  it("reads events-since as the consumer writes it on a fresh install: 0, recorded from the start", () => {
    // The fixture's cluster had no site when its consumer first stored events (read-fixture.ts).
    expect(fixture.consumerEventsSinceMs).toBe(0);
  });
});

describe("catalog", () => {
  it("pages through the sites with a cursor, each once, and filters by prefix", async () => {
    const seen: string[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const query: string = cursor === null ? "limit=1" : `limit=1&cursor=${cursor}`;
      const page = await getOk(SitesBody, `/v1/sites?${query}`);
      expect(page.sites.length).toBeLessThanOrEqual(1);
      seen.push(...page.sites);
      cursor = page.cursor;
      pages++;
    } while (cursor !== null && pages < 20);
    expect(seen.sort()).toEqual([...fixture.sites].sort());
    const prefixed = await getOk(SitesBody, `/v1/sites?prefix=${site}`);
    expect(prefixed).toEqual({ sites: [site], cursor: null });
    expect(await getOk(SitesBody, "/v1/sites?prefix=nosuchprefix")).toEqual({
      sites: [],
      cursor: null,
    });
  });

  it("lists a site's event types; an unknown site is a 404", async () => {
    expect(await getOk(EventsBody, `/v1/sites/${site}/events`)).toEqual({
      site,
      events: ["purchase", "view"],
    });
    const { status, body } = await get("/v1/sites/never-seen/events");
    expect(status).toBe(404);
    expect(v.parse(ErrorBody, body).error).toBe("unknown_site");
  });

  it("reads the time zone from the registry, UTC by default", async () => {
    expect(await getOk(TimeZoneBody, `/v1/sites/${site}/time-zone`)).toEqual({
      site,
      timeZone: "UTC",
      source: "default",
    });
    const other = at(fixture.sites, 0, "site");
    await fixture.admin.hset(TIME_ZONES_KEY, other, "Asia/Kathmandu");
    try {
      expect(await getOk(TimeZoneBody, `/v1/sites/${other}/time-zone`)).toEqual({
        site: other,
        timeZone: "Asia/Kathmandu",
        source: "registry",
      });
      // Counts and series of the site say the zone their dates are in.
      const count = await getOk(CountBody, `/v1/sites/${other}/count?from=${from}&to=${to}`);
      expect(count.timeZone).toBe("Asia/Kathmandu");
      const series = await getOk(
        SeriesBody,
        `/v1/sites/${other}/series?from=${from}&to=${to}&granularity=month`,
      );
      expect(series.timeZone).toBe("Asia/Kathmandu");
    } finally {
      await fixture.admin.hdel(TIME_ZONES_KEY, other);
    }
  });

  it("says as of when: the consumer's last batch and the last successful rollup", async () => {
    const body = await getOk(CountBody, `/v1/sites/${site}/count?from=${from}&to=${to}`);
    expect(body.asOf.consumer).toBe(new Date(fixture.nowMs).toISOString());
    // The rollup's clock starts at the execution's start time (the fixture's now).
    const rollupMs = Date.parse(body.asOf.rollup ?? "");
    expect(rollupMs).toBeGreaterThanOrEqual(fixture.nowMs);
    expect(rollupMs - fixture.nowMs).toBeLessThan(60_000);
    expect(body.asOf.eventsSince).toBe(new Date(fixture.eventsSinceMs).toISOString());
  });
});

describe("errors and caching", () => {
  const bad: [string, number, RegExp][] = [
    ["/v1/sites/a:b/count?from=2031-01-01&to=2031-01-02", 400, /site "a:b" is not a site id/],
    ["/v1/sites/%7Bx%7D/events", 400, /is not a site id/],
    [
      "/v1/sites/s1/count?from=2031-02-30&to=2031-03-01",
      400,
      /from: "2031-02-30" is not a calendar date/,
    ],
    [
      "/v1/sites/s1/count?from=2031-3-1&to=2031-03-02",
      400,
      /is not a calendar date: use YYYY-MM-DD/,
    ],
    [
      "/v1/sites/s1/count?from=2031-03-02&to=2031-03-01",
      400,
      /"to" \(2031-03-01\) is before "from"/,
    ],
    ["/v1/sites/s1/count?from=2001-01-01&to=2031-03-01", 400, /at most 3660 days/],
    ["/v1/sites/s1/count?to=2031-03-01", 400, /^from is required/],
    [
      "/v1/sites/s1/count?from=2031-03-01&to=2031-03-02&metric=pageviews",
      400,
      /unknown metric "pageviews"/,
    ],
    [
      "/v1/sites/s1/series?from=2031-03-01&to=2031-03-02&granularity=day&metric=bogus",
      400,
      /^metric: unknown metric "bogus": use visitors or events$/,
    ],
    [
      "/v1/sites/s1/count?from=2031-03-01&to=2031-03-02&event=Buy!",
      400,
      /event type "Buy!" is not allowed/,
    ],
    ["/v1/sites/s1/count?from=2031-03-01&to=2031-03-02&evnt=x", 400, /unknown parameter "evnt"/],
    [
      "/v1/sites/s1/series?from=2031-03-01&to=2031-03-02&granularity=hour",
      400,
      /unknown granularity "hour"/,
    ],
    [
      "/v1/sites/s1/series?from=2028-01-01&to=2031-03-01&granularity=day",
      400,
      /at most 1000 points/,
    ],
    ["/v1/sites?limit=0", 400, /limit must be a whole number from 1 to 1000/],
    ["/v1/sites?limit=5000", 400, /limit must be a whole number from 1 to 1000/],
    ["/v1/sites?cursor=abc", 400, /cursor is not one this API returned/],
    ["/v1/sites?prefix=a*", 400, /prefix "a\*" cannot start a site id/],
    ["/v1/nothing-here", 404, /no route GET \/v1\/nothing-here/],
    ["/", 404, /no route GET \//],
  ];
  for (const [path, status, message] of bad) {
    it(`${path} → ${status}`, async () => {
      const response = await get(path);
      expect(response.status).toBe(status);
      const body = v.parse(ErrorBody, response.body);
      expect(body.message).toMatch(message);
      expect(JSON.stringify(body)).not.toMatch(/\n\s+at /);
    });
  }

  it("answers a POST with 404 JSON (the API only reads)", async () => {
    const response = await api.app.request(`/v1/sites/${site}/events`, { method: "POST" });
    expect(response.status).toBe(404);
    expect(v.parse(ErrorBody, await response.json()).error).toBe("not_found");
  });

  it("does not cache a range that includes today, and caches settled ranges briefly", async () => {
    const live = await get(`/v1/sites/${site}/count?from=${from}&to=${to}`);
    expect(live.headers.get("cache-control")).toBe("no-store");
    const past = await get(
      `/v1/sites/${site}/series?from=${from}&to=${at(fixture.days, 30, "day")}&granularity=week`,
    );
    expect(past.headers.get("cache-control")).toBe("private, max-age=300");
  });

  it("gives 503 (not 500) when Redis refuses connections before the deadline", async () => {
    const down = createApiRuntime(
      { ...fixture.readerEnv, REDIS_ENDPOINT: "127.0.0.1:1", API_REDIS_DEADLINE_MS: "20000" },
      { now: () => fixture.nowMs },
    );
    try {
      const started = performance.now();
      const response = await down.app.request(`/v1/sites/${site}/events`);
      const body = v.parse(ErrorBody, await response.json());
      expect(response.status, body.message).toBe(503);
      expect(body.message).toMatch(/^Redis is unavailable/);
      expect(performance.now() - started).toBeLessThan(20_000);
    } finally {
      down.close();
    }
  });

  it("gives 503 with Retry-After within the deadline when Redis accepts but never answers", async () => {
    // A black hole: connections are accepted, nothing is ever answered.
    const sockets = new Set<Socket>();
    const silent = createServer((socket) => sockets.add(socket));
    await new Promise<void>((resolve) => silent.listen(0, "127.0.0.1", resolve));
    const { port } = silent.address() as AddressInfo;
    const stuck = createApiRuntime(
      { ...fixture.readerEnv, REDIS_ENDPOINT: `127.0.0.1:${port}`, API_REDIS_DEADLINE_MS: "500" },
      { now: () => fixture.nowMs },
    );
    try {
      const started = performance.now();
      const response = await stuck.app.request(`/v1/sites/${site}/count?from=${from}&to=${to}`);
      const elapsed = performance.now() - started;
      expect(response.status).toBe(503);
      expect(response.headers.get("retry-after")).toBe("5");
      const body = v.parse(ErrorBody, await response.json());
      expect(body).toEqual({
        error: "unavailable",
        message: "Redis did not answer within 500 ms: try again shortly",
      });
      expect(elapsed).toBeGreaterThanOrEqual(450);
      expect(elapsed).toBeLessThan(500 + 1500);
    } finally {
      stuck.close();
      for (const socket of sockets) socket.destroy();
      await new Promise((resolve) => silent.close(resolve));
    }
  });
});

describe("the reader ACL user", () => {
  it("may read what the routes need and write nothing", async () => {
    const reader = new Cluster([{ host: "127.0.0.1", port: fixture.cluster.port }], {
      redisOptions: { username: "reader", password: "reader-pw" },
    });
    try {
      const sites = sitesKey(groupOfSite(site));
      expect(await reader.sismember(sites, site)).toBe(1);
      // The single-slot sets of older versions are readable too (the migration window).
      expect(await reader.sismember(LEGACY_SITES_KEY, site)).toBe(0);
      expect(await reader.smismember(LEGACY_TOUCHED_KEY, `${site}|${to}`)).toEqual([0]);
      expect(await reader.pfcount(dayKey(site, to, undefined, "ev"))).toBeGreaterThan(0);
      const writes: [string, () => Promise<unknown>][] = [
        ["PFADD", () => reader.pfadd(dayKey(site, to), "intruder")],
        ["PFADD ev:", () => reader.pfadd(dayKey(site, to, undefined, "ev"), "intruder")],
        ["SADD site index", () => reader.sadd(sites, "forged")],
        ["SREM site index", () => reader.srem(sites, site)],
        ["SADD legacy site index", () => reader.sadd(LEGACY_SITES_KEY, "forged")],
        ["SREM touched", () => reader.srem(touchedKey(groupOfSite(site)), `${site}|${to}`)],
        ["SADD event types", () => reader.sadd(siteEventTypesKey(site), "forged")],
        ["HSET time zones", () => reader.hset(TIME_ZONES_KEY, site, "UTC")],
        ["ZADD as-of", () => reader.zadd(AS_OF_KEY, 1, "consumer")],
        ["DEL", () => reader.del(dayKey(site, to))],
      ];
      for (const [name, write] of writes) {
        await expect(write(), name).rejects.toThrow(/NOPERM/);
      }
    } finally {
      reader.disconnect();
    }
  });
});

describe("a site index too large for one SSCAN reply", () => {
  it("walks 1,500 sites in pages of at most the limit, each site exactly once", async () => {
    const bulk = Array.from({ length: 1500 }, (_, i) => `bulk${String(i).padStart(4, "0")}`);
    // Event-type members share the set and the prefix; the route must skip them.
    // Each site in its group's index, as the consumer writes them: the walk goes through all.
    const byKey = new Map<string, string[]>();
    for (const b of bulk) {
      const key = sitesKey(groupOfSite(b));
      byKey.set(key, [...(byKey.get(key) ?? []), b, `${b}|view`]);
    }
    expect(byKey.size).toBe(16);
    for (const [key, members] of byKey) await fixture.admin.sadd(key, ...members);
    try {
      const seen: string[] = [];
      let cursor: string | null = null;
      let pages = 0;
      do {
        const query: string = `prefix=bulk&limit=200${cursor === null ? "" : `&cursor=${cursor}`}`;
        const page = await getOk(SitesBody, `/v1/sites?${query}`);
        expect(page.sites.length).toBeLessThanOrEqual(200);
        seen.push(...page.sites);
        cursor = page.cursor;
        pages++;
      } while (cursor !== null && pages < 100);
      expect(pages).toBeGreaterThanOrEqual(8);
      expect(seen.length).toBe(bulk.length);
      expect(seen.sort()).toEqual(bulk);
    } finally {
      for (const [key, members] of byKey) await fixture.admin.srem(key, ...members);
    }
  });
});

describe("OpenAPI and the Lambda entry point", () => {
  it("serves an OpenAPI 3.1 document that validates and names every route", async () => {
    const doc = (await get("/v1/openapi.json")).body as { paths: Record<string, unknown> };
    const validator = new Validator();
    const result = await validator.validate(doc);
    expect(result.errors ?? []).toEqual([]);
    expect(result.valid).toBe(true);
    expect(Object.keys(doc.paths).sort()).toEqual(ROUTES.map((r) => r.path).sort());
  });

  it("answers a function-URL event (payload 2.0) with the same bodies as the Node server", async () => {
    const server = serve({ fetch: api.app.fetch, hostname: "127.0.0.1", port: 0 });
    await new Promise((resolve) => server.once("listening", resolve));
    const { port } = server.address() as AddressInfo;
    const saved = { ...process.env };
    Object.assign(process.env, fixture.readerEnv);
    try {
      for (const [path, query] of [
        [`/v1/sites/${site}/count`, `from=${from}&to=${to}&event=view`],
        [`/v1/sites/${site}/series`, `from=${from}&to=${to}&granularity=week`],
        [`/v1/sites/${site}/count`, `from=${to}&to=${from}`],
        ["/v1/sites", "limit=2"],
      ] as const) {
        const overHttp = await fetch(`http://127.0.0.1:${port}${path}?${query}`);
        const lambda = (await handler(
          functionUrlEvent({ method: "GET", path, query }),
          lambdaContext(),
        )) as {
          statusCode: number;
          body: string;
          headers: Record<string, string>;
        };
        expect(lambda.statusCode).toBe(overHttp.status);
        const body = JSON.parse(lambda.body) as { asOf?: unknown };
        expect(body).toEqual(await overHttp.json());
        expect(lambda.headers["content-type"]).toMatch(/^application\/json/);
      }
    } finally {
      process.env = saved;
      await new Promise((resolve) => server.close(resolve));
    }
  });
});
