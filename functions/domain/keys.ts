/**
 * Redis key names. The formats are a contract with operators and tests (docs/contract.md):
 *   daily    uv:{site_id=715}:2024-03-09
 *   weekly   uv:{site_id=715}:2024-W10
 *   monthly  uv:{site_id=715}:2024-03
 *   by event uv:{site_id=715}:event=purchase:2024-03-09   (and the week and month forms)
 * The `{site_id=…}` hash tag puts every key of one site in one cluster slot, so multi-key
 * PFCOUNT and PFMERGE over a site's keys never fail with CROSSSLOT.
 */

import { type Period, parsePeriodLabel } from "./periods.js";

/** What `site_id` may be once it is a string; anything else could forge a key or a hash tag. */
export const SITE_ID_RE = /^[A-Za-z0-9_-]{1,64}$/;
export const EVENT_TYPE_RE = /^[a-z0-9_-]{1,32}$/;

export function assertSiteId(siteId: string): void {
  if (!SITE_ID_RE.test(siteId)) {
    throw new RangeError(
      `site id "${siteId}" is not allowed: use 1-64 characters of A-Z, a-z, 0-9, "_" or "-"`,
    );
  }
}

export function assertEventType(event: string): void {
  if (!EVENT_TYPE_RE.test(event)) {
    throw new RangeError(
      `event type "${event}" is not allowed: use 1-32 characters of a-z, 0-9, "_" or "-"`,
    );
  }
}

/** The hash tag shared by every key of one site. */
export function siteTag(siteId: string): string {
  return `{site_id=${siteId}}`;
}

/**
 * The two HLL families, by what they count: `uv:` unique visitors (user ids), `ev:` events
 * (each event's identity: its `event_id`, else its Kinesis record id). Same periods, same hash
 * tag, same expiry, merged by the same rollup.
 */
export const METRICS = ["visitors", "events"] as const;
export type Metric = (typeof METRICS)[number];
const KEY_PREFIX: Readonly<Record<Metric, string>> = { visitors: "uv", events: "ev" };

/** Key of a metric's HLL of a site (optionally of one event type) for a period. */
export function countingKey(
  metric: Metric,
  siteId: string,
  periodLabel: string,
  event?: string,
): string {
  assertSiteId(siteId);
  const prefix = KEY_PREFIX[metric];
  if (event === undefined) return `${prefix}:${siteTag(siteId)}:${periodLabel}`;
  assertEventType(event);
  return `${prefix}:${siteTag(siteId)}:event=${event}:${periodLabel}`;
}

/** Key of the unique-visitor HLL of a site (optionally of one event type) for a period. */
export function uniqueVisitorsKey(siteId: string, periodLabel: string, event?: string): string {
  return countingKey("visitors", siteId, periodLabel, event);
}

/** Key of the events HLL of a site (optionally of one event type) for a period. */
export function eventsKey(siteId: string, periodLabel: string, event?: string): string {
  return countingKey("events", siteId, periodLabel, event);
}

export function periodKey(
  siteId: string,
  period: Period,
  event?: string,
  metric: Metric = "visitors",
): string {
  return countingKey(metric, siteId, period.label, event);
}

/** What a counting key names: the parts `countingKey` puts together. */
export interface ParsedKey {
  readonly metric: Metric;
  readonly siteId: string;
  readonly event?: string;
  readonly period: Period;
}

const KEY_RE = /^(uv|ev):\{site_id=([^{}:]*)\}:(?:event=([^:]*):)?([^:]+)$/;

/**
 * The parts of a counting key, the inverse of `countingKey`: `parseKey(k)` gives back what
 * built `k`. Throws a RangeError for anything that is not such a key, so bookkeeping keys,
 * temporary `:rebuild` keys and forged names are never mistaken for counts.
 */
export function parseKey(key: string): ParsedKey {
  const m = KEY_RE.exec(key);
  const [, prefix, siteId, event, label] = m ?? [];
  if (siteId === undefined || label === undefined || !SITE_ID_RE.test(siteId)) {
    throw new RangeError(
      `"${key}" is not a counting key: expected uv:{site_id=S}:PERIOD or uv:{site_id=S}:event=E:PERIOD (or ev: for events)`,
    );
  }
  if (event !== undefined && !EVENT_TYPE_RE.test(event)) {
    throw new RangeError(`"${key}" names event type "${event}", which is not allowed`);
  }
  const metric: Metric = prefix === "ev" ? "events" : "visitors";
  const period = parsePeriodLabel(label);
  return event === undefined ? { metric, siteId, period } : { metric, siteId, event, period };
}

