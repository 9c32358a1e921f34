/**
 * `redrive` against the AWS edges: SQS (the on-failure and quarantine queues) and Lambda
 * (Invoke of the consumer) are test doubles that record every request, and the stream is a
 * real local Kinesis (kinesalite) the records are read back from. What is checked is what AWS
 * would be sent: each Invoke carries the original records with their original eventIDs, stays
 * under the payload limit, and a message is deleted only once all of its records were counted.
 */

import { createHash } from "node:crypto";
import {
  type _Record,
  CreateStreamCommand,
  DescribeStreamSummaryCommand,
  GetRecordsCommand,
  GetShardIteratorCommand,
  type KinesisClient,
  ListShardsCommand,
} from "@aws-sdk/client-kinesis";
import type { InvokeCommand, InvokeCommandInput } from "@aws-sdk/client-lambda";
import {
  ChangeMessageVisibilityBatchCommand,
  type ChangeMessageVisibilityBatchCommandOutput,
  DeleteMessageCommand,
  type DeleteMessageCommandOutput,
  ReceiveMessageCommand,
  type ReceiveMessageCommandOutput,
} from "@aws-sdk/client-sqs";
import type { KinesisStreamEvent } from "aws-lambda";
import kinesalite from "kinesalite";
import * as v from "valibot";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runCli } from "../../cli/app.js";
import { putAll } from "../../cli/producer.js";
import type { LambdaSender, SqsSender } from "../../cli/redrive-edges.js";
import { at } from "../../functions/domain/arrays.js";
import { localKinesisClient } from "../../local/runtime.js";
import { testNowMs } from "../helpers/clock.js";
import { listeningPort } from "../helpers/net.js";
import { checked } from "../helpers/schema.js";
import { captureIo } from "./capture.js";

const QUEUE_URL =
  "https://sqs.eu-west-1.amazonaws.com/123456789012/sketchstream-dev-consumer-failures";
const QUARANTINE_URL =
  "https://sqs.eu-west-1.amazonaws.com/123456789012/sketchstream-dev-quarantine";
const FUNCTION = "sketchstream-dev-consumer";
const SHARD = "shardId-000000000000";
const STREAM = "redrive-edge";

let server: ReturnType<typeof kinesalite>;
let kinesis: KinesisClient;
let streamArn = "";
/** The stream's records in order: 30 small ones, then 6 of almost 1 MiB. */
let records: _Record[] = [];
let shardStart = "";

const seq = (i: number) => at(records, i, "stream record").SequenceNumber ?? "";
const base64 = (r: _Record) => Buffer.from(r.Data ?? new Uint8Array()).toString("base64");

beforeAll(async () => {
  server = kinesalite({ createStreamMs: 0, deleteStreamMs: 0, updateStreamMs: 0 });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", () => resolve()));
  kinesis = localKinesisClient(`http://127.0.0.1:${listeningPort(server)}`);
  await kinesis.send(new CreateStreamCommand({ StreamName: STREAM, ShardCount: 1 }));
  while (!streamArn) {
    const out = await kinesis.send(new DescribeStreamSummaryCommand({ StreamName: STREAM }));
    if (out.StreamDescriptionSummary?.StreamStatus === "ACTIVE")
      streamArn = out.StreamDescriptionSummary.StreamARN ?? "";
  }
  const small = Array.from({ length: 30 }, (_, n) => ({
    partitionKey: `part-${n % 7}`,
    data: Buffer.from(JSON.stringify({ n })),
  }));
  const large = Array.from({ length: 6 }, (_, n) => ({
    partitionKey: `big-${n}`,
    data: Buffer.from(JSON.stringify({ n: 30 + n, pad: "x".repeat(1_000_000) })),
  }));
  await putAll([...small, ...large], { kinesis, stream: STREAM });
  let iterator = (
    await kinesis.send(
      new GetShardIteratorCommand({
        StreamName: STREAM,
        ShardId: SHARD,
        ShardIteratorType: "TRIM_HORIZON",
      }),
    )
  ).ShardIterator;
  while (iterator && records.length < 36) {
    const out = await kinesis.send(new GetRecordsCommand({ ShardIterator: iterator }));
    records = records.concat(out.Records ?? []);
    iterator = out.NextShardIterator;
  }
  const shards = await kinesis.send(new ListShardsCommand({ StreamName: STREAM }));
  shardStart = shards.Shards?.[0]?.SequenceNumberRange?.StartingSequenceNumber ?? "";
});

afterAll(async () => {
  kinesis?.destroy();
  await new Promise((resolve) => server?.close(resolve));
});

