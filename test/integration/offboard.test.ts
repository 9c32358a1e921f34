/**
 * Offboarding (functions/admin/offboard.ts) against the shared real Redis Cluster: a site's
 * keys (both metrics, days, weeks, months, event types, a `:rebuild` key, the event-type set)
 * are found by a SCAN of the node that holds the site's slot and deleted, with its members of
 * the site index and of the touched and pending sets (its bookkeeping group's, and the
 * single-slot sets of older versions a rollup has not drained yet) and its zone; sites whose ids share a
 * prefix with it (`S` itself a prefix, `S1`, `S-x`, another case) keep every key, value and
 * deadline. What is left is checked by a SCAN of every node, not by what was written. And the
 * same against a single redis-server (REDIS_CLUSTER=false).
 */

import { type ChildProcess, spawn } from "node:child_process";
import { Cluster, Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  addCounts,
  deleteSite,
  deleteSiteData,
  NO_COUNTS,
  type SiteDataCounts,
  type SiteDeletionProgress,
} from "../../functions/admin/offboard.js";
import { first } from "../../functions/domain/arrays.js";
import {
  groupOfSite,
  LEGACY_SITES_KEY,
  LEGACY_TOUCHED_KEY,
  pendingKey,
  siteEventTypesKey,
  sitesKey,
  TIME_ZONES_KEY,
  touchedKey,
  uniqueVisitorsKey,
} from "../../functions/domain/keys.js";
import { freePorts } from "../../local/redis-cluster.js";
import { daysAgo } from "../helpers/clock.js";
import { redisSeed, uniqueSitePrefix } from "../helpers/env.js";
import { keysOnEveryNode, type SeededSite, seedSite, siteState } from "../helpers/site-data.js";

let redis: Cluster;
const base = uniqueSitePrefix();

beforeAll(() => {
  redis = new Cluster([redisSeed()]);
});

afterAll(() => {
  redis?.disconnect();
});

/** What deleting a seeded site must report. */
function countsOf(seeded: SeededSite): SiteDataCounts {
  return {
    keys: seeded.keys.length,
    siteIndex: seeded.index.length,
    touched: seeded.touched.length,
    pending: seeded.pending.length,
    timeZone: 1,
  };
}

/** The primary that holds `site`'s slot, as host:port. */
async function ownerOf(site: string): Promise<string> {
  const slot = Number(await redis.cluster("KEYSLOT", siteEventTypesKey(site)));
  return first(redis.slots[slot] ?? [], `owner of slot ${slot}`);
}

/** A site id starting with `stem` whose slot is on another primary than `avoid`'s. */
async function siteOnAnotherNode(stem: string, avoid: string): Promise<string> {
  const owner = await ownerOf(avoid);
  for (let i = 0; i < 100; i++) {
    if ((await ownerOf(`${stem}${i}`)) !== owner) return `${stem}${i}`;
  }
  throw new Error("no site id found on another node");
}

