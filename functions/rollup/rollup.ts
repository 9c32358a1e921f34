/**
 * The rollup's domain logic: which (site, period[, event]) keys need merging, and merging a
 * page of them. The state machine (state-machines/rollup.asl.json) calls it in three steps:
 *
 *   plan    take the lock; for a scheduled run move `touched` into `pending` (atomically) and
 *           turn each (site, day[, event]) member into two work items, the day into its week
 *           and into its month; for a backfill, every week and month overlapping the range
 *           for every known site. Items go into the `work` sorted set; the plan returns page
 *           numbers only, so no state payload grows with the number of sites.
 *   merge   one page, for both HLL families (`uv:` visitors and `ev:` events, keys.ts METRICS):
 *           scheduled, PFMERGE the touched day into the period key (exact: the key holds every
 *           earlier merge and days only grow), but only when that day key exists; backfill,
 *           PFMERGE all the period's days into a temporary key that then replaces the key
 *           (PFMERGE keeps whatever the destination held), or DEL the key when none of its days
 *           exists. EXPIREAT … NX gives each key its fixed deadline, the same for both families.
 *   finish  after every page merged: drop `pending` and `work`, release the lock.
 *
 * Every merge is idempotent (register-wise max), so a retried page or a re-planned execution
 * after a crash gives the same HLLs; `pending` is only dropped once all of it was merged.
 *
 * Week and month keys expire by DESIGN.md's rule in the site's own zone (local midnight of the
 * Monday or the 1st that ends their retention): a page reads the zones of its sites from the
 * registry (`sketchstream:{config}:time-zones`, one HMGET through a warm ZoneRegistryCache).
 * Which days go into which week or month needs no zone: day labels in keys are already the
 * site's local dates, so that stays label arithmetic.
 *
 * No merge creates a key from nothing: PFMERGE creates its destination even when no source
 * exists, which would leave an empty period key (counting 0, with an expiry) for a family that
 * has no data there. That happens for every `ev:` key of history written before the events
 * metric existed, and for a touched `uv:` day that expired before a run merged it. So each
 * source is checked with EXISTS first (pipelined, one round trip per slice of a page).
 */

import { messageOf } from "../domain/errors.js";
import {
  AS_OF_KEY,
  AS_OF_ROLLUP,
  countingKey,
  LOCK_KEY,
  METRICS,
  type Metric,
  PENDING_KEY,
  parseSiteIndexMember,
  parseTouchedMember,
  parseWorkItem,
  SITES_KEY,
  TIME_ZONES_KEY,
  TOUCHED_KEY,
  WORK_KEY,
  workItem,
  workItemKeyPrefix,
} from "../domain/keys.js";
import {
  DAY_MS,
  dayExpiresAtMs,
  dayStartMs,
  daysInPeriod,
  daysInRange,
  expiresAtSeconds,
  firstDayOf,
  isoWeekOf,
  monthOf,
  type Period,
  parsePeriodLabel,
  type RetentionSettings,
} from "../domain/periods.js";
import type { ZoneCalendars } from "../domain/time-zones.js";
import type { ZoneLoad, ZoneRegistryCache } from "../domain/zone-registry.js";
import {
  type FinishInput,
  type MergeInput,
  type MergeOutput,
  type PlanInput,
  type PlanSummary,
  parseRollupInput,
  RollupInputError,
  type RollupOutput,
} from "./input.js";

export type { FinishInput, MergeInput, MergeOutput, PlanInput, PlanSummary, RollupOutput };

