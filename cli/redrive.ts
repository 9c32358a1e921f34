/**
 * `redrive`: have the records the pipeline gave up on counted again, each keeping its original
 * identity.
 *
 *   redrive               The on-failure destination holds only a shard and a sequence range
 *                         per discarded batch. Each range is read back from the stream while
 *                         it is retained (GetShardIterator AT_SEQUENCE_NUMBER, GetRecords up
 *                         to the range's end) and given to the consumer as the Kinesis event
 *                         Lambda would have delivered: the original data, partition keys and
 *                         sequence numbers, and `eventID` `shardId:sequenceNumber`.
 *   redrive --quarantine  Quarantined records are submitted again (after a fix) the same way,
 *                         with the `eventID` they were quarantined with; a record whose data was
 *                         truncated in quarantine is read back from the stream by its sequence
 *                         number and checked against its SHA-256, never submitted truncated.
 *
 * Why not put the records back on the stream: they would get new sequence numbers, so every
 * event without an `event_id` that a partly applied batch already stored would be counted a
 * second time in the `ev:` keys. The same `eventID` makes a record already stored add nothing.
 *
 * A message is deleted only once all of its records were counted (the consumer answered with
 * no batchItemFailures). Records already past the stream's retention are reported, and their
 * message kept unless --drop-expired. Events are judged by the consumer as on the first
 * delivery, against today's window: one now older than RETENTION_DAYS is quarantined.
 *
 * The edges (cli/redrive-edges.ts): in AWS the SQS queue and the consumer function (Invoke);
 * with --local the JSON-lines file and the consumer handler in this process.
 */

import { createHash } from "node:crypto";
import { WriteStream } from "node:tty";
import type { _Record, KinesisClient } from "@aws-sdk/client-kinesis";
import { LambdaClient } from "@aws-sdk/client-lambda";
import { SQSClient } from "@aws-sdk/client-sqs";
import type { KinesisStreamEvent, KinesisStreamRecord } from "aws-lambda";
import { SingleBar } from "cli-progress";
import * as v from "valibot";
import { messageOf } from "../functions/domain/errors.js";
import { parseFlags, wholeNumberArg } from "./args.js";
import { CliError, type CliIo, EXIT_FAILURE, EXIT_OK } from "./io.js";
import { parseOnFailureRecord } from "./on-failure-record.js";
import {
  type ConsumerEdge,
  FileMessageSource,
  InProcessConsumer,
  KinesisStreamReader,
  LambdaConsumer,
  type LambdaSender,
  type MessageSource,
  type SourceMessage,
  SqsMessageSource,
  type SqsSender,
  type StreamReader,
} from "./redrive-edges.js";
import { kinesisFromEnv } from "./send.js";

export interface RedriveRequest {
  /** Quarantined records instead of on-failure batches. */
  readonly quarantine: boolean;
  readonly dryRun: boolean;
  /** Messages to handle at most. */
  readonly max: number;
  /** Files and the in-process consumer instead of SQS and Lambda. */
  readonly local: boolean;
  /** Delete a message whose missing records are past retention, once the rest is counted. */
  readonly dropExpired: boolean;
  readonly json: boolean;
}

export function parseRedriveArgs(args: readonly string[]): RedriveRequest {
  const flags = parseFlags("redrive", args, {
    quarantine: { type: "boolean" },
    "dry-run": { type: "boolean" },
    max: { type: "string" },
    local: { type: "boolean" },
    "drop-expired": { type: "boolean" },
    json: { type: "boolean" },
  });
  return {
    quarantine: flags.quarantine ?? false,
    dryRun: flags["dry-run"] ?? false,
    max: wholeNumberArg("max", flags.max, Number.MAX_SAFE_INTEGER, 1),
    local: flags.local ?? false,
    dropExpired: flags["drop-expired"] ?? false,
    json: flags.json ?? false,
  };
}

// ---------------------------------------------------------------------------------------------
// Synthesized events

