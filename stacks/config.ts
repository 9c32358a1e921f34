/**
 * The one typed place for per-environment stack configuration. `loadConfig("dev")` returns the
 * validated config of an environment, optionally with overrides; every invalid value fails
 * synth with a message that names the field and what is allowed, all problems at once.
 *
 * Defaults aim at a cheap dev stack (small nodes, no replicas, on-demand Kinesis, no NAT
 * gateway) and a durable prod stack (3 AZs, replicas, longer snapshots and stream retention,
 * final snapshot and prevent_destroy on the data store). The README's configuration table
 * lists every field; stacks/config-schema.ts says what each accepts.
 */

import {
  checkConfig,
  DEFAULT_REGION,
  ENVIRONMENT_NAMES,
  type EnvironmentName,
} from "./config-schema.js";

export {
  DEFAULT_REGION,
  ENVIRONMENT_NAMES,
  type EnvironmentName,
  LOG_RETENTION_DAYS,
} from "./config-schema.js";

export type MemoryDbEngine = "valkey" | "redis";
export type Architecture = "arm64" | "x86_64";
export type StreamMode = "ON_DEMAND" | "PROVISIONED";
export type StateMachineLogLevel = "ALL" | "ERROR" | "FATAL" | "OFF";

export interface NetworkConfig {
  /** IPv4 CIDR of the VPC, /16 to /24. Each subnet is a quarter of it, /(prefix + 2): network.ts. */
  readonly vpcCidr: string;
  /** How many AZs get a private subnet (1-3). */
  readonly azCount: number;
  /**
   * AZ names (`us-east-1b`) or AZ IDs (`use1-az4`), one per subnet. Taken from config rather
   * than looked up, so plan needs no AWS call. Required outside eu-west-1: a letter names a
   * different physical zone in each account, and some zones cannot host the subnets; in
   * eu-west-1 it defaults to `eu-west-1a`, `-b`, `-c` cut to azCount.
   */
  readonly availabilityZones?: readonly string[];
}

export interface MemoryDbConfig {
  /** valkey (7.2+) or redis (7.0+): EXPIREAT … NX needs 7.0, IAM auth needs 7.0. */
  readonly engine: MemoryDbEngine;
  /** major.minor, e.g. "7.2" for valkey or "7.1" for redis. */
  readonly engineVersion: string;
  /** e.g. db.t4g.small, db.r7g.large. */
  readonly nodeType: string;
  readonly shards: number;
  readonly replicasPerShard: number;
  /** Days of automatic snapshots kept (0 turns them off; allowed only outside prod). */
  readonly snapshotRetentionDays: number;
  /** UTC hh:mm-hh:mm, at least 60 minutes, not overlapping the maintenance window. */
  readonly snapshotWindow: string;
  /** ddd:hh:mm-ddd:hh:mm UTC, at least 60 minutes. */
  readonly maintenanceWindow: string;
  readonly port: number;
  /** Take a final snapshot when the cluster is destroyed. */
  readonly finalSnapshot: boolean;
  /**
   * Terraform lifecycle prevent_destroy on the cluster and the KMS key (the cluster resource
   * has no deletion-protection argument, and snapshots are unreadable without the key).
   */
  readonly preventDestroy: boolean;
  readonly autoMinorVersionUpgrade: boolean;
}

export interface StreamConfig {
  readonly mode: StreamMode;
  /** Required for PROVISIONED, not allowed for ON_DEMAND. */
  readonly shardCount?: number;
  /** 24-8760 hours. */
  readonly retentionHours: number;
}

export interface ConsumerFunctionConfig {
  readonly memoryMb: number;
  readonly timeoutSeconds: number;
  readonly architecture: Architecture;
  readonly batchSize: number;
  readonly batchingWindowSeconds: number;
  readonly parallelizationFactor: number;
  /** Bounded: 0-10000 (Lambda's -1 "forever" is refused, a poison batch would block a shard). */
  readonly maximumRetryAttempts: number;
  /** Bounded: 60-604800 s, and shorter than the stream retention so a failure can be replayed. */
  readonly maximumRecordAgeSeconds: number;
  readonly reservedConcurrency?: number;
  readonly provisionedConcurrency?: number;
  /** X-Ray active tracing of the consumer (off by default: it runs on every batch). */
  readonly tracing: boolean;
}

export interface RollupFunctionConfig {
  /** EventBridge Scheduler expression: rate(…), cron(…) or at(…). */
  readonly scheduleExpression: string;
  readonly scheduleTimezone: string;
  readonly scheduleEnabled: boolean;
  readonly memoryMb: number;
  readonly timeoutSeconds: number;
  readonly architecture: Architecture;
  /** MaxConcurrency of the Map state that merges pages. */
  readonly mapMaxConcurrency: number;
  readonly logLevel: StateMachineLogLevel;
  readonly includeExecutionData: boolean;
}

