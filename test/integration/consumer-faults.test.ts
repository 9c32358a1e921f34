/**
 * Redis becomes unreachable in the middle of a batch: one primary is paused (SIGSTOP), so its
 * commands get no answer. The handler must answer before its deadline with batchItemFailures
 * from the first record whose writes went to that node (its site's keys, or its site's
 * bookkeeping group's touched set and site index); after the node returns, replaying from
 * there must give HLLs equal to a fault-free run of the same batch (user ids under `uv:`), and
 * `ev:` HLLs of exactly the batch's record ids.
 *
 * This file starts its own cluster: pausing a node of the shared one would disturb other tests.
 */

import { existsSync } from "node:fs";
import { Logger } from "@aws-lambda-powertools/logger";
import { Metrics } from "@aws-lambda-powertools/metrics";
import { Cluster, Redis } from "ioredis";
import { afterAll, assert, beforeAll, describe, expect, it, vi } from "vitest";
import { createConsumerHandler } from "../../functions/consumer/handler.js";
import { at, first } from "../../functions/domain/arrays.js";
import { AS_OF_KEY, groupOfSite, touchedKey } from "../../functions/domain/keys.js";
import { lambdaContext } from "../../local/lambda-context.js";
import { type RunningRedisCluster, startRedisCluster } from "../../local/redis-cluster.js";
import { testNowMs, utcDay } from "../helpers/clock.js";
import { uniqueSitePrefix } from "../helpers/env.js";
import { hllSame } from "../helpers/hll.js";
import { kinesisEvent } from "../helpers/kinesis.js";

let cluster: RunningRedisCluster;
let redis: Cluster;

beforeAll(async () => {
  // A long node timeout: the paused node must not be declared failed while it is paused.
  cluster = await startRedisCluster({ primaries: 3, nodeTimeoutMs: 30_000 });
  redis = new Cluster([{ host: "127.0.0.1", port: cluster.port }]);
});

afterAll(async () => {
  await redis?.quit();
  await cluster?.stop();
});

/** Port of the primary that serves a key's slot, from CLUSTER SLOTS. */
async function ownerPort(slotOf: number): Promise<number> {
  for (const [start, end, primary] of await redis.cluster("SLOTS")) {
    if (primary && slotOf >= start && slotOf <= end) return primary[1];
  }
  throw new Error(`no owner for slot ${slotOf}`);
}

async function keyOwner(key: string): Promise<number> {
  return ownerPort(Number(await redis.cluster("KEYSLOT", key)));
}

/**
 * The primaries a batch writes to for a site: its keys' (HLLs and event types, one slot) and
 * its bookkeeping group's (touched set and site index, one slot). A batch fails from the first
 * record of a site when either refuses; the `as-of` key's primary fails it from the first record.
 */
async function primariesOf(site: string, day: string): Promise<Set<number>> {
  return new Set([
    await keyOwner(`uv:{site_id=${site}}:${day}`),
    await keyOwner(touchedKey(groupOfSite(site))),
  ]);
}

/**
 * A primary to fail that holds some of the sites' keys but not `as-of`, and the sites whose
 * writes it takes (their keys or their group's bookkeeping), which the batch fails from.
 */
async function victimOf(
  sites: readonly string[],
  day: string,
): Promise<{ victim: number; hit: Set<string> }> {
  const asOfOwner = await keyOwner(AS_OF_KEY);
  const writes = new Map<string, Set<number>>();
  const siteOwners = new Set<number>();
  for (const site of sites) {
    writes.set(site, await primariesOf(site, day));
    siteOwners.add(await keyOwner(`uv:{site_id=${site}}:${day}`));
  }
  const victim = cluster.ports.find((p) => p !== asOfOwner && siteOwners.has(p));
  assert.isDefined(victim, "a primary without the as-of key that owns some sites");
  const hit = new Set(sites.filter((site) => writes.get(site)?.has(victim)));
  expect(hit.size, "sites the victim takes writes of").toBeGreaterThan(0);
  expect(hit.size, "sites it takes no write of").toBeLessThan(sites.length);
  return { victim, hit };
}