/**
 * Lambda's synchronous invocation payload limit is 6 MB; each invocation stays under 5 MB
 * (records, their base64 data and the JSON around them), whatever the records' sizes.
 */
export const MAX_INVOKE_PAYLOAD_BYTES = 5_000_000;
/** Records per invocation at most: the event source mapping's own largest batch. */
export const MAX_INVOKE_RECORDS = 10_000;
/** `{"Records":[]}` */
const EVENT_ENVELOPE_BYTES = 14;

/** What identifies and carries one record, as Lambda delivered it the first time. */
export interface OriginalRecord {
  /** `shardId:sequenceNumber` (or the id it was quarantined with): the record's identity. */
  readonly eventId: string;
  readonly sequenceNumber: string;
  readonly partitionKey: string;
  /** Base64, exactly as delivered. */
  readonly data: string;
  readonly streamArn: string;
  readonly arrivalMs: number;
}

/** The record as the event source mapping delivers it (see local/kinesis-event.ts). */
export function kinesisRecordOf(original: OriginalRecord): KinesisStreamRecord {
  const region = /^arn:aws[a-z-]*:kinesis:([a-z0-9-]+):/.exec(original.streamArn)?.[1] ?? "";
  return {
    kinesis: {
      kinesisSchemaVersion: "1.0",
      partitionKey: original.partitionKey,
      sequenceNumber: original.sequenceNumber,
      data: original.data,
      approximateArrivalTimestamp: original.arrivalMs / 1000,
    },
    eventSource: "aws:kinesis",
    eventVersion: "1.0",
    eventID: original.eventId,
    eventName: "aws:kinesis:record",
    // Lambda puts the mapping's role here; the consumer does not read it.
    invokeIdentityArn: "sketchstream-redrive",
    awsRegion: region,
    eventSourceARN: original.streamArn,
  };
}

/** A stream record read back (GetRecords) as the original record of shard `shardId`. */
export function originalOf(shardId: string, record: _Record, streamArn: string): OriginalRecord {
  const sequenceNumber = record.SequenceNumber ?? "";
  return {
    eventId: `${shardId}:${sequenceNumber}`,
    sequenceNumber,
    partitionKey: record.PartitionKey ?? "",
    data: Buffer.from(record.Data ?? new Uint8Array()).toString("base64"),
    streamArn,
    arrivalMs: record.ApproximateArrivalTimestamp?.getTime() ?? 0,
  };
}

/**
 * Consecutive groups of `items` whose events each stay within `maxBytes` of JSON and
 * `maxRecords` records, in order; a record too large on its own still gets a group.
 */
export function invocationGroups<T>(
  items: readonly T[],
  recordOf: (item: T) => KinesisStreamRecord,
  maxBytes = MAX_INVOKE_PAYLOAD_BYTES,
  maxRecords = MAX_INVOKE_RECORDS,
): T[][] {
  const groups: T[][] = [];
  let group: T[] = [];
  let bytes = EVENT_ENVELOPE_BYTES;
  for (const item of items) {
    // The record's JSON and the comma before it.
    const size = Buffer.byteLength(JSON.stringify(recordOf(item))) + 1;
    if (group.length > 0 && (bytes + size > maxBytes || group.length >= maxRecords)) {
      groups.push(group);
      group = [];
      bytes = EVENT_ENVELOPE_BYTES;
    }
    group.push(item);
    bytes += size;
  }
  if (group.length > 0) groups.push(group);
  return groups;
}

// ---------------------------------------------------------------------------------------------
// Quarantined records (functions/domain/quarantine.ts QuarantinedRecord)

const QuarantinedSchema = v.looseObject({
  reason: v.string(),
  sequenceNumber: v.pipe(v.string(), v.regex(/^\d+$/)),
  partitionKey: v.string(),
  eventSourceArn: v.optional(v.string()),
  eventId: v.optional(v.string()),
  data: v.string(),
  dataSha256: v.optional(v.pipe(v.string(), v.regex(/^[0-9a-f]{64}$/))),
  dataLength: v.optional(v.number()),
  quarantinedAt: v.optional(v.string()),
});

