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
  return countingKeyPrefix(metric, siteId, event) + periodLabel;
}

/**
 * Every key of a metric's HLLs of a site (optionally of one event type) is this prefix and a
 * period label: `uv:{site_id=715}:` or `uv:{site_id=715}:event=view:`. Validated once, for
 * callers that build many keys of one site (the rollup builds hundreds of thousands a run).
 */
export function countingKeyPrefix(metric: Metric, siteId: string, event?: string): string {
  assertSiteId(siteId);
  const prefix = KEY_PREFIX[metric];
  if (event === undefined) return `${prefix}:${siteTag(siteId)}:`;
  assertEventType(event);
  return `${prefix}:${siteTag(siteId)}:event=${event}:`;
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
 * Bookkeeping for the rollup, spread over BOOKKEEPING_GROUPS slot groups so that no shard holds
 * more than its share of it (at 10^6 sites a scheduled run's work is about 5 x 10^6 members)
 * and no shard takes every consumer batch's SADDs. A site belongs to one group (`groupOfSite`),
 * and all four sets of a group share the group's hash tag, so a group's sets move between each
 * other atomically (one script in one slot) and every member of one site sits in one slot:
 *   touched: set; the consumer adds one member per (site, day) and per (site, day, event)
 *            whose HLL it changed. A scheduled rollup moves it into the group's `pending`.
 *   pending: set; what a scheduled rollup is merging. It survives a crashed execution and is
 *            deleted only when an execution has merged all of it (every group's).
 *   sites:   set; every site (`715`) and site event type (`715|purchase`) the consumer has
 *            seen, so a backfill knows which keys to recompute.
 *   work:    sorted set; the group's work items of the running execution (a scheduled run's
 *            are its pending members, a backfill's are (site, period[, event])), paged by
 *            rank. Rebuilt by each execution's plan.
 * `sketchstream:{rollup-5-5358}:touched` is group 5's touched set. The lock and `as-of` stay
 * single keys in the `{rollup}` slot:
 *   lock:    string; the execution id holding the rollup, with a lease (PX).
 *   as-of:   sorted set; the read API's `asOf`: member `consumer` scored with the epoch ms of the
 *            last batch the consumer stored, member `rollup` with the time the last successful
 *            rollup finished (ZADD GT, so concurrent writers keep the latest time), and member
 *            `events-since` with the first time the consumer stored events (ZADD LT);
 *            the consumer's goes in the same pipeline as its SADDs (no round trip of its own).
 */
export const ROLLUP_TAG = "{rollup}";

/**
 * How many slot groups the bookkeeping is spread over. Fixed, not configurable: a site's group
 * is where the consumer writes its members and where the rollup, the read API and offboarding
 * look for them, so every version and every function must agree on it (a consumer and a
 * reader with different counts would look in different groups), and each count needs its own
 * evenly spaced tags (BOOKKEEPING_GROUP_TAGS). 16 groups hold 5 or 6 groups per primary on 3
 * shards (busiest 1.13x the mean), 4 per primary on 4, 8 on 2.
 */
export const BOOKKEEPING_GROUPS = 16;

/**
 * The groups' hash tags, `rollup-<group>-<n>`, one per group: `n` was searched offline (the
 * smallest n from 0) so that the tag's slot, CRC16 of the tag mod 16384, is exactly
 * group * 1024 + 512, the middle of the group's sixteenth of the slot space. A cluster splits
 * its slots into contiguous equal ranges per shard, so evenly spaced slots give each shard the
 * same number of groups (within one). The spelling alone decides the slot, and so the balance:
 * never rename one (test/unit/keys.test.ts pins them, test/integration/bookkeeping-groups.test.ts
 * checks their slots against a cluster's CLUSTER KEYSLOT).
 */
export const BOOKKEEPING_GROUP_TAGS: readonly string[] = [
  "rollup-0-29572", // slot   512
  "rollup-1-43683", // slot  1536
  "rollup-2-3962", //  slot  2560
  "rollup-3-11217", // slot  3584
  "rollup-4-17793", // slot  4608
  "rollup-5-5358", //  slot  5632
  "rollup-6-575", //   slot  6656
  "rollup-7-2845", //  slot  7680
  "rollup-8-50482", // slot  8704
  "rollup-9-1497", //  slot  9728
  "rollup-10-1574", // slot 10752
  "rollup-11-20549", // slot 11776
  "rollup-12-15880", // slot 12800
  "rollup-13-14149", // slot 13824
  "rollup-14-15084", // slot 14848
  "rollup-15-5321", // slot 15872
];

/** Every group number, 0 .. BOOKKEEPING_GROUPS - 1, in order. */
export const BOOKKEEPING_GROUP_IDS: readonly number[] = Array.from(
  { length: BOOKKEEPING_GROUPS },
  (_, group) => group,
);

const utf8 = new TextEncoder();

/** FNV-1a, 32 bits, of the UTF-8 bytes of `text` (http://www.isthe.com/chongo/tech/comp/fnv/). */
export function fnv1a32(text: string): number {
  // Site ids are ASCII (SITE_ID_RE), whose UTF-8 bytes are their char codes: no encoding, which
  // the rollup's plan would otherwise do for every work item.
  let hash = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    if (code >= 0x80) return fnv1a32Bytes(utf8.encode(text));
    hash = Math.imul(hash ^ code, 0x01000193);
  }
  return hash >>> 0;
}

function fnv1a32Bytes(bytes: Uint8Array): number {
  let hash = 0x811c9dc5;
  for (const byte of bytes) hash = Math.imul(hash ^ byte, 0x01000193);
  return hash >>> 0;
}

/**
 * A site's bookkeeping group: FNV-1a 32 of its id's UTF-8 bytes, mod BOOKKEEPING_GROUPS. It
 * must never change (members already written sit in the group it gave): test/unit/keys.test.ts
 * pins ids to groups. Sequential ids (`1`..`100000`, `site-0`..) spread within 1% of even.
 */
export function groupOfSite(siteId: string): number {
  return fnv1a32(siteId) % BOOKKEEPING_GROUPS;
}

/** The four sets each group has. */
export const BOOKKEEPING_KINDS = ["touched", "pending", "sites", "work"] as const;
export type BookkeepingKind = (typeof BOOKKEEPING_KINDS)[number];

/** A group's set of one kind: `sketchstream:{rollup-5-5358}:touched`. */
export function bookkeepingKey(kind: BookkeepingKind, group: number): string {
  const tag = BOOKKEEPING_GROUP_TAGS[group];
  if (tag === undefined || !Number.isInteger(group)) {
    throw new RangeError(
      `bookkeeping group ${group} does not exist: groups are 0 to ${BOOKKEEPING_GROUPS - 1}`,
    );
  }
  return `sketchstream:{${tag}}:${kind}`;
}

export function touchedKey(group: number): string {
  return bookkeepingKey("touched", group);
}

export function pendingKey(group: number): string {
  return bookkeepingKey("pending", group);
}

export function sitesKey(group: number): string {
  return bookkeepingKey("sites", group);
}

export function workKey(group: number): string {
  return bookkeepingKey("work", group);
}

/** The kind's set of every group, in group order. */
export function everyGroupKey(kind: BookkeepingKind): string[] {
  return BOOKKEEPING_GROUP_IDS.map((group) => bookkeepingKey(kind, group));
}

/** The ACL key pattern of the kind's set in every group: `sketchstream:{rollup-*}:touched`. */
export function bookkeepingKeyPattern(kind: BookkeepingKind): string {
  return `sketchstream:{rollup-*}:${kind}`;
}

/**
 * The single-slot bookkeeping of versions before the groups. The next rollup drains them: a
 * scheduled plan moves the legacy touched set into the legacy pending set (atomically, within
 * their slot) and merges it with the groups' work, finish drops it; every plan moves the legacy
 * site index into the groups' (SADD to each member's group, then SREM from the legacy set, so a
 * member added meanwhile stays for the next run) and deletes a legacy work set. Until then the
 * read side and offboarding look at them too. After a successful scheduled run none remains.
 */
export const LEGACY_TOUCHED_KEY = `sketchstream:${ROLLUP_TAG}:touched`;
export const LEGACY_PENDING_KEY = `sketchstream:${ROLLUP_TAG}:pending`;
export const LEGACY_SITES_KEY = `sketchstream:${ROLLUP_TAG}:sites`;
export const LEGACY_WORK_KEY = `sketchstream:${ROLLUP_TAG}:work`;

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
 * A rollup work item, one member of a group's work set. Two forms, told apart by their fields:
 *   `715|2024-03-09`                    a scheduled run's item: the touched-set member itself,
 *   `715|2024-03-09|purchase`           its day merged into its week and into its month
 *   `715|2024-03|purchase|`             a backfill's item: rebuild the month from all its days
 *   `715|2024-W10||`                    (`site|period|event|`, the event left empty for the site)
 * A scheduled item names no period: its week and month follow from its day, so the plan stores
 * one item per touched member and copies it as it is. Plans of earlier versions stored
 * `site|period|event|day` items for a scheduled run too (`715|2024-W10||2024-03-09`: one
 * period, one day); a page still reads them, for an execution that runs across an upgrade.
 * Every form starts with the site: a site's items sort next to each other.
 */
export function workItem(siteId: string, periodLabel: string, event?: string): string {
  return `${siteId}|${periodLabel}|${event ?? ""}|`;
}

/** A work item read back: a touched day (into its week and month) or one period key. */
export type WorkItem =
  | { readonly kind: "day"; readonly siteId: string; readonly day: string; readonly event?: string }
  | {
      readonly kind: "period";
      readonly siteId: string;
      readonly periodLabel: string;
      readonly event?: string;
      /** The one day to merge (an earlier version's scheduled item); absent: every day. */
      readonly day?: string;
    };

export function parseWorkItem(item: string): WorkItem {
  const fields = item.split("|");
  if (fields.length === 4) {
    const [siteId, periodLabel, event, day] = fields as [string, string, string, string];
    if (siteId && periodLabel) {
      return {
        kind: "period",
        siteId,
        periodLabel,
        ...(event ? { event } : {}),
        ...(day ? { day } : {}),
      };
    }
  } else if (fields.length === 2 || fields.length === 3) {
    const [siteId, day, event] = fields as [string, string, string?];
    if (siteId && day && event !== "") {
      return event === undefined
        ? { kind: "day", siteId, day }
        : { kind: "day", siteId, day, event };
    }
  }
  throw new RangeError(
    `work item "${item}" is neither site|day[|event] (scheduled) nor site|period|event|day (backfill)`,
  );
}

/** The site of a work item or touched-set member: the text before its first `|`. */
export function siteOfMember(member: string): string {
  const end = member.indexOf("|");
  return end < 0 ? member : member.slice(0, end);
}

export interface TouchedEntry {
  readonly siteId: string;
  readonly day: string;
  readonly event?: string;
}

export function parseTouchedMember(member: string): TouchedEntry {
  const [siteId, day, event, extra] = member.split("|");
  // No empty field either: the member goes into the work set as it is, where a page reads it.
  if (!siteId || !day || event === "" || extra !== undefined) {
    throw new RangeError(`touched-set member "${member}" is not site|day or site|day|event`);
  }
  return event === undefined ? { siteId, day } : { siteId, day, event };
}
