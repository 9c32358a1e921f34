/**
 * The events metric (`ev:` keys) as the real consumer handler writes it, on a Redis Cluster of
 * this file's own: the `as-of` times and the touched set are global keys, which other files'
 * consumers would move on the shared cluster. Each event's identity is its `event_id`, else its
 * Kinesis record id (`shardId:sequenceNumber`, the event source mapping's `eventID`).
 */

import { readFileSync } from "node:fs";
import type { KinesisStreamEvent } from "aws-lambda";
import { Cluster } from "ioredis";
import { afterAll, assert, beforeAll, describe, expect, it } from "vitest";
import { mulberry32 } from "../../cli/generator.js";
import { createConsumerHandler } from "../../functions/consumer/handler.js";
import { type HllCommand, planBatch } from "../../functions/consumer/ingest.js";
import { ACL_RULES } from "../../functions/domain/acl.js";
import { at } from "../../functions/domain/arrays.js";
import {
  AS_OF_CONSUMER,
  AS_OF_EVENTS_SINCE,
  AS_OF_KEY,
  groupOfSite,
  sitesKey,
  touchedKey,
} from "../../functions/domain/keys.js";
import { DEFAULT_RETENTION } from "../../functions/domain/runtime-env.js";
import { type RunningRedisCluster, startRedisCluster } from "../../local/redis-cluster.js";
import { DAY_MS, testNowMs, utcDay } from "../helpers/clock.js";
import { uniqueSitePrefix } from "../helpers/env.js";
import { HLL_STANDARD_ERROR, hllSame } from "../helpers/hll.js";
import { generatorTime, kinesisEvent } from "../helpers/kinesis.js";
import { parseQuarantinedRecord } from "../helpers/quarantine.js";

const now = testNowMs();
const today = utcDay(now);
const yesterday = utcDay(now - DAY_MS);
const prefix = uniqueSitePrefix();
/** Sites whose `ev:` keys the restricted user below may write, and may not. */
const allowedSite = `${prefix}okev`;
const deniedSite = `${prefix}noev`;
const PARTIAL_PASSWORD = `p-${Math.random().toString(36).slice(2)}`;

let cluster: RunningRedisCluster;
let redis: Cluster;
let quarantineFile: string;
/** The handlers' clock; tests move it. */
let clock = now;
let handler: ReturnType<typeof createConsumerHandler>;

beforeAll(async () => {
  cluster = await startRedisCluster({
    primaries: 3,
    users: [
      {
        // The consumer's rules with `ev:` narrowed to one site: the other site's ev: commands
        // fail with NOPERM while everything else succeeds.
        name: "ev-partial",
        password: PARTIAL_PASSWORD,
        rules: ACL_RULES.consumer.replace("~ev:*", `~ev:{site_id=${allowedSite}}:*`),
      },
    ],
  });
  redis = new Cluster([{ host: "127.0.0.1", port: cluster.port }]);
  quarantineFile = `${cluster.dir}/quarantine.jsonl`;
  handler = createConsumerHandler(plainEnv(), { now: () => clock });
});

afterAll(async () => {
  handler?.close();
  redis?.disconnect();
  await cluster?.stop();
});

function plainEnv(): Record<string, string> {
  return { REDIS_ENDPOINT: cluster.endpoint, REDIS_TLS: "false", QUARANTINE_FILE: quarantineFile };
}

interface Payload {
  readonly user_id: string;
  readonly site_id: string;
  readonly event: string;
  readonly event_time: string;
  readonly event_id?: unknown;
}

function dailyKeys(family: "uv" | "ev", site: string, day: string, event: string): string[] {
  return [
    `${family}:{site_id=${site}}:${day}`,
    `${family}:{site_id=${site}}:event=${event}:${day}`,
  ];
}

/** The identity the events metric must count for record `i` of `event`. */
function identityOf(payload: Payload, event: KinesisStreamEvent, i: number): string {
  if (typeof payload.event_id === "string") return payload.event_id;
  return at(event.Records, i, "record").eventID;
}

async function stored(keys: Iterable<string>): Promise<Map<string, Buffer | null>> {
  const values = new Map<string, Buffer | null>();
  for (const key of keys) values.set(key, await redis.getBuffer(key));
  return values;
}

