/**
 * The local event-source poller against a real local Kinesis (kinesalite): partial batch
 * failures resume at the failed record, bisect isolates a poison record, exhausted retries go
 * to the on-failure file, and each shard's order is kept.
 */

import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  CreateStreamCommand,
  DescribeStreamSummaryCommand,
  type KinesisClient,
} from "@aws-sdk/client-kinesis";
import type { KinesisStreamBatchResponse, KinesisStreamEvent } from "aws-lambda";
import kinesalite from "kinesalite";
import * as v from "valibot";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { putAll } from "../../cli/producer.js";
import { at, first } from "../../functions/domain/arrays.js";
import { EventSourcePoller, type OnFailureRecord } from "../../local/event-source-poller.js";
import { localKinesisClient } from "../../local/runtime.js";
import { listeningPort } from "../helpers/net.js";
import { checked } from "../helpers/schema.js";

let server: ReturnType<typeof kinesalite>;
let kinesis: KinesisClient;
let streamCount = 0;

beforeAll(async () => {
  server = kinesalite({ createStreamMs: 0, deleteStreamMs: 0, updateStreamMs: 0 });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", () => resolve()));
  kinesis = localKinesisClient(`http://127.0.0.1:${listeningPort(server)}`);
});

afterAll(async () => {
  kinesis?.destroy();
  await new Promise((resolve) => server?.close(resolve));
});

/** A new stream holding `count` records `{"n":i}`, all in one shard unless `shards` > 1. */
async function streamWith(count: number, shards = 1): Promise<{ name: string; arn: string }> {
  const name = `poller-${++streamCount}`;
  await kinesis.send(new CreateStreamCommand({ StreamName: name, ShardCount: shards }));
  let arn = "";
  while (!arn) {
    const out = await kinesis.send(new DescribeStreamSummaryCommand({ StreamName: name }));
    if (out.StreamDescriptionSummary?.StreamStatus === "ACTIVE")
      arn = out.StreamDescriptionSummary.StreamARN ?? "";
  }
  const records = Array.from({ length: count }, (_, n) => ({
    partitionKey: `part-${n % 7}`,
    data: Buffer.from(JSON.stringify({ n })),
  }));
  await putAll(records, { kinesis, stream: name });
  return { name, arn };
}

/** The record's `{"n":i}` payload, as streamWith wrote it. */
const NumberedSchema = v.object({ n: v.number() });
const numberOf = (data: string) =>
  checked(NumberedSchema, JSON.parse(Buffer.from(data, "base64").toString()), "record data").n;

const numbers = (event: KinesisStreamEvent) => event.Records.map((r) => numberOf(r.kinesis.data));

async function run(
  count: number,
  handler: (event: KinesisStreamEvent) => Promise<KinesisStreamBatchResponse | undefined>,
  settings: {
    batchSize: number;
    bisectOnError?: boolean;
    maximumRetryAttempts?: number;
    shards?: number;
  },
) {
  const stream = await streamWith(count, settings.shards ?? 1);
  const onFailureFile = join(
    mkdtempSync(join(tmpdir(), "sketchstream-poller-")),
    "on-failure.jsonl",
  );
  const poller = new EventSourcePoller({
    kinesis,
    streamName: stream.name,
    streamArn: stream.arn,
    handler,
    onFailureFile,
    batchSize: settings.batchSize,
    batchingWindowMs: 0,
    bisectOnError: settings.bisectOnError ?? false,
    maximumRetryAttempts: settings.maximumRetryAttempts ?? 3,
    retryDelayMs: 1,
  });
  await poller.start();
  await poller.drain(20_000);
  await poller.stop();
  let failures: OnFailureRecord[] = [];
  try {
    failures = readFileSync(onFailureFile, "utf8")
      .trim()
      .split("\n")
      .map((line) => JSON.parse(line));
  } catch {
    failures = [];
  }
  return { poller, failures, stream };
}

