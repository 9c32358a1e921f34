/**
 * `redrive --local` end to end on the local runtime: a real Redis Cluster, the local Kinesis,
 * the poller and the real consumer. One primary is full (maxmemory, noeviction), so batches
 * are partly applied (the sites on the other primaries are stored) and then discarded to the
 * poller's on-failure file after their retries; once there is room, `redrive` reads the ranges
 * back from the stream and has the real consumer count them with their original eventIDs.
 * Afterwards every `uv:` and `ev:` key equals, register for register, a fault-free run of the
 * same stream records (on the shared test cluster), the keys the partial batches had stored are
 * unchanged, and a second redrive of the same messages changes nothing. Then quarantined
 * records, one of them truncated in quarantine, are counted by `redrive --quarantine` after a
 * fix of the configuration (a longer RETENTION_DAYS).
 */

import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ListShardsCommand } from "@aws-sdk/client-kinesis";
import type { KinesisStreamEvent } from "aws-lambda";
import { Cluster } from "ioredis";
import { afterAll, assert, beforeAll, describe, expect, it } from "vitest";
import { runCli } from "../../cli/app.js";
import { generateEvents } from "../../cli/generator.js";
import { putAll } from "../../cli/producer.js";
import { createConsumerHandler } from "../../functions/consumer/handler.js";
import { AS_OF_KEY } from "../../functions/domain/keys.js";
import { type LocalRuntime, startLocalRuntime } from "../../local/runtime.js";
import { captureIo } from "../cli/capture.js";
import { DAY_MS, testNowMs, utcDay } from "../helpers/clock.js";
import { consumerEnv, uniqueSitePrefix } from "../helpers/env.js";
import { hllSame } from "../helpers/hll.js";
import { streamRecords } from "../helpers/stream-records.js";

const SHARD = "shardId-000000000000";
const now = testNowMs();
const prefix = uniqueSitePrefix();

let runtime: LocalRuntime;
/** The runtime's cluster (faults, redrive) and the shared test cluster (the fault-free run). */
let local: Cluster;
let shared: Cluster;

beforeAll(async () => {
  runtime = await startLocalRuntime({
    dataDir: mkdtempSync(join(tmpdir(), "sketchstream-redrive-")),
    shards: 1,
    replicasPerPrimary: 0,
    // Quick retries; a short daily retention, which the quarantine test then lengthens.
    mapping: { batchSize: 50, batchingWindowMs: 0, maximumRetryAttempts: 2, retryDelayMs: 1 },
    consumerEnv: { RETENTION_DAYS: "10" },
    now: () => now,
  });
  local = new Cluster([{ host: "127.0.0.1", port: runtime.redis.port }]);
  const sharedEnv = consumerEnv();
  const [host, port] = (sharedEnv.REDIS_ENDPOINT ?? "").split(":");
  shared = new Cluster([{ host: host ?? "127.0.0.1", port: Number(port) }]);
});

afterAll(async () => {
  await local?.quit();
  await shared?.quit();
  await runtime?.stop();
});

/** The CLI against the runtime, as `npm run local`'s environment plus the two files. */
async function redrive(args: string[], extraEnv: Record<string, string> = {}) {
  const { out, io } = captureIo({
    ...runtime.env,
    QUARANTINE_FILE: runtime.quarantineFile,
    ON_FAILURE_FILE: runtime.onFailureFile,
    ...extraEnv,
  });
  const code = await runCli(["redrive", "--local", ...args], {
    ...io,
    now: () => now,
    redriveProgress: () => ({ update() {}, stop() {} }),
  });
  return { code, ...out };
}

/** Port of the runtime's primary that serves `key`. */
async function ownerPort(key: string): Promise<number> {
  const slot = Number(await local.cluster("KEYSLOT", key));
  for (const [start, end, primary] of await local.cluster("SLOTS")) {
    if (primary && slot >= start && slot <= end) return Number(primary[1]);
  }
  throw new Error(`no owner for slot ${slot}`);
}

/** Every record of the stream, in order, as the event source mapping delivers it. */
async function streamEvent(): Promise<KinesisStreamEvent> {
  return {
    Records: await streamRecords({
      kinesis: runtime.kinesis,
      streamName: runtime.streamName,
      streamArn: runtime.streamArn,
      shardId: SHARD,
    }),
  };
}

/** The fault-free run: every record of the stream, once, through a consumer on `shared`. */
async function referenceRun(retentionDays: string): Promise<void> {
  const consumer = createConsumerHandler(consumerEnv({ RETENTION_DAYS: retentionDays }), {
    now: () => now,
  });
  try {
    expect((await consumer(await streamEvent())).batchItemFailures).toEqual([]);
  } finally {
    consumer.close();
  }
}

