/**
 * The rollup's bookkeeping spread over slot groups (functions/domain/keys.ts), on a 3-primary
 * Redis Cluster of this file's own (the rollup's lock and sets are global), with the consumer
 * and the rollup connected as their least-privilege ACL users:
 *
 * - the groups' hash tags sit exactly at slots group * 1024 + 512, as the cluster computes them;
 * - at 10^5 sites (each site's touched and site-index members as the real consumer's planBatch
 *   groups them, SADDed to the same keys; then the real plan's pending and work sets), the
 *   busiest primary holds within 1.5x of the mean bookkeeping memory (MEMORY USAGE of every
 *   group key, summed per primary);
 * - a scheduled run over 2,000 sites merges exactly what was touched, and every week and month
 *   key equals, register for register, a PFMERGE of its days;
 * - a run that crashes in the middle of a page leaves everything pending; the next run
 *   completes it;
 * - the single-slot sets of older versions (`sketchstream:{rollup}:…`), seeded as the old code
 *   wrote them, are drained by the next run, and an execution planned by the old code finishes
 *   under the new one.
 */

import { Cluster, type Redis } from "ioredis";
import * as v from "valibot";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createConsumerHandler } from "../../functions/consumer/handler.js";
import { planBatch } from "../../functions/consumer/ingest.js";
import { ACL_RULES } from "../../functions/domain/acl.js";
import {
  BOOKKEEPING_GROUP_IDS,
  BOOKKEEPING_KINDS,
  bookkeepingKey,
  everyGroupKey,
  groupOfSite,
  LEGACY_PENDING_KEY,
  LEGACY_SITES_KEY,
  LEGACY_TOUCHED_KEY,
  LEGACY_WORK_KEY,
  LOCK_KEY,
  pendingKey,
  siteEventTypesKey,
  sitesKey,
  touchedKey,
  workKey,
} from "../../functions/domain/keys.js";
import { DEFAULT_RETENTION } from "../../functions/domain/runtime-env.js";
import { listSites } from "../../functions/read/catalog.js";
import { createRollupHandlers } from "../../functions/rollup/handler.js";
import { type RunningRedisCluster, startRedisCluster } from "../../local/redis-cluster.js";
import { type LocalRollupResult, runRollupLocally } from "../../state-machines/local-runner.js";
import {
  cardOfEveryGroup,
  legacyLeft,
  membersOfEveryGroup,
  rollupLeftovers,
} from "../helpers/bookkeeping.js";
import { DAY_MS, testNowMs, utcDay } from "../helpers/clock.js";
import { hllSame } from "../helpers/hll.js";
import { kinesisEvent } from "../helpers/kinesis.js";
import { onMergeCall } from "../helpers/rollup-faults.js";
import { checked } from "../helpers/schema.js";
import { dayNumber, isoWeekLabel } from "../unit/calendar.js";

const CONSUMER = { name: "consumer", password: `c-${Math.random().toString(36).slice(2)}` };
const ROLLUP = { name: "rollup", password: `r-${Math.random().toString(36).slice(2)}` };

const now = testNowMs();
const today = utcDay(now);
const earlier = utcDay(now - 10 * DAY_MS);
const FAMILIES = ["uv", "ev"] as const;

let cluster: RunningRedisCluster;
let admin: Cluster;

beforeAll(async () => {
  cluster = await startRedisCluster({
    primaries: 3,
    users: [
      { ...CONSUMER, rules: ACL_RULES.consumer },
      { ...ROLLUP, rules: ACL_RULES.rollup },
    ],
  });
  admin = new Cluster([{ host: "127.0.0.1", port: cluster.port }]);
});

afterAll(async () => {
  admin?.disconnect();
  await cluster?.stop();
});

function envAs(user: { name: string; password: string }): Record<string, string> {
  return {
    REDIS_ENDPOINT: cluster.endpoint,
    REDIS_TLS: "false",
    REDIS_AUTH: "password",
    REDIS_USER: user.name,
    REDIS_PASSWORD: user.password,
    QUARANTINE_FILE: `${cluster.dir}/quarantine.jsonl`,
  };
}

const RollupOutput = v.object({ itemsMerged: v.number(), keysWritten: v.number() });

