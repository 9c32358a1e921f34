/**
 * The scheduled rollup's server-side merge (functions/rollup/merge-script.ts) on a real Redis
 * Cluster, called as the rollup's least-privilege ACL user through the real client factory:
 * - it writes exactly what the single commands it replaces write (EXISTS, then PFMERGE and
 *   EXPIREAT NX when the day exists): register-equal, the same deadlines, no key created for a
 *   day that does not exist, an existing deadline kept;
 * - a node without the script cached (after SCRIPT FLUSH, as after a restart) gets it by EVAL,
 *   then EVALSHA serves the next calls;
 * - the script is bound by the caller's ACL: a script may not reach the zone registry, which is
 *   read-only to the rollup user, nor any key outside its patterns;
 * - a call with more than MERGE_SCRIPT_MAX_TARGETS targets is refused before anything is sent.
 */

import { Cluster, Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { connectRedis, type RedisConnection } from "../../functions/adapters/redis.js";
import { ACL_RULES } from "../../functions/domain/acl.js";
import { countingKey, TIME_ZONES_KEY } from "../../functions/domain/keys.js";
import { loadRuntimeConfig } from "../../functions/domain/runtime-env.js";
import {
  MERGE_SCRIPT_MAX_TARGETS,
  mergeTouchedDaysOnServer,
  type TouchedDayMerge,
} from "../../functions/rollup/merge-script.js";
import { type RunningRedisCluster, startRedisCluster } from "../../local/redis-cluster.js";
import { testNowMs } from "../helpers/clock.js";
import { hllSame } from "../helpers/hll.js";

const ROLLUP = { name: "rollup", password: `r-${Math.random().toString(36).slice(2)}` };
const now = testNowMs();
/** A deadline well after the real clock (Redis expires keys by it), in unix seconds. */
const deadline = Math.floor(now / 1000) + 90 * 86_400;

let cluster: RunningRedisCluster;
let admin: Cluster;
let rollup: RedisConnection;

beforeAll(async () => {
  cluster = await startRedisCluster({
    primaries: 3,
    users: [{ ...ROLLUP, rules: ACL_RULES.rollup }],
  });
  admin = new Cluster([{ host: "127.0.0.1", port: cluster.port }]);
  rollup = connectRedis(
    loadRuntimeConfig({
      REDIS_ENDPOINT: cluster.endpoint,
      REDIS_TLS: "false",
      REDIS_AUTH: "password",
      REDIS_USER: ROLLUP.name,
      REDIS_PASSWORD: ROLLUP.password,
    }).redis,
  );
});

afterAll(async () => {
  rollup?.close();
  admin?.disconnect();
  await cluster?.stop();
});

/** INFO commandstats calls of a command, summed over the primaries. */
async function callsOf(command: string): Promise<number> {
  let calls = 0;
  for (const port of cluster.ports) {
    const node = new Redis({ host: "127.0.0.1", port });
    const info = await node.info("commandstats");
    node.disconnect();
    const m = new RegExp(`^cmdstat_${command}:calls=(\\d+)`, "m").exec(info);
    calls += Number(m?.[1] ?? 0);
  }
  return calls;
}

/** A site's targets: its week and month of two days, both families, in the rollup's order. */
function targetsOf(site: string, days: readonly string[]): TouchedDayMerge[] {
  return days.flatMap((day) =>
    ["2031-W24", "2031-06"].flatMap((period) =>
      (["visitors", "events"] as const).map((metric) => ({
        key: countingKey(metric, site, period),
        day: countingKey(metric, site, day),
        expireAt: deadline + (period.includes("W") ? 0 : 86_400),
      })),
    ),
  );
}

describe("the scheduled rollup's merge script", () => {
  it("writes what EXISTS + PFMERGE + EXPIREAT NX write, register for register", async () => {
    const site = "ms-equal";
    const days = ["2031-06-09", "2031-06-10"];
    // Visitors on both days; events only on the first (the second's ev: key does not exist).
    for (const [i, day] of days.entries()) {
      await admin.pfadd(countingKey("visitors", site, day), ...ids(`v${i}`, 3000));
      if (i === 0) await admin.pfadd(countingKey("events", site, day), ...ids("e", 40));
    }
    // The week already holds an earlier merge with a deadline of its own, which NX keeps.
    const week = countingKey("visitors", site, "2031-W24");
    await admin.pfadd(week, ...ids("earlier", 50));
    await admin.expireat(week, deadline - 3600);
    const reference = `${week}:reference`;
    await admin.copy(week, reference);

    const targets = targetsOf(site, days);
    const merged = await mergeTouchedDaysOnServer(rollup.client, targets);

    expect(merged).toEqual(targets.map((t) => !t.day.startsWith("ev:") || t.day.endsWith("09")));
    // The week: its earlier content and both days, its own deadline kept.
    await admin.pfmerge(reference, ...days.map((d) => countingKey("visitors", site, d)));
    expect(hllSame(await admin.getBuffer(week), await admin.getBuffer(reference))).toBe(true);
    expect(await admin.expiretime(week)).toBe(deadline - 3600);
    // The month: made from the days, with its deadline.
    const month = countingKey("visitors", site, "2031-06");
    const monthReference = `${month}:reference`;
    await admin.pfmerge(monthReference, ...days.map((d) => countingKey("visitors", site, d)));
    expect(hllSame(await admin.getBuffer(month), await admin.getBuffer(monthReference))).toBe(true);
    expect(await admin.expiretime(month)).toBe(deadline + 86_400);
    // Events: only the first day exists; merging it again changes nothing.
    const eventsWeek = countingKey("events", site, "2031-W24");
    expect(await admin.pfcount(eventsWeek)).toBe(
      await admin.pfcount(countingKey("events", site, days[0] ?? "")),
    );
    const again = await mergeTouchedDaysOnServer(rollup.client, targets);
    expect(again).toEqual(merged);
    expect(hllSame(await admin.getBuffer(week), await admin.getBuffer(reference))).toBe(true);
  });

  it("creates no period key for a day that does not exist", async () => {
    const site = "ms-missing";
    const targets = targetsOf(site, ["2031-06-11"]);
    expect(await mergeTouchedDaysOnServer(rollup.client, targets)).toEqual(
      targets.map(() => false),
    );
    expect(await admin.exists(...targets.map((t) => t.key))).toBe(0);
  });

  it("loads itself with EVAL on a node that lost its script cache, then runs by EVALSHA", async () => {
    const site = "ms-flush";
    await admin.pfadd(countingKey("visitors", site, "2031-06-12"), "a", "b");
    for (const port of cluster.ports) {
      const node = new Redis({ host: "127.0.0.1", port });
      await node.script("FLUSH");
      node.disconnect();
    }
    const targets = targetsOf(site, ["2031-06-12"]);
    const evalsBefore = await callsOf("eval");
    const shasBefore = await callsOf("evalsha");
    await mergeTouchedDaysOnServer(rollup.client, targets);
    expect(await callsOf("eval")).toBe(evalsBefore + 1);
    expect(await callsOf("evalsha")).toBe(shasBefore + 1);
    await mergeTouchedDaysOnServer(rollup.client, targets);
    expect(await callsOf("eval")).toBe(evalsBefore + 1);
    expect(await callsOf("evalsha")).toBe(shasBefore + 2);
    expect(await admin.pfcount(countingKey("visitors", site, "2031-W24"))).toBe(2);
  });

  it("runs with the caller's ACL: its script cannot write the registry or keys outside its patterns", async () => {
    // Commands the rollup user has, on keys it may not write: the registry is read-only to it
    // (%R~), and `secret:{x}` matches none of its patterns.
    const expire = `return redis.call("EXPIREAT", KEYS[1], 1)`;
    await expect(rollup.client.eval(expire, 1, TIME_ZONES_KEY)).rejects.toThrow(
      /NOPERM|permission/i,
    );
    const merge = `return redis.call("PFMERGE", KEYS[1], KEYS[2])`;
    const day = countingKey("visitors", "ms-acl", "2031-06-12");
    await expect(rollup.client.eval(merge, 2, "secret:{site_id=ms-acl}", day)).rejects.toThrow(
      /NOPERM|permission/i,
    );
    expect(await admin.exists("secret:{site_id=ms-acl}")).toBe(0);
  });

  it(`refuses more than ${MERGE_SCRIPT_MAX_TARGETS} targets in one call`, async () => {
    const days = Array.from({ length: 17 }, (_, i) => `2031-05-${String(i + 1).padStart(2, "0")}`);
    const targets = targetsOf("ms-many", days);
    expect(targets.length).toBeGreaterThan(MERGE_SCRIPT_MAX_TARGETS);
    await expect(mergeTouchedDaysOnServer(rollup.client, targets)).rejects.toThrow(
      `${targets.length} targets in one merge script call: at most ${MERGE_SCRIPT_MAX_TARGETS}`,
    );
  });
});

function ids(prefix: string, n: number): string[] {
  return Array.from({ length: n }, (_, i) => `${prefix}-${i}`);
}