export interface ApiFunctionConfig {
  readonly memoryMb: number;
  readonly timeoutSeconds: number;
  readonly architecture: Architecture;
  /**
   * How long a request waits for Redis before answering 503 with Retry-After
   * (API_REDIS_DEADLINE_MS): at most half the timeout, so the answer is a 503, not a timeout.
   */
  readonly redisDeadlineMs: number;
}

export interface RetentionConfig {
  readonly days: number;
  readonly weeks: number;
  readonly months: number;
}

export interface AccessConfig {
  /** The operator instance behind an EC2 Instance Connect Endpoint, with redis-cli. */
  readonly enabled: boolean;
  readonly instanceType: string;
  readonly architecture: Architecture;
}

export interface AlarmConfig {
  /** Subscribed to the alarm topic when set (the address must confirm the subscription). */
  readonly email?: string;
  /** Consumer IteratorAge maximum, in milliseconds, that raises the alarm. */
  readonly iteratorAgeMs: number;
  /** Quarantined records visible in the queue that raise the alarm. */
  readonly quarantineDepth: number;
  /** MemoryDB DatabaseMemoryUsagePercentage that raises the alarm. */
  readonly memoryUsagePercent: number;
}

export interface BudgetConfig {
  /**
   * A monthly AWS Budgets cost budget of this much USD, notifying the alarm topic at 80% and
   * 100% of actual spend and at 100% forecast (stacks/budget.ts); unset: no budget. The defaults
   * are the capacity planner's estimate for each environment's config at the load it is sized
   * for (`npm run cli -- capacity`; test/infra/budget.test.ts keeps them in step). A budget
   * counts the whole account's costs, not only this stack's.
   */
  readonly monthlyUsd?: number;
}

export interface SketchstreamConfig {
  readonly environment: EnvironmentName;
  readonly region: string;
  /** Prefix of every resource name; also the stack name. */
  readonly namePrefix: string;
  readonly tags: Readonly<Record<string, string>>;
  /**
   * The target account. When set, the provider refuses any other account and no
   * aws_caller_identity look-up is made; when absent, the account id is read at plan time.
   */
  readonly accountId?: string;
  readonly network: NetworkConfig;
  readonly memorydb: MemoryDbConfig;
  readonly stream: StreamConfig;
  readonly consumer: ConsumerFunctionConfig;
  readonly rollup: RollupFunctionConfig;
  /**
   * The read and admin APIs' functions (stacks/api.ts): both are small HTTP apps doing a few
   * Redis round trips a request, so they share one sizing.
   */
  readonly api: ApiFunctionConfig;
  readonly retention: RetentionConfig;
  /** CloudWatch Logs retention of every log group, in days (one of LOG_RETENTION_DAYS). */
  readonly logRetentionDays: number;
  readonly access: AccessConfig;
  readonly alarms: AlarmConfig;
  readonly budget: BudgetConfig;
}

/**
 * Monthly budgets, USD: the planner's cost of each config at the load it is sized for, rounded up
 * to $10 (cli/capacity.ts deploymentBudget). The stack cannot import the CLI, so the answers are
 * written here and test/infra/budget.test.ts fails, with the new figure, when they drift.
 */
const DEV_BUDGET_USD = 100;
const PROD_BUDGET_USD = 960;

const DEV: SketchstreamConfig = {
  environment: "dev",
  region: DEFAULT_REGION,
  namePrefix: "sketchstream-dev",
  tags: { Environment: "dev" },
  network: { vpcCidr: "10.40.0.0/16", azCount: 2 },
  memorydb: {
    engine: "valkey",
    engineVersion: "7.2",
    nodeType: "db.t4g.small",
    shards: 1,
    // MemoryDB keeps a Multi-AZ transaction log, so a dev cluster without replicas still
    // loses no acknowledged write; it is only unavailable while a node is replaced.
    replicasPerShard: 0,
    snapshotRetentionDays: 1,
    snapshotWindow: "03:00-04:00",
    maintenanceWindow: "sun:05:00-sun:06:00",
    port: 6379,
    finalSnapshot: false,
    preventDestroy: false,
    autoMinorVersionUpgrade: true,
  },
  stream: { mode: "ON_DEMAND", retentionHours: 24 },
  consumer: {
    memoryMb: 1024,
    timeoutSeconds: 120,
    architecture: "arm64",
    batchSize: 1000,
    batchingWindowSeconds: 1,
    parallelizationFactor: 1,
    maximumRetryAttempts: 10,
    maximumRecordAgeSeconds: 6 * 3600,
    tracing: false,
  },
  rollup: {
    scheduleExpression: "rate(1 hour)",
    scheduleTimezone: "UTC",
    scheduleEnabled: true,
    memoryMb: 512,
    timeoutSeconds: 300,
    architecture: "arm64",
    mapMaxConcurrency: 4,
    logLevel: "ALL",
    includeExecutionData: true,
  },
  // A request is a few Redis round trips: a small function, and a timeout that ends a stuck
  // request long before a caller would give up.
  api: { memoryMb: 256, timeoutSeconds: 10, architecture: "arm64", redisDeadlineMs: 3000 },
  retention: { days: 62, weeks: 104, months: 36 },
  logRetentionDays: 14,
  // 1 GiB: dnf on AL2023 can be killed for memory on 512 MiB (t4g.nano); see access.ts.
  access: { enabled: true, instanceType: "t4g.micro", architecture: "arm64" },
  alarms: { iteratorAgeMs: 5 * 60_000, quarantineDepth: 100, memoryUsagePercent: 80 },
  // The capacity planner's monthly estimate for this config (test/infra/budget.test.ts).
  budget: { monthlyUsd: DEV_BUDGET_USD },
};