async function scheduledRun(
  options: Partial<Parameters<typeof runRollupLocally>[0]> = {},
): Promise<LocalRollupResult> {
  return runRollupLocally({
    env: envAs(ROLLUP),
    input: {},
    startTime: new Date(now),
    fastTimers: true,
    ...options,
  });
}

/** The primary (host:port) that serves a key's slot, by the cluster's own CLUSTER KEYSLOT. */
async function primaryOf(key: string): Promise<string> {
  const slot = Number(await admin.cluster("KEYSLOT", key));
  const owner = admin.slots[slot]?.[0];
  if (owner === undefined) throw new Error(`no primary for slot ${slot} of ${key}`);
  return owner;
}

function node(address: string): Redis {
  const found = admin
    .nodes("master")
    .find((n) => `${n.options.host}:${n.options.port}` === address);
  if (!found) throw new Error(`no primary ${address}`);
  return found;
}

/** MEMORY USAGE (exact: SAMPLES 0) of every group key, summed per primary; every primary listed. */
async function bookkeepingBytesPerPrimary(): Promise<Map<string, number>> {
  const perPrimary = new Map<string, number>(
    admin.nodes("master").map((n) => [`${n.options.host}:${n.options.port}`, 0]),
  );
  const keys = BOOKKEEPING_KINDS.flatMap((kind) => everyGroupKey(kind));
  for (const key of keys) {
    const primary = await primaryOf(key);
    const bytes = await node(primary).call("MEMORY", "USAGE", key, "SAMPLES", "0");
    perPrimary.set(primary, (perPrimary.get(primary) ?? 0) + Number(bytes ?? 0));
  }
  return perPrimary;
}

function busiestOverMean(perPrimary: Map<string, number>): number {
  const values = [...perPrimary.values()];
  const mean = values.reduce((a, b) => a + b, 0) / values.length;
  return Math.max(...values) / mean;
}

/** The week and month labels of days, each with the days (of these) it holds. */
function periodsOf(days: readonly string[]): Map<string, string[]> {
  const periods = new Map<string, string[]>();
  for (const day of days) {
    for (const label of [isoWeekLabel(dayNumber(day)), day.slice(0, 7)]) {
      periods.set(label, [...(periods.get(label) ?? []), day]);
    }
  }
  return periods;
}

/**
 * Every week and month key of the sites over these days, both families, with and without the
 * event types, compared register for register with a PFMERGE of its day keys done here (into a
 * scratch key in the same slot). Returns the keys that differ, and how many were compared.
 */
async function differingFromDays(
  sites: readonly string[],
  days: readonly string[],
  events: readonly (string | undefined)[],
): Promise<{ differ: string[]; compared: number }> {
  const checks: { key: string; days: string[] }[] = [];
  for (const site of sites) {
    for (const family of FAMILIES) {
      for (const event of events) {
        const prefix = `${family}:{site_id=${site}}:${event ? `event=${event}:` : ""}`;
        for (const [label, periodDays] of periodsOf(days)) {
          checks.push({ key: `${prefix}${label}`, days: periodDays.map((d) => `${prefix}${d}`) });
        }
      }
    }
  }
  const differ: string[] = [];
  for (let i = 0; i < checks.length; i += 2000) {
    const results = await Promise.all(
      checks.slice(i, i + 2000).map(async ({ key, days: dayKeys }) => {
        const reference = `${key}:reference`;
        await admin.pfmerge(reference, ...dayKeys);
        const [got, want] = await Promise.all([
          admin.getBuffer(key),
          admin.getBuffer(reference),
          admin.unlink(reference),
        ]);
        return hllSame(got, want) ? undefined : key;
      }),
    );
    for (const key of results) if (key !== undefined) differ.push(key);
  }
  return { differ, compared: checks.length };
}

/** Events of each site on each day: `users` users, alternating view and cart. */
function trafficOf(sites: readonly string[], days: readonly string[], users: number) {
  return sites.flatMap((site) =>
    days.flatMap((day) =>
      Array.from({ length: users }, (_, u) => ({
        user_id: `${site}-u${u}`,
        site_id: site,
        event: u % 2 === 0 ? "view" : "cart",
        event_time: `${day} 09:00:00`,
      })),
    ),
  );
}