/** Every `uv:` and `ev:` key of sites starting with `sites`, and its value, on a cluster. */
async function metricKeys(redis: Cluster, sites: string): Promise<Map<string, Buffer>> {
  const found = new Map<string, Buffer>();
  for (const node of redis.nodes("master")) {
    for (const family of ["uv", "ev"]) {
      let cursor = "0";
      do {
        const [next, keys] = await node.scan(cursor, "MATCH", `${family}:{site_id=${sites}*`);
        cursor = next;
        for (const key of keys) {
          const value = await node.getBuffer(key);
          if (value) found.set(key, value);
        }
      } while (cursor !== "0");
    }
  }
  return found;
}

/** Both maps hold the same keys with register-equal HLLs; the differences otherwise. */
function differences(a: Map<string, Buffer>, b: Map<string, Buffer>): string[] {
  const keys = new Set([...a.keys(), ...b.keys()]);
  return [...keys]
    .filter((key) => !hllSame(a.get(key) ?? null, b.get(key) ?? null))
    .map((key) => `${key}: ${a.has(key) ? "" : "missing "}vs ${b.has(key) ? "" : "missing"}`)
    .sort();
}

/**
 * Waits until the poller has settled `total` more records than `checkpointedBefore`: stored, or
 * discarded to the on-failure file. drain() alone can return early when a read that began
 * before the records were put comes back empty.
 */
