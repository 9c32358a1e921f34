import { readFileSync } from "node:fs";
import { Cluster } from "ioredis";
import { afterAll, assert, beforeAll, describe, expect, it } from "vitest";
import { mulberry32 } from "../../cli/generator.js";
import { createConsumerHandler } from "../../functions/consumer/handler.js";
import { at, isNonEmpty } from "../../functions/domain/arrays.js";
import { groupOfSite, parseKey, touchedKey } from "../../functions/domain/keys.js";
import { DAY_MS, testNowMs, utcDay } from "../helpers/clock.js";
import { consumerEnv, redisSeed, uniqueSitePrefix } from "../helpers/env.js";
import { HLL_STANDARD_ERROR, hllSame } from "../helpers/hll.js";
import { generatorTime, kinesisEvent } from "../helpers/kinesis.js";

const EVENTS = ["view", "like", "cart", "purchase"] as const;

let redis: Cluster;
beforeAll(async () => {
  redis = new Cluster([redisSeed()]);
});
afterAll(async () => {
  await redis.quit();
});

/** Expected expiry of a daily key, computed here independently of the code under test. */
function dailyExpiry(day: string, retentionDays: number): number {
  return Date.parse(`${day}T00:00:00Z`) / 1000 + (1 + retentionDays) * 86_400;
}

