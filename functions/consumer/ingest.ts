/**
 * The consumer's domain logic: turn one batch of Kinesis records into grouped HLL writes.
 *
 * Each valid event adds its user id to two daily unique-visitor HLLs (`uv:`, the site's and the
 * site's for the event type) and its identity (its `event_id`, else its record id) to the two
 * matching events HLLs (`ev:`). Elements are grouped per key and sent as one variadic PFADD per
 * key (chunked), then `EXPIREAT … NX` gives each key its fixed deadline, and the (site, day[,
 * event]) pairs go to the touched set the rollup drains (one member stands for both families):
 * the touched set of the site's bookkeeping group (keys.ts groupOfSite), one SADD per group the
 * batch touched, like the site index. The commands are issued together so the client pipelines
 * them per cluster node.
 *
 * Failure model: every command carries the index of the first record whose effect depends on
 * it. When a command fails, or has not answered by the deadline, the batch fails from the
 * smallest such index: every record before it is known to be stored, and replaying the rest
 * is harmless because PFADD, EXPIREAT NX, SADD and ZADD GT/LT are idempotent (and a record's
 * identity is the same on every delivery).
 *
 * Waiting for replicas (optional, `REDIS_WAIT_REPLICAS=1`): each command goes on the connection
 * of the primary that serves its key, and once the writes have answered, `WAIT 1 <timeout>` goes
 * on each of those connections before the batch is acknowledged. Self-managed Redis replicates
 * asynchronously, so a write a primary acknowledged can be lost when it dies before a replica has
 * it; the WAIT makes "acknowledged" mean "on two nodes". See `waitForReplicas`.
 */

import { createHash } from "node:crypto";
import { at } from "../domain/arrays.js";
import { messageOf } from "../domain/errors.js";
import {
  EventParser,
  isRejection,
  type ParsedTimed,
  type Rejection,
  type RejectReason,
} from "../domain/events.js";
import {
  AS_OF_CONSUMER,
  AS_OF_EVENTS_SINCE,
  AS_OF_KEY,
  eventsKey,
  groupOfSite,
  siteEventTypesKey,
  siteIndexMember,
  sitesKey,
  touchedKey,
  touchedMember,
  uniqueVisitorsKey,
} from "../domain/keys.js";
import { expiresAtSeconds, type RetentionSettings } from "../domain/periods.js";
import type { QuarantinedRecord, QuarantineSink } from "../domain/quarantine.js";
import type { ZoneCalendar, ZoneCalendars } from "../domain/time-zones.js";
import { DEFAULT_TIME_ZONE, type ZoneRegistryCache } from "../domain/zone-registry.js";

/** The part of a Kinesis record the consumer reads. */
export interface StreamRecord {
  readonly sequenceNumber: string;
  readonly partitionKey: string;
  readonly data: string;
  readonly eventSourceArn?: string;
  /**
   * The event source mapping's `eventID`, `shardId-000000000000:4959…` (shard id and sequence
   * number): the record's identity for the events metric. See `recordId`.
   */
  readonly eventId?: string;
}

/**
 * A record's identity, which the events metric counts when the event has no `event_id`: the
 * event source mapping's `eventID` (`shardId:sequenceNumber`), the same on every delivery of
 * the record (a retry, a bisected half, a replay). A record built without one (tests, tools)
 * falls back to `<eventSourceArn or "stream">:<sequenceNumber>`, which is just as stable: the
 * same record always gives the same identity. Lambda always sets `eventID`.
 */
export function recordId(record: StreamRecord): string {
  return record.eventId ?? `${record.eventSourceArn ?? "stream"}:${record.sequenceNumber}`;
}

/** The Redis commands the consumer uses; an ioredis Redis or Cluster satisfies it. */
export interface HllWriter {
  pfadd(key: string, ...elements: string[]): Promise<number>;
  expireat(key: string, unixTimeSeconds: number, nx: "NX"): Promise<number>;
  sadd(key: string, ...members: string[]): Promise<number>;
  zadd(key: string, gt: "GT", score: number, member: string): Promise<unknown>;
  zadd(key: string, lt: "LT", score: number, member: string): Promise<unknown>;
}

export interface IngestLogger {
  warn(message: string, extra: Record<string, unknown>): void;
  error(message: string, extra: Record<string, unknown>): void;
}

export interface IngestMetrics {
  count(name: string, value: number, dimensions?: Record<string, string>): void;
}

