/**
 * The edges `redrive` works through, one small interface each, so the same redrive logic
 * (cli/redrive.ts) runs in AWS and on the local runtime:
 *
 *   messages   AWS: an SQS queue (the mapping's on-failure queue, or the quarantine queue)
 *              local: a JSON-lines file (the poller's on-failure file, or QUARANTINE_FILE)
 *   consumer   AWS: the consumer function, invoked synchronously (Lambda Invoke)
 *              local: the real consumer handler, in this process
 *   stream     Kinesis (AWS, or kinesalite at KINESIS_ENDPOINT): records read back by their
 *              sequence numbers (GetShardIterator AT_SEQUENCE_NUMBER, GetRecords)
 */

import { randomUUID } from "node:crypto";
import { readFile, rename, writeFile } from "node:fs/promises";
import { Logger } from "@aws-lambda-powertools/logger";
import {
  type _Record,
  GetRecordsCommand,
  GetShardIteratorCommand,
  type KinesisClient,
} from "@aws-sdk/client-kinesis";
import { InvokeCommand, type InvokeCommandOutput } from "@aws-sdk/client-lambda";
import {
  ChangeMessageVisibilityBatchCommand,
  type ChangeMessageVisibilityBatchCommandOutput,
  DeleteMessageCommand,
  type DeleteMessageCommandOutput,
  ReceiveMessageCommand,
  type ReceiveMessageCommandOutput,
} from "@aws-sdk/client-sqs";
import type { KinesisStreamBatchResponse, KinesisStreamEvent } from "aws-lambda";
import { createConsumerHandler } from "../functions/consumer/handler.js";
import { messageOf } from "../functions/domain/errors.js";
import { type Env, loadConsumerRuntimeConfig } from "../functions/domain/runtime-env.js";

// ---------------------------------------------------------------------------------------------
// Messages

/** One message of the source: an SQS message, or one line of a file. */
export interface SourceMessage {
  /** The SQS MessageId, or `line N` of the file. */
  readonly id: string;
  readonly body: string;
}

export interface MessageSource {
  /** Where the messages come from, for the report: the queue URL or the file's path. */
  readonly name: string;
  /** Up to `max` messages not yet received in this run; none when no new one is left. */
  receive(max: number): Promise<readonly SourceMessage[]>;
  /** Removes a message for good: only once all of its records were counted. */
  delete(message: SourceMessage): Promise<void>;
  /** At the end of a run: messages left in place become visible to the next run at once. */
  release(messages: readonly SourceMessage[]): Promise<void>;
}

/** The SQS calls a queue source makes: an SQSClient, or a test double recording them. */
export interface SqsSender {
  send(command: ReceiveMessageCommand): Promise<ReceiveMessageCommandOutput>;
  send(command: DeleteMessageCommand): Promise<DeleteMessageCommandOutput>;
  send(
    command: ChangeMessageVisibilityBatchCommand,
  ): Promise<ChangeMessageVisibilityBatchCommandOutput>;
}

/** Long enough to read a batch back and have it counted; what is left is released at the end. */
export const RECEIVE_VISIBILITY_SECONDS = 900;
/** Long polling asks every SQS server, so an empty answer means an empty queue. */
export const RECEIVE_WAIT_SECONDS = 2;
const SQS_MAX_MESSAGES = 10;

/**
 * An SQS queue. Each message received is hidden from other readers for
 * RECEIVE_VISIBILITY_SECONDS; a message received again in the same run (its visibility ran
 * out, or it was sent again) is not handed out twice, so a run always ends.
 */
export class SqsMessageSource implements MessageSource {
  /** The latest receipt handle of every message received in this run. */
  private readonly handles = new Map<string, string>();

  constructor(
    private readonly sqs: SqsSender,
    private readonly queueUrl: string,
  ) {}

  get name(): string {
    return this.queueUrl;
  }

  async receive(max: number): Promise<readonly SourceMessage[]> {
    const out = await this.sqs.send(
      new ReceiveMessageCommand({
        QueueUrl: this.queueUrl,
        MaxNumberOfMessages: Math.max(1, Math.min(SQS_MAX_MESSAGES, max)),
        WaitTimeSeconds: RECEIVE_WAIT_SECONDS,
        VisibilityTimeout: RECEIVE_VISIBILITY_SECONDS,
      }),
    );
    const fresh: SourceMessage[] = [];
    for (const m of out.Messages ?? []) {
      if (!m.MessageId || !m.ReceiptHandle) continue;
      const seen = this.handles.has(m.MessageId);
      this.handles.set(m.MessageId, m.ReceiptHandle);
      if (!seen) fresh.push({ id: m.MessageId, body: m.Body ?? "" });
    }
    return fresh;
  }

