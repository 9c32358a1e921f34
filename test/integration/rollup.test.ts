/**
 * The rollup workflow, run for real: the ASL file executed by aws-local-stepfunctions with the
 * real handlers, against a real Redis Cluster of its own (the rollup's lock and bookkeeping
 * keys are global, so this file does not share them with the others). Data is written by the
 * real consumer handler. Day lists of weeks and months come from the tests' own calendar.
 */

import { Cluster } from "ioredis";
import * as v from "valibot";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { mulberry32 } from "../../cli/generator.js";
import { createConsumerHandler } from "../../functions/consumer/handler.js";
import { at, isNonEmpty } from "../../functions/domain/arrays.js";
import {
  BOOKKEEPING_GROUPS,
  everyGroupKey,
  groupOfSite,
  LOCK_KEY,
  pendingKey,
  touchedKey,
} from "../../functions/domain/keys.js";
import { createRollupHandlers, type RollupHandlers } from "../../functions/rollup/handler.js";
import { type RunningRedisCluster, startRedisCluster } from "../../local/redis-cluster.js";
import { type LocalRollupResult, runRollupLocally } from "../../state-machines/local-runner.js";
import { cardOfEveryGroup, membersOfEveryGroup, rollupLeftovers } from "../helpers/bookkeeping.js";
import { DAY_MS, testNowMs, utcDay } from "../helpers/clock.js";
import { hllSame } from "../helpers/hll.js";
import { kinesisEvent } from "../helpers/kinesis.js";
import { onMergeCall } from "../helpers/rollup-faults.js";
import { checked } from "../helpers/schema.js";
import {
  dayLabel,
  dayNumber,
  daysFromCivil,
  isoWeekLabel,
  weekdayOfDayNumber,
} from "../unit/calendar.js";

const EVENTS = ["view", "like", "cart", "purchase"] as const;

let cluster: RunningRedisCluster;
let redis: Cluster;
let env: Record<string, string>;

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

interface Event {
  readonly user_id: string;
  readonly site_id: string;
  readonly event: string;
  readonly event_time: string;
}

/** What the rollup's Finish step answers after a successful run: the parts these tests read. */
const RollupOutputSchema = v.object({
  periods: v.array(v.string()),
  sitesMerged: v.number(),
  itemsMerged: v.number(),
  keysWritten: v.number(),
});

function rollupOutput(result: LocalRollupResult): v.InferOutput<typeof RollupOutputSchema> {
  return checked(RollupOutputSchema, result.output, "the rollup's output");
}

async function consume(
  events: readonly Event[],
  extraEnv: Record<string, string> = {},
  nowMs?: number,
) {
  const now = nowMs ?? testNowMs();
  const handler = createConsumerHandler({ ...env, ...extraEnv }, { now: () => now });
  try {
    for (let i = 0; i < events.length; i += 10_000) {
      const result = await handler(kinesisEvent(events.slice(i, i + 10_000)));
      expect(result.batchItemFailures).toEqual([]);
    }
  } finally {
    handler.close();
  }
}

/** Every week and month overlapping the days, with all of their days (tests' own calendar). */
function periodsOf(days: readonly string[]): Map<string, string[]> {
  const numbers = days.map(dayNumber);
  const periods = new Map<string, string[]>();
  const wanted = new Set<string>();
  for (const z of numbers) {
    wanted.add(isoWeekLabel(z));
    wanted.add(dayLabel(z).slice(0, 7));
  }
  for (let z = Math.min(...numbers) - 40; z <= Math.max(...numbers) + 40; z++) {
    for (const label of [isoWeekLabel(z), dayLabel(z).slice(0, 7)]) {
      if (!wanted.has(label)) continue;
      const list = periods.get(label) ?? [];
      list.push(dayLabel(z));
      periods.set(label, list);
    }
  }
  return periods;
}

/** The two HLL families the consumer writes and the rollup merges: visitors and events. */
const FAMILIES = ["uv", "ev"] as const;

/**
 * Checks every week and month key of the sites, in both families: PFCOUNT equals PFCOUNT of the
 * union of its day keys, and the registers equal an independent PFMERGE of the days done here.
 * Returns how many period keys it checked (those with at least one day), per family.
 */
