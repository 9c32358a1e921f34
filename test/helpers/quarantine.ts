import * as v from "valibot";
import { REJECT_REASONS } from "../../functions/domain/events.js";
import type { QuarantinedRecord } from "../../functions/domain/quarantine.js";
import { checked } from "./schema.js";

/** A quarantined record as JSON carries it; unknown fields are kept, so comparisons see them. */
const QuarantinedRecordSchema = v.looseObject({
  reason: v.picklist(REJECT_REASONS),
  field: v.optional(v.string()),
  detail: v.string(),
  sequenceNumber: v.string(),
  partitionKey: v.string(),
  eventSourceArn: v.optional(v.string()),
  eventId: v.optional(v.string()),
  data: v.string(),
  dataSha256: v.optional(v.pipe(v.string(), v.regex(/^[0-9a-f]{64}$/))),
  dataLength: v.optional(v.number()),
  quarantinedAt: v.string(),
});

/** One quarantined record parsed from its JSON text (a line of a file, an SQS message body). */
export function parseQuarantinedRecord(text: string): QuarantinedRecord {
  return checked(QuarantinedRecordSchema, JSON.parse(text), `quarantined record ${text}`);
}