describe("Redis unreachable mid-batch", () => {
  it("fails from the first unstored record before the deadline, and a replay matches a fault-free run", async () => {
    const prefix = uniqueSitePrefix();
    const now = testNowMs();
    const day = utcDay(now);
    // Sites spread over the nodes; the victim is a primary that does not hold `as-of`.
    const sites = Array.from({ length: 24 }, (_, i) => `${prefix}s${i}`);
    const { victim, hit } = await victimOf(sites, day);
    const safeSites = sites.filter((s) => !hit.has(s));
    const victimSites = sites.filter((s) => hit.has(s));
    // Records 0..199 only touch healthy nodes; from 200 on, sites of every node are mixed.
    const payloadFor = (site: string, i: number) => ({
      user_id: `user-${i % 700}`,
      site_id: site,
      event: ["view", "cart"][i % 2],
      event_time: `${day} 08:00:00`,
    });
    const sitesInOrder = [
      ...Array.from({ length: 200 }, (_, i) => at(safeSites, i % safeSites.length, "safe site")),
      ...Array.from({ length: 1800 }, (_, i) => at(sites, (i * 7) % sites.length, "site")),
    ];
    const payloads = sitesInOrder.map((site, i) => payloadFor(site, i));
    const expectedFirst = sitesInOrder.findIndex((s) => victimSites.includes(s));
    expect(expectedFirst).toBeGreaterThanOrEqual(200);

    const env = {
      REDIS_ENDPOINT: cluster.endpoint,
      REDIS_TLS: "false",
      QUARANTINE_FILE: `${cluster.dir}/quarantine.jsonl`,
    };
    const handler = createConsumerHandler(env, { now: () => now });
    // Warm the connection and slot map, as a warm Lambda would have them.
    const warmPayload = payloadFor(first(safeSites, "safe site"), 0);
    const warm = kinesisEvent([warmPayload]);
    await handler(warm);

    const event = kinesisEvent(payloads);
    const victimPid = at(cluster.pids, cluster.ports.indexOf(victim), "pid of the victim");
    process.kill(victimPid, "SIGSTOP");
    let result: Awaited<ReturnType<typeof handler>>;
    const started = Date.now();
    try {
      result = await handler(event, lambdaContext({ timeoutMs: 4000 }));
    } finally {
      process.kill(victimPid, "SIGCONT");
    }
    const elapsed = Date.now() - started;
    expect(result.batchItemFailures).toEqual([
      { itemIdentifier: event.Records[expectedFirst]?.kinesis.sequenceNumber },
    ]);
    // Bounded by the remaining time less the safety margin (800 ms of 4000), not by Lambda's kill.
    expect(elapsed).toBeLessThan(4000 - 500);

    // Lambda retries from the reported record; the replay succeeds once the node is back.
    const replay = { Records: event.Records.slice(expectedFirst) };
    const retried = await handler(replay, lambdaContext({ timeoutMs: 30_000 }));
    expect(retried.batchItemFailures).toEqual([]);

    // Fault-free reference: the same batch under other site ids (same ids, so same registers).
    const refPayloads = payloads.map((p) => ({ ...p, site_id: `${p.site_id}r` }));
    const clean = await handler(kinesisEvent(refPayloads));
    expect(clean.batchItemFailures).toEqual([]);
    handler.close();

    let compared = 0;
    for (const site of sites) {
      for (const suffix of [day, `event=view:${day}`, `event=cart:${day}`]) {
        const key = `uv:{site_id=${site}}:${suffix}`;
        const refKey = `uv:{site_id=${site}r}:${suffix}`;
        const [a, b] = [await redis.getBuffer(key), await redis.getBuffer(refKey)];
        if (b === null) {
          expect(a, `${key} absent as in the fault-free run`).toBeNull();
          continue;
        }
        compared++;
        expect(hllSame(a, b), `${key} equals the fault-free ${refKey}`).toBe(true);
        expect(await redis.call("EXPIRETIME", key)).toBe(await redis.call("EXPIRETIME", refKey));
      }
    }
    expect(compared).toBeGreaterThanOrEqual(sites.length * 2);

    // The events family: each key holds exactly the ids of its records, none lost and none
    // added twice by the replay (the replayed records keep their ids).
    const identities = new Map<string, string[]>();
    const delivered = [
      { p: warmPayload, id: at(warm.Records, 0, "warm-up record").eventID },
      ...payloads.map((p, i) => ({ p, id: at(event.Records, i, "record").eventID })),
    ];
    for (const { p, id } of delivered) {
      for (const suffix of [day, `event=${p.event}:${day}`]) {
        const key = `ev:{site_id=${p.site_id}}:${suffix}`;
        identities.set(key, [...(identities.get(key) ?? []), id]);
      }
    }
    for (const [key, ids] of identities) {
      const refKey = key.replace(/^ev:/, "ref-ev:");
      await redis.pfadd(refKey, ...ids);
      const [a, b] = [await redis.getBuffer(key), await redis.getBuffer(refKey)];
      expect(hllSame(a, b), `${key} holds exactly its records' ids`).toBe(true);
    }
    expect(identities.size).toBeGreaterThanOrEqual(sites.length * 2);
  });
});

