/**
 * Kinesis consumer Lambda: thin wiring of config, Redis, quarantine sink, logs and metrics
 * around `ingestBatch`. The Redis connection is made on the first invocation and reused while
 * the execution environment stays warm; it is dropped after a timeout so nothing stays queued.
 */

import { Logger } from "@aws-lambda-powertools/logger";
import { Metrics, MetricUnit } from "@aws-lambda-powertools/metrics";
import { SQSClient } from "@aws-sdk/client-sqs";
import type { Context, KinesisStreamBatchResponse, KinesisStreamEvent } from "aws-lambda";
import { awsRedisDeps } from "../adapters/aws.js";
import { FileQuarantineSink, SqsQuarantineSink } from "../adapters/quarantine.js";
import { connectRedis, type RedisConnection } from "../adapters/redis.js";
import type { QuarantineSink } from "../domain/quarantine.js";
import {
  type ConsumerRuntimeConfig,
  type Env,
  loadConsumerRuntimeConfig,
} from "../domain/runtime-env.js";
import { ingestBatch, type StreamRecord } from "./ingest.js";

/** Time kept back from the invocation's remaining time to report failures before being killed. */
export function safetyMarginMs(remainingMs: number): number {
  return Math.min(10_000, Math.max(500, Math.floor(remainingMs * 0.2)));
}

/** Used when the handler is called without a Lambda context (local runs, tests). */
const DEFAULT_BUDGET_MS = 60_000;

interface ConsumerRuntime {
  readonly config: ConsumerRuntimeConfig;
  readonly quarantine: QuarantineSink;
  redis?: RedisConnection;
}

export interface ConsumerHandlerOptions {
  readonly logger?: Logger;
  readonly metrics?: Metrics;
  readonly now?: () => number;
  /** Most ids per PFADD; see IngestOptions. */
  readonly pfaddChunkSize?: number;
}

export type ConsumerHandler = ((
  event: KinesisStreamEvent,
  context?: Pick<Context, "getRemainingTimeInMillis">,
) => Promise<KinesisStreamBatchResponse>) & {
  /** Closes the Redis connection (tests and the local runtime call it when done). */
  close(): void;
};

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
      runtime = { config, quarantine };
    }
    return runtime;
  };

  const handler = async (
    event: KinesisStreamEvent,
    context?: Pick<Context, "getRemainingTimeInMillis">,
  ): Promise<KinesisStreamBatchResponse> => {
    const remaining = context?.getRemainingTimeInMillis() ?? DEFAULT_BUDGET_MS;
    const deadlineMs = now() + remaining - safetyMarginMs(remaining);
    const rt = getRuntime();
    if (!rt.redis) rt.redis = await connectRedis(rt.config.redis, awsRedisDeps(rt.config.redis));
    await rt.redis.refreshAuth();
    const records: StreamRecord[] = event.Records.map((r) => ({
      sequenceNumber: r.kinesis.sequenceNumber,
      partitionKey: r.kinesis.partitionKey,
      data: r.kinesis.data,
      eventSourceArn: r.eventSourceARN,
      eventId: r.eventID,
    }));
    const result = await ingestBatch(
      records,
      {
        redis: rt.redis.client,
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
      },
      {
        retention: rt.config.retention,
        deadlineMs,
        ...(options.pfaddChunkSize ? { pfaddChunkSize: options.pfaddChunkSize } : {}),
      },
    );
    if (result.timedOut) {
      // Commands still waiting on a stuck node must not linger into the next invocation.
      rt.redis.close();
      rt.redis = undefined;
    }
    // Disabled metrics (local runs, tests) store nothing, and publishing nothing only warns.
    if (metrics.hasStoredMetrics()) metrics.publishStoredMetrics();
    if (result.firstFailedIndex === undefined) return { batchItemFailures: [] };
    const first = records[result.firstFailedIndex] as StreamRecord;
    return { batchItemFailures: [{ itemIdentifier: first.sequenceNumber }] };
  };

  return Object.assign(handler, {
    close() {
      runtime?.redis?.close();
      if (runtime) runtime.redis = undefined;
    },
  });
}

export const handler = createConsumerHandler(process.env);