  async delete(message: SourceMessage): Promise<void> {
    const handle = this.handles.get(message.id);
    if (!handle) throw new Error(`message ${message.id} was not received in this run`);
    await this.sqs.send(
      new DeleteMessageCommand({ QueueUrl: this.queueUrl, ReceiptHandle: handle }),
    );
    this.handles.delete(message.id);
  }

  async release(messages: readonly SourceMessage[]): Promise<void> {
    const entries = messages.flatMap((m, i) => {
      const handle = this.handles.get(m.id);
      return handle ? [{ Id: String(i), ReceiptHandle: handle, VisibilityTimeout: 0 }] : [];
    });
    for (let i = 0; i < entries.length; i += SQS_MAX_MESSAGES) {
      // Best effort: a message not released becomes visible when its timeout runs out anyway.
      await this.sqs
        .send(
          new ChangeMessageVisibilityBatchCommand({
            QueueUrl: this.queueUrl,
            Entries: entries.slice(i, i + SQS_MAX_MESSAGES),
          }),
        )
        .catch(() => undefined);
    }
  }
}

/**
 * A JSON-lines file (the local poller's on-failure file, the local quarantine file): one
 * message a line. The lines are read once, when the first message is asked for; deleting a
 * message rewrites the file without its line (written beside it, then renamed over it), and
 * keeps every line appended since, such as records the in-process consumer quarantines again.
 * A writer appending at the very moment of the rename could lose its line: run a local redrive
 * while the local pipeline is not discarding batches.
 */
export class FileMessageSource implements MessageSource {
  /** The complete lines as read, `undefined` once deleted. */
  private lines?: (string | undefined)[];
  /** The file's text this source last read or wrote: what must still start the file. */
  private base = "";
  private next = 0;
  private missing = false;

  constructor(private readonly path: string) {}

  get name(): string {
    // The poller makes the file at its first discarded batch (the consumer, its first
    // quarantined record).
    return this.missing ? `${this.path} (no such file: nothing to redrive)` : this.path;
  }

  private async load(): Promise<(string | undefined)[]> {
    if (this.lines) return this.lines;
    let text = "";
    try {
      text = await readFile(this.path, "utf8");
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
      this.missing = true;
    }
    // Complete lines only: a line still being appended belongs to whoever writes it.
    this.base = text.slice(0, text.lastIndexOf("\n") + 1);
    this.lines = this.base.split("\n").slice(0, -1);
    return this.lines;
  }

  async receive(max: number): Promise<readonly SourceMessage[]> {
    const lines = await this.load();
    const out: SourceMessage[] = [];
    while (this.next < lines.length && out.length < max) {
      const index = this.next++;
      const line = lines[index];
      if (line !== undefined && line.trim() !== "")
        out.push({ id: `line ${index + 1}`, body: line });
    }
    return out;
  }

  async delete(message: SourceMessage): Promise<void> {
    const lines = await this.load();
    const index = Number(message.id.slice("line ".length)) - 1;
    if (lines[index] !== message.body)
      throw new Error(`${this.path} has no ${message.id} to delete`);
    const current = await readFile(this.path, "utf8");
    if (!current.startsWith(this.base)) {
      throw new Error(
        `${this.path} was rewritten while redrive ran (another redrive?): stopped; run redrive again`,
      );
    }
    lines[index] = undefined;
    const kept = lines.flatMap((line) => (line === undefined ? [] : [`${line}\n`])).join("");
    const temporary = `${this.path}.redrive-${randomUUID()}.tmp`;
    await writeFile(temporary, kept + current.slice(this.base.length));
    await rename(temporary, this.path);
    // Deleted lines stay `undefined` (line numbers keep naming the same messages).
    this.base = kept;
  }

  async release(): Promise<void> {
    // A line stays in the file until it is deleted: nothing to release.
  }
}

// ---------------------------------------------------------------------------------------------
// The consumer