type Quarantined = v.InferOutput<typeof QuarantinedSchema>;

function parseQuarantined(text: string): Quarantined {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    throw new Error("not JSON");
  }
  const result = v.safeParse(QuarantinedSchema, json);
  if (!result.success) {
    throw new Error(
      `not a quarantined record: ${v.summarize(result.issues).replaceAll("\n", "; ")}`,
    );
  }
  return result.output;
}

/** The identity the consumer gave the record (ingest.ts: eventId, else arn-or-"stream":seq). */
function identityOf(record: Quarantined): string {
  return record.eventId ?? `${record.eventSourceArn ?? "stream"}:${record.sequenceNumber}`;
}

const EVENT_ID_RE = /^(shardId-\d{12}):(\d+)$/;

// ---------------------------------------------------------------------------------------------
// The run

export interface RedriveEdges {
  readonly source: MessageSource;
  readonly consumer: ConsumerEdge;
  readonly stream: StreamReader;
  /** STREAM_NAME: the stream's name or ARN; messages of another stream are left alone. */
  readonly streamName: string;
}

/** What happened to one on-failure batch. */
export interface BatchReport {
  readonly message: string;
  readonly shardId: string;
  readonly startSequenceNumber: string;
  readonly endSequenceNumber: string;
  readonly batchSize: number;
  readonly condition: string;
  /** Records of the range the stream still holds. */
  readonly readBack: number;
  readonly counted: number;
  /** Records of the batch no longer in the stream (at least this many). */
  readonly pastRetention: number;
  readonly deleted: boolean;
  readonly problem?: string;
}

export interface Problem {
  readonly message: string;
  readonly detail: string;
}

export interface RedriveSummary {
  readonly what: "on-failure batches" | "quarantined records";
  source: string;
  readonly consumer: string;
  readonly dryRun: boolean;
  readonly messages: { received: number; deleted: number; kept: number };
  readonly records: {
    /** Read back from the stream (a batch's range; a truncated quarantined record). */
    readBack: number;
    /** Given to the consumer and stored (or, with --dry-run, that would be given). */
    counted: number;
    /** No longer in the stream. */
    pastRetention: number;
    /** Quarantined records received again in this run: the consumer quarantined them again. */
    quarantinedAgain: number;
  };
  invocations: number;
  /** One per on-failure message (not for --quarantine). */
  readonly batches: BatchReport[];
  /** What could not be done, message by message. */
  readonly problems: Problem[];
  /** Why the run ended before the source was empty, when it did. */
  stopped?: string;
}

export interface RedriveProgress {
  update(state: { readonly messages: number; readonly counted: number }): void;
  stop(): void;
}

/** Thrown by a step whose failure stops the whole run (an AWS call, the consumer failing). */
class StopRun extends Error {}

/** Messages received per receive: SQS gives at most 10; a file gives more at a time. */
const PAGE = 10;
/** Quarantined records gathered before they are submitted together. */
const QUARANTINE_GROUP = 500;

async function step<T>(what: string, run: () => Promise<T>): Promise<T> {
  try {
    return await run();
  } catch (err) {
    if (err instanceof StopRun) throw err;
    const name = err instanceof Error && err.name !== "Error" ? `${err.name}: ` : "";
    throw new StopRun(`${what} failed: ${name}${messageOf(err)}`);
  }
}

function sameStream(arn: string, configured: string): boolean {
  return configured.startsWith("arn:") ? arn === configured : arn.endsWith(`:stream/${configured}`);
}

class Redrive {
  readonly summary: RedriveSummary;
  /** Messages handled and not deleted: released at the end. */
  private readonly left: SourceMessage[] = [];
  /** Every message received, and those already kept or deleted. */
  private readonly received: SourceMessage[] = [];
  private readonly settled = new Set<SourceMessage>();

