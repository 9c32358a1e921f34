import type { KinesisStreamEvent, KinesisStreamRecord } from "aws-lambda";

export interface RecordInput {
  /** An object is JSON-encoded; a string is taken as the raw base64 `data`. */
  readonly payload: unknown;
  readonly rawBase64?: boolean;
}

let sequence = 49_600_000_000_000_000_000_000_000_000_000_000_000_000_000_000n;

/** A Kinesis event as Lambda delivers it, with increasing sequence numbers. */
export function kinesisEvent(
  payloads: readonly unknown[],
  opts: { raw?: boolean } = {},
): KinesisStreamEvent {
  const Records: KinesisStreamRecord[] = payloads.map((payload, i) => {
    sequence += 1n;
    const data =
      opts.raw && typeof payload === "string"
        ? payload
        : Buffer.from(typeof payload === "string" ? payload : JSON.stringify(payload)).toString(
            "base64",
          );
    return {
      kinesis: {
        kinesisSchemaVersion: "1.0",
        partitionKey: `part-${String(i).padStart(5, "0")}`,
        sequenceNumber: sequence.toString(),
        data,
        approximateArrivalTimestamp: 1_700_000_000,
      },
      eventSource: "aws:kinesis",
      eventVersion: "1.0",
      eventID: `shardId-000000000000:${sequence}`,
      eventName: "aws:kinesis:record",
      invokeIdentityArn: "arn:aws:iam::123456789012:role/consumer",
      awsRegion: "eu-west-1",
      eventSourceARN: "arn:aws:kinesis:eu-west-1:123456789012:stream/sketchstream-test",
    };
  });
  return { Records };
}

/** The generator's event_time format, UTC. */
export function generatorTime(ms: number): string {
  return new Date(ms).toISOString().slice(0, 19).replace("T", " ");
}
