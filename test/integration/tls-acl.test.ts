/**
 * The TLS and ACL path, as in MemoryDB: a TLS-only cluster (throwaway CA made with openssl),
 * the consumer connecting as its least-privilege ACL user, a read-only reader user. Each role
 * reaches both HLL families (`uv:` visitors, `ev:` events) with its own commands only.
 */

import { readFileSync } from "node:fs";
import { Logger } from "@aws-lambda-powertools/logger";
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { connectRedis, type RedisConnection } from "../../functions/adapters/redis.js";
import { createConsumerHandler } from "../../functions/consumer/handler.js";
import { ACL_RULES } from "../../functions/domain/acl.js";
import {
  groupOfSite,
  LEGACY_SITES_KEY,
  LEGACY_TOUCHED_KEY,
  LOCK_KEY,
  pendingKey,
  TIME_ZONES_KEY,
  touchedKey,
} from "../../functions/domain/keys.js";
import { isoWeekOf } from "../../functions/domain/periods.js";
import { loadRuntimeConfig } from "../../functions/domain/runtime-env.js";
import { lambdaContext } from "../../local/lambda-context.js";
import { type RunningRedisCluster, startRedisCluster } from "../../local/redis-cluster.js";
import { runRollupLocally } from "../../state-machines/local-runner.js";
import { testNowMs, utcDay } from "../helpers/clock.js";
import { uniqueSitePrefix } from "../helpers/env.js";
import { kinesisEvent } from "../helpers/kinesis.js";

const CONSUMER_PASSWORD = `c-${Math.random().toString(36).slice(2)}`;
const READER_PASSWORD = `r-${Math.random().toString(36).slice(2)}`;
const ROLLUP_PASSWORD = `m-${Math.random().toString(36).slice(2)}`;

let cluster: RunningRedisCluster;
let reader: RedisConnection;

/** The CA file of the TLS cluster, which startRedisCluster writes when asked for TLS. */
function caFile(): string {
  if (cluster.caFile === undefined) throw new Error("the test cluster has no CA file (no TLS?)");
  return cluster.caFile;
}

function tlsEnv(user: string, password: string): Record<string, string> {
  return {
    REDIS_ENDPOINT: cluster.endpoint,
    REDIS_CLUSTER: "true",
    REDIS_TLS: "true",
    REDIS_TLS_CA_FILE: caFile(),
    REDIS_AUTH: "password",
    REDIS_USER: user,
    REDIS_PASSWORD: password,
    QUARANTINE_FILE: `${cluster.dir}/quarantine.jsonl`,
  };
}

beforeAll(async () => {
  cluster = await startRedisCluster({
    primaries: 3,
    tls: true,
    users: [
      { name: "consumer", password: CONSUMER_PASSWORD, rules: ACL_RULES.consumer },
      { name: "reader", password: READER_PASSWORD, rules: ACL_RULES.reader },
      { name: "rollup", password: ROLLUP_PASSWORD, rules: ACL_RULES.rollup },
    ],
  });
  reader = await connectRedis(loadRuntimeConfig(tlsEnv("reader", READER_PASSWORD)).redis);
});

afterAll(async () => {
  reader?.close();
  await cluster?.stop();
});