describe("deleteSite on a Redis Cluster", () => {
  it("deletes every key, member and the zone of the site, on whichever node holds it, and nothing of sites with similar ids", async () => {
    const site = `${base}s`;
    // A second site on another primary: a SCAN of any one node cannot find both.
    const other = await siteOnAnotherNode(`${base}o`, site);
    const neighbours = [base, `${base}s1`, `${base}s-x`, `${base}S`, `${base}ss`];
    // The site also has members in the single-slot sets of older versions (before the next
    // rollup drains them), and so do its neighbours.
    const seeded = await seedSite(redis, site, "Europe/Paris", { legacy: true });
    const seededOther = await seedSite(redis, other, "Asia/Tokyo");
    for (const neighbour of neighbours) {
      await seedSite(redis, neighbour, "America/St_Johns", { legacy: true });
    }
    const before = new Map(
      await Promise.all(neighbours.map(async (n) => [n, await siteState(redis, n)] as const)),
    );
    // The check below sees what it should: all of the site's keys, in one slot of one node.
    expect([...(await siteState(redis, site)).keys.keys()].sort()).toEqual([...seeded.keys].sort());
    expect(await keysOnEveryNode(redis, `*${base}*`)).toEqual(
      expect.arrayContaining([...seeded.keys, ...seededOther.keys]),
    );

    const progress: SiteDeletionProgress[] = [];
    const step = await deleteSite(redis, site, {
      onProgress: (p) => progress.push(p),
      pageSize: 50,
    });
    expect(step).toEqual({
      site,
      deleted: countsOf(seeded),
      pages: progress.length,
      cursor: null,
    });
    expect(progress.at(-1)?.deleted).toEqual(countsOf(seeded));
    expect((await deleteSite(redis, other)).deleted).toEqual(countsOf(seededOther));

    for (const gone of [site, other]) {
      const after = await siteState(redis, gone);
      expect([...after.keys.keys()], gone).toEqual([]);
      expect(after).toMatchObject({ index: [], touched: [], pending: [], timeZone: null });
    }
    for (const neighbour of neighbours) {
      expect(await siteState(redis, neighbour), neighbour).toEqual(before.get(neighbour));
    }
  });

  it("is idempotent: a second run deletes nothing", async () => {
    const site = `${base}again`;
    const seeded = await seedSite(redis, site, "UTC");
    expect((await deleteSite(redis, site)).deleted).toEqual(countsOf(seeded));
    const second = await deleteSite(redis, site);
    expect(second.deleted).toEqual(NO_COUNTS);
    expect(second.cursor).toBeNull();
  });

  it("stops after its budget with a cursor, and resumes from it to the same result", async () => {
    const site = `${base}steps`;
    const seeded = await seedSite(redis, site, "Asia/Kathmandu", { legacy: true });
    let total = NO_COUNTS;
    let cursor: string | undefined;
    const cursors: string[] = [];
    for (let steps = 0; ; steps++) {
      expect(steps, "a bounded number of steps").toBeLessThan(10_000);
      const step = await deleteSiteData(redis, site, {
        budgetMs: 0,
        pageSize: 20,
        ...(cursor ? { cursor } : {}),
      });
      expect(step.pages).toBe(1);
      total = addCounts(total, step.deleted);
      if (step.cursor === null) break;
      cursors.push(step.cursor);
      cursor = step.cursor;
    }
    expect(total).toEqual(countsOf(seeded));
    // Steps resumed in every phase that took more than one page, in order: bookkeeping
    // first, then the keys, the zone last.
    const phases = [...new Set(cursors.map((c) => c.split(":")[0]))];
    const order = [
      "index",
      "touched",
      "pending",
      "legacy-index",
      "legacy-touched",
      "legacy-pending",
      "keys",
      "time-zone",
    ];
    expect(phases).toEqual(order.filter((phase) => phases.includes(phase)));
    expect(phases).toEqual(expect.arrayContaining(["legacy-pending", "keys", "time-zone"]));
    expect((await siteState(redis, site)).keys.size).toBe(0);
  });

  it("refuses a site id that could be a pattern or another key, and a cursor it did not give", async () => {
    for (const bad of ["*", "a}b", "a:b", "s|x", ""]) {
      await expect(deleteSite(redis, bad), bad).rejects.toThrow(/is not allowed: use 1-64/);
    }
    await expect(deleteSiteData(redis, `${base}x`, { cursor: "keys:abc" })).rejects.toThrow(
      /"keys:abc" is not a deletion cursor: pass back the cursor the previous step returned/,
    );
  });
});

describe("deleteSite on a single Redis node", () => {
  let server: ChildProcess | undefined;
  let single: Redis | undefined;

  afterAll(() => {
    single?.disconnect();
    server?.kill("SIGTERM");
  });

  it("scans the node itself", async () => {
    const port = first(await freePorts(1), "free port");
    server = spawn(
      "redis-server",
      ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
      { stdio: "ignore" },
    );
    // Refused until the server is up: the client retries every 50 ms, the PING waits for it.
    single = new Redis({ port, host: "127.0.0.1", retryStrategy: () => 50 });
    single.on("error", () => {});
    await single.ping();
    const day = daysAgo(1);
    const keys = [uniqueVisitorsKey("715", day), `ev:{site_id=715}:${day}`];
    await Promise.all(keys.map((k) => single?.pfadd(k, "u")));
    await single.pfadd(uniqueVisitorsKey("7150", day), "u");
    // 715 and 7150 share group 0 (FNV-1a 0x89ca4650 and 0x496cc920): one set holds both sites
    // members, and the single-slot sets of older versions hold some as well.
    const group = groupOfSite("715");
    expect(groupOfSite("7150")).toBe(group);
    await single.sadd(sitesKey(group), "715", "715|view", "7150");
    await single.sadd(touchedKey(group), `715|${day}`, `7150|${day}`);
    await single.sadd(pendingKey(group), `715|${day}|view`);
    await single.sadd(LEGACY_SITES_KEY, "715", "7150");
    await single.sadd(LEGACY_TOUCHED_KEY, `715|${day}|view`);
    await single.hset(TIME_ZONES_KEY, "715", "UTC", "7150", "UTC");

    const step = await deleteSite(single, "715");
    expect(step.deleted).toEqual({ keys: 2, siteIndex: 3, touched: 2, pending: 1, timeZone: 1 });
    expect((await single.keys("*")).sort()).toEqual(
      [
        uniqueVisitorsKey("7150", day),
        sitesKey(group),
        touchedKey(group),
        LEGACY_SITES_KEY,
        TIME_ZONES_KEY,
      ].sort(),
    );
    expect(await single.smembers(sitesKey(group))).toEqual(["7150"]);
    expect(await single.smembers(LEGACY_SITES_KEY)).toEqual(["7150"]);
    expect(await single.hkeys(TIME_ZONES_KEY)).toEqual(["7150"]);
  });
});
