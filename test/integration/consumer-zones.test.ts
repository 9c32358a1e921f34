/**
 * Per-site time zones in the real consumer handler, on the shared test cluster: every event is
 * counted on its site's local day, its key expires by DESIGN.md's rule in the zone, the window
 * check uses local days, and a zone changed while events stream is used within 60 s with
 * nothing lost or counted twice. Expectations come from the zones' published rules
 * (test/helpers/zone-facts.ts), not from Intl, which the code under test uses.
 */

import { existsSync, readFileSync } from "node:fs";
import { Cluster } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createConsumerHandler } from "../../functions/consumer/handler.js";
import { ingestBatch, type StreamRecord } from "../../functions/consumer/ingest.js";
import { TIME_ZONES_KEY } from "../../functions/domain/keys.js";
import { DEFAULT_RETENTION } from "../../functions/domain/runtime-env.js";
import { ZoneCalendars } from "../../functions/domain/time-zones.js";
import { ZoneRegistryCache } from "../../functions/domain/zone-registry.js";
import { testNowMs, utcDay } from "../helpers/clock.js";
import { consumerEnv, redisSeed, uniqueSitePrefix } from "../helpers/env.js";
import { hllSame } from "../helpers/hll.js";
import { kinesisEvent } from "../helpers/kinesis.js";
import { parseQuarantinedRecord } from "../helpers/quarantine.js";
import { dayPlus, type FactZone, factDayOf, factMidnightMs } from "../helpers/zone-facts.js";

const now = testNowMs();
const prefix = uniqueSitePrefix();
const RETENTION_DAYS = DEFAULT_RETENTION.days;
const SECOND_MS = 1000;

let redis: Cluster;

beforeAll(() => {
  redis = new Cluster([redisSeed()]);
});

afterAll(async () => {
  const fields = await redis.hkeys(TIME_ZONES_KEY);
  const ours = fields.filter((f) => f.startsWith(prefix));
  if (ours.length > 0) await redis.hdel(TIME_ZONES_KEY, ...ours);
  redis.disconnect();
});

/** A handler of its own (an empty registry copy), on a clock the test moves. */
function consumerAt(clock: { ms: number }) {
  const env = consumerEnv();
  const handler = createConsumerHandler(env, { now: () => clock.ms });
  return { handler, env };
}

function readQuarantine(file: string) {
  if (!existsSync(file)) return [];
  return readFileSync(file, "utf8")
    .split("\n")
    .filter((line) => line !== "")
    .map(parseQuarantinedRecord);
}

function isoAt(ms: number): string {
  return new Date(ms).toISOString();
}

async function referenceOf(key: string, ids: readonly string[]): Promise<Buffer | null> {
  const ref = `${key}:reference`;
  await redis.del(ref);
  if (ids.length > 0) await redis.pfadd(ref, ...ids);
  const value = await redis.getBuffer(ref);
  await redis.del(ref);
  return value;
}

async function expectKeyHolds(key: string, ids: readonly string[]): Promise<void> {
  const stored = await redis.getBuffer(key);
  expect(stored, `${key} exists`).not.toBeNull();
  expect(hllSame(stored, await referenceOf(key, ids)), `${key} holds exactly ${ids}`).toBe(true);
}