describe("consumer handler against a real Redis Cluster", () => {
  const prefix = uniqueSitePrefix();
  const sites = [`${prefix}a`, `${prefix}b`, `${prefix}c`];
  const now = testNowMs();
  const days = [0, 1, 2, 9].map((back) => now - back * DAY_MS);
  const random = mulberry32(42);
  /** Exact elements per key: user ids under uv:, each record's identity under ev:. */
  const truth = new Map<string, Set<string>>();
  const payloads: {
    user_id: string;
    site_id: string;
    event: string;
    sku: string;
    amount: number;
    event_time: string;
  }[] = [];
  const add = (key: string, element: string) => {
    const set = truth.get(key) ?? new Set<string>();
    set.add(element);
    truth.set(key, set);
  };
  for (let i = 0; i < 3000; i++) {
    const site = at(sites, Math.floor(random() * sites.length), "site");
    const t =
      at(days, Math.floor(random() * days.length), "day") - Math.floor(random() * 3_600_000);
    const event = at(EVENTS, Math.floor(random() * EVENTS.length), "event type");
    const user = `u-${Math.floor(random() * 900)}-${Math.floor(random() * 9)}`;
    payloads.push({
      user_id: user,
      site_id: site,
      event,
      sku: "sku-1",
      amount: 3,
      event_time: generatorTime(t),
    });
  }
  // One batch, built once: replaying it sends the very same records (same record ids).
  const batch = kinesisEvent(payloads);
  for (const [i, p] of payloads.entries()) {
    const { site_id: site, event, event_time, user_id } = p;
    const day = event_time.slice(0, 10);
    const identity = at(batch.Records, i, "record").eventID;
    add(`uv:{site_id=${site}}:${day}`, user_id);
    add(`uv:{site_id=${site}}:event=${event}:${day}`, user_id);
    add(`ev:{site_id=${site}}:${day}`, identity);
    add(`ev:{site_id=${site}}:event=${event}:${day}`, identity);
  }
  const env = consumerEnv();
  const handler = createConsumerHandler(env, { now: () => now });
  afterAll(() => handler.close());

  it("writes every key of both families, named as specified, equal to a reference HLL of the same elements", async () => {
    const result = await handler(batch);
    expect(result.batchItemFailures).toEqual([]);
    expect(truth.size).toBeGreaterThan(60);
    for (const [key, ids] of truth) {
      const refKey = key.replace(/^(uv|ev):/, "ref-$1:");
      await redis.del(refKey);
      await redis.pfadd(refKey, ...ids);
      const [actual, reference] = await Promise.all([
        redis.getBuffer(key),
        redis.getBuffer(refKey),
      ]);
      expect(hllSame(actual, reference), `${key} equals its reference HLL`).toBe(true);
      const estimate = await redis.pfcount(key);
      const tolerance = Math.max(1, Math.ceil(3 * HLL_STANDARD_ERROR * ids.size));
      expect(
        Math.abs(estimate - ids.size),
        `${key}: ${estimate} vs exact ${ids.size}`,
      ).toBeLessThanOrEqual(tolerance);
    }
  });

  it("puts all of a site's keys in one cluster slot", async () => {
    for (const site of sites) {
      const keys = [...truth.keys()].filter((k) => k.includes(`:{site_id=${site}}:`));
      expect(keys.length).toBeGreaterThan(8);
      if (!isNonEmpty(keys)) throw new Error(`no keys for site ${site}`);
      const slots = new Set(await Promise.all(keys.map((k) => redis.cluster("KEYSLOT", k))));
      expect(slots.size).toBe(1);
      // And multi-key commands across the site's days really work (no CROSSSLOT).
      await expect(redis.pfcount(...keys)).resolves.toBeGreaterThan(0);
    }
  });

  it("expires each key at the end of its day plus the retention", async () => {
    for (const key of truth.keys()) {
      const { label } = parseKey(key).period;
      expect(await redis.call("EXPIRETIME", key), key).toBe(dailyExpiry(label, 62));
    }
  });

  it("records every touched (site, day) and (site, day, event) for the rollup", async () => {
    // Each site's members are in its own bookkeeping group's touched set.
    const checks = [...truth.keys()].map(async (key) => {
      const m = /^(?:uv|ev):\{site_id=([^}]+)\}:(?:event=([a-z]+):)?(\d{4}-\d{2}-\d{2})$/.exec(key);
      assert.isNotNull(m, key);
      const [, site = "", event, day] = m;
      const member = event ? `${site}|${day}|${event}` : `${site}|${day}`;
      return [member, await redis.sismember(touchedKey(groupOfSite(site)), member)] as const;
    });
    for (const [member, found] of await Promise.all(checks)) expect(found, member).toBe(1);
  });

  it("replaying the same batch leaves every HLL and every expiry unchanged", async () => {
    const before = new Map<string, [Buffer | null, unknown]>();
    for (const key of truth.keys())
      before.set(key, [await redis.getBuffer(key), await redis.call("EXPIRETIME", key)]);
    const result = await handler(batch);
    expect(result.batchItemFailures).toEqual([]);
    for (const [key, [value, expiry]] of before) {
      expect(hllSame(await redis.getBuffer(key), value), key).toBe(true);
      expect(await redis.call("EXPIRETIME", key)).toBe(expiry);
    }
  });

  it("never moves an expiry on later writes, even with a different retention", async () => {
    const later = createConsumerHandler(
      { ...env, RETENTION_DAYS: "30" },
      { now: () => now + 3_600_000 },
    );
    try {
      const result = await later(kinesisEvent(payloads.slice(0, 200)));
      expect(result.batchItemFailures).toEqual([]);
    } finally {
      later.close();
    }
    for (const key of truth.keys()) {
      expect(await redis.call("EXPIRETIME", key)).toBe(dailyExpiry(parseKey(key).period.label, 62));
    }
  });

  it("counts a number user_id as its decimal string and accepts ISO-8601 with an offset", async () => {
    const site = `${prefix}iso`;
    const day = utcDay(now);
    // 23:30 at -02:00 on the previous local day is 01:30 UTC on `day`.
    const local = new Date(Date.parse(`${day}T01:30:00Z`) - 2 * 3_600_000);
    const iso = `${local.toISOString().slice(0, 19)}-02:00`;
    const result = await handler(
      kinesisEvent([
        { user_id: 12345, site_id: site, event: "view", event_time: iso },
        { user_id: "12345", site_id: site, event: "view", event_time: `${day} 01:30:00` },
      ]),
    );
    expect(result.batchItemFailures).toEqual([]);
    expect(await redis.pfcount(`uv:{site_id=${site}}:${day}`)).toBe(1);
  });
});

