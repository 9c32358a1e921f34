/**
 * Kinesis consumer Lambda: thin wiring of config, Redis, quarantine sink, logs and metrics
 * around `ingestBatch`. The Redis connection is made on the first invocation and reused while
 * the execution environment stays warm (each of its connections authenticates with a fresh
 * credential); it is dropped after a timeout so nothing stays queued. Log lines carry the
 * invocation's request id and cold-start flag; a cold start is counted as a metric. With
 * REDIS_WAIT_REPLICAS=1 (self-managed Redis only) each batch waits for a replica of every
 * primary it wrote to before it is acknowledged: see `replicaWaitFor`.
 */

import { Logger } from "@aws-lambda-powertools/logger";
import { Metrics, MetricUnit } from "@aws-lambda-powertools/metrics";
import { SQSClient } from "@aws-sdk/client-sqs";
import type { Context, KinesisStreamBatchResponse, KinesisStreamEvent } from "aws-lambda";
import { Cluster, Command, type Redis } from "ioredis";
import { awsRedisDeps } from "../adapters/aws.js";
import { FileQuarantineSink, SqsQuarantineSink } from "../adapters/quarantine.js";
import {
  connectRedis,
  type RedisClient,
  type RedisClientDeps,
  type RedisConnection,
} from "../adapters/redis.js";
import { everyGroupKey, LEGACY_SITES_KEY, TIME_ZONES_KEY } from "../domain/keys.js";
import type { QuarantineSink } from "../domain/quarantine.js";
import {
  type ConsumerRuntimeConfig,
  type Env,
  loadConsumerRuntimeConfig,
  type ReplicaWaitSettings,
} from "../domain/runtime-env.js";
import { ZoneCalendars } from "../domain/time-zones.js";
import { ZoneRegistryCache } from "../domain/zone-registry.js";
import {
  ingestBatch,
  NoPrimaryError,
  type PrimaryConnection,
  type ReplicaWait,
  type SiteZones,
  type StreamRecord,
} from "./ingest.js";

/** Time kept back from the invocation's remaining time to report failures before being killed. */
export function safetyMarginMs(remainingMs: number): number {
  return Math.min(10_000, Math.max(500, Math.floor(remainingMs * 0.2)));
}

/** Used when the handler is called without a Lambda context (local runs, tests). */
const DEFAULT_BUDGET_MS = 60_000;

interface ConsumerRuntime {
  readonly config: ConsumerRuntimeConfig;
  readonly quarantine: QuarantineSink;
  /** The registry copy and calendars, kept while the environment stays warm. */
  readonly zones: SiteZones;
  redis?: RedisConnection;
  /** Whether the cluster had no site when this environment started: see freshInstall. */
  eventsRecordedFromStart?: boolean;
}

/**
 * Asked once per execution environment: a cluster with no site index has never stored a
 * count, so the events metric is recorded from its start (`events-since` 0). Where sites exist
 * (an older deployment gaining the `ev:` keys), days before now stay "not recorded". The site
 * index is every group's, and the single-slot one of older versions until a rollup has moved it
 * into the groups: one EXISTS per key (they are in different slots), sent together. When the
 * question cannot be answered, the cautious answer: not from the start.
 */
async function freshInstall(redis: RedisClient): Promise<boolean> {
  try {
    const keys = [...everyGroupKey("sites"), LEGACY_SITES_KEY];
    const found = await Promise.all(keys.map((key) => redis.exists(key)));
    return found.every((n) => n === 0);
  } catch {
    return false;
  }
}

export interface ConsumerHandlerOptions {
  readonly logger?: Logger;
  readonly metrics?: Metrics;
  /** The processing clock (event time window, quarantine time, deadlines). Default Date.now. */
  readonly now?: () => number;
  /** Most ids per PFADD; see IngestOptions. */
  readonly pfaddChunkSize?: number;
  /** The AWS edge of the Redis client (credentials, Secrets Manager); made from config by default. */
  readonly redisDeps?: RedisClientDeps;
}