export interface IngestDeps {
  readonly redis: HllWriter;
  readonly quarantine: QuarantineSink;
  readonly logger: IngestLogger;
  readonly metrics: IngestMetrics;
  readonly now: () => number;
  /** Run before transient failures are resent (a Cluster refreshes its slot map). */
  readonly beforeRetry?: () => Promise<void>;
  /**
   * The sites' time zones: the warm container's copy of the registry and its calendars. Without
   * it every site is UTC (benches and tests that are not about zones).
   */
  readonly zones?: SiteZones;
  /**
   * Wait for replicas before acknowledging a batch (`REDIS_WAIT_REPLICAS=1`): every command goes
   * on the connection of its key's primary, and a WAIT follows on each connection used. Without
   * it (the default, and always in AWS) commands go through `redis` and nothing waits.
   */
  readonly replicaWait?: ReplicaWait;
}

/**
 * One primary's connection: the commands of the keys it serves go on it, and so does the WAIT,
 * which only confirms the writes its own connection carried. An ioredis Cluster keeps exactly
 * one connection per node and never re-opens it (a dropped node connection ends its client), so
 * a connection that dropped after carrying writes fails the WAIT instead of confirming nothing.
 */
export interface PrimaryConnection {
  /** `host:port`, for logs and failure messages. */
  readonly name: string;
  readonly writer: HllWriter;
  /** `WAIT replicas timeoutMs` on this connection: how many replicas have all its writes. */
  wait(replicas: number, timeoutMs: number): Promise<number>;
}

export interface ReplicaWait {
  /** Replicas that must acknowledge each primary's writes (the `numreplicas` of WAIT). */
  readonly replicas: number;
  /** The WAIT's timeout; also bounded by the invocation's deadline. */
  readonly timeoutMs: number;
  /**
   * The connection of the primary that serves `key` now. Throws NoPrimaryError when none is
   * known (a failover under way): a transient failure, resent after the slot map is re-read.
   */
  primaryFor(key: string): PrimaryConnection;
}

/** No known primary connection for a key's slot: transient, like a dropped connection. */
export class NoPrimaryError extends Error {
  override name = "NoPrimaryError";
}

/** Where the consumer learns each site's zone and its calendar (functions/domain/time-zones.ts). */
export interface SiteZones {
  readonly registry: ZoneRegistryCache;
  readonly calendars: ZoneCalendars;
}

export interface IngestOptions {
  readonly retention: RetentionSettings;
  /** Epoch ms by which every Redis and quarantine call must have answered. */
  readonly deadlineMs: number;
  /** Most ids in one PFADD. Default 2000. */
  readonly pfaddChunkSize?: number;
  /** See PlanOptions.eventsRecordedFromStart. */
  readonly eventsRecordedFromStart?: boolean;
}

export interface IngestResult {
  readonly received: number;
  readonly counted: number;
  readonly quarantined: number;
  /** HLL keys the batch wrote, both families (`uv:` and `ev:`). */
  readonly keysWritten: number;
  readonly commands: number;
  /** Commands sent again after a transient cluster error (MOVED, TRYAGAIN, a dropped connection). */
  readonly resent: number;
  /** Index of the first record whose effect is not known to be stored; undefined when all are. */
  readonly firstFailedIndex?: number;
  /** Why the batch failed from `firstFailedIndex`. */
  readonly failure?: string;
  readonly timedOut: boolean;
}

/**
 * Largest slice of a record's data kept in quarantine, and of a rejection's detail: with the
 * other fields (a partition key is at most 256 characters, the rest is short) and JSON's
 * escapes (at most 6 characters per character of the detail), a record stays under SQS's
 * 256 KiB per message.
 */
export const QUARANTINE_DATA_LIMIT = 200_000;
export const QUARANTINE_DETAIL_LIMIT = 1_000;
export const DEFAULT_PFADD_CHUNK = 2000;

/** One Redis command of a batch, with the first record whose effect depends on it. */
export type HllCommand = { readonly dependsFrom: number } & (
  | { readonly name: "pfadd"; readonly key: string; readonly args: readonly string[] }
  | { readonly name: "expireat"; readonly key: string; readonly at: number }
  | { readonly name: "sadd"; readonly key: string; readonly args: readonly string[] }
  | {
      readonly name: "asOf";
      readonly key: string;
      readonly member: string;
      readonly at: number;
      /** ZADD GT keeps the latest time (`consumer`), ZADD LT the earliest (`events-since`). */
      readonly mode: "GT" | "LT";
    }
);

export interface RejectedRecord {
  readonly index: number;
  readonly record: QuarantinedRecord;
}

export interface BatchPlan {
  /**
   * In the order they must be issued: per key its PFADDs then its EXPIREAT (a group's `uv:` key,
   * then its `ev:` key); the bookkeeping (SADDs, the `as-of` ZADDs) last.
   */
  readonly commands: readonly HllCommand[];
  readonly rejected: readonly RejectedRecord[];
  readonly rejectedByReason: ReadonlyMap<RejectReason, number>;
  /** HLL keys written, both families. */
  readonly keys: number;
}

