/**
 * The rollup when a primary dies under it (SIGKILL), on a cluster of this file's own: 3
 * primaries with 2 replicas each and a 2 s cluster-node-timeout, so a replica takes over 3-5 s
 * after a kill, and the primary of the rollup's lock can die twice. The victim is always the
 * primary that holds the lock (`sketchstream:{rollup}:lock`), the bookkeeping groups whose slots
 * it serves (touched, pending, work: a third of them) and some of the sites.
 *
 * The real state machine (aws-local-stepfunctions, the ASL's own Retry and Catch) runs the real
 * handlers; data comes from the real consumer handler. Either outcome of a faulted execution is
 * acceptable (issue 12): it carries on after the failover and succeeds, or it fails with a
 * clear cause and frees the lock. Whichever it is, the lock must not outlive the execution, the
 * next scheduled run must take it at once and succeed, no touched (site, day) may be lost, and
 * every week and month key of both families must equal, register for register, a PFMERGE of
 * its day keys.
 */

import { Cluster, Redis } from "ioredis";
import * as v from "valibot";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createConsumerHandler } from "../../functions/consumer/handler.js";
import { isNonEmpty } from "../../functions/domain/arrays.js";
import { messageOf } from "../../functions/domain/errors.js";
import { everyGroupKey, LOCK_KEY } from "../../functions/domain/keys.js";
import { createRollupHandlers, type RollupHandlers } from "../../functions/rollup/handler.js";
import { type RunningRedisCluster, startRedisCluster } from "../../local/redis-cluster.js";
import { type LocalRollupResult, runRollupLocally } from "../../state-machines/local-runner.js";
import { cardOfEveryGroup, existingOf, rollupLeftovers } from "../helpers/bookkeeping.js";
import { daysAgo, testNowMs } from "../helpers/clock.js";
import { hllSame } from "../helpers/hll.js";
import { kinesisEvent } from "../helpers/kinesis.js";
import { onMergeCall } from "../helpers/rollup-faults.js";
import { checked } from "../helpers/schema.js";
import { dayLabel, dayNumber, isoWeekLabel } from "../unit/calendar.js";

const FAMILIES = ["uv", "ev"] as const;
const EVENTS = ["view", "cart"] as const;
const now = testNowMs();
/** Sites, enough of them to land on every primary. */
const SITES = Array.from({ length: 24 }, (_, i) => `fo${i}`);
/** Days of three weeks and two months (from a Sunday: 7 days back, the week before). */
const DAYS = [0, 1, 7, 16].map((n) => daysAgo(n, now));
/** A late day, touched between executions. */
const LATE_DAY = daysAgo(20, now);
/** Week and month keys per site, family and event type (none, view, cart). */
const PERIODS = periodsOf([...DAYS, LATE_DAY]);
/** How long a failover may take here: the 2 s node timeout, the election, a busy machine. */
const FAILOVER_WAIT_MS = 15_000;

let cluster: RunningRedisCluster;
let env: Record<string, string>;
/** The test's own client; made again after each failover, so it starts from the new slot map. */
let redis: Cluster;
/** Ports of the nodes this file killed. */
const dead = new Set<number>();

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Polls `check` every 50 ms until it holds; fails naming `what` after `timeoutMs`. */
async function until(what: string, timeoutMs: number, check: () => Promise<boolean>) {
  const deadline = performance.now() + timeoutMs;
  let last: unknown;
  while (performance.now() < deadline) {
    try {
      if (await check()) return;
    } catch (err) {
      last = err;
    }
    await sleep(50);
  }
  throw new Error(
    `timed out after ${timeoutMs} ms waiting for ${what}${last ? `: ${messageOf(last)}` : ""}`,
  );
}

/** Runs commands on one node by itself (not through the cluster's slot map). */
async function onNode<T>(port: number, work: (node: Redis) => Promise<T>): Promise<T> {
  const node = new Redis({ host: "127.0.0.1", port, lazyConnect: true, maxRetriesPerRequest: 0 });
  node.on("error", () => {});
  try {
    await node.connect();
    return await work(node);
  } finally {
    node.disconnect();
  }
}

const livePorts = () => cluster.ports.filter((port) => !dead.has(port));

/**
 * Every live replica is linked to its primary and has applied all of its writes, so what the
 * test wrote before a kill is on the replica that takes over (local replication is
 * asynchronous). A replica's own offset is current; the one its primary reports is only
 * refreshed by the replica's acknowledgement, once a second.
 */