  constructor(
    private readonly request: RedriveRequest,
    private readonly edges: RedriveEdges,
    private readonly progress: RedriveProgress,
  ) {
    this.summary = {
      what: request.quarantine ? "quarantined records" : "on-failure batches",
      source: edges.source.name,
      consumer: edges.consumer.name,
      dryRun: request.dryRun,
      messages: { received: 0, deleted: 0, kept: 0 },
      records: { readBack: 0, counted: 0, pastRetention: 0, quarantinedAgain: 0 },
      invocations: 0,
      batches: [],
      problems: [],
    };
  }

  async run(): Promise<RedriveSummary> {
    try {
      if (this.request.quarantine) await this.quarantined();
      else await this.batches();
    } catch (err) {
      if (!(err instanceof StopRun)) throw err;
      this.summary.stopped = err.message;
    } finally {
      // What a stopped run received and did not get to stays where it was.
      for (const message of this.received) if (!this.settled.has(message)) this.keep(message);
      this.progress.stop();
      await this.edges.source.release(this.left).catch(() => undefined);
      this.summary.source = this.edges.source.name;
    }
    return this.summary;
  }

  private tick(): void {
    this.progress.update({
      messages: this.summary.messages.received,
      counted: this.summary.records.counted,
    });
  }

  private keep(message: SourceMessage, detail?: string): void {
    this.settled.add(message);
    this.left.push(message);
    this.summary.messages.kept++;
    if (detail !== undefined) this.summary.problems.push({ message: message.id, detail });
  }

  private async remove(message: SourceMessage): Promise<void> {
    if (this.request.dryRun) {
      this.left.push(message);
    } else {
      await step(`deleting message ${message.id} from ${this.edges.source.name}`, () =>
        this.edges.source.delete(message),
      );
    }
    this.settled.add(message);
    this.summary.messages.deleted++;
  }

  private async receive(): Promise<readonly SourceMessage[]> {
    const room = this.request.max - this.summary.messages.received;
    if (room <= 0) return [];
    const page = await step(`reading messages from ${this.edges.source.name}`, () =>
      this.edges.source.receive(Math.min(PAGE, room)),
    );
    this.summary.messages.received += page.length;
    this.received.push(...page);
    return page;
  }

  /**
   * Gives `originals` to the consumer, in groups under the invoke limits; returns how many of
   * them, from the first, were counted. A consumer that did not count a group stops the run
   * after the caller has recorded what was counted.
   */
  private async count(
    originals: readonly OriginalRecord[],
  ): Promise<{ counted: number; error?: string }> {
    if (this.request.dryRun) {
      this.summary.invocations += invocationGroups(originals, kinesisRecordOf).length;
      this.summary.records.counted += originals.length;
      return { counted: originals.length };
    }
    let counted = 0;
    for (const group of invocationGroups(originals, kinesisRecordOf)) {
      const event: KinesisStreamEvent = { Records: group.map(kinesisRecordOf) };
      this.summary.invocations++;
      const outcome = await step(`invoking ${this.edges.consumer.name}`, () =>
        this.edges.consumer.invoke(event),
      );
      if (!outcome.counted) {
        const index =
          outcome.firstFailedSequenceNumber === undefined
            ? -1
            : group.findIndex((r) => r.sequenceNumber === outcome.firstFailedSequenceNumber);
        const stored = Math.max(0, index);
        counted += stored;
        this.summary.records.counted += stored;
        this.tick();
        return { counted, error: outcome.error };
      }
      counted += group.length;
      this.summary.records.counted += group.length;
      this.tick();
    }
    return { counted };
  }

  // --- on-failure batches

  private async batches(): Promise<void> {
    for (;;) {
      const page = await this.receive();
      if (page.length === 0) return;
      for (const message of page) {
        await this.batch(message);
        this.tick();
      }
    }
  }