describe("TLS cluster with least-privilege ACL users", () => {
  const site = `${uniqueSitePrefix()}tls`;
  const now = testNowMs();
  const day = utcDay(now);
  const key = `uv:{site_id=${site}}:${day}`;
  const eventsKey = `ev:{site_id=${site}}:${day}`;

  it("serves TLS only, with a certificate from the throwaway CA", () => {
    expect(cluster.tls).toBe(true);
    expect(readFileSync(caFile(), "utf8")).toContain("BEGIN CERTIFICATE");
  });

  it("runs the consumer over TLS as the consumer ACL user", async () => {
    const handler = createConsumerHandler(tlsEnv("consumer", CONSUMER_PASSWORD), {
      now: () => now,
    });
    try {
      const payloads = Array.from({ length: 500 }, (_, i) => ({
        user_id: `u-${i}`,
        site_id: site,
        event: "purchase",
        event_time: `${day} 09:00:00`,
      }));
      const result = await handler(kinesisEvent(payloads));
      expect(result.batchItemFailures).toEqual([]);
    } finally {
      handler.close();
    }
    const estimate = await reader.client.pfcount(key);
    expect(Math.abs(estimate - 500)).toBeLessThanOrEqual(Math.ceil(500 * 3 * 0.0081));
    // One event per record: the events family was written under the same ACL user.
    const events = await reader.client.pfcount(eventsKey);
    expect(Math.abs(events - 500)).toBeLessThanOrEqual(Math.ceil(500 * 3 * 0.0081));
  });

  it("runs the rollup state machine as the rollup ACL user, scheduled and backfill", async () => {
    const week = isoWeekOf(day);
    for (const input of [{}, { from: day, to: day }]) {
      const result = await runRollupLocally({
        env: tlsEnv("rollup", ROLLUP_PASSWORD),
        input,
        startTime: new Date(now),
        fastTimers: true,
        handlerOptions: { logger: new Logger({ logLevel: "CRITICAL" }) },
      });
      expect(result.status, `${JSON.stringify(input)}: ${result.cause}`).toBe("SUCCEEDED");
    }
    // The reader sees the week, and may check that nothing is pending for it.
    const dayCount = await reader.client.pfcount(key);
    expect(dayCount).toBeGreaterThan(0);
    expect(await reader.client.pfcount(`uv:{site_id=${site}}:${week}`)).toBe(dayCount);
    const eventsDay = await reader.client.pfcount(eventsKey);
    expect(await reader.client.pfcount(`ev:{site_id=${site}}:${week}`)).toBe(eventsDay);
    expect(await reader.client.smismember(touchedKey(groupOfSite(site)), `${site}|${day}`)).toEqual(
      [0],
    );
  });

  it("lets the rollup merge ev: keys, but not add to them or write other keys", async () => {
    const rollup = await connectRedis(loadRuntimeConfig(tlsEnv("rollup", ROLLUP_PASSWORD)).redis);
    const merged = `ev:{site_id=${site}}:${day}:acl-check`;
    try {
      expect(await rollup.client.pfmerge(merged, eventsKey)).toBe("OK");
      expect(await reader.client.pfcount(merged)).toBe(await reader.client.pfcount(eventsKey));
      // It merges and never reads a count.
      await expect(rollup.client.pfcount(merged)).rejects.toThrow(/NOPERM/);
      expect(await rollup.client.del(merged)).toBe(1);
      await expect(rollup.client.pfadd(eventsKey, "intruder")).rejects.toThrow(/NOPERM/);
      await expect(rollup.client.pfmerge(`xv:{site_id=${site}}:${day}`, eventsKey)).rejects.toThrow(
        /NOPERM/,
      );
    } finally {
      rollup.close();
    }
  });

  it("lets the reader read counts and expiries but not write or read other keys", async () => {
    expect(Number(await reader.client.call("EXPIRETIME", key))).toBeGreaterThan(now / 1000);
    await expect(reader.client.pfadd(key, "intruder")).rejects.toThrow(/NOPERM/);
    await expect(reader.client.del(key)).rejects.toThrow(/NOPERM/);
    await expect(reader.client.get(key)).rejects.toThrow(/NOPERM/);
    await expect(reader.client.pfcount("secret:{x}")).rejects.toThrow(/NOPERM/);
    // The events family alike: counts and expiries, nothing else.
    expect(await reader.client.pfcount(eventsKey)).toBeGreaterThan(0);
    expect(Number(await reader.client.call("EXPIRETIME", eventsKey))).toBeGreaterThan(now / 1000);
    await expect(reader.client.pfadd(eventsKey, "intruder")).rejects.toThrow(/NOPERM/);
    await expect(reader.client.del(eventsKey)).rejects.toThrow(/NOPERM/);
    await expect(reader.client.get(eventsKey)).rejects.toThrow(/NOPERM/);
    await expect(reader.client.pfmerge(`ev:{site_id=${site}}:copy`, eventsKey)).rejects.toThrow(
      /NOPERM/,
    );
  });

  it("denies the consumer anything beyond its writes", async () => {
    const consumer = await connectRedis(
      loadRuntimeConfig(tlsEnv("consumer", CONSUMER_PASSWORD)).redis,
    );
    try {
      await expect(consumer.client.get(key)).rejects.toThrow(/NOPERM/);
      await expect(consumer.client.del(key)).rejects.toThrow(/NOPERM/);
      await expect(consumer.client.get(eventsKey)).rejects.toThrow(/NOPERM/);
      await expect(consumer.client.del(eventsKey)).rejects.toThrow(/NOPERM/);
      await expect(consumer.client.pfmerge(`ev:{site_id=${site}}:copy`, eventsKey)).rejects.toThrow(
        /NOPERM/,
      );
      await expect(consumer.client.pfadd("other:{x}", "a")).rejects.toThrow(/NOPERM/);
      await expect(consumer.client.call("FLUSHALL")).rejects.toThrow(/NOPERM/);
      // Of the bookkeeping, only its groups' touched sets and site indexes: not what the
      // rollup owns, and the single-slot sets of older versions only to ask whether they exist.
      const group = groupOfSite(site);
      await expect(consumer.client.sadd(pendingKey(group), `${site}|${day}`)).rejects.toThrow(
        /NOPERM/,
      );
      await expect(consumer.client.exists(LOCK_KEY)).rejects.toThrow(/NOPERM/);
      await expect(consumer.client.sadd(LEGACY_TOUCHED_KEY, `${site}|${day}`)).rejects.toThrow(
        /NOPERM/,
      );
      await expect(consumer.client.sadd(LEGACY_SITES_KEY, site)).rejects.toThrow(/NOPERM/);
      expect(await consumer.client.exists(LEGACY_SITES_KEY)).toBe(0);
    } finally {
      consumer.close();
    }
  });

  it("lets the consumer read the zone registry (HMGET) but change nothing in it", async () => {
    const consumer = await connectRedis(
      loadRuntimeConfig(tlsEnv("consumer", CONSUMER_PASSWORD)).redis,
    );
    try {
      expect(await consumer.client.hmget(TIME_ZONES_KEY, site, `${site}-none`)).toEqual([
        null,
        null,
      ]);
      // The registry is read-only to it (%R~): even the commands it may run elsewhere.
      await expect(consumer.client.expireat(TIME_ZONES_KEY, 1, "NX")).rejects.toThrow(/NOPERM/);
      await expect(consumer.client.sadd(TIME_ZONES_KEY, "x")).rejects.toThrow(/NOPERM/);
      await expect(consumer.client.hset(TIME_ZONES_KEY, site, "UTC")).rejects.toThrow(/NOPERM/);
      await expect(consumer.client.hdel(TIME_ZONES_KEY, site)).rejects.toThrow(/NOPERM/);
      await expect(consumer.client.hget(TIME_ZONES_KEY, site)).rejects.toThrow(/NOPERM/);
    } finally {
      consumer.close();
    }
  });

  it("refuses a wrong password, and a plain-text client gets no answer", async () => {
    const wrong = await connectRedis(loadRuntimeConfig(tlsEnv("reader", "wrong-password")).redis);
    try {
      await expect(wrong.client.pfcount(key)).rejects.toThrow();
    } finally {
      wrong.close();
    }
    const plain = await connectRedis(
      loadRuntimeConfig({ ...tlsEnv("reader", READER_PASSWORD), REDIS_TLS: "false" }).redis,
      {},
      { connectTimeoutMs: 500 },
    );
    try {
      const outcome = await Promise.race([
        plain.client.pfcount(key).then(
          () => "answered",
          () => "refused",
        ),
        new Promise((resolve) => setTimeout(() => resolve("no answer"), 2000)),
      ]);
      expect(outcome).not.toBe("answered");
    } finally {
      plain.close();
    }
  });

  it("rotates the consumer's password mid-run: after CLIENT KILL USER the next batch reconnects with the new one, no failed invocation", async () => {
    const secretArn = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:sketchstream-consumer";
    let secret = CONSUMER_PASSWORD;
    const reads: string[] = [];
    const { REDIS_PASSWORD: _password, ...withoutPassword } = tlsEnv("consumer", "");
    // The Secrets Manager edge: the handler reads the secret for every new connection.
    const handler = createConsumerHandler(
      { ...withoutPassword, REDIS_PASSWORD_SECRET_ARN: secretArn },
      {
        now: () => now,
        redisDeps: {
          resolveSecret: async (arn) => {
            reads.push(arn);
            return secret;
          },
        },
      },
    );
    const rotationKey = `uv:{site_id=${site}rot}:${day}`;
    const batch = (from: number) =>
      kinesisEvent(
        Array.from({ length: 200 }, (_, i) => ({
          user_id: `r-${from + i}`,
          site_id: `${site}rot`,
          event: "view",
          event_time: `${day} 10:00:00`,
        })),
      );
    const admins = cluster.ports.map(
      (port) =>
        new Redis({
          host: "127.0.0.1",
          port,
          tls: { ca: readFileSync(caFile()) },
          maxRetriesPerRequest: 0,
        }),
    );
    try {
      expect((await handler(batch(0), lambdaContext())).batchItemFailures).toEqual([]);
      const readsBefore = reads.length;
      expect(readsBefore).toBeGreaterThan(0);

      const rotated = `c2-${Math.random().toString(36).slice(2)}`;
      for (const admin of admins)
        await admin.call("ACL", "SETUSER", "consumer", "resetpass", `>${rotated}`);
      secret = rotated;
      let killed = 0;
      for (const admin of admins) killed += Number(await admin.client("KILL", "USER", "consumer"));
      expect(killed).toBeGreaterThan(0);

      const second = await handler(batch(200), lambdaContext());
      expect(second.batchItemFailures).toEqual([]);
      expect(reads.length).toBeGreaterThan(readsBefore);
      expect(new Set(reads)).toEqual(new Set([secretArn]));
      const estimate = await reader.client.pfcount(rotationKey);
      expect(Math.abs(estimate - 400)).toBeLessThanOrEqual(Math.ceil(400 * 3 * 0.0081));

      // The old password no longer authenticates.
      const old = connectRedis(loadRuntimeConfig(tlsEnv("consumer", CONSUMER_PASSWORD)).redis);
      try {
        await expect(old.client.pfadd(rotationKey, "intruder")).rejects.toThrow();
      } finally {
        old.close();
      }
      expect(await reader.client.pfcount(rotationKey)).toBe(estimate);
    } finally {
      handler.close();
      for (const admin of admins) {
        await admin.call("ACL", "SETUSER", "consumer", "resetpass", `>${CONSUMER_PASSWORD}`);
        admin.disconnect();
      }
    }
  });
});
