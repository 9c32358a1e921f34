/**
 * Failover while streaming, and the consumer's wait for replicas (REDIS_WAIT_REPLICAS).
 *
 * Local Redis replicates asynchronously: a primary that dies right after acknowledging a write
 * can take the write with it, and the batch, already checkpointed, is never retried. With
 * REDIS_WAIT_REPLICAS=1 the consumer sends `WAIT 1 <timeout>` on each primary connection a
 * batch wrote to, and fails the batch from the first record on a primary whose replica did not
 * confirm. Shown here against real clusters and the real handler:
 *
 * - off (the default), no WAIT reaches any node (the deployed consumer user has no `+wait`);
 * - on, a primary with no replica (or a paused one) fails the batch from the first record whose
 *   writes went to that primary, and the retry succeeds once the replica answers;
 * - a primary SIGKILLed mid-stream (3 primaries with a replica each, the local event-source
 *   poller over a local Kinesis, the consumer as an ACL user with `+wait`): the cluster fails
 *   over, the killed node comes back as the new primary's replica (as MemoryDB replaces a failed
 *   node; until then the promoted primary has no replica and the WAIT refuses its batches), the
 *   partial-batch retries carry on, and every `uv:` and `ev:` key ends register for register
 *   equal to a fault-free run of the same records (same `eventID`s) under renamed site ids.
 *
 * This file starts its own cluster: killing a node of the shared one would disturb other tests.
 */

import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync } from "node:fs";
import { rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Logger } from "@aws-lambda-powertools/logger";
import {
  CreateStreamCommand,
  DescribeStreamSummaryCommand,
  PutRecordsCommand,
} from "@aws-sdk/client-kinesis";
import type { KinesisStreamEvent } from "aws-lambda";
import { Cluster, Redis } from "ioredis";
import kinesalite from "kinesalite";
import { afterAll, assert, beforeAll, describe, expect, inject, it, vi } from "vitest";
import { GENERATOR_EVENTS, GENERATOR_SITES, generateEvents } from "../../cli/generator.js";
import { createConsumerHandler } from "../../functions/consumer/handler.js";
import { ACL_RULES, consumerAclRules } from "../../functions/domain/acl.js";
import { at, first } from "../../functions/domain/arrays.js";
import { AS_OF_KEY, groupOfSite, touchedKey } from "../../functions/domain/keys.js";
import { DEFAULT_RETENTION, toEnv } from "../../functions/domain/runtime-env.js";
import { EventSourcePoller } from "../../local/event-source-poller.js";
import { lambdaContext } from "../../local/lambda-context.js";
import {
  freePorts,
  type RunningRedisCluster,
  startRedisCluster,
} from "../../local/redis-cluster.js";
import { localKinesisClient } from "../../local/runtime.js";
import { testNowMs, utcDay } from "../helpers/clock.js";
import { consumerEnv, uniqueSitePrefix } from "../helpers/env.js";
import { kinesisEvent } from "../helpers/kinesis.js";
import { listeningPort } from "../helpers/net.js";
import { streamRecords } from "../helpers/stream-records.js";

const USERS = {
  /** The deployed consumer's rules: no `+wait`. */
  plain: { name: "consumer", password: "consumer-pw", rules: ACL_RULES.consumer },
  /** The rules of a consumer that waits for replicas. */
  waiting: {
    name: "consumer-wait",
    password: "consumer-wait-pw",
    rules: consumerAclRules({ waitForReplicas: true }),
  },
} as const;

let cluster: RunningRedisCluster;
/** An admin client (the default user) of this file's cluster. */
let admin: Cluster;
/** The killed node, started again as a replica: stopped by this file. */
let restarted: ChildProcess | undefined;

beforeAll(async () => {
  // A short node timeout (the default is 5 s), so the failover takes about 3 s.
  cluster = await startRedisCluster({
    primaries: 3,
    replicasPerPrimary: 1,
    nodeTimeoutMs: 1500,
    users: [USERS.plain, USERS.waiting],
  });
  // A returning replica is synced at once, not after the default 5 s diskless-sync delay.
  await Promise.all(
    cluster.ports.map((port) =>
      withNode(port, (node) => node.config("SET", "repl-diskless-sync-delay", "0")),
    ),
  );
  admin = new Cluster([{ host: "127.0.0.1", port: cluster.port }]);
  // The cluster is up before every node has heard of every replica, and before the replicas
  // have their first copy; a WAIT counts only replicas in sync.
  let replicas: NodeView[] = [];
  await waitUntil("every node to know the three replicas", 15_000, async () => {
    const views = await Promise.all(cluster.ports.map(clusterNodes));
    replicas = views[0]?.filter((n) => n.flags.includes("slave")) ?? [];
    return views.every((view) => view.filter((n) => n.flags.includes("slave")).length === 3);
  });
  for (const { port } of replicas) await replicaSynced(port);
});

