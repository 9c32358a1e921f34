/**
 * The one typed place for per-environment stack configuration. `loadConfig("dev")` returns the
 * validated config of an environment, optionally with overrides; every invalid value fails
 * synth with a message that names the field and what is allowed, all problems at once.
 *
 * Defaults aim at a cheap dev stack (small nodes, no replicas, on-demand Kinesis, no NAT
 * gateway) and a durable prod stack (3 AZs, replicas, longer snapshots and stream retention,
 * final snapshot and prevent_destroy on the data store). docs/deploy.md has the table.
 */

export type EnvironmentName = "dev" | "prod";
export const ENVIRONMENT_NAMES: readonly EnvironmentName[] = ["dev", "prod"];

export type MemoryDbEngine = "valkey" | "redis";
export type Architecture = "arm64" | "x86_64";
export type StreamMode = "ON_DEMAND" | "PROVISIONED";
export type StateMachineLogLevel = "ALL" | "ERROR" | "FATAL" | "OFF";

export interface NetworkConfig {
  /** IPv4 CIDR of the VPC, /16 to /24. Subnets are carved as /(prefix + 4)... see network.ts. */
  readonly vpcCidr: string;
  /** How many AZs get a private subnet (1-3). */
  readonly azCount: number;
  /**
   * AZ names, one per subnet. Taken from config rather than looked up, so plan needs no AWS
   * call; defaults to `<region>a`, `<region>b`, `<region>c` cut to azCount.
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

export interface ConsumerConfig {
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

export interface RollupConfig {
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
  readonly consumer: ConsumerConfig;
  readonly rollup: RollupConfig;
  readonly retention: RetentionConfig;
  /** CloudWatch Logs retention of every log group, in days (one of LOG_RETENTION_DAYS). */
  readonly logRetentionDays: number;
  readonly access: AccessConfig;
  readonly alarms: AlarmConfig;
}

/** The values CloudWatch Logs accepts for retention_in_days. */
export const LOG_RETENTION_DAYS = [
  1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288,
  3653,
] as const;

const DEV: SketchstreamConfig = {
  environment: "dev",
  region: "eu-west-1",
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
  retention: { days: 62, weeks: 104, months: 36 },
  logRetentionDays: 14,
  access: { enabled: true, instanceType: "t4g.nano", architecture: "arm64" },
  alarms: { iteratorAgeMs: 5 * 60_000, quarantineDepth: 100, memoryUsagePercent: 80 },
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
  if (!(ENVIRONMENT_NAMES as readonly string[]).includes(name)) {
    throw new StackConfigError(name, [
      `environment "${name}" is unknown; allowed: ${ENVIRONMENT_NAMES.join(", ")}`,
    ]);
  }
  const base = ENVIRONMENTS[name as EnvironmentName];
  const merged: Record<string, unknown> = { ...base };
  for (const [key, value] of Object.entries(overrides)) {
    const current = (base as unknown as Record<string, unknown>)[key];
    merged[key] =
      isPlainObject(current) && isPlainObject(value) && key !== "tags"
        ? { ...current, ...value }
        : value;
  }
  const config = merged as unknown as SketchstreamConfig;
  const problems = validateConfig(config);
  if (problems.length > 0) throw new StackConfigError(name, problems);
  return config;
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** The AZ names a config uses. */
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

// ---------------------------------------------------------------------------------------------

/** Collects every problem with its field path, so one synth reports them all. */
class Checker {
  readonly problems: string[] = [];

  fail(field: string, value: unknown, allowed: string): void {
    this.problems.push(`${field}: ${JSON.stringify(value)} is not allowed; allowed: ${allowed}`);
  }

  int(field: string, value: unknown, min: number, max: number): void {
    if (typeof value !== "number" || !Number.isInteger(value) || value < min || value > max) {
      this.fail(field, value, `a whole number from ${min} to ${max}`);
    }
  }

  oneOf<T>(field: string, value: unknown, allowed: readonly T[]): void {
    if (!allowed.includes(value as T)) this.fail(field, value, allowed.join(", "));
  }

  match(field: string, value: unknown, re: RegExp, allowed: string): void {
    if (typeof value !== "string" || !re.test(value)) this.fail(field, value, allowed);
  }

  bool(field: string, value: unknown): void {
    if (typeof value !== "boolean") this.fail(field, value, "true, false");
  }
}

const ARCHITECTURES: readonly Architecture[] = ["arm64", "x86_64"];
/** Commercial-partition regions only: ARNs and service principals assume the "aws" partition. */
const REGION_RE = /^(us|eu|ap|sa|ca|me|af|il|mx)-[a-z]+-\d$/;
const NAME_PREFIX_RE = /^[a-z](?!.*--)[a-z0-9-]{1,22}[a-z0-9]$/;
const DAY = "(mon|tue|wed|thu|fri|sat|sun)";
const HHMM = "([01]\\d|2[0-3]):[0-5]\\d";
const SNAPSHOT_WINDOW_RE = new RegExp(`^${HHMM}-${HHMM}$`);
const MAINTENANCE_WINDOW_RE = new RegExp(`^${DAY}:${HHMM}-${DAY}:${HHMM}$`);
const SCHEDULE_RE =
  /^(rate\(\d+ (minute|minutes|hour|hours|day|days)\)|cron\([^()]+\)|at\(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\))$/;

function cidrPrefix(cidr: string): number | undefined {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})\/(\d{1,2})$/.exec(cidr);
  if (!m) return undefined;
  const octets = m.slice(1, 5).map(Number);
  if (octets.some((o) => o > 255)) return undefined;
  const prefix = Number(m[5]);
  // The address must be the network address of its prefix.
  const addr = octets.reduce((acc, o) => acc * 256 + o, 0);
  const size = 2 ** (32 - prefix);
  return addr % size === 0 ? prefix : undefined;
}