export type ConsumerHandler = ((
  event: KinesisStreamEvent,
  context?: Context,
) => Promise<KinesisStreamBatchResponse>) & {
  /** Closes the Redis connection (tests and the local runtime call it when done). */
  close(): void;
};

/** A Cluster re-reads its slot map (after MOVED or a failover); a single node has none. */
function refreshSlots(client: RedisClient): Promise<void> {
  if (!(client instanceof Cluster)) return Promise.resolve();
  return new Promise((resolve) => client.refreshSlotsCache(() => resolve()));
}

/** Closes seen per standalone client: a reconnect between a batch's writes and its WAIT. */
const closesOf = new WeakMap<Redis, { count: number }>();

function closeCounter(client: Redis): { count: number } {
  let counter = closesOf.get(client);
  if (counter === undefined) {
    const created = { count: 0 };
    client.on("close", () => {
      created.count++;
    });
    closesOf.set(client, created);
    counter = created;
  }
  return counter;
}

/**
 * REDIS_WAIT_REPLICAS for one batch: each command goes on the connection of the primary that
 * serves its key, and the WAIT on that same connection, since WAIT confirms only the writes its
 * own connection carried.
 *
 * A Cluster keeps one client per node that never reconnects (ioredis gives node clients no
 * retry strategy: a dropped connection ends the client and a new one is made after the slot
 * map is re-read), so a WAIT on the client that carried the writes either confirms them or
 * fails. The key's primary is found by its slot (computed as ioredis routes it) in the
 * client's slot map. A single node's client does reconnect: a reconnect during the batch fails
 * the WAIT, since the new connection's WAIT would confirm nothing.
 */
function replicaWaitFor(client: RedisClient, settings: ReplicaWaitSettings): ReplicaWait {
  const base = { replicas: settings.replicas, timeoutMs: settings.timeoutMs };
  if (client instanceof Cluster) {
    const connections = new Map<Redis, PrimaryConnection>();
    return {
      ...base,
      primaryFor(key) {
        const slot = new Command("exists", [key]).getSlot();
        const nodeKey = client.slots[slot]?.[0];
        const node =
          nodeKey === undefined
            ? undefined
            : client.nodes("master").find((n) => nodeKeyOf(n) === nodeKey);
        if (node === undefined) {
          throw new NoPrimaryError(
            `no connection to the primary of slot ${slot} (${nodeKey ?? "not in the slot map"}) of ${key}: the slot map is re-read before the retry`,
          );
        }
        let connection = connections.get(node);
        if (connection === undefined) {
          connection = {
            name: nodeKeyOf(node),
            writer: node,
            wait: (replicas, timeoutMs) => node.wait(replicas, timeoutMs),
          };
          connections.set(node, connection);
        }
        return connection;
      },
    };
  }
  const closes = closeCounter(client);
  const closesBefore = closes.count;
  const name = nodeKeyOf(client);
  const connection: PrimaryConnection = {
    name,
    writer: client,
    async wait(replicas, timeoutMs) {
      const acknowledged = await client.wait(replicas, timeoutMs);
      if (closes.count !== closesBefore) {
        throw new Error(
          `the connection to ${name} was re-made during the batch, so its WAIT cannot confirm the writes sent before`,
        );
      }
      return acknowledged;
    },
  };
  return { ...base, primaryFor: () => connection };
}

function nodeKeyOf(node: Redis): string {
  return `${node.options.host}:${node.options.port}`;
}

/**
 * Waits (at most `budgetMs`) until a Cluster has its slot map, which routing to primaries
 * needs; a single node, or a Cluster that stays down, goes on and fails the batch as usual.
 */
async function clusterReady(client: RedisClient, budgetMs: number): Promise<void> {
  if (!(client instanceof Cluster) || client.status === "ready") return;
  await new Promise<void>((resolve) => {
    const done = () => {
      clearTimeout(timer);
      client.off("ready", done);
      resolve();
    };
    const timer = setTimeout(done, Math.max(0, budgetMs));
    client.once("ready", done);
  });
}

