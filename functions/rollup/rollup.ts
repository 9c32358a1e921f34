/**
 * The rollup's domain logic: which (site, period[, event]) keys need merging, and merging a
 * page of them. The state machine (state-machines/rollup.asl.json) calls it in three steps:
 *
 *   plan    take the lock; for a scheduled run move each bookkeeping group's `touched` into its
 *           `pending` (atomically, one script per group: a group's sets share a slot) and copy
 *           each (site, day[, event]) member as it is into the group's `work` sorted set (a
 *           page merges its day into its week and into its month); for a backfill, one item per
 *           week and month overlapping the range for every site of every group's site index.
 *           The plan returns page numbers and each group's item count (16 numbers), so no
 *           state payload grows with the number of sites; a page is a rank range of the groups'
 *           sets taken in group order (pageSegments).
 *   merge   one page, for both HLL families (`uv:` visitors and `ev:` events, keys.ts METRICS):
 *           scheduled, PFMERGE the touched day into the period key (exact: the key holds every
 *           earlier merge and days only grow), but only when that day key exists, one script
 *           call per site on the server (merge-script.ts); backfill,
 *           PFMERGE all the period's days into a temporary key that then replaces the key
 *           (PFMERGE keeps whatever the destination held), or DEL the key when none of its days
 *           exists. EXPIREAT … NX gives each key its fixed deadline, the same for both families.
 *   finish  after every page merged: drop every group's `pending` and `work`, release the lock.
 *
 * Every merge is idempotent (register-wise max), so a retried page or a re-planned execution
 * after a crash gives the same HLLs; `pending` is only dropped once all of it was merged.
 *
 * The single-slot bookkeeping of older versions (keys.ts LEGACY_*) is drained by the next run:
 * a scheduled plan moves the legacy touched set into the legacy pending set (one script in their
 * slot) and adds its members' work to their groups' work sets, finish drops it with the rest;
 * every plan moves the legacy site index into the groups' and deletes a legacy work set.
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
 * source is checked with EXISTS first (inside the script for a scheduled run; pipelined, one
 * round trip per slice of a page, for a backfill).
 */

