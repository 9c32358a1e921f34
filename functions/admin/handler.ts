/**
 * Admin API Lambda, behind its own function URL with AWS_IAM auth, connecting to Redis as the
 * registry-writer ACL user: thin wiring of config, Redis and logs around the Hono app
 * (functions/admin/app.ts), like the read API's (functions/api/handler.ts). Every change to the
 * registry, and every step of a site's deletion, is logged with the IAM caller the function URL
 * reports.
 */

import { Logger } from "@aws-lambda-powertools/logger";
import type { Hono } from "hono";
import type { LambdaEvent } from "hono/aws-lambda";
import { awsRedisDeps } from "../adapters/aws.js";
import { onDemandConnection, type RedisClientDeps } from "../adapters/redis.js";
import { functionUrlHandler } from "../api/handler.js";
import { type Env, loadApiDeadlineMs, loadRuntimeConfig } from "../domain/runtime-env.js";
import { createAdminApp } from "./app.js";

export interface AdminRuntimeOptions {
  readonly logger?: Logger;
  /** The AWS edge of the Redis client; made from config by default. */
  readonly redisDeps?: RedisClientDeps;
  /** ms a site's deletion works per request (AdminDeps.deletionBudgetMs); half the deadline. */
  readonly deletionBudgetMs?: number;
}

export interface AdminRuntime {
  readonly app: Hono;
  /** Closes the Redis connection, if one was made. */
  close(): void;
}

/** The IAM principal of a function URL request with AWS_IAM auth, when the event names one. */
function callerOf(env: unknown): string | undefined {
  const event = (env as { event?: LambdaEvent } | undefined)?.event;
  if (event === undefined || !("requestContext" in event)) return undefined;
  const authorizer = (event.requestContext as { authorizer?: { iam?: { userArn?: string } } })
    .authorizer;
  return authorizer?.iam?.userArn;
}

/** The admin app over the runtime contract's environment (functions/domain/runtime-env.ts). */
export function createAdminRuntime(env: Env, options: AdminRuntimeOptions = {}): AdminRuntime {
  // Throws ConfigError naming every bad variable before any request is served.
  const config = loadRuntimeConfig(env);
  const deadlineMs = loadApiDeadlineMs(env);
  const logger = options.logger ?? new Logger({ serviceName: "sketchstream-admin" });
  const redis = onDemandConnection(config.redis, options.redisDeps ?? awsRedisDeps(config.redis), {
    connectTimeoutMs: Math.min(2000, deadlineMs),
  });
  const app = createAdminApp({
    redis,
    deadlineMs,
    ...(options.deletionBudgetMs === undefined
      ? {}
      : { deletionBudgetMs: options.deletionBudgetMs }),
    logError: (message, extra) => logger.error(message, extra),
    audit: (change, c) => {
      const caller = callerOf(c.env) ?? null;
      if ("deleted" in change) {
        // One line per step; the last (cursor null) says the site's data is gone.
        logger.info(change.cursor === null ? "site deleted" : "site deletion step", {
          ...change,
          caller,
        });
        return;
      }
      logger.info(change.timeZone === null ? "time zone removed" : "time zone set", {
        ...change,
        caller,
      });
    },
  });
  return { app, close: redis.reset };
}

/** The admin API's Lambda entry point, as the read API's. */
export const handler = functionUrlHandler(() => createAdminRuntime(process.env).app);
