/**
 * Rollup Lambdas, one bundle with three entry points the state machine calls: `plan`, `merge`
 * (one page per invocation, inside the Map) and `finish`. Thin wiring of config, Redis and
 * logs around functions/rollup/rollup.ts; the connection is reused while warm.
 */

import { Logger } from "@aws-lambda-powertools/logger";
import type { Context } from "aws-lambda";
import { awsRedisDeps } from "../adapters/aws.js";
import { connectRedis, type RedisClientDeps, type RedisConnection } from "../adapters/redis.js";
import { type Env, loadRuntimeConfig, type RuntimeConfig } from "../domain/runtime-env.js";
import { FinishInputSchema, MergeInputSchema, PlanInputSchema, taskEvent } from "./input.js";
import {
  finishRollup,
  type MergeOutput,
  mergePage,
  type PlanOutput,
  planRollup,
  type RollupOutput,
  type RollupRedis,
  type RollupSettings,
} from "./rollup.js";

export interface RollupHandlerOptions {
  readonly logger?: Logger;
  /** Wraps the Redis client, e.g. to inject faults in tests. */
  readonly wrapRedis?: (redis: RollupRedis) => RollupRedis;
  readonly now?: () => number;
  readonly settings?: Partial<Omit<RollupSettings, "retention">>;
  /** The AWS edge of the Redis client (credentials, Secrets Manager); made from config by default. */
  readonly redisDeps?: RedisClientDeps;
}

/** The three task handlers; each checks its event (JSON from Step Functions) first. */
export interface RollupHandlers {
  plan(event: unknown, context?: Context): Promise<PlanOutput>;
  merge(event: unknown, context?: Context): Promise<MergeOutput>;
  finish(event: unknown, context?: Context): Promise<RollupOutput>;
  close(): void;
}

export function createRollupHandlers(env: Env, options: RollupHandlerOptions = {}): RollupHandlers {
  const logger = options.logger ?? new Logger({ serviceName: "sketchstream-rollup" });
  const now = options.now ?? Date.now;
  let config: RuntimeConfig | undefined;
  let connection: RedisConnection | undefined;

  /** Log lines of this invocation carry its request id and cold-start flag. */
  const invocation = (context: Context | undefined) => {
    if (context) logger.addContext(context);
  };

  const redis = async (): Promise<{ client: RollupRedis; settings: RollupSettings }> => {
    config ??= loadRuntimeConfig(env);
    connection ??= connectRedis(config.redis, options.redisDeps ?? awsRedisDeps(config.redis));
    const client: RollupRedis = connection.client;
    return {
      client: options.wrapRedis ? options.wrapRedis(client) : client,
      settings: { retention: config.retention, ...options.settings },
    };
  };

  return {
    async plan(raw, context) {
      invocation(context);
      const event = taskEvent("Plan", PlanInputSchema, raw);
      const { client, settings } = await redis();
      const out = await planRollup(client, settings, event);
      logger.info("rollup planned", {
        executionId: event.executionId,
        ...(out.status === "ready" ? out.plan : out),
      });
      return out;
    },
    async merge(raw, context) {
      invocation(context);
      const event = taskEvent("MergePage", MergeInputSchema, raw);
      const { client, settings } = await redis();
      const out = await mergePage(client, settings, event);
      logger.info("rollup page merged", { executionId: event.plan.executionId, ...out });
      return out;
    },
    async finish(raw, context) {
      invocation(context);
      const event = taskEvent("Finish", FinishInputSchema, raw);
      const { client } = await redis();
      const out = await finishRollup(client, event, now());
      logger.info("rollup finished", { ...out, periods: undefined });
      return out;
    },
    close() {
      connection?.close();
      connection = undefined;
    },
  };
}

const handlers = createRollupHandlers(process.env);
export const plan = handlers.plan;
export const merge = handlers.merge;
export const finish = handlers.finish;
