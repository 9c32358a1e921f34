/**
 * The rollup in sites' own time zones, run for real: the ASL executed by aws-local-stepfunctions
 * with the real handlers, connected as the rollup's least-privilege ACL user, on a Redis Cluster
 * of this file's own (the rollup's lock and bookkeeping keys are global), emptied before each
 * test. Day keys carry local-date labels, as the consumer writes them, and are written here with
 * PFADD directly; weeks and months must equal the union of their days register for register and
 * expire at local midnight in the site's zone (DESIGN.md, "Per-site time zones").
 *
 * Expected deadlines come from hand-kept facts, not from `Intl`: Pacific/Kiritimati is UTC+14
 * and Asia/Kathmandu UTC+05:45 all year; America/St_Johns is UTC-03:30, and UTC-02:30 from the
 * second Sunday of March to the first Sunday of November (switching at 02:00 local). Dates come
 * from the test clock (TEST_NOW may move it), so the weekly and monthly retentions are chosen
 * from it too: they put St John's deadlines on both sides of the end of its daylight saving
 * time, whatever the clock says.
 */

import { Logger } from "@aws-lambda-powertools/logger";
import { Metrics } from "@aws-lambda-powertools/metrics";
import { Cluster } from "ioredis";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from "vitest";
import { connectRedis } from "../../functions/adapters/redis.js";
import { ACL_RULES } from "../../functions/domain/acl.js";
import {
  groupOfSite,
  siteIndexMember,
  sitesKey,
  TIME_ZONES_KEY,
  touchedKey,
  touchedMember,
} from "../../functions/domain/keys.js";
import { loadRuntimeConfig } from "../../functions/domain/runtime-env.js";
import { ZoneRegistryCache } from "../../functions/domain/zone-registry.js";
import { createRollupHandlers, type RollupHandlerOptions } from "../../functions/rollup/handler.js";
import { type RunningRedisCluster, startRedisCluster } from "../../local/redis-cluster.js";
import { runRollupLocally } from "../../state-machines/local-runner.js";
import { testNowMs, utcDay } from "../helpers/clock.js";
import { hllSame } from "../helpers/hll.js";
import {
  civilFromDays,
  DAY_MS,
  dayLabel,
  dayNumber,
  daysFromCivil,
  isoWeekLabel,
  weekdayOfDayNumber,
} from "../unit/calendar.js";

const ROLLUP_PASSWORD = `m-${Math.random().toString(36).slice(2)}`;
const now = testNowMs();
/** The test clock's UTC day, as a day number. */
const today = dayNumber(utcDay(now));

/** Minutes east of UTC at a local midnight, by zone: the facts the expectations rest on. */
const ZONE_OFFSETS: Record<string, (midnightDay: number) => number> = {
  "Pacific/Kiritimati": () => 14 * 60,
  "Asia/Kathmandu": () => 5 * 60 + 45,
  "America/St_Johns": (day) => (stJohnsInSummerTime(day) ? -(2 * 60 + 30) : -(3 * 60 + 30)),
  UTC: () => 0,
};

/** The n-th `weekday` (Monday 0 … Sunday 6) of a month, as a day number. */
function nthWeekday(y: number, m: number, weekday: number, n: number): number {
  const first = daysFromCivil(y, m, 1);
  return first + ((weekday - weekdayOfDayNumber(first) + 7) % 7) + 7 * (n - 1);
}

/**
 * Whether St John's keeps daylight saving time at the local midnight that starts `day`: it
 * starts at 02:00 on the second Sunday of March (that midnight is still standard time) and
 * ends at 02:00 on the first Sunday of November (that midnight is still summer time).
 */
function stJohnsInSummerTime(day: number): boolean {
  const { y } = civilFromDays(day);
  return nthWeekday(y, 3, 6, 2) < day && day <= nthWeekday(y, 11, 6, 1);
}

/** The instant (s) of the local midnight that starts `day` in `zone`, from ZONE_OFFSETS. */
function localMidnightSeconds(zone: string, day: number): number {
  const offset = ZONE_OFFSETS[zone];
  if (!offset) throw new Error(`no hand-kept offsets for ${zone}`);
  return day * 86_400 - offset(day) * 60;
}

function mondayOf(day: number): number {
  return day - weekdayOfDayNumber(day);
}

const { y: year, m: month } = civilFromDays(today);
/**
 * RETENTION_WEEKS such that the test clock's week expires on the Monday after the first Sunday
 * of November next year (standard time in St John's) and the week before it on the Monday
 * before (summer time).
 */
