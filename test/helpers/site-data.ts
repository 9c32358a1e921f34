/**
 * A site's data as the pipeline leaves it, for the offboarding tests: counting keys of both
 * metrics for days, their weeks and months, per event type and not, a backfill's `:rebuild`
 * key, the event-type set, members of the site index and of the touched and pending sets (the
 * site's bookkeeping group's, and on request the single-slot sets of older versions too), and
 * a zone. Key names come from functions/domain/keys.ts, so they are the documented formats.
 * And what every node of a cluster holds, to check a deletion against.
 */

import type { Cluster, Redis } from "ioredis";
import {
  countingKey,
  groupOfSite,
  LEGACY_PENDING_KEY,
  LEGACY_SITES_KEY,
  LEGACY_TOUCHED_KEY,
  METRICS,
  pendingKey,
  siteEventTypesKey,
  siteIndexMember,
  sitesKey,
  TIME_ZONES_KEY,
  touchedKey,
  touchedMember,
} from "../../functions/domain/keys.js";
import { isoWeekOf, monthOf } from "../../functions/domain/periods.js";
import { daysAgo, testNowMs } from "./clock.js";

export interface SeededSite {
  readonly site: string;
  /** Every key written, the event-type set included. */
  readonly keys: readonly string[];
  /** Members of the site index, touched and pending sets: the group's, then the legacy ones. */
  readonly index: readonly string[];
  readonly touched: readonly string[];
  readonly pending: readonly string[];
  readonly timeZone: string;
}

export interface SeedOptions {
  /**
   * Also members in the single-slot sets of older versions (keys.ts LEGACY_*), as a deployment
   * has them until its next rollup: the site in the legacy index, a day in each legacy set.
   * Only on a cluster no rollup runs on (a rollup drains them).
   */
  readonly legacy?: boolean;
}

export const SEED_EVENTS = ["view", "purchase"] as const;

/**
 * Writes site `site`'s data: 3 days (and their weeks and months) x (all events + each of
 * SEED_EVENTS) x both metrics, a week's `:rebuild` key, the event-type set; index, touched
 * and pending members; a zone. Half the keys have an expiry, as the consumer sets it.
 */
export async function seedSite(
  redis: Cluster | Redis,
  site: string,
  zone: string,
  options: SeedOptions = {},
): Promise<SeededSite> {
  const now = testNowMs();
  const days = [daysAgo(1, now), daysAgo(9, now), daysAgo(40, now)];
  const labels = [...new Set(days.flatMap((day) => [day, isoWeekOf(day), monthOf(day)]))];
  const keys: string[] = [];
  for (const metric of METRICS) {
    for (const event of [undefined, ...SEED_EVENTS]) {
      for (const label of labels) keys.push(countingKey(metric, site, label, event));
    }
  }
  const firstWeek = isoWeekOf(days[0] ?? "");
  keys.push(`${countingKey("visitors", site, firstWeek)}:rebuild`);
  const expiresAt = Math.floor(now / 1000) + 86_400 * 30;
  await Promise.all(
    keys.map(async (key, i) => {
      await redis.pfadd(key, `${site}-a`, `${site}-b`, `${key}-${i}`);
      if (i % 2 === 0) await redis.expireat(key, expiresAt);
    }),
  );
  const eventTypes = siteEventTypesKey(site);
  await redis.sadd(eventTypes, ...SEED_EVENTS);
  const index = [siteIndexMember(site), ...SEED_EVENTS.map((e) => siteIndexMember(site, e))];
  const touched = days.flatMap((day) => [
    touchedMember(site, day),
    touchedMember(site, day, "view"),
  ]);
  const pending = [
    touchedMember(site, days[2] ?? ""),
    touchedMember(site, days[2] ?? "", "purchase"),
  ];
  const group = groupOfSite(site);
  await redis.sadd(sitesKey(group), ...index);
  await redis.sadd(touchedKey(group), ...touched);
  await redis.sadd(pendingKey(group), ...pending);
  await redis.hset(TIME_ZONES_KEY, site, zone);
  const seeded = { site, keys: [...keys, eventTypes], index, touched, pending, timeZone: zone };
  if (!options.legacy) return seeded;
  const legacy = {
    index: [siteIndexMember(site)],
    touched: [touchedMember(site, days[1] ?? "", "purchase")],
    pending: [touchedMember(site, days[1] ?? "")],
  };
  await redis.sadd(LEGACY_SITES_KEY, ...legacy.index);
  await redis.sadd(LEGACY_TOUCHED_KEY, ...legacy.touched);
  await redis.sadd(LEGACY_PENDING_KEY, ...legacy.pending);
  return {
    ...seeded,
    index: [...index, ...legacy.index],
    touched: [...touched, ...legacy.touched],
    pending: [...pending, ...legacy.pending],
  };
}

/** Every key of every primary whose name matches `pattern` (a full SCAN of each). */
export async function keysOnEveryNode(redis: Cluster, pattern: string): Promise<string[]> {
  const found: string[] = [];
  for (const node of redis.nodes("master")) {
    let cursor = "0";
    do {
      const [next, keys] = await node.scan(cursor, "MATCH", pattern, "COUNT", 1000);
      found.push(...keys);
      cursor = next;
    } while (cursor !== "0");
  }
  return [...new Set(found)].sort();
}

/** What a site has in Redis: each key's raw value and deadline, and its bookkeeping members. */
export interface SiteState {
  readonly keys: ReadonlyMap<string, { readonly value: string; readonly expireTime: number }>;
  readonly index: readonly string[];
  readonly touched: readonly string[];
  readonly pending: readonly string[];
  readonly timeZone: string | null;
}

/** Members of the sets that are the site's (`S`, `S|…`), all sets together, sorted. */
async function membersOf(redis: Cluster, keys: readonly string[], site: string): Promise<string[]> {
  const members = (await Promise.all(keys.map((key) => redis.smembers(key)))).flat();
  return members.filter((m) => m === site || m.startsWith(`${site}|`)).sort();
}

/**
 * The state of the site's data, found without knowing what was written: the keys by a SCAN of
 * every node for its hash tag. Raw values (GET), not PFCOUNT, which would rewrite the cache.
 */
export async function siteState(redis: Cluster, site: string): Promise<SiteState> {
  const group = groupOfSite(site);
  const names = await keysOnEveryNode(redis, `*{site_id=${site}}*`);
  const keys = new Map<string, { value: string; expireTime: number }>();
  for (const name of names) {
    const type = await redis.type(name);
    const value =
      type === "set"
        ? (await redis.smembers(name)).sort().join(",")
        : ((await redis.getBuffer(name))?.toString("base64") ?? "");
    keys.set(name, { value, expireTime: Number(await redis.call("EXPIRETIME", name)) });
  }
  return {
    keys,
    index: await membersOf(redis, [sitesKey(group), LEGACY_SITES_KEY], site),
    touched: await membersOf(redis, [touchedKey(group), LEGACY_TOUCHED_KEY], site),
    pending: await membersOf(redis, [pendingKey(group), LEGACY_PENDING_KEY], site),
    timeZone: await redis.hget(TIME_ZONES_KEY, site),
  };
}
