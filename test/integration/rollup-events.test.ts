/**
 * The rollup and the events metric (`ev:` keys), run for real: the ASL executed by
 * aws-local-stepfunctions with the real handlers, on a Redis Cluster of this file's own (the
 * rollup's lock and bookkeeping keys are global), emptied before each test. Data comes from the
 * real consumer handler, which writes both families; history from before the events metric is
 * what that consumer wrote with its `ev:` keys deleted. Weeks and months come from the tests'
 * own calendar.
 */

import { Cluster } from "ioredis";
import * as v from "valibot";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { createConsumerHandler } from "../../functions/consumer/handler.js";
import { isNonEmpty } from "../../functions/domain/arrays.js";
import { groupOfSite, sitesKey, touchedKey } from "../../functions/domain/keys.js";
import { createRollupHandlers } from "../../functions/rollup/handler.js";
import { type RunningRedisCluster, startRedisCluster } from "../../local/redis-cluster.js";
import { type LocalRollupResult, runRollupLocally } from "../../state-machines/local-runner.js";
import { cardOfEveryGroup, rollupLeftovers } from "../helpers/bookkeeping.js";
import { daysAgo, testNowMs } from "../helpers/clock.js";
import { hllSame } from "../helpers/hll.js";
import { kinesisEvent } from "../helpers/kinesis.js";
import { checked } from "../helpers/schema.js";
import { dayLabel, dayNumber, isoWeekLabel } from "../unit/calendar.js";

const FAMILIES = ["uv", "ev"] as const;
type Family = (typeof FAMILIES)[number];

let cluster: RunningRedisCluster;
let redis: Cluster;
let env: Record<string, string>;
const now = testNowMs();

beforeAll(async () => {
  cluster = await startRedisCluster({ primaries: 3 });
  redis = new Cluster([{ host: "127.0.0.1", port: cluster.port }]);
  env = {
    REDIS_ENDPOINT: cluster.endpoint,
    REDIS_TLS: "false",
    QUARANTINE_FILE: `${cluster.dir}/quarantine.jsonl`,
  };
});

afterAll(async () => {
  redis?.disconnect();
  await cluster?.stop();
});

// Each test starts from an empty cluster: no bookkeeping, no keys of another test.
beforeEach(async () => {
  await Promise.all(redis.nodes("master").map((node) => node.flushall()));
});

interface Event {
  readonly user_id: string;
  readonly site_id: string;
  readonly event: string;
  readonly event_time: string;
  readonly event_id?: string;
}

const RollupOutputSchema = v.object({
  itemsMerged: v.number(),
  keysWritten: v.number(),
  keysRemoved: v.number(),
});

function rollupOutput(result: LocalRollupResult): v.InferOutput<typeof RollupOutputSchema> {
  return checked(RollupOutputSchema, result.output, "the rollup's output");
}

/** Batches as the event source mapping delivers them; returns them so a test can replay one. */
async function consume(events: readonly Event[]) {
  const handler = createConsumerHandler(env, { now: () => now });
  try {
    const batch = kinesisEvent(events);
    const result = await handler(batch);
    expect(result.batchItemFailures).toEqual([]);
    return batch;
  } finally {
    handler.close();
  }
}

async function replay(batch: ReturnType<typeof kinesisEvent>) {
  const handler = createConsumerHandler(env, { now: () => now });
  try {
    expect((await handler(batch)).batchItemFailures).toEqual([]);
  } finally {
    handler.close();
  }
}

async function rollup(input: unknown, settings?: { minPageSize?: number }) {
  const handlers = createRollupHandlers(env, settings ? { settings } : {});
  try {
    const result = await runRollupLocally({
      env,
      input,
      handlers,
      startTime: new Date(now),
      fastTimers: true,
    });
    expect(result.status, result.cause).toBe("SUCCEEDED");
    return rollupOutput(result);
  } finally {
    handlers.close();
  }
}

