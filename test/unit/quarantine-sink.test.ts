/**
 * The quarantine sinks (functions/adapters/quarantine.ts). SqsQuarantineSink is driven through
 * a recording fake of the SQS client edge: an object whose send() keeps every
 * SendMessageBatch input and answers what the test tells it to. The requests it records are
 * checked against SQS's rules: at most 10 entries, message bodies within the sink's 250 KiB
 * per request, unique entry ids, only the characters SQS accepts in a body.
 */

import { createHash } from "node:crypto";
import { existsSync, mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  SendMessageBatchCommand,
  type SendMessageBatchCommandInput,
  type SendMessageBatchCommandOutput,
  type SendMessageBatchRequestEntry,
  type SendMessageBatchResultEntry,
  type SQSClient,
} from "@aws-sdk/client-sqs";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { FileQuarantineSink, SqsQuarantineSink } from "../../functions/adapters/quarantine.js";
import { planBatch, QUARANTINE_DATA_LIMIT } from "../../functions/consumer/ingest.js";
import { at } from "../../functions/domain/arrays.js";
import type { QuarantinedRecord } from "../../functions/domain/quarantine.js";
import { DEFAULT_RETENTION } from "../../functions/domain/runtime-env.js";
import { testNowMs } from "../helpers/clock.js";
import { parseQuarantinedRecord } from "../helpers/quarantine.js";

const QUEUE_URL = "https://sqs.eu-west-1.amazonaws.com/123456789012/sketchstream-dev-quarantine";
/** The sink's own limit on the message bodies of one request (SQS allows 256 KiB). */
const BATCH_BYTES = 250 * 1024;
const BATCH_COUNT = 10;

const QUARANTINED_AT = new Date(testNowMs()).toISOString();

function record(i: number, data = "eyJhIjoxfQ==", extra: Partial<QuarantinedRecord> = {}) {
  const r: QuarantinedRecord = {
    reason: "bad_json",
    detail: "the record's data is not JSON: Unexpected end of JSON input",
    sequenceNumber: `4960000000000000000000000000000000000000000000000${String(i).padStart(5, "0")}`,
    partitionKey: `part-${i}`,
    eventSourceArn: "arn:aws:kinesis:eu-west-1:123456789012:stream/sketchstream-dev",
    eventId: `shardId-000000000000:${i}`,
    data,
    quarantinedAt: QUARANTINED_AT,
    ...extra,
  };
  return r;
}

const bodyBytes = (r: QuarantinedRecord) => Buffer.byteLength(JSON.stringify(r));

/** A record whose JSON body is exactly `bytes` bytes long (data padded with base64 "A"). */
function recordOfBytes(i: number, bytes: number): QuarantinedRecord {
  const overhead = bodyBytes(record(i, ""));
  if (bytes < overhead) throw new Error(`a record body is at least ${overhead} bytes`);
  const r = record(i, "A".repeat(bytes - overhead));
  expect(bodyBytes(r)).toBe(bytes);
  return r;
}

type Answer = Partial<SendMessageBatchCommandOutput> | Error;

/**
 * The SQS edge: records each SendMessageBatch input; answers with `answer(input, call)`, by
 * default every entry successful. An Error answer is thrown, as the SDK throws service errors.
 */
function fakeSqs(answer?: (input: SendMessageBatchCommandInput, call: number) => Answer) {
  const inputs: SendMessageBatchCommandInput[] = [];
  // The sink asks for SQSClient's send; the fake answers the one command it uses.
  const sqs: Pick<SQSClient, "send"> = {
    async send(command: unknown): Promise<Partial<SendMessageBatchCommandOutput>> {
      if (!(command instanceof SendMessageBatchCommand)) {
        throw new Error(`unexpected command ${String(command)}`);
      }
      inputs.push(command.input);
      const out = answer?.(command.input, inputs.length - 1) ?? allSuccessful(command.input);
      if (out instanceof Error) throw out;
      return out;
    },
  };
  return { inputs, sqs };
}