async function consume(payloads: readonly object[]): Promise<void> {
  const handler = createConsumerHandler(envAs(CONSUMER), { now: () => now });
  try {
    for (let i = 0; i < payloads.length; i += 5000) {
      const result = await handler(kinesisEvent(payloads.slice(i, i + 5000)));
      expect(result.batchItemFailures).toEqual([]);
    }
  } finally {
    handler.close();
  }
}

async function flushAll(): Promise<void> {
  await Promise.all(admin.nodes("master").map((n) => n.flushall()));
}

describe("slot groups", () => {
  it("put each group's tag at slot group * 1024 + 512, as the cluster computes it", async () => {
    const slots: number[] = [];
    for (const group of BOOKKEEPING_GROUP_IDS) {
      const kinds = await Promise.all(
        BOOKKEEPING_KINDS.map(async (kind) =>
          Number(await admin.cluster("KEYSLOT", bookkeepingKey(kind, group))),
        ),
      );
      expect(new Set(kinds).size, `group ${group}: its four sets share a slot`).toBe(1);
      slots.push(kinds[0] ?? -1);
    }
    expect(slots).toEqual(BOOKKEEPING_GROUP_IDS.map((g) => g * 1024 + 512));
    // Evenly spaced: a cluster's equal slot ranges hold 5 or 6 groups each on 3 primaries.
    const perPrimary = new Map<string, number>();
    for (const key of everyGroupKey("touched")) {
      const primary = await primaryOf(key);
      perPrimary.set(primary, (perPrimary.get(primary) ?? 0) + 1);
    }
    expect([...perPrimary.values()].sort()).toEqual([5, 5, 6]);
  });

  it("at 10^5 sites, the busiest primary holds within 1.5x of the mean bookkeeping memory", async () => {
    await flushAll();
    const sites = 100_000;
    // What the consumer SADDs for one event of each site (test/unit/bookkeeping-groups.test.ts
    // checks planBatch's SADDs): SADDed straight to the same keys, its PFADDs left out (this
    // is about the bookkeeping). One batch of planBatch first, to check the keys match.
    const sample = planBatch(
      [0, 1, 2].map((i) => ({
        sequenceNumber: String(i),
        partitionKey: "p",
        data: Buffer.from(
          JSON.stringify({
            user_id: "u",
            site_id: `s${i}`,
            event: "view",
            event_time: `${today} 09:00:00`,
          }),
        ).toString("base64"),
      })),
      { nowMs: now, retention: DEFAULT_RETENTION },
    ).commands.flatMap((c) =>
      c.name === "sadd" && c.key.startsWith("sketchstream:{rollup-")
        ? [{ key: c.key, args: c.args }]
        : [],
    );
    const byKey = new Map<string, string[]>();
    const add = (key: string, ...members: string[]) => {
      const list = byKey.get(key) ?? [];
      list.push(...members);
      byKey.set(key, list);
    };
    for (let i = 0; i < sites; i++) {
      const site = `s${i}`;
      const group = groupOfSite(site);
      add(touchedKey(group), `${site}|${today}`, `${site}|${today}|view`);
      add(sitesKey(group), site, `${site}|view`);
    }
    for (const { key, args: members } of sample)
      expect(byKey.get(key)).toEqual(expect.arrayContaining([...members]));
    await Promise.all(
      [...byKey].flatMap(([key, members]) => {
        const chunks: Promise<number>[] = [];
        for (let i = 0; i < members.length; i += 10_000) {
          chunks.push(admin.sadd(key, ...members.slice(i, i + 10_000)));
        }
        return chunks;
      }),
    );
    expect(await cardOfEveryGroup(admin, "touched")).toBe(2 * sites);
    expect(await cardOfEveryGroup(admin, "sites")).toBe(2 * sites);
    const ingested = await bookkeepingBytesPerPrimary();
    expect(busiestOverMean(ingested), JSON.stringify([...ingested])).toBeLessThanOrEqual(1.5);

    // The plan of a scheduled run, as the rollup user: pending and work sets, an item per
    // pending member (2 a site).
    const handlers = createRollupHandlers(envAs(ROLLUP));
    try {
      const out = await handlers.plan({
        input: {},
        executionId: "memory",
        startTime: new Date(now).toISOString(),
      });
      expect(out.status).toBe("ready");
      if (out.status === "ready") expect(out.plan.items).toBe(2 * sites);
    } finally {
      handlers.close();
    }
    const planned = await bookkeepingBytesPerPrimary();
    const ratio = busiestOverMean(planned);
    expect(ratio, JSON.stringify([...planned])).toBeLessThanOrEqual(1.5);
    // The work sets were measured too: they add more than the touched sets held (as many
    // members, in sorted sets), on top of the pending and site sets.
    const total = (m: Map<string, number>) => [...m.values()].reduce((a, b) => a + b, 0);
    expect(total(planned)).toBeGreaterThan(1.5 * total(ingested));
    await flushAll();
  });
});