async function expectRolledUp(
  sites: readonly string[],
  days: readonly string[],
  events: readonly (string | undefined)[],
) {
  const checked = { uv: 0, ev: 0 };
  for (const family of FAMILIES) {
    for (const site of sites) {
      for (const [label, periodDays] of periodsOf(days)) {
        for (const event of events) {
          const prefix = event
            ? `${family}:{site_id=${site}}:event=${event}:`
            : `${family}:{site_id=${site}}:`;
          const dayKeys = periodDays.map((d) => `${prefix}${d}`);
          if (!isNonEmpty(dayKeys)) throw new Error(`no days in ${label}`);
          if ((await redis.exists(...dayKeys)) === 0) continue;
          const key = `${prefix}${label}`;
          const ref = `ref:${key}`;
          await redis.del(ref);
          await redis.pfmerge(ref, ...dayKeys);
          const [count, unionCount] = [await redis.pfcount(key), await redis.pfcount(...dayKeys)];
          expect(unionCount, `${key}: its days count something`).toBeGreaterThan(0);
          expect(count, `PFCOUNT ${key} = PFCOUNT of its ${dayKeys.length} days`).toBe(unionCount);
          expect(
            hllSame(await redis.getBuffer(key), await redis.getBuffer(ref)),
            `${key} equals the reference merge`,
          ).toBe(true);
          checked[family]++;
        }
      }
    }
  }
  return checked;
}

async function snapshot(keys: readonly string[]): Promise<Map<string, Buffer | null>> {
  const out = new Map<string, Buffer | null>();
  for (const key of keys) out.set(key, await redis.getBuffer(key));
  return out;
}

async function totalKeys(): Promise<number> {
  let n = 0;
  for (const port of cluster.ports) {
    const node = redis.nodes("master").find((m) => m.options.port === port);
    if (node) n += await node.dbsize();
  }
  return n;
}

describe("rollup over 60 days and 50 sites", () => {
  const now = testNowMs();
  const days = Array.from({ length: 60 }, (_, i) => utcDay(now - (59 - i) * DAY_MS));
  const sites = Array.from({ length: 50 }, (_, i) => `big${i}`);
  /** The (site, day) and (site, day, event) pairs the data touches. */
  const touched = new Set<string>();

  beforeAll(async () => {
    const random = mulberry32(7);
    const events: Event[] = [];
    for (const site of sites) {
      for (const day of days) {
        const n = 5 + Math.floor(random() * 20);
        for (let i = 0; i < n; i++) {
          events.push({
            user_id: `u-${Math.floor(random() * 400)}`,
            site_id: site,
            event: at(EVENTS, Math.floor(random() * EVENTS.length), "event type"),
            event_time: `${day} ${String(Math.floor(random() * 24)).padStart(2, "0")}:15:00`,
          });
        }
      }
    }
    for (const e of events) {
      touched.add(`${e.site_id}|${e.event_time.slice(0, 10)}`);
      touched.add(`${e.site_id}|${e.event_time.slice(0, 10)}|${e.event}`);
    }
    await consume(events);
  });

  it("merges every week and month of every site and event type, equal to a reference merge", async () => {
    // The consumer wrote each site's members to its group's touched set: the run reads many.
    expect(new Set(await membersOfEveryGroup(redis, "touched"))).toEqual(touched);
    const groups = await Promise.all(everyGroupKey("touched").map((key) => redis.scard(key)));
    expect(groups.filter((n) => n > 0).length).toBeGreaterThan(BOOKKEEPING_GROUPS / 2);
    for (const site of sites.slice(0, 5)) {
      expect(await redis.sismember(touchedKey(groupOfSite(site)), `${site}|${days[0]}`)).toBe(1);
    }
    const result = await runRollupLocally({
      env,
      input: {},
      startTime: new Date(now),
      fastTimers: true,
    });
    expect(result.status, result.cause).toBe("SUCCEEDED");
    const output = rollupOutput(result);
    expect(output.sitesMerged).toBe(50);
    // One merge per touched pair and period (its week and its month): only what changed.
    expect(output.itemsMerged).toBe(touched.size * 2);
    // keysWritten counts the week and month keys of both families; every event the consumer
    // counted went to both, so each uv: period key has its ev: twin.
    const checked = await expectRolledUp(sites, days, [undefined, ...EVENTS]);
    expect(checked.uv + checked.ev).toBe(output.keysWritten);
    expect(checked.ev).toBe(checked.uv);
    // Every group's touched set was drained and the bookkeeping cleared.
    expect(await cardOfEveryGroup(redis, "touched")).toBe(0);
    expect(await rollupLeftovers(redis)).toEqual([]);
  });

  it("re-running gives equal HLLs, and a scheduled run with nothing touched merges nothing", async () => {
    const keys = [...periodsOf(days).keys()].flatMap((label) =>
      FAMILIES.map((family) => `${family}:{site_id=big3}:${label}`),
    );
    const before = await snapshot(keys);
    const again = await runRollupLocally({
      env,
      input: {},
      startTime: new Date(now),
      fastTimers: true,
    });
    expect(again.status).toBe("SUCCEEDED");
    expect(rollupOutput(again).itemsMerged).toBe(0);
    const from = `${days[59]?.slice(0, 7)}-01`;
    for (let run = 0; run < 2; run++) {
      const backfill = await runRollupLocally({
        env,
        input: { from, to: days[59] },
        startTime: new Date(now),
        fastTimers: true,
      });
      expect(backfill.status, backfill.cause).toBe("SUCCEEDED");
    }
    for (const [key, value] of await snapshot(keys)) {
      const old = before.get(key) ?? null;
      if (old === null) continue;
      expect(hllSame(value, old), `${key} unchanged by re-runs`).toBe(true);
    }
  });

  it("reflects late data for a day three weeks back after the next scheduled run", async () => {
    const lateDay = at(days, 59 - 21, "day");
    const site = "big7";
    const week = isoWeekLabel(dayNumber(lateDay));
    const month = lateDay.slice(0, 7);
    const before = await snapshot(
      FAMILIES.flatMap((family) => [
        `${family}:{site_id=${site}}:${week}`,
        `${family}:{site_id=${site}}:${month}`,
      ]),
    );
    const late = Array.from({ length: 300 }, (_, i) => ({
      user_id: `late-${i}`,
      site_id: site,
      event: "purchase",
      event_time: `${lateDay} 09:00:00`,
    }));
    await consume(late);
    const result = await runRollupLocally({
      env,
      input: {},
      startTime: new Date(now),
      fastTimers: true,
    });
    expect(result.status).toBe("SUCCEEDED");
    expect(rollupOutput(result).periods.sort()).toEqual([month, week].sort());
    for (const [key, old] of await snapshot([...before.keys()])) {
      expect(hllSame(old, before.get(key) ?? null), `${key} changed`).toBe(false);
    }
    await expectRolledUp([site], [lateDay], [undefined, "purchase"]);
  });

  it("refuses a backfill whose periods have days past retention, writing nothing", async () => {
    const keysBefore = await totalKeys();
    const old = utcDay(now - 70 * DAY_MS);
    const result = await runRollupLocally({
      env,
      input: { from: old, to: days[59] },
      startTime: new Date(now),
      fastTimers: true,
    });
    expect(result.status).toBe("FAILED");
    expect(result.error).toBe("RollupInputError");
    expect(result.cause).toMatch(
      /past the 62-day retention of daily keys, so a rebuild would drop data/,
    );
    expect(await totalKeys()).toBe(keysBefore);
  });
});