const PROD: SketchstreamConfig = {
  ...DEV,
  environment: "prod",
  namePrefix: "sketchstream-prod",
  tags: { Environment: "prod" },
  network: { vpcCidr: "10.41.0.0/16", azCount: 3 },
  memorydb: {
    ...DEV.memorydb,
    nodeType: "db.r7g.large",
    shards: 2,
    replicasPerShard: 1,
    snapshotRetentionDays: 7,
    finalSnapshot: true,
    preventDestroy: true,
  },
  // Seven days of stream retention leave a week to replay what the failure queue reports.
  stream: { mode: "ON_DEMAND", retentionHours: 168 },
  consumer: {
    ...DEV.consumer,
    parallelizationFactor: 2,
    maximumRecordAgeSeconds: 24 * 3600,
  },
  rollup: { ...DEV.rollup, mapMaxConcurrency: 8, logLevel: "ERROR", includeExecutionData: false },
  logRetentionDays: 90,
  budget: { monthlyUsd: PROD_BUDGET_USD },
};

export const ENVIRONMENTS: Readonly<Record<EnvironmentName, SketchstreamConfig>> = {
  dev: DEV,
  prod: PROD,
};

export class StackConfigError extends Error {
  override name = "StackConfigError";
  constructor(
    readonly environment: string,
    readonly problems: readonly string[],
  ) {
    super(
      `invalid stack configuration for "${environment}" (stacks/config.ts):\n  - ${problems.join("\n  - ")}`,
    );
  }
}

/** Partial at every level, for overrides of an environment's defaults. */
export type ConfigOverrides = {
  readonly [K in keyof SketchstreamConfig]?: SketchstreamConfig[K] extends object
    ? SketchstreamConfig[K] extends readonly unknown[]
      ? SketchstreamConfig[K]
      : Partial<SketchstreamConfig[K]>
    : SketchstreamConfig[K];
};

/** The validated config of an environment, with overrides applied one level deep. */
export function loadConfig(name: string, overrides: ConfigOverrides = {}): SketchstreamConfig {
  const environment = ENVIRONMENT_NAMES.find((known) => known === name);
  if (environment === undefined) {
    throw new StackConfigError(name, [
      `environment "${name}" is unknown; allowed: ${ENVIRONMENT_NAMES.join(", ")}`,
    ]);
  }
  const base = new Map<string, unknown>(Object.entries(ENVIRONMENTS[environment]));
  const merged: Record<string, unknown> = Object.fromEntries(base);
  for (const [key, value] of Object.entries(overrides)) {
    const current = base.get(key);
    merged[key] =
      isPlainObject(current) && isPlainObject(value) && key !== "tags"
        ? { ...current, ...value }
        : value;
  }
  const checked = checkConfig(merged);
  if (checked.config === undefined) throw new StackConfigError(name, checked.problems);
  return checked.config;
}

/** Every problem of a config, each naming its field and the allowed values; [] when valid. */
export function validateConfig(config: unknown): readonly string[] {
  return checkConfig(config).problems;
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** The AZ names or IDs a config uses (the default letters only in the default region). */
export function availabilityZones(config: SketchstreamConfig): readonly string[] {
  return (
    config.network.availabilityZones ??
    ["a", "b", "c"].slice(0, config.network.azCount).map((s) => `${config.region}${s}`)
  );
}

/** Parameter group family of an engine version, e.g. memorydb_valkey7. */
export function parameterGroupFamily(engine: MemoryDbEngine, version: string): string {
  return `memorydb_${engine}${version.split(".")[0]}`;
}
