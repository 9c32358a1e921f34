/**
 * Offboarding: delete everything sketchstream stores about one site, in bounded steps.
 *
 * What a site has (functions/domain/keys.ts, README "Keys"):
 * - its counting keys, `uv:{site_id=S}:…` and `ev:{site_id=S}:…` (days, weeks, months, per
 *   event type, a backfill's `:rebuild` keys), and its event-type set
 *   `sketchstream:{site_id=S}:event-types`: all in the slot of the hash tag `{site_id=S}`, so
 *   all on the one primary that owns that slot. They are found with SCAN on that node only
 *   (no other node can hold them), MATCH `[ue]v:{site_id=S}:*`, COUNT-bounded pages, and
 *   UNLINKed page by page (UNLINK frees memory off the main thread; one multi-key UNLINK per
 *   page, legal since every key shares the slot);
 * - its members of the rollup's bookkeeping sets: the site index (`S` and `S|event`), the
 *   touched and pending sets (`S|day`, `S|day|event`), found with SSCAN MATCH `S|*`: the sets
 *   of the site's bookkeeping group (keys.ts groupOfSite), then the single-slot sets of older
 *   versions, which hold members until the next rollup drains them;
 * - its entry in the zone registry.
 *
 * Glob patterns: a site id is `[A-Za-z0-9_-]` (assertSiteId), none of which is special in
 * Redis globs, and `{`, `}`, `=`, `:` and `|` are literal there; `[ue]` is the one class, so
 * `[ue]v:{site_id=S}:*` matches the two families of S and nothing of `S1` or `S-x`.
 *
 * Order: the bookkeeping first, so that a rollup starting meanwhile finds no work for the
 * site and recreates none of its week or month keys; then the keys; the zone last. Every step
 * is idempotent: a second run deletes nothing. Work a consumer or a running rollup does for
 * the site while it is deleted may recreate keys: stop the site's events first, and run the
 * deletion again after the next rollup (README, "Offboarding a site").
 *
 * A deletion can take longer than one request may (SCAN walks every key of the node): it runs
 * in steps that stop after a time budget and return a cursor to resume from.
 */

import type { Cluster, Redis } from "ioredis";
import * as v from "valibot";
import type { RedisClient } from "../adapters/redis.js";
import {
  assertSiteId,
  groupOfSite,
  LEGACY_PENDING_KEY,
  LEGACY_SITES_KEY,
  LEGACY_TOUCHED_KEY,
  pendingKey,
  siteEventTypesKey,
  siteIndexMember,
  sitesKey,
  siteTag,
  TIME_ZONES_KEY,
  touchedKey,
} from "../domain/keys.js";

/** What a deletion counts, by where it was. */
export interface SiteDataCounts {
  /** Counting keys (`uv:`, `ev:`, every period and event type) and the event-type set. */
  readonly keys: number;
  /** Members of the site index: the site and its `site|event` members. */
  readonly siteIndex: number;
  /** Members of the rollup's touched set (days changed since the last scheduled rollup). */
  readonly touched: number;
  /** Members of the rollup's pending set (days a rollup was merging). */
  readonly pending: number;
  /** The zone registry's entry: 1 when there was one, else 0. */
  readonly timeZone: number;
}

export const NO_COUNTS: SiteDataCounts = {
  keys: 0,
  siteIndex: 0,
  touched: 0,
  pending: 0,
  timeZone: 0,
};

export function addCounts(a: SiteDataCounts, b: SiteDataCounts): SiteDataCounts {
  return {
    keys: a.keys + b.keys,
    siteIndex: a.siteIndex + b.siteIndex,
    touched: a.touched + b.touched,
    pending: a.pending + b.pending,
    timeZone: a.timeZone + b.timeZone,
  };
}

/**
 * The phases of a deletion, in the order they run: the `legacy-` ones sweep the single-slot sets
 * of older versions (keys.ts LEGACY_*).
 */
const PHASES = [
  "index",
  "touched",
  "pending",
  "legacy-index",
  "legacy-touched",
  "legacy-pending",
  "keys",
  "time-zone",
] as const;
type Phase = (typeof PHASES)[number];