export interface PlanOptions {
  readonly nowMs: number;
  readonly retention: RetentionSettings;
  readonly pfaddChunkSize?: number;
  /**
   * For the consumer benchmark (bench/consumer.ts) only, which measures what the events family
   * costs: true leaves the `ev:` commands (PFADD, EXPIREAT and the `events-since` ZADD) out of
   * the plan. The consumer never sets it.
   */
  readonly benchWithoutEventsFamily?: boolean;
  /**
   * True when the cluster held no site before this consumer first stored events (a fresh
   * install): events were then recorded from the start, and `events-since` is 0 rather than
   * the time of the first batch, which would call a loaded history "not recorded".
   */
  readonly eventsRecordedFromStart?: boolean;
  /**
   * The calendar of a site's zone: its days are local days, and its keys expire by the zone's
   * calendar. Undefined (or no function) for a UTC site.
   */
  readonly calendarOf?: (siteId: string) => ZoneCalendar | undefined;
}

/**
 * One (site, day[, event]) of the batch: the records that go to its `uv:` key and its `ev:`
 * key, which share the touched-set member, the deadline and the record indexes.
 */
interface KeyGroup {
  readonly siteId: string;
  readonly visitorsKey: string;
  readonly eventsKey: string;
  readonly expireAt: number;
  readonly firstIndex: number;
  /** User ids in record order; duplicates are left to PFADD, which ignores them for free. */
  readonly ids: string[];
  /** Event identities, in the same order (the same record at the same position as in `ids`). */
  readonly identities: string[];
  /** Record index of each entry of `ids` and `identities`. */
  readonly indexes: number[];
}

/** A bookkeeping group's share of a batch: its SADDs' members and the first record of its sites. */
interface GroupBookkeeping {
  readonly group: number;
  readonly touched: string[];
  readonly sites: string[];
  firstIndex: number;
}

interface SiteDayGroups {
  readonly daily: KeyGroup;
  readonly byEvent: Map<string, KeyGroup>;
}

/**
 * Decodes, validates and groups a batch into the Redis commands that store it. Pure: the
 * caller sends the commands. Groups are listed (in first-seen order) under their touched-set
 * member (`715|2024-03-09`, `715|2024-03-09|view`), which is what the SADD for the rollup needs.
 */
export function planBatch(records: readonly StreamRecord[], options: PlanOptions): BatchPlan {
  const parser = parserFor(options);
  return planTimedBatch(records, decodeTimedBatch(records, parser), parser, options);
}

function parserFor(options: Pick<PlanOptions, "nowMs" | "retention">): EventParser {
  return new EventParser({ nowMs: options.nowMs, retentionDays: options.retention.days });
}

/** The first step of parsing every record (EventParser.decodeTimed): no zone needed yet. */
function decodeTimedBatch(records: readonly StreamRecord[], parser: EventParser): ParsedTimed[] {
  return records.map((record) => parser.decodeTimed(record.data, recordId(record)));
}

/** The sites of a batch's valid events, each once. */
function sitesOf(timed: readonly ParsedTimed[]): Set<string> {
  const sites = new Set<string>();
  for (const t of timed) if (!isRejection(t)) sites.add(t.siteId);
  return sites;
}