/**
 * Bookkeeping for the rollup. All in one slot (hash tag `{rollup}`) so they can be moved
 * between each other atomically.
 *   touched: set; the consumer adds one member per (site, day) and per (site, day, event)
 *            whose HLL it changed. A scheduled rollup moves it into `pending`.
 *   pending: set; what a scheduled rollup is merging. It survives a crashed execution and is
 *            deleted only when an execution has merged all of it.
 *   sites:   set; every site (`715`) and site event type (`715|purchase`) the consumer has
 *            seen, so a backfill knows which keys to recompute.
 *   work:    sorted set; the (site, period[, event]) items of the running execution, paged by
 *            rank. Rebuilt by each execution's plan.
 *   lock:    string; the execution id holding the rollup, with a lease (PX).
 *   as-of:   sorted set; the read API's `asOf`: member `consumer` scored with the epoch ms of the
 *            last batch the consumer stored, member `rollup` with the time the last successful
 *            rollup finished (ZADD GT, so concurrent writers keep the latest time), and member
 *            `events-since` with the first time the consumer stored events (ZADD LT);
 *            the consumer's goes in the same pipeline as its SADDs to this slot (no round trip).
 */
export const ROLLUP_TAG = "{rollup}";
export const TOUCHED_KEY = `sketchstream:${ROLLUP_TAG}:touched`;
export const PENDING_KEY = `sketchstream:${ROLLUP_TAG}:pending`;
export const SITES_KEY = `sketchstream:${ROLLUP_TAG}:sites`;
export const WORK_KEY = `sketchstream:${ROLLUP_TAG}:work`;
export const LOCK_KEY = `sketchstream:${ROLLUP_TAG}:lock`;
export const AS_OF_KEY = `sketchstream:${ROLLUP_TAG}:as-of`;
export const AS_OF_CONSUMER = "consumer";
export const AS_OF_ROLLUP = "rollup";
/**
 * Member of `as-of` scored with the time the consumer first stored events (`ev:` keys), kept
 * with ZADD LT: days before it are "not recorded yet" for the events metric, not zero.
 */
export const AS_OF_EVENTS_SINCE = "events-since";

/**
 * The event types a site has had, one set per site in the site's own slot (`{site_id=715}`), so
 * the read API lists them with one SMEMBERS instead of scanning the whole site index. The
 * consumer adds to it in the pipeline that writes the site's HLLs; no expiry (a handful of
 * short members per site).
 */
export function siteEventTypesKey(siteId: string): string {
  assertSiteId(siteId);
  return `sketchstream:${siteTag(siteId)}:event-types`;
}

/** The per-site time-zone registry (field: site id, value: a zone name); absent means UTC. */
export const TIME_ZONES_KEY = "sketchstream:{config}:time-zones";

/** A touched-set member: `715|2024-03-09` for a site's day, `715|2024-03-09|purchase` per event. */
export function touchedMember(siteId: string, day: string, event?: string): string {
  return event === undefined ? `${siteId}|${day}` : `${siteId}|${day}|${event}`;
}

/** A site-index member: `715` for the site, `715|purchase` for one of its event types. */
export function siteIndexMember(siteId: string, event?: string): string {
  return event === undefined ? siteId : `${siteId}|${event}`;
}

/** The inverse of `siteIndexMember`. */
export function parseSiteIndexMember(member: string): { siteId: string; event?: string } {
  const [siteId, event, extra] = member.split("|");
  if (!siteId || event === "" || extra !== undefined) {
    throw new RangeError(`site-index member "${member}" is not site or site|event`);
  }
  return event === undefined ? { siteId } : { siteId, event };
}

/**
 * A rollup work item, `site|period|event|day` with empty fields left empty:
 *   `715|2024-W10||2024-03-09`          merge the site's day 2024-03-09 into its week (scheduled)
 *   `715|2024-03|purchase|2024-03-09`   the same for one event type, into the month
 *   `715|2024-W10||`                    rebuild the week from all its days (backfill)
 * Items of one period key sort next to each other, so pages can count keys exactly.
 */
export function workItem(
  siteId: string,
  periodLabel: string,
  event?: string,
  day?: string,
): string {
  return `${siteId}|${periodLabel}|${event ?? ""}|${day ?? ""}`;
}

export interface WorkItem {
  readonly siteId: string;
  readonly periodLabel: string;
  readonly event?: string;
  readonly day?: string;
}

export function parseWorkItem(item: string): WorkItem {
  const [siteId, periodLabel, event, day, extra] = item.split("|");
  if (!siteId || !periodLabel || event === undefined || day === undefined || extra !== undefined) {
    throw new RangeError(`work item "${item}" is not site|period|event|day`);
  }
  return { siteId, periodLabel, ...(event ? { event } : {}), ...(day ? { day } : {}) };
}

/** The part of a work item that names its period key: `715|2024-W10|purchase|`. */
export function workItemKeyPrefix(item: string): string {
  return item.slice(0, item.lastIndexOf("|") + 1);
}

export interface TouchedEntry {
  readonly siteId: string;
  readonly day: string;
  readonly event?: string;
}

export function parseTouchedMember(member: string): TouchedEntry {
  const [siteId, day, event, extra] = member.split("|");
  if (siteId === undefined || day === undefined || extra !== undefined) {
    throw new RangeError(`touched-set member "${member}" is not site|day or site|day|event`);
  }
  return event === undefined ? { siteId, day } : { siteId, day, event };
}
