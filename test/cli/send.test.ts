import {
  CreateStreamCommand,
  DescribeStreamSummaryCommand,
  GetRecordsCommand,
  GetShardIteratorCommand,
  type KinesisClient,
  ListShardsCommand,
  type PutRecordsCommand,
  type PutRecordsCommandOutput,
} from "@aws-sdk/client-kinesis";
import kinesalite from "kinesalite";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runCli } from "../../cli/app.js";
import { GENERATOR_EVENTS, GENERATOR_SITES } from "../../cli/generator.js";
import { putAll } from "../../cli/producer.js";
import { parseSendArgs } from "../../cli/send.js";
import { localKinesisClient } from "../../local/runtime.js";
import { listeningPort } from "../helpers/net.js";
import { captureIo } from "./capture.js";

describe("send: arguments", () => {
  it("has the generator's defaults and refuses bad numbers as usage errors", async () => {
    expect(parseSendArgs([])).toEqual({ total: 10_000, days: 7, users: 10_000, seed: 1 });
    expect(parseSendArgs(["--total", "5", "--rate", "100"])).toMatchObject({ total: 5, rate: 100 });
    for (const bad of [["--total", "0"], ["--days", "63"], ["--rate", "fast"], ["--nope"]]) {
      const { out, io } = captureIo({ STREAM_NAME: "s" });
      expect(await runCli(["send", ...bad], io), bad.join(" ")).toBe(2);
      expect(out.stderr).toContain("Usage: npm run cli");
    }
  });

  it("says which variable is missing", async () => {
    const { out, io } = captureIo({});
    expect(await runCli(["send", "--total", "1"], io)).toBe(1);
    expect(out.stderr).toContain("STREAM_NAME is not set");
  });
});

describe("send: the PutRecords requests", () => {
  it("batches 500 records a request and puts again exactly the records a response reports as failed", async () => {
    const requests: { stream?: string; records: { PartitionKey?: string; Data?: Uint8Array }[] }[] =
      [];
    let throttled = false;
    // The producer's edge is the client's send(); this one answers the PutRecords it sends.
    const kinesis: Pick<KinesisClient, "send"> = {
      async send(command: PutRecordsCommand): Promise<Partial<PutRecordsCommandOutput>> {
        const input = command.input;
        requests.push({
          stream: input.StreamARN ?? input.StreamName,
          records: input.Records ?? [],
        });
        // The first response throttles the 3rd and 7th records.
        const fail = !throttled ? new Set([2, 6]) : new Set<number>();
        throttled = true;
        return {
          FailedRecordCount: fail.size,
          Records: (input.Records ?? []).map((_, i) =>
            fail.has(i)
              ? { ErrorCode: "ProvisionedThroughputExceededException", ErrorMessage: "slow down" }
              : { SequenceNumber: "1", ShardId: "s" },
          ),
        };
      },
    };
    const { out, io } = captureIo({
      STREAM_NAME: "arn:aws:kinesis:eu-west-1:123456789012:stream/sketchstream-dev",
    });
    const code = await runCli(["send", "--total", "1200", "--seed", "9"], {
      ...io,
      kinesis,
    });
    expect(code, out.stderr).toBe(0);
    expect(requests.map((r) => r.records.length)).toEqual([500, 2, 500, 200]);
    expect(
      requests.every(
        (r) => r.stream === "arn:aws:kinesis:eu-west-1:123456789012:stream/sketchstream-dev",
      ),
    ).toBe(true);
    expect(requests[1]?.records).toEqual([requests[0]?.records[2], requests[0]?.records[6]]);
    const event = JSON.parse(Buffer.from(requests[0]?.records[0]?.Data ?? []).toString());
    expect(GENERATOR_SITES).toContain(event.site_id);
    expect(GENERATOR_EVENTS).toContain(event.event);
    expect(event.user_id).toMatch(/^u-\d{3}-\d{2}$/);
    expect(event.event_time).toMatch(/^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$/);
    expect(requests[0]?.records[0]?.PartitionKey).toBe("part-00000");
    expect(out.stdout).toMatch(
      /^sent 1200 records to arn:aws:kinesis:\S+ in [\d.]+ s \(\d+ records\/s, 4 PutRecords requests, 2 records retried\)\n$/,
    );
    expect(out.stderr).toContain("sent 1200 of 1200 records");
  });
});