/** The Redis commands the rollup uses; an ioredis Redis or Cluster satisfies it. */
export interface RollupRedis {
  set(key: string, value: string, px: "PX", ms: number, nx: "NX"): Promise<"OK" | null>;
  get(key: string): Promise<string | null>;
  pexpire(key: string, ms: number): Promise<number>;
  eval(script: string, numKeys: number, ...args: (string | number)[]): Promise<unknown>;
  sunionstore(destination: string, ...keys: string[]): Promise<number>;
  del(...keys: string[]): Promise<number>;
  unlink(...keys: string[]): Promise<number>;
  sscan(key: string, cursor: string, count: "COUNT", n: number): Promise<[string, string[]]>;
  zadd(key: string, ...scoreMembers: (string | number)[]): Promise<number | null>;
  zcard(key: string): Promise<number>;
  zrange(key: string, start: number, stop: number): Promise<string[]>;
  pfmerge(destination: string, ...sources: string[]): Promise<"OK">;
  expireat(key: string, unixTimeSeconds: number, nx?: "NX"): Promise<number>;
  exists(...keys: string[]): Promise<number>;
  rename(key: string, newKey: string): Promise<"OK">;
  /** Reads sites' zones from the registry (a page's sites, in one command). */
  hmget(key: string, ...fields: string[]): Promise<(string | null)[]>;
  /** Whether the registry holds any zone (a backfill's retention check). */
  hlen(key: string): Promise<number>;
  multi(): {
    sunionstore(d: string, ...k: string[]): unknown;
    del(...k: string[]): unknown;
    exec(): Promise<unknown>;
  };
}

export class RollupLockLostError extends Error {
  override name = "RollupLockLostError";
}

export interface RollupSettings {
  readonly retention: RetentionSettings;
  /** How long the lock lives without renewal. Default 15 minutes. */
  readonly lockLeaseMs?: number;
  /** Upper bound of pages per execution, which bounds the Map's history events. Default 500. */
  readonly maxPages?: number;
  /** Smallest page. Default 2000 items. */
  readonly minPageSize?: number;
}

export type PlanOutput =
  | { readonly status: "busy"; readonly attempt: number; readonly heldBy: string | null }
  | {
      readonly status: "ready";
      readonly attempt: number;
      readonly plan: PlanSummary;
      readonly pages: number[];
    };

const DEFAULT_LEASE_MS = 15 * 60_000;
const SCAN_COUNT = 5000;
const ZADD_BATCH = 5000;
/**
 * Work items whose commands a page sends at once. A page of N items sends about 6N commands
 * (an EXISTS, a PFMERGE and an EXPIREAT per family, scheduled) or 8N (backfill): slicing keeps
 * the commands in flight, and the client's memory, bounded whatever the page size; a page of
 * the default 2,000 items is one slice.
 */
const MERGE_SLICE_ITEMS = 2000;
/**
 * The most work items one period key has: a scheduled run merges each touched day separately,
 * and a month has at most 31 days. A page reads this many items before its first one, so it
 * knows whether an earlier page already wrote a key whose items straddle the two pages.
 */
const MAX_ITEMS_PER_KEY = 31;

// Compare-and-delete: only the holder may release the lock.
const RELEASE_LOCK = `if redis.call("GET", KEYS[1]) == ARGV[1] then return redis.call("DEL", KEYS[1]) else return 0 end`;

function startMs(startTime: string): number {
  const ms = Date.parse(startTime);
  if (Number.isNaN(ms))
    throw new RollupInputError(`startTime "${startTime}" is not an ISO-8601 time`);
  return ms;
}

/**
 * Adds items to the work set in batches. Every score is 0, so the set orders its items by
 * their text: a period key's items sit next to each other, and a repeated item is added once.
 */
class WorkWriter {
  private batch: (string | number)[] = [];
  readonly sites = new Set<string>();
  readonly periods = new Set<string>();

  constructor(private readonly redis: RollupRedis) {}

  async add(item: string): Promise<void> {
    const { siteId, periodLabel } = parseWorkItem(item);
    this.sites.add(siteId);
    this.periods.add(periodLabel);
    this.batch.push(0, item);
    if (this.batch.length >= ZADD_BATCH * 2) await this.flush();
  }

  async flush(): Promise<void> {
    if (this.batch.length === 0) return;
    const args = this.batch;
    this.batch = [];
    await this.redis.zadd(WORK_KEY, ...args);
  }
}

async function scanSet(
  redis: RollupRedis,
  key: string,
  each: (member: string) => Promise<void>,
): Promise<void> {
  let cursor = "0";
  do {
    const [next, members] = await redis.sscan(key, cursor, "COUNT", SCAN_COUNT);
    for (const member of members) await each(member);
    cursor = next;
  } while (cursor !== "0");
}

/** Weeks and months that overlap a range, each with all of its days. */
function periodsOverlapping(from: string, to: string): Period[] {
  const seen = new Map<string, Period>();
  for (const day of daysInRange(from, to)) {
    const periods: Period[] = [
      { kind: "week", label: isoWeekOf(day) },
      { kind: "month", label: monthOf(day) },
    ];
    for (const period of periods) seen.set(period.label, period);
  }
  return [...seen.values()];
}