  private async batch(message: SourceMessage): Promise<void> {
    let parsed: ReturnType<typeof parseOnFailureRecord>;
    try {
      parsed = parseOnFailureRecord(message.body);
    } catch (err) {
      this.keep(message, `unreadable message, left in place: ${messageOf(err)}`);
      return;
    }
    const { batch } = parsed;
    const base = {
      message: message.id,
      shardId: batch.shardId,
      startSequenceNumber: batch.startSequenceNumber,
      endSequenceNumber: batch.endSequenceNumber,
      batchSize: batch.batchSize,
      condition: parsed.condition,
    };
    const report = (fields: Omit<BatchReport, keyof typeof base>) =>
      this.summary.batches.push({ ...base, ...fields });
    if (!sameStream(batch.streamArn, this.edges.streamName)) {
      const problem = `the batch is from stream ${batch.streamArn}, not STREAM_NAME=${this.edges.streamName}: left in place (run redrive with that stream's STREAM_NAME)`;
      report({ readBack: 0, counted: 0, pastRetention: 0, deleted: false, problem });
      this.keep(message, problem);
      return;
    }
    const read = await step(`reading ${batch.shardId} back from the stream`, () =>
      this.edges.stream.readRange(
        batch.shardId,
        batch.startSequenceNumber,
        batch.endSequenceNumber,
        batch.batchSize,
      ),
    );
    this.summary.records.readBack += read.records.length;
    // A trimmed stream loses its oldest records first: a missing start means the batch's
    // records before the first one found are gone (with parallelization, at least this many).
    const complete = read.startFound && read.endFound && read.records.length >= batch.batchSize;
    const pastRetention = complete ? 0 : Math.max(1, batch.batchSize - read.records.length);
    const originals = read.records.map((r) => originalOf(batch.shardId, r, batch.streamArn));
    const { counted, error } = await this.count(originals);
    const problems: string[] = [];
    if (!complete) {
      this.summary.records.pastRetention += pastRetention;
      problems.push(
        read.startFound
          ? `${pastRetention} of its ${batch.batchSize} records are not in the stream (its last record was not found)`
          : `${pastRetention} of its ${batch.batchSize} records are past the stream's retention and cannot be counted`,
      );
    }
    if (error !== undefined) problems.push(`not all counted: ${error}`);
    const deletable = error === undefined && (complete || this.request.dropExpired);
    if (deletable) await this.remove(message);
    const problem =
      problems.length === 0
        ? undefined
        : `${problems.join("; ")}; ${deletable ? (this.request.dryRun ? "the message would be deleted (--drop-expired)" : "message deleted (--drop-expired)") : "message kept"}`;
    report({
      readBack: read.records.length,
      counted,
      pastRetention: complete ? 0 : pastRetention,
      deleted: deletable,
      ...(problem ? { problem } : {}),
    });
    if (!deletable) this.keep(message);
    if (problem) this.summary.problems.push({ message: message.id, detail: problem });
    if (error !== undefined) {
      throw new StopRun(
        `the consumer did not count a batch: ${error}. Fix the cause and run redrive again (counting again is harmless)`,
      );
    }
  }

  // --- quarantined records

  private readonly submitted = new Set<string>();

  private async quarantined(): Promise<void> {
    let pending: { message: SourceMessage; original: OriginalRecord }[] = [];
    const flush = async () => {
      const items = pending;
      pending = [];
      if (items.length === 0) return;
      const { counted, error } = await this.count(items.map((i) => i.original));
      for (const [i, item] of items.entries()) {
        if (i < counted) await this.remove(item.message);
        else this.keep(item.message);
      }
      this.tick();
      if (error !== undefined) {
        this.summary.problems.push({
          message: items[counted]?.message.id ?? "?",
          detail: `not counted from this record on: ${error}; ${items.length - counted} messages kept`,
        });
        throw new StopRun(
          `the consumer did not count the records: ${error}. Fix the cause and run redrive --quarantine again`,
        );
      }
    };
    for (;;) {
      const page = await this.receive();
      if (page.length === 0) {
        if (pending.length === 0) return;
        // Submitted, then received again: what comes back now is what is still invalid.
        await flush();
        continue;
      }
      for (const message of page) {
        const original = await this.quarantinedOriginal(message);
        if (original) pending.push({ message, original });
      }
      if (pending.length >= QUARANTINE_GROUP) await flush();
      this.tick();
    }
  }