/** Lambda's on-failure record of a discarded batch of this stream's shard. */
function onFailure(start: string, end: string, batchSize: number, stream = streamArn): string {
  const at = new Date(testNowMs()).toISOString();
  return JSON.stringify({
    requestContext: {
      requestId: "c9b8fa9f-5a7f-4e2c-af9c-0c604cde93a5",
      functionArn: `arn:aws:lambda:eu-west-1:123456789012:function:${FUNCTION}`,
      condition: "RetryAttemptsExhausted",
      approximateInvokeCount: 4,
    },
    responseContext: { statusCode: 200, executedVersion: "$LATEST", functionError: "Unhandled" },
    version: "1.0",
    timestamp: at,
    KinesisBatchInfo: {
      shardId: SHARD,
      startSequenceNumber: start,
      endSequenceNumber: end,
      approximateArrivalOfFirstRecord: at,
      approximateArrivalOfLastRecord: at,
      batchSize,
      streamArn: stream,
    },
  });
}

type SqsCommand =
  | ReceiveMessageCommand
  | DeleteMessageCommand
  | ChangeMessageVisibilityBatchCommand;

/** An SQS queue in memory that records every request; received messages stay hidden. */
class FakeQueue implements SqsSender {
  readonly sent: SqsCommand[] = [];
  private readonly messages: { id: string; body: string; visible: boolean; receipts: number }[] =
    [];
  private count = 0;

  add(...bodies: string[]): string[] {
    return bodies.map((body) => {
      const id = `msg-${++this.count}`;
      this.messages.push({ id, body, visible: true, receipts: 0 });
      return id;
    });
  }

  get bodies(): string[] {
    return this.messages.map((m) => m.body);
  }

  get visible(): string[] {
    return this.messages.filter((m) => m.visible).map((m) => m.id);
  }

  of<T extends SqsCommand>(type: new (...args: never[]) => T): T[] {
    return this.sent.filter((c): c is T => c instanceof type);
  }

  send(command: ReceiveMessageCommand): Promise<ReceiveMessageCommandOutput>;
  send(command: DeleteMessageCommand): Promise<DeleteMessageCommandOutput>;
  send(
    command: ChangeMessageVisibilityBatchCommand,
  ): Promise<ChangeMessageVisibilityBatchCommandOutput>;
  async send(
    command: SqsCommand,
  ): Promise<
    | ReceiveMessageCommandOutput
    | DeleteMessageCommandOutput
    | ChangeMessageVisibilityBatchCommandOutput
  > {
    this.sent.push(command);
    if (command instanceof ReceiveMessageCommand) {
      const picked = this.messages
        .filter((m) => m.visible)
        .slice(0, command.input.MaxNumberOfMessages ?? 1);
      for (const m of picked) {
        m.visible = false;
        m.receipts++;
      }
      return {
        $metadata: {},
        Messages: picked.map((m) => ({
          MessageId: m.id,
          ReceiptHandle: `${m.id}#${m.receipts}`,
          Body: m.body,
        })),
      };
    }
    if (command instanceof DeleteMessageCommand) {
      const index = this.messages.findIndex(
        (m) => `${m.id}#${m.receipts}` === command.input.ReceiptHandle,
      );
      if (index < 0) throw new Error(`no message with receipt ${command.input.ReceiptHandle}`);
      this.messages.splice(index, 1);
      return { $metadata: {} };
    }
    for (const entry of command.input.Entries ?? []) {
      const m = this.messages.find((x) => `${x.id}#${x.receipts}` === entry.ReceiptHandle);
      if (m && entry.VisibilityTimeout === 0) m.visible = true;
    }
    return { $metadata: {}, Successful: [], Failed: [] };
  }
}

const EventSchema = v.object({
  Records: v.array(
    v.object({
      kinesis: v.object({
        kinesisSchemaVersion: v.literal("1.0"),
        partitionKey: v.string(),
        sequenceNumber: v.string(),
        data: v.string(),
        approximateArrivalTimestamp: v.number(),
      }),
      eventSource: v.literal("aws:kinesis"),
      eventVersion: v.literal("1.0"),
      eventID: v.string(),
      eventName: v.literal("aws:kinesis:record"),
      invokeIdentityArn: v.string(),
      awsRegion: v.string(),
      eventSourceARN: v.string(),
    }),
  ),
});

type Answer = { payload?: unknown; functionError?: string };

/** The consumer function: records each Invoke and answers as told (success by default). */
class FakeConsumer implements LambdaSender {
  readonly calls: { input: InvokeCommandInput; event: KinesisStreamEvent; bytes: number }[] = [];

