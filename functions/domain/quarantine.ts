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
  /** The record's data exactly as received (base64). */
  readonly data: string;
  readonly quarantinedAt: string;
}

export interface QuarantineSink {
  send(records: readonly QuarantinedRecord[]): Promise<void>;
}