/** Keys whose HLL now differs (encoding byte or registers) from the snapshot. */
async function changedSince(before: Map<string, Buffer | null>): Promise<string[]> {
  const changed: string[] = [];
  for (const [key, value] of before) {
    const after = await redis.getBuffer(key);
    const same = value === null ? after === null : hllSame(after, value);
    if (!same) changed.push(key);
  }
  return changed;
}

async function score(member: string): Promise<number | null> {
  const [value] = await redis.zmscore(AS_OF_KEY, member);
  return value === null || value === undefined ? null : Number(value);
}

function quarantined() {
  let text = "";
  try {
    text = readFileSync(quarantineFile, "utf8");
  } catch {
    return [];
  }
  return text
    .trim()
    .split("\n")
    .filter((l) => l !== "")
    .map(parseQuarantinedRecord);
}

// First in the file: the cluster is new (no site yet), so this is a fresh install.
describe("events-since: from when the events metric is recorded", () => {
  const site = `${prefix}since`;
  const first = now - 3 * 3_600_000;
  const batch = (n: number, from: number) =>
    kinesisEvent(
      Array.from({ length: n }, (_, i) => ({
        user_id: `s-${from + i}`,
        site_id: site,
        event: "view",
        event_time: `${today} 01:00:00`,
      })),
    );

  it("is 0 (recorded from the start) when the first batch finds no site in the cluster", async () => {
    expect(await score(AS_OF_EVENTS_SINCE)).toBeNull();
    // A batch with nothing to store stores no time.
    clock = first - 3_600_000;
    const rejectedOnly = await handler(kinesisEvent(["not json", { site_id: site }]));
    expect(rejectedOnly.batchItemFailures).toEqual([]);
    expect(await score(AS_OF_EVENTS_SINCE)).toBeNull();

    clock = first;
    expect((await handler(batch(5, 0))).batchItemFailures).toEqual([]);
    expect(await score(AS_OF_EVENTS_SINCE)).toBe(0);
    expect(await score(AS_OF_CONSUMER)).toBe(first);
  });

  it("holds the first batch's time where sites existed before (an upgrade), and never moves later", async () => {
    // An older deployment: a site index, no events-since. A new execution environment.
    await redis.zrem(AS_OF_KEY, AS_OF_EVENTS_SINCE, AS_OF_CONSUMER);
    const upgraded = createConsumerHandler(plainEnv(), { now: () => clock });
    try {
      clock = first;
      const firstBatch = batch(5, 10);
      expect((await upgraded(firstBatch)).batchItemFailures).toEqual([]);
      expect(await score(AS_OF_EVENTS_SINCE)).toBe(first);

      clock = now;
      expect((await upgraded(batch(5, 20))).batchItemFailures).toEqual([]);
      expect((await upgraded(firstBatch)).batchItemFailures).toEqual([]);
      expect(await score(AS_OF_EVENTS_SINCE)).toBe(first);
      expect(await score(AS_OF_CONSUMER)).toBe(now);
    } finally {
      upgraded.close();
    }
  });
});

