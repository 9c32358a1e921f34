/**
 * What the consumer keeps of a rejected record, and the port it is sent through. Nothing is
 * dropped silently: a sink throws when a record could not be stored, so the caller can fail
 * the batch from that record rather than lose it. Sinks live in functions/adapters/quarantine.ts.
 */

import type { RejectReason } from "./events.js";

export interface QuarantinedRecord {
  readonly reason: RejectReason;
  readonly field?: string;
  readonly detail: string;
  readonly sequenceNumber: string;
  readonly partitionKey: string;
  /** Event source (stream) ARN and shard-qualified event id, to find the record again. */
  readonly eventSourceArn?: string;
  readonly eventId?: string;
  /**
   * The record's data exactly as received (base64), or its first QUARANTINE_DATA_LIMIT
   * characters when it is longer (then `dataSha256` and `dataLength` describe all of it), so
   * that every quarantined record fits one SQS message (256 KiB).
   */
  readonly data: string;
  /** SHA-256 (hex) of the whole base64 `data` as received; only when `data` was truncated. */
  readonly dataSha256?: string;
  /** Characters of the whole base64 `data`; only when `data` was truncated. */
  readonly dataLength?: number;
  readonly quarantinedAt: string;
}

export interface QuarantineSink {
  send(records: readonly QuarantinedRecord[]): Promise<void>;
}