/**
 * How much earlier than a UTC site's the key of a zoned site's day can expire: day D of a site
 * ends at its local midnight, which in the zone furthest ahead of UTC (UTC+14,
 * Pacific/Kiritimati) comes 14 h before UTC midnight.
 */
export const MAX_ZONE_LEAD_MS = 14 * 3_600_000;

/**
 * How a backfill judges whether a day is past retention. The plan cannot afford every site's
 * zone (a backfill covers every site), so it asks only whether any site has one (HLEN): with
 * none, each day key expires exactly at the UTC rule's deadline; with some, a day may expire up
 * to MAX_ZONE_LEAD_MS earlier, and the check takes that earliest deadline. A registry that
 * cannot be asked is treated as holding zones (a stricter check, never a lost day).
 */
interface DayRetentionRule {
  /** How long before the UTC deadline a day key may already be gone, ms. */
  readonly leadMs: number;
  /** Why, for the refusal's message. */
  readonly why: string;
}

async function dayRetentionRule(redis: RollupRedis): Promise<DayRetentionRule> {
  let zones: number;
  try {
    zones = await redis.hlen(TIME_ZONES_KEY);
  } catch (err) {
    return {
      leadMs: MAX_ZONE_LEAD_MS,
      why: `the zone registry ${TIME_ZONES_KEY} could not be read (${messageOf(err)}), so sites may have time zones and a day key may expire up to 14 h before its UTC deadline (UTC+14): the check assumes it does`,
    };
  }
  if (zones === 0) {
    return { leadMs: 0, why: "no site has a time zone, so every day key expires at UTC midnight" };
  }
  return {
    leadMs: MAX_ZONE_LEAD_MS,
    why: `${zones} site(s) have a time zone, so a day key may expire up to 14 h before its UTC midnight deadline (UTC+14, e.g. Pacific/Kiritimati): the check assumes the earliest`,
  };
}

/** The first day whose key still lives at `now` under the rule (the earliest a rebuild may use). */
function firstLiveDay(now: number, retentionDays: number, rule: DayRetentionRule): string {
  let day = Math.floor(now / DAY_MS) - retentionDays - 2;
  while (dayExpiresAtMs(day * DAY_MS, retentionDays) - rule.leadMs <= now) day++;
  return new Date(day * DAY_MS).toISOString().slice(0, 10);
}

export async function planRollup(
  redis: RollupRedis,
  settings: RollupSettings,
  input: PlanInput,
): Promise<PlanOutput> {
  // Validate everything before writing anything: bad input fails with nothing changed.
  const mode = parseRollupInput(input.input);
  const now = startMs(input.startTime);
  const attempt = input.attempt ?? 0;
  let backfillPeriods: Period[] = [];
  if (mode.mode === "backfill") {
    backfillPeriods = periodsOverlapping(mode.from, mode.to);
    const retentionDays = settings.retention.days;
    const rule = await dayRetentionRule(redis);
    for (const period of backfillPeriods) {
      const first = firstDayOf(period);
      if (dayExpiresAtMs(dayStartMs(first), retentionDays) - rule.leadMs <= now) {
        throw new RollupInputError(
          `${period.label} cannot be recomputed: its day ${first} is past the ${retentionDays}-day retention of daily keys, so a rebuild would drop data (${rule.why}). Choose a range whose weeks and months start on or after ${firstLiveDay(now, retentionDays, rule)}.`,
        );
      }
    }
  }

  const lease = settings.lockLeaseMs ?? DEFAULT_LEASE_MS;
  const taken = await redis.set(LOCK_KEY, input.executionId, "PX", lease, "NX");
  if (taken === null) {
    const holder = await redis.get(LOCK_KEY);
    // A retried plan of the same execution already holds it.
    if (holder !== input.executionId)
      return { status: "busy", attempt: attempt + 1, heldBy: holder };
    await redis.pexpire(LOCK_KEY, lease);
  }

  await redis.del(WORK_KEY);
  const work = new WorkWriter(redis);
  if (mode.mode === "scheduled") {
    // Atomic: an id the consumer adds meanwhile lands in `touched`, for the next run.
    const tx = redis.multi();
    tx.sunionstore(PENDING_KEY, PENDING_KEY, TOUCHED_KEY);
    tx.del(TOUCHED_KEY);
    await tx.exec();
    await scanSet(redis, PENDING_KEY, async (member) => {
      for (const item of scheduledItemsOf(member)) await work.add(item);
    });
  } else {
    await scanSet(redis, SITES_KEY, async (member) => {
      const { siteId, event } = parseSiteIndexMember(member);
      for (const period of backfillPeriods) await work.add(workItem(siteId, period.label, event));
    });
  }
  await work.flush();
  const items = await redis.zcard(WORK_KEY);
  const maxPages = settings.maxPages ?? 500;
  const pageSize = Math.max(settings.minPageSize ?? 2000, Math.ceil(items / maxPages));
  const pageCount = Math.ceil(items / pageSize);
  const plan: PlanSummary = {
    executionId: input.executionId,
    startTime: input.startTime,
    mode: mode.mode,
    ...(mode.mode === "backfill" ? { from: mode.from, to: mode.to } : {}),
    items,
    pageSize,
    sites: work.sites.size,
    periods: [...work.periods].sort(),
  };
  return { status: "ready", attempt, plan, pages: Array.from({ length: pageCount }, (_, i) => i) };
}

