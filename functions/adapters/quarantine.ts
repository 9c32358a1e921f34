/**
 * Quarantine sinks: an SQS queue in AWS, a JSON-lines file locally. Both throw when a record
 * could not be stored (see functions/domain/quarantine.ts).
 */

import { appendFile, mkdir } from "node:fs/promises";
import { dirname } from "node:path";
import type { SQSClient } from "@aws-sdk/client-sqs";
import { SendMessageBatchCommand } from "@aws-sdk/client-sqs";
import type { QuarantinedRecord, QuarantineSink } from "../domain/quarantine.js";

export class FileQuarantineSink implements QuarantineSink {
  constructor(private readonly path: string) {}

  async send(records: readonly QuarantinedRecord[]): Promise<void> {
    if (records.length === 0) return;
    await mkdir(dirname(this.path), { recursive: true });
    await appendFile(this.path, records.map((r) => `${JSON.stringify(r)}\n`).join(""));
  }
}

/** SQS allows 10 messages and 256 KiB per SendMessageBatch. */
const SQS_BATCH_COUNT = 10;
const SQS_BATCH_BYTES = 250 * 1024;

/**
 * A record as an SQS message body. SQS refuses U+FFFE and U+FFFF, which a rejected record's
 * text (quoted in a bad_json detail) may hold; JSON.stringify escapes every other character
 * SQS refuses (controls, lone surrogates). Escaping them too keeps the same JSON value.
 */
function sqsBody(record: QuarantinedRecord): string {
  return JSON.stringify(record).replace(
    /[\ufffe\uffff]/g,
    (c) => `\\u${c.charCodeAt(0).toString(16)}`,
  );
}

export class SqsQuarantineSink implements QuarantineSink {
  constructor(
    private readonly sqs: Pick<SQSClient, "send">,
    private readonly queueUrl: string,
  ) {}

  async send(records: readonly QuarantinedRecord[]): Promise<void> {
    let batch: string[] = [];
    let bytes = 0;
    const flush = async () => {
      if (batch.length === 0) return;
      const entries = batch.map((body, i) => ({ Id: String(i), MessageBody: body }));
      batch = [];
      bytes = 0;
      const out = await this.sqs.send(
        new SendMessageBatchCommand({ QueueUrl: this.queueUrl, Entries: entries }),
      );
      if (out.Failed && out.Failed.length > 0) {
        const first = out.Failed[0];
        throw new Error(
          `SQS refused ${out.Failed.length} quarantined record(s): ${first?.Code ?? "?"} ${first?.Message ?? ""}`,
        );
      }
    };
    for (const record of records) {
      const body = sqsBody(record);
      const size = Buffer.byteLength(body);
      if (batch.length === SQS_BATCH_COUNT || bytes + size > SQS_BATCH_BYTES) await flush();
      batch.push(body);
      bytes += size;
    }
    await flush();
  }
}
