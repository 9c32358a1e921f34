/**
 * Builds Kinesis events exactly as the Lambda event source mapping delivers them (base64 data,
 * increasing sequence numbers per shard), for the local runtime, benchmarks and tests.
 */

import type { KinesisStreamEvent, KinesisStreamRecord } from "aws-lambda";

export interface KinesisEventOptions {
  /** Payloads that are strings are taken as already-base64 `data`. Default false. */
  readonly raw?: boolean;
  readonly shardId?: string;
  readonly streamArn?: string;
}

const DEFAULT_STREAM_ARN = "arn:aws:kinesis:eu-west-1:123456789012:stream/sketchstream-local";
let lastSequence = 49_600_000_000_000_000_000_000_000_000_000_000_000_000_000_000n;

export function kinesisEvent(
  payloads: readonly unknown[],
  options: KinesisEventOptions = {},
): KinesisStreamEvent {
  const shardId = options.shardId ?? "shardId-000000000000";
  const streamArn = options.streamArn ?? DEFAULT_STREAM_ARN;
  const Records: KinesisStreamRecord[] = payloads.map((payload, i) => {
    lastSequence += 1n;
    const data =
      options.raw && typeof payload === "string"
        ? payload
        : Buffer.from(typeof payload === "string" ? payload : JSON.stringify(payload)).toString(
            "base64",
          );
    return {
      kinesis: {
        kinesisSchemaVersion: "1.0",
        partitionKey: `part-${String(i).padStart(5, "0")}`,
        sequenceNumber: lastSequence.toString(),
        data,
        approximateArrivalTimestamp: Date.now() / 1000,
      },
      eventSource: "aws:kinesis",
      eventVersion: "1.0",
      eventID: `${shardId}:${lastSequence}`,
      eventName: "aws:kinesis:record",
      invokeIdentityArn: "arn:aws:iam::123456789012:role/sketchstream-consumer",
      awsRegion: "eu-west-1",
      eventSourceARN: streamArn,
    };
  });
  return { Records };
}