async function replicasCaughtUp(): Promise<void> {
  const field = (info: string, name: string) => new RegExp(`^${name}:(\\S+)`, "m").exec(info)?.[1];
  await until("every replica to catch up with its primary", 10_000, async () => {
    const infos = new Map<number, string>();
    for (const port of livePorts()) {
      infos.set(port, await onNode(port, (node) => node.info("replication")));
    }
    for (const info of infos.values()) {
      if (field(info, "role") !== "slave") continue;
      const primary = infos.get(Number(field(info, "master_port")));
      if (field(info, "master_link_status") !== "up" || primary === undefined) return false;
      if (field(info, "slave_repl_offset") !== field(primary, "master_repl_offset")) return false;
    }
    return true;
  });
}

/** Client port of the primary that serves a key's slot. */
async function primaryOf(key: string): Promise<number> {
  const slot = Number(await redis.cluster("KEYSLOT", key));
  for (const [start, end, primary] of await redis.cluster("SLOTS")) {
    if (primary && slot >= start && slot <= end) return primary[1];
  }
  throw new Error(`no primary serves slot ${slot} of ${key}`);
}

/** SIGKILL: no shutdown, no goodbye to the cluster, as when a machine dies. */
function kill(port: number): void {
  const pid = cluster.pids[cluster.ports.indexOf(port)];
  if (pid === undefined || pid < 0) throw new Error(`no process for port ${port}`);
  process.kill(pid, "SIGKILL");
  dead.add(port);
}

/**
 * Waits until a replica serves every slot the dead node had and every live node says the
 * cluster is ok, then points REDIS_ENDPOINT and the test's client at a live node (as MemoryDB's
 * configuration endpoint always resolves to live nodes).
 */
async function failedOver(port: number): Promise<void> {
  await until(
    `a replica to take over from the killed primary ${port}`,
    FAILOVER_WAIT_MS,
    async () => {
      for (const live of livePorts()) {
        const ok = await onNode(live, async (node) => {
          const info = await node.cluster("INFO");
          const slots = await node.cluster("SLOTS");
          return (
            String(info).includes("cluster_state:ok") &&
            slots.every(([, , primary]) => primary !== undefined && primary[1] !== port)
          );
        });
        if (!ok) return false;
      }
      return true;
    },
  );
  const seed = livePorts()[0];
  if (seed === undefined) throw new Error("no live node left");
  env.REDIS_ENDPOINT = `127.0.0.1:${seed}`;
  redis.disconnect();
  redis = new Cluster([{ host: "127.0.0.1", port: seed }]);
}

interface Event {
  readonly user_id: string;
  readonly site_id: string;
  readonly event: string;
  readonly event_time: string;
}

/** `users` visitors on every site and day, as the consumer receives them. */
function eventsOn(days: readonly string[], users: number, tag: string): Event[] {
  return SITES.flatMap((site) =>
    days.flatMap((day) =>
      Array.from({ length: users }, (_, i) => ({
        user_id: `${tag}-${i}`,
        site_id: site,
        event: EVENTS[i % EVENTS.length] ?? "view",
        event_time: `${day} ${String(i % 24).padStart(2, "0")}:30:00`,
      })),
    ),
  );
}

async function consume(events: readonly Event[]): Promise<void> {
  const handler = createConsumerHandler(env, { now: () => now });
  try {
    expect((await handler(kinesisEvent(events))).batchItemFailures).toEqual([]);
  } finally {
    handler.close();
  }
}

const RollupOutputSchema = v.object({ status: v.literal("succeeded"), itemsMerged: v.number() });

/** Each week and month overlapping the days, with all of its days (tests' own calendar). */
function periodsOf(days: readonly string[]): Map<string, string[]> {
  const numbers = days.map(dayNumber);
  const wanted = new Set(numbers.flatMap((z) => [isoWeekLabel(z), dayLabel(z).slice(0, 7)]));
  const periods = new Map<string, string[]>();
  for (let z = Math.min(...numbers) - 40; z <= Math.max(...numbers) + 40; z++) {
    for (const label of [isoWeekLabel(z), dayLabel(z).slice(0, 7)]) {
      if (wanted.has(label)) periods.set(label, [...(periods.get(label) ?? []), dayLabel(z)]);
    }
  }
  return periods;
}

/**
 * Every week and month key of every site, both families, site-wide and per event type, equals
 * a PFMERGE of its existing day keys done here; a period without days has no key. Returns how
 * many keys were compared.
 */