afterAll(async () => {
  admin?.disconnect();
  if (restarted && restarted.exitCode === null && restarted.signalCode === null) {
    const exited = new Promise((resolve) => restarted?.once("exit", resolve));
    restarted.kill("SIGTERM");
    await exited;
  }
  await cluster?.stop();
});

async function withNode<T>(port: number, work: (node: Redis) => Promise<T>): Promise<T> {
  const node = new Redis({ host: "127.0.0.1", port, maxRetriesPerRequest: 0, lazyConnect: true });
  node.on("error", () => {});
  try {
    await node.connect();
    return await work(node);
  } finally {
    node.disconnect();
  }
}

interface NodeView {
  readonly id: string;
  readonly port: number;
  readonly flags: readonly string[];
  /** The primary's id, for a replica. */
  readonly primaryId: string | undefined;
}

/** Waits until the node on `port` is a replica with a live link to its primary. */
async function replicaSynced(port: number, timeoutMs = 15_000): Promise<void> {
  await waitUntil(`the replica on port ${port} in sync`, timeoutMs, async () => {
    const info = String(await withNode(port, (node) => node.info("replication")));
    return info.includes("role:slave") && info.includes("master_link_status:up");
  });
}

/** CLUSTER NODES as one node sees it. */
async function clusterNodes(port: number): Promise<NodeView[]> {
  const text = String(await withNode(port, (node) => node.cluster("NODES")));
  return text
    .trim()
    .split("\n")
    .map((line) => {
      const [id = "", address = "", flags = "", primaryId = "-"] = line.split(" ");
      return {
        id,
        port: Number(address.split("@")[0]?.split(":")[1]),
        flags: flags.split(","),
        primaryId: primaryId === "-" ? undefined : primaryId,
      };
    });
}

/** Port of the primary serving a key, from this file's cluster's slot map. */
async function ownerPort(key: string): Promise<number> {
  const slot = Number(await admin.cluster("KEYSLOT", key));
  for (const [start, end, primary] of await admin.cluster("SLOTS")) {
    if (primary && slot >= start && slot <= end) return Number(primary[1]);
  }
  throw new Error(`no owner for ${key}`);
}

function pidOf(port: number): number {
  return at(cluster.pids, cluster.ports.indexOf(port), `pid of the node on port ${port}`);
}

/** WAIT commands a node has executed so far (INFO commandstats). */
async function waitCalls(port: number): Promise<number> {
  const info = String(await withNode(port, (node) => node.info("commandstats")));
  return Number(/^cmdstat_wait:calls=(\d+)/m.exec(info)?.[1] ?? 0);
}