  /** The record to submit again, or undefined (the message is kept, and why is reported). */
  private async quarantinedOriginal(message: SourceMessage): Promise<OriginalRecord | undefined> {
    let record: Quarantined;
    try {
      record = parseQuarantined(message.body);
    } catch (err) {
      this.keep(message, `unreadable message, left in place: ${messageOf(err)}`);
      return undefined;
    }
    const identity = identityOf(record);
    if (this.submitted.has(identity)) {
      // Submitted earlier in this run and quarantined again: still invalid.
      this.summary.records.quarantinedAgain++;
      this.keep(message);
      return undefined;
    }
    const streamArn = record.eventSourceArn ?? this.edges.streamName;
    if (record.eventSourceArn !== undefined && !sameStream(streamArn, this.edges.streamName)) {
      this.keep(
        message,
        `record ${identity} is from stream ${streamArn}, not STREAM_NAME=${this.edges.streamName}: left in place`,
      );
      return undefined;
    }
    let data = record.data;
    let arrivalMs = record.quarantinedAt ? Date.parse(record.quarantinedAt) || 0 : 0;
    if (record.dataSha256 !== undefined) {
      // Truncated in quarantine: the whole record comes from the stream, or not at all.
      const located = EVENT_ID_RE.exec(record.eventId ?? "");
      if (!located || located[2] !== record.sequenceNumber) {
        this.keep(
          message,
          `record ${identity} was quarantined truncated and its eventId does not name its shard: it cannot be read back, left in place`,
        );
        return undefined;
      }
      const shardId = located[1] ?? "";
      const found = await step(`reading ${identity} back from the stream`, () =>
        this.edges.stream.readOne(shardId, record.sequenceNumber),
      );
      if (!found) {
        this.summary.records.pastRetention++;
        if (this.request.dropExpired) {
          this.summary.problems.push({
            message: message.id,
            detail: `record ${identity} (quarantined truncated) is past the stream's retention and cannot be counted; message ${this.request.dryRun ? "would be " : ""}deleted (--drop-expired)`,
          });
          await this.remove(message);
        } else {
          this.keep(
            message,
            `record ${identity} (quarantined truncated) is past the stream's retention and cannot be counted; message kept`,
          );
        }
        return undefined;
      }
      this.summary.records.readBack++;
      data = Buffer.from(found.Data ?? new Uint8Array()).toString("base64");
      const sha = createHash("sha256").update(data).digest("hex");
      if (sha !== record.dataSha256) {
        this.keep(
          message,
          `record ${identity}: the stream's record has SHA-256 ${sha}, not the quarantined ${record.dataSha256}: left in place`,
        );
        return undefined;
      }
      arrivalMs = found.ApproximateArrivalTimestamp?.getTime() ?? arrivalMs;
    }
    this.submitted.add(identity);
    return {
      eventId: identity,
      sequenceNumber: record.sequenceNumber,
      partitionKey: record.partitionKey,
      data,
      streamArn,
      arrivalMs,
    };
  }
}

/** Redrives with these edges; the summary says what was done and what could not be. */
export function redrive(
  request: RedriveRequest,
  edges: RedriveEdges,
  progress: RedriveProgress = { update() {}, stop() {} },
): Promise<RedriveSummary> {
  return new Redrive(request, edges, progress).run();
}

// ---------------------------------------------------------------------------------------------
// The command

export interface RedriveDeps extends CliIo {
  /** The SQS edge; made from the queue URL's region when not given. */
  readonly sqs?: SqsSender;
  /** The Lambda edge; made from the function's region when not given. */
  readonly lambda?: LambdaSender;
  /** The Kinesis edge; made from STREAM_NAME and KINESIS_ENDPOINT when not given. */
  readonly kinesis?: Pick<KinesisClient, "send">;
  /** The in-process consumer's clock (--local). Default Date.now. */
  readonly now?: () => number;
  readonly redriveProgress?: (json: boolean) => RedriveProgress;
}

