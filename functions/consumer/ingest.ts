/**
 * The consumer's domain logic: turn one batch of Kinesis records into grouped HLL writes.
 *
 * Each valid event adds its user id to two daily HLLs (the site's, and the site's for the
 * event type). Ids are grouped per key and sent as one variadic PFADD per key (chunked), then
 * `EXPIREAT … NX` gives each key its fixed deadline, and the (site, day[, event]) pairs go to
 * the touched set the rollup drains. The commands are issued together so the client pipelines
 * them per cluster node.
 *
 * Failure model: every command carries the index of the first record whose effect depends on
 * it. When a command fails, or has not answered by the deadline, the batch fails from the
 * smallest such index: every record before it is known to be stored, and replaying the rest
 * is harmless because PFADD, EXPIREAT NX and SADD are idempotent.
 */

import { type ParseContext, parseRecordData, type RejectReason } from "../shared/events.js";
import { TOUCHED_KEY, touchedMember, uniqueVisitorsKey } from "../shared/keys.js";
import { expiresAtSeconds, type RetentionSettings } from "../shared/periods.js";
import type { QuarantinedRecord, QuarantineSink } from "../shared/quarantine.js";

/** The part of a Kinesis record the consumer reads. */
export interface StreamRecord {
  readonly sequenceNumber: string;
  readonly partitionKey: string;
  readonly data: string;
  readonly eventSourceArn?: string;
  readonly eventId?: string;
}

/** The Redis commands the consumer uses; an ioredis Redis or Cluster satisfies it. */
export interface HllWriter {
  pfadd(key: string, ...elements: string[]): Promise<number>;
  expireat(key: string, unixTimeSeconds: number, nx: "NX"): Promise<number>;
  sadd(key: string, ...members: string[]): Promise<number>;
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
}

export interface IngestOptions {
  readonly retention: RetentionSettings;
  /** Epoch ms by which every Redis and quarantine call must have answered. */
  readonly deadlineMs: number;
  /** Most ids in one PFADD. Default 2000. */
  readonly pfaddChunkSize?: number;
}

export interface IngestResult {
  readonly received: number;
  readonly counted: number;
  readonly quarantined: number;
  readonly keysWritten: number;
  readonly commands: number;
  /** Index of the first record whose effect is not known to be stored; undefined when all are. */
  readonly firstFailedIndex?: number;
  /** Why the batch failed from `firstFailedIndex`. */
  readonly failure?: string;
  readonly timedOut: boolean;
}

/** Largest slice of a record's data kept in quarantine (SQS messages are at most 256 KiB). */
export const QUARANTINE_DATA_LIMIT = 200_000;
const DEFAULT_CHUNK = 2000;

interface KeyGroup {
  readonly key: string;
  readonly expireAt: number;
  readonly firstIndex: number;
  readonly ids: string[];
  /** Record index of each id's first occurrence, parallel to `ids`. */
  readonly idFirstIndex: number[];
  readonly seen: Set<string>;
}

interface PendingCommand {
  readonly dependsFrom: number;
  readonly describe: string;
  readonly promise: Promise<unknown>;
}