async function waitUntil(what: string, timeoutMs: number, check: () => Promise<boolean>) {
  const until = Date.now() + timeoutMs;
  for (;;) {
    if (await check().catch(() => false)) return;
    if (Date.now() > until) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** A consumer environment for this file's cluster, as `user`, waiting for replicas or not. */
function envFor(
  user: (typeof USERS)[keyof typeof USERS],
  replicaWait?: { timeoutMs: number },
): Record<string, string> {
  return toEnv({
    endpoint: cluster.endpoint,
    cluster: true,
    tls: false,
    auth: { mode: "password", user: user.name, password: user.password },
    retention: DEFAULT_RETENTION,
    quarantine: {
      file: join(mkdtempSync(join(tmpdir(), "sketchstream-failover-")), "quarantine.jsonl"),
    },
    ...(replicaWait ? { replicaWait: { replicas: 1, ...replicaWait } } : {}),
  });
}

/** A silent logger whose warnings and errors the test reads. */
function capturingLogger() {
  const logger = new Logger({ serviceName: "sketchstream-consumer", logLevel: "WARN" });
  const lines: { level: "warn" | "error"; message: string; extra: Record<string, unknown> }[] = [];
  const capture =
    (level: "warn" | "error") =>
    (message: unknown, ...rest: unknown[]) => {
      const extra = Object.assign({}, ...rest.filter((r) => typeof r === "object"));
      lines.push({ level, message: String(message), extra });
    };
  vi.spyOn(logger, "warn").mockImplementation(capture("warn"));
  vi.spyOn(logger, "error").mockImplementation(capture("error"));
  return { logger, lines };
}

describe("the consumer's wait for replicas", () => {
  it("off (the default): no WAIT is sent, and the deployed rules (no +wait) suffice", async () => {
    const now = testNowMs();
    const day = utcDay(now);
    const handler = createConsumerHandler(envFor(USERS.plain), { now: () => now });
    const before = await Promise.all(cluster.ports.map(waitCalls));
    try {
      const sites = Array.from({ length: 12 }, (_, i) => `off${i}`);
      const event = kinesisEvent(
        sites.map((site, i) => ({
          user_id: `u-${i}`,
          site_id: site,
          event: "view",
          event_time: `${day} 08:00:00`,
        })),
      );
      expect((await handler(event)).batchItemFailures).toEqual([]);
    } finally {
      handler.close();
    }
    expect(await Promise.all(cluster.ports.map(waitCalls))).toEqual(before);
    expect(await admin.exists(`uv:{site_id=off0}:${day}`)).toBe(1);
  });

  it("on: a primary without replicas fails the batch from its first record", async () => {
    // The shared test cluster: three primaries, no replicas, so every WAIT 1 gets 0.
    const now = testNowMs();
    const day = utcDay(now);
    const prefix = uniqueSitePrefix();
    const { logger, lines } = capturingLogger();
    const handler = createConsumerHandler(
      consumerEnv({ REDIS_WAIT_REPLICAS: "1", REDIS_WAIT_TIMEOUT_MS: "50" }),
      { now: () => now, logger },
    );
    const ports = inject("redisPorts");
    const before = await Promise.all(ports.map(waitCalls));
    try {
      const event = kinesisEvent(
        Array.from({ length: 40 }, (_, i) => ({
          user_id: `u-${i}`,
          site_id: `${prefix}n${i}`,
          event: "view",
          event_time: `${day} 08:00:00`,
        })),
      );
      const result = await handler(event);
      expect(result.batchItemFailures).toEqual([
        { itemIdentifier: first(event.Records, "record").kinesis.sequenceNumber },
      ]);
    } finally {
      handler.close();
    }
    const after = await Promise.all(ports.map(waitCalls));
    // One WAIT per primary the batch wrote to (40 sites reach all three but once in 3 million).
    expect(after.map((n, i) => n - at(before, i, "calls before"))).toEqual([1, 1, 1]);
    expect(lines).toContainEqual(
      expect.objectContaining({
        level: "error",
        extra: expect.objectContaining({ firstFailedIndex: 0, cause: "replica_wait" }),
      }),
    );
    expect(
      lines.filter((l) => l.message.startsWith("replicas did not confirm")).map((l) => l.extra),
    ).toContainEqual(
      expect.objectContaining({
        problem: "0 of 1 replicas acknowledged the batch's writes within 50 ms",
      }),
    );
  });

  it("on: a paused replica fails the batch from the first record on its primary; the retry succeeds", async () => {
    const now = testNowMs();
    const day = utcDay(now);
    const nodes = await clusterNodes(cluster.port);
    const asOfOwner = await ownerPort(AS_OF_KEY);
    const sites = Array.from({ length: 24 }, (_, i) => `p${i}`);
    const owners = new Map<string, number>();
    // The primaries a batch writes to for a site: its keys' and its bookkeeping group's
    // (touched set and site index); a record depends on both.
    const writes = new Map<string, Set<number>>();
    for (const site of sites) {
      owners.set(site, await ownerPort(`uv:{site_id=${site}}:${day}`));
      writes.set(
        site,
        new Set([
          await ownerPort(`uv:{site_id=${site}}:${day}`),
          await ownerPort(touchedKey(groupOfSite(site))),
        ]),
      );
    }
    // A primary without `as-of` (which every record depends on), serving some of the sites.
    const victim = [...new Set(owners.values())].find((port) => port !== asOfOwner);
    assert.isDefined(victim, "a primary that holds sites but not as-of");
    const victimId = nodes.find((n) => n.port === victim)?.id;
    const replica = nodes.find((n) => n.primaryId === victimId);
    assert.isDefined(replica, "the victim's replica");
    const onVictim = (site: string) => writes.get(site)?.has(victim) === true;
    const safeSites = sites.filter((s) => !onVictim(s));
    expect(safeSites.length).toBeGreaterThan(0);
    const sitesInOrder = [
      ...Array.from({ length: 30 }, (_, i) => at(safeSites, i % safeSites.length, "safe site")),
      ...Array.from({ length: 90 }, (_, i) => at(sites, (i * 5) % sites.length, "site")),
    ];
    const expectedFirst = sitesInOrder.findIndex(onVictim);
    expect(expectedFirst).toBeGreaterThanOrEqual(30);
    const event = kinesisEvent(
      sitesInOrder.map((site, i) => ({
        user_id: `u-${i % 40}`,
        site_id: site,
        event: ["view", "cart"][i % 2],
        event_time: `${day} 09:00:00`,
      })),
    );

    const { logger, lines } = capturingLogger();
    // A paused replica never acknowledges, whatever the wait; a running one may take a few
    // hundred ms when the CI machine is busy: a 1 s wait tells the two apart there too.
    const handler = createConsumerHandler(envFor(USERS.waiting, { timeoutMs: 1000 }), {
      now: () => now,
      logger,
    });
    try {
      // A warm consumer: connected, with the slot map. On a loaded machine a replica can take
      // longer than the wait to acknowledge even while it runs: the warm-up may retry.
      const warm = kinesisEvent([
        { user_id: "w", site_id: "p-warm", event: "view", event_time: `${day} 09:00:00` },
      ]);
      let warmFailures: readonly unknown[] = [];
      for (let attempt = 0; attempt < 5; attempt++) {
        warmFailures = (await handler(warm)).batchItemFailures;
        if (warmFailures.length === 0) break;
      }
      expect(warmFailures).toEqual([]);

      process.kill(pidOf(replica.port), "SIGSTOP");
      let result: Awaited<ReturnType<typeof handler>>;
      try {
        result = await handler(event, lambdaContext({ timeoutMs: 5000 }));
      } finally {
        process.kill(pidOf(replica.port), "SIGCONT");
      }
      expect(result.batchItemFailures).toEqual([
        { itemIdentifier: at(event.Records, expectedFirst, "record").kinesis.sequenceNumber },
      ]);
      expect(lines).toContainEqual(
        expect.objectContaining({
          level: "error",
          extra: expect.objectContaining({
            firstFailedIndex: expectedFirst,
            cause: "replica_wait",
            failure: expect.stringContaining(`on primary 127.0.0.1:${victim}`),
          }),
        }),
      );

      // Lambda retries from the reported record until it succeeds: once the resumed replica
      // has caught up (at once on a quiet machine).
      const retry = { Records: event.Records.slice(expectedFirst) };
      await waitUntil("the retry to succeed", 10_000, async () => {
        return (await handler(retry)).batchItemFailures.length === 0;
      });
    } finally {
      handler.close();
    }
  });
});

/**
 * A plain redis-server on a free loopback port (no cluster), stopped by `stop`. Its own
 * directory: a replica writes the RDB of its full sync there, whatever `save` says.
 */
async function startServer(extra: readonly string[] = []) {
  const port = first(await freePorts(1), "free port");
  const dir = mkdtempSync(join(tmpdir(), "sketchstream-single-"));
  const child = spawn(
    "redis-server",
    [
      ...["--port", String(port), "--bind", "127.0.0.1", "--dir", dir],
      ...["--save", "", "--appendonly", "no", ...extra],
    ],
    { stdio: "ignore" },
  );
  await waitUntil(
    `redis-server on port ${port}`,
    10_000,
    async () => (await withNode(port, (node) => node.ping())) === "PONG",
  );
  return {
    port,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        const exited = new Promise((resolve) => child.once("exit", resolve));
        child.kill("SIGTERM");
        await exited;
      }
      await rm(dir, { recursive: true, force: true });
    },
  };
}

