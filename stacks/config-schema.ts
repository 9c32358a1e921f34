/**
 * Validation of the stack configuration with valibot (the schema library the functions' runtime
 * contract uses too): first every field on its own, then the rules that relate fields. Each
 * problem names its field, the value and what is allowed, and all of them are reported at once.
 */

import * as v from "valibot";
import { DAY_MS } from "../functions/domain/periods.js";
import { API_DEADLINE, RETENTION_LIMITS } from "../functions/domain/runtime-env.js";
import { STACK_LIMITS } from "../functions/domain/stack-limits.js";
import type { SketchstreamConfig } from "./config.js";

export type EnvironmentName = "dev" | "prod";
export const ENVIRONMENT_NAMES: readonly EnvironmentName[] = ["dev", "prod"];
/** The region of the shipped configs, where the default AZ letters a, b and c all exist. */
export const DEFAULT_REGION = "eu-west-1";
/** The values CloudWatch Logs accepts for retention_in_days. */
export const LOG_RETENTION_DAYS = [
  1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288,
  3653,
] as const;

/** The numeric limits the schema below is built from (one home with the capacity planner's). */
export { STACK_LIMITS };

const ARCHITECTURES = ["arm64", "x86_64"] as const;
/** Commercial-partition regions only: ARNs and service principals assume the "aws" partition. */
const REGION_RE = /^(us|eu|ap|sa|ca|me|af|il|mx)-[a-z]+-\d$/;
const NAME_PREFIX_RE = /^[a-z](?!.*--)[a-z0-9-]{1,22}[a-z0-9]$/;
const WEEKDAY = "(mon|tue|wed|thu|fri|sat|sun)";
const HHMM = "([01]\\d|2[0-3]):[0-5]\\d";
const SNAPSHOT_WINDOW_RE = new RegExp(`^${HHMM}-${HHMM}$`);
const MAINTENANCE_WINDOW_RE = new RegExp(`^${WEEKDAY}:${HHMM}-${WEEKDAY}:${HHMM}$`);
const SCHEDULE_RE =
  /^(rate\(\d+ (minute|minutes|hour|hours|day|days)\)|cron\([^()]+\)|at\(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\))$/;
/** An AZ ID such as euw1-az1 or use1-az4: the same physical zone in every account. */
export const AZ_ID_RE = /^[a-z]{2,5}\d+-az\d+$/;

// Field schemas. The message of each is what is allowed; `problem()` adds field and value.
const int = (min: number, max: number) => {
  const allowed = `a whole number from ${min} to ${max}`;
  return v.pipe(
    v.number(allowed),
    v.integer(allowed),
    v.minValue(min, allowed),
    v.maxValue(max, allowed),
  );
};
const matching = (re: RegExp, allowed: string) => v.pipe(v.string(allowed), v.regex(re, allowed));
const oneOf = <const T extends readonly (string | number)[]>(values: T) =>
  v.picklist(values, values.join(", "));
const bool = v.boolean("true, false");
const architecture = oneOf(ARCHITECTURES);

/** An IPv4 network CIDR whose address is the network address of its prefix. */
function cidrPrefix(cidr: string): number | undefined {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})\/(\d{1,2})$/.exec(cidr);
  if (!m) return undefined;
  const octets = m.slice(1, 5).map(Number);
  if (octets.some((o) => o > 255)) return undefined;
  const prefix = Number(m[5]);
  const addr = octets.reduce((acc, o) => acc * 256 + o, 0);
  return addr % 2 ** (32 - prefix) === 0 ? prefix : undefined;
}

/** [start, end] in minutes since Sunday 00:00 (or since midnight, without weekdays). */
function windowMinutes(spec: string): [number, number] {
  const days = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"];
  const bound = (part: string): number => {
    const fields = part.split(":");
    const [h, m] = fields.slice(-2).map(Number);
    const day = fields.length === 3 ? days.indexOf(fields[0] ?? "") : 0;
    return day * 1440 + (h ?? 0) * 60 + (m ?? 0);
  };
  const [a = "", b = ""] = spec.split("-");
  return [bound(a), bound(b)];
}

function windowLength([a, b]: [number, number], period: number): number {
  return (((b - a) % period) + period) % period;
}

const VPC_CIDR_ALLOWED = "an IPv4 network CIDR from /16 to /24, e.g. 10.40.0.0/16";
const AT_LEAST_AN_HOUR = "a window of at least 60 minutes";