  constructor(
    private readonly answer: (event: KinesisStreamEvent) => Answer = () => ({
      payload: { batchItemFailures: [] },
    }),
  ) {}

  get eventIds(): string[] {
    return this.calls.flatMap((c) => c.event.Records.map((r) => r.eventID));
  }

  async send(command: InvokeCommand) {
    const payload = command.input.Payload;
    if (!(payload instanceof Uint8Array)) throw new Error("the Invoke payload is not bytes");
    const event = checked(
      EventSchema,
      JSON.parse(new TextDecoder().decode(payload)),
      "Invoke payload",
    );
    this.calls.push({ input: command.input, event, bytes: payload.byteLength });
    const answer = this.answer(event);
    return {
      StatusCode: 200,
      ...(answer.functionError ? { FunctionError: answer.functionError } : {}),
      Payload: new TextEncoder().encode(JSON.stringify(answer.payload ?? null)),
    };
  }
}

function harness(queue: FakeQueue, consumer: FakeConsumer, env: Record<string, string> = {}) {
  const { out, io } = captureIo({
    FAILURE_QUEUE_URL: QUEUE_URL,
    QUARANTINE_QUEUE_URL: QUARANTINE_URL,
    CONSUMER_FUNCTION_NAME: FUNCTION,
    STREAM_NAME: STREAM,
    ...env,
  });
  return {
    out,
    run: (...args: string[]) =>
      runCli(["redrive", ...args], {
        ...io,
        sqs: queue,
        lambda: consumer,
        kinesis,
        redriveProgress: () => ({ update() {}, stop() {} }),
      }),
  };
}