describe("the wait for replicas on a single node (REDIS_CLUSTER=false)", () => {
  it("fails the batch while the primary has no replica, and passes once one is in sync", async () => {
    const now = testNowMs();
    const day = utcDay(now);
    const primary = await startServer(["--repl-diskless-sync-delay", "0"]);
    let replica: Awaited<ReturnType<typeof startServer>> | undefined;
    const handler = createConsumerHandler(
      {
        REDIS_ENDPOINT: `127.0.0.1:${primary.port}`,
        REDIS_CLUSTER: "false",
        REDIS_TLS: "false",
        QUARANTINE_FILE: "/dev/null",
        REDIS_WAIT_REPLICAS: "1",
        REDIS_WAIT_TIMEOUT_MS: "50",
      },
      { now: () => now },
    );
    try {
      const event = kinesisEvent(
        Array.from({ length: 10 }, (_, i) => ({
          user_id: `u-${i}`,
          site_id: `single${i % 3}`,
          event: "view",
          event_time: `${day} 08:00:00`,
        })),
      );
      expect((await handler(event)).batchItemFailures).toEqual([
        { itemIdentifier: first(event.Records, "record").kinesis.sequenceNumber },
      ]);
      expect(await waitCalls(primary.port)).toBe(1);

      replica = await startServer(["--replicaof", "127.0.0.1", String(primary.port)]);
      await replicaSynced(replica.port);
      expect((await handler(event)).batchItemFailures).toEqual([]);
      expect(await waitCalls(primary.port)).toBe(2);
    } finally {
      handler.close();
      await replica?.stop();
      await primary.stop();
    }
  });
});