/** Every key of the cluster matching a pattern (SCAN on each primary). */
async function scanKeys(pattern: string): Promise<string[]> {
  const keys: string[] = [];
  for (const node of redis.nodes("master")) {
    let cursor = "0";
    do {
      const [next, found] = await node.scan(cursor, "MATCH", pattern, "COUNT", 1000);
      keys.push(...found);
      cursor = next;
    } while (cursor !== "0");
  }
  return keys.sort();
}

/** Each week and month overlapping the days, with all of its days (tests' own calendar). */
function periodsOf(days: readonly string[]): Map<string, string[]> {
  const numbers = days.map(dayNumber);
  const wanted = new Set(numbers.flatMap((z) => [isoWeekLabel(z), dayLabel(z).slice(0, 7)]));
  const periods = new Map<string, string[]>();
  for (let z = Math.min(...numbers) - 40; z <= Math.max(...numbers) + 40; z++) {
    for (const label of [isoWeekLabel(z), dayLabel(z).slice(0, 7)]) {
      if (!wanted.has(label)) continue;
      periods.set(label, [...(periods.get(label) ?? []), dayLabel(z)]);
    }
  }
  return periods;
}

function prefixOf(family: Family, site: string, event?: string): string {
  return event ? `${family}:{site_id=${site}}:event=${event}:` : `${family}:{site_id=${site}}:`;
}

/**
 * Every week and month key of the families whose days hold data equals, register for register,
 * a PFMERGE of its days done here; a period none of whose days exists has no key. Returns the
 * period keys checked, by family.
 */
async function expectUnionOfDays(
  families: readonly Family[],
  sites: readonly string[],
  days: readonly string[],
  events: readonly (string | undefined)[],
): Promise<Record<Family, string[]>> {
  const seen: Record<Family, string[]> = { uv: [], ev: [] };
  for (const family of families) {
    for (const site of sites) {
      for (const event of events) {
        for (const [label, periodDays] of periodsOf(days)) {
          const prefix = prefixOf(family, site, event);
          const key = `${prefix}${label}`;
          const dayKeys = periodDays.map((d) => `${prefix}${d}`);
          if (!isNonEmpty(dayKeys)) throw new Error(`no days in ${label}`);
          if ((await redis.exists(...dayKeys)) === 0) {
            expect(await redis.exists(key), `${key}: none of its days exists`).toBe(0);
            continue;
          }
          const reference = `ref:{site_id=${site}}:${key}`;
          await redis.del(reference);
          await redis.pfmerge(reference, ...dayKeys);
          expect(
            await redis.pfcount(...dayKeys),
            `${key}: its days count something`,
          ).toBeGreaterThan(0);
          expect(
            hllSame(await redis.getBuffer(key), await redis.getBuffer(reference)),
            `${key} equals the union of its ${dayKeys.length} days`,
          ).toBe(true);
          await redis.del(reference);
          seen[family].push(key);
        }
      }
    }
  }
  return seen;
}

async function snapshot(keys: readonly string[]): Promise<Map<string, Buffer | null>> {
  const out = new Map<string, Buffer | null>();
  for (const key of keys) out.set(key, await redis.getBuffer(key));
  return out;
}

async function expectUnchanged(before: Map<string, Buffer | null>, what: string) {
  for (const [key, value] of await snapshot([...before.keys()])) {
    expect(hllSame(value, before.get(key) ?? null), `${key} unchanged by ${what}`).toBe(true);
  }
}

/** Deletes a site's `ev:` day keys before a day: history from before the events metric. */
async function forgetEventsBefore(site: string, firstDay: string) {
  const old = (await scanKeys(`ev:{site_id=${site}}:*`)).filter(
    (key) => /:\d{4}-\d{2}-\d{2}$/.test(key) && key.slice(-10) < firstDay,
  );
  if (old.length > 0) await Promise.all(old.map((key) => redis.del(key)));
  return old.length;
}