async function settled(total: number, checkpointedBefore: number): Promise<void> {
  const until = performance.now() + 60_000;
  for (;;) {
    await runtime.poller.drain(60_000);
    const discarded = fileLines(runtime.onFailureFile)
      .map((line) => Number(JSON.parse(line).KinesisBatchInfo.batchSize))
      .reduce((a, b) => a + b, 0);
    const checkpointed = runtime.poller.stats.recordsCheckpointed - checkpointedBefore;
    if (checkpointed + discarded >= total) return;
    if (performance.now() > until)
      throw new Error(`the poller settled ${checkpointed + discarded} of ${total} records`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

function fileLines(path: string): string[] {
  try {
    return readFileSync(path, "utf8")
      .split("\n")
      .filter((l) => l.trim() !== "");
  } catch {
    return [];
  }
}

describe("redrive on the local runtime", () => {
  it("counts the rest of partly applied batches with their original identities: ev: and uv: equal a fault-free run", async () => {
    const sites = Array.from({ length: 12 }, (_, i) => `${prefix}a${i}`);
    const day = utcDay(now);
    // `as-of` is the one bookkeeping key every batch writes (the touched sets and site indexes
    // are spread over every primary, keys.ts groupOfSite): a full primary holding it would fail
    // every batch from its first record.
    const asOfOwner = await ownerPort(AS_OF_KEY);
    const owners = new Map<string, number>();
    for (const site of sites) owners.set(site, await ownerPort(`uv:{site_id=${site}}:${day}`));
    const full = runtime.redis.ports.find(
      (p) => p !== asOfOwner && [...owners.values()].includes(p),
    );
    assert.isDefined(full, "a primary without the as-of key that owns some sites");
    const fullSites = sites.filter((s) => owners.get(s) === full);
    expect(fullSites.length).toBeLessThan(sites.length);

    // Generator events on our sites; every third carries an event_id, the rest are counted in
    // ev: by their Kinesis record id, which a redrive must keep.
    const events = generateEvents({ seed: 12, users: 60, days: 3, endMs: now });
    const records = Array.from({ length: 200 }, (_, i) => {
      const e = events.next().value;
      if (!e) throw new Error("the generator ended");
      const payload = {
        ...e,
        site_id: sites[i % sites.length],
        ...(i % 3 === 0 ? { event_id: `evt-${prefix}-${i}` } : {}),
      };
      return { partitionKey: `part-${i}`, data: Buffer.from(JSON.stringify(payload)) };
    });

    const node = runtime.redis.ports.indexOf(full);
    const fullNode = local.nodes("master").find((n) => n.options.port === full);
    assert.isDefined(fullNode, `primary ${node} of the runtime`);
    await fullNode.config("SET", "maxmemory-policy", "noeviction");
    await fullNode.config("SET", "maxmemory", "1");
    const checkpointed = runtime.poller.stats.recordsCheckpointed;
    try {
      await putAll(records, { kinesis: runtime.kinesis, stream: runtime.streamName });
      await settled(records.length, checkpointed);
    } finally {
      await fullNode.config("SET", "maxmemory", "0");
    }
    const discarded = fileLines(runtime.onFailureFile);
    expect(discarded.length).toBeGreaterThan(0);
    expect(runtime.poller.stats.batchesDiscarded).toBe(discarded.length);

    await referenceRun("10");
    const reference = await metricKeys(shared, `${prefix}a`);
    const partial = await metricKeys(local, `${prefix}a`);
    // Partly applied: the sites with room are complete; the full primary's sites have nothing.
    const stored = new Map(
      [...partial].filter(([key]) => !fullSites.some((s) => key.includes(`{site_id=${s}}`))),
    );
    expect(stored.size).toBeGreaterThan(0);
    expect(stored.size).toBe(partial.size);
    expect(differences(stored, new Map([...reference].filter(([key]) => stored.has(key))))).toEqual(
      [],
    );

    const first = await redrive([]);
    expect(first.stderr).toBe("");
    expect(first.code).toBe(0);
    expect(first.stdout).toContain(`${discarded.length} message`);
    expect(first.stdout).toContain(`${discarded.length} deleted, 0 kept`);
    expect(fileLines(runtime.onFailureFile)).toEqual([]);

    const after = await metricKeys(local, `${prefix}a`);
    expect(differences(after, reference)).toEqual([]);
    // What the partial batches had stored is unchanged, register for register.
    expect(differences(new Map([...after].filter(([key]) => stored.has(key))), stored)).toEqual([]);

    // The same messages again: counting again changes nothing.
    writeFileSync(runtime.onFailureFile, discarded.map((l) => `${l}\n`).join(""));
    const second = await redrive(["--json"]);
    expect(second.code).toBe(0);
    expect(JSON.parse(second.stdout)).toMatchObject({
      messages: { received: discarded.length, deleted: discarded.length, kept: 0 },
    });
    expect(differences(await metricKeys(local, `${prefix}a`), after)).toEqual([]);

    // A batch whose records are past the stream's retention: reported, its message kept.
    const shards = await runtime.kinesis.send(
      new ListShardsCommand({ StreamName: runtime.streamName }),
    );
    const trimmed = JSON.parse(discarded[0] ?? "{}");
    const gone = shards.Shards?.[0]?.SequenceNumberRange?.StartingSequenceNumber ?? "";
    trimmed.KinesisBatchInfo = {
      ...trimmed.KinesisBatchInfo,
      startSequenceNumber: gone,
      endSequenceNumber: gone,
      batchSize: 1,
    };
    writeFileSync(runtime.onFailureFile, `${JSON.stringify(trimmed)}\n`);
    const expired = await redrive([]);
    expect(expired.code).toBe(1);
    expect(expired.stdout).toContain("1 of its 1 records are past the stream's retention");
    expect(expired.stdout).toContain("1 message: 0 deleted, 1 kept");
    expect(fileLines(runtime.onFailureFile)).toEqual([JSON.stringify(trimmed)]);
    writeFileSync(runtime.onFailureFile, "");
  });

  it("--quarantine counts quarantined records after a fix, a truncated one read back from the stream", async () => {
    const sites = [`${prefix}b0`, `${prefix}b1`];
    // 20 days old: refused with the runtime's 10-day retention, counted with the default 62.
    const eventTime = (i: number) =>
      new Date(now - 20 * DAY_MS + i * 60_000).toISOString().replace("T", " ").slice(0, 19);
    const payloads: unknown[] = Array.from({ length: 30 }, (_, i) => ({
      user_id: `u-${i}`,
      site_id: sites[i % 2],
      event: "view",
      event_time: eventTime(i),
      ...(i % 2 === 0 ? { event_id: `q-${prefix}-${i}` } : {}),
    }));
    // Over the quarantine's 200,000 characters of base64: kept truncated, with its SHA-256.
    payloads.push({
      user_id: "u-big",
      site_id: sites[0],
      event: "view",
      event_time: eventTime(99),
      sku: "x".repeat(160_000),
    });
    const records = [
      ...payloads.map((p, i) => ({ partitionKey: `q-${i}`, data: Buffer.from(JSON.stringify(p)) })),
      // Never valid: submitted again, and quarantined again.
      { partitionKey: "q-bad", data: Buffer.from(`{"site_id":"${sites[1]}",`) },
    ];
    const before = fileLines(runtime.quarantineFile).length;
    const checkpointed = runtime.poller.stats.recordsCheckpointed;
    await putAll(records, { kinesis: runtime.kinesis, stream: runtime.streamName });
    await settled(records.length, checkpointed);
    const quarantined = fileLines(runtime.quarantineFile).slice(before);
    expect(quarantined).toHaveLength(records.length);
    expect(quarantined.filter((l) => l.includes('"dataSha256"'))).toHaveLength(1);
    expect(await metricKeys(local, `${prefix}b`)).toEqual(new Map());

    const dry = await redrive(["--quarantine", "--dry-run"], { RETENTION_DAYS: "62" });
    expect(dry.code).toBe(0);
    expect(fileLines(runtime.quarantineFile).slice(before)).toEqual(quarantined);

    const fixed = await redrive(["--quarantine", "--json"], { RETENTION_DAYS: "62" });
    expect(fixed.code).toBe(0);
    expect(JSON.parse(fixed.stdout)).toMatchObject({
      records: { readBack: 1, counted: records.length, pastRetention: 0 },
    });
    // The file keeps only the record still invalid, quarantined again with its identity.
    const left = fileLines(runtime.quarantineFile);
    expect(left).toHaveLength(1);
    expect(JSON.parse(left[0] ?? "{}")).toMatchObject({
      reason: "bad_json",
      partitionKey: "q-bad",
    });

    await referenceRun("62");
    expect(
      differences(await metricKeys(local, `${prefix}b`), await metricKeys(shared, `${prefix}b`)),
    ).toEqual([]);
  });
});