/**
 * The first year after the test clock's whose 1 January is a Wednesday: its ISO week 1 starts
 * on Monday 30 December of the year before, as in 2025 (tests' own calendar).
 */
function nextYearStartingOnWednesday(): number {
  for (let y = new Date(testNowMs()).getUTCFullYear() + 1; ; y++) {
    if (weekdayOfDayNumber(daysFromCivil(y, 1, 1)) === 2) return y;
  }
}

describe("ISO week edges", () => {
  it("puts 30 December in week 1 of the next ISO year and its users in the right weeks and months", async () => {
    // A pinned clock on 10 January of such a year, after the test clock; a long daily
    // retention keeps the keys alive in real time.
    const y = nextYearStartingOnWednesday();
    const now = Date.UTC(y, 0, 10, 12);
    const extraEnv = { RETENTION_DAYS: "1000" };
    const site = "edge";
    const dec = (d: number) => `${y - 1}-12-${d}`;
    const jan = (d: number) => `${y}-01-0${d}`;
    const byDay: Record<string, string[]> = {
      [dec(29)]: ["a", "b"],
      [dec(30)]: ["c", "d"],
      [dec(31)]: ["e"],
      [jan(1)]: ["f", "g"],
      [jan(5)]: ["h"],
      [jan(6)]: ["i"],
    };
    const events = Object.entries(byDay).flatMap(([day, users]) =>
      users.map((user_id) => ({
        user_id,
        site_id: site,
        event: "view",
        event_time: `${day} 10:00:00`,
      })),
    );
    await consume(events, extraEnv, now);
    const result = await runRollupLocally({
      env: { ...env, ...extraEnv },
      input: {},
      startTime: new Date(now),
      fastTimers: true,
    });
    expect(result.status, result.cause).toBe("SUCCEEDED");
    const count = (label: string) => redis.pfcount(`uv:{site_id=${site}}:${label}`);
    // 29 December is a Sunday: the last week of year y - 1 (52 or 53, by the calendar).
    const lastWeek = isoWeekLabel(dayNumber(dec(29)));
    expect(lastWeek.startsWith(`${y - 1}-W5`)).toBe(true);
    expect(await count(lastWeek)).toBe(2);
    expect(await count(`${y}-W01`)).toBe(6); // Monday 30 December to Sunday 5 January
    expect(await count(`${y}-W02`)).toBe(1);
    expect(await count(`${y - 1}-12`)).toBe(5);
    expect(await count(`${y}-01`)).toBe(4);
    expect(await redis.exists(`uv:{site_id=${site}}:${y - 1}-W01`)).toBe(0);
    await expectRolledUp([site], Object.keys(byDay), [undefined, "view"]);
  });
});