describe("scheduled runs across groups", () => {
  const sites = Array.from({ length: 2000 }, (_, i) => `r${i}`);
  const days = [today];

  it("merge exactly what was touched, equal register for register to a PFMERGE of the days", async () => {
    await consume(trafficOf(sites, days, 2));
    const touched = await cardOfEveryGroup(admin, "touched");
    // Each site-day: the day and its two event types.
    expect(touched).toBe(sites.length * days.length * 3);
    const result = await scheduledRun({ handlerOptions: { settings: { minPageSize: 1000 } } });
    expect(result.status, result.cause).toBe("SUCCEEDED");
    // One merge per touched member and period (its week and its month): no more, no less.
    expect(checked(RollupOutput, result.output, "output").itemsMerged).toBe(2 * touched);
    // Both families, all events and one event type (the other, cart, is merged alike).
    const { differ, compared } = await differingFromDays(sites, days, [undefined, "view"]);
    expect(differ).toEqual([]);
    expect(compared).toBe(sites.length * 2 * 2 * 2);
    expect(await cardOfEveryGroup(admin, "touched")).toBe(0);
    expect(await rollupLeftovers(admin)).toEqual([]);
  });

  it("complete on the next run what a run crashed in the middle of a page left pending", async () => {
    const later = utcDay(now - DAY_MS);
    const crashSites = sites.slice(0, 500);
    await consume(trafficOf(crashSites, [later], 2));
    const touched = await cardOfEveryGroup(admin, "touched");
    expect(touched).toBe(crashSites.length * 3);
    // Every attempt of some page fails after it sent part of its merges: the Map's retries
    // run out, the execution fails.
    let merges = 0;
    const crashing = createRollupHandlers(envAs(ROLLUP), {
      settings: { minPageSize: 300 },
      wrapRedis: onMergeCall((call) => {
        merges = call;
        if (merges >= 400) throw new Error(`injected crash after ${merges} merge calls`);
      }),
    });
    const failed = await scheduledRun({ handlers: crashing });
    crashing.close();
    expect(failed.status).toBe("FAILED");
    expect(failed.cause).toMatch(/injected crash/);
    expect(merges, "the crash came after some merges of the page").toBeGreaterThan(400);
    // Nothing was dropped: every touched member waits in its group's pending set.
    expect(await cardOfEveryGroup(admin, "pending")).toBe(touched);
    expect(await cardOfEveryGroup(admin, "touched")).toBe(0);

    const next = await scheduledRun();
    expect(next.status, next.cause).toBe("SUCCEEDED");
    expect(checked(RollupOutput, next.output, "output").itemsMerged).toBe(2 * touched);
    expect(await rollupLeftovers(admin)).toEqual([]);
    const { differ } = await differingFromDays(
      crashSites,
      [later, today],
      [undefined, "view", "cart"],
    );
    expect(differ).toEqual([]);
  });
});