describe("a slot moved under a warm consumer", () => {
  it("resends the commands a node answered with MOVED, so the batch still succeeds", async () => {
    const now = testNowMs();
    const day = utcDay(now);
    const prefix = uniqueSitePrefix();
    const env = {
      REDIS_ENDPOINT: cluster.endpoint,
      REDIS_TLS: "false",
      QUARANTINE_FILE: `${cluster.dir}/quarantine.jsonl`,
    };
    const handler = createConsumerHandler(env, { now: () => now });
    const payload = (site: string, i: number) => ({
      user_id: `m-${i}`,
      site_id: site,
      event: "view",
      event_time: `${day} 09:00:00`,
    });
    // Sites whose keys land on different primaries, so one pipeline mixes replies.
    const sites = Array.from({ length: 12 }, (_, i) => `${prefix}mv${i}`);
    const moved = first(sites, "site");
    try {
      // Warm: the client learns the slot map.
      expect((await handler(kinesisEvent(sites.map(payload)))).batchItemFailures).toEqual([]);

      // Reassign the (empty) slot of a fresh site to another primary behind the client's back.
      const fresh = `${moved}x`;
      const slot = Number(await redis.cluster("KEYSLOT", `uv:{site_id=${fresh}}:${day}`));
      const from = await ownerPort(slot);
      const to = cluster.ports.find((p) => p !== from && cluster.ports.indexOf(p) < 3);
      assert.isDefined(to, "another primary to move the slot to");
      const nodes = cluster.ports.map((port) => new Redis({ port, host: "127.0.0.1" }));
      try {
        const target = String(
          await at(nodes, cluster.ports.indexOf(to), "target node").cluster("MYID"),
        );
        for (const node of nodes) await node.cluster("SETSLOT", slot, "NODE", target);
        expect(await ownerPort(slot)).toBe(to);
      } finally {
        for (const node of nodes) node.disconnect();
      }

      const batch = kinesisEvent(
        [fresh, ...sites].flatMap((site) => [0, 1, 2].map((i) => payload(site, i))),
      );
      const result = await handler(batch);
      expect(result.batchItemFailures).toEqual([]);
      const count = await redis.pfcount(`uv:{site_id=${fresh}}:${day}`);
      expect(count).toBe(3);
    } finally {
      handler.close();
    }
  });
});