describe("malformed records", () => {
  const prefix = uniqueSitePrefix();
  const site = `${prefix}m`;
  const now = testNowMs();
  const day = utcDay(now);
  const ok = (user: string) => ({
    user_id: user,
    site_id: site,
    event: "view",
    event_time: `${day} 10:00:00`,
  });
  const b64 = (text: string) => Buffer.from(text).toString("base64");
  const cases: { name: string; data: string; reason: string }[] = [
    { name: "bad base64", data: "%%%not-base64%%%", reason: "bad_base64" },
    {
      name: "bad utf-8",
      data: Buffer.from([0xff, 0xfe, 0x7b]).toString("base64"),
      reason: "bad_utf8",
    },
    { name: "bad JSON", data: b64("{user_id: oops"), reason: "bad_json" },
    { name: "not an object", data: b64("[1,2,3]"), reason: "not_an_object" },
    {
      name: "missing user_id",
      data: b64(JSON.stringify({ site_id: site, event: "view", event_time: `${day} 10:00:00` })),
      reason: "missing_field",
    },
    {
      name: "wrong-typed site_id",
      data: b64(JSON.stringify({ ...ok("u1"), site_id: { x: 1 } })),
      reason: "wrong_type",
    },
    {
      name: "wrong-typed user_id",
      data: b64(JSON.stringify({ ...ok("u1"), user_id: true })),
      reason: "wrong_type",
    },
    {
      name: "site_id forging a hash tag",
      data: b64(JSON.stringify({ ...ok("u1"), site_id: "1}:x{2" })),
      reason: "invalid_site_id",
    },
    {
      name: "site_id with a colon",
      data: b64(JSON.stringify({ ...ok("u1"), site_id: "a:b" })),
      reason: "invalid_site_id",
    },
    {
      name: "bad event",
      data: b64(JSON.stringify({ ...ok("u1"), event: "View Page" })),
      reason: "invalid_event",
    },
    {
      name: "unparseable event_time",
      data: b64(JSON.stringify({ ...ok("u1"), event_time: "yesterday" })),
      reason: "invalid_event_time",
    },
    {
      name: "impossible date",
      data: b64(JSON.stringify({ ...ok("u1"), event_time: "2024-02-30 10:00:00" })),
      reason: "invalid_event_time",
    },
    {
      name: "too old",
      data: b64(JSON.stringify({ ...ok("u1"), event_time: "2001-01-01 00:00:00" })),
      reason: "event_time_too_old",
    },
    {
      name: "in the future",
      data: b64(JSON.stringify({ ...ok("u1"), event_time: generatorTime(now + 3 * DAY_MS) })),
      reason: "event_time_in_future",
    },
    {
      name: "oversized user_id",
      data: b64(JSON.stringify(ok("u".repeat(257)))),
      reason: "user_id_too_long",
    },
    { name: "empty user_id", data: b64(JSON.stringify(ok(""))), reason: "user_id_empty" },
    {
      name: "event_id not a string",
      data: b64(JSON.stringify({ ...ok("u1"), event_id: 42 })),
      reason: "invalid_event_id",
    },
  ];

  it("quarantines each with its reason and sequence number, counts the rest, does not throw", async () => {
    const env = consumerEnv();
    const handler = createConsumerHandler(env, { now: () => now });
    try {
      // Interleave good and bad records: good ones before, between and after the bad ones.
      const raw: string[] = [];
      const goodUsers: string[] = [];
      for (const [i, c] of cases.entries()) {
        goodUsers.push(`good-${i}`);
        raw.push(b64(JSON.stringify(ok(`good-${i}`))), c.data);
      }
      const event = kinesisEvent(raw, { raw: true });
      const result = await handler(event);
      expect(result.batchItemFailures).toEqual([]);
      const lines = readFileSync(env.QUARANTINE_FILE, "utf8")
        .trim()
        .split("\n")
        .map((l) => JSON.parse(l));
      expect(lines).toHaveLength(cases.length);
      for (const [i, c] of cases.entries()) {
        const record = event.Records[2 * i + 1];
        expect(lines[i], c.name).toMatchObject({
          reason: c.reason,
          sequenceNumber: record?.kinesis.sequenceNumber,
          data: c.data,
        });
      }
      expect(await redis.pfcount(`uv:{site_id=${site}}:${day}`)).toBe(goodUsers.length);
      expect(await redis.pfcount(`ev:{site_id=${site}}:${day}`)).toBe(goodUsers.length);
    } finally {
      handler.close();
    }
  });

  it("fails the first invocation with a message naming a missing setting", async () => {
    const handler = createConsumerHandler({ REDIS_ENDPOINT: "localhost:notaport" });
    await expect(handler(kinesisEvent([ok("u1")]))).rejects.toThrow(
      /REDIS_ENDPOINT.*host:port[\s\S]*QUARANTINE/,
    );
  });
});
