/**
 * What the read API lists besides counts: the sites (paged through the site index with SSCAN,
 * never one SMEMBERS of a million members), a site's event types, its time zone, and the
 * `asOf` times. Every read here is one or a few commands on small keys, or bounded pages.
 *
 * The site index is spread over the bookkeeping groups (keys.ts groupOfSite); the single-slot
 * index of older versions is read too until the next rollup has moved it into the groups.
 */

import {
  AS_OF_CONSUMER,
  AS_OF_EVENTS_SINCE,
  AS_OF_KEY,
  AS_OF_ROLLUP,
  BOOKKEEPING_GROUPS,
  groupOfSite,
  LEGACY_SITES_KEY,
  siteEventTypesKey,
  sitesKey,
  TIME_ZONES_KEY,
} from "../domain/keys.js";

/** The Redis commands of the catalog; an ioredis Redis or Cluster satisfies it. */
export interface CatalogRedis {
  sscan(
    key: string,
    cursor: string,
    match: "MATCH",
    pattern: string,
    count: "COUNT",
    n: number,
  ): Promise<[cursor: string, members: string[]]>;
  sismember(key: string, member: string): Promise<number>;
  smembers(key: string): Promise<string[]>;
  zmscore(key: string, ...members: string[]): Promise<(string | null)[]>;
  hget(key: string, field: string): Promise<string | null>;
}

export interface SitesPage {
  /** Site ids, sorted within the page. */
  readonly sites: readonly string[];
  /** Pass back to get the next page; null when the index has been walked to its end. */
  readonly cursor: string | null;
}

/**
 * The sets a walk of the site index goes through, in order: every group's, then the legacy one
 * (empty, so one call, once a rollup has moved it into the groups).
 */
const WALKED_SETS: readonly string[] = [
  ...Array.from({ length: BOOKKEEPING_GROUPS }, (_, group) => sitesKey(group)),
  LEGACY_SITES_KEY,
];

/**
 * Where a walk of the site index stands, `set-scan-skip`: which of WALKED_SETS, SSCAN's cursor
 * in it, and how many of its next batch were taken. Opaque to callers.
 */
const CURSOR_RE = /^(\d{1,2})-(\d{1,20})-(\d{1,9})$/;

export function isSitesCursor(text: string): boolean {
  const match = CURSOR_RE.exec(text);
  return match !== null && Number(match[1]) < WALKED_SETS.length;
}

/** SSCAN calls one page may make; a sparse prefix then returns a short page and a cursor. */
const MAX_SCANS_PER_PAGE = 50;

/**
 * One page of at most `limit` sites whose id starts with `prefix`. SSCAN's guarantees apply:
 * every site present for the whole walk is returned at least once (a resize of a set while
 * walking, or a site moving from the legacy index into its group, may return one twice); a
 * page may be shorter than `limit` while `cursor` is not null.
 */
export async function listSites(
  redis: CatalogRedis,
  request: { readonly prefix: string; readonly cursor?: string; readonly limit: number },
): Promise<SitesPage> {
  const [, setText = "0", scanStart = "0", skipText = "0"] =
    CURSOR_RE.exec(request.cursor ?? "0-0-0") ?? [];
  let set = Number(setText);
  let scan = scanStart;
  let skip = Number(skipText);
  const sites: string[] = [];
  // Site ids are [A-Za-z0-9_-]: no glob character to escape in the prefix.
  const pattern = `${request.prefix}*`;
  const batch = Math.max(100, request.limit);
  for (let calls = 0; calls < MAX_SCANS_PER_PAGE; calls++) {
    const key = WALKED_SETS[set];
    if (key === undefined) return { sites, cursor: null };
    const [next, members] = await redis.sscan(key, scan, "MATCH", pattern, "COUNT", batch);
    // Members `site|event` name a site's event types; the sites are the members without `|`.
    const found = members.filter((m) => !m.includes("|")).sort();
    const room = request.limit - sites.length;
    const available = found.slice(skip);
    if (available.length > room) {
      sites.push(...available.slice(0, room));
      return { sites, cursor: `${set}-${scan}-${skip + room}` };
    }
    sites.push(...available);
    skip = 0;
    scan = next;
    if (scan === "0") {
      set += 1;
      if (set === WALKED_SETS.length) return { sites, cursor: null };
    }
    if (sites.length === request.limit) break;
  }
  return { sites, cursor: `${set}-${scan}-0` };
}

/** A site's event types, sorted; undefined when the site has never had a counted event. */
export async function siteEventTypes(
  redis: CatalogRedis,
  site: string,
): Promise<string[] | undefined> {
  const [known, knownBefore, events] = await Promise.all([
    redis.sismember(sitesKey(groupOfSite(site)), site),
    redis.sismember(LEGACY_SITES_KEY, site),
    redis.smembers(siteEventTypesKey(site)),
  ]);
  return known === 1 || knownBefore === 1 ? events.sort() : undefined;
}

export interface SiteTimeZone {
  readonly timeZone: string;
  /** `registry` when set for the site, `default` when the site uses UTC for want of an entry. */
  readonly source: "registry" | "default";
}

/**
 * The registry's entry for a site, as it is (the admin API and `site` show it, valid or not;
 * counting reads an invalid one as UTC: functions/read/counts.ts, readZoneOf).
 */
export async function siteTimeZone(
  redis: Pick<CatalogRedis, "hget">,
  site: string,
): Promise<SiteTimeZone> {
  const zone = await redis.hget(TIME_ZONES_KEY, site);
  return zone === null
    ? { timeZone: "UTC", source: "default" }
    : { timeZone: zone, source: "registry" };
}

/** When the data was last brought up to date: ISO instants, null when it never was. */
export interface AsOf {
  /** The last batch the consumer stored (daily keys). */
  readonly consumer: string | null;
  /** The last rollup that succeeded (week and month keys). */
  readonly rollup: string | null;
  /**
   * The first time the consumer stored events (`ev:` keys): days before its day in the site's
   * time zone are not recorded for the events metric. Null when no event has been recorded yet.
   */
  readonly eventsSince: string | null;
}

/** The as-of times as Redis keeps them: epoch ms, null when never. */
export interface AsOfScores {
  readonly consumer: number | null;
  readonly rollup: number | null;
  readonly eventsSince: number | null;
}

/** The as-of times, in one ZMSCORE (the counts need `eventsSince` from the same reply). */
export async function asOfScores(redis: CatalogRedis): Promise<AsOfScores> {
  const [consumer, rollup, eventsSince] = await redis.zmscore(
    AS_OF_KEY,
    AS_OF_CONSUMER,
    AS_OF_ROLLUP,
    AS_OF_EVENTS_SINCE,
  );
  const ms = (score: string | null | undefined) =>
    score === null || score === undefined ? null : Number(score);
  return { consumer: ms(consumer), rollup: ms(rollup), eventsSince: ms(eventsSince) };
}

export function asOfInstants(scores: AsOfScores): AsOf {
  const iso = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString());
  return {
    consumer: iso(scores.consumer),
    rollup: iso(scores.rollup),
    eventsSince: iso(scores.eventsSince),
  };
}