// 25 days to the test clock's day: two months and five ISO weeks (tests' own calendar).
const DAYS = Array.from({ length: 25 }, (_, i) => daysAgo(24 - i, now));
const EVENTS = ["view", "purchase"] as const;

/**
 * Per site and day: a few users, each with events with and without `event_id`; some ids repeat
 * on another day (the same event delivered again later), so a period's union is less than the
 * sum of its days.
 */
function traffic(sites: readonly string[]): Event[] {
  const events: Event[] = [];
  for (const site of sites) {
    for (const [d, day] of DAYS.entries()) {
      for (let i = 0; i < 12; i++) {
        const event = EVENTS[i % EVENTS.length] ?? "view";
        const base = { user_id: `u${(d * 5 + i) % 40}`, site_id: site, event };
        events.push({ ...base, event_time: `${day} 0${i % 10}:00:00` });
        events.push({
          ...base,
          event_time: `${day} 1${i % 10}:30:00`,
          event_id: `${site}-e${(d % 20) * 12 + i}`,
        });
      }
    }
  }
  return events;
}

describe("rollup of the events metric (ev: keys)", () => {
  it("scheduled: every ev: week and month equals the union of its days, in small pages, counted once", async () => {
    const sites = ["evA", "evB"];
    await consume(traffic(sites));
    // evB began recording events on the Monday after the first day: its ev: days before are
    // history from before the change, so its weeks and months hold only the days that exist.
    const firstWeek = isoWeekLabel(dayNumber(DAYS[0] ?? ""));
    const since = DAYS.find((d) => isoWeekLabel(dayNumber(d)) !== firstWeek) ?? "";
    expect(await forgetEventsBefore("evB", since)).toBeGreaterThan(0);

    // Pages of 7 items: many period keys (a month has up to 25 touched days here) straddle
    // pages, and each is still counted once.
    const output = await rollup({}, { minPageSize: 7 });
    const seen = await expectUnionOfDays(FAMILIES, sites, DAYS, [undefined, ...EVENTS]);
    expect(seen.ev.length, "ev: weeks and months written").toBeGreaterThan(0);
    expect(seen.ev.length).toBeLessThan(seen.uv.length);
    expect(output.keysWritten, "keysWritten counts the period keys of both families").toBe(
      seen.uv.length + seen.ev.length,
    );
    expect(output.keysRemoved).toBe(0);
    // evB's first week, which ended before `since`, has its uv: key and no ev: key at all.
    expect(await redis.exists(`uv:{site_id=evB}:${firstWeek}`)).toBe(1);
    expect(await scanKeys(`ev:{site_id=evB}:*${firstWeek}`)).toEqual([]);
    expect(await cardOfEveryGroup(redis, "touched")).toBe(0);
    expect(await rollupLeftovers(redis)).toEqual([]);
  });

  it("backfill: recomputes ev: weeks and months from their days, replacing what they held", async () => {
    const sites = ["bfA"];
    await consume(traffic(sites));
    await rollup({});
    // Data no day holds, in one ev: week and one ev: month: only a recompute from the days
    // removes it (a merge keeps whatever the destination held).
    const week = isoWeekLabel(dayNumber(DAYS[24] ?? ""));
    const month = (DAYS[0] ?? "").slice(0, 7);
    for (const label of [week, month]) {
      expect(await redis.pfadd(`ev:{site_id=bfA}:${label}`, "stray-1", "stray-2")).toBe(1);
    }
    const output = await rollup({ from: DAYS[0], to: DAYS[24] });
    const seen = await expectUnionOfDays(FAMILIES, sites, DAYS, [undefined, ...EVENTS]);
    expect(seen.ev).toContain(`ev:{site_id=bfA}:${week}`);
    expect(seen.ev).toContain(`ev:{site_id=bfA}:${month}`);
    // Every week and month overlapping the range, both families (all have days here).
    expect(output.keysWritten).toBe(seen.uv.length + seen.ev.length);
    expect(seen.ev.length).toBe(seen.uv.length);
    expect(await scanKeys("*:rebuild")).toEqual([]);
  });

  it("re-running changes no register of either family: a replayed batch, scheduled, backfill", async () => {
    const sites = ["idem"];
    const batch = await consume(traffic(sites));
    await rollup({});
    const periodKeys = [...periodsOf(DAYS).keys()].flatMap((label) =>
      FAMILIES.flatMap((family) =>
        [undefined, ...EVENTS].map((e) => `${prefixOf(family, "idem", e)}${label}`),
      ),
    );
    const before = await snapshot(periodKeys);
    expect([...before.values()].every((value) => value !== null)).toBe(true);

    // The same batch again (a retried delivery): it touches every day again, adds nothing.
    await replay(batch);
    expect(await cardOfEveryGroup(redis, "touched")).toBeGreaterThan(0);
    const scheduled = await rollup({});
    expect(scheduled.itemsMerged).toBeGreaterThan(0);
    await expectUnchanged(before, "a scheduled run after a replayed batch");
    expect((await rollup({})).itemsMerged, "nothing touched, nothing merged").toBe(0);
    for (let run = 0; run < 2; run++) {
      await rollup({ from: DAYS[0], to: DAYS[24] });
      await expectUnchanged(before, `backfill ${run + 1}`);
    }
    await expectUnionOfDays(FAMILIES, sites, DAYS, [undefined, ...EVENTS]);
  });
});