/** Minutes since the start of the week of a maintenance window bound, e.g. "sun:05:00". */
function windowMinutes(spec: string): [number, number] | undefined {
  const parts = spec.split("-");
  const toMin = (s: string | undefined, withDay: boolean): number | undefined => {
    if (s === undefined) return undefined;
    const f = s.split(":");
    const days = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"];
    const d = withDay ? days.indexOf(f[0] ?? "") : 0;
    const [h, m] = (withDay ? f.slice(1) : f).map(Number);
    if (h === undefined || m === undefined) return undefined;
    return d * 1440 + h * 60 + m;
  };
  const withDay = spec.includes(":") && /^[a-z]/.test(spec);
  const a = toMin(parts[0], withDay);
  const b = toMin(parts[1], withDay);
  return a === undefined || b === undefined ? undefined : [a, b];
}

function windowLength([a, b]: [number, number], period: number): number {
  return (((b - a) % period) + period) % period;
}

function versionAtLeast(version: string, min: [number, number]): boolean {
  const [major, minor] = version.split(".").map(Number) as [number, number];
  return major > min[0] || (major === min[0] && minor >= min[1]);
}

/** Every problem of a config, each naming its field and the allowed values; [] when valid. */
export function validateConfig(config: SketchstreamConfig): string[] {
  const c = new Checker();
  c.oneOf("environment", config.environment, ENVIRONMENT_NAMES);
  c.match(
    "region",
    config.region,
    REGION_RE,
    "a commercial AWS region such as eu-west-1 or us-east-1 (the stack assumes the aws partition)",
  );
  c.match(
    "namePrefix",
    config.namePrefix,
    NAME_PREFIX_RE,
    "3-24 characters of a-z, 0-9 and single hyphens, starting with a letter (MemoryDB and Lambda name limits)",
  );
  if (
    !isPlainObject(config.tags) ||
    Object.values(config.tags).some((v) => typeof v !== "string")
  ) {
    c.fail("tags", config.tags, "an object of string values");
  }
  if (config.accountId !== undefined) {
    c.match("accountId", config.accountId, /^\d{12}$/, "12 digits, or leave it unset");
  }

  // Network
  const n = config.network;
  const prefix = typeof n.vpcCidr === "string" ? cidrPrefix(n.vpcCidr) : undefined;
  if (prefix === undefined || prefix < 16 || prefix > 24) {
    c.fail("network.vpcCidr", n.vpcCidr, "an IPv4 network CIDR from /16 to /24, e.g. 10.40.0.0/16");
  }
  c.int("network.azCount", n.azCount, 1, 3);
  if (n.availabilityZones !== undefined) {
    const azs = n.availabilityZones;
    if (
      !Array.isArray(azs) ||
      azs.length !== n.azCount ||
      new Set(azs).size !== azs.length ||
      azs.some((az) => typeof az !== "string" || !new RegExp(`^${config.region}[a-z]$`).test(az))
    ) {
      c.fail(
        "network.availabilityZones",
        azs,
        `network.azCount distinct AZ names of ${config.region}, e.g. ${config.region}a`,
      );
    }
  }

  // MemoryDB
  const m = config.memorydb;
  c.oneOf("memorydb.engine", m.engine, ["valkey", "redis"]);
  const versionOk = typeof m.engineVersion === "string" && /^\d+\.\d+$/.test(m.engineVersion);
  if (m.engine === "valkey" && !(versionOk && versionAtLeast(m.engineVersion, [7, 2]))) {
    c.fail("memorydb.engineVersion", m.engineVersion, "valkey 7.2 or later, as major.minor");
  }
  if (m.engine === "redis" && !(versionOk && versionAtLeast(m.engineVersion, [7, 0]))) {
    c.fail(
      "memorydb.engineVersion",
      m.engineVersion,
      "redis 7.0 or later, as major.minor (EXPIREAT … NX and IAM auth need 7.0)",
    );
  }
  c.match(
    "memorydb.nodeType",
    m.nodeType,
    /^db\.[a-z][a-z0-9-]*\.[a-z0-9]+$/,
    "a MemoryDB node type such as db.t4g.small or db.r7g.large",
  );
  c.int("memorydb.shards", m.shards, 1, 500);
  c.int("memorydb.replicasPerShard", m.replicasPerShard, 0, 5);
  c.int("memorydb.snapshotRetentionDays", m.snapshotRetentionDays, 0, 35);
  c.match("memorydb.snapshotWindow", m.snapshotWindow, SNAPSHOT_WINDOW_RE, "hh:mm-hh:mm (UTC)");
  c.match(
    "memorydb.maintenanceWindow",
    m.maintenanceWindow,
    MAINTENANCE_WINDOW_RE,
    "ddd:hh:mm-ddd:hh:mm (UTC), e.g. sun:05:00-sun:06:00",
  );
  const snap =
    typeof m.snapshotWindow === "string" && SNAPSHOT_WINDOW_RE.test(m.snapshotWindow)
      ? windowMinutes(m.snapshotWindow)
      : undefined;
  const maint =
    typeof m.maintenanceWindow === "string" && MAINTENANCE_WINDOW_RE.test(m.maintenanceWindow)
      ? windowMinutes(m.maintenanceWindow)
      : undefined;
  if (snap && windowLength(snap, 1440) < 60) {
    c.fail("memorydb.snapshotWindow", m.snapshotWindow, "a window of at least 60 minutes");
  }
  if (maint && windowLength(maint, 7 * 1440) < 60) {
    c.fail("memorydb.maintenanceWindow", m.maintenanceWindow, "a window of at least 60 minutes");
  }
  if (snap && maint) {
    // Compare within the day: any overlap of the daily snapshot window with the maintenance one.
    const mStart = maint[0] % 1440;
    const mLen = windowLength(maint, 7 * 1440);
    const sLen = windowLength(snap, 1440);
    const overlaps = (a: number, al: number, b: number, bl: number) =>
      [0, 1440, -1440].some((shift) => a + shift < b + bl && b < a + shift + al);
    if (mLen < 1440 && overlaps(snap[0], sLen, mStart, mLen)) {
      c.fail(
        "memorydb.snapshotWindow",
        m.snapshotWindow,
        `a window that does not overlap memorydb.maintenanceWindow (${m.maintenanceWindow})`,
      );
    }
  }
  c.int("memorydb.port", m.port, 1024, 65535);
  c.bool("memorydb.finalSnapshot", m.finalSnapshot);
  c.bool("memorydb.preventDestroy", m.preventDestroy);
  c.bool("memorydb.autoMinorVersionUpgrade", m.autoMinorVersionUpgrade);
  // prod may lift preventDestroy (the first step of a teardown, docs/deploy.md), but a
  // destroyed prod cluster always leaves a final snapshot.
  if (config.environment === "prod") {
    if (m.finalSnapshot !== true) c.fail("memorydb.finalSnapshot", m.finalSnapshot, "true in prod");
    if (typeof m.snapshotRetentionDays === "number" && m.snapshotRetentionDays < 1) {
      c.fail("memorydb.snapshotRetentionDays", m.snapshotRetentionDays, "1 to 35 in prod");
    }
  }

  // Kinesis
  const s = config.stream;
  c.oneOf("stream.mode", s.mode, ["ON_DEMAND", "PROVISIONED"]);
  if (s.mode === "PROVISIONED") c.int("stream.shardCount", s.shardCount, 1, 500);
  if (s.mode === "ON_DEMAND" && s.shardCount !== undefined) {
    c.fail("stream.shardCount", s.shardCount, "unset when stream.mode is ON_DEMAND");
  }
  c.int("stream.retentionHours", s.retentionHours, 24, 8760);

  // Consumer
  const k = config.consumer;
  c.int("consumer.memoryMb", k.memoryMb, 128, 10240);
  c.int("consumer.timeoutSeconds", k.timeoutSeconds, 10, 900);
  c.oneOf("consumer.architecture", k.architecture, ARCHITECTURES);
  c.int("consumer.batchSize", k.batchSize, 1, 10000);
  c.int("consumer.batchingWindowSeconds", k.batchingWindowSeconds, 0, 300);
  c.int("consumer.parallelizationFactor", k.parallelizationFactor, 1, 10);
  c.int("consumer.maximumRetryAttempts", k.maximumRetryAttempts, 0, 10000);
  c.int("consumer.maximumRecordAgeSeconds", k.maximumRecordAgeSeconds, 60, 604800);
  if (
    typeof k.maximumRecordAgeSeconds === "number" &&
    typeof s.retentionHours === "number" &&
    k.maximumRecordAgeSeconds >= s.retentionHours * 3600
  ) {
    c.fail(
      "consumer.maximumRecordAgeSeconds",
      k.maximumRecordAgeSeconds,
      `less than stream.retentionHours x 3600 (${s.retentionHours * 3600}), so a record reported to the failure queue can still be replayed`,
    );
  }
  if (k.reservedConcurrency !== undefined)
    c.int("consumer.reservedConcurrency", k.reservedConcurrency, 1, 1000);
  if (k.provisionedConcurrency !== undefined) {
    c.int("consumer.provisionedConcurrency", k.provisionedConcurrency, 1, 1000);
    if (
      typeof k.reservedConcurrency === "number" &&
      typeof k.provisionedConcurrency === "number" &&
      k.provisionedConcurrency > k.reservedConcurrency
    ) {
      c.fail(
        "consumer.provisionedConcurrency",
        k.provisionedConcurrency,
        `at most consumer.reservedConcurrency (${k.reservedConcurrency})`,
      );
    }
  }
  c.bool("consumer.tracing", k.tracing);

  // Rollup
  const r = config.rollup;
  c.match(
    "rollup.scheduleExpression",
    r.scheduleExpression,
    SCHEDULE_RE,
    "rate(N minutes|hours|days), cron(…) or at(yyyy-mm-ddThh:mm:ss)",
  );
  c.match(
    "rollup.scheduleTimezone",
    r.scheduleTimezone,
    /^[A-Za-z_]+(\/[A-Za-z0-9_+-]+)*$/,
    "an IANA time zone such as UTC or Europe/Paris",
  );
  c.bool("rollup.scheduleEnabled", r.scheduleEnabled);
  c.int("rollup.memoryMb", r.memoryMb, 128, 10240);
  // The ASL gives a Task 900 s at most (Plan, MergePage); the Lambda must stop first.
  c.int("rollup.timeoutSeconds", r.timeoutSeconds, 10, 900);
  c.oneOf("rollup.architecture", r.architecture, ARCHITECTURES);
  c.int("rollup.mapMaxConcurrency", r.mapMaxConcurrency, 1, 40);
  c.oneOf("rollup.logLevel", r.logLevel, ["ALL", "ERROR", "FATAL", "OFF"]);
  c.bool("rollup.includeExecutionData", r.includeExecutionData);

  // Retention: the same ranges the functions accept (functions/domain/runtime-env.ts).
  c.int("retention.days", config.retention.days, 1, 3660);
  c.int("retention.weeks", config.retention.weeks, 1, 520);
  c.int("retention.months", config.retention.months, 1, 120);

  c.oneOf("logRetentionDays", config.logRetentionDays, LOG_RETENTION_DAYS);

  // Access
  const a = config.access;
  c.bool("access.enabled", a.enabled);
  c.match(
    "access.instanceType",
    a.instanceType,
    /^[a-z][a-z0-9-]*\.[a-z0-9]+$/,
    "an EC2 instance type such as t4g.nano",
  );
  c.oneOf("access.architecture", a.architecture, ARCHITECTURES);
  if (typeof a.instanceType === "string" && ARCHITECTURES.includes(a.architecture)) {
    // Graviton families carry a "g" after the generation digit (t4g, m7g, c7gn, r8g).
    const graviton = /^[a-z]+\d+g[a-z]*\./.test(a.instanceType);
    if (graviton !== (a.architecture === "arm64")) {
      c.fail(
        "access.architecture",
        a.architecture,
        `${graviton ? "arm64" : "x86_64"} for instance type ${a.instanceType}`,
      );
    }
  }

  // Alarms
  const al = config.alarms;
  if (al.email !== undefined) {
    c.match(
      "alarms.email",
      al.email,
      /^[^\s@]+@[^\s@]+\.[^\s@]+$/,
      "an email address, or leave it unset",
    );
  }
  c.int("alarms.iteratorAgeMs", al.iteratorAgeMs, 1000, 7 * 86_400_000);
  c.int("alarms.quarantineDepth", al.quarantineDepth, 1, 1_000_000);
  c.int("alarms.memoryUsagePercent", al.memoryUsagePercent, 1, 100);

  return c.problems;
}