describe("redrive: on-failure batches through SQS and Lambda", () => {
  it("invokes the consumer with the original records and eventIDs, then deletes the message", async () => {
    const queue = new FakeQueue();
    queue.add(onFailure(seq(3), seq(12), 10));
    const deletesAtInvoke: number[] = [];
    const consumer = new FakeConsumer(() => {
      deletesAtInvoke.push(queue.of(DeleteMessageCommand).length);
      return { payload: { batchItemFailures: [] } };
    });
    const { out, run } = harness(queue, consumer);
    expect(await run()).toBe(0);

    const receive = at(queue.of(ReceiveMessageCommand), 0, "ReceiveMessage").input;
    expect(receive).toMatchObject({
      QueueUrl: QUEUE_URL,
      MaxNumberOfMessages: 10,
      VisibilityTimeout: 900,
    });
    expect(receive.WaitTimeSeconds).toBeGreaterThan(0);
    expect(consumer.calls).toHaveLength(1);
    const call = at(consumer.calls, 0, "Invoke");
    expect(call.input).toMatchObject({ FunctionName: FUNCTION, InvocationType: "RequestResponse" });
    const expected = records.slice(3, 13);
    expect(call.event.Records).toEqual(
      expected.map((r) => ({
        kinesis: {
          kinesisSchemaVersion: "1.0",
          partitionKey: r.PartitionKey,
          sequenceNumber: r.SequenceNumber,
          data: base64(r),
          approximateArrivalTimestamp: (r.ApproximateArrivalTimestamp?.getTime() ?? 0) / 1000,
        },
        eventSource: "aws:kinesis",
        eventVersion: "1.0",
        eventID: `${SHARD}:${r.SequenceNumber}`,
        eventName: "aws:kinesis:record",
        invokeIdentityArn: expect.any(String),
        awsRegion: "us-east-1",
        eventSourceARN: streamArn,
      })),
    );
    // Deleted with the receipt of this receive, only after the Invoke answered.
    expect(queue.of(DeleteMessageCommand).map((c) => c.input)).toEqual([
      { QueueUrl: QUEUE_URL, ReceiptHandle: "msg-1#1" },
    ]);
    expect(deletesAtInvoke).toEqual([0]);
    expect(queue.bodies).toEqual([]);
    expect(out.stdout).toContain(
      "1 message: 1 deleted, 0 kept; 10 records counted in 1 invocation",
    );
  });

  it("keeps a message the consumer did not fully count, stops, and makes what it holds visible again", async () => {
    for (const answer of [
      { payload: { batchItemFailures: [{ itemIdentifier: seq(5) }] } },
      {
        functionError: "Unhandled",
        payload: { errorType: "ReplyError", errorMessage: "OOM command not allowed" },
      },
    ] satisfies Answer[]) {
      const queue = new FakeQueue();
      queue.add(onFailure(seq(0), seq(9), 10), onFailure(seq(10), seq(19), 10));
      const consumer = new FakeConsumer(() => answer);
      const { out, run } = harness(queue, consumer);
      expect(await run()).toBe(1);
      // The run stops at the first batch the consumer did not count: one Invoke, no delete.
      expect(consumer.calls).toHaveLength(1);
      expect(queue.of(DeleteMessageCommand)).toEqual([]);
      expect(queue.bodies).toHaveLength(2);
      const released = queue
        .of(ChangeMessageVisibilityBatchCommand)
        .flatMap((c) => c.input.Entries ?? []);
      expect(released.map((e) => [e.ReceiptHandle, e.VisibilityTimeout])).toEqual([
        ["msg-1#1", 0],
        ["msg-2#1", 0],
      ]);
      expect(queue.visible).toEqual(["msg-1", "msg-2"]);
      expect(out.stdout).toContain("message kept");
      expect(out.stdout).toContain("stopped: the consumer did not count a batch");
      if (answer.functionError)
        expect(out.stdout).toContain("(Unhandled): ReplyError: OOM command not allowed");
      else expect(out.stdout).toContain(`from sequence number ${seq(5)} on`);
    }
  });

  it("splits large records into invocations under the payload limit, keeping every record once and in order", async () => {
    const queue = new FakeQueue();
    queue.add(onFailure(seq(28), seq(35), 8));
    const consumer = new FakeConsumer();
    const { run } = harness(queue, consumer);
    expect(await run()).toBe(0);
    expect(consumer.calls.length).toBeGreaterThanOrEqual(2);
    for (const call of consumer.calls) expect(call.bytes).toBeLessThanOrEqual(5_000_000);
    expect(consumer.eventIds).toEqual(
      records.slice(28, 36).map((r) => `${SHARD}:${r.SequenceNumber}`),
    );
    const data = consumer.calls.flatMap((c) => c.event.Records.map((r) => r.kinesis.data));
    expect(data).toEqual(records.slice(28, 36).map(base64));
    expect(queue.of(DeleteMessageCommand)).toHaveLength(1);
  });

  it("--dry-run reads and reports, invoking and deleting nothing; --max bounds the messages", async () => {
    const queue = new FakeQueue();
    queue.add(
      onFailure(seq(0), seq(1), 2),
      onFailure(seq(2), seq(3), 2),
      onFailure(seq(4), seq(5), 2),
    );
    const consumer = new FakeConsumer();
    const dry = harness(queue, consumer);
    expect(await dry.run("--dry-run")).toBe(0);
    expect(consumer.calls).toEqual([]);
    expect(queue.of(DeleteMessageCommand)).toEqual([]);
    expect(queue.visible).toEqual(["msg-1", "msg-2", "msg-3"]);
    expect(dry.out.stdout).toContain("dry run: ");
    expect(dry.out.stdout).toContain("3 messages: 3 would be deleted, 0 kept; 6 records to count");

    const bounded = harness(queue, consumer);
    expect(await bounded.run("--max", "1")).toBe(0);
    expect(at(queue.of(ReceiveMessageCommand), -1, "receive").input.MaxNumberOfMessages).toBe(1);
    expect(consumer.eventIds).toEqual([`${SHARD}:${seq(0)}`, `${SHARD}:${seq(1)}`]);
    expect(queue.visible).toEqual(["msg-2", "msg-3"]);
  });

  it("counts what is left of a range past retention, reports the rest and keeps the message (--drop-expired deletes it)", async () => {
    // The shard's first sequence number holds no record any more: the range's start is gone.
    const queue = new FakeQueue();
    queue.add(onFailure(shardStart, seq(4), 6));
    const consumer = new FakeConsumer();
    const kept = harness(queue, consumer);
    expect(await kept.run("--json")).toBe(1);
    expect(consumer.eventIds).toEqual(
      records.slice(0, 5).map((r) => `${SHARD}:${r.SequenceNumber}`),
    );
    const summary = JSON.parse(kept.out.stdout);
    expect(summary.records).toMatchObject({ readBack: 5, counted: 5, pastRetention: 1 });
    expect(summary.batches[0]).toMatchObject({ deleted: false, pastRetention: 1 });
    expect(summary.batches[0].problem).toContain("past the stream's retention");
    expect(queue.of(DeleteMessageCommand)).toEqual([]);
    expect(queue.visible).toEqual(["msg-1"]);

    const dropped = harness(queue, consumer);
    expect(await dropped.run("--drop-expired")).toBe(0);
    expect(queue.bodies).toEqual([]);
    expect(dropped.out.stdout).toContain("message deleted (--drop-expired)");
  });

  it("leaves an unreadable message and another stream's batch in place, saying why", async () => {
    const queue = new FakeQueue();
    queue.add(
      "not json",
      onFailure(seq(0), seq(0), 1, "arn:aws:kinesis:us-east-1:000000000000:stream/other"),
      onFailure(seq(1), seq(1), 1),
    );
    const consumer = new FakeConsumer();
    const { out, run } = harness(queue, consumer);
    expect(await run()).toBe(1);
    expect(consumer.eventIds).toEqual([`${SHARD}:${seq(1)}`]);
    expect(queue.visible).toEqual(["msg-1", "msg-2"]);
    expect(out.stdout).toContain("msg-1: unreadable message, left in place: not JSON");
    expect(out.stdout).toContain("stream/other, not STREAM_NAME=redrive-edge");
  });

  it("says which variable is missing, and refuses bad flags as usage errors", async () => {
    const { out, io } = captureIo({ STREAM_NAME: STREAM, CONSUMER_FUNCTION_NAME: FUNCTION });
    expect(await runCli(["redrive"], { ...io, kinesis })).toBe(1);
    expect(out.stderr).toContain("FAILURE_QUEUE_URL is not set");
    for (const bad of [["--max", "0"], ["--nope"]]) {
      const usage = captureIo({});
      expect(await runCli(["redrive", ...bad], usage.io), bad.join(" ")).toBe(2);
      expect(usage.out.stderr).toContain("redrive [--quarantine]");
    }
  });
});