/** An entry's Id, which SQS requires (the SDK's type leaves it optional). */
function entryId(entry: SendMessageBatchRequestEntry): string {
  if (entry.Id === undefined) throw new Error("a SendMessageBatch entry without an Id");
  return entry.Id;
}

/** An entry's MessageBody, which SQS requires (the SDK's type leaves it optional). */
function entryBody(entry: SendMessageBatchRequestEntry): string {
  if (entry.MessageBody === undefined) {
    throw new Error(`SendMessageBatch entry ${entry.Id} without a MessageBody`);
  }
  return entry.MessageBody;
}

function allSuccessful(
  input: SendMessageBatchCommandInput,
): Partial<SendMessageBatchCommandOutput> {
  const Successful: SendMessageBatchResultEntry[] = (input.Entries ?? []).map((e) => ({
    Id: entryId(e),
    MessageId: `m-${e.Id}`,
    MD5OfMessageBody: "0",
  }));
  return { Successful, Failed: [] };
}

/** Every message body sent, request by request, parsed back. */
function sentRecords(inputs: readonly SendMessageBatchCommandInput[]): QuarantinedRecord[] {
  return inputs.flatMap((input) =>
    (input.Entries ?? []).map((e) => parseQuarantinedRecord(entryBody(e))),
  );
}

/** SQS's rules every request must follow, whatever it holds. */
function expectValidRequests(inputs: readonly SendMessageBatchCommandInput[]): void {
  for (const [n, input] of inputs.entries()) {
    const entries = input.Entries ?? [];
    expect(input.QueueUrl, `request ${n} queue`).toBe(QUEUE_URL);
    expect(entries.length, `request ${n} entries`).toBeGreaterThan(0);
    expect(entries.length, `request ${n} entries`).toBeLessThanOrEqual(BATCH_COUNT);
    const ids = entries.map(entryId);
    expect(new Set(ids).size, `request ${n} ids unique`).toBe(ids.length);
    for (const id of ids) expect(id).toMatch(/^[A-Za-z0-9_-]{1,80}$/);
    const bytes = entries.reduce((sum, e) => sum + Buffer.byteLength(entryBody(e)), 0);
    expect(bytes, `request ${n} body bytes`).toBeLessThanOrEqual(BATCH_BYTES);
  }
}

/** Greedy packing: no request could have taken the first entry of the next one. */
function expectPacked(inputs: readonly SendMessageBatchCommandInput[]): void {
  for (let n = 0; n + 1 < inputs.length; n++) {
    const entries = inputs[n]?.Entries ?? [];
    const next = entryBody(at(inputs[n + 1]?.Entries ?? [], 0, `entry of request ${n + 1}`));
    const bytes = entries.reduce((sum, e) => sum + Buffer.byteLength(entryBody(e)), 0);
    expect(
      entries.length === BATCH_COUNT || bytes + Buffer.byteLength(next) > BATCH_BYTES,
      `request ${n} (${entries.length} entries, ${bytes} bytes) could have taken the next entry`,
    ).toBe(true);
  }
}

