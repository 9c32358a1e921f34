/**
 * A local stand-in for Lambda's Kinesis event source mapping: it reads every shard of a stream
 * (kinesalite locally) and invokes the real consumer handler with batches shaped exactly like
 * Lambda's, with the semantics the stack configures:
 *
 * - per shard, in order, one batch at a time (parallelization factor 1), from TRIM_HORIZON;
 * - batches of up to `batchSize` records, gathered for at most `batchingWindowMs`;
 * - ReportBatchItemFailures: the batch is checkpointed before the lowest reported sequence
 *   number, and the rest is retried; an identifier outside the batch fails the whole batch;
 * - on a function error (the handler throws), with bisect on, the batch is split in two and
 *   each half retried; splitting does not consume the retry quota (as in Lambda);
 * - after `maximumRetryAttempts` retries, or once the oldest record is older than
 *   `maximumRecordAgeMs`, the batch is discarded: a JSON line describing it (what Lambda sends
 *   to the on-failure destination: shard, sequence range, batch size, reason) is appended to
 *   the on-failure file, and the shard moves on.
 */

import { randomUUID } from "node:crypto";
import { appendFile } from "node:fs/promises";
import {
  type _Record,
  GetRecordsCommand,
  GetShardIteratorCommand,
  type KinesisClient,
  ListShardsCommand,
} from "@aws-sdk/client-kinesis";
import type {
  Context,
  KinesisStreamBatchResponse,
  KinesisStreamEvent,
  KinesisStreamRecord,
} from "aws-lambda";
import type { OnFailureRecord } from "../cli/on-failure-record.js";
import { at } from "../functions/domain/arrays.js";
import { lambdaContext } from "./lambda-context.js";

export interface EventSourceMappingSettings {
  /** Records per invocation, 1-10,000. Default 1,000. */
  readonly batchSize?: number;
  /** How long to gather records before invoking with fewer than batchSize. Default 500 ms. */
  readonly batchingWindowMs?: number;
  /** Split a failed batch in two before retrying. Default true. */
  readonly bisectOnError?: boolean;
  /** Retries of a failing batch before it is discarded to the on-failure file. Default 3. */
  readonly maximumRetryAttempts?: number;
  /** Records older than this are discarded to the on-failure file. Default 1 hour. */
  readonly maximumRecordAgeMs?: number;
  /** Pause between a failed invocation and its retry. Default 100 ms. */
  readonly retryDelayMs?: number;
}

export interface PollerOptions extends EventSourceMappingSettings {
  readonly kinesis: Pick<KinesisClient, "send">;
  readonly streamName: string;
  readonly streamArn: string;
  readonly region?: string;
  /** Invoked like Lambda invokes the function: the batch and an invocation context. */
  readonly handler: (
    event: KinesisStreamEvent,
    context: Context,
  ) => Promise<KinesisStreamBatchResponse | undefined>;
  /** The function's timeout, which bounds each invocation's context. Default 60 s. */
  readonly functionTimeoutMs?: number;
  /** JSON-lines file that receives what Lambda would send to the on-failure destination. */
  readonly onFailureFile: string;
  /** The function's ARN, as the on-failure records name it. Default: a local consumer's. */
  readonly functionArn?: string;
  readonly now?: () => number;
}

export interface PollerStats {
  invocations: number;
  recordsDelivered: number;
  recordsCheckpointed: number;
  batchesDiscarded: number;
  functionErrors: number;
  partialFailures: number;
}

/** What Lambda writes to an on-failure destination for a discarded Kinesis batch. */
export type { OnFailureRecord };