async function expectRolledUpEverywhere(): Promise<number> {
  const checks = SITES.flatMap((site) =>
    FAMILIES.flatMap((family) =>
      [undefined, ...EVENTS].flatMap((event) =>
        [...PERIODS].map(([label, days]) => {
          const prefix = `${family}:{site_id=${site}}:${event ? `event=${event}:` : ""}`;
          return { key: `${prefix}${label}`, dayKeys: days.map((d) => `${prefix}${d}`) };
        }),
      ),
    ),
  );
  const compared = await Promise.all(
    checks.map(async ({ key, dayKeys }) => {
      if (!isNonEmpty(dayKeys)) throw new Error(`no days in ${key}`);
      if ((await redis.exists(...dayKeys)) === 0) {
        expect(await redis.exists(key), `${key} has no days, so no key`).toBe(0);
        return 0;
      }
      const reference = `ref:${key}`;
      await redis.pfmerge(reference, ...dayKeys);
      const [value, expected] = [await redis.getBuffer(key), await redis.getBuffer(reference)];
      await redis.del(reference);
      expect(hllSame(value, expected), `${key} equals the PFMERGE of its days`).toBe(true);
      return 1;
    }),
  );
  return compared.reduce<number>((n, c) => n + c, 0);
}

/** Handlers that record what each step answered, so a test can tell what the machine did. */
interface Recorded {
  readonly plans: string[];
  readonly pageFailures: string[];
}

function recording(inner: RollupHandlers, recorded: Recorded): RollupHandlers {
  return {
    ...inner,
    async plan(event) {
      const out = await inner.plan(event);
      recorded.plans.push(out.status);
      return out;
    },
    async merge(event) {
      try {
        return await inner.merge(event);
      } catch (err) {
        recorded.pageFailures.push(messageOf(err));
        throw err;
      }
    },
  };
}

/**
 * A fault-free scheduled run, as the schedule starts it: it must take the lock at its first
 * plan (nothing held it), succeed, merge `items` work items and leave no bookkeeping behind.
 */
async function nextRunCompletes(items: number): Promise<void> {
  const recorded: Recorded = { plans: [], pageFailures: [] };
  const inner = createRollupHandlers(env, { settings: { minPageSize: 50 } });
  let result: LocalRollupResult;
  try {
    result = await runRollupLocally({
      env,
      input: {},
      handlers: recording(inner, recorded),
      startTime: new Date(now),
      fastTimers: true,
    });
  } finally {
    inner.close();
  }
  expect(result.status, result.cause).toBe("SUCCEEDED");
  expect(recorded.plans, "the lock was free: the first plan took it").toEqual(["ready"]);
  expect(checked(RollupOutputSchema, result.output, "the rollup's output").itemsMerged).toBe(items);
  expect(await rollupLeftovers(redis)).toEqual([]);
  expect(await existingOf(redis, everyGroupKey("touched"))).toEqual([]);
}

beforeAll(async () => {
  // A failover takes 3-5 s here (Redis's default node timeout, 15 s, would make it 20 s): long
  // enough that a failed execution's lock release outlasts it only with the retries the ASL
  // gives it, short enough for the test's budget.
  cluster = await startRedisCluster({ primaries: 3, replicasPerPrimary: 2, nodeTimeoutMs: 2000 });
  env = {
    REDIS_ENDPOINT: cluster.endpoint,
    REDIS_TLS: "false",
    QUARANTINE_FILE: `${cluster.dir}/quarantine.jsonl`,
  };
  redis = new Cluster([{ host: "127.0.0.1", port: cluster.port }]);
  // A new replica's first sync waits repl-diskless-sync-delay (5 s) for others to join it; a
  // replica that never synced cannot take over. Start the syncs now.
  await Promise.all(
    cluster.ports.map((port) =>
      onNode(port, (node) => node.config("SET", "repl-diskless-sync-delay", "0")),
    ),
  );
  await replicasCaughtUp();
});

afterAll(async () => {
  redis?.disconnect();
  await cluster?.stop();
});