function required(env: CliIo["env"], name: string, what: string): string {
  const value = env[name]?.trim();
  if (!value) throw new CliError(`${name} is not set: expected ${what}`);
  return value;
}

function regionOf(env: CliIo["env"], ...hints: string[]): string {
  for (const hint of hints) {
    const found =
      /^arn:aws[a-z-]*:[a-z]+:([a-z]{2}(?:-[a-z]+)+-\d+):/.exec(hint)?.[1] ??
      /^https:\/\/sqs\.([a-z]{2}(?:-[a-z]+)+-\d+)\.amazonaws\.com\//.exec(hint)?.[1];
    if (found) return found;
  }
  const region = env.AWS_REGION?.trim() || env.AWS_DEFAULT_REGION?.trim();
  if (!region)
    throw new CliError("AWS_REGION is not set: expected the stack's region, e.g. eu-west-1");
  return region;
}

/** The edges from the environment: files and the handler with --local, else SQS and Lambda. */
function edgesFromEnv(
  request: RedriveRequest,
  deps: RedriveDeps,
): { edges: RedriveEdges; close(): void } {
  const { env } = deps;
  const closers: (() => void)[] = [];
  const close = () => {
    for (const c of closers) c();
  };
  try {
    let kinesis = deps.kinesis;
    let streamName = env.STREAM_NAME?.trim() ?? "";
    if (!kinesis) {
      const made = kinesisFromEnv(env);
      kinesis = made.kinesis;
      streamName = made.stream;
      closers.push(() => made.kinesis.destroy());
    } else if (!streamName) {
      throw new CliError("STREAM_NAME is not set: expected the Kinesis stream's name or ARN");
    }
    let source: MessageSource;
    let consumer: ConsumerEdge;
    if (request.local) {
      source = new FileMessageSource(
        request.quarantine
          ? required(env, "QUARANTINE_FILE", "the local quarantine file (JSON lines)")
          : required(
              env,
              "ON_FAILURE_FILE",
              "the local poller's on-failure file (JSON lines; on-failure.jsonl in the local runtime's data directory)",
            ),
      );
      // Throws ConfigError naming what the consumer's configuration lacks, before any message.
      const inProcess = new InProcessConsumer(env, deps.now);
      consumer = inProcess;
      closers.push(() => inProcess.close());
    } else {
      const queueUrl = request.quarantine
        ? required(
            env,
            "QUARANTINE_QUEUE_URL",
            "the quarantine queue's URL (stack output quarantine_queue_url, in cli_env); or --local with QUARANTINE_FILE",
          )
        : required(
            env,
            "FAILURE_QUEUE_URL",
            "the consumer's on-failure queue URL (stack output failure_queue_url, in cli_env); or --local with ON_FAILURE_FILE",
          );
      const functionName = required(
        env,
        "CONSUMER_FUNCTION_NAME",
        "the consumer function's name or ARN (in the stack output cli_env)",
      );
      let sqs = deps.sqs;
      if (!sqs) {
        const client = new SQSClient({ region: regionOf(env, queueUrl) });
        sqs = client;
        closers.push(() => client.destroy());
      }
      let lambda = deps.lambda;
      if (!lambda) {
        const client = new LambdaClient({ region: regionOf(env, functionName, queueUrl) });
        lambda = client;
        closers.push(() => client.destroy());
      }
      source = new SqsMessageSource(sqs, queueUrl);
      consumer = new LambdaConsumer(lambda, functionName);
    }
    return {
      edges: { source, consumer, stream: new KinesisStreamReader(kinesis, streamName), streamName },
      close,
    };
  } catch (err) {
    close();
    throw err;
  }
}

