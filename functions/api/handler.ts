/**
 * Read API Lambda, behind a function URL with AWS_IAM auth: thin wiring of config, Redis and
 * logs around the Hono app (functions/api/app.ts). The same wiring serves the app on Node for
 * `npm run cli -- api` and the dashboard. The Redis connection is made on the first request
 * and kept while the environment stays warm; a missed deadline drops it, so nothing stays
 * queued behind an unreachable node. So are the zones' calendars (the app's ZoneCalendars):
 * each zone's is built on its first request and then about once a week.
 */

import { Logger } from "@aws-lambda-powertools/logger";
import type { APIGatewayProxyResultV2, Context } from "aws-lambda";
import type { Hono } from "hono";
import { handle, type LambdaEvent } from "hono/aws-lambda";
import { awsRedisDeps } from "../adapters/aws.js";
import { onDemandConnection, type RedisClientDeps } from "../adapters/redis.js";
import { type Env, loadApiDeadlineMs, loadRuntimeConfig } from "../domain/runtime-env.js";
import { createApiApp } from "./app.js";

export interface ApiRuntimeOptions {
  readonly logger?: Logger;
  /** The clock (today, retention). Default Date.now. */
  readonly now?: () => number;
  /** The AWS edge of the Redis client; made from config by default. */
  readonly redisDeps?: RedisClientDeps;
}

export interface ApiRuntime {
  readonly app: Hono;
  /** Closes the Redis connection, if one was made. */
  close(): void;
}

/** The read app over the runtime contract's environment (functions/domain/runtime-env.ts). */
export function createApiRuntime(env: Env, options: ApiRuntimeOptions = {}): ApiRuntime {
  // Throws ConfigError naming every bad variable before any request is served.
  const config = loadRuntimeConfig(env);
  const deadlineMs = loadApiDeadlineMs(env);
  const logger = options.logger ?? new Logger({ serviceName: "sketchstream-api" });
  const redis = onDemandConnection(config.redis, options.redisDeps ?? awsRedisDeps(config.redis), {
    connectTimeoutMs: Math.min(2000, deadlineMs),
  });
  const app = createApiApp({
    redis,
    retentionDays: config.retention.days,
    deadlineMs,
    ...(options.now ? { now: options.now } : {}),
    logError: (message, extra) => logger.error(message, extra),
    logWarning: (message, extra) => logger.warn(message, extra),
  });
  return { app, close: redis.reset };
}

/** A Lambda entry point for function URL events (payload format 2.0). */
export type FunctionUrlHandler = (
  event: LambdaEvent,
  context: Context,
) => Promise<APIGatewayProxyResultV2>;

/**
 * The entry point of an app behind a function URL: the app is made (from the environment) on
 * the first event and kept while the execution environment stays warm. `hono/aws-lambda` is
 * marked to move to its own package in Hono 5; it is the adapter Hono 4 ships.
 */
export function functionUrlHandler(makeApp: () => Hono): FunctionUrlHandler {
  let lambda: FunctionUrlHandler | undefined;
  return (event, context) => {
    lambda ??= handle(makeApp()) as FunctionUrlHandler;
    return lambda(event, context);
  };
}

/** The read API's Lambda entry point. */
export const handler = functionUrlHandler(() => createApiRuntime(process.env).app);
