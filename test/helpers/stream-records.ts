/**
 * Reads a local stream back, per shard in order, as the event source mapping delivers it to
 * the consumer (the `eventID` is `shardId:sequenceNumber`): the fault-free reference of tests
 * that replay the same records. Written apart from the code under test (the poller, redrive).
 */

import {
  GetRecordsCommand,
  GetShardIteratorCommand,
  type KinesisClient,
  ListShardsCommand,
} from "@aws-sdk/client-kinesis";
import type { KinesisStreamRecord } from "aws-lambda";

export interface StreamToRead {
  readonly kinesis: Pick<KinesisClient, "send">;
  readonly streamName: string;
  readonly streamArn: string;
  /** Only this shard; every shard of the stream by default. */
  readonly shardId?: string;
}

export async function streamRecords(stream: StreamToRead): Promise<KinesisStreamRecord[]> {
  const { kinesis, streamName, streamArn } = stream;
  const shardIds = stream.shardId
    ? [stream.shardId]
    : ((await kinesis.send(new ListShardsCommand({ StreamName: streamName }))).Shards ?? []).map(
        (s) => s.ShardId ?? "",
      );
  const records: KinesisStreamRecord[] = [];
  for (const shardId of shardIds) {
    let iterator = (
      await kinesis.send(
        new GetShardIteratorCommand({
          StreamName: streamName,
          ShardId: shardId,
          ShardIteratorType: "TRIM_HORIZON",
        }),
      )
    ).ShardIterator;
    while (iterator) {
      const out = await kinesis.send(
        new GetRecordsCommand({ ShardIterator: iterator, Limit: 10_000 }),
      );
      for (const r of out.Records ?? []) {
        records.push({
          kinesis: {
            kinesisSchemaVersion: "1.0",
            partitionKey: r.PartitionKey ?? "",
            sequenceNumber: r.SequenceNumber ?? "",
            data: Buffer.from(r.Data ?? new Uint8Array()).toString("base64"),
            approximateArrivalTimestamp: (r.ApproximateArrivalTimestamp?.getTime() ?? 0) / 1000,
          },
          eventSource: "aws:kinesis",
          eventVersion: "1.0",
          eventID: `${shardId}:${r.SequenceNumber}`,
          eventName: "aws:kinesis:record",
          invokeIdentityArn: "arn:aws:iam::000000000000:role/sketchstream-consumer",
          awsRegion: "us-east-1",
          eventSourceARN: streamArn,
        });
      }
      if ((out.Records ?? []).length === 0 && (out.MillisBehindLatest ?? 0) === 0) break;
      iterator = out.NextShardIterator;
    }
  }
  return records;
}