describe("event-source poller", () => {
  it("resumes exactly at the record a partial batch failure names", async () => {
    const invocations: number[][] = [];
    let failedOnce = false;
    const { poller } = await run(
      30,
      async (event) => {
        const ns = numbers(event);
        invocations.push(ns);
        const k = ns.indexOf(17);
        if (k >= 0 && !failedOnce) {
          failedOnce = true;
          return {
            batchItemFailures: [
              { itemIdentifier: at(event.Records, k, "record").kinesis.sequenceNumber },
            ],
          };
        }
        return { batchItemFailures: [] };
      },
      { batchSize: 10 },
    );
    expect(invocations).toEqual([
      [0, 1, 2, 3, 4, 5, 6, 7, 8, 9],
      [10, 11, 12, 13, 14, 15, 16, 17, 18, 19],
      [17, 18, 19],
      [20, 21, 22, 23, 24, 25, 26, 27, 28, 29],
    ]);
    expect(poller.stats.recordsCheckpointed).toBe(30);
  });

  it("isolates a poison record by bisecting, and discards only it after the retries", async () => {
    const seen: number[][] = [];
    const { failures, stream } = await run(
      16,
      async (event) => {
        const ns = numbers(event);
        seen.push(ns);
        if (ns.includes(11)) throw new Error("poison record 11");
        return { batchItemFailures: [] };
      },
      { batchSize: 16, bisectOnError: true, maximumRetryAttempts: 2 },
    );
    // 16 -> 8+8 -> (8..11)+(12..15) -> (8,9)+(10,11) -> 10 + 11; 11 alone fails 1 + 2 retries.
    expect(seen.filter((b) => b.length === 1 && b[0] === 11)).toHaveLength(3);
    const delivered = new Set(seen.filter((b) => !b.includes(11)).flat());
    expect([...delivered].sort((a, b) => a - b)).toEqual([
      0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 12, 13, 14, 15,
    ]);
    expect(failures).toHaveLength(1);
    expect(failures[0]).toMatchObject({
      requestContext: { condition: "RetryAttemptsExhausted", approximateInvokeCount: 3 },
      // Lambda's shape: a thrown error is "Unhandled" (its message is in the function's logs).
      responseContext: { statusCode: 200, executedVersion: "$LATEST", functionError: "Unhandled" },
      version: "1.0",
      KinesisBatchInfo: { shardId: "shardId-000000000000", batchSize: 1, streamArn: stream.arn },
    });
    expect(failures[0]?.KinesisBatchInfo.startSequenceNumber).toBe(
      failures[0]?.KinesisBatchInfo.endSequenceNumber,
    );
  });

  it("sends a batch that keeps failing to the on-failure file after the retry limit, then moves on", async () => {
    let calls = 0;
    const after: number[] = [];
    const { failures } = await run(
      8,
      async (event) => {
        const ns = numbers(event);
        if (ns[0] === 0) {
          calls++;
          throw new Error("down");
        }
        after.push(...ns);
        return { batchItemFailures: [] };
      },
      { batchSize: 4, maximumRetryAttempts: 3 },
    );
    expect(calls).toBe(4); // the first try and 3 retries
    expect(failures).toHaveLength(1);
    expect(failures[0]?.KinesisBatchInfo.batchSize).toBe(4);
    expect(failures[0]?.requestContext).toEqual({
      requestId: expect.stringMatching(/^[0-9a-f-]{36}$/),
      functionArn: "arn:aws:lambda:us-east-1:000000000000:function:sketchstream-local-consumer",
      condition: "RetryAttemptsExhausted",
      approximateInvokeCount: 4,
    });
    expect(after).toEqual([4, 5, 6, 7]);
  });

  it("keeps each shard's order", async () => {
    const perShard = new Map<string, number[]>();
    await run(
      400,
      async (event) => {
        for (const r of event.Records) {
          const shard = first(r.eventID.split(":"), "shard of the event id");
          const list = perShard.get(shard) ?? [];
          list.push(numberOf(r.kinesis.data));
          perShard.set(shard, list);
        }
        return { batchItemFailures: [] };
      },
      { batchSize: 25, shards: 3 },
    );
    expect(perShard.size).toBeGreaterThan(1);
    let total = 0;
    for (const list of perShard.values()) {
      expect(list).toEqual([...list].sort((a, b) => a - b));
      total += list.length;
    }
    expect(total).toBe(400);
  });
});