describe("SqsQuarantineSink", () => {
  it("sends nothing for an empty list", async () => {
    const { inputs, sqs } = fakeSqs();
    await new SqsQuarantineSink(sqs, QUEUE_URL).send([]);
    expect(inputs).toEqual([]);
  });

  it("sends small records 10 per request, each once and in order, to the queue", async () => {
    const records = Array.from({ length: 25 }, (_, i) => record(i));
    const { inputs, sqs } = fakeSqs();
    await new SqsQuarantineSink(sqs, QUEUE_URL).send(records);
    expect(inputs.map((i) => i.Entries?.length)).toEqual([10, 10, 5]);
    expectValidRequests(inputs);
    expect(sentRecords(inputs)).toEqual(records);
  });

  it("keeps the bodies of a request within 250 KiB with ~100 KB records", async () => {
    const records = Array.from({ length: 7 }, (_, i) => record(i, "A".repeat(100_000)));
    const { inputs, sqs } = fakeSqs();
    await new SqsQuarantineSink(sqs, QUEUE_URL).send(records);
    expectValidRequests(inputs);
    for (const input of inputs) expect(input.Entries?.length).toBeLessThanOrEqual(3);
    // Two ~100 KB bodies fit in 250 KiB, a third does not.
    expect(inputs.map((i) => i.Entries?.length)).toEqual([2, 2, 2, 1]);
    expect(sentRecords(inputs)).toEqual(records);
  });

  it("fills a request up to exactly 250 KiB, and not one byte beyond", async () => {
    const half = BATCH_BYTES / 2;
    const exact = fakeSqs();
    await new SqsQuarantineSink(exact.sqs, QUEUE_URL).send([
      recordOfBytes(0, half),
      recordOfBytes(1, half),
    ]);
    expect(exact.inputs.map((i) => i.Entries?.length)).toEqual([2]);

    const over = fakeSqs();
    await new SqsQuarantineSink(over.sqs, QUEUE_URL).send([
      recordOfBytes(0, half),
      recordOfBytes(1, half + 1),
    ]);
    expect(over.inputs.map((i) => i.Entries?.length)).toEqual([1, 1]);
    expectValidRequests(over.inputs);
  });

  it("fits the largest record the consumer quarantines in one request", async () => {
    // ingestBatch keeps at most QUARANTINE_DATA_LIMIT characters of data; Kinesis partition
    // keys are at most 256 characters.
    const largest = record(0, "A".repeat(QUARANTINE_DATA_LIMIT), {
      partitionKey: "p".repeat(256),
      detail: `the record's data is not JSON: ${"x".repeat(200)} (data truncated to ${QUARANTINE_DATA_LIMIT} characters)`,
    });
    expect(bodyBytes(largest)).toBeLessThan(BATCH_BYTES);
    const { inputs, sqs } = fakeSqs();
    await new SqsQuarantineSink(sqs, QUEUE_URL).send([record(1), largest, record(2)]);
    expectValidRequests(inputs);
    expect(sentRecords(inputs)).toEqual([record(1), largest, record(2)]);
  });

  it("fits any record the consumer quarantines in one message: a 1 MiB record keeps its sha256, length, shard, sequence number and reason", async () => {
    // The worst detail: a parse error quoting control characters, which JSON escapes 6-fold.
    const bytes = Buffer.alloc(1024 * 1024 - 300, 1);
    bytes.write("{", 0);
    const data = bytes.toString("base64");
    const plan = planBatch(
      [
        {
          sequenceNumber: "49600000000000000000000000000000000000000000000000000042",
          partitionKey: "\u0001".repeat(256),
          eventId: "shardId-000000000007:49600000000000000000000000000000000000000000000000000042",
          data,
        },
      ],
      { nowMs: testNowMs(), retention: DEFAULT_RETENTION },
    );
    const quarantined = at(plan.rejected, 0, "rejected record").record;
    expect(quarantined).toMatchObject({
      reason: "bad_json",
      sequenceNumber: "49600000000000000000000000000000000000000000000000000042",
      eventId: "shardId-000000000007:49600000000000000000000000000000000000000000000000000042",
      dataSha256: createHash("sha256").update(data).digest("hex"),
      dataLength: data.length,
    });
    expect(quarantined.data).toBe(data.slice(0, QUARANTINE_DATA_LIMIT));
    expect(bodyBytes(quarantined)).toBeLessThan(256 * 1024);
    const { inputs, sqs } = fakeSqs();
    await new SqsQuarantineSink(sqs, QUEUE_URL).send([record(1), quarantined]);
    expectValidRequests(inputs);
    expect(sentRecords(inputs)).toEqual([record(1), quarantined]);
  });

  it("sends a record larger than the limit on its own, never with its neighbours", async () => {
    // Not reachable from the consumer (see above); a sink cannot split a message, so the best
    // it can do is not to sink the records around it with it.
    const huge = recordOfBytes(1, BATCH_BYTES + 1000);
    const records = [record(0), huge, record(2)];
    const { inputs, sqs } = fakeSqs();
    await new SqsQuarantineSink(sqs, QUEUE_URL).send(records);
    expect(inputs.map((i) => i.Entries?.length)).toEqual([1, 1, 1]);
    expect(sentRecords(inputs)).toEqual(records);
  });

  it("respects both limits, packs greedily and sends every record once in order, for any sizes", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(
          fc.oneof(fc.integer({ min: 0, max: 2_000 }), fc.integer({ min: 20_000, max: 130_000 })),
          { maxLength: 40 },
        ),
        async (sizes) => {
          const records = sizes.map((n, i) => record(i, "A".repeat(n)));
          const { inputs, sqs } = fakeSqs();
          await new SqsQuarantineSink(sqs, QUEUE_URL).send(records);
          expectValidRequests(inputs);
          expectPacked(inputs);
          expect(sentRecords(inputs)).toEqual(records);
        },
      ),
      { numRuns: 100 },
    );
  });

  it("sends only characters SQS accepts in a message body, and the same JSON value", async () => {
    // A bad_json detail quotes the record's text, which may hold any character, U+FFFF
    // included (valid UTF-8: EF BF BF). SQS rejects a body with a character outside
    // #x9 | #xA | #xD | #x20-#xD7FF | #xE000-#xFFFD | #x10000-#x10FFFF.
    const texts = ["\uffff", "\ufffe", "\u0000\u0001\u001f", "\ud800 lone", "\udfff", "😀 ok"];
    const records = texts.map((t, i) =>
      record(i, "e30=", {
        detail: `the record's data is not JSON: Unexpected token '${t}', "{${t}}" is not valid JSON`,
        partitionKey: `p-${t}`,
      }),
    );
    const { inputs, sqs } = fakeSqs();
    await new SqsQuarantineSink(sqs, QUEUE_URL).send(records);
    const refused = /[^\t\n\r\u0020-\ud7ff\ue000-\ufffd\u{10000}-\u{10ffff}]/gu;
    for (const entry of inputs.flatMap((i) => i.Entries ?? [])) {
      const bad = [...entryBody(entry).matchAll(refused)].map(
        ([c]) => `U+${c.codePointAt(0)?.toString(16).toUpperCase().padStart(4, "0")}`,
      );
      expect(bad, `characters SQS refuses in the body of entry ${entry.Id}`).toEqual([]);
    }
    expect(sentRecords(inputs)).toEqual(records);
  });

  it("sends a rejected Kinesis record holding U+FFFF with only characters SQS accepts", async () => {
    // The path by which such a character reaches the sink: bad JSON whose text the parser's
    // error message quotes.
    const data = Buffer.from('{"user_id": \uffff}', "utf8").toString("base64");
    const plan = planBatch([{ sequenceNumber: "1", partitionKey: "p", data }], {
      nowMs: testNowMs(),
      retention: DEFAULT_RETENTION,
    });
    const rejected = plan.rejected.map((r) => r.record);
    expect(rejected.map((r) => r.reason)).toEqual(["bad_json"]);
    expect(rejected[0]?.detail).toContain("\uffff");
    const { inputs, sqs } = fakeSqs();
    await new SqsQuarantineSink(sqs, QUEUE_URL).send(rejected);
    const body = entryBody(at(inputs[0]?.Entries ?? [], 0, "entry of request 0"));
    expect(/[\ufffe\uffff]/.test(body)).toBe(false);
    expect(sentRecords(inputs)).toEqual(rejected);
  });

  it("rejects when SQS reports failed entries, naming the count and the first code and message", async () => {
    const records = Array.from({ length: 4 }, (_, i) => record(i));
    const { sqs } = fakeSqs((input) => ({
      Successful: allSuccessful(input).Successful?.slice(0, 2),
      Failed: [
        { Id: "2", SenderFault: true, Code: "InvalidMessageContents", Message: "bad character" },
        { Id: "3", SenderFault: false, Code: "InternalError", Message: "try again" },
      ],
    }));
    await expect(new SqsQuarantineSink(sqs, QUEUE_URL).send(records)).rejects.toThrow(
      "SQS refused 2 quarantined record(s): InvalidMessageContents bad character",
    );
  });

  it("rejects when a later request has failed entries, after sending the earlier ones", async () => {
    const records = Array.from({ length: 25 }, (_, i) => record(i));
    const { inputs, sqs } = fakeSqs((input, call) =>
      call === 1
        ? {
            Successful: [],
            Failed: [{ Id: "9", SenderFault: false, Code: "ServiceUnavailable", Message: "busy" }],
          }
        : allSuccessful(input),
    );
    await expect(new SqsQuarantineSink(sqs, QUEUE_URL).send(records)).rejects.toThrow(
      /SQS refused 1 quarantined record\(s\): ServiceUnavailable busy/,
    );
    expect(sentRecords(inputs.slice(0, 2))).toEqual(records.slice(0, 20));
  });

  it("resolves when every entry is successful (an empty Failed list included)", async () => {
    const { sqs } = fakeSqs((input) => ({ ...allSuccessful(input), Failed: [] }));
    await expect(new SqsQuarantineSink(sqs, QUEUE_URL).send([record(0)])).resolves.toBeUndefined();
  });

  it("propagates an SDK error", async () => {
    const denied = Object.assign(new Error("User is not authorized to perform sqs:SendMessage"), {
      name: "AccessDenied",
    });
    const { sqs } = fakeSqs(() => denied);
    await expect(new SqsQuarantineSink(sqs, QUEUE_URL).send([record(0)])).rejects.toBe(denied);

    const timeout = new Error("socket hang up");
    const later = fakeSqs((input, call) => (call === 2 ? timeout : allSuccessful(input)));
    const records = Array.from({ length: 30 }, (_, i) => record(i));
    await expect(new SqsQuarantineSink(later.sqs, QUEUE_URL).send(records)).rejects.toBe(timeout);
    expect(later.inputs).toHaveLength(3);
  });
});