const retentionWeeks = (nthWeekday(year + 1, 11, 6, 1) + 1 - mondayOf(today)) / 7 - 1;
/**
 * RETENTION_MONTHS such that the test clock's month expires on 1 December next year (standard
 * time in St John's) and the month before on 1 November (summer time).
 */
const retentionMonths = 23 - month;

/** Week W expires at local midnight of the Monday retentionWeeks weeks after the week after W. */
function weekExpiryDay(day: number): number {
  return mondayOf(day) + 7 * (1 + retentionWeeks);
}

/** Month M expires at local midnight of the 1st of month M + 1 + retentionMonths. */
function monthExpiryDay(day: number): number {
  const { y, m } = civilFromDays(day);
  const index = y * 12 + (m - 1) + 1 + retentionMonths;
  return daysFromCivil(Math.floor(index / 12), (index % 12) + 1, 1);
}

interface Period {
  readonly label: string;
  readonly expiryDay: number;
}

function periodsOfDay(day: number): Period[] {
  return [
    { label: isoWeekLabel(day), expiryDay: weekExpiryDay(day) },
    { label: dayLabel(day).slice(0, 7), expiryDay: monthExpiryDay(day) },
  ];
}

const FAMILIES = ["uv", "ev"] as const;
const EVENTS = [undefined, "view"] as const;

function keyOf(family: string, site: string, label: string, event?: string): string {
  return `${family}:{site_id=${site}}:${event ? `event=${event}:` : ""}${label}`;
}

let cluster: RunningRedisCluster;
let admin: Cluster;
let env: Record<string, string>;

beforeAll(async () => {
  cluster = await startRedisCluster({
    primaries: 3,
    users: [{ name: "rollup", password: ROLLUP_PASSWORD, rules: ACL_RULES.rollup }],
  });
  // The default user sets the scene and checks the result; the rollup runs as its ACL user.
  admin = new Cluster([{ host: "127.0.0.1", port: cluster.port }]);
  env = {
    REDIS_ENDPOINT: cluster.endpoint,
    REDIS_TLS: "false",
    REDIS_AUTH: "password",
    REDIS_USER: "rollup",
    REDIS_PASSWORD: ROLLUP_PASSWORD,
    QUARANTINE_FILE: `${cluster.dir}/quarantine.jsonl`,
    RETENTION_WEEKS: String(retentionWeeks),
    RETENTION_MONTHS: String(retentionMonths),
  };
});

afterAll(async () => {
  admin?.disconnect();
  await cluster?.stop();
});

beforeEach(async () => {
  await Promise.all(admin.nodes("master").map((node) => node.flushall()));
});

afterEach(() => {
  vi.unstubAllEnvs();
});

/** Sites of the main scenario and their zones (no registry entry for the UTC one). */
const SITES = {
  kir: "Pacific/Kiritimati",
  stj: "America/St_Johns",
  ktm: "Asia/Kathmandu",
  utc: "UTC",
} as const;
type SiteId = keyof typeof SITES;

async function registerZones(zones: Record<string, string>): Promise<void> {
  const entries = Object.entries(zones).filter(([, zone]) => zone !== "UTC");
  if (entries.length > 0) await admin.hset(TIME_ZONES_KEY, Object.fromEntries(entries));
}

/**
 * Writes the day keys of every site (both families, with and without an event type) as the
 * consumer would: PFADD under local-date labels, the touched set and the site index. Each day
 * holds its own users, overlapping its neighbours'.
 */
async function writeDays(sites: readonly string[], days: readonly number[]): Promise<void> {
  for (const site of sites) {
    for (const [i, day] of days.entries()) {
      const users = Array.from({ length: 40 }, (_, j) => `${site}-u${i * 25 + j}`);
      for (const family of FAMILIES) {
        for (const event of EVENTS) {
          const members = family === "uv" ? users : users.map((u) => `${u}:${event ?? "any"}`);
          await admin.pfadd(keyOf(family, site, dayLabel(day), event), ...members);
        }
      }
      await admin.sadd(
        touchedKey(groupOfSite(site)),
        touchedMember(site, dayLabel(day)),
        touchedMember(site, dayLabel(day), "view"),
      );
    }
    await admin.sadd(
      sitesKey(groupOfSite(site)),
      siteIndexMember(site),
      siteIndexMember(site, "view"),
    );
  }
}

/** The union of the day keys of a period (PFMERGE by the default user, into a scratch key). */
async function unionOf(keys: readonly string[], scratch: string): Promise<Buffer | null> {
  await admin.del(scratch);
  await admin.pfmerge(scratch, ...keys);
  const union = await admin.getBuffer(scratch);
  await admin.del(scratch);
  return union;
}