/** What one invocation of the consumer with a synthesized batch achieved. */
export type InvokeOutcome =
  | { readonly counted: true }
  | {
      readonly counted: false;
      /** The first record not counted (its sequence number), when the consumer named it. */
      readonly firstFailedSequenceNumber?: string;
      readonly error: string;
    };

export interface ConsumerEdge {
  /** What counts the records, for the report. */
  readonly name: string;
  invoke(event: KinesisStreamEvent): Promise<InvokeOutcome>;
  close(): void;
}

/** The consumer's answer, as Lambda returns it (ReportBatchItemFailures). */
function outcomeOf(
  response: Partial<KinesisStreamBatchResponse> | null | undefined,
): InvokeOutcome {
  const failures = response?.batchItemFailures ?? [];
  if (failures.length === 0) return { counted: true };
  const first = failures[0]?.itemIdentifier;
  return {
    counted: false,
    ...(first ? { firstFailedSequenceNumber: first } : {}),
    error: `the consumer could not store the records from sequence number ${first ?? "?"} on (batchItemFailures; its logs and the ConsumerBatchFailures metric say why)`,
  };
}

/** The Lambda call the consumer edge makes: a LambdaClient, or a test double recording it. */
export interface LambdaSender {
  send(
    command: InvokeCommand,
  ): Promise<
    Pick<InvokeCommandOutput, "StatusCode" | "FunctionError"> & { readonly Payload?: Uint8Array }
  >;
}

/**
 * The consumer function in AWS, invoked synchronously (RequestResponse) with the batch, as its
 * event source mapping invokes it: it answers with batchItemFailures, or with a function error.
 */
export class LambdaConsumer implements ConsumerEdge {
  constructor(
    private readonly lambda: LambdaSender,
    private readonly functionName: string,
    private readonly onClose: () => void = () => {},
  ) {}

  get name(): string {
    return `function ${this.functionName}`;
  }

  async invoke(event: KinesisStreamEvent): Promise<InvokeOutcome> {
    const out = await this.lambda.send(
      new InvokeCommand({
        FunctionName: this.functionName,
        InvocationType: "RequestResponse",
        Payload: new TextEncoder().encode(JSON.stringify(event)),
      }),
    );
    const text = out.Payload ? new TextDecoder().decode(out.Payload) : "";
    let payload: unknown;
    try {
      payload = text === "" ? null : JSON.parse(text);
    } catch {
      payload = text;
    }
    if (out.FunctionError) {
      const detail =
        typeof payload === "object" && payload !== null
          ? [
              (payload as { errorType?: unknown }).errorType,
              (payload as { errorMessage?: unknown }).errorMessage,
            ]
              .filter((part) => typeof part === "string")
              .join(": ")
          : String(payload ?? "");
      return {
        counted: false,
        error: `the consumer function failed (${out.FunctionError})${detail ? `: ${detail}` : ""}`,
      };
    }
    if (out.StatusCode !== undefined && out.StatusCode !== 200) {
      return { counted: false, error: `Invoke answered status ${out.StatusCode}, not 200` };
    }
    return outcomeOf(payload as Partial<KinesisStreamBatchResponse> | null);
  }

  close(): void {
    this.onClose();
  }
}

/**
 * The real consumer handler in this process (local runs): the same code the function runs,
 * with the CLI's environment (REDIS_*, QUARANTINE_FILE, RETENTION_*) as its configuration.
 */
export class InProcessConsumer implements ConsumerEdge {
  private readonly handler: ReturnType<typeof createConsumerHandler>;

  constructor(env: Env, now?: () => number) {
    // Checked now, so a missing setting stops the command before any message is touched.
    loadConsumerRuntimeConfig(env);
    // The handler's metrics would be printed to stdout as EMF lines: not from the CLI.
    process.env.POWERTOOLS_METRICS_DISABLED ??= "true";
    this.handler = createConsumerHandler(env, {
      // Warnings (a record quarantined again, with its reason) and errors go to stderr; the
      // report is on stdout. POWERTOOLS_LOG_LEVEL, when set, decides instead.
      logger: new Logger({
        serviceName: "sketchstream-consumer",
        ...(process.env.POWERTOOLS_LOG_LEVEL ? {} : { logLevel: "WARN" }),
      }),
      ...(now ? { now } : {}),
    });
  }

  get name(): string {
    return "the consumer handler, in this process";
  }