/** planBatch, from records already through the first step of parsing (decodeTimedBatch). */
function planTimedBatch(
  records: readonly StreamRecord[],
  timed: readonly ParsedTimed[],
  parser: EventParser,
  options: PlanOptions,
): BatchPlan {
  const chunkSize = options.pfaddChunkSize ?? DEFAULT_PFADD_CHUNK;
  const withEvents = options.benchWithoutEventsFamily !== true;
  const groups = new Map<string, KeyGroup>();
  const rejected: RejectedRecord[] = [];
  const rejectedByReason = new Map<RejectReason, number>();
  let firstValidIndex = -1;
  // Nested maps keyed by the record's own strings: grouping allocates nothing per record.
  const bySite = new Map<string, Map<string, SiteDayGroups>>();
  // Each site's calendar, asked once per site: undefined for UTC.
  const calendars = new Map<string, ZoneCalendar | undefined>();
  const calendarOf = (siteId: string): ZoneCalendar | undefined => {
    if (options.calendarOf === undefined) return undefined;
    if (calendars.has(siteId)) return calendars.get(siteId);
    const calendar = options.calendarOf(siteId);
    calendars.set(siteId, calendar);
    return calendar;
  };
  /** Deadlines by zone and day: `UTC|2024-03-09`. */
  const expiries = new Map<string, number>();
  const newGroup = (
    siteId: string,
    day: string,
    event: string | undefined,
    index: number,
  ): KeyGroup => {
    const calendar = calendarOf(siteId);
    const expiryKey = `${calendar?.zone ?? DEFAULT_TIME_ZONE}|${day}`;
    let expireAt = expiries.get(expiryKey);
    if (expireAt === undefined) {
      const period = { kind: "day", label: day } as const;
      expireAt = calendar
        ? calendar.expiresAtSeconds(period, options.retention)
        : expiresAtSeconds(period, options.retention);
      expiries.set(expiryKey, expireAt);
    }
    const g: KeyGroup = {
      siteId,
      visitorsKey: uniqueVisitorsKey(siteId, day, event),
      eventsKey: eventsKey(siteId, day, event),
      expireAt,
      firstIndex: index,
      ids: [],
      identities: [],
      indexes: [],
    };
    groups.set(touchedMember(siteId, day, event), g);
    return g;
  };

  for (let index = 0; index < records.length; index++) {
    const record = records[index];
    const first = timed[index];
    if (record === undefined || first === undefined) continue;
    const parsed = isRejection(first) ? first : parser.place(first, calendarOf(first.siteId));
    if (isRejection(parsed)) {
      rejectedByReason.set(parsed.reason, (rejectedByReason.get(parsed.reason) ?? 0) + 1);
      rejected.push({ index, record: quarantineEntry(record, parsed, options.nowMs) });
      continue;
    }
    if (firstValidIndex < 0) firstValidIndex = index;
    const { siteId, event, day, userId, identity } = parsed;
    let days = bySite.get(siteId);
    if (!days) {
      days = new Map();
      bySite.set(siteId, days);
    }
    let siteDay = days.get(day);
    if (!siteDay) {
      siteDay = { daily: newGroup(siteId, day, undefined, index), byEvent: new Map() };
      days.set(day, siteDay);
    }
    let perEvent = siteDay.byEvent.get(event);
    if (!perEvent) {
      perEvent = newGroup(siteId, day, event, index);
      siteDay.byEvent.set(event, perEvent);
    }
    siteDay.daily.ids.push(userId);
    siteDay.daily.indexes.push(index);
    perEvent.ids.push(userId);
    perEvent.indexes.push(index);
    if (withEvents) {
      siteDay.daily.identities.push(identity);
      perEvent.identities.push(identity);
    }
  }

  const commands: HllCommand[] = [];
  /** A key's PFADDs (chunked; each depends from its first element's record), then its EXPIREAT. */
  const addKey = (key: string, elements: readonly string[], g: KeyGroup) => {
    for (let start = 0; start < elements.length; start += chunkSize) {
      const args = elements.slice(start, start + chunkSize);
      const dependsFrom = at(g.indexes, start, "record index");
      commands.push({ name: "pfadd", key, args, dependsFrom });
    }
    commands.push({ name: "expireat", key, at: g.expireAt, dependsFrom: g.firstIndex });
  };
  for (const g of groups.values()) {
    addKey(g.visitorsKey, g.ids, g);
    if (withEvents) addKey(g.eventsKey, g.identities, g);
  }
  if (groups.size > 0) {
    // Bookkeeping by slot group (keys.ts groupOfSite): one SADD of touched members and one of
    // site-index members per group the batch touched. Each depends from the first record of the
    // group's sites: a failed SADD leaves every earlier record's members stored.
    const bookkeeping = new Map<number, GroupBookkeeping>();
    const groupOf = new Map<string, GroupBookkeeping>();
    for (const [siteId, days] of bySite) {
      const group = groupOfSite(siteId);
      let entry = bookkeeping.get(group);
      if (!entry) {
        entry = { group, touched: [], sites: [], firstIndex: records.length };
        bookkeeping.set(group, entry);
      }
      for (const siteDay of days.values()) {
        entry.firstIndex = Math.min(entry.firstIndex, siteDay.daily.firstIndex);
      }
      groupOf.set(siteId, entry);
    }
    // Touched members in the batch's first-seen order, each under its site's group.
    for (const [member, g] of groups) groupOf.get(g.siteId)?.touched.push(member);
    // The site index a backfill reads (every site and site event type seen), and each site's
    // event types in the site's own slot beside its HLLs (the read API's events route).
    const eventTypes: HllCommand[] = [];
    for (const [siteId, days] of bySite) {
      const events = new Set<string>();
      let siteFirstIndex = records.length;
      for (const siteDay of days.values()) {
        siteFirstIndex = Math.min(siteFirstIndex, siteDay.daily.firstIndex);
        for (const event of siteDay.byEvent.keys()) events.add(event);
      }
      groupOf
        .get(siteId)
        ?.sites.push(
          siteIndexMember(siteId),
          ...[...events].map((e) => siteIndexMember(siteId, e)),
        );
      eventTypes.push({
        name: "sadd",
        key: siteEventTypesKey(siteId),
        args: [...events],
        dependsFrom: siteFirstIndex,
      });
    }
    for (const { group, touched, sites, firstIndex } of bookkeeping.values()) {
      commands.push(
        { name: "sadd", key: touchedKey(group), args: touched, dependsFrom: firstIndex },
        { name: "sadd", key: sitesKey(group), args: sites, dependsFrom: firstIndex },
      );
    }
    // The read API's `asOf`: sent with the SADDs above, so no round trip of its own.
    commands.push({
      name: "asOf",
      key: AS_OF_KEY,
      member: AS_OF_CONSUMER,
      at: options.nowMs,
      mode: "GT",
      dependsFrom: firstValidIndex,
    });
    // The first time events were stored: days before it are "not recorded yet" for the events
    // metric (history from before `ev:` keys existed), not zero.
    if (withEvents) {
      commands.push({
        name: "asOf",
        key: AS_OF_KEY,
        member: AS_OF_EVENTS_SINCE,
        at: options.eventsRecordedFromStart ? 0 : options.nowMs,
        mode: "LT",
        dependsFrom: firstValidIndex,
      });
    }
    commands.push(...eventTypes);
  }
  return { commands, rejected, rejectedByReason, keys: groups.size * (withEvents ? 2 : 1) };
}