/**
 * Every week and month of `days` (written with writeDays) holds the union of its written days,
 * register for register, in both families and with and without the event type, and expires at
 * the local midnight its site's zone gives (`zoneOf`).
 */
async function expectRolledUp(
  sites: readonly string[],
  days: readonly number[],
  zoneOf: (site: string) => string,
): Promise<void> {
  const periods = new Map<string, { expiryDay: number; days: number[] }>();
  for (const day of days) {
    for (const period of periodsOfDay(day)) {
      const entry = periods.get(period.label) ?? { expiryDay: period.expiryDay, days: [] };
      entry.days.push(day);
      periods.set(period.label, entry);
    }
  }
  for (const site of sites) {
    for (const [label, period] of periods) {
      const deadline = localMidnightSeconds(zoneOf(site), period.expiryDay);
      for (const family of FAMILIES) {
        for (const event of EVENTS) {
          const key = keyOf(family, site, label, event);
          const dayKeys = period.days.map((d) => keyOf(family, site, dayLabel(d), event));
          const expected = await unionOf(dayKeys, `${key}:expected`);
          expect(hllSame(await admin.getBuffer(key), expected), `${key} = union of its days`).toBe(
            true,
          );
          expect(
            new Date((await admin.expiretime(key)) * 1000).toISOString(),
            `${key} in ${zoneOf(site)}`,
          ).toBe(new Date(deadline * 1000).toISOString());
        }
      }
    }
  }
}

/** Days of the main scenario: the end of last month, last week, this week (local labels). */
function scenarioDays(): number[] {
  const lastOfPreviousMonth = today - civilFromDays(today).d;
  return [...new Set([lastOfPreviousMonth - 1, lastOfPreviousMonth, today - 9, today - 7, today])];
}

async function rollup(input: unknown, handlerOptions: RollupHandlerOptions = {}) {
  const result = await runRollupLocally({
    env,
    input,
    startTime: new Date(now),
    fastTimers: true,
    handlerOptions,
  });
  expect(result.status, result.cause).toBe("SUCCEEDED");
  return result;
}

describe("the expectations' own facts", () => {
  it("put St John's deadlines on both sides of the end of its summer time", () => {
    // The crossing the scenario is built for: last week's and last month's keys expire in
    // summer time (02:30Z), this week's and this month's in standard time (03:30Z).
    expect(retentionWeeks).toBeGreaterThanOrEqual(1);
    expect(retentionMonths).toBeGreaterThanOrEqual(1);
    expect(stJohnsInSummerTime(weekExpiryDay(today - 7))).toBe(true);
    expect(stJohnsInSummerTime(weekExpiryDay(today))).toBe(false);
    expect(stJohnsInSummerTime(monthExpiryDay(today - civilFromDays(today).d))).toBe(true);
    expect(stJohnsInSummerTime(monthExpiryDay(today))).toBe(false);
    const at = (zone: string, day: number) =>
      new Date(localMidnightSeconds(zone, day) * 1000).toISOString().slice(11, 19);
    expect(at("America/St_Johns", weekExpiryDay(today - 7))).toBe("02:30:00");
    expect(at("America/St_Johns", weekExpiryDay(today))).toBe("03:30:00");
    // Monday local midnight in Kiritimati is Sunday 10:00Z; in Kathmandu Sunday 18:15Z.
    expect(weekdayOfDayNumber(weekExpiryDay(today))).toBe(0);
    expect(at("Pacific/Kiritimati", weekExpiryDay(today))).toBe("10:00:00");
    expect(at("Asia/Kathmandu", weekExpiryDay(today))).toBe("18:15:00");
    // The second Sunday of March 2031 is the 9th; the first Sunday of November the 2nd.
    expect(stJohnsInSummerTime(daysFromCivil(2031, 3, 9))).toBe(false);
    expect(stJohnsInSummerTime(daysFromCivil(2031, 3, 10))).toBe(true);
    expect(stJohnsInSummerTime(daysFromCivil(2031, 11, 2))).toBe(true);
    expect(stJohnsInSummerTime(daysFromCivil(2031, 11, 3))).toBe(false);
  });
});