describe("rollup when a primary dies", () => {
  it("has sites on every primary, so the victim holds sites as well as the bookkeeping", async () => {
    // The calendar the checks rely on: three weeks, and one or two months (depending on the
    // date TEST_NOW falls on).
    expect(PERIODS.size).toBeGreaterThanOrEqual(4);
    const owners = new Set<number>();
    for (const site of SITES) owners.add(await primaryOf(`uv:{site_id=${site}}:${DAYS[0]}`));
    expect(owners.size).toBe(3);
  });

  it("killed while pages merge: the pages carry on after the failover (or the execution fails and frees the lock), and the next run completes", async () => {
    await consume(eventsOn(DAYS, 12, "a"));
    const touched = await cardOfEveryGroup(redis, "touched");
    expect(touched).toBe(SITES.length * DAYS.length * (1 + EVENTS.length));
    await replicasCaughtUp();
    const victim = await primaryOf(LOCK_KEY);

    // Small pages, four at a time: the kill lands while some are in flight (merge call 15 of
    // about 80: one script call per site and page) and many are to come.
    let killed = false;
    let pagesBegunAfterKill = 0;
    const inner = createRollupHandlers(env, {
      settings: { minPageSize: 10 },
      wrapRedis: onMergeCall((call) => {
        if (call !== 15) return;
        killed = true;
        kill(victim);
      }),
    });
    const handlers: RollupHandlers = {
      ...inner,
      async merge(event) {
        const afterKill = killed;
        const out = await inner.merge(event);
        if (afterKill) pagesBegunAfterKill++;
        return out;
      },
    };
    let result: LocalRollupResult;
    try {
      result = await runRollupLocally({
        env,
        input: {},
        handlers,
        startTime: new Date(now),
        fastTimers: true,
      });
    } finally {
      inner.close();
    }
    expect(killed, "the primary died during the execution").toBe(true);
    await failedOver(victim);

    if (result.status === "SUCCEEDED") {
      // Each page first renews the lock on the dead primary's slots: the pages begun after the
      // kill were served by the replica that took over (the client waited through the failover,
      // or the page failed and the Map retried it).
      expect(pagesBegunAfterKill, "pages merged after the kill").toBeGreaterThan(10);
      const output = checked(RollupOutputSchema, result.output, "the rollup's output");
      expect(output.itemsMerged).toBe(touched * 2);
      expect(
        await existingOf(redis, [...everyGroupKey("pending"), ...everyGroupKey("touched")]),
      ).toEqual([]);
    } else {
      expect(result.error).toBe("RollupPageError");
      expect(result.cause).toMatch(/^page \d+ of execution .* could not be merged: /);
      // Nothing was dropped: everything touched waits in `pending` for the next run.
      expect(await cardOfEveryGroup(redis, "pending")).toBe(touched);
    }
    // Released by the execution, not expired: the lease is 15 minutes.
    expect(await redis.get(LOCK_KEY), "no execution holds the lock").toBeNull();

    // Late data while nobody merges: it waits in `touched` for the next run.
    await consume(eventsOn([LATE_DAY], 5, "late"));
    const late = await cardOfEveryGroup(redis, "touched");
    const pending = await cardOfEveryGroup(redis, "pending");
    await nextRunCompletes((pending + late) * 2);
    expect(await expectRolledUpEverywhere()).toBe(SITES.length * 2 * 3 * PERIODS.size);
  });

  it("killed as a failed execution frees the lock: the lock is still freed, nothing is lost, and the next run takes the lock at once", async () => {
    // New visitors on every day: every week and month has work again.
    await consume(eventsOn([...DAYS, LATE_DAY], 6, "b"));
    const touched = await cardOfEveryGroup(redis, "touched");
    await replicasCaughtUp();
    // The replica that took over the bookkeeping in the test above, whose own replica takes
    // over now.
    const victim = await primaryOf(LOCK_KEY);

    // Merges fail for longer than the page retries last (a stand-in for a fault that outlasts
    // them), and the primary dies just as the execution goes to free the lock. Locally each
    // release attempt fails after about 1.7 s (the client's own retries while the slots are
    // down) and the runner waits 10 ms between attempts: the 3 attempts the ASL used to give
    // left the lock held (to the end of its 15-minute lease) behind a 3-5 s failover.
    let killed = false;
    const recorded: Recorded = { plans: [], pageFailures: [] };
    const inner = createRollupHandlers(env, {
      wrapRedis: onMergeCall(() => {
        throw new Error("injected: merges keep failing");
      }),
    });
    const handlers: RollupHandlers = {
      ...recording(inner, recorded),
      async finish(event) {
        if (v.is(v.object({ outcome: v.literal("failed") }), event) && !killed) {
          killed = true;
          kill(victim);
        }
        return inner.finish(event);
      },
    };
    let result: LocalRollupResult;
    try {
      result = await runRollupLocally({
        env,
        input: {},
        handlers,
        startTime: new Date(now),
        fastTimers: true,
      });
    } finally {
      inner.close();
    }
    expect(killed, "the primary died as the lock was being freed").toBe(true);
    expect(result.status).toBe("FAILED");
    expect(recorded.pageFailures.length, "the Map retried the page first").toBeGreaterThan(1);
    // The cause the operator reads: what failed, and that the work waits for the next run.
    expect(result.error).toBe("RollupPageError");
    expect(result.cause).toMatch(/could not be merged: injected: merges keep failing\./);
    expect(result.cause).toMatch(/stays pending/);
    await failedOver(victim);
    expect(await redis.get(LOCK_KEY), "the failed execution freed the lock").toBeNull();
    expect(await cardOfEveryGroup(redis, "pending"), "every touched pair still pending").toBe(
      touched,
    );
    await nextRunCompletes(touched * 2);
    expect(await expectRolledUpEverywhere()).toBe(SITES.length * 2 * 3 * PERIODS.size);
  });
});