/** Decodes a Redis HLL (sparse or dense) into its 16384 six-bit registers. */
function hllRegisters(value: Buffer): Uint8Array {
  const registers = new Uint8Array(16384);
  assert.equal(value.subarray(0, 4).toString(), "HYLL", "an HLL value");
  const body = value.subarray(16);
  if (value[4] === 0) {
    for (let i = 0; i < registers.length; i++) {
      const bit = i * 6;
      const byte = bit >> 3;
      const shift = bit & 7;
      const word = (body[byte] ?? 0) | ((body[byte + 1] ?? 0) << 8);
      registers[i] = (word >> shift) & 63;
    }
    return registers;
  }
  let index = 0;
  for (let p = 0; p < body.length; p++) {
    const op = body[p] ?? 0;
    if ((op & 0xc0) === 0) {
      index += (op & 0x3f) + 1; // ZERO
    } else if ((op & 0xc0) === 0x40) {
      index += (((op & 0x3f) << 8) | (body[++p] ?? 0)) + 1; // XZERO
    } else {
      const runLength = (op & 3) + 1; // VAL
      registers.fill(((op >> 2) & 0x1f) + 1, index, index + runLength);
      index += runLength;
    }
  }
  assert.equal(index, registers.length, "a sparse HLL covers every register");
  return registers;
}

interface StoredHll {
  readonly registers: Uint8Array;
  /** 0 dense, 1 sparse. */
  readonly encoding: number;
  /** The primary that holds it. */
  readonly port: number;
}

/** Every `uv:` and `ev:` key on the cluster's current primaries, with its registers. */
async function countingKeys(): Promise<Map<string, StoredHll>> {
  const keys = new Map<string, StoredHll>();
  const primaries = (await clusterNodes(cluster.port)).filter(
    (n) => n.flags.includes("master") && !n.flags.includes("fail"),
  );
  for (const { port } of primaries) {
    await withNode(port, async (node) => {
      for (const pattern of ["uv:*", "ev:*"]) {
        let cursor = "0";
        do {
          const [next, found] = await node.scan(cursor, "MATCH", pattern, "COUNT", 1000);
          cursor = next;
          for (const key of found) {
            const value = await node.getBuffer(key);
            if (value) {
              keys.set(key, { registers: hllRegisters(value), encoding: value[4] ?? -1, port });
            }
          }
        } while (cursor !== "0");
      }
    });
  }
  return keys;
}

const REFERENCE_PREFIX = "ref";