/**
 * The work items a scheduled run makes of one touched-set member: the touched day merged into
 * its week and into its month. Only what changed is merged.
 */
export function scheduledItemsOf(member: string): [string, string] {
  const { siteId, day, event } = parseTouchedMember(member);
  return [workItem(siteId, isoWeekOf(day), event, day), workItem(siteId, monthOf(day), event, day)];
}

export interface MergeTarget {
  /** Which HLL family: `uv:` (visitors) or `ev:` (events). */
  readonly metric: Metric;
  /** The period key written. */
  readonly key: string;
  /** The day keys merged into it: the touched day (scheduled), every day (backfill). */
  readonly days: readonly string[];
  readonly expireAt: number;
}

/**
 * When a site's week and month keys expire: its zone's calendar (a ZoneCalendar), whose
 * expiresAtSeconds is DESIGN.md's rule at the zone's local midnights.
 */
export interface SiteCalendar {
  readonly zone: string;
  expiresAtSeconds(period: Period, retention: RetentionSettings): number;
}

/**
 * The PFMERGEs of work items, one per item and family, in item order (visitors, then events, for
 * each item); pure. Both families share the period, its days and its deadline. The deadline is
 * the rule in the site's zone (`calendarOf`); without `calendarOf`, every site is in UTC.
 */
export function mergeTargets(
  items: readonly string[],
  retention: RetentionSettings,
  calendarOf?: (siteId: string) => SiteCalendar,
): MergeTarget[] {
  // Many items share a period, and many sites a zone: each is worked out once per call.
  const daysOf = new Map<string, { period: Period; days: string[] }>();
  const deadlines = new Map<string, number>();
  return items.flatMap((item) => {
    const { siteId, periodLabel, event, day } = parseWorkItem(item);
    let facts = daysOf.get(periodLabel);
    if (!facts) {
      const period = parsePeriodLabel(periodLabel);
      facts = { period, days: daysInPeriod(period) };
      daysOf.set(periodLabel, facts);
    }
    const calendar = calendarOf?.(siteId);
    const deadlineKey = `${calendar?.zone ?? ""}|${periodLabel}`;
    let expireAt = deadlines.get(deadlineKey);
    if (expireAt === undefined) {
      expireAt = calendar
        ? calendar.expiresAtSeconds(facts.period, retention)
        : expiresAtSeconds(facts.period, retention);
      deadlines.set(deadlineKey, expireAt);
    }
    const days = day === undefined ? facts.days : [day];
    return METRICS.map((metric) => ({
      metric,
      key: countingKey(metric, siteId, periodLabel, event),
      days: days.map((d) => countingKey(metric, siteId, d, event)),
      expireAt,
    }));
  });
}