  async invoke(event: KinesisStreamEvent): Promise<InvokeOutcome> {
    try {
      return outcomeOf(await this.handler(event));
    } catch (err) {
      return { counted: false, error: `the consumer failed: ${messageOf(err)}` };
    }
  }

  close(): void {
    this.handler.close();
  }
}

// ---------------------------------------------------------------------------------------------
// The stream

/** The records of a sequence range of one shard, as the stream still holds them. */
export interface RangeRead {
  /** The records from start to end, in order. */
  readonly records: readonly _Record[];
  /** Whether the record at the range's start (its end) is still in the stream. */
  readonly startFound: boolean;
  readonly endFound: boolean;
}

export interface StreamReader {
  /** `expected`: how many records the range should hold (the batch size), to size reads. */
  readRange(shardId: string, start: string, end: string, expected?: number): Promise<RangeRead>;
  /** The record with this sequence number, or undefined when the stream no longer has it. */
  readOne(shardId: string, sequenceNumber: string): Promise<_Record | undefined>;
}

/**
 * Empty GetRecords answers in a row, while behind the tip, before giving up on a range: Kinesis
 * may answer empty over a stretch of a shard with no records.
 */
const MAX_EMPTY_READS = 100;

/** GetRecords returns at most this many records. */
const MAX_GET_RECORDS = 10_000;

/** Reads back from a Kinesis stream by sequence number. */
export class KinesisStreamReader implements StreamReader {
  constructor(
    private readonly kinesis: Pick<KinesisClient, "send">,
    /** A stream name, or its ARN (then sent as StreamARN). */
    private readonly stream: string,
  ) {}

  async readRange(
    shardId: string,
    start: string,
    end: string,
    expected = MAX_GET_RECORDS,
  ): Promise<RangeRead> {
    const first = BigInt(start);
    const last = BigInt(end);
    const records: _Record[] = [];
    let iterator = await this.iterator(shardId, start);
    let empty = 0;
    let startFound = false;
    let endFound = false;
    let past = false;
    while (iterator && !past) {
      const out = await this.kinesis.send(
        // A batch's range holds its records and, with a parallelization factor, others': the
        // first read asks for the batch, and later ones for as many as Kinesis gives.
        new GetRecordsCommand({
          ShardIterator: iterator,
          Limit:
            records.length === 0
              ? Math.min(MAX_GET_RECORDS, Math.max(1, expected))
              : MAX_GET_RECORDS,
        }),
      );
      const got = out.Records ?? [];
      for (const record of got) {
        const sequence = BigInt(record.SequenceNumber ?? "0");
        if (sequence > last) {
          past = true;
          break;
        }
        if (sequence < first) continue;
        if (sequence === first) startFound = true;
        if (sequence === last) endFound = true;
        records.push(record);
      }
      if (endFound) break;
      iterator = out.NextShardIterator;
      // An empty answer at the tip of the shard: nothing more is coming for this range.
      if (got.length === 0 && ((out.MillisBehindLatest ?? 0) === 0 || ++empty >= MAX_EMPTY_READS))
        break;
      if (got.length > 0) empty = 0;
    }
    return { records, startFound, endFound };
  }

  async readOne(shardId: string, sequenceNumber: string): Promise<_Record | undefined> {
    const read = await this.readRange(shardId, sequenceNumber, sequenceNumber, 1);
    return read.startFound ? read.records[0] : undefined;
  }

  /**
   * An iterator at `start`. Where Kinesis refuses that sequence number (InvalidArgumentException,
   * as for one already trimmed), the shard's oldest record instead: readRange then finds what
   * is left of the range and reports its start as gone.
   */
  private async iterator(shardId: string, start: string): Promise<string | undefined> {
    const stream = this.stream.startsWith("arn:")
      ? { StreamARN: this.stream }
      : { StreamName: this.stream };
    try {
      const out = await this.kinesis.send(
        new GetShardIteratorCommand({
          ...stream,
          ShardId: shardId,
          ShardIteratorType: "AT_SEQUENCE_NUMBER",
          StartingSequenceNumber: start,
        }),
      );
      return out.ShardIterator;
    } catch (err) {
      if (!(err instanceof Error) || err.name !== "InvalidArgumentException") throw err;
      const out = await this.kinesis.send(
        new GetShardIteratorCommand({
          ...stream,
          ShardId: shardId,
          ShardIteratorType: "TRIM_HORIZON",
        }),
      );
      return out.ShardIterator;
    }
  }
}