describe("the single-slot bookkeeping of older versions", () => {
  /** Day keys of both families (with and without `view`), as the old consumer wrote them. */
  async function writeDaysTheOldWay(sites: readonly string[], days: readonly string[]) {
    await Promise.all(
      sites.flatMap((site) =>
        days.flatMap((day) =>
          FAMILIES.flatMap((family) =>
            ["", "event=view:"].map((event) =>
              admin.pfadd(`${family}:{site_id=${site}}:${event}${day}`, `${site}-${day}-a`, "b"),
            ),
          ),
        ),
      ),
    );
    await Promise.all(sites.map((site) => admin.sadd(siteEventTypesKey(site), "view")));
  }

  const member = (site: string, day: string, event?: string) =>
    event ? `${site}|${day}|${event}` : `${site}|${day}`;

  it("is drained by the next scheduled run: merged, the site index moved into the groups, nothing legacy left", async () => {
    await flushAll();
    const old = Array.from({ length: 300 }, (_, i) => `old${i}`);
    const fresh = Array.from({ length: 50 }, (_, i) => `new${i}`);
    await writeDaysTheOldWay(old, [earlier, today]);
    // Touched since the last old run: today; pending from an old run that crashed: earlier,
    // for half of the sites; the site index; a stale work set.
    await admin.sadd(
      LEGACY_TOUCHED_KEY,
      ...old.flatMap((s) => [member(s, today), member(s, today, "view")]),
    );
    await admin.sadd(
      LEGACY_PENDING_KEY,
      ...old.slice(0, 150).flatMap((s) => [member(s, earlier), member(s, earlier, "view")]),
    );
    await admin.sadd(LEGACY_SITES_KEY, ...old.flatMap((s) => [s, `${s}|view`]));
    await admin.zadd(LEGACY_WORK_KEY, 0, `old0|${isoWeekLabel(dayNumber(today))}||${today}`);
    // And what the new consumer wrote since the upgrade, in the groups.
    await consume(trafficOf(fresh, [today], 2));

    // Until the run, the read side sees the legacy site index too.
    const listed: string[] = [];
    let cursor: string | undefined;
    do {
      const page = await listSites(admin, {
        prefix: "",
        limit: 100,
        ...(cursor ? { cursor } : {}),
      });
      listed.push(...page.sites);
      cursor = page.cursor ?? undefined;
    } while (cursor !== undefined);
    expect(listed.sort()).toEqual([...old, ...fresh].sort());

    const expectedItems =
      2 * (old.length * 2 + 150 * 2 + (await cardOfEveryGroup(admin, "touched")));
    const result = await scheduledRun({ handlerOptions: { settings: { minPageSize: 200 } } });
    expect(result.status, result.cause).toBe("SUCCEEDED");
    expect(checked(RollupOutput, result.output, "output").itemsMerged).toBe(expectedItems);
    expect(await legacyLeft(admin)).toEqual([]);
    expect(await rollupLeftovers(admin)).toEqual([]);
    // The old sites are in their groups' index now, with their event types.
    const index = new Set(await membersOfEveryGroup(admin, "sites"));
    for (const site of old) {
      expect(index.has(site) && index.has(`${site}|view`), site).toBe(true);
      expect(await admin.sismember(sitesKey(groupOfSite(site)), site)).toBe(1);
    }
    // Today for every old site, earlier for those pending: each week and month equals its days.
    const todayOnly = await differingFromDays(old.slice(150), [today], [undefined, "view"]);
    const both = await differingFromDays(old.slice(0, 150), [earlier, today], [undefined, "view"]);
    expect([...todayOnly.differ, ...both.differ]).toEqual([]);

    // A backfill reads the moved index: it rebuilds every old site's weeks and months from all
    // of their days (the days written the old way, merged or not).
    const backfill = await runRollupLocally({
      env: envAs(ROLLUP),
      input: { from: earlier, to: today },
      startTime: new Date(now),
      fastTimers: true,
    });
    expect(backfill.status, backfill.cause).toBe("SUCCEEDED");
    // At least two weeks and a month x (site, view) x two families of each old site.
    expect(checked(RollupOutput, backfill.output, "output").keysWritten).toBeGreaterThanOrEqual(
      old.length * 3 * 2 * 2,
    );
    const rebuilt = await differingFromDays(old, [earlier, today], [undefined, "view"]);
    expect(rebuilt.differ).toEqual([]);
  });

  it("finishes an execution the grouped version before planned (an item per period and day), each key counted once across pages", async () => {
    await flushAll();
    const sites = ["prev0", "prev1", "prev2"];
    const days = [earlier, today];
    await writeDaysTheOldWay(sites, days);
    // That version's scheduled items: site|period|event|day, one per touched day and period,
    // in each site's group's work set.
    const periodsOf = (day: string) => [isoWeekLabel(dayNumber(day)), day.slice(0, 7)];
    for (const site of sites) {
      const items = days.flatMap((day) =>
        ["", "view"].flatMap((event) =>
          periodsOf(day).flatMap((period) => [0, `${site}|${period}|${event}|${day}`]),
        ),
      );
      await admin.zadd(workKey(groupOfSite(site)), ...items);
    }
    const groupItems = await Promise.all(everyGroupKey("work").map((key) => admin.zcard(key)));
    const items = groupItems.reduce((n, g) => n + g, 0);
    expect(items).toBe(sites.length * days.length * 2 * 2);
    const executionId = "arn:aws:states:us-east-1:000000000000:execution:sketchstream-rollup:prev";
    await admin.set(LOCK_KEY, executionId, "PX", 60_000);
    // Pages of 3 items: every site's keys straddle pages.
    const pageSize = 3;
    const plan = {
      executionId,
      startTime: new Date(now).toISOString(),
      mode: "scheduled",
      items,
      pageSize,
      groupItems,
      sites: sites.length,
      periods: [...new Set(days.flatMap(periodsOf))].sort(),
    };
    const handlers = createRollupHandlers(envAs(ROLLUP));
    const results = [];
    try {
      for (let page = 0; page < Math.ceil(items / pageSize); page++) {
        results.push(await handlers.merge({ plan, page }));
      }
      const out = await handlers.finish({ plan, results, outcome: "succeeded" });
      expect(out).toMatchObject({ status: "succeeded", itemsMerged: items });
      // Each site: its weeks and months, with and without view, in both families.
      const keys = new Set(days.flatMap(periodsOf)).size * 2 * FAMILIES.length;
      expect(out.keysWritten).toBe(sites.length * keys);
    } finally {
      handlers.close();
    }
    expect(await rollupLeftovers(admin)).toEqual([]);
    const { differ } = await differingFromDays(sites, days, [undefined, "view"]);
    expect(differ).toEqual([]);
  });

  it("finishes an execution the old code planned: its page from the legacy work set, then only the legacy sets dropped", async () => {
    await flushAll();
    const sites = ["inflight0", "inflight1"];
    await writeDaysTheOldWay(sites, [today]);
    const week = isoWeekLabel(dayNumber(today));
    const month = today.slice(0, 7);
    // What the old plan left: the touched members in the legacy pending set, their work items
    // in the legacy work set (site|period|event|day, all scores 0), and a plan without groups.
    await admin.sadd(LEGACY_PENDING_KEY, ...sites.map((s) => member(s, today)));
    await admin.zadd(
      LEGACY_WORK_KEY,
      ...sites.flatMap((s) => [0, `${s}|${week}||${today}`, 0, `${s}|${month}||${today}`]),
    );
    // A group's pending set from an earlier new-version run that crashed: not this plan's.
    await admin.sadd(pendingKey(groupOfSite("waiting")), member("waiting", today));
    const executionId = "arn:aws:states:us-east-1:000000000000:execution:sketchstream-rollup:old";
    await admin.set(LOCK_KEY, executionId, "PX", 60_000);
    const plan = {
      executionId,
      startTime: new Date(now).toISOString(),
      mode: "scheduled",
      items: 4,
      pageSize: 2000,
      sites: 2,
      periods: [month, week].sort(),
    };
    const handlers = createRollupHandlers(envAs(ROLLUP));
    try {
      const page = await handlers.merge({ plan, page: 0 });
      expect(page).toMatchObject({ merged: 4, keysWritten: 8 });
      const out = await handlers.finish({ plan, results: [page], outcome: "succeeded" });
      expect(out.status).toBe("succeeded");
    } finally {
      handlers.close();
    }
    expect(await legacyLeft(admin)).toEqual([]);
    expect(await admin.exists(LOCK_KEY)).toBe(0);
    expect(await admin.smembers(pendingKey(groupOfSite("waiting")))).toEqual([
      member("waiting", today),
    ]);
    const { differ } = await differingFromDays(sites, [today], [undefined]);
    expect(differ).toEqual([]);
    expect(await admin.exists(touchedKey(groupOfSite("inflight0")))).toBe(0);
  });
});