describe("local days through the consumer handler", () => {
  const zones: FactZone[] = ["Pacific/Kiritimati", "America/St_Johns", "Asia/Kathmandu", "UTC"];
  const siteOf = (zone: FactZone) => `${prefix}${zone.replace(/\W/g, "").toLowerCase()}`;

  beforeAll(async () => {
    for (const zone of zones) {
      if (zone !== "UTC") await redis.hset(TIME_ZONES_KEY, siteOf(zone), zone);
    }
  });

  it("puts events a second either side of local midnight on the right local day, expiring by the zone's calendar", async () => {
    const clock = { ms: now };
    const { handler } = consumerAt(clock);
    // Two days before the test clock's UTC day: inside the window in every zone.
    const day = dayPlus(utcDay(now), -2);
    const payloads = zones.flatMap((zone) => {
      const midnight = factMidnightMs(zone, day);
      return [
        {
          user_id: "before",
          site_id: siteOf(zone),
          event: "view",
          event_time: isoAt(midnight - SECOND_MS),
        },
        { user_id: "at", site_id: siteOf(zone), event: "view", event_time: isoAt(midnight) },
        {
          user_id: "after",
          site_id: siteOf(zone),
          event: "view",
          event_time: isoAt(midnight + SECOND_MS),
        },
      ];
    });
    try {
      expect((await handler(kinesisEvent(payloads))).batchItemFailures).toEqual([]);
    } finally {
      handler.close();
    }
    for (const zone of zones) {
      const site = siteOf(zone);
      const previous = dayPlus(day, -1);
      await expectKeyHolds(`uv:{site_id=${site}}:${previous}`, ["before"]);
      await expectKeyHolds(`uv:{site_id=${site}}:${day}`, ["at", "after"]);
      await expectKeyHolds(`uv:{site_id=${site}}:event=view:${day}`, ["at", "after"]);
      // DESIGN.md: day D expires at the local midnight starting day D + 1 + RETENTION_DAYS.
      for (const [label, family] of [
        [day, "uv"],
        [day, "ev"],
        [previous, "uv"],
      ] as const) {
        const expected = factMidnightMs(zone, dayPlus(label, 1 + RETENTION_DAYS)) / 1000;
        const key = `${family}:{site_id=${site}}:${label}`;
        expect(Number(await redis.call("EXPIRETIME", key)), `${zone}: ${key}`).toBe(expected);
      }
    }
  });

  it("refuses an event whose local day has expired, even when its UTC day has not", async () => {
    // Local day D in Kiritimati expires at its midnight starting D + 1 + retention, which is
    // 14 h before the same UTC day ends: an event at 15:00 local on D (01:00Z, UTC day D too)
    // is refused from then on in Kiritimati and still taken for a UTC site.
    const zone: FactZone = "Pacific/Kiritimati";
    const day = dayPlus(utcDay(now), -RETENTION_DAYS - 1);
    const eventTime = factMidnightMs(zone, day) + 15 * 3_600_000;
    expect(factDayOf(zone, eventTime)).toBe(day);
    expect(utcDay(eventTime)).toBe(day);
    const localExpiry = factMidnightMs(zone, dayPlus(day, 1 + RETENTION_DAYS));
    const site = siteOf(zone);
    const utcSite = siteOf("UTC");
    const batch = (user: string) =>
      kinesisEvent(
        [site, utcSite].map((s) => ({
          user_id: user,
          site_id: s,
          event: "view",
          event_time: isoAt(eventTime),
        })),
      );

    const clock = { ms: localExpiry - SECOND_MS };
    const { handler, env } = consumerAt(clock);
    try {
      expect((await handler(batch("last-second"))).batchItemFailures).toEqual([]);
      clock.ms = localExpiry;
      expect((await handler(batch("too-late"))).batchItemFailures).toEqual([]);
    } finally {
      handler.close();
    }
    await expectKeyHolds(`uv:{site_id=${site}}:${day}`, ["last-second"]);
    await expectKeyHolds(`uv:{site_id=${utcSite}}:${day}`, ["last-second", "too-late"]);
    const refused = readQuarantine(env.QUARANTINE_FILE);
    expect(refused.map((r) => r.reason)).toEqual(["event_time_too_old"]);
    expect(JSON.parse(Buffer.from(refused[0]?.data ?? "", "base64").toString())).toMatchObject({
      site_id: site,
      user_id: "too-late",
    });
  });
});