const FIELDS = v.object({
  environment: oneOf(ENVIRONMENT_NAMES),
  region: matching(
    REGION_RE,
    "a commercial AWS region such as eu-west-1 or us-east-1 (the stack assumes the aws partition)",
  ),
  namePrefix: matching(
    NAME_PREFIX_RE,
    "3-24 characters of a-z, 0-9 and single hyphens, starting with a letter (MemoryDB and Lambda name limits)",
  ),
  tags: v.record(v.string(), v.string(), "an object of string values"),
  accountId: v.optional(matching(/^\d{12}$/, "12 digits, or leave it unset")),
  network: v.object({
    vpcCidr: v.pipe(
      v.string(VPC_CIDR_ALLOWED),
      v.check((cidr) => {
        const prefix = cidrPrefix(cidr);
        return prefix !== undefined && prefix >= 16 && prefix <= 24;
      }, VPC_CIDR_ALLOWED),
    ),
    azCount: int(1, 3),
    availabilityZones: v.optional(v.array(v.string(), "a list of AZ names or IDs")),
  }),
  memorydb: v.object({
    engine: oneOf(["valkey", "redis"]),
    engineVersion: matching(/^\d+\.\d+$/, "major.minor, e.g. 7.2"),
    nodeType: matching(
      /^db\.[a-z][a-z0-9-]*\.[a-z0-9]+$/,
      "a MemoryDB node type such as db.t4g.small or db.r7g.large",
    ),
    shards: int(1, STACK_LIMITS.memorydbShards),
    replicasPerShard: int(0, STACK_LIMITS.memorydbReplicasPerShard),
    snapshotRetentionDays: int(0, 35),
    snapshotWindow: v.pipe(
      matching(SNAPSHOT_WINDOW_RE, "hh:mm-hh:mm (UTC)"),
      v.check((w) => windowLength(windowMinutes(w), 1440) >= 60, AT_LEAST_AN_HOUR),
    ),
    maintenanceWindow: v.pipe(
      matching(MAINTENANCE_WINDOW_RE, "ddd:hh:mm-ddd:hh:mm (UTC), e.g. sun:05:00-sun:06:00"),
      v.check((w) => windowLength(windowMinutes(w), 7 * 1440) >= 60, AT_LEAST_AN_HOUR),
    ),
    port: int(1024, 65535),
    finalSnapshot: bool,
    preventDestroy: bool,
    autoMinorVersionUpgrade: bool,
  }),
  stream: v.object({
    mode: oneOf(["ON_DEMAND", "PROVISIONED"]),
    shardCount: v.optional(int(1, STACK_LIMITS.streamShardCount)),
    retentionHours: int(24, 8760),
  }),
  consumer: v.object({
    memoryMb: int(128, 10240),
    timeoutSeconds: int(10, 900),
    architecture,
    batchSize: int(1, STACK_LIMITS.consumerBatchSize),
    batchingWindowSeconds: int(0, 300),
    parallelizationFactor: int(1, STACK_LIMITS.consumerParallelizationFactor),
    maximumRetryAttempts: int(0, 10000),
    maximumRecordAgeSeconds: int(60, 604800),
    reservedConcurrency: v.optional(int(1, STACK_LIMITS.consumerReservedConcurrency)),
    provisionedConcurrency: v.optional(int(1, STACK_LIMITS.consumerReservedConcurrency)),
    tracing: bool,
  }),
  rollup: v.object({
    scheduleExpression: matching(
      SCHEDULE_RE,
      "rate(N minutes|hours|days), cron(…) or at(yyyy-mm-ddThh:mm:ss)",
    ),
    scheduleTimezone: matching(
      /^[A-Za-z_]+(\/[A-Za-z0-9_+-]+)*$/,
      "an IANA time zone such as UTC or Europe/Paris",
    ),
    scheduleEnabled: bool,
    memoryMb: int(128, 10240),
    // The ASL gives a Task 900 s at most (Plan, MergePage); the Lambda must stop first.
    timeoutSeconds: int(10, STACK_LIMITS.rollupTimeoutSeconds),
    architecture,
    mapMaxConcurrency: int(1, STACK_LIMITS.rollupMapMaxConcurrency),
    logLevel: oneOf(["ALL", "ERROR", "FATAL", "OFF"]),
    includeExecutionData: bool,
  }),
  api: v.object({
    memoryMb: int(128, 10240),
    timeoutSeconds: int(3, 900),
    architecture,
    // The limits the read API accepts for API_REDIS_DEADLINE_MS (functions/domain/runtime-env.ts).
    redisDeadlineMs: int(API_DEADLINE.min, API_DEADLINE.max),
  }),
  // The same limits the functions accept for RETENTION_* (functions/domain/runtime-env.ts).
  retention: v.object({
    days: int(RETENTION_LIMITS.days.min, RETENTION_LIMITS.days.max),
    weeks: int(RETENTION_LIMITS.weeks.min, RETENTION_LIMITS.weeks.max),
    months: int(RETENTION_LIMITS.months.min, RETENTION_LIMITS.months.max),
  }),
  logRetentionDays: oneOf(LOG_RETENTION_DAYS),
  access: v.object({
    enabled: bool,
    instanceType: matching(
      /^[a-z][a-z0-9-]*\.[a-z0-9]+$/,
      "an EC2 instance type such as t4g.micro",
    ),
    architecture,
  }),
  alarms: v.object({
    email: v.optional(
      matching(/^[^\s@]+@[^\s@]+\.[^\s@]+$/, "an email address, or leave it unset"),
    ),
    iteratorAgeMs: int(1000, 7 * DAY_MS),
    quarantineDepth: int(1, 1_000_000),
    memoryUsagePercent: int(1, 100),
  }),
  // USD a month, or unset for no budget.
  budget: v.object({ monthlyUsd: v.optional(int(1, STACK_LIMITS.budgetMonthlyUsd)) }),
});