import { messageOf } from "../domain/errors.js";
import {
  AS_OF_KEY,
  AS_OF_ROLLUP,
  BOOKKEEPING_GROUP_IDS,
  countingKeyPrefix,
  everyGroupKey,
  groupOfSite,
  LEGACY_PENDING_KEY,
  LEGACY_SITES_KEY,
  LEGACY_TOUCHED_KEY,
  LEGACY_WORK_KEY,
  LOCK_KEY,
  METRICS,
  type Metric,
  parseSiteIndexMember,
  parseTouchedMember,
  parseWorkItem,
  pendingKey,
  siteOfMember,
  sitesKey,
  TIME_ZONES_KEY,
  touchedKey,
  type WorkItem,
  workItem,
  workKey,
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
import {
  MERGE_SCRIPT_MAX_TARGETS,
  mergeTouchedDaysOnServer,
  redisScript,
  runScript,
  type ScriptRedis,
  type TouchedDayMerge,
} from "./merge-script.js";

export type { FinishInput, MergeInput, MergeOutput, PlanInput, PlanSummary, RollupOutput };

/** The Redis commands the rollup uses; an ioredis Redis or Cluster satisfies it. */
export interface RollupRedis extends ScriptRedis {
  set(key: string, value: string, px: "PX", ms: number, nx: "NX"): Promise<"OK" | null>;
  get(key: string): Promise<string | null>;
  pexpire(key: string, ms: number): Promise<number>;
  /** Moves the legacy site index into the groups'. */
  sadd(key: string, ...members: string[]): Promise<number>;
  srem(key: string, ...members: string[]): Promise<number>;
  del(...keys: string[]): Promise<number>;
  unlink(...keys: string[]): Promise<number>;
  sscan(key: string, cursor: string, count: "COUNT", n: number): Promise<[string, string[]]>;
  zadd(key: string, ...scoreMembers: (string | number)[]): Promise<number | null>;
  zcard(key: string): Promise<number>;
  zrange(key: string, start: number, stop: number): Promise<string[]>;
  /** A site's items before a page's first one (mergePage), by their text. */
  zrange(key: string, min: string, max: string, by: "BYLEX"): Promise<string[]>;
  pfmerge(destination: string, ...sources: string[]): Promise<"OK">;
  expireat(key: string, unixTimeSeconds: number, nx?: "NX"): Promise<number>;
  exists(...keys: string[]): Promise<number>;
  rename(key: string, newKey: string): Promise<"OK">;
  /** Reads sites' zones from the registry (a page's sites, in one command). */
  hmget(key: string, ...fields: string[]): Promise<(string | null)[]>;
  /** Whether the registry holds any zone (a backfill's retention check). */
  hlen(key: string): Promise<number>;
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
 * Merge targets (a period key of one family) whose commands a page sends at once. A scheduled
 * item has four (week and month, both families), a backfill item two; a page sends a script
 * call per site (scheduled: an EXISTS, a PFMERGE and an EXPIREAT per target inside it) or about
 * 4 commands per target (backfill): slicing keeps the commands in flight, and the client's
 * memory, bounded whatever the page size; a page of the default 2,000 items is one or two.
 */
const MERGE_SLICE_TARGETS = 4000;

// KEYS[1] touched, KEYS[2] pending (one slot): see takeTouched.
const TAKE_TOUCHED = redisScript(`if redis.call("EXISTS", KEYS[2]) == 0 then
  if redis.call("EXISTS", KEYS[1]) == 1 then redis.call("RENAME", KEYS[1], KEYS[2]) end
else
  redis.call("SUNIONSTORE", KEYS[2], KEYS[2], KEYS[1])
  redis.call("DEL", KEYS[1])
end
return 1`);

// Compare-and-delete: only the holder may release the lock.
const RELEASE_LOCK = `if redis.call("GET", KEYS[1]) == ARGV[1] then return redis.call("DEL", KEYS[1]) else return 0 end`;

function startMs(startTime: string): number {
  const ms = Date.parse(startTime);
  if (Number.isNaN(ms))
    throw new RollupInputError(`startTime "${startTime}" is not an ISO-8601 time`);
  return ms;
}

/**
 * Adds items to their group's work set in batches (a work item's site decides its group). Every
 * score is 0, so a set orders its items by their text: a site's items sit next to each other
 * (one site, so one group), and a repeated item is added once. Adding is synchronous: a full
 * batch is sent at once and the plan goes on building the next while Redis stores it. It keeps
 * the distinct sites, for the plan's summary.
 */
class WorkWriter {
  private readonly batches = new Map<number, (string | number)[]>();
  private readonly sent: Promise<unknown>[] = [];
  readonly sites = new Set<string>();

  constructor(private readonly redis: RollupRedis) {}

  /** Adds `item`, a work item of `siteId`, whose bookkeeping group is `group`. */
  add(siteId: string, group: number, item: string): void {
    this.sites.add(siteId);
    let batch = this.batches.get(group);
    if (!batch) {
      batch = [];
      this.batches.set(group, batch);
    }
    batch.push(0, item);
    if (batch.length >= ZADD_BATCH * 2) this.flush(group);
  }

  /** Sends a group's batch (taken first: groups are planned concurrently). */
  flush(group: number): void {
    const args = this.batches.get(group);
    if (args === undefined || args.length === 0) return;
    this.batches.delete(group);
    const sent = this.redis.zadd(workKey(group), ...args);
    // Awaited in settle(); observed now so that a failure meanwhile is not an unhandled one.
    sent.catch(() => {});
    this.sent.push(sent);
  }

  /** Sends every batch left and waits for all of them. */
  async settle(): Promise<void> {
    for (const group of [...this.batches.keys()]) this.flush(group);
    await Promise.all(this.sent);
  }
}

async function scanSet(
  redis: RollupRedis,
  key: string,
  each: (member: string) => void,
): Promise<void> {
  let cursor = "0";
  do {
    const [next, members] = await redis.sscan(key, cursor, "COUNT", SCAN_COUNT);
    for (const member of members) each(member);
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

  // A crashed execution's work (every group's, and a legacy single-slot set) is rebuilt here.
  // UNLINK frees a large set in the background instead of blocking its shard.
  await Promise.all([...everyGroupKey("work"), LEGACY_WORK_KEY].map((key) => redis.unlink(key)));
  // Before a backfill reads the groups' site indexes: the legacy one is moved into them.
  await moveLegacySiteIndex(redis);
  const work = new WorkWriter(redis);
  // The weeks and months the run merges into, for the plan's summary.
  const periods = new Set<string>();
  if (mode.mode === "scheduled") {
    // A pending member is its own work item: the plan checks it and copies it, and each page
    // works out the week and month of its items' days (the plan's time grows with the number
    // of members, so it does the least per member).
    const days = new Set<string>();
    const addPending = (pending: string, group?: number) => (member: string) => {
      try {
        const { siteId, day } = parseTouchedMember(member);
        if (!days.has(day)) {
          periods.add(isoWeekOf(day)).add(monthOf(day));
          days.add(day);
        }
        work.add(siteId, group ?? groupOfSite(siteId), member);
      } catch (err) {
        // Only a hand-made member gets here: the run cannot merge it, and it would stay
        // pending, failing every run, until removed.
        throw new Error(
          `${pending} holds "${member}", which the consumer never writes (${messageOf(err)}): remove it with \`redis-cli -c SREM '${pending}' '${member}'\` and start the rollup again`,
        );
      }
    };
    // Each group on its own: take its touched set (atomic in its slot: an id the consumer adds
    // meanwhile lands in `touched`, for the next run), read it, and send its last batch at once,
    // so Redis stores it while the other groups are still being read.
    await Promise.all([
      ...BOOKKEEPING_GROUP_IDS.map(async (group) => {
        await takeTouched(redis, touchedKey(group), pendingKey(group));
        await scanSet(redis, pendingKey(group), addPending(pendingKey(group), group));
        work.flush(group);
      }),
      (async () => {
        await takeTouched(redis, LEGACY_TOUCHED_KEY, LEGACY_PENDING_KEY);
        await scanSet(redis, LEGACY_PENDING_KEY, addPending(LEGACY_PENDING_KEY));
      })(),
    ]);
  } else {
    for (const period of backfillPeriods) periods.add(period.label);
    await Promise.all(
      BOOKKEEPING_GROUP_IDS.map(async (group) => {
        await scanSet(redis, sitesKey(group), (member) => {
          const { siteId, event } = parseSiteIndexMember(member);
          for (const period of backfillPeriods) {
            work.add(siteId, group, workItem(siteId, period.label, event));
          }
        });
        work.flush(group);
      }),
    );
  }
  await work.settle();
  const groupItems = await Promise.all(everyGroupKey("work").map((key) => redis.zcard(key)));
  const items = groupItems.reduce((n, g) => n + g, 0);
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
    groupItems,
    sites: work.sites.size,
    periods: [...periods].sort(),
  };
  return { status: "ready", attempt, plan, pages: Array.from({ length: pageCount }, (_, i) => i) };
}

/**
 * Moves `touched` into `pending` atomically (one script; both keys in one slot): a member the
 * consumer adds meanwhile lands in `touched`, for the next run, and none is lost between the
 * two. The usual case, no pending set left by a failed run, is a RENAME (O(1), where a union
 * copies every member); otherwise the members are added to what is pending.
 */
async function takeTouched(redis: RollupRedis, touched: string, pending: string): Promise<void> {
  try {
    await runScript(redis, TAKE_TOUCHED, 2, [touched, pending]);
  } catch (err) {
    throw new Error(`moving ${touched} into ${pending} failed: ${messageOf(err)}`);
  }
}

/**
 * Moves the single-slot site index of older versions into the groups' (keys.ts LEGACY_SITES_KEY):
 * each page of members is added to their groups' sets, then removed from the legacy set, so a
 * member an older consumer adds meanwhile stays for the next run, and an interrupted move
 * resumes where it stopped (SADD and SREM are idempotent). Redis deletes the set with its last
 * member. A site is always in one of the two, so the read side, which looks at both, never
 * misses it.
 */
async function moveLegacySiteIndex(redis: RollupRedis): Promise<void> {
  let cursor = "0";
  do {
    const [next, members] = await redis.sscan(LEGACY_SITES_KEY, cursor, "COUNT", SCAN_COUNT);
    if (members.length > 0) {
      const byGroup = new Map<number, string[]>();
      for (const member of members) {
        const group = groupOfSite(parseSiteIndexMember(member).siteId);
        const list = byGroup.get(group) ?? [];
        list.push(member);
        byGroup.set(group, list);
      }
      await Promise.all([...byGroup].map(([group, list]) => redis.sadd(sitesKey(group), ...list)));
      await redis.srem(LEGACY_SITES_KEY, ...members);
    }
    cursor = next;
  } while (cursor !== "0");
}

/** A run of a page's items in one work set: ranks `start` to `stop`, both included. */
export interface PageSegment {
  readonly key: string;
  readonly start: number;
  readonly stop: number;
}

/**
 * Where page `page`'s items are. The groups' work sets, in group order, make one list that
 * pages cut into runs of `pageSize` items by rank: a page is part of one group's set or spans
 * several (small runs touch few items in each group, and still take one page), so a plan has
 * as many pages as before the groups. A plan of the version before the groups (no
 * `groupItems`: an execution that was running across the upgrade) has one legacy work set.
 */
export function pageSegments(
  plan: Pick<PlanSummary, "pageSize" | "groupItems">,
  page: number,
): PageSegment[] {
  const first = page * plan.pageSize;
  const last = first + plan.pageSize - 1;
  if (plan.groupItems === undefined) return [{ key: LEGACY_WORK_KEY, start: first, stop: last }];
  const segments: PageSegment[] = [];
  let offset = 0;
  for (const [group, items] of plan.groupItems.entries()) {
    const start = Math.max(first, offset);
    const stop = Math.min(last, offset + items - 1);
    if (start <= stop)
      segments.push({ key: workKey(group), start: start - offset, stop: stop - offset });
    offset += items;
  }
  if (segments.length === 0) {
    throw new RollupInputError(
      `page ${page} is not one of the plan's ${Math.ceil(offset / plan.pageSize)} pages: the Map and the plan disagree (state-machines/rollup.asl.json)`,
    );
  }
  return segments;
}

export interface MergeTarget {
  /** The site whose keys these are (all in its slot). */
  readonly siteId: string;
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
 * The PFMERGEs of work items, in item order, visitors then events for each period; pure. A
 * scheduled item (a touched day) has four: its day into its week, then into its month; a
 * backfill item two, all of its period's days. Both families share the period, its days and
 * its deadline. The deadline is the rule in the site's zone (`calendarOf`); without
 * `calendarOf`, every site is in UTC.
 */
export function mergeTargets(
  items: readonly string[],
  retention: RetentionSettings,
  calendarOf?: (siteId: string) => SiteCalendar,
): MergeTarget[] {
  return targetsOf(items.map(parseWorkItem), retention, calendarOf);
}

/** mergeTargets of items already parsed (a page parses its items once). */
function targetsOf(
  items: readonly WorkItem[],
  retention: RetentionSettings,
  calendarOf?: (siteId: string) => SiteCalendar,
): MergeTarget[] {
  // Many items share a day and a period, and many sites a zone: each is worked out once per
  // call. A page turns thousands of items into targets: plain loops and one validated key
  // prefix per item and family keep that a small part of its time (bench:rollup times it).
  const periodsOfDay = new Map<string, [string, string]>();
  const periods = new Map<string, { period: Period; days?: string[] }>();
  const deadlines = new Map<string, number>();
  const prefixes: string[] = new Array(METRICS.length);
  const targets: MergeTarget[] = [];
  const factsOf = (label: string) => {
    let facts = periods.get(label);
    if (!facts) {
      facts = { period: parsePeriodLabel(label) };
      periods.set(label, facts);
    }
    return facts;
  };
  const push = (
    siteId: string,
    calendar: SiteCalendar | undefined,
    label: string,
    days: readonly string[],
  ) => {
    const deadlineKey = calendar === undefined ? label : `${calendar.zone}|${label}`;
    let expireAt = deadlines.get(deadlineKey);
    if (expireAt === undefined) {
      const { period } = factsOf(label);
      expireAt = calendar
        ? calendar.expiresAtSeconds(period, retention)
        : expiresAtSeconds(period, retention);
      deadlines.set(deadlineKey, expireAt);
    }
    for (const [m, metric] of METRICS.entries()) {
      const prefix = prefixes[m] as string;
      const dayKeys = new Array<string>(days.length);
      for (let i = 0; i < days.length; i++) dayKeys[i] = prefix + days[i];
      targets.push({ siteId, metric, key: prefix + label, days: dayKeys, expireAt });
    }
  };
  for (const item of items) {
    const { siteId, event } = item;
    for (const [m, metric] of METRICS.entries()) {
      prefixes[m] = countingKeyPrefix(metric, siteId, event);
    }
    const calendar = calendarOf?.(siteId);
    if (item.kind === "day") {
      let labels = periodsOfDay.get(item.day);
      if (!labels) {
        labels = [isoWeekOf(item.day), monthOf(item.day)];
        periodsOfDay.set(item.day, labels);
      }
      const days = [item.day];
      push(siteId, calendar, labels[0], days);
      push(siteId, calendar, labels[1], days);
    } else if (item.day !== undefined) {
      push(siteId, calendar, item.periodLabel, [item.day]);
    } else {
      const facts = factsOf(item.periodLabel);
      facts.days ??= daysInPeriod(facts.period);
      push(siteId, calendar, item.periodLabel, facts.days);
    }
  }
  return targets;
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
 * A page's scheduled targets as script calls: consecutive targets of one site (items are sorted
 * by text, so a site's are adjacent) share its slot and go in one call, at most
 * MERGE_SCRIPT_MAX_TARGETS each.
 */
export function scriptCallsOf(targets: readonly MergeTarget[]): TouchedDayMerge[][] {
  const calls: TouchedDayMerge[][] = [];
  let call: TouchedDayMerge[] = [];
  let site: string | undefined;
  for (const t of targets) {
    const [day, extra] = t.days;
    if (day === undefined || extra !== undefined) {
      throw new Error(`a scheduled target merges one touched day; ${t.key} has ${t.days.length}`);
    }
    if (t.siteId !== site || call.length === MERGE_SCRIPT_MAX_TARGETS) {
      if (call.length > 0) calls.push(call);
      call = [];
      site = t.siteId;
    }
    call.push({ key: t.key, day, expireAt: t.expireAt });
  }
  if (call.length > 0) calls.push(call);
  return calls;
}

/**
 * Scheduled: merges each target's day into its period key when the day key exists, on the
 * server (merge-script.ts: one call per site does the EXISTS, PFMERGE and EXPIREAT NX of its
 * targets). Returns the period keys it wrote.
 */
async function mergeTouchedDays(
  redis: RollupRedis,
  targets: readonly MergeTarget[],
): Promise<Set<string>> {
  const written = new Set<string>();
  for (let i = 0; i < targets.length; i += MERGE_SLICE_TARGETS) {
    const calls = scriptCallsOf(targets.slice(i, i + MERGE_SLICE_TARGETS));
    // The period key holds every earlier merge and days only grow, so merging the touched day
    // into it is exact and idempotent. Every call settles before the page answers: a failed
    // page is retried, and must not overlap its own calls still in flight.
    const results = await Promise.allSettled(
      calls.map((call) => mergeTouchedDaysOnServer(redis, call)),
    );
    for (const [j, result] of results.entries()) {
      if (result.status === "rejected") throw result.reason;
      const call = calls[j] ?? [];
      for (const [k, merged] of result.value.entries()) {
        const key = call[k]?.key;
        if (merged && key !== undefined) written.add(key);
      }
    }
  }
  return written;
}

/**
 * The items of a page's first site that sit on earlier pages: a site's items are adjacent in
 * its group's work set, so they are those that sort from the site's first possible item up to
 * the page's first (one ZRANGE BYLEX). None when the page starts its segment's set.
 */
async function earlierItemsOfSite(
  redis: RollupRedis,
  head: PageSegment | undefined,
  first: string | undefined,
): Promise<string[]> {
  if (head === undefined || first === undefined || head.start === 0) return [];
  return redis.zrange(head.key, `[${siteOfMember(first)}|`, `(${first}`, "BYLEX");
}

/** The period keys of `targets` (earlier pages' merges) that one of their days could write. */
async function keysWrittenBefore(
  redis: RollupRedis,
  targets: readonly MergeTarget[],
): Promise<Set<string>> {
  const before = new Set<string>();
  if (targets.length === 0) return before;
  const present = await existingKeys(
    redis,
    targets.flatMap((t) => t.days),
  );
  for (const t of targets) if (t.days.some((d) => present.has(d))) before.add(t.key);
  return before;
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
  for (let i = 0; i < targets.length; i += MERGE_SLICE_TARGETS) {
    const part = targets.slice(i, i + MERGE_SLICE_TARGETS);
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
  sites: ReadonlySet<string>,
  startTime: string,
): Promise<(siteId: string) => SiteCalendar> {
  const load = await zones.registry.load(sites, zones.now());
  if (load.failure !== undefined || load.invalid.length > 0) zones.onProblem?.(load);
  // The calendars' "now" is the execution's start, like every other date decision of the run.
  const nowMs = startMs(startTime);
  return (siteId) => zones.calendars.forZone(zones.registry.zoneOf(siteId), nowMs);
}

/**
 * Merges one page of the work set, both families of every item. `merged` counts its
 * (site, period[, event]) merges: two per scheduled item, one per backfill item (the count the
 * execution's output always gave, from when a scheduled item held one period). `keysWritten`
 * counts period keys of either family that received data (scheduled: each key once per
 * execution, on the page of its first merged day; backfill: each key rebuilt); `keysRemoved`
 * counts period keys a backfill deleted because none of their days exists. Week and month
 * keys expire in their site's zone when `zones` is given, in UTC otherwise.
 */
export async function mergePage(
  redis: RollupRedis,
  settings: RollupSettings,
  input: MergeInput,
  zones?: RollupZones,
): Promise<MergeOutput> {
  const { plan, page } = input;
  await holdLock(redis, plan.executionId, settings.lockLeaseMs ?? DEFAULT_LEASE_MS);
  const segments = pageSegments(plan, page);
  const fetched = await Promise.all(
    segments.map((segment) => redis.zrange(segment.key, segment.start, segment.stop)),
  );
  const items = fetched.flat();
  const parsed = items.map(parseWorkItem);
  const calendarOf = zones
    ? await pageCalendars(zones, new Set(parsed.map((item) => item.siteId)), plan.startTime)
    : undefined;
  const targets = targetsOf(parsed, settings.retention, calendarOf);

  if (plan.mode === "scheduled") {
    // A key is counted on the page of its first merged day: the page's first site may have
    // items on earlier pages (only the first segment can start inside a site's items: every
    // later one starts its group's set), whose keys were counted there. Found while the page
    // merges: they read day keys, which no merge writes.
    const before = earlierItemsOfSite(redis, segments[0], items[0]).then((earlier) =>
      keysWrittenBefore(
        redis,
        targetsOf(earlier.map(parseWorkItem), settings.retention, calendarOf),
      ),
    );
    const [writtenBefore, written] = await Promise.allSettled([
      before,
      mergeTouchedDays(redis, targets),
    ]);
    if (written.status === "rejected") throw written.reason;
    if (writtenBefore.status === "rejected") throw writtenBefore.reason;
    let keysWritten = 0;
    for (const key of written.value) if (!writtenBefore.value.has(key)) keysWritten++;
    return { page, merged: targets.length / METRICS.length, keysWritten, keysRemoved: 0 };
  }
  const { keysWritten, keysRemoved } = await rebuildPeriods(redis, targets);
  return { page, merged: targets.length / METRICS.length, keysWritten, keysRemoved };
}

/**
 * What a successful execution leaves behind: every group's work set and, after a scheduled run,
 * every group's pending set, the legacy ones too. A plan of the version before the groups (no
 * `groupItems`) merged only the legacy sets: the groups' pending sets then hold work it never
 * planned, and stay.
 */
function finishedKeys(plan: PlanSummary): string[] {
  const scheduled = plan.mode === "scheduled";
  if (plan.groupItems === undefined) {
    return [LEGACY_WORK_KEY, ...(scheduled ? [LEGACY_PENDING_KEY] : [])];
  }
  return [
    ...everyGroupKey("work"),
    LEGACY_WORK_KEY,
    ...(scheduled ? [...everyGroupKey("pending"), LEGACY_PENDING_KEY] : []),
  ];
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
    // Everything planned was merged: only now may the pending sets go. UNLINK frees a large
    // work set in the background instead of blocking the shard; one per key (other slots).
    await Promise.all(finishedKeys(plan).map((key) => redis.unlink(key)));
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