describe("a primary killed mid-stream", () => {
  it("fails over, the retries carry on, and every key equals a fault-free run", async () => {
    const now = testNowMs();
    const total = 20_000;
    const server = kinesalite({ createStreamMs: 0, deleteStreamMs: 0, updateStreamMs: 0 });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", () => resolve()));
    const kinesis = localKinesisClient(`http://127.0.0.1:${listeningPort(server)}`);
    const { logger, lines } = capturingLogger();
    const consumer = createConsumerHandler(envFor(USERS.waiting, { timeoutMs: 300 }), {
      now: () => now,
      logger,
    });
    const reference = createConsumerHandler(envFor(USERS.plain), { now: () => now });
    try {
      // The stream: generator events over three days, half of them with an event_id.
      const streamName = "failover";
      await kinesis.send(new CreateStreamCommand({ StreamName: streamName, ShardCount: 4 }));
      let streamArn = "";
      while (!streamArn) {
        const out = await kinesis.send(
          new DescribeStreamSummaryCommand({ StreamName: streamName }),
        );
        if (out.StreamDescriptionSummary?.StreamStatus === "ACTIVE")
          streamArn = out.StreamDescriptionSummary.StreamARN ?? "";
      }
      const events = generateEvents({ seed: 1212, users: 4000, days: 3, endMs: now });
      const payloads = Array.from({ length: total }, (_, i) => {
        const e = events.next().value;
        assert.isDefined(e, "a generated event");
        return i % 2 === 0 ? { ...e, event_id: `evt-${i}` } : e;
      });
      // Produced while the consumer runs, in 500-record PutRecords calls, four at a time.
      const produce = async () => {
        const starts = Array.from({ length: total / 500 }, (_, n) => n * 500);
        for (let p = 0; p < starts.length; p += 4) {
          const outs = await Promise.all(
            starts.slice(p, p + 4).map((i) =>
              kinesis.send(
                new PutRecordsCommand({
                  StreamName: streamName,
                  Records: payloads.slice(i, i + 500).map((payload, j) => ({
                    PartitionKey: `pk-${(i + j) % 97}`,
                    Data: Buffer.from(JSON.stringify(payload)),
                  })),
                }),
              ),
            ),
          );
          for (const out of outs) expect(out.FailedRecordCount ?? 0).toBe(0);
        }
      };

      // The victim: a primary holding sites' keys, not the seed node the consumer starts from.
      const day = utcDay(now);
      const owners = await Promise.all(
        GENERATOR_SITES.map((site) => ownerPort(`uv:{site_id=${site}}:${day}`)),
      );
      const victim = owners.find((port) => port !== cluster.port);
      assert.isDefined(victim, "a primary other than the seed that holds a site");
      const victimId = (await clusterNodes(cluster.port)).find((n) => n.port === victim)?.id;
      const replica = (await clusterNodes(cluster.port)).find((n) => n.primaryId === victimId);
      assert.isDefined(replica, "the victim's replica");
      const waitsBefore = await waitCalls(victim);

      const poller = new EventSourcePoller({
        kinesis,
        streamName,
        streamArn,
        handler: (event, context) => consumer(event, context),
        onFailureFile: join(
          mkdtempSync(join(tmpdir(), "sketchstream-failover-")),
          "on-failure.jsonl",
        ),
        batchSize: 500,
        batchingWindowMs: 0,
        // Lambda's limit: the batches keep retrying through the failover, none is discarded.
        maximumRetryAttempts: 10_000,
        retryDelayMs: 50,
        functionTimeoutMs: 10_000,
      });
      await poller.start();
      const producing = produce();
      try {
        await waitUntil("a tenth of the stream acknowledged", 20_000, async () => {
          await new Promise((resolve) => setTimeout(resolve, 1));
          return poller.stats.recordsCheckpointed >= total / 10;
        });
        const acknowledgedBeforeKill = poller.stats.recordsCheckpointed;
        // Killed mid-stream, after batches were acknowledged with their WAITs confirmed.
        expect(await waitCalls(victim)).toBeGreaterThan(waitsBefore);
        process.kill(pidOf(victim), "SIGKILL");
        expect(acknowledgedBeforeKill).toBeLessThan(total / 2);

        await waitUntil("the replica promoted", 15_000, async () => {
          const view = await clusterNodes(replica.port);
          const info = String(await withNode(replica.port, (node) => node.cluster("INFO")));
          const promoted = view.find((n) => n.port === replica.port);
          return promoted?.flags.includes("master") === true && info.includes("cluster_state:ok");
        });
        // Until it has a replica, the promoted primary's WAITs get 0: its batches are refused.
        await waitUntil("a batch refused for want of a replica", 10_000, async () =>
          lines.some((l) => l.extra.cause === "replica_wait"),
        );
        // The failed node comes back empty and joins as the new primary's replica.
        restarted = spawn("redis-server", [join(cluster.dir, `node-${victim}`, "redis.conf")], {
          stdio: "ignore",
        });
        await replicaSynced(victim);
        await producing;
        await poller.drain(30_000);
      } finally {
        await poller.stop();
      }
      expect(poller.stats.batchesDiscarded).toBe(0);
      expect(poller.stats.partialFailures).toBeGreaterThan(0);
      // The promoted primary had no replica until the old one returned: its WAITs said so.
      expect(lines.filter((l) => l.extra.cause === "replica_wait").length).toBeGreaterThan(0);

      // The fault-free run: the same records (same eventIDs, so the same identities) under
      // renamed site ids, replayed directly into the handler, which waits for nothing.
      const records = await streamRecords({ kinesis, streamName, streamArn });
      expect(records).toHaveLength(total);
      for (let i = 0; i < records.length; i += 2500) {
        const chunk = records.slice(i, i + 2500).map((r) => {
          const payload = JSON.parse(Buffer.from(r.kinesis.data, "base64").toString());
          const data = { ...payload, site_id: `${REFERENCE_PREFIX}${payload.site_id}` };
          return {
            ...r,
            kinesis: { ...r.kinesis, data: Buffer.from(JSON.stringify(data)).toString("base64") },
          };
        });
        const event: KinesisStreamEvent = { Records: chunk };
        expect((await reference(event)).batchItemFailures).toEqual([]);
      }

      const keys = await countingKeys();
      const ofSites = (sites: readonly string[]) =>
        [...keys.keys()].filter((k) => sites.some((site) => k.includes(`{site_id=${site}}`)));
      const streamed = ofSites(GENERATOR_SITES.map(String));
      const referenceKeys = ofSites(GENERATOR_SITES.map((site) => `${REFERENCE_PREFIX}${site}`));
      // Both metrics, every day and event type of the five generator sites.
      const perFamily = GENERATOR_SITES.length * 3 * (1 + GENERATOR_EVENTS.length);
      expect(streamed.filter((k) => k.startsWith("uv:")).length).toBe(perFamily);
      expect(streamed.filter((k) => k.startsWith("ev:")).length).toBe(perFamily);
      expect(referenceKeys).toHaveLength(streamed.length);
      const differing = streamed.filter((key) => {
        const ref = keys.get(key.replace("{site_id=", `{site_id=${REFERENCE_PREFIX}`));
        const stored = keys.get(key);
        return !ref || !stored || !Buffer.from(ref.registers).equals(Buffer.from(stored.registers));
      });
      expect(differing).toEqual([]);

      // The decoder reads what Redis reads: for a sparse and a dense key, the registers Redis
      // reports (PFDEBUG GETREG, which makes the key dense: done last).
      for (const encoding of [1, 0]) {
        const [key, stored] =
          [...keys].find(([k, hll]) => streamed.includes(k) && hll.encoding === encoding) ?? [];
        if (encoding === 0 && key === undefined) {
          // No key of this run turned dense (the test clock's hour decides how events spread
          // over days): check the decoder on a dense copy of a sparse key instead.
          const [sparseKey, sparse] = [...keys].find(([k]) => streamed.includes(k)) ?? [];
          assert.isDefined(sparseKey, "a key to make dense");
          assert.isDefined(sparse);
          const copy = `${sparseKey}:dense-check`;
          const dense = await withNode(sparse.port, async (node) => {
            await node.copy(sparseKey, copy);
            await node.call("PFDEBUG", "TODENSE", copy);
            const value = await node.getBuffer(copy);
            await node.del(copy);
            return value;
          });
          assert.isNotNull(dense);
          expect(dense?.[4], "the copy is dense").toBe(0);
          expect([...hllRegisters(dense as Buffer)]).toEqual([...sparse.registers]);
          continue;
        }
        assert.isDefined(key, `a ${encoding === 1 ? "sparse" : "dense"} key`);
        assert.isDefined(stored);
        const reported = await withNode(stored.port, (node) => node.call("PFDEBUG", "GETREG", key));
        expect(Array.isArray(reported) ? reported.map(Number) : reported).toEqual([
          ...stored.registers,
        ]);
      }
    } finally {
      consumer.close();
      reference.close();
      kinesis.destroy();
      await new Promise((resolve) => server.close(resolve));
    }
  }, 60_000);
});