describe("ev: daily keys written by the consumer handler", () => {
  const sites = [`${prefix}a`, `${prefix}b`];
  const events = ["view", "like", "cart", "purchase"];
  const days = [now, now - DAY_MS];
  const random = mulberry32(11);
  // 3,000 records from 40 users: 60% carry an event_id drawn from 1,200 (so some are sent
  // more than once, as a producer's retries are), the rest are counted by their record id.
  const payloads: Payload[] = Array.from({ length: 3000 }, () => {
    const t = at(days, Math.floor(random() * days.length), "day") - Math.floor(random() * 3e6);
    const base = {
      user_id: `u-${Math.floor(random() * 40)}`,
      site_id: at(sites, Math.floor(random() * sites.length), "site"),
      event: at(events, Math.floor(random() * events.length), "event"),
      event_time: generatorTime(t),
    };
    return random() < 0.6 ? { ...base, event_id: `o-${Math.floor(random() * 1200)}` } : base;
  });
  const batch = kinesisEvent(payloads);
  const identities = new Map<string, Set<string>>();
  const users = new Map<string, Set<string>>();
  for (const [i, p] of payloads.entries()) {
    const day = p.event_time.slice(0, 10);
    for (const [family, element, truth] of [
      ["ev", identityOf(p, batch, i), identities],
      ["uv", p.user_id, users],
    ] as const) {
      for (const key of dailyKeys(family, p.site_id, day, p.event)) {
        const set = truth.get(key) ?? new Set<string>();
        set.add(element);
        truth.set(key, set);
      }
    }
  }
  const allKeys = [...identities.keys(), ...users.keys()];

  it("counts each key's distinct identities within HLL error, register for register", async () => {
    clock = now;
    expect((await handler(batch)).batchItemFailures).toEqual([]);
    expect(identities.size).toBe(sites.length * days.length * (1 + events.length));
    for (const [key, ids] of identities) {
      // The same registers as an HLL of exactly these identities...
      const refKey = key.replace(/^ev:/, "ref:");
      await redis.del(refKey);
      await redis.pfadd(refKey, ...ids);
      const [actual, reference] = [await redis.getBuffer(key), await redis.getBuffer(refKey)];
      expect(hllSame(actual, reference), `${key} equals an HLL of its identities`).toBe(true);
      // ...so its count is within the HLL's error of the exact number.
      const estimate = await redis.pfcount(key);
      const tolerance = Math.max(1, Math.ceil(3 * HLL_STANDARD_ERROR * ids.size));
      expect(
        Math.abs(estimate - ids.size),
        `${key}: ${estimate} vs ${ids.size}`,
      ).toBeLessThanOrEqual(tolerance);
      // It counts events, not visitors: there are far more of them than users.
      const visitors = await redis.pfcount(key.replace(/^ev:/, "uv:"));
      expect(estimate, key).toBeGreaterThan(2 * visitors);
    }
  });

  it("writes no other ev: key, gives each the deadline of its uv: twin, and adds no bookkeeping member", async () => {
    const found = new Set<string>();
    for (const node of redis.nodes("master")) {
      let cursor = "0";
      do {
        const [next, keys] = await node.scan(cursor, "MATCH", `ev:{site_id=${prefix}[ab]}:*`);
        for (const key of keys) found.add(key);
        cursor = next;
      } while (cursor !== "0");
    }
    expect([...found].sort()).toEqual([...identities.keys()].sort());
    for (const key of identities.keys()) {
      const twin = key.replace(/^ev:/, "uv:");
      const deadline = Number(await redis.call("EXPIRETIME", key));
      expect(deadline, key).toBeGreaterThan(now / 1000);
      expect(deadline, key).toBe(Number(await redis.call("EXPIRETIME", twin)));
    }
    // One touched member per (site, day[, event]) stands for both families.
    const touched = (await redis.smembers(touchedKey(groupOfSite(`${prefix}a`)))).filter((m) =>
      m.startsWith(`${prefix}a|`),
    );
    const expected = [...users.keys()]
      .filter((k) => k.startsWith(`uv:{site_id=${prefix}a}:`))
      .map((k) => {
        const m = /^uv:\{site_id=([^}]+)\}:(?:event=([a-z]+):)?(\d{4}-\d{2}-\d{2})$/.exec(k);
        assert.isNotNull(m, k);
        const [, site, event, day] = m;
        return event ? `${site}|${day}|${event}` : `${site}|${day}`;
      });
    expect(touched.sort()).toEqual(expected.sort());
  });

  it("a replayed batch, a bisected retry and a producer's re-send with the same event_ids change no register", async () => {
    const before = await stored(allKeys);
    // Lambda retries the same records: the whole batch, or from record k
    // (ReportBatchItemFailures), or each half (BisectBatchOnFunctionError).
    const k = 1234;
    for (const retry of [
      batch,
      { Records: batch.Records.slice(k) },
      { Records: batch.Records.slice(0, k) },
    ]) {
      expect((await handler(retry)).batchItemFailures).toEqual([]);
      expect(await changedSince(before)).toEqual([]);
    }
    // A producer sends its events with event_id again: new records, new sequence numbers.
    const withIds = payloads.filter((p) => p.event_id !== undefined);
    expect(withIds.length).toBeGreaterThan(1500);
    expect((await handler(kinesisEvent(withIds))).batchItemFailures).toEqual([]);
    expect(await changedSince(before)).toEqual([]);
  });

  it("events without event_id sent again in new records are new events", async () => {
    const before = await stored(identities.keys());
    const withoutIds = payloads.filter((p) => p.event_id === undefined);
    expect((await handler(kinesisEvent(withoutIds))).batchItemFailures).toEqual([]);
    // Every site-day key had such events, and now counts them twice.
    const changed = await changedSince(before);
    for (const site of sites) {
      for (const day of [today, yesterday])
        expect(changed).toContain(`ev:{site_id=${site}}:${day}`);
    }
  });
});

