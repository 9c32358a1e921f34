/**
 * Rollup Lambdas, one bundle with three entry points the state machine calls: `plan`, `merge`
 * (one page per invocation, inside the Map) and `finish`. Thin wiring of config, Redis, logs
 * and metrics around functions/rollup/rollup.ts; the connection, the copy of the zone registry
 * and the zones' calendars are kept while warm.
 */

import { Logger } from "@aws-lambda-powertools/logger";
import { Metrics, MetricUnit } from "@aws-lambda-powertools/metrics";
import type { Context } from "aws-lambda";
import { awsRedisDeps } from "../adapters/aws.js";
import { connectRedis, type RedisClientDeps, type RedisConnection } from "../adapters/redis.js";
import { messageOf } from "../domain/errors.js";
import { LOCK_KEY, TIME_ZONES_KEY } from "../domain/keys.js";
import { type Env, loadRuntimeConfig, type RuntimeConfig } from "../domain/runtime-env.js";
import { ZoneCalendars } from "../domain/time-zones.js";
import { type ZoneLoad, ZoneRegistryCache } from "../domain/zone-registry.js";
import {
  FinishInputSchema,
  MergeInputSchema,
  PlanInputSchema,
  RollupInputError,
  taskEvent,
} from "./input.js";
import {
  finishRollup,
  type MergeOutput,
  mergePage,
  type PlanOutput,
  planRollup,
  RollupLockLostError,
  type RollupOutput,
  type RollupRedis,
  type RollupSettings,
  type RollupZones,
} from "./rollup.js";

/**
 * The metric counted when a page could not learn its sites' zones (the registry could not be
 * read, or an entry is not a valid zone): the page merged with each site's last good zone (UTC
 * if none), so week and month keys may have a deadline a few hours off. An alarm watches it.
 */
export const TIME_ZONE_LOAD_FAILURES = "TimeZoneLoadFailures";

/** Which step failed: the name Step Functions shows as the execution's error. */
const STEP_ERROR_NAMES = {
  plan: "RollupPlanError",
  page: "RollupPageError",
  finish: "RollupFinishError",
} as const;

/**
 * A step that failed for a passing reason (Redis down, failing over, timing out): its message
 * says which step, what Redis answered, what is kept and what to do. Input errors and a lost
 * lock keep their own names: the state machine matches them to skip retries.
 */
export class RollupStepError extends Error {
  constructor(
    readonly step: keyof typeof STEP_ERROR_NAMES,
    message: string,
    options?: ErrorOptions,
  ) {
    super(message, options);
    this.name = STEP_ERROR_NAMES[step];
  }
}

/** What an operator reading a failed execution should know about the usual cause. */
const FAILOVER_HINT =
  'Redis errors such as CLUSTERDOWN, "Connection is closed", "Too many Cluster redirections" or a timeout come from a node that is down or failing over (aws memorydb describe-events) and pass once its replica has taken over; `npm run cli -- rollup --wait` starts a run now.';

/** `err` as the step's error: kept when the state machine matches its name, framed otherwise. */
function stepFailure(
  step: keyof typeof STEP_ERROR_NAMES,
  what: string,
  kept: string,
  err: unknown,
): Error {
  if (err instanceof RollupInputError || err instanceof RollupLockLostError) return err;
  const reason = messageOf(err).replace(/\.+$/, "");
  return new RollupStepError(step, `${what}: ${reason}. ${kept} ${FAILOVER_HINT}`, {
    cause: err,
  });
}

export interface RollupHandlerOptions {
  readonly logger?: Logger;
  /** Wraps the Redis client, e.g. to inject faults in tests. */
  readonly wrapRedis?: (redis: RollupRedis) => RollupRedis;
  readonly now?: () => number;
  readonly settings?: Partial<Omit<RollupSettings, "retention">>;
  /** The AWS edge of the Redis client (credentials, Secrets Manager); made from config by default. */
  readonly redisDeps?: RedisClientDeps;
  /** Where TimeZoneLoadFailures is counted (EMF on stdout). Default namespace sketchstream. */
  readonly metrics?: Metrics;
  /**
   * The warm container's copy of the zone registry. Default: one that reads
   * `sketchstream:{config}:time-zones` with HMGET on this handler's Redis connection.
   */
  readonly zoneRegistry?: ZoneRegistryCache;
  /** The zones' calendars (week and month expiry). Default: one set per handler. */
  readonly zoneCalendars?: ZoneCalendars;
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
  const metrics =
    options.metrics ?? new Metrics({ namespace: "sketchstream", serviceName: "rollup" });
  const now = options.now ?? Date.now;
  let config: RuntimeConfig | undefined;
  let connection: RedisConnection | undefined;
  /** The client the last invocation used, which the default zone registry reads through. */
  let current: RollupRedis | undefined;
  const zoneRegistry =
    options.zoneRegistry ??
    new ZoneRegistryCache({
      read: (sites) => {
        if (!current) return Promise.reject(new Error("no Redis connection yet"));
        return current.hmget(TIME_ZONES_KEY, ...sites);
      },
    });
  // Expiry dates lie months ahead, which a calendar computes on first use whatever its span:
  // the span around now only has to be valid.
  const zoneCalendars = options.zoneCalendars ?? new ZoneCalendars({ pastDays: 1, futureDays: 1 });