describe("send: producer faults", () => {
  const STREAM = "arn:aws:kinesis:eu-west-1:123456789012:stream/sketchstream-dev";
  /** An error as the SDK throws it for a whole request. */
  const serviceError = (name: string) => Object.assign(new Error(`${name}: refused`), { name });

  /** A PutRecords edge answering from `answer(attempt, records)`; records every request. */
  function fakeKinesis(
    answer: (
      request: number,
      records: readonly { PartitionKey?: string }[],
    ) => Partial<PutRecordsCommandOutput> | Error,
  ) {
    const requests: { PartitionKey?: string }[][] = [];
    const kinesis: Pick<KinesisClient, "send"> = {
      async send(command: PutRecordsCommand): Promise<Partial<PutRecordsCommandOutput>> {
        const records = command.input.Records ?? [];
        requests.push(records);
        const out = answer(requests.length, records);
        if (out instanceof Error) throw out;
        return out;
      },
    };
    return { kinesis, requests };
  }
  const allOk = (records: readonly unknown[]) => ({
    FailedRecordCount: 0,
    Records: records.map(() => ({ SequenceNumber: "1", ShardId: "s" })),
  });

  it("sends a whole request again after throttling, with exponential backoff and full jitter", async () => {
    const { kinesis, requests } = fakeKinesis((n, records) =>
      n <= 2 ? serviceError("ProvisionedThroughputExceededException") : allOk(records),
    );
    const pauses: number[] = [];
    const records = Array.from({ length: 3 }, (_, i) => ({
      partitionKey: `p${i}`,
      data: Buffer.from("{}"),
    }));
    const result = await putAll(records, {
      kinesis,
      stream: STREAM,
      baseDelayMs: 100,
      random: () => 0.5,
      sleep: async (ms) => {
        pauses.push(ms);
      },
    });
    expect(result).toMatchObject({ sent: 3, retried: 6, requests: 3, failed: 0 });
    expect(requests).toHaveLength(3);
    for (const r of requests) expect(r.map((x) => x.PartitionKey)).toEqual(["p0", "p1", "p2"]);
    // Full jitter: a random share (here half) of 100 ms, then of 200 ms.
    expect(pauses).toEqual([50, 100]);
  });

  it("reports the records it could not write, goes on with the others, and exits 1", async () => {
    // The 2nd and 5th records of the first batch fail on every attempt; all else succeeds.
    const { kinesis, requests } = fakeKinesis((n, records) =>
      n === 1 || (n <= 8 && records.length === 2)
        ? {
            FailedRecordCount: 2,
            Records: records.map((_, i) =>
              (n === 1 ? [1, 4] : [0, 1]).includes(i)
                ? { ErrorCode: "ProvisionedThroughputExceededException", ErrorMessage: "slow" }
                : { SequenceNumber: "1", ShardId: "s" },
            ),
          }
        : allOk(records),
    );
    const { out, io } = captureIo({ STREAM_NAME: STREAM });
    const code = await runCli(["send", "--total", "700", "--seed", "3"], {
      ...io,
      kinesis,
      sleep: async () => {},
    });
    expect(code).toBe(1);
    // 8 attempts for the first batch (1 whole, 7 of its 2 failed records), then the rest.
    expect(requests.map((r) => r.length)).toEqual([500, 2, 2, 2, 2, 2, 2, 2, 200]);
    expect(out.stdout).toMatch(/^sent 698 records to /);
    expect(out.stderr).toContain(
      "2 of 700 records could not be written after every retry (ProvisionedThroughputExceededException ×2); first partition keys: part-00001, part-00004.",
    );
  });

  it("stops at once when the request is refused for a reason that does not pass", async () => {
    const { kinesis, requests } = fakeKinesis(() => serviceError("ResourceNotFoundException"));
    const { out, io } = captureIo({ STREAM_NAME: STREAM });
    const code = await runCli(["send", "--total", "10"], { ...io, kinesis, sleep: async () => {} });
    expect(code).toBe(1);
    expect(requests).toHaveLength(1);
    expect(out.stderr).toContain(
      "PutRecords was refused (ResourceNotFoundException: ResourceNotFoundException: refused); 0 records were put before. Check STREAM_NAME, the region and your permissions.",
    );
  });
});

describe("send: into a local Kinesis", () => {
  let server: ReturnType<typeof kinesalite>;
  let endpoint: string;
  beforeAll(async () => {
    server = kinesalite({ createStreamMs: 0 });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", () => resolve()));
    endpoint = `http://127.0.0.1:${listeningPort(server)}`;
  });
  afterAll(async () => {
    await new Promise((resolve) => server.close(resolve));
  });

  it("puts every record, from every generator site", async () => {
    const kinesis = localKinesisClient(endpoint);
    await kinesis.send(new CreateStreamCommand({ StreamName: "cli-send", ShardCount: 2 }));
    while (
      (await kinesis.send(new DescribeStreamSummaryCommand({ StreamName: "cli-send" })))
        .StreamDescriptionSummary?.StreamStatus !== "ACTIVE"
    );
    const { out, io } = captureIo({ STREAM_NAME: "cli-send", KINESIS_ENDPOINT: endpoint });
    expect(await runCli(["send", "--total", "1500", "--seed", "4"], io), out.stderr).toBe(0);
    const stored: string[] = [];
    for (const shard of (await kinesis.send(new ListShardsCommand({ StreamName: "cli-send" })))
      .Shards ?? []) {
      const it = await kinesis.send(
        new GetShardIteratorCommand({
          StreamName: "cli-send",
          ShardId: shard.ShardId,
          ShardIteratorType: "TRIM_HORIZON",
        }),
      );
      const got = await kinesis.send(
        new GetRecordsCommand({ ShardIterator: it.ShardIterator, Limit: 10_000 }),
      );
      for (const r of got.Records ?? []) stored.push(Buffer.from(r.Data ?? []).toString());
    }
    kinesis.destroy();
    expect(stored).toHaveLength(1500);
    expect(new Set(stored.map((s) => JSON.parse(s).site_id))).toEqual(new Set(GENERATOR_SITES));
  });
});