/** A rule between fields: when `ok` is false, `field` (with its value) gets the problem. */
interface CrossFieldRule {
  readonly field: string;
  readonly value: (c: SketchstreamConfig) => unknown;
  readonly ok: (c: SketchstreamConfig) => boolean;
  readonly allowed: (c: SketchstreamConfig) => string;
}

function versionAtLeast(version: string, [minMajor, minMinor]: [number, number]): boolean {
  const [major = 0, minor = 0] = version.split(".").map(Number);
  return major > minMajor || (major === minMajor && minor >= minMinor);
}

function windowsOverlap(snapshot: string, maintenance: string): boolean {
  const snap = windowMinutes(snapshot);
  const maint = windowMinutes(maintenance);
  const mLength = windowLength(maint, 7 * 1440);
  if (mLength >= 1440) return true;
  const sLength = windowLength(snap, 1440);
  const mStart = maint[0] % 1440;
  // The daily snapshot window against the maintenance window's time of day, across midnight.
  return [0, 1440, -1440].some(
    (shift) => snap[0] + shift < mStart + mLength && mStart < snap[0] + shift + sLength,
  );
}

function isAzOf(region: string, az: string): boolean {
  return AZ_ID_RE.test(az) || new RegExp(`^${region}[a-z]$`).test(az);
}

/** Graviton families carry a "g" after the generation digit (t4g, m7g, c7gn, r8g). */
function isGraviton(instanceType: string): boolean {
  return /^[a-z]+\d+g[a-z]*\./.test(instanceType);
}