function defaultProgress(deps: RedriveDeps): RedriveProgress {
  if (deps.stderr instanceof WriteStream) {
    const bar = new SingleBar({
      format: "redrive | {value} messages | {counted} records counted | {duration_formatted}",
      stream: deps.stderr,
      hideCursor: true,
    });
    bar.start(0, 0, { counted: 0 });
    return {
      update: ({ messages, counted }) => {
        bar.setTotal(messages);
        bar.update(messages, { counted });
      },
      stop: () => bar.stop(),
    };
  }
  // Plain lines for logs and pipes, at most one per 10 s.
  let last = Date.now();
  return {
    update({ messages, counted }) {
      if (Date.now() - last < 10_000) return;
      last = Date.now();
      deps.stderr.write(`redrive: ${messages} messages, ${counted} records counted\n`);
    },
    stop() {},
  };
}

/** Problems listed one a line in the text report; --json has them all. */
const MAX_PROBLEM_LINES = 50;

const plural = (n: number, one: string, many = `${one}s`) => `${n} ${n === 1 ? one : many}`;

function summaryText(summary: RedriveSummary): string {
  const lines: string[] = [];
  const would = summary.dryRun ? "would be " : "";
  lines.push(
    `${summary.dryRun ? "dry run: " : ""}redrive of ${summary.what} from ${summary.source} through ${summary.consumer}`,
  );
  for (const b of summary.batches) {
    const head = `${b.shardId} ${b.startSequenceNumber}..${b.endSequenceNumber} (${plural(b.batchSize, "record")}, ${b.condition})`;
    const tail = b.problem ?? (b.deleted ? `message ${would}deleted` : "message kept");
    lines.push(
      `  ${head}: ${b.readBack} read back, ${b.counted} ${summary.dryRun ? "to count" : "counted"}; ${tail}`,
    );
  }
  const others = summary.problems.filter(
    (p) => !summary.batches.some((b) => b.message === p.message && b.problem === p.detail),
  );
  for (const p of others.slice(0, MAX_PROBLEM_LINES)) lines.push(`  ${p.message}: ${p.detail}`);
  if (others.length > MAX_PROBLEM_LINES)
    lines.push(`  and ${others.length - MAX_PROBLEM_LINES} more (--json lists every one)`);
  const { messages, records } = summary;
  lines.push(
    `${plural(messages.received, "message")}: ${messages.deleted} ${would}deleted, ${messages.kept} kept; ${plural(records.counted, "record")} ${summary.dryRun ? "to count" : "counted"} in ${plural(summary.invocations, "invocation")}${records.readBack > 0 ? ` (${records.readBack} read back from the stream)` : ""}`,
  );
  if (records.pastRetention > 0)
    lines.push(
      `${plural(records.pastRetention, "record")} past the stream's retention: they cannot be counted${summary.messages.kept > 0 ? " (their messages are kept; --drop-expired deletes them once the rest is counted)" : ""}`,
    );
  if (summary.what === "quarantined records" && !summary.dryRun && records.counted > 0)
    lines.push(
      `records still invalid were quarantined again, with their reason${records.quarantinedAgain > 0 ? ` (${records.quarantinedAgain} came back in this run and are left there)` : ""}`,
    );
  if (summary.stopped) lines.push(`stopped: ${summary.stopped}`);
  return `${lines.join("\n")}\n`;
}

/** Done: every message handled was (or, with --dry-run, would be) deleted, and nothing stopped. */
function succeeded(summary: RedriveSummary): boolean {
  return (
    summary.stopped === undefined && summary.messages.kept === summary.records.quarantinedAgain
  );
}

export async function runRedrive(args: readonly string[], deps: RedriveDeps): Promise<number> {
  const request = parseRedriveArgs(args);
  const { edges, close } = edgesFromEnv(request, deps);
  let summary: RedriveSummary;
  try {
    const progress = deps.redriveProgress?.(request.json) ?? defaultProgress(deps);
    summary = await redrive(request, edges, progress);
  } finally {
    close();
  }
  deps.stdout.write(request.json ? `${JSON.stringify(summary, null, 2)}\n` : summaryText(summary));
  return succeeded(summary) ? EXIT_OK : EXIT_FAILURE;
}