describe("rollup in sites' time zones", () => {
  const sites = Object.keys(SITES) as SiteId[];
  const zoneOf = (site: string) => SITES[site as SiteId] ?? "UTC";

  it("a scheduled run merges each day into its week and month, expiring in the site's zone", async () => {
    await registerZones(SITES);
    const days = scenarioDays();
    await writeDays(sites, days);
    // One HMGET per page, of the page's distinct sites.
    const reads: string[][] = [];
    await rollup(
      {},
      {
        wrapRedis: (client) =>
          new Proxy(client, {
            get(target, prop, receiver) {
              if (prop !== "hmget") return Reflect.get(target, prop, receiver);
              return (key: string, ...fields: string[]) => {
                expect(key).toBe(TIME_ZONES_KEY);
                reads.push(fields);
                return target.hmget(key, ...fields);
              };
            },
          }),
      },
    );
    expect(reads.map((fields) => [...fields].sort())).toEqual([[...sites].sort()]);
    await expectRolledUp(sites, days, zoneOf);
  });

  it("a backfill rebuilds every week and month of the range, expiring in the site's zone", async () => {
    await registerZones(SITES);
    const days = scenarioDays();
    await writeDays(sites, days);
    for (const site of sites) await admin.del(touchedKey(groupOfSite(site)));
    const from = Math.min(...days);
    await rollup({ from: dayLabel(from), to: dayLabel(today) });
    await expectRolledUp(sites, days, zoneOf);
    // Weeks of the range without a written day get no key.
    for (let monday = mondayOf(from); monday <= today; monday += 7) {
      if (days.some((d) => mondayOf(d) === monday)) continue;
      expect(await admin.exists(keyOf("uv", "kir", isoWeekLabel(monday)))).toBe(0);
    }
  });

  it("lets the rollup user read the registry (HMGET, HLEN) but not change it", async () => {
    await registerZones(SITES);
    const rollupUser = connectRedis(loadRuntimeConfig(env).redis);
    try {
      const client = rollupUser.client;
      expect(await client.hmget(TIME_ZONES_KEY, "kir", "utc")).toEqual([
        "Pacific/Kiritimati",
        null,
      ]);
      expect(await client.hlen(TIME_ZONES_KEY)).toBe(3);
      await expect(client.hset(TIME_ZONES_KEY, "kir", "UTC")).rejects.toThrow(/NOPERM/);
      await expect(client.hdel(TIME_ZONES_KEY, "kir")).rejects.toThrow(/NOPERM/);
      await expect(client.del(TIME_ZONES_KEY)).rejects.toThrow(/NOPERM/);
      await expect(client.expireat(TIME_ZONES_KEY, Math.floor(now / 1000))).rejects.toThrow(
        /NOPERM/,
      );
      await expect(client.hgetall(TIME_ZONES_KEY)).rejects.toThrow(/NOPERM/);
    } finally {
      rollupUser.close();
    }
    expect(await admin.hget(TIME_ZONES_KEY, "kir")).toBe("Pacific/Kiritimati");
    expect(await admin.expiretime(TIME_ZONES_KEY)).toBe(-1);
  });
});

/** Every JSON line written to stdout or stderr while `run` runs (logs, EMF metrics). */
async function outputJson(run: () => Promise<unknown>): Promise<Record<string, unknown>[]> {
  const lines: string[] = [];
  const capture = (chunk: unknown) => {
    lines.push(...String(chunk).split("\n"));
    return true;
  };
  const out = vi.spyOn(process.stdout, "write").mockImplementation(capture);
  const err = vi.spyOn(process.stderr, "write").mockImplementation(capture);
  try {
    await run();
  } finally {
    out.mockRestore();
    err.mockRestore();
  }
  return lines.filter((l) => l.startsWith("{")).map((l) => JSON.parse(l));
}

function loadFailures(lines: readonly Record<string, unknown>[]): number {
  return lines.reduce((n, l) => n + (Number(l.TimeZoneLoadFailures) || 0), 0);
}

function zoneWarnings(lines: readonly Record<string, unknown>[]): Record<string, unknown>[] {
  return lines.filter(
    (l) => l.level === "WARN" && String(l.message).startsWith("time zones of some sites"),
  );
}

/** A run with its own logger and metrics (enabled), whose output is returned. */
async function observedRollup(options: RollupHandlerOptions = {}) {
  vi.stubEnv("POWERTOOLS_METRICS_DISABLED", "false");
  const handlers = createRollupHandlers(env, {
    now: () => now,
    logger: new Logger({ serviceName: "sketchstream-rollup", logLevel: "WARN" }),
    metrics: new Metrics({ namespace: "sketchstream", serviceName: "rollup" }),
    ...options,
  });
  try {
    return await outputJson(async () => {
      const result = await runRollupLocally({
        env,
        input: {},
        handlers,
        startTime: new Date(now),
        fastTimers: true,
      });
      expect(result.status, result.cause).toBe("SUCCEEDED");
    });
  } finally {
    handlers.close();
  }
}