describe("FileQuarantineSink", () => {
  const tempDir = () => mkdtempSync(join(tmpdir(), "sketchstream-qsink-"));
  const lines = (path: string) =>
    readFileSync(path, "utf8")
      .split("\n")
      .filter((l) => l !== "")
      .map(parseQuarantinedRecord);

  it("appends one JSON line per record, creating missing directories", async () => {
    const path = join(tempDir(), "a", "b", "quarantine.jsonl");
    const sink = new FileQuarantineSink(path);
    const first = [record(0), record(1, "e30=", { detail: "line\nbreak \uffff" }), record(2)];
    await sink.send(first);
    const text = readFileSync(path, "utf8");
    expect(text.endsWith("\n")).toBe(true);
    expect(text.split("\n")).toHaveLength(first.length + 1);
    expect(lines(path)).toEqual(first);

    const second = [record(3), record(4)];
    await sink.send(second);
    expect(lines(path)).toEqual([...first, ...second]);
  });

  it("writes nothing, not even the directory, for an empty list", async () => {
    const dir = join(tempDir(), "missing");
    const path = join(dir, "quarantine.jsonl");
    await new FileQuarantineSink(path).send([]);
    expect(existsSync(dir)).toBe(false);
    expect(existsSync(path)).toBe(false);
  });

  it("rejects when the file cannot be written (a path under a file, even as root)", async () => {
    await expect(
      new FileQuarantineSink("/dev/null/q/quarantine.jsonl").send([record(0)]),
    ).rejects.toThrow();
  });
});
