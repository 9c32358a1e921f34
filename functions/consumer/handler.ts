/**
 * Kinesis consumer Lambda: thin wiring of config, Redis, quarantine sink, logs and metrics
 * around `ingestBatch`. The Redis connection is made on the first invocation and reused while
 * the execution environment stays warm (each of its connections authenticates with a fresh
 * credential); it is dropped after a timeout so nothing stays queued. Log lines carry the
 * invocation's request id and cold-start flag; a cold start is counted as a metric.
 */

import { Logger } from "@aws-lambda-powertools/logger";
import { Metrics, MetricUnit } from "@aws-lambda-powertools/metrics";
import { SQSClient } from "@aws-sdk/client-sqs";
import type { Context, KinesisStreamBatchResponse, KinesisStreamEvent } from "aws-lambda";
import { Cluster } from "ioredis";
import { awsRedisDeps } from "../adapters/aws.js";
import { FileQuarantineSink, SqsQuarantineSink } from "../adapters/quarantine.js";
import {
  connectRedis,
  type RedisClient,
  type RedisClientDeps,
  type RedisConnection,
} from "../adapters/redis.js";
import { SITES_KEY, TIME_ZONES_KEY } from "../domain/keys.js";
import type { QuarantineSink } from "../domain/quarantine.js";
import {
  type ConsumerRuntimeConfig,
  type Env,
  loadConsumerRuntimeConfig,
} from "../domain/runtime-env.js";
import { ZoneCalendars } from "../domain/time-zones.js";
import { ZoneRegistryCache } from "../domain/zone-registry.js";
import { ingestBatch, type SiteZones, type StreamRecord } from "./ingest.js";

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
 * (an older deployment gaining the `ev:` keys), days before now stay "not recorded". When the
 * question cannot be answered, the cautious answer: not from the start.
 */
async function freshInstall(redis: RedisClient): Promise<boolean> {
  try {
    return (await redis.exists(SITES_KEY)) === 0;
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