/** A field the Kinesis API always returns, though its SDK types make every field optional. */
function present(value: string | undefined, field: string): string {
  if (value === undefined) throw new Error(`Kinesis returned no ${field}`);
  return value;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

export class EventSourcePoller {
  readonly stats: PollerStats = {
    invocations: 0,
    recordsDelivered: 0,
    recordsCheckpointed: 0,
    batchesDiscarded: 0,
    functionErrors: 0,
    partialFailures: 0,
  };
  private readonly batchSize: number;
  private readonly windowMs: number;
  private readonly bisect: boolean;
  private readonly maxRetries: number;
  private readonly maxAgeMs: number;
  private readonly retryDelayMs: number;
  private readonly now: () => number;
  private running = false;
  private loops: Promise<void>[] = [];
  /** Per shard: caught up with the stream and nothing in flight. */
  private readonly idle = new Map<string, boolean>();

  constructor(private readonly options: PollerOptions) {
    this.batchSize = options.batchSize ?? 1000;
    if (this.batchSize < 1 || this.batchSize > 10_000) {
      throw new RangeError(
        `batchSize ${this.batchSize} is out of range: Kinesis allows 1 to 10,000`,
      );
    }
    this.windowMs = options.batchingWindowMs ?? 500;
    this.bisect = options.bisectOnError ?? true;
    this.maxRetries = options.maximumRetryAttempts ?? 3;
    this.maxAgeMs = options.maximumRecordAgeMs ?? 3_600_000;
    this.retryDelayMs = options.retryDelayMs ?? 100;
    this.now = options.now ?? Date.now;
  }

  async start(): Promise<void> {
    const out = await this.options.kinesis.send(
      new ListShardsCommand({ StreamName: this.options.streamName }),
    );
    const shards = (out.Shards ?? []).map((s) => present(s.ShardId, "ShardId"));
    this.running = true;
    this.loops = shards.map((shardId) => {
      this.idle.set(shardId, false);
      return this.pollShard(shardId);
    });
  }

  /** Resolves once every shard has delivered everything written before the call. */
  async drain(timeoutMs = 120_000): Promise<void> {
    const until = this.now() + timeoutMs;
    for (const shard of this.idle.keys()) this.idle.set(shard, false);
    while ([...this.idle.values()].some((idle) => !idle)) {
      if (this.now() > until)
        throw new Error(`the poller did not drain the stream within ${timeoutMs} ms`);
      await sleep(20);
    }
  }

  async stop(): Promise<void> {
    this.running = false;
    await Promise.all(this.loops);
  }

  private async pollShard(shardId: string): Promise<void> {
    const { kinesis, streamName } = this.options;
    let iterator = (
      await kinesis.send(
        new GetShardIteratorCommand({
          StreamName: streamName,
          ShardId: shardId,
          ShardIteratorType: "TRIM_HORIZON",
        }),
      )
    ).ShardIterator;
    let buffer: _Record[] = [];
    let firstBufferedAt = 0;
    while (this.running && iterator) {
      const out = await kinesis.send(
        new GetRecordsCommand({ ShardIterator: iterator, Limit: this.batchSize - buffer.length }),
      );
      iterator = out.NextShardIterator;
      const records = out.Records ?? [];
      if (records.length > 0 && buffer.length === 0) firstBufferedAt = this.now();
      buffer = buffer.concat(records);
      const full = buffer.length >= this.batchSize;
      const windowOver = buffer.length > 0 && this.now() - firstBufferedAt >= this.windowMs;
      const caughtUp = records.length === 0 && (out.MillisBehindLatest ?? 0) === 0;
      if (full || windowOver || (caughtUp && buffer.length > 0 && this.windowMs === 0)) {
        const batch = buffer;
        buffer = [];
        await this.deliver(shardId, batch);
        continue;
      }
      if (caughtUp && buffer.length === 0) this.idle.set(shardId, true);
      // Kinesis allows 5 GetRecords a second per shard; a quiet shard is polled gently.
      await sleep(records.length === 0 ? 25 : 0);
    }
  }

  /** Processes one batch to completion: delivered, or discarded to the on-failure file. */
  private async deliver(shardId: string, batch: readonly _Record[], retries = 0): Promise<void> {
    let pending = batch;
    let attempt = retries;
    while (pending.length > 0) {
      const oldest = pending[0]?.ApproximateArrivalTimestamp?.getTime() ?? this.now();
      if (this.now() - oldest > this.maxAgeMs) {
        await this.discard(shardId, pending, "RecordAgeExceeded", attempt);
        return;
      }
      this.stats.invocations++;
      this.stats.recordsDelivered += pending.length;
      let response: KinesisStreamBatchResponse | undefined;
      let functionError: string | undefined;
      try {
        response = await this.options.handler(
          this.event(shardId, pending),
          lambdaContext({ timeoutMs: this.options.functionTimeoutMs ?? 60_000 }),
        );
      } catch (err) {
        functionError = err instanceof Error ? `${err.name}: ${err.message}` : String(err);
      }
      if (functionError === undefined) {
        const failures = response?.batchItemFailures ?? [];
        if (failures.length === 0) {
          this.stats.recordsCheckpointed += pending.length;
          return;
        }
        this.stats.partialFailures++;
        const ids = failures.map((f) => f.itemIdentifier);
        const index = Math.min(
          ...ids.map((id) => pending.findIndex((r) => r.SequenceNumber === id)),
        );
        if (index < 0 || ids.some((id) => !id)) {
          functionError =
            "an itemIdentifier is not a sequence number of the batch: the whole batch failed";
        } else {
          // Everything before the lowest failure is checkpointed; the rest is retried.
          this.stats.recordsCheckpointed += index;
          pending = pending.slice(index);
        }
      }
      if (functionError !== undefined) {
        this.stats.functionErrors++;
        if (this.bisect && pending.length > 1) {
          // Splitting does not consume the retry quota.
          const half = Math.ceil(pending.length / 2);
          await this.deliver(shardId, pending.slice(0, half), attempt);
          await this.deliver(shardId, pending.slice(half), attempt);
          return;
        }
      }
      if (attempt >= this.maxRetries) {
        await this.discard(shardId, pending, "RetryAttemptsExhausted", attempt, functionError);
        return;
      }
      attempt++;
      await sleep(this.retryDelayMs);
    }
  }

  private async discard(
    shardId: string,
    records: readonly _Record[],
    condition: string,
    retries: number,
    functionError?: string,
  ): Promise<void> {
    const first = at(records, 0, "record");
    const last = at(records, -1, "record");
    // Lambda's shape exactly (cli/on-failure-record.ts), so `redrive` reads both with one
    // parser. Like Lambda's, it says only "Unhandled" for a thrown error, never its message.
    const line: OnFailureRecord = {
      requestContext: {
        requestId: randomUUID(),
        functionArn:
          this.options.functionArn ??
          `arn:aws:lambda:${this.options.region ?? "us-east-1"}:000000000000:function:sketchstream-local-consumer`,
        condition,
        approximateInvokeCount: retries + 1,
      },
      responseContext: {
        statusCode: 200,
        executedVersion: "$LATEST",
        ...(functionError === undefined ? {} : { functionError: "Unhandled" }),
      },
      version: "1.0",
      timestamp: new Date(this.now()).toISOString(),
      KinesisBatchInfo: {
        shardId,
        startSequenceNumber: present(first.SequenceNumber, "SequenceNumber"),
        endSequenceNumber: present(last.SequenceNumber, "SequenceNumber"),
        approximateArrivalOfFirstRecord: (
          first.ApproximateArrivalTimestamp ?? new Date(0)
        ).toISOString(),
        approximateArrivalOfLastRecord: (
          last.ApproximateArrivalTimestamp ?? new Date(0)
        ).toISOString(),
        batchSize: records.length,
        streamArn: this.options.streamArn,
      },
    };
    this.stats.batchesDiscarded++;
    await appendFile(this.options.onFailureFile, `${JSON.stringify(line)}\n`);
  }

  private event(shardId: string, records: readonly _Record[]): KinesisStreamEvent {
    const region = this.options.region ?? "us-east-1";
    return {
      Records: records.map(
        (r): KinesisStreamRecord => ({
          kinesis: {
            kinesisSchemaVersion: "1.0",
            partitionKey: present(r.PartitionKey, "PartitionKey"),
            sequenceNumber: present(r.SequenceNumber, "SequenceNumber"),
            data: Buffer.from(r.Data ?? new Uint8Array()).toString("base64"),
            approximateArrivalTimestamp:
              (r.ApproximateArrivalTimestamp?.getTime() ?? this.now()) / 1000,
          },
          eventSource: "aws:kinesis",
          eventVersion: "1.0",
          eventID: `${shardId}:${r.SequenceNumber}`,
          eventName: "aws:kinesis:record",
          invokeIdentityArn: "arn:aws:iam::000000000000:role/sketchstream-consumer",
          awsRegion: region,
          eventSourceARN: this.options.streamArn,
        }),
      ),
    };
  }
}
