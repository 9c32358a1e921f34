/**
 * What Lambda sends to a Kinesis event source mapping's on-failure destination when it gives up
 * on a batch (AWS Lambda developer guide, "Retain discarded batch records for a Kinesis Data
 * Streams event source"): metadata only, never the records, e.g.
 *
 *   {"requestContext":{"requestId":"c9b8fa9f-…","functionArn":"arn:aws:lambda:…:function:f",
 *     "condition":"RetryAttemptsExhausted","approximateInvokeCount":4},
 *    "responseContext":{"statusCode":200,"executedVersion":"$LATEST","functionError":"Unhandled"},
 *    "version":"1.0","timestamp":"2019-11-14T00:38:06.021Z",
 *    "KinesisBatchInfo":{"shardId":"shardId-000000000001","startSequenceNumber":"4960…",
 *      "endSequenceNumber":"4960…","approximateArrivalOfFirstRecord":"2019-11-14T00:38:04.835Z",
 *      "approximateArrivalOfLastRecord":"2019-11-14T00:38:05.580Z","batchSize":500,
 *      "streamArn":"arn:aws:kinesis:us-east-2:123456789012:stream/mystream"}}
 *
 * The local event-source poller writes the same shape to its on-failure file, so `redrive`
 * reads both with this one parser. Only `KinesisBatchInfo` matters to a redrive; the rest is
 * kept for the report.
 */

import * as v from "valibot";

/** The shard and the sequence range of the discarded batch: where to read its records back. */
export interface KinesisBatchInfo {
  readonly shardId: string;
  readonly startSequenceNumber: string;
  readonly endSequenceNumber: string;
  readonly approximateArrivalOfFirstRecord: string;
  readonly approximateArrivalOfLastRecord: string;
  /** Records in the discarded batch. */
  readonly batchSize: number;
  readonly streamArn: string;
}

/** Lambda's on-failure record of a discarded Kinesis batch. */
export interface OnFailureRecord {
  readonly requestContext: {
    readonly requestId: string;
    readonly functionArn: string;
    /** RetryAttemptsExhausted, RecordAgeExceeded, ... */
    readonly condition: string;
    readonly approximateInvokeCount: number;
  };
  readonly responseContext: {
    readonly statusCode?: number;
    readonly executedVersion?: string;
    /** "Unhandled" when the function threw; absent or null when it reported batch failures. */
    readonly functionError?: string | null;
  };
  readonly version: "1.0";
  readonly timestamp: string;
  readonly KinesisBatchInfo: KinesisBatchInfo;
}

/** A Kinesis sequence number: decimal digits (the API's pattern is `0|([1-9]\d{0,128})`). */
const SequenceNumber = v.pipe(v.string(), v.regex(/^(0|[1-9]\d{0,128})$/));

const BatchInfoSchema = v.looseObject({
  shardId: v.pipe(v.string(), v.regex(/^shardId-\d{12}$/)),
  startSequenceNumber: SequenceNumber,
  endSequenceNumber: SequenceNumber,
  approximateArrivalOfFirstRecord: v.optional(v.string(), ""),
  approximateArrivalOfLastRecord: v.optional(v.string(), ""),
  // A number in Lambda's records; a numeric string is taken too.
  batchSize: v.pipe(
    v.union([v.number(), v.pipe(v.string(), v.regex(/^\d+$/), v.transform(Number))]),
    v.integer(),
    v.minValue(1),
  ),
  streamArn: v.pipe(v.string(), v.regex(/^arn:aws[a-z-]*:kinesis:[a-z0-9-]+:\d{12}:stream\/.+$/)),
});

const OnFailureSchema = v.looseObject({
  requestContext: v.optional(
    v.looseObject({
      condition: v.optional(v.string(), "unknown"),
      approximateInvokeCount: v.optional(v.number(), 0),
    }),
    {},
  ),
  timestamp: v.optional(v.string(), ""),
  KinesisBatchInfo: BatchInfoSchema,
});

/** The parts of an on-failure record a redrive uses. */
export interface ParsedOnFailure {
  readonly condition: string;
  readonly timestamp: string;
  readonly batch: KinesisBatchInfo;
}

/**
 * An on-failure record from its JSON text (an SQS message body, a line of the local file);
 * throws an Error saying what is wrong with it, e.g. a DynamoDB stream's record
 * (DDBStreamBatchInfo) or a range whose end comes before its start.
 */
export function parseOnFailureRecord(text: string): ParsedOnFailure {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    throw new Error("not JSON");
  }
  const result = v.safeParse(OnFailureSchema, json);
  if (!result.success) {
    throw new Error(
      `not a Lambda on-failure record of a Kinesis batch: ${v.summarize(result.issues).replaceAll("\n", "; ")}`,
    );
  }
  const batch = result.output.KinesisBatchInfo;
  if (BigInt(batch.endSequenceNumber) < BigInt(batch.startSequenceNumber)) {
    throw new Error(
      `its range ends (${batch.endSequenceNumber}) before it starts (${batch.startSequenceNumber})`,
    );
  }
  return {
    condition: result.output.requestContext.condition,
    timestamp: result.output.timestamp,
    batch: {
      shardId: batch.shardId,
      startSequenceNumber: batch.startSequenceNumber,
      endSequenceNumber: batch.endSequenceNumber,
      approximateArrivalOfFirstRecord: batch.approximateArrivalOfFirstRecord,
      approximateArrivalOfLastRecord: batch.approximateArrivalOfLastRecord,
      batchSize: batch.batchSize,
      streamArn: batch.streamArn,
    },
  };
}
