/**
 * Puts records into a Kinesis stream with PutRecords: batches of at most 500 records and 5 MiB.
 * Only the records a response reports as failed (throttling, FailedRecordCount) are put again,
 * and a request refused as a whole for a passing reason (throttled, the service busy, the
 * connection dropped) is sent again; both with exponential backoff and full jitter, until every
 * record is in or the attempts run out. Then the batch's remaining records either stop the run
 * (the default) or are reported in the result while the run goes on (`continueAfterFailures`).
 * A request refused for a lasting reason (no such stream, no permission) stops the run at once.
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
  /**
   * After a batch's attempts run out, go on with the next batches and report its unwritten
   * records in the result, instead of throwing a ProducerError. Default false.
   */
  readonly continueAfterFailures?: boolean;
  readonly sleep?: (ms: number) => Promise<void>;
  readonly random?: () => number;
}

export interface ProducerResult {
  readonly sent: number;
  readonly retried: number;
  readonly requests: number;
  /** Records not written once their attempts ran out (only with continueAfterFailures). */
  readonly failed: number;
  /** How many unwritten records each last error code left. */
  readonly failedByCode: Readonly<Record<string, number>>;
  /** Partition keys of the first unwritten records (at most 10), to find them again. */
  readonly failedPartitionKeys: readonly string[];
}

/**
 * Errors of a whole PutRecords request that pass: throttling (of the stream, or of KMS for an
 * encrypted stream), an overloaded service, a dropped connection. Anything else (no such
 * stream, access denied, a malformed request) will not pass by waiting.
 */
const PASSING_REQUEST_ERRORS = new Set([
  "ProvisionedThroughputExceededException",
  "LimitExceededException",
  "KMSThrottlingException",
  "ThrottlingException",
  "InternalFailure",
  "ServiceUnavailable",
  "ServiceUnavailableException",
  "TimeoutError",
  "ECONNRESET",
  "ECONNREFUSED",
  "EPIPE",
  "ETIMEDOUT",
]);

function errorCodeOf(err: unknown): string {
  if (err && typeof err === "object") {
    const { name, code } = err as { name?: unknown; code?: unknown };
    if (typeof code === "string" && PASSING_REQUEST_ERRORS.has(code)) return code;
    if (typeof name === "string") return name;
  }
  return "Error";
}

function passes(err: unknown): boolean {
  const retryable = (err as { $retryable?: unknown } | undefined)?.$retryable;
  return PASSING_REQUEST_ERRORS.has(errorCodeOf(err)) || retryable !== undefined;
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
  let unwritten = 0;
  const failedByCode: Record<string, number> = {};
  const failedPartitionKeys: string[] = [];

  /** The batch's last records could not be written: stop, or note them and go on. */
  const giveUp = (records: PutRecordsRequestEntry[], codes: readonly string[]) => {
    const code = codes[0] ?? "unknown";
    if (!options.continueAfterFailures) {
      throw new ProducerError(
        `${records.length} record(s) still failed after ${maxAttempts} attempts (last error ${code}); ${sent} were put. Lower --rate or add shards.`,
      );
    }
    unwritten += records.length;
    records.forEach((record, i) => {
      const c = codes[i] ?? code;
      failedByCode[c] = (failedByCode[c] ?? 0) + 1;
      if (failedPartitionKeys.length < 10) failedPartitionKeys.push(record.PartitionKey ?? "");
    });
  };

  const putBatch = async (batch: PutRecordsRequestEntry[]) => {
    let pending = batch;
    for (let attempt = 1; pending.length > 0; attempt++) {
      requests++;
      let results: { ErrorCode?: string | undefined }[];
      try {
        const out = await options.kinesis.send(
          new PutRecordsCommand({ ...streamField(options.stream), Records: pending }),
        );
        results = out.Records ?? [];
      } catch (err) {
        if (!passes(err)) {
          throw new ProducerError(
            `PutRecords was refused (${errorCodeOf(err)}: ${err instanceof Error ? err.message : String(err)}); ${sent} records were put before. Check STREAM_NAME, the region and your permissions.`,
          );
        }
        // The whole request failed for a passing reason: every record of it is sent again.
        results = pending.map(() => ({ ErrorCode: errorCodeOf(err) }));
      }
      const failed = pending.filter(
        (_, i) => results[i]?.ErrorCode !== undefined || results[i] === undefined,
      );
      sent += pending.length - failed.length;
      if (failed.length === 0) break;
      if (attempt >= maxAttempts) {
        const codes = pending
          .map((_, i) => results[i]?.ErrorCode ?? (results[i] === undefined ? "NoResult" : ""))
          .filter((c) => c !== "");
        giveUp(failed, codes);
        break;
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
  return { sent, retried, requests, failed: unwritten, failedByCode, failedPartitionKeys };
}