describe("a full cluster (maxmemory reached, noeviction)", () => {
  it("fails the batch from the first record the full node refuses, quarantines nothing, names the cause, and counts everything once there is room", async () => {
    const now = testNowMs();
    const day = utcDay(now);
    const prefix = uniqueSitePrefix();
    const sites = Array.from({ length: 24 }, (_, i) => `${prefix}oom${i}`);
    const { victim: full, hit: fullSites } = await victimOf(sites, day);
    const okSites = sites.filter((s) => !fullSites.has(s));
    // Records 0..99 go to nodes with room; then every site, mixed.
    const sitesInOrder = [
      ...Array.from({ length: 100 }, (_, i) => at(okSites, i % okSites.length, "site with room")),
      ...Array.from({ length: 900 }, (_, i) => at(sites, (i * 5) % sites.length, "site")),
    ];
    const payloads = sitesInOrder.map((site, i) => ({
      user_id: `oom-${i % 400}`,
      site_id: site,
      event: "view",
      event_time: `${day} 10:00:00`,
    }));
    const expectedFirst = sitesInOrder.findIndex((s) => fullSites.has(s));
    const quarantineFile = `${cluster.dir}/quarantine-oom.jsonl`;
    const env = {
      REDIS_ENDPOINT: cluster.endpoint,
      REDIS_TLS: "false",
      QUARANTINE_FILE: quarantineFile,
    };
    const node = new Redis({ host: "127.0.0.1", port: full });
    const emitted: string[] = [];
    // Metrics on, their EMF lines (what CloudWatch reads from stdout) captured.
    vi.stubEnv("POWERTOOLS_METRICS_DISABLED", "false");
    const handler = createConsumerHandler(env, {
      now: () => now,
      logger: new Logger({ logLevel: "CRITICAL" }),
      metrics: new Metrics({ namespace: "sketchstream", serviceName: "consumer" }),
    });
    try {
      await node.config("SET", "maxmemory-policy", "noeviction");
      // Below what the node already uses: it refuses every write that needs memory.
      await node.config("SET", "maxmemory", "1");
      const event = kinesisEvent(payloads);
      vi.spyOn(process.stdout, "write").mockImplementation((chunk) => {
        emitted.push(String(chunk));
        return true;
      });
      const result = await handler(event).finally(() => vi.restoreAllMocks());
      expect(result.batchItemFailures).toEqual([
        { itemIdentifier: event.Records[expectedFirst]?.kinesis.sequenceNumber },
      ]);
      expect(existsSync(quarantineFile), "nothing quarantined: the data is valid").toBe(false);
      expect(
        emitted.some((l) => /"BatchFailures":1/.test(l) && /"cause":"out_of_memory"/.test(l)),
      ).toBe(true);

      // The operator makes room; Lambda retries from the reported record.
      await node.config("SET", "maxmemory", "0");
      const retried = await handler({ Records: event.Records.slice(expectedFirst) });
      expect(retried.batchItemFailures).toEqual([]);
    } finally {
      vi.unstubAllEnvs();
      await node.config("SET", "maxmemory", "0");
      node.disconnect();
      handler.close();
    }
    // Every site's key holds exactly its users: nothing lost to the refused writes.
    const usersBySite = new Map<string, Set<string>>();
    for (const p of payloads) {
      const users = usersBySite.get(p.site_id) ?? new Set();
      users.add(p.user_id);
      usersBySite.set(p.site_id, users);
    }
    for (const [site, users] of usersBySite) {
      const key = `uv:{site_id=${site}}:${day}`;
      const refKey = `ref-oom:{site_id=${site}}:${day}`;
      await redis.pfadd(refKey, ...users);
      expect(hllSame(await redis.getBuffer(key), await redis.getBuffer(refKey)), key).toBe(true);
    }
    expect([...usersBySite.keys()].some((s) => fullSites.has(s))).toBe(true);
  });
});