describe("a zone changed while events stream", () => {
  it("is used by the next registry read, at most 60 s later; every event is counted once", async () => {
    const site = `${prefix}moving`;
    // 22:00Z: the UTC day before Kiritimati's (12:00 local the next day).
    const eventTime = Date.parse(`${utcDay(now - 86_400_000)}T22:00:00Z`);
    const utcLabel = utcDay(eventTime);
    const localLabel = factDayOf("Pacific/Kiritimati", eventTime);
    expect(localLabel).toBe(dayPlus(utcLabel, 1));

    const clock = { ms: now };
    const { handler } = consumerAt(clock);
    const usersByLabel = new Map<string, string[]>([
      [utcLabel, []],
      [localLabel, []],
    ]);
    const changedAt = now + 5 * SECOND_MS;
    try {
      // A batch every 10 s of the consumer's clock; the zone is set 5 s after the first.
      for (let second = 0; second <= 90; second += 10) {
        clock.ms = now + second * SECOND_MS;
        if (clock.ms > changedAt && (await redis.hget(TIME_ZONES_KEY, site)) === null) {
          await redis.hset(TIME_ZONES_KEY, site, "Pacific/Kiritimati");
        }
        const users = Array.from({ length: 20 }, (_, i) => `t${second}-u${i}`);
        const result = await handler(
          kinesisEvent(
            users.map((user_id) => ({
              user_id,
              site_id: site,
              event: "view",
              event_time: isoAt(eventTime),
            })),
          ),
        );
        expect(result.batchItemFailures).toEqual([]);
        // The registry was read at 0 s (no entry: UTC) and is read again from 60 s on.
        const label = second < 60 ? utcLabel : localLabel;
        usersByLabel.get(label)?.push(...users);
      }
    } finally {
      handler.close();
    }
    // Register for register: each event is in exactly the key of the zone in force.
    for (const [label, users] of usersByLabel) {
      await expectKeyHolds(`uv:{site_id=${site}}:${label}`, users);
      await expectKeyHolds(`uv:{site_id=${site}}:event=view:${label}`, users);
    }
  });
});

describe("a registry that cannot be read", () => {
  it("never fails a batch: sites keep their last zone, and each failure is logged and counted", async () => {
    const site = `${prefix}flaky`;
    await redis.hset(TIME_ZONES_KEY, site, "Pacific/Kiritimati");
    let registryUp = true;
    const registry = new ZoneRegistryCache({
      read: (sites) =>
        registryUp
          ? redis.hmget(TIME_ZONES_KEY, ...sites)
          : Promise.reject(new Error("CLUSTERDOWN The cluster is down")),
    });
    const calendars = new ZoneCalendars({ pastDays: RETENTION_DAYS + 4, futureDays: 2 });
    const counted: [string, number][] = [];
    const warnings: string[] = [];
    const eventTime = Date.parse(`${utcDay(now - 86_400_000)}T22:00:00Z`);
    const localLabel = factDayOf("Pacific/Kiritimati", eventTime);
    const records = (batch: number): StreamRecord[] =>
      Array.from({ length: 10 }, (_, i) => ({
        sequenceNumber: `${batch}${String(i).padStart(4, "0")}`,
        partitionKey: "p",
        eventId: `shardId-000000000000:${batch}-${i}`,
        data: Buffer.from(
          JSON.stringify({
            user_id: `b${batch}-u${i}`,
            site_id: site,
            event: "view",
            event_time: isoAt(eventTime),
          }),
        ).toString("base64"),
      }));
    let clockMs = now;
    const deps = {
      redis,
      quarantine: { send: () => Promise.reject(new Error("nothing should be quarantined")) },
      logger: { warn: (message: string) => warnings.push(message), error: () => {} },
      metrics: { count: (name: string, value: number) => counted.push([name, value]) },
      now: () => clockMs,
      zones: { registry, calendars },
    };
    const options = { retention: DEFAULT_RETENTION, deadlineMs: now + 120_000 };

    const first = await ingestBatch(records(1), deps, options);
    registryUp = false;
    clockMs = now + 61_000; // due for a read, which fails
    const second = await ingestBatch(records(2), deps, {
      ...options,
      deadlineMs: clockMs + 60_000,
    });
    expect([first.firstFailedIndex, second.firstFailedIndex]).toEqual([undefined, undefined]);
    expect(second.counted).toBe(10);
    // Both batches on Kiritimati's day: the last good zone held through the failure.
    await expectKeyHolds(
      `uv:{site_id=${site}}:${localLabel}`,
      [...records(1), ...records(2)].map((_, i) => `b${i < 10 ? 1 : 2}-u${i % 10}`),
    );
    expect(counted.filter(([name]) => name === "TimeZoneLoadFailures")).toEqual([
      ["TimeZoneLoadFailures", 1],
    ]);
    expect(warnings).toContain("time zones not loaded; sites keep their last zone");
  });
});