describe("a zone registry that cannot be loaded", () => {
  it("merges a site whose entry is not a valid zone in UTC, with a warning and a metric", async () => {
    await registerZones({ kir: "Pacific/Kiritimati", bad: "EST" });
    await writeDays(["kir", "bad"], [today]);
    const lines = await observedRollup();
    await expectRolledUp(["kir", "bad"], [today], (site) =>
      site === "kir" ? "Pacific/Kiritimati" : "UTC",
    );
    expect(loadFailures(lines)).toBe(1);
    expect(zoneWarnings(lines)).toEqual([
      expect.objectContaining({
        invalid: [expect.objectContaining({ site: "bad", entry: "EST" })],
      }),
    ]);
  });

  it("keeps each site's last good zone (UTC if none) when the registry cannot be read", async () => {
    await registerZones({ kir: "Pacific/Kiritimati", ktm: "Asia/Kathmandu" });
    let readable = true;
    // The warm container's copy, read again on every page (maxAgeMs 0).
    const zoneRegistry = new ZoneRegistryCache({
      maxAgeMs: 0,
      read: (sites) =>
        readable
          ? admin.hmget(TIME_ZONES_KEY, ...sites)
          : Promise.reject(new Error("injected: registry unreachable")),
    });

    // First run: the registry answers, kir is learnt to be in Kiritimati.
    await writeDays(["kir"], [today - 7]);
    const first = await observedRollup({ zoneRegistry });
    expect(loadFailures(first)).toBe(0);
    await expectRolledUp(["kir"], [today - 7], () => "Pacific/Kiritimati");

    // Second run: it does not. kir keeps Kiritimati; ktm, never loaded, falls back to UTC.
    readable = false;
    await writeDays(["kir", "ktm"], [today]);
    const second = await observedRollup({ zoneRegistry });
    await expectRolledUp(["ktm"], [today], () => "UTC");
    for (const period of periodsOfDay(today)) {
      expect(await admin.expiretime(keyOf("uv", "kir", period.label))).toBe(
        localMidnightSeconds("Pacific/Kiritimati", period.expiryDay),
      );
    }
    expect(loadFailures(second)).toBe(1);
    expect(zoneWarnings(second)).toEqual([
      expect.objectContaining({
        failure: expect.stringContaining("injected: registry unreachable"),
      }),
    ]);
  });
});

/** The first 1st of a month that is a Monday, after the test clock: a week and a month start there. */
function nextMondayFirst(): number {
  for (let index = year * 12 + month; ; index++) {
    const first = daysFromCivil(Math.floor(index / 12), (index % 12) + 1, 1);
    if (weekdayOfDayNumber(first) === 0) return first;
  }
}

describe("a backfill's retention check with zones", () => {
  // A backfill of one day D that starts both a week and a month, started at 12:00Z on day
  // D + 62: D's key expires at midnight UTC starting D + 63 for a UTC site, but 14 h earlier,
  // 10:00Z on D + 62, for a site in UTC+14.
  const first = nextMondayFirst();
  const startTime = new Date((first + 62) * DAY_MS + 12 * 3_600_000);
  const input = { from: dayLabel(first), to: dayLabel(first) };

  it("uses the earliest possible expiry (UTC+14) when any site has a zone", async () => {
    await registerZones({ kir: "Pacific/Kiritimati" });
    const result = await runRollupLocally({ env, input, startTime, fastTimers: true });
    expect(result.status).toBe("FAILED");
    expect(result.error).toBe("RollupInputError");
    expect(result.cause).toContain(`its day ${dayLabel(first)} is past the 62-day retention`);
    expect(result.cause).toContain("1 site(s) have a time zone");
    expect(result.cause).toContain("up to 14 h before");
    expect(result.cause).toContain(`start on or after ${dayLabel(first + 1)}`);
  });

  it("keeps the exact UTC rule when no site has a zone", async () => {
    const result = await runRollupLocally({ env, input, startTime, fastTimers: true });
    expect(result.status, result.cause).toBe("SUCCEEDED");
    // Half a day later the UTC rule refuses it too.
    const later = await runRollupLocally({
      env,
      input,
      startTime: new Date(startTime.getTime() + 12 * 3_600_000),
      fastTimers: true,
    });
    expect(later.status).toBe("FAILED");
    expect(later.cause).toContain("no site has a time zone");
  });
});