describe("identity of events without event_id", () => {
  it("counts the same event in two records (two sequence numbers) twice, one with the same event_id once", async () => {
    const site = `${prefix}twice`;
    const payload = {
      user_id: "u-1",
      site_id: site,
      event: "view",
      event_time: `${today} 09:00:00`,
    };
    const [uv, uvView] = dailyKeys("uv", site, today, "view");
    const [ev, evView] = dailyKeys("ev", site, today, "view");
    assert(uv && uvView && ev && evView);
    const twoRecords = kinesisEvent([payload, payload]);
    expect(new Set(twoRecords.Records.map((r) => r.eventID)).size).toBe(2);
    expect((await handler(twoRecords)).batchItemFailures).toEqual([]);
    expect(await redis.pfcount(ev)).toBe(2);
    expect(await redis.pfcount(evView)).toBe(2);
    expect(await redis.pfcount(uv)).toBe(1);
    // The same two records again (a retry) are the same two events.
    expect((await handler(twoRecords)).batchItemFailures).toEqual([]);
    expect(await redis.pfcount(ev)).toBe(2);
    // An event_id makes two records one event.
    const once = { ...payload, event_id: "checkout-7" };
    expect((await handler(kinesisEvent([once, once]))).batchItemFailures).toEqual([]);
    expect(await redis.pfcount(ev)).toBe(3);
    expect(await redis.pfcount(evView)).toBe(3);
  });
});

describe("a bad event_id", () => {
  it("is quarantined as invalid_event_id and counted in neither family", async () => {
    const site = `${prefix}badid`;
    const good = (user: string, eventId?: string) => ({
      user_id: user,
      site_id: site,
      event: "view",
      event_time: `${today} 10:00:00`,
      ...(eventId === undefined ? {} : { event_id: eventId }),
    });
    const badIds: unknown[] = [5, "", "x".repeat(129), null, { id: "x" }];
    const bad = badIds.map((eventId, i) => ({
      user_id: `bad-${i}`,
      site_id: site,
      event: "cart",
      event_time: `${today} 10:00:00`,
      event_id: eventId,
    }));
    const payloads = [good("good-1", "g-1"), ...bad, good("good-2")];
    const event = kinesisEvent(payloads);
    const quarantinedBefore = quarantined().length;
    expect((await handler(event)).batchItemFailures).toEqual([]);

    const lines = quarantined().slice(quarantinedBefore);
    expect(lines.map((l) => [l.reason, l.field, l.sequenceNumber])).toEqual(
      bad.map((_, i) => [
        "invalid_event_id",
        "event_id",
        event.Records[i + 1]?.kinesis.sequenceNumber,
      ]),
    );
    expect(lines[0]?.detail).toMatch(/event_id must be a string of 1-128 characters/);
    for (const family of ["uv", "ev"] as const) {
      const [daily, cart] = dailyKeys(family, site, today, "cart");
      assert(daily && cart);
      expect(await redis.pfcount(daily), daily).toBe(2);
      expect(await redis.exists(cart), cart).toBe(0);
    }
    const group = groupOfSite(site);
    expect(await redis.smismember(touchedKey(group), `${site}|${today}|cart`)).toEqual([0]);
    expect(await redis.smismember(sitesKey(group), `${site}|cart`)).toEqual([0]);
  });
});

describe("a failure of an ev: command", () => {
  it("fails the batch from the first record that command stores, and the retry completes it", async () => {
    const env = {
      ...plainEnv(),
      REDIS_AUTH: "password",
      REDIS_USER: "ev-partial",
      REDIS_PASSWORD: PARTIAL_PASSWORD,
    };
    const partial = createConsumerHandler(env, { now: () => clock, pfaddChunkSize: 2 });
    const payload = (site: string, i: number) => ({
      user_id: `f-${i}`,
      site_id: site,
      event: i % 2 === 0 ? "view" : "cart",
      event_time: `${today} 11:00:00`,
    });
    // Records 0-4 go to the allowed site (one is malformed), the denied site starts at 5.
    const payloads: unknown[] = [
      ...[0, 1, 2].map((i) => payload(allowedSite, i)),
      "not json",
      payload(allowedSite, 4),
      ...Array.from({ length: 9 }, (_, i) =>
        payload(i % 3 === 0 ? allowedSite : deniedSite, i + 5),
      ),
    ];
    const event = kinesisEvent(payloads);
    try {
      const result = await partial(event);
      expect(result.batchItemFailures).toEqual([
        { itemIdentifier: event.Records[6]?.kinesis.sequenceNumber },
      ]);
    } finally {
      partial.close();
    }
    // Everything before record 6 is stored; Lambda sends the rest again.
    const retry = await handler({ Records: event.Records.slice(6) });
    expect(retry.batchItemFailures).toEqual([]);
    const denied = payloads.filter(
      (p) => typeof p === "object" && p !== null && "site_id" in p && p.site_id === deniedSite,
    );
    expect(await redis.pfcount(`ev:{site_id=${deniedSite}}:${today}`)).toBe(denied.length);
    expect(await redis.pfcount(`ev:{site_id=${allowedSite}}:${today}`)).toBe(
      payloads.length - 1 - denied.length,
    );
  });
});