/** Records when each execution's merges ran and what its plans answered. */
function timedHandlers(
  label: string,
  log: { label: string; start: number; end: number }[],
  plans: { label: string; status: string }[],
): RollupHandlers {
  const inner = createRollupHandlers(env);
  return {
    ...inner,
    async plan(event) {
      const out = await inner.plan(event);
      plans.push({ label, status: out.status });
      return out;
    },
    async merge(event) {
      const start = performance.now();
      // Slow pages: without the lock, the other execution's plan would finish meanwhile and
      // its merges would overlap these.
      await new Promise((resolve) => setTimeout(resolve, 400));
      try {
        return await inner.merge(event);
      } finally {
        log.push({ label, start, end: performance.now() });
      }
    },
  };
}

describe("exclusive and crash-safe", () => {
  const now = testNowMs();
  const day = utcDay(now);
  const days = [day, utcDay(now - 10 * DAY_MS)];

  async function touchSites(sites: readonly string[], users: number) {
    const events: Event[] = [];
    for (const site of sites) {
      for (const d of days) {
        for (let i = 0; i < users; i++) {
          events.push({
            user_id: `x${i}`,
            site_id: site,
            event: at(EVENTS, i % 4, "event type"),
            event_time: `${d} 11:00:00`,
          });
        }
      }
    }
    await consume(events);
  }

  it("runs two executions started together one after the other, losing nothing", async () => {
    const sites = Array.from({ length: 40 }, (_, i) => `ex${i}`);
    await touchSites(sites, 30);
    const log: { label: string; start: number; end: number }[] = [];
    const plans: { label: string; status: string }[] = [];
    const [a, b] = await Promise.all([
      runRollupLocally({
        env,
        input: {},
        handlers: timedHandlers("a", log, plans),
        startTime: new Date(now),
        fastTimers: true,
        executionName: "a",
      }),
      runRollupLocally({
        env,
        input: { from: `${day.slice(0, 7)}-01`, to: day },
        handlers: timedHandlers("b", log, plans),
        startTime: new Date(now),
        fastTimers: true,
        executionName: "b",
      }),
    ]);
    expect(a.status, a.cause).toBe("SUCCEEDED");
    expect(b.status, b.cause).toBe("SUCCEEDED");
    const spans = (label: string) => log.filter((e) => e.label === label);
    expect(spans("a").length).toBeGreaterThan(0);
    expect(spans("b").length).toBeGreaterThan(0);
    const [first, second]: [string, string] =
      Math.min(...spans("a").map((e) => e.start)) < Math.min(...spans("b").map((e) => e.start))
        ? ["a", "b"]
        : ["b", "a"];
    const firstEnd = Math.max(...spans(first).map((e) => e.end));
    const secondStart = Math.min(...spans(second).map((e) => e.start));
    expect(firstEnd, "no merge of the second execution while the first merges").toBeLessThanOrEqual(
      secondStart,
    );
    // The second one was held off by the lock, then ran: it waited rather than overlapped.
    expect(plans.filter((p) => p.label === second && p.status === "busy").length).toBeGreaterThan(
      0,
    );
    expect(plans.filter((p) => p.label === first && p.status === "busy")).toEqual([]);
    await expectRolledUp(sites, days, [undefined, ...EVENTS]);
  });

  it("completes after a crash in the middle of a page, equal to the fault-free result", async () => {
    const sites = Array.from({ length: 30 }, (_, i) => `crash${i}`);
    await touchSites(sites, 25);
    let merges = 0;
    let crashes = 0;
    const crashing = (failAlways: boolean) =>
      createRollupHandlers(env, {
        settings: { minPageSize: 40 },
        wrapRedis: onMergeCall((call) => {
          merges = call;
          // From the 10th merge call (a page's sites are a few calls): every one, or only once.
          if (merges >= 10 && (failAlways || crashes === 0)) {
            crashes++;
            throw new Error(`injected crash after ${merges} merge calls`);
          }
        }),
      });

    // Every attempt crashes: the execution fails, the lock is freed, the pending work stays.
    const failing = crashing(true);
    const failed = await runRollupLocally({
      env,
      input: {},
      handlers: failing,
      startTime: new Date(now),
      fastTimers: true,
    });
    failing.close();
    expect(failed.status).toBe("FAILED");
    expect(failed.cause).toMatch(/injected crash/);
    expect(await redis.exists(LOCK_KEY)).toBe(0);
    expect(await cardOfEveryGroup(redis, "pending")).toBeGreaterThan(0);

    // The next run crashes once mid-page; the Map's Retry finishes it.
    crashes = 0;
    const once = crashing(false);
    const recovered = await runRollupLocally({
      env,
      input: {},
      handlers: once,
      startTime: new Date(now),
      fastTimers: true,
    });
    once.close();
    expect(crashes).toBe(1);
    expect(recovered.status, recovered.cause).toBe("SUCCEEDED");
    expect(await rollupLeftovers(redis)).toEqual([]);
    await expectRolledUp(sites, days, [undefined, ...EVENTS]);
  });

  it("pages the work: many small pages give the same result", async () => {
    const sites = Array.from({ length: 60 }, (_, i) => `page${i}`);
    await touchSites(sites, 5);
    const handlers = createRollupHandlers(env, { settings: { minPageSize: 25, maxPages: 1000 } });
    const result = await runRollupLocally({
      env,
      input: {},
      handlers,
      startTime: new Date(now),
      fastTimers: true,
    });
    handlers.close();
    expect(result.status, result.cause).toBe("SUCCEEDED");
    const output = rollupOutput(result);
    // 60 sites x 2 days x (site + 4 events) -> weeks and months; at most 25 items a page.
    expect(output.itemsMerged).toBeGreaterThan(25 * 10);
    await expectRolledUp(sites, days, [undefined, ...EVENTS]);
  });
});