export function createConsumerHandler(
  env: Env,
  options: ConsumerHandlerOptions = {},
): ConsumerHandler {
  const logger = options.logger ?? new Logger({ serviceName: "sketchstream-consumer" });
  const metrics =
    options.metrics ?? new Metrics({ namespace: "sketchstream", serviceName: "consumer" });
  const now = options.now ?? Date.now;
  let runtime: ConsumerRuntime | undefined;

  const getRuntime = (): ConsumerRuntime => {
    if (!runtime) {
      // Throws ConfigError naming every bad variable: the first invocation fails loudly.
      const config = loadConsumerRuntimeConfig(env);
      const quarantine =
        "queueUrl" in config.quarantine
          ? new SqsQuarantineSink(new SQSClient({}), config.quarantine.queueUrl)
          : new FileQuarantineSink(config.quarantine.file);
      const zones: SiteZones = {
        // Read through whichever connection is current: it is remade after a timeout.
        registry: new ZoneRegistryCache({
          read: (sites) => {
            const redis = runtime?.redis;
            return redis
              ? redis.client.hmget(TIME_ZONES_KEY, ...sites)
              : Promise.reject(new Error("no Redis connection"));
          },
        }),
        // The days an accepted event can fall on: the daily retention back (plus the margin
        // EventParser.place decides without a calendar), and the one day of clock tolerance on.
        calendars: new ZoneCalendars({ pastDays: config.retention.days + 4, futureDays: 2 }),
      };
      runtime = { config, quarantine, zones };
    }
    return runtime;
  };

  const handler = async (
    event: KinesisStreamEvent,
    context?: Context,
  ): Promise<KinesisStreamBatchResponse> => {
    if (context) logger.addContext(context);
    metrics.captureColdStartMetric();
    const remaining = context?.getRemainingTimeInMillis() ?? DEFAULT_BUDGET_MS;
    const deadlineMs = now() + remaining - safetyMarginMs(remaining);
    const rt = getRuntime();
    rt.redis ??= connectRedis(rt.config.redis, options.redisDeps ?? awsRedisDeps(rt.config.redis));
    const records: StreamRecord[] = event.Records.map((r) => ({
      sequenceNumber: r.kinesis.sequenceNumber,
      partitionKey: r.kinesis.partitionKey,
      data: r.kinesis.data,
      eventSourceArn: r.eventSourceARN,
      eventId: r.eventID,
    }));
    const redis = rt.redis.client;
    rt.eventsRecordedFromStart ??= await freshInstall(redis);
    const { replicaWait } = rt.config;
    if (replicaWait !== undefined) await clusterReady(redis, deadlineMs - now());
    const result = await ingestBatch(
      records,
      {
        redis,
        quarantine: rt.quarantine,
        logger,
        metrics: {
          count(name, value, dimensions) {
            if (dimensions) {
              const single = metrics.singleMetric();
              for (const [k, dv] of Object.entries(dimensions)) single.addDimension(k, dv);
              single.addMetric(name, MetricUnit.Count, value);
            } else {
              metrics.addMetric(name, MetricUnit.Count, value);
            }
          },
        },
        now,
        beforeRetry: () => refreshSlots(redis),
        zones: rt.zones,
        ...(replicaWait === undefined ? {} : { replicaWait: replicaWaitFor(redis, replicaWait) }),
      },
      {
        retention: rt.config.retention,
        deadlineMs,
        ...(options.pfaddChunkSize ? { pfaddChunkSize: options.pfaddChunkSize } : {}),
        eventsRecordedFromStart: rt.eventsRecordedFromStart,
      },
    );
    if (result.timedOut) {
      // Commands still waiting on a stuck node must not linger into the next invocation.
      rt.redis.close();
      rt.redis = undefined;
    }
    // Disabled metrics (local runs, tests) store nothing, and publishing nothing only warns.
    if (metrics.hasStoredMetrics()) metrics.publishStoredMetrics();
    const first =
      result.firstFailedIndex === undefined ? undefined : records[result.firstFailedIndex];
    return { batchItemFailures: first ? [{ itemIdentifier: first.sequenceNumber }] : [] };
  };

  return Object.assign(handler, {
    close() {
      runtime?.redis?.close();
      if (runtime) runtime.redis = undefined;
    },
  });
}

export const handler = createConsumerHandler(process.env);