/** Where a deletion stands: its phase and that phase's SCAN/SSCAN cursor, `keys:1234`. */
export const DELETION_CURSOR_RE =
  /^(index|touched|pending|legacy-index|legacy-touched|legacy-pending|keys|time-zone):(\d{1,20})$/;

/** SCAN and SSCAN COUNT: the work one page asks of Redis. */
export const DELETION_PAGE_SIZE = 1000;

export interface SiteDeletionProgress {
  readonly site: string;
  /** Pages (SCAN, SSCAN or single commands) done by this step so far. */
  readonly pages: number;
  /** What this step has deleted so far. */
  readonly deleted: SiteDataCounts;
}

export interface SiteDeletionOptions {
  /** Where an earlier step stopped (its `cursor`); from the start when absent. */
  readonly cursor?: string;
  /**
   * ms after which the step stops at the end of its current page and returns a cursor; no
   * limit when absent (the whole deletion in one step).
   */
  readonly budgetMs?: number;
  /** SCAN/SSCAN COUNT. Default DELETION_PAGE_SIZE. */
  readonly pageSize?: number;
  readonly now?: () => number;
  /** Told after every page. */
  readonly onProgress?: (progress: SiteDeletionProgress) => void;
}

const Count = v.pipe(v.number(), v.integer(), v.minValue(0));

/** A step as the admin API answers it (DELETE /v1/sites/{site}); the CLI checks it. */
export const SiteDeletionBody = v.strictObject({
  site: v.string(),
  deleted: v.pipe(
    v.strictObject({
      keys: v.pipe(
        Count,
        v.description(
          "Counting keys (uv: and ev:, every period and event type) and the site's event-type set",
        ),
      ),
      siteIndex: v.pipe(Count, v.description("Members of the site index (S and S|event)")),
      touched: v.pipe(Count, v.description("Members of the rollup's touched set (S|day[|event])")),
      pending: v.pipe(Count, v.description("Members of the rollup's pending set (S|day[|event])")),
      timeZone: v.pipe(Count, v.description("The zone registry's entry: 1 if there was one")),
    }),
    v.description("What this request deleted"),
  ),
  pages: v.pipe(Count, v.description("SCAN and SSCAN pages this request did")),
  cursor: v.pipe(
    v.nullable(v.string()),
    v.description(
      "Not null: the deletion is not finished; send the same DELETE with this cursor. Null: it is complete",
    ),
  ),
});

export interface SiteDeletionStep {
  readonly site: string;
  /** What this step deleted. */
  readonly deleted: SiteDataCounts;
  /** Pages this step did. */
  readonly pages: number;
  /** Pass back to resume; null when the deletion is complete. */
  readonly cursor: string | null;
}

/** The node whose keyspace holds `key`'s slot: the client itself on a single node. */
async function nodeHolding(redis: RedisClient, key: string): Promise<Redis> {
  if (!redis.isCluster) return redis as Redis;
  const cluster = redis as Cluster;
  // Any node answers CLUSTER KEYSLOT; it also makes sure the slot map has been loaded.
  const slot = Number(await cluster.cluster("KEYSLOT", key));
  const owner = cluster.slots[slot]?.[0];
  const node = cluster
    .nodes("master")
    .find((candidate) => `${candidate.options.host}:${candidate.options.port}` === owner);
  if (node === undefined) {
    throw new Error(
      `no primary of the cluster's slot map holds slot ${slot} (of ${key}): the cluster is failing over or resharding; try again once CLUSTER INFO says cluster_state:ok`,
    );
  }
  return node;
}

/** The first phase's cursor, or the one given; a RangeError for anything else. */
function startAt(cursor: string | undefined): { phase: Phase; scan: string } {
  if (cursor === undefined) return { phase: "index", scan: "0" };
  const match = DELETION_CURSOR_RE.exec(cursor);
  if (!match) {
    throw new RangeError(
      `"${cursor}" is not a deletion cursor: pass back the cursor the previous step returned, or none to start`,
    );
  }
  return { phase: match[1] as Phase, scan: match[2] ?? "0" };
}

