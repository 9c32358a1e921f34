/**
 * A quarantine sink that cannot store makes the batch fail from the first rejected record,
 * through the real consumer handler against the shared Redis Cluster. The sink fails for real:
 * QUARANTINE_FILE names a path under /dev/null (a file), which nobody can create, root
 * included. Lambda then retries from the reported record; the replay, with a working sink,
 * must store everything and quarantine every rejected record.
 *
 * Valid records before the first rejected one go to one site, those after it to another, so
 * the first site's daily HLL must hold exactly the ids stored before the failure.
 */

import { existsSync, readFileSync } from "node:fs";
import { Cluster } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createConsumerHandler } from "../../functions/consumer/handler.js";
import { at } from "../../functions/domain/arrays.js";
import { testNowMs, utcDay } from "../helpers/clock.js";
import { consumerEnv, redisSeed, uniqueSitePrefix } from "../helpers/env.js";
import { hllSame } from "../helpers/hll.js";
import { kinesisEvent } from "../helpers/kinesis.js";
import { parseQuarantinedRecord } from "../helpers/quarantine.js";

const UNWRITABLE = "/dev/null/sketchstream/quarantine.jsonl";

let redis: Cluster;
beforeAll(async () => {
  redis = new Cluster([redisSeed()]);
});
afterAll(async () => {
  await redis.quit();
});

/** Writes a reference HLL of exactly `ids` (under `ref:`) and returns it with the real one. */
async function withReference(key: string, ids: readonly string[]) {
  const refKey = key.replace(/^uv:/, "ref:");
  await redis.del(refKey);
  await redis.pfadd(refKey, ...ids);
  const [actual, reference] = await Promise.all([redis.getBuffer(key), redis.getBuffer(refKey)]);
  const [count, refCount] = await Promise.all([redis.pfcount(key), redis.pfcount(refKey)]);
  return { actual, reference, count, refCount };
}

describe("a failing quarantine sink", () => {
  const prefix = uniqueSitePrefix();
  const before = `${prefix}before`;
  const after = `${prefix}after`;
  const now = testNowMs();
  const day = utcDay(now);
  const timeAt = (hh: string) => `${day} ${hh}:00:00`;
  const click = (site: string, user: string, event = "view", hh = "08") => ({
    user_id: user,
    site_id: site,
    event,
    sku: "sku-1",
    amount: 3,
    event_time: timeAt(hh),
  });

  // 0..39 valid (site `before`, 25 distinct users, repeats included); 40 rejected (bad
  // site_id); 41..59 valid (site `after`); 60 rejected (not JSON); 61..69 valid (`after`).
  const beforeIds = Array.from({ length: 40 }, (_, i) => `u-${i % 25}`);
  const payloads: unknown[] = [
    ...beforeIds.map((u, i) => click(before, u, i % 3 === 0 ? "cart" : "view")),
    { ...click(before, "u-bad"), site_id: "not a site!" },
    ...Array.from({ length: 19 }, (_, i) => click(after, `a-${i}`)),
    "{ this is not json",
    ...Array.from({ length: 9 }, (_, i) => click(after, `a-${i + 100}`, "like", "09")),
  ];
  const FIRST_REJECTED = 40;
  const REJECTED = [40, 60];
  const afterIds = payloads
    .slice(FIRST_REJECTED)
    .filter((p): p is { user_id: string; site_id: string } => typeof p === "object")
    .filter((p) => p.site_id === after)
    .map((p) => p.user_id);
  const event = kinesisEvent(payloads);
  const seq = (i: number) => at(event.Records, i, "record").kinesis.sequenceNumber;
  const dailyKey = (site: string) => `uv:{site_id=${site}}:${day}`;

  it("fails the batch from the first rejected record, with the records before it stored", async () => {
    const env = consumerEnv({ QUARANTINE_FILE: UNWRITABLE });
    const handler = createConsumerHandler(env, { now: () => now });
    let result: Awaited<ReturnType<typeof handler>>;
    try {
      result = await handler(event);
    } finally {
      handler.close();
    }
    expect(result.batchItemFailures).toEqual([{ itemIdentifier: seq(FIRST_REJECTED) }]);
    expect(existsSync(UNWRITABLE)).toBe(false);

    // Everything before the first rejected record is stored: exactly its 25 distinct users.
    const daily = await withReference(dailyKey(before), beforeIds);
    expect(daily.count).toBeGreaterThan(0);
    expect(daily.count).toBe(daily.refCount);
    expect(hllSame(daily.actual, daily.reference), `${dailyKey(before)} equals its reference`).toBe(
      true,
    );
    expect(new Set(beforeIds).size).toBe(25);
    expect(daily.count).toBe(25);
    for (const type of ["view", "cart"]) {
      const key = `uv:{site_id=${before}}:event=${type}:${day}`;
      const ids = beforeIds.filter((_, i) => (i % 3 === 0 ? "cart" : "view") === type);
      const perEvent = await withReference(key, ids);
      expect(hllSame(perEvent.actual, perEvent.reference), `${key} equals its reference`).toBe(
        true,
      );
    }
  });

  it("stores everything and quarantines each rejected record on a replay from the failed one", async () => {
    const env = consumerEnv();
    const file = env.QUARANTINE_FILE;
    const handler = createConsumerHandler(env, { now: () => now });
    const replay = { Records: event.Records.slice(FIRST_REJECTED) };
    try {
      const result = await handler(replay);
      expect(result.batchItemFailures).toEqual([]);
    } finally {
      handler.close();
    }

    const lines = readFileSync(file, "utf8")
      .split("\n")
      .filter((l) => l !== "")
      .map(parseQuarantinedRecord);
    expect(lines.map((r) => r.sequenceNumber)).toEqual(REJECTED.map(seq));
    expect(lines.map((r) => [r.reason, r.field])).toEqual([
      ["invalid_site_id", "site_id"],
      ["bad_json", undefined],
    ]);
    for (const [n, r] of lines.entries()) {
      const original = event.Records[at(REJECTED, n, "rejected record")];
      expect(r.data).toBe(original?.kinesis.data);
      expect(r.partitionKey).toBe(original?.kinesis.partitionKey);
      expect(r.eventId).toBe(original?.eventID);
      expect(r.quarantinedAt).toBe(new Date(now).toISOString());
    }

    // The site stored before the failure is unchanged; the one after it is complete.
    const first = await withReference(dailyKey(before), beforeIds);
    expect(hllSame(first.actual, first.reference)).toBe(true);
    const second = await withReference(dailyKey(after), afterIds);
    expect(afterIds).toHaveLength(28);
    expect(second.count).toBe(28);
    expect(
      hllSame(second.actual, second.reference),
      `${dailyKey(after)} equals its reference`,
    ).toBe(true);
    for (const [type, ids] of [
      ["view", afterIds.slice(0, 19)],
      ["like", afterIds.slice(19)],
    ] as const) {
      const key = `uv:{site_id=${after}}:event=${type}:${day}`;
      const perEvent = await withReference(key, ids);
      expect(hllSame(perEvent.actual, perEvent.reference), `${key} equals its reference`).toBe(
        true,
      );
    }
  });
});