  /** Log lines of this invocation carry its request id and cold-start flag. */
  const invocation = (context: Context | undefined) => {
    if (context) logger.addContext(context);
  };

  const redis = async (): Promise<{ client: RollupRedis; settings: RollupSettings }> => {
    config ??= loadRuntimeConfig(env);
    connection ??= connectRedis(config.redis, options.redisDeps ?? awsRedisDeps(config.redis));
    const client: RollupRedis = connection.client;
    current = options.wrapRedis ? options.wrapRedis(client) : client;
    return { client: current, settings: { retention: config.retention, ...options.settings } };
  };

  /** The page's sites keep their last good zone; say so in the log and in the metric. */
  const zoneProblem = (executionId: string, page: number) => (load: ZoneLoad) => {
    logger.warn(
      "time zones of some sites could not be loaded: their week and month keys expire by their last good zone (UTC if none) until the registry answers",
      {
        executionId,
        page,
        ...(load.failure !== undefined ? { failure: load.failure } : {}),
        ...(load.invalid.length > 0
          ? {
              invalid: load.invalid.map((bad) => ({
                ...bad,
                fix: `npm run cli -- site --site ${bad.site} --time-zone <zone>`,
              })),
            }
          : {}),
      },
    );
    const failures = (load.failure !== undefined ? 1 : 0) + load.invalid.length;
    metrics.addMetric(TIME_ZONE_LOAD_FAILURES, MetricUnit.Count, failures);
  };

  return {
    async plan(raw, context) {
      invocation(context);
      const event = taskEvent("Plan", PlanInputSchema, raw);
      const { client, settings } = await redis();
      const out = await planRollup(client, settings, event).catch((err: unknown) => {
        throw stepFailure(
          "plan",
          `execution ${event.executionId} could not plan the rollup`,
          "Nothing was merged and nothing touched is lost: the touched and pending sets stay for the next run.",
          err,
        );
      });
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
      const zones: RollupZones = {
        registry: zoneRegistry,
        calendars: zoneCalendars,
        now,
        onProblem: zoneProblem(event.plan.executionId, event.page),
      };
      try {
        const out = await mergePage(client, settings, event, zones);
        logger.info("rollup page merged", { executionId: event.plan.executionId, ...out });
        return out;
      } catch (err) {
        throw stepFailure(
          "page",
          `page ${event.page} of execution ${event.plan.executionId} could not be merged`,
          "Its work stays pending (merges are idempotent): the state machine retries the page, and if the execution fails it frees the lock and the next run merges the page.",
          err,
        );
      } finally {
        // Disabled metrics (local runs, tests) store nothing, and publishing nothing only warns.
        if (metrics.hasStoredMetrics()) metrics.publishStoredMetrics();
      }
    },
    async finish(raw, context) {
      invocation(context);
      const event = taskEvent("Finish", FinishInputSchema, raw);
      const { client } = await redis();
      const execution = event.plan?.executionId ?? event.executionId ?? "(unknown)";
      const out = await finishRollup(client, event, now()).catch((err: unknown) => {
        throw event.outcome === "succeeded"
          ? stepFailure(
              "finish",
              `execution ${execution} merged every page but could not finish`,
              "The pending set stays, so the next run merges it again (merges are idempotent).",
              err,
            )
          : stepFailure(
              "finish",
              `execution ${execution} failed and could not free the rollup lock`,
              `The lock (${LOCK_KEY}) ends with its 15-minute lease; until then new executions wait for it. If no execution is running, \`redis-cli -c DEL '${LOCK_KEY}'\` frees it now.`,
              err,
            );
      });
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