/** Renews the lease, or fails the page if another execution took the lock. */
async function holdLock(redis: RollupRedis, executionId: string, lease: number): Promise<void> {
  const holder = await redis.get(LOCK_KEY);
  if (holder !== executionId) {
    throw new RollupLockLostError(
      `execution ${executionId} no longer holds the rollup lock (held by ${holder ?? "nobody"}): its lease expired; the next run redoes the work`,
    );
  }
  await redis.pexpire(LOCK_KEY, lease);
}

/** Which of these keys exist: one single-key EXISTS per distinct key, sent together. */
async function existingKeys(redis: RollupRedis, keys: Iterable<string>): Promise<Set<string>> {
  const distinct = [...new Set(keys)];
  const found = await Promise.all(distinct.map((key) => redis.exists(key)));
  return new Set(distinct.filter((_, i) => found[i] === 1));
}

/**
 * Scheduled: merges each target's day into its period key when the day key exists (a week and
 * its month share the day, so it is checked once). Returns how many period keys this page wrote
 * first: a key an earlier item (`earlier`: the items of the page's first key that sit on earlier
 * pages) already wrote is counted there, so the pages' counts add up to the keys written.
 */
async function mergeTouchedDays(
  redis: RollupRedis,
  targets: readonly MergeTarget[],
  earlier: readonly MergeTarget[],
): Promise<number> {
  const written = new Set<string>();
  const writtenBefore = new Set<string>();
  const slice = MERGE_SLICE_ITEMS * METRICS.length;
  for (let i = 0; i < targets.length; i += slice) {
    const part = targets.slice(i, i + slice);
    const checked = i === 0 ? [...earlier, ...part] : part;
    const present = await existingKeys(
      redis,
      checked.flatMap((t) => t.days),
    );
    if (i === 0) {
      for (const t of earlier) if (t.days.some((d) => present.has(d))) writtenBefore.add(t.key);
    }
    // The period key holds every earlier merge and days only grow, so merging the touched day
    // into it is exact and idempotent.
    const commands: Promise<unknown>[] = [];
    try {
      for (const t of part) {
        if (!t.days.some((d) => present.has(d))) continue;
        written.add(t.key);
        commands.push(redis.pfmerge(t.key, ...t.days), redis.expireat(t.key, t.expireAt, "NX"));
      }
    } catch (err) {
      // A command that threw as it was called: let those already sent settle, so none is left
      // unawaited, and fail the page (it is retried; merges are idempotent).
      await Promise.allSettled(commands);
      throw err;
    }
    await Promise.all(commands);
  }
  let first = 0;
  for (const key of written) if (!writtenBefore.has(key)) first++;
  return first;
}

/**
 * Backfill: recomputes each target from its days alone, into a temporary key that then replaces
 * the period key; a period none of whose days exists loses its key (it would otherwise keep
 * what days since deleted once held) and gets no empty one.
 */
async function rebuildPeriods(
  redis: RollupRedis,
  targets: readonly MergeTarget[],
): Promise<{ keysWritten: number; keysRemoved: number }> {
  let keysWritten = 0;
  let keysRemoved = 0;
  const slice = MERGE_SLICE_ITEMS * METRICS.length;
  for (let i = 0; i < targets.length; i += slice) {
    const part = targets.slice(i, i + slice);
    const present = await Promise.all(part.map((t) => redis.exists(...t.days)));
    await Promise.all(
      part.map(async (t, j) => {
        if (present[j] === 0) {
          // Awaited apart: `keysRemoved += await …` would read the count before the await and
          // lose the other targets' removals made meanwhile.
          const removed = await redis.del(t.key);
          keysRemoved += removed;
          return;
        }
        const temporary = `${t.key}:rebuild`;
        await Promise.all([
          redis.del(temporary),
          redis.pfmerge(temporary, ...t.days),
          redis.expireat(temporary, t.expireAt),
        ]);
        await redis.rename(temporary, t.key);
        keysWritten++;
      }),
    );
  }
  return { keysWritten, keysRemoved };
}

/**
 * Where the sites' zones come from: a warm container's copy of the registry and its calendars.
 * Loading never fails a page: a registry that cannot be read, or an entry that is not a valid
 * zone, leaves the site in its last good zone (UTC when none) and is reported to `onProblem`
 * (the handler logs it and counts TimeZoneLoadFailures).
 */
export interface RollupZones {
  readonly registry: ZoneRegistryCache;
  readonly calendars: ZoneCalendars;
  /** The registry's clock (how fresh a site's zone is), epoch ms. */
  readonly now: () => number;
  readonly onProblem?: (load: ZoneLoad) => void;
}