describe("planBatch: the ev: commands", () => {
  const site = "715";
  const data = (p: object | string) =>
    Buffer.from(typeof p === "string" ? p : JSON.stringify(p)).toString("base64");
  const records = [
    { user_id: "u0", event: "view", event_id: "e-0" },
    "not json",
    { user_id: "u2", event: "view" },
    { user_id: "u3", event: "cart", event_id: "e-3" },
    { user_id: "u4", event: "view", event_id: "e-4" },
    { user_id: "u5", event: "view" },
  ].map((p, i) => ({
    sequenceNumber: `${100 + i}`,
    partitionKey: "p",
    data: data(
      typeof p === "string" ? p : { ...p, site_id: site, event_time: `${today} 08:00:00` },
    ),
    ...(i === 5 ? {} : { eventId: `shardId-000000000002:${100 + i}` }),
  }));
  const plan = planBatch(records, { nowMs: now, retention: DEFAULT_RETENTION, pfaddChunkSize: 2 });
  const commandsOf = (key: string) => plan.commands.filter((c) => c.key === key);
  const summary = (commands: HllCommand[]) =>
    commands.map((c) => [c.name, "args" in c ? c.args : undefined, c.dependsFrom]);

  it("adds identities like user ids: same chunks, same dependsFrom, same deadline", () => {
    const [uv, uvView] = dailyKeys("uv", site, today, "view");
    const [ev, evView] = dailyKeys("ev", site, today, "view");
    assert(uv && uvView && ev && evView);
    // Record 5 has no eventId: it falls back to its stream and sequence number.
    expect(summary(commandsOf(ev))).toEqual([
      ["pfadd", ["e-0", "shardId-000000000002:102"], 0],
      ["pfadd", ["e-3", "e-4"], 3],
      ["pfadd", ["stream:105"], 5],
      ["expireat", undefined, 0],
    ]);
    expect(summary(commandsOf(evView))).toEqual([
      ["pfadd", ["e-0", "shardId-000000000002:102"], 0],
      ["pfadd", ["e-4", "stream:105"], 4],
      ["expireat", undefined, 0],
    ]);
    for (const [uvKey, evKey] of [
      [uv, ev],
      [uvView, evView],
    ] as const) {
      const dependsFrom = (key: string) => commandsOf(key).map((c) => c.dependsFrom);
      expect(dependsFrom(evKey)).toEqual(dependsFrom(uvKey));
      const deadline = (key: string) =>
        commandsOf(key).flatMap((c) => (c.name === "expireat" ? [c.at] : []));
      expect(deadline(evKey)).toEqual(deadline(uvKey));
    }
    expect(plan.keys).toBe(6);
  });

  it("stamps events-since with ZADD LT beside the consumer's ZADD GT, from the first valid record", () => {
    const asOf = plan.commands.flatMap((c) =>
      c.name === "asOf" ? [[c.member, c.mode, c.at, c.dependsFrom]] : [],
    );
    expect(asOf).toEqual([
      [AS_OF_CONSUMER, "GT", now, 0],
      [AS_OF_EVENTS_SINCE, "LT", now, 0],
    ]);
  });

  it("touches the same members as before the events metric", () => {
    const touched = plan.commands.find((c) => c.key === touchedKey(groupOfSite(site)));
    expect(touched && "args" in touched ? [...touched.args].sort() : []).toEqual(
      [`${site}|${today}`, `${site}|${today}|view`, `${site}|${today}|cart`].sort(),
    );
  });
});