describe("history written before the events metric (uv: days, no ev: days)", () => {
  it("rolls up, scheduled and backfill, without error and without creating any ev: key", async () => {
    const sites = ["legacyA", "legacyB"];
    await consume(traffic(sites));
    for (const site of sites) await forgetEventsBefore(site, "9999-12-31");
    expect(await scanKeys("ev:*")).toEqual([]);

    const scheduled = await rollup({});
    expect(await scanKeys("ev:*"), "no ev: key after a scheduled run").toEqual([]);
    const seen = await expectUnionOfDays(["uv"], sites, DAYS, [undefined, ...EVENTS]);
    expect(scheduled.keysWritten).toBe(seen.uv.length);

    const backfill = await rollup({ from: DAYS[0], to: DAYS[24] });
    expect(await scanKeys("ev:*"), "no ev: key after a backfill").toEqual([]);
    expect(backfill.keysWritten).toBe(seen.uv.length);
    expect(backfill.keysRemoved).toBe(0);
    await expectUnionOfDays(["uv"], sites, DAYS, [undefined, ...EVENTS]);
  });

  it("writes nothing for a touched day whose keys expired before the run", async () => {
    // What the consumer noted for a day whose uv: and ev: keys are gone (expired, or the run
    // came later than their retention): the run merges nothing, and creates no empty key.
    const day = DAYS[3] ?? "";
    await redis.sadd(touchedKey(groupOfSite("gone")), `gone|${day}`, `gone|${day}|view`);
    const output = await rollup({});
    expect(output.itemsMerged).toBe(4);
    expect(output.keysWritten).toBe(0);
    expect(await scanKeys("*{site_id=gone}*")).toEqual([]);
  });

  it("backfill removes an ev: period key none of whose days exists, as for uv:", async () => {
    // A week and month whose days are all within retention and hold nothing: what the period
    // keys hold came from days since deleted, so the recompute drops them (both families).
    const day = DAYS[24] ?? "";
    const week = isoWeekLabel(dayNumber(day));
    const stale = FAMILIES.map((family) => `${family}:{site_id=stale}:${week}`);
    for (const key of stale) await redis.pfadd(key, "from-a-deleted-day");
    await redis.sadd(sitesKey(groupOfSite("stale")), "stale");
    const output = await rollup({ from: day, to: day });
    expect(output.keysRemoved).toBe(2);
    expect(output.keysWritten).toBe(0);
    expect(await scanKeys("*{site_id=stale}*")).toEqual([]);
  });
});