/** Each site's calendar for this page: the registry read once (one HMGET) for its sites. */
async function pageCalendars(
  zones: RollupZones,
  items: readonly string[],
  startTime: string,
): Promise<(siteId: string) => SiteCalendar> {
  const sites = new Set(items.map((item) => parseWorkItem(item).siteId));
  const load = await zones.registry.load(sites, zones.now());
  if (load.failure !== undefined || load.invalid.length > 0) zones.onProblem?.(load);
  // The calendars' "now" is the execution's start, like every other date decision of the run.
  const nowMs = startMs(startTime);
  return (siteId) => zones.calendars.forZone(zones.registry.zoneOf(siteId), nowMs);
}

/**
 * Merges one page of the work set, both families of every item. `keysWritten` counts period
 * keys of either family that received data (scheduled: each key once per execution, on the
 * page of its first merged day; backfill: each key rebuilt); `keysRemoved` counts period keys
 * a backfill deleted because none of their days exists. Week and month keys expire in their
 * site's zone when `zones` is given, in UTC otherwise.
 */
export async function mergePage(
  redis: RollupRedis,
  settings: RollupSettings,
  input: MergeInput,
  zones?: RollupZones,
): Promise<MergeOutput> {
  const { plan, page } = input;
  await holdLock(redis, plan.executionId, settings.lockLeaseMs ?? DEFAULT_LEASE_MS);
  const start = page * plan.pageSize;
  // Items before the page too: those of a key whose items began on an earlier page.
  const from = Math.max(0, start - MAX_ITEMS_PER_KEY);
  const fetched = await redis.zrange(WORK_KEY, from, start + plan.pageSize - 1);
  const items = fetched.slice(start - from);
  const calendarOf = zones ? await pageCalendars(zones, items, plan.startTime) : undefined;
  const targets = mergeTargets(items, settings.retention, calendarOf);

  if (plan.mode === "scheduled") {
    const firstPrefix = items[0] === undefined ? undefined : workItemKeyPrefix(items[0]);
    const before = fetched
      .slice(0, start - from)
      .filter((item) => workItemKeyPrefix(item) === firstPrefix);
    // Only their keys matter (which were written before), and they share the first item's site.
    const earlier = mergeTargets(before, settings.retention, calendarOf);
    const keysWritten = await mergeTouchedDays(redis, targets, earlier);
    return { page, merged: items.length, keysWritten, keysRemoved: 0 };
  }
  const { keysWritten, keysRemoved } = await rebuildPeriods(redis, targets);
  return { page, merged: items.length, keysWritten, keysRemoved };
}

export async function finishRollup(
  redis: RollupRedis,
  input: FinishInput,
  nowMs: number,
): Promise<RollupOutput> {
  const plan = input.plan;
  const executionId = plan?.executionId ?? input.executionId;
  if (input.outcome === "succeeded" && plan) {
    await holdLock(redis, plan.executionId, DEFAULT_LEASE_MS);
    // Everything planned was merged: only now may the pending set go.
    // UNLINK frees a large work set in the background instead of blocking the shard.
    await redis.unlink(WORK_KEY, ...(plan.mode === "scheduled" ? [PENDING_KEY] : []));
    // The read API's `asOf` for weeks and months (GT: a slower, older run never moves it back).
    await redis.zadd(AS_OF_KEY, "GT", nowMs, AS_OF_ROLLUP);
  }
  if (executionId) await redis.eval(RELEASE_LOCK, 1, LOCK_KEY, executionId);
  if (!plan) return { status: input.outcome };
  const results = input.results ?? [];
  return {
    status: input.outcome,
    mode: plan.mode,
    ...(plan.from ? { from: plan.from, to: plan.to } : {}),
    periods: plan.periods,
    periodsMerged: plan.periods.length,
    sitesMerged: plan.sites,
    itemsMerged: results.reduce((n, r) => n + r.merged, 0),
    keysWritten: results.reduce((n, r) => n + r.keysWritten, 0),
    keysRemoved: results.reduce((n, r) => n + r.keysRemoved, 0),
    durationMs: Math.max(0, nowMs - startMs(plan.startTime)),
  };
}