/**
 * One step of deleting site `site`'s data: from `cursor` (or the start) until the budget is
 * spent or everything is deleted. Without a budget, the whole deletion.
 */
export async function deleteSiteData(
  redis: RedisClient,
  site: string,
  options: SiteDeletionOptions = {},
): Promise<SiteDeletionStep> {
  assertSiteId(site);
  const now = options.now ?? Date.now;
  const started = now();
  const count = options.pageSize ?? DELETION_PAGE_SIZE;
  let { phase, scan } = startAt(options.cursor);
  let deleted = NO_COUNTS;
  let pages = 0;
  const membersPattern = `${site}|*`;
  const group = groupOfSite(site);

  /** SSCAN one page of `key`'s members of the site and SREM them; the next cursor. */
  const removeMembers = async (key: string, field: keyof SiteDataCounts, extra: string[]) => {
    const [next, members] = await redis.sscan(key, scan, "MATCH", membersPattern, "COUNT", count);
    const remove = [...new Set([...members, ...extra])];
    const removed = remove.length > 0 ? await redis.srem(key, ...remove) : 0;
    deleted = { ...deleted, [field]: deleted[field] + removed };
    return next;
  };

  let keyspace: Redis | undefined;
  for (;;) {
    let next: string;
    switch (phase) {
      case "index":
        // The site's own member is known: removed with the first page of `site|event` ones.
        next = await removeMembers(
          sitesKey(group),
          "siteIndex",
          scan === "0" ? [siteIndexMember(site)] : [],
        );
        break;
      case "touched":
        next = await removeMembers(touchedKey(group), "touched", []);
        break;
      case "pending":
        next = await removeMembers(pendingKey(group), "pending", []);
        break;
      case "legacy-index":
        next = await removeMembers(
          LEGACY_SITES_KEY,
          "siteIndex",
          scan === "0" ? [siteIndexMember(site)] : [],
        );
        break;
      case "legacy-touched":
        next = await removeMembers(LEGACY_TOUCHED_KEY, "touched", []);
        break;
      case "legacy-pending":
        next = await removeMembers(LEGACY_PENDING_KEY, "pending", []);
        break;
      case "keys": {
        const eventTypes = siteEventTypesKey(site);
        keyspace ??= await nodeHolding(redis, eventTypes);
        const [cursor, keys] = await keyspace.scan(
          scan,
          "MATCH",
          `[ue]v:${siteTag(site)}:*`,
          "COUNT",
          count,
        );
        // The event-type set is one known key: deleted with the first page.
        const unlink = [...new Set(scan === "0" ? [eventTypes, ...keys] : keys)];
        // Through the client, not the node: a key moved since the scan answers MOVED, and the
        // cluster client follows it.
        const removed = unlink.length > 0 ? await redis.unlink(...unlink) : 0;
        deleted = { ...deleted, keys: deleted.keys + removed };
        next = cursor;
        break;
      }
      case "time-zone":
        deleted = { ...deleted, timeZone: await redis.hdel(TIME_ZONES_KEY, site) };
        next = "0";
        break;
    }
    pages += 1;
    options.onProgress?.({ site, pages, deleted });
    if (next === "0") {
      const following = PHASES[PHASES.indexOf(phase) + 1];
      if (following === undefined) return { site, deleted, pages, cursor: null };
      phase = following;
    }
    scan = next;
    if (options.budgetMs !== undefined && now() - started >= options.budgetMs) {
      return { site, deleted, pages, cursor: `${phase}:${scan}` };
    }
  }
}

/** Deletes all of site `site`'s data, in one go (CLI against Redis, tests). */
export async function deleteSite(
  redis: RedisClient,
  site: string,
  options: Pick<SiteDeletionOptions, "onProgress" | "pageSize"> = {},
): Promise<SiteDeletionStep> {
  return deleteSiteData(redis, site, options);
}