function quarantineEntry(
  record: StreamRecord,
  rejection: Rejection,
  nowMs: number,
): QuarantinedRecord {
  const { reason, field } = rejection;
  // A detail may quote the record (a JSON parse error does): bounded, like the data.
  const detail =
    rejection.detail.length > QUARANTINE_DETAIL_LIMIT
      ? `${rejection.detail.slice(0, QUARANTINE_DETAIL_LIMIT)}…`
      : rejection.detail;
  const truncated = record.data.length > QUARANTINE_DATA_LIMIT;
  return {
    reason,
    ...(field === undefined ? {} : { field }),
    detail: truncated
      ? `${detail} (data truncated to ${QUARANTINE_DATA_LIMIT} of ${record.data.length} characters; dataSha256 is the whole data's)`
      : detail,
    sequenceNumber: record.sequenceNumber,
    partitionKey: record.partitionKey,
    ...(record.eventSourceArn === undefined ? {} : { eventSourceArn: record.eventSourceArn }),
    ...(record.eventId === undefined ? {} : { eventId: record.eventId }),
    data: truncated ? record.data.slice(0, QUARANTINE_DATA_LIMIT) : record.data,
    ...(truncated
      ? {
          dataSha256: createHash("sha256").update(record.data).digest("hex"),
          dataLength: record.data.length,
        }
      : {}),
    quarantinedAt: new Date(nowMs).toISOString(),
  };
}

/** A command as a failure message names it: `PFADD ev:{site_id=715}:2024-03-09`. */
function describeCommand(command: HllCommand): string {
  return command.name === "asOf"
    ? `ZADD ${command.key} ${command.mode} ${command.member}`
    : `${command.name.toUpperCase()} ${command.key}`;
}

/** Issues one planned command (callers issue all before awaiting any, to pipeline them). */
export function sendCommand(redis: HllWriter, command: HllCommand): Promise<unknown> {
  switch (command.name) {
    case "pfadd":
      return redis.pfadd(command.key, ...command.args);
    case "expireat":
      return redis.expireat(command.key, command.at, "NX");
    case "sadd":
      return redis.sadd(command.key, ...command.args);
    case "asOf":
      return command.mode === "GT"
        ? redis.zadd(command.key, "GT", command.at, command.member)
        : redis.zadd(command.key, "LT", command.at, command.member);
  }
}

/**
 * Sends a command: through the client, or, when the batch waits for replicas, on the connection
 * of the key's primary, which the WAIT then uses.
 */
function send(
  command: HllCommand,
  deps: IngestDeps,
): { primary: PrimaryConnection | undefined; promise: Promise<unknown> } {
  const { replicaWait } = deps;
  if (replicaWait === undefined) {
    return { primary: undefined, promise: sendCommand(deps.redis, command) };
  }
  try {
    const primary = replicaWait.primaryFor(command.key);
    return { primary, promise: sendCommand(primary.writer, command) };
  } catch (err) {
    return { primary: undefined, promise: Promise.reject(err) };
  }
}

/** A call of the batch: one planned Redis command, the quarantine send, or a WAIT. */
interface PendingCall {
  readonly dependsFrom: number;
  readonly describe: string;
  /** The command, when the call is one: sent again after a transient cluster error. */
  readonly command?: HllCommand;
  /** With replica waits: the primary connection the command last went on. */
  primary?: PrimaryConnection | undefined;
  /** A WAIT call: what a failure of it means (cause `replica_wait`). */
  readonly replicaWait?: true;
  promise: Promise<unknown>;
  /** How it ended; undefined while it has not answered. */
  state?: Settled;
}

