/**
 * Puts records into a Kinesis stream with PutRecords: batches of at most 500 records and 5 MiB,
 * and the records a response reports as failed (throttling, FailedRecordCount) put again with
 * exponential backoff and jitter, until every record is in or the attempts run out.
 */

import {
  type KinesisClient,
  PutRecordsCommand,
  type PutRecordsRequestEntry,
} from "@aws-sdk/client-kinesis";

export const PUT_RECORDS_MAX_COUNT = 500;
export const PUT_RECORDS_MAX_BYTES = 5 * 1024 * 1024;
/** A record's data plus its partition key may be at most 1 MiB. */
export const RECORD_MAX_BYTES = 1024 * 1024;

export interface ProducerRecord {
  readonly partitionKey: string;
  readonly data: Uint8Array;
}

export interface ProducerOptions {
  readonly kinesis: Pick<KinesisClient, "send">;
  /** A stream name, or its ARN (then sent as StreamARN). */
  readonly stream: string;
  /** Attempts per batch before giving up on its failed records. Default 8. */
  readonly maxAttempts?: number;
  /** First backoff in ms; doubles per attempt, with full jitter. Default 100. */
  readonly baseDelayMs?: number;
  /** Records per second at most; unlimited when absent. */
  readonly rate?: number;
  readonly onProgress?: (progress: { readonly sent: number; readonly retried: number }) => void;
  readonly sleep?: (ms: number) => Promise<void>;
  readonly random?: () => number;
}

export interface ProducerResult {
  readonly sent: number;
  readonly retried: number;
  readonly requests: number;
}

export class ProducerError extends Error {
  override name = "ProducerError";
}

function streamField(stream: string): { StreamName: string } | { StreamARN: string } {
  return stream.startsWith("arn:") ? { StreamARN: stream } : { StreamName: stream };
}

export async function putAll(
  records: Iterable<ProducerRecord>,
  options: ProducerOptions,
): Promise<ProducerResult> {
  const sleep = options.sleep ?? ((ms: number) => new Promise<void>((r) => setTimeout(r, ms)));
  const random = options.random ?? Math.random;
  const maxAttempts = options.maxAttempts ?? 8;
  const baseDelay = options.baseDelayMs ?? 100;
  const started = Date.now();
  let sent = 0;
  let retried = 0;
  let requests = 0;

  const putBatch = async (batch: PutRecordsRequestEntry[]) => {
    let pending = batch;
    for (let attempt = 1; pending.length > 0; attempt++) {
      requests++;
      const out = await options.kinesis.send(
        new PutRecordsCommand({ ...streamField(options.stream), Records: pending }),
      );
      const results = out.Records ?? [];
      const failed = pending.filter(
        (_, i) => results[i]?.ErrorCode !== undefined || results[i] === undefined,
      );
      sent += pending.length - failed.length;
      if (failed.length === 0) break;
      if (attempt >= maxAttempts) {
        const code = results.find((r) => r.ErrorCode)?.ErrorCode ?? "unknown";
        throw new ProducerError(
          `${failed.length} record(s) still failed after ${maxAttempts} attempts (last error ${code}); ${sent} were put. Lower --rate or add shards.`,
        );
      }
      retried += failed.length;
      pending = failed;
      await sleep(Math.floor(random() * baseDelay * 2 ** (attempt - 1)));
    }
    options.onProgress?.({ sent, retried });
    if (options.rate) {
      const due = started + (sent / options.rate) * 1000;
      if (due > Date.now()) await sleep(due - Date.now());
    }
  };

  let batch: PutRecordsRequestEntry[] = [];
  let bytes = 0;
  for (const record of records) {
    const size = record.data.byteLength + Buffer.byteLength(record.partitionKey);
    if (size > RECORD_MAX_BYTES) {
      throw new ProducerError(
        `a record of ${size} bytes exceeds Kinesis's 1 MiB limit (partition key ${record.partitionKey})`,
      );
    }
    if (batch.length === PUT_RECORDS_MAX_COUNT || bytes + size > PUT_RECORDS_MAX_BYTES) {
      await putBatch(batch);
      batch = [];
      bytes = 0;
    }
    batch.push({ PartitionKey: record.partitionKey, Data: record.data });
    bytes += size;
  }
  if (batch.length > 0) await putBatch(batch);
  return { sent, retried, requests };
}