const CROSS_FIELD_RULES: readonly CrossFieldRule[] = [
  {
    field: "network.availabilityZones",
    value: (c) => c.network.availabilityZones,
    ok: (c) => c.network.availabilityZones !== undefined || c.region === DEFAULT_REGION,
    allowed: (c) =>
      `${c.network.azCount} AZ names or IDs, required outside ${DEFAULT_REGION}: which zone a letter such as ${c.region}a means differs per account, and some zones cannot host these subnets. List yours with \`aws ec2 describe-availability-zones --region ${c.region}\``,
  },
  {
    field: "network.availabilityZones",
    value: (c) => c.network.availabilityZones,
    ok: ({ network: n, region }) =>
      n.availabilityZones === undefined ||
      (n.availabilityZones.length === n.azCount &&
        new Set(n.availabilityZones).size === n.azCount &&
        n.availabilityZones.every((az) => isAzOf(region, az))),
    allowed: (c) =>
      `network.azCount (${c.network.azCount}) distinct AZ names of ${c.region} (e.g. ${c.region}a) or AZ IDs (e.g. euw1-az1)`,
  },
  {
    field: "memorydb.engineVersion",
    value: (c) => c.memorydb.engineVersion,
    ok: ({ memorydb: m }) =>
      versionAtLeast(m.engineVersion, m.engine === "valkey" ? [7, 2] : [7, 0]),
    allowed: (c) =>
      c.memorydb.engine === "valkey"
        ? "valkey 7.2 or later, as major.minor"
        : "redis 7.0 or later, as major.minor (EXPIREAT … NX and IAM auth need 7.0)",
  },
  {
    field: "memorydb.snapshotWindow",
    value: (c) => c.memorydb.snapshotWindow,
    ok: ({ memorydb: m }) => !windowsOverlap(m.snapshotWindow, m.maintenanceWindow),
    allowed: (c) =>
      `a window that does not overlap memorydb.maintenanceWindow (${c.memorydb.maintenanceWindow})`,
  },
  {
    // prod may lift preventDestroy (the first step of a teardown), but a destroyed prod
    // cluster always leaves a final snapshot.
    field: "memorydb.finalSnapshot",
    value: (c) => c.memorydb.finalSnapshot,
    ok: (c) => c.environment !== "prod" || c.memorydb.finalSnapshot,
    allowed: () => "true in prod",
  },
  {
    field: "memorydb.snapshotRetentionDays",
    value: (c) => c.memorydb.snapshotRetentionDays,
    ok: (c) => c.environment !== "prod" || c.memorydb.snapshotRetentionDays >= 1,
    allowed: () => "1 to 35 in prod",
  },
  {
    field: "stream.shardCount",
    value: (c) => c.stream.shardCount,
    ok: (c) => c.stream.mode !== "PROVISIONED" || c.stream.shardCount !== undefined,
    allowed: () => "a whole number from 1 to 500",
  },
  {
    field: "stream.shardCount",
    value: (c) => c.stream.shardCount,
    ok: (c) => c.stream.mode !== "ON_DEMAND" || c.stream.shardCount === undefined,
    allowed: () => "unset when stream.mode is ON_DEMAND",
  },
  {
    field: "consumer.maximumRecordAgeSeconds",
    value: (c) => c.consumer.maximumRecordAgeSeconds,
    ok: (c) => c.consumer.maximumRecordAgeSeconds < c.stream.retentionHours * 3600,
    allowed: (c) =>
      `less than stream.retentionHours x 3600 (${c.stream.retentionHours * 3600}), so a record reported to the failure queue can still be replayed`,
  },
  {
    field: "consumer.provisionedConcurrency",
    value: (c) => c.consumer.provisionedConcurrency,
    ok: ({ consumer: k }) =>
      k.provisionedConcurrency === undefined ||
      k.reservedConcurrency === undefined ||
      k.provisionedConcurrency <= k.reservedConcurrency,
    allowed: (c) => `at most consumer.reservedConcurrency (${c.consumer.reservedConcurrency})`,
  },
  {
    field: "api.redisDeadlineMs",
    value: (c) => c.api.redisDeadlineMs,
    ok: ({ api }) => api.redisDeadlineMs * 2 <= api.timeoutSeconds * 1000,
    allowed: (c) =>
      `at most half of api.timeoutSeconds x 1000 (${(c.api.timeoutSeconds * 1000) / 2}), so a request that gives up on Redis answers 503 before Lambda stops it`,
  },
  {
    field: "access.architecture",
    value: (c) => c.access.architecture,
    ok: ({ access: a }) => isGraviton(a.instanceType) === (a.architecture === "arm64"),
    allowed: ({ access: a }) =>
      `${isGraviton(a.instanceType) ? "arm64" : "x86_64"} for instance type ${a.instanceType}`,
  },
];

function problem(field: string, value: unknown, allowed: string): string {
  return `${field}: ${JSON.stringify(value)} is not allowed; allowed: ${allowed}`;
}

/** The validated config, or every problem of it (each naming its field and what is allowed). */
export function checkConfig(input: unknown):
  | { readonly config: SketchstreamConfig; readonly problems: readonly [] }
  | {
      readonly config?: undefined;
      readonly problems: readonly string[];
    } {
  const result = v.safeParse(FIELDS, input, { abortPipeEarly: true });
  if (!result.success) {
    const problems = result.issues.map((issue) =>
      problem(
        issue.path?.map((item) => String(item.key)).join(".") ?? "(config)",
        issue.input,
        issue.message,
      ),
    );
    return { problems: [...new Set(problems)] };
  }
  const config: SketchstreamConfig = result.output;
  const problems = CROSS_FIELD_RULES.filter((rule) => !rule.ok(config)).map((rule) =>
    problem(rule.field, rule.value(config), rule.allowed(config)),
  );
  return problems.length === 0 ? { config, problems: [] } : { problems };
}