type Settled = { status: "fulfilled" } | { status: "rejected"; reason: unknown };

/**
 * Errors after which the same command can simply be sent again: the cluster moved a slot or
 * was failing over, or a connection dropped. Every command of a batch is idempotent (PFADD,
 * EXPIREAT NX, SADD, ZADD GT/LT), so resending is safe. A full cluster (OOM), a missing permission or a
 * wrong type is not transient: the batch fails from the command's first record.
 */
const TRANSIENT_ERROR =
  /^(MOVED|ASK|TRYAGAIN|CLUSTERDOWN|LOADING) |Connection is closed|ECONNRESET|EPIPE|Stream isn't writeable/;
function isTransient(reason: unknown): boolean {
  return reason instanceof NoPrimaryError || TRANSIENT_ERROR.test(messageOf(reason));
}

/** Rounds of resending transient failures within one invocation, 50 ms, 100 ms, 200 ms apart. */
export const MAX_RETRY_ROUNDS = 3;

export async function ingestBatch(
  records: readonly StreamRecord[],
  deps: IngestDeps,
  options: IngestOptions,
): Promise<IngestResult> {
  const nowMs = deps.now();
  const planOptions: PlanOptions = {
    nowMs,
    retention: options.retention,
    ...(options.pfaddChunkSize ? { pfaddChunkSize: options.pfaddChunkSize } : {}),
    ...(options.eventsRecordedFromStart ? { eventsRecordedFromStart: true } : {}),
  };
  const parser = parserFor(planOptions);
  const timed = decodeTimedBatch(records, parser);
  const calendarOf = deps.zones
    ? await zonesOfBatch(deps.zones, sitesOf(timed), nowMs, deps)
    : undefined;
  const plan = planTimedBatch(records, timed, parser, {
    ...planOptions,
    ...(calendarOf ? { calendarOf } : {}),
  });
  for (const { record } of plan.rejected) {
    deps.logger.warn("record quarantined", {
      sequenceNumber: record.sequenceNumber,
      reason: record.reason,
      field: record.field,
      detail: record.detail,
    });
  }

  // Issue every command before awaiting any, so the client pipelines them per node.
  const calls: PendingCall[] = plan.commands.map((command) => ({
    dependsFrom: command.dependsFrom,
    describe: describeCommand(command),
    command,
    ...send(command, deps),
  }));
  const firstRejected = plan.rejected[0];
  if (firstRejected) {
    calls.push({
      dependsFrom: firstRejected.index,
      describe: "quarantine",
      promise: deps.quarantine.send(plan.rejected.map((r) => r.record)),
    });
  }

  let timedOut = await settleBefore(calls, options.deadlineMs - deps.now());
  let resent = 0;
  for (let round = 0; round < MAX_RETRY_ROUNDS && !timedOut; round++) {
    const transient = calls.filter(
      (call): call is PendingCall & { readonly command: HllCommand } =>
        call.command !== undefined &&
        call.state?.status === "rejected" &&
        isTransient(call.state.reason),
    );
    if (transient.length === 0) break;
    resent += transient.length;
    // Let the client learn the new slot owners (a Cluster re-reads its slot map) while the
    // backoff runs, then resend.
    const pause = Promise.allSettled([deps.beforeRetry?.(), sleep(50 * 2 ** round)]);
    await beforeDeadline(pause, options.deadlineMs, deps);
    for (const call of transient) {
      call.state = undefined;
      Object.assign(call, send(call.command, deps));
    }
    timedOut = await settleBefore(transient, options.deadlineMs - deps.now());
  }

  if (deps.replicaWait !== undefined) {
    const waits = await waitForReplicas(
      calls,
      firstFailure(calls)?.index ?? records.length,
      deps.replicaWait,
      options.deadlineMs,
      deps,
    );
    calls.push(...waits.calls);
    timedOut ||= waits.timedOut;
  }

  const first = firstFailure(calls);
  const firstFailedIndex = first?.index;
  const failure = first?.failure;
  const cause = first?.cause;
  const quarantined = plan.rejected.length;
  deps.metrics.count("RecordsReceived", records.length);
  deps.metrics.count("RecordsQuarantined", quarantined);
  for (const [reason, n] of plan.rejectedByReason)
    deps.metrics.count("RecordsRejected", n, { reason });
  deps.metrics.count("RedisCommands", plan.commands.length);
  if (resent > 0) deps.metrics.count("RedisCommandsResent", resent);
  if (firstFailedIndex !== undefined) {
    deps.metrics.count("BatchFailures", 1, { cause: cause ?? "redis_error" });
    deps.metrics.count("RecordsRetried", records.length - firstFailedIndex);
    deps.logger.error("batch failed; it will be retried from the first unstored record", {
      firstFailedIndex,
      sequenceNumber: records[firstFailedIndex]?.sequenceNumber,
      failure,
      cause,
      ...(cause === "out_of_memory" ? { fix: OUT_OF_MEMORY_FIX } : {}),
      ...(cause === "replica_wait" ? { fix: REPLICA_WAIT_FIX } : {}),
      timedOut,
    });
  }
  const counted =
    firstFailedIndex === undefined
      ? records.length - quarantined
      : countValidBefore(
          firstFailedIndex,
          plan.rejected.map((r) => r.index),
        );
  deps.metrics.count("RecordsCounted", counted);
  return {
    received: records.length,
    counted,
    quarantined,
    keysWritten: plan.keys,
    commands: plan.commands.length,
    resent,
    timedOut,
    ...(firstFailedIndex === undefined ? {} : { firstFailedIndex, failure }),
  };
}