describe("redrive --quarantine through SQS and Lambda", () => {
  const quarantined = (r: _Record, fields: Record<string, unknown> = {}) =>
    JSON.stringify({
      reason: "event_time_in_future",
      detail: "event_time is more than a day ahead",
      sequenceNumber: r.SequenceNumber,
      partitionKey: r.PartitionKey,
      eventSourceArn: streamArn,
      eventId: `${SHARD}:${r.SequenceNumber}`,
      data: base64(r),
      quarantinedAt: new Date(testNowMs()).toISOString(),
      ...fields,
    });

  it("submits each record with its original eventID, reads a truncated one back, and deletes only what was counted", async () => {
    const small = at(records, 7, "record");
    const big = at(records, 31, "record");
    const other = at(records, 32, "record");
    const truncated = (r: _Record, sha: string) =>
      quarantined(r, {
        data: base64(r).slice(0, 200_000),
        dataSha256: sha,
        dataLength: base64(r).length,
      });
    const sha = (r: _Record) => createHash("sha256").update(base64(r)).digest("hex");
    const queue = new FakeQueue();
    queue.add(
      quarantined(small),
      truncated(big, sha(big)),
      // Its data is not what the stream holds at that sequence number.
      truncated(other, sha(big)),
    );
    // The consumer quarantines the small record again (still invalid): a new message of it.
    const consumer = new FakeConsumer((event) => {
      if (event.Records.some((r) => r.eventID === `${SHARD}:${small.SequenceNumber}`))
        queue.add(quarantined(small, { quarantinedAt: "later" }));
      return { payload: { batchItemFailures: [] } };
    });
    const { out, run } = harness(queue, consumer);
    expect(await run("--quarantine", "--json")).toBe(1);

    expect(queue.of(ReceiveMessageCommand).every((c) => c.input.QueueUrl === QUARANTINE_URL)).toBe(
      true,
    );
    expect(consumer.calls).toHaveLength(1);
    const sent = at(consumer.calls, 0, "Invoke").event.Records;
    expect(sent.map((r) => [r.eventID, r.kinesis.sequenceNumber, r.kinesis.data])).toEqual([
      [`${SHARD}:${small.SequenceNumber}`, small.SequenceNumber, base64(small)],
      // The whole record, as the stream holds it, never the truncated copy.
      [`${SHARD}:${big.SequenceNumber}`, big.SequenceNumber, base64(big)],
    ]);
    // Deleted: the two counted; kept: the mismatched one and the record quarantined again.
    expect(queue.of(DeleteMessageCommand).map((c) => c.input.ReceiptHandle)).toEqual([
      "msg-1#1",
      "msg-2#1",
    ]);
    expect(queue.visible).toEqual(["msg-3", "msg-4"]);
    const summary = JSON.parse(out.stdout);
    expect(summary.messages).toEqual({ received: 4, deleted: 2, kept: 2 });
    expect(summary.records).toMatchObject({ readBack: 2, counted: 2, quarantinedAgain: 1 });
    expect(summary.problems).toEqual([
      { message: "msg-3", detail: expect.stringContaining(`not the quarantined ${sha(big)}`) },
    ]);
  });
});