export async function ingestBatch(
  records: readonly StreamRecord[],
  deps: IngestDeps,
  options: IngestOptions,
): Promise<IngestResult> {
  const nowMs = deps.now();
  const parseContext: ParseContext = { nowMs, retentionDays: options.retention.days };
  const chunkSize = options.pfaddChunkSize ?? DEFAULT_CHUNK;
  const groups = new Map<string, KeyGroup>();
  const touched = new Set<string>();
  const rejected: { index: number; record: QuarantinedRecord }[] = [];
  const rejectedByReason = new Map<RejectReason, number>();
  let firstValidIndex = -1;
  const expiryCache = new Map<string, number>();
  const dayExpiry = (day: string): number => {
    let at = expiryCache.get(day);
    if (at === undefined) {
      at = expiresAtSeconds({ kind: "day", label: day }, options.retention);
      expiryCache.set(day, at);
    }
    return at;
  };
  const addToGroup = (key: string, day: string, userId: string, index: number) => {
    let group = groups.get(key);
    if (!group) {
      group = {
        key,
        expireAt: dayExpiry(day),
        firstIndex: index,
        ids: [],
        idFirstIndex: [],
        seen: new Set(),
      };
      groups.set(key, group);
    }
    if (!group.seen.has(userId)) {
      group.seen.add(userId);
      group.ids.push(userId);
      group.idFirstIndex.push(index);
    }
  };

  for (let index = 0; index < records.length; index++) {
    const record = records[index] as StreamRecord;
    const parsed = parseRecordData(record.data, parseContext);
    if (!parsed.ok) {
      const { reason, field, detail } = parsed.rejection;
      rejectedByReason.set(reason, (rejectedByReason.get(reason) ?? 0) + 1);
      const truncated = record.data.length > QUARANTINE_DATA_LIMIT;
      rejected.push({
        index,
        record: {
          reason,
          ...(field === undefined ? {} : { field }),
          detail: truncated
            ? `${detail} (data truncated to ${QUARANTINE_DATA_LIMIT} characters)`
            : detail,
          sequenceNumber: record.sequenceNumber,
          partitionKey: record.partitionKey,
          ...(record.eventSourceArn === undefined ? {} : { eventSourceArn: record.eventSourceArn }),
          ...(record.eventId === undefined ? {} : { eventId: record.eventId }),
          data: truncated ? record.data.slice(0, QUARANTINE_DATA_LIMIT) : record.data,
          quarantinedAt: new Date(nowMs).toISOString(),
        },
      });
      deps.logger.warn("record quarantined", {
        sequenceNumber: record.sequenceNumber,
        reason,
        field,
        detail,
      });
      continue;
    }
    if (firstValidIndex < 0) firstValidIndex = index;
    const { siteId, event, day, userId } = parsed.event;
    addToGroup(uniqueVisitorsKey(siteId, day), day, userId, index);
    addToGroup(uniqueVisitorsKey(siteId, day, event), day, userId, index);
    touched.add(touchedMember(siteId, day));
    touched.add(touchedMember(siteId, day, event));
  }

  // Issue every command before awaiting any, so the client pipelines them per node.
  const pending: PendingCommand[] = [];
  for (const group of groups.values()) {
    for (let start = 0; start < group.ids.length; start += chunkSize) {
      pending.push({
        dependsFrom: group.idFirstIndex[start] as number,
        describe: `PFADD ${group.key}`,
        promise: deps.redis.pfadd(group.key, ...group.ids.slice(start, start + chunkSize)),
      });
    }
    pending.push({
      dependsFrom: group.firstIndex,
      describe: `EXPIREAT ${group.key}`,
      promise: deps.redis.expireat(group.key, group.expireAt, "NX"),
    });
  }
  if (touched.size > 0) {
    pending.push({
      dependsFrom: firstValidIndex,
      describe: `SADD ${TOUCHED_KEY}`,
      promise: deps.redis.sadd(TOUCHED_KEY, ...touched),
    });
  }
  if (rejected.length > 0) {
    pending.push({
      dependsFrom: (rejected[0] as { index: number }).index,
      describe: "quarantine",
      promise: deps.quarantine.send(rejected.map((r) => r.record)),
    });
  }

  const outcome = await settleBefore(pending, options.deadlineMs - deps.now());
  let firstFailedIndex: number | undefined;
  let failure: string | undefined;
  for (let i = 0; i < pending.length; i++) {
    const state = outcome.states[i];
    if (state?.status === "fulfilled") continue;
    const command = pending[i] as PendingCommand;
    if (firstFailedIndex === undefined || command.dependsFrom < firstFailedIndex) {
      firstFailedIndex = command.dependsFrom;
      failure =
        state === undefined
          ? `${command.describe}: no answer before the invocation's deadline`
          : `${command.describe}: ${errorMessage(state.reason)}`;
    }
  }

  const quarantined = rejected.length;
  deps.metrics.count("RecordsReceived", records.length);
  deps.metrics.count("RecordsQuarantined", quarantined);
  for (const [reason, n] of rejectedByReason) deps.metrics.count("RecordsRejected", n, { reason });
  deps.metrics.count("RedisCommands", pending.length);
  if (firstFailedIndex !== undefined) {
    deps.metrics.count("BatchFailures", 1);
    deps.metrics.count("RecordsRetried", records.length - firstFailedIndex);
    deps.logger.error("batch failed; it will be retried from the first unstored record", {
      firstFailedIndex,
      sequenceNumber: records[firstFailedIndex]?.sequenceNumber,
      failure,
      timedOut: outcome.timedOut,
    });
  }
  const counted =
    firstFailedIndex === undefined
      ? records.length - quarantined
      : countValidBefore(
          firstFailedIndex,
          rejected.map((r) => r.index),
        );
  deps.metrics.count("RecordsCounted", counted);
  return {
    received: records.length,
    counted,
    quarantined,
    keysWritten: groups.size,
    commands: pending.length,
    timedOut: outcome.timedOut,
    ...(firstFailedIndex === undefined ? {} : { firstFailedIndex, failure }),
  };
}

function countValidBefore(limit: number, rejectedIndexes: readonly number[]): number {
  return limit - rejectedIndexes.filter((i) => i < limit).length;
}

type Settled = { status: "fulfilled" } | { status: "rejected"; reason: unknown };

/** Waits for every promise or for the budget to run out; unanswered ones stay undefined. */
async function settleBefore(
  pending: readonly PendingCommand[],
  budgetMs: number,
): Promise<{ states: (Settled | undefined)[]; timedOut: boolean }> {
  const states: (Settled | undefined)[] = new Array(pending.length).fill(undefined);
  const all = Promise.all(
    pending.map((command, i) =>
      command.promise.then(
        () => {
          states[i] = { status: "fulfilled" };
        },
        (reason: unknown) => {
          states[i] = { status: "rejected", reason };
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
  return { states, timedOut: winner === "timeout" };
}

function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