/** The failed (or unanswered) call with the smallest `dependsFrom`: where the batch fails. */
function firstFailure(
  calls: readonly PendingCall[],
): { index: number; failure: string; cause: FailureCause } | undefined {
  let first: { index: number; failure: string; cause: FailureCause } | undefined;
  for (const call of calls) {
    const { state } = call;
    if (state?.status === "fulfilled") continue;
    if (first === undefined || call.dependsFrom < first.index) {
      const message = state === undefined ? undefined : messageOf(state.reason);
      first = {
        index: call.dependsFrom,
        failure:
          message === undefined
            ? `${call.describe}: no answer before the invocation's deadline`
            : `${call.describe}: ${message}`,
        cause: failureCause(call, message),
      };
    }
  }
  return first;
}

/** Time kept for a WAIT's reply to travel back after its server-side timeout. */
const WAIT_REPLY_MARGIN_MS = 100;

/**
 * Sends `WAIT <replicas> <timeout>` on every primary connection that answered a write the batch
 * will acknowledge (a command with `dependsFrom` below `acknowledgedBelow`, the batch's first
 * failure so far), in parallel, and returns one call per WAIT for the failure model.
 *
 * What "first record" means for a WAIT: a WAIT covers every write its connection carried, so
 * when it fails (fewer replicas than asked within the timeout, an error, no answer), no write on
 * that primary is known to be replicated, and the batch fails from the smallest `dependsFrom` of
 * the commands that primary answered. A record before that index has no write there (each of a
 * record's commands has a `dependsFrom` at or below the record), so it is stored on primaries
 * whose WAIT succeeded; from that index on, records are retried, which is harmless as for any
 * other failure (every command is idempotent).
 */
async function waitForReplicas(
  calls: readonly PendingCall[],
  acknowledgedBelow: number,
  replicaWait: ReplicaWait,
  deadlineMs: number,
  deps: Pick<IngestDeps, "now" | "logger" | "metrics">,
): Promise<{ calls: PendingCall[]; timedOut: boolean }> {
  const firstByPrimary = new Map<PrimaryConnection, number>();
  for (const call of calls) {
    const { primary } = call;
    if (primary === undefined || call.state?.status !== "fulfilled") continue;
    if (call.dependsFrom >= acknowledgedBelow) continue;
    firstByPrimary.set(
      primary,
      Math.min(firstByPrimary.get(primary) ?? call.dependsFrom, call.dependsFrom),
    );
  }
  if (firstByPrimary.size === 0) return { calls: [], timedOut: false };
  const budgetMs = deadlineMs - deps.now();
  const timeoutMs = Math.min(replicaWait.timeoutMs, budgetMs - WAIT_REPLY_MARGIN_MS);
  const { replicas } = replicaWait;
  const waits: PendingCall[] = [...firstByPrimary].map(([primary, dependsFrom]) => ({
    dependsFrom,
    describe: `WAIT ${replicas} ${timeoutMs} on primary ${primary.name}`,
    replicaWait: true,
    // Too little time left to wait at all: left unanswered, so the batch fails from here.
    promise:
      timeoutMs < 1
        ? new Promise<never>(() => {})
        : primary.wait(replicas, timeoutMs).then((acknowledged) => {
            if (acknowledged < replicas) {
              throw new Error(
                `${acknowledged} of ${replicas} replicas acknowledged the batch's writes within ${timeoutMs} ms`,
              );
            }
          }),
  }));
  deps.metrics.count("ReplicaWaits", waits.length);
  const timedOut = await settleBefore(waits, timeoutMs < 1 ? 0 : budgetMs);
  const failed = waits.filter((w) => w.state?.status !== "fulfilled");
  if (failed.length > 0) {
    deps.metrics.count("ReplicaWaitFailures", failed.length);
    for (const w of failed) {
      deps.logger.warn(
        "replicas did not confirm a primary's writes; the batch fails from its first record there",
        {
          wait: w.describe,
          firstIndex: w.dependsFrom,
          problem:
            w.state?.status === "rejected"
              ? messageOf(w.state.reason)
              : "no answer before the invocation's deadline",
        },
      );
    }
  }
  return { calls: waits, timedOut };
}