describe("bad input", () => {
  const cases: [string, unknown, RegExp][] = [
    ["not an object", "yesterday", /must be a JSON object/],
    ["unknown field", { form: "2024-03-01" }, /unknown rollup input field\(s\) form/],
    ["only from", { from: "2024-03-01" }, /needs both "from" and "to"/],
    [
      "impossible date",
      { from: "2024-02-30", to: "2024-03-01" },
      /"from": "2024-02-30" is not a calendar date/,
    ],
    ["reversed range", { from: "2024-03-09", to: "2024-03-01" }, /is before "from"/],
  ];
  for (const [name, input, cause] of cases) {
    it(`fails clearly and writes nothing: ${name}`, async () => {
      await redis.sadd(touchedKey(groupOfSite("keep")), "keep|2024-03-09");
      const keysBefore = await totalKeys();
      const result = await runRollupLocally({
        env,
        input,
        startTime: new Date(testNowMs()),
        fastTimers: true,
      });
      expect(result.status).toBe("FAILED");
      expect(result.error).toBe("RollupInputError");
      expect(result.cause).toMatch(cause);
      expect(await totalKeys()).toBe(keysBefore);
      expect(await redis.sismember(touchedKey(groupOfSite("keep")), "keep|2024-03-09")).toBe(1);
      expect(await redis.exists(LOCK_KEY)).toBe(0);
      await redis.srem(touchedKey(groupOfSite("keep")), "keep|2024-03-09");
    });
  }

  it("fails the plan on a touched member no consumer writes, naming it and how to remove it; the next run after that merges the rest", async () => {
    const group = groupOfSite("hand");
    const good = `hand|${utcDay(testNowMs())}`;
    const bad = "hand|2024-03-09|";
    await redis.sadd(touchedKey(group), good, bad);
    const run = () =>
      runRollupLocally({ env, input: {}, startTime: new Date(testNowMs()), fastTimers: true });
    const failed = await run();
    expect(failed.status).toBe("FAILED");
    expect(failed.error).toBe("RollupPlanError");
    expect(failed.cause).toContain(
      `${pendingKey(group)} holds "${bad}", which the consumer never writes`,
    );
    expect(failed.cause).toContain(`redis-cli -c SREM '${pendingKey(group)}' '${bad}'`);
    // Nothing lost: both wait in the pending set; the lock is free.
    expect((await redis.smembers(pendingKey(group))).sort()).toEqual([bad, good].sort());
    expect(await redis.exists(LOCK_KEY)).toBe(0);

    await redis.srem(pendingKey(group), bad);
    const next = await run();
    expect(next.status, next.cause).toBe("SUCCEEDED");
    expect(rollupOutput(next).itemsMerged).toBe(2);
    expect(await rollupLeftovers(redis)).toEqual([]);
  });
});