/**
 * Brings the registry copy up to date for the batch's sites (one HMGET for those not read in
 * the last minute) and returns each site's calendar. Never fails the batch: a registry that
 * cannot be read, or an entry that is not a zone, leaves the site in its last good zone (UTC
 * when none), logged and counted as `TimeZoneLoadFailures` (the stack alarms on it).
 */
async function zonesOfBatch(
  zones: SiteZones,
  sites: ReadonlySet<string>,
  nowMs: number,
  deps: Pick<IngestDeps, "logger" | "metrics">,
): Promise<(siteId: string) => ZoneCalendar | undefined> {
  const load = await zones.registry.load(sites, nowMs);
  if (load.failure !== undefined) {
    deps.metrics.count("TimeZoneLoadFailures", 1);
    deps.logger.warn("time zones not loaded; sites keep their last zone", {
      failure: load.failure,
    });
  }
  for (const bad of load.invalid) {
    deps.metrics.count("TimeZoneLoadFailures", 1);
    deps.logger.warn("a registry entry is not a time zone; the site keeps its last zone", {
      site: bad.site,
      entry: bad.entry,
      problem: bad.problem,
      fix: `npm run cli -- site --site ${bad.site} --time-zone <zone>`,
    });
  }
  return (siteId) => {
    const zone = zones.registry.zoneOf(siteId);
    return zone === DEFAULT_TIME_ZONE ? undefined : zones.calendars.forZone(zone, nowMs);
  };
}

/**
 * Why a batch failed, as the `cause` dimension of `BatchFailures`: the operator's first
 * question. `out_of_memory` is a full cluster (MemoryDB refuses writes under its noeviction
 * policy), `no_permission` an ACL that lacks a command or key, `timeout` a node that did not
 * answer, `quarantine` a quarantine sink that failed, `replica_wait` a primary whose writes no
 * replica confirmed in time (REDIS_WAIT_REPLICAS), `redis_error` anything else.
 */
export type FailureCause =
  | "out_of_memory"
  | "no_permission"
  | "timeout"
  | "quarantine"
  | "replica_wait"
  | "redis_error";

const REPLICA_WAIT_FIX =
  "no replica of that primary confirmed the batch's writes in time: one is down, lagging or being replaced (after a failover the new primary has none until a replica rejoins); the failed records are retried and counted once a replica confirms (README: Waiting for replicas); REDIS_WAIT_TIMEOUT_MS sets how long each WAIT may take";

const OUT_OF_MEMORY_FIX =
  "the cluster is full and refuses writes (noeviction): add shards or a larger node type (README, runbook: memorydb-memory); the failed records are retried and counted once there is room";

function failureCause(call: PendingCall, message: string | undefined): FailureCause {
  if (call.command === undefined && call.replicaWait === undefined) return "quarantine";
  if (message === undefined) return "timeout";
  if (message.startsWith("OOM ")) return "out_of_memory";
  // A WAIT refused by the ACL is a missing `+wait` (functions/domain/acl.ts consumerAclRules).
  if (message.startsWith("NOPERM")) return "no_permission";
  if (call.replicaWait) return "replica_wait";
  return "redis_error";
}

function countValidBefore(limit: number, rejectedIndexes: readonly number[]): number {
  return limit - rejectedIndexes.filter((i) => i < limit).length;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Waits for `work`, or until the deadline, whichever comes first; never throws. */
async function beforeDeadline(
  work: Promise<unknown>,
  deadlineMs: number,
  deps: Pick<IngestDeps, "now">,
): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<void>((resolve) => {
    timer = setTimeout(resolve, Math.max(0, deadlineMs - deps.now()));
  });
  await Promise.race([work.catch(() => {}), deadline]);
  clearTimeout(timer);
}

/**
 * Waits for every call to answer or for the budget to run out, recording each call's state;
 * true when some call had not answered by then.
 */
async function settleBefore(calls: readonly PendingCall[], budgetMs: number): Promise<boolean> {
  const all = Promise.all(
    calls.map((call) =>
      call.promise.then(
        () => {
          call.state = { status: "fulfilled" };
        },
        (reason: unknown) => {
          call.state = { status: "rejected", reason };
        },
      ),
    ),
  );
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<"timeout">((resolve) => {
    timer = setTimeout(() => resolve("timeout"), Math.max(0, budgetMs));
  });
  const winner = await Promise.race([all.then(() => "done" as const), timeout]);
  clearTimeout(timer);
  return winner === "timeout";
}
