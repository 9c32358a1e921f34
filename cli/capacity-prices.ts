/**
 * The prices and AWS limits the capacity planner (cli/capacity.ts) assumes, in one dated table
 * so a change of price is one edit here. Every figure is printed with the plan as an assumption.
 *
 * Prices: approximate on-demand list prices in USD for eu-west-1 (Ireland, the stack's default
 * region) as of PRICES_AS_OF, written from the AWS pricing pages as known on that date; they
 * were NOT fetched from AWS by this program, and AWS changes them: check the linked pages
 * before relying on a total. Node memory sizes are those of the MemoryDB node types (the same
 * as the matching ElastiCache types).
 *
 * Limits: AWS's default quotas, each with the page that states it.
 */

export const PRICES_AS_OF = "2026-11-29";
export const PRICE_REGION = "eu-west-1";
export const HOURS_PER_MONTH = 730;
export const SECONDS_PER_MONTH = HOURS_PER_MONTH * 3600;

export interface MemoryDbNodeType {
  readonly name: string;
  readonly vcpus: number;
  /** Memory of the node, GiB. */
  readonly memoryGiB: number;
  /** Local SSD of a data-tiering (r6gd) node, GiB; 0 for the others. */
  readonly ssdGiB: number;
  /** On-demand price of one node running Redis OSS, USD per hour (Valkey: VALKEY_FACTOR of it). */
  readonly redisOssHourlyUsd: number;
}

/** MemoryDB node types the planner chooses from (db.r6g is left out: db.r7g costs ~5% more for a newer CPU and more bandwidth). */
export const MEMORYDB_NODE_TYPES: readonly MemoryDbNodeType[] = [
  { name: "db.t4g.small", vcpus: 2, memoryGiB: 1.37, ssdGiB: 0, redisOssHourlyUsd: 0.057 },
  { name: "db.t4g.medium", vcpus: 2, memoryGiB: 3.09, ssdGiB: 0, redisOssHourlyUsd: 0.113 },
  { name: "db.r7g.large", vcpus: 2, memoryGiB: 13.07, ssdGiB: 0, redisOssHourlyUsd: 0.359 },
  { name: "db.r7g.xlarge", vcpus: 4, memoryGiB: 26.32, ssdGiB: 0, redisOssHourlyUsd: 0.718 },
  { name: "db.r7g.2xlarge", vcpus: 8, memoryGiB: 52.82, ssdGiB: 0, redisOssHourlyUsd: 1.436 },
  { name: "db.r7g.4xlarge", vcpus: 16, memoryGiB: 105.81, ssdGiB: 0, redisOssHourlyUsd: 2.872 },
  { name: "db.r7g.8xlarge", vcpus: 32, memoryGiB: 209.55, ssdGiB: 0, redisOssHourlyUsd: 5.744 },
  { name: "db.r7g.12xlarge", vcpus: 48, memoryGiB: 317.77, ssdGiB: 0, redisOssHourlyUsd: 8.616 },
  { name: "db.r7g.16xlarge", vcpus: 64, memoryGiB: 419.09, ssdGiB: 0, redisOssHourlyUsd: 11.488 },
  { name: "db.r6gd.xlarge", vcpus: 4, memoryGiB: 26.32, ssdGiB: 99.33, redisOssHourlyUsd: 0.78 },
  { name: "db.r6gd.2xlarge", vcpus: 8, memoryGiB: 52.82, ssdGiB: 198.66, redisOssHourlyUsd: 1.56 },
  {
    name: "db.r6gd.4xlarge",
    vcpus: 16,
    memoryGiB: 105.81,
    ssdGiB: 397.32,
    redisOssHourlyUsd: 3.12,
  },
  {
    name: "db.r6gd.8xlarge",
    vcpus: 32,
    memoryGiB: 209.55,
    ssdGiB: 794.64,
    redisOssHourlyUsd: 6.24,
  },
];

/** MemoryDB for Valkey is priced 30% below Redis OSS (its reserved-node units: 22.4 vs 32). */
export const VALKEY_FACTOR = 0.7;

export const PRICES = {
  memorydb: {
    /** Data written, Redis OSS, USD per GB. */
    redisOssDataWrittenUsdPerGb: 0.2,
    /** Data written, Valkey: the first 10 TB a month free, then USD per GB. */
    valkeyFreeDataWrittenGbPerMonth: 10_240,
    valkeyDataWrittenUsdPerGb: 0.04,
  },
  kinesis: {
    onDemandStreamHourUsd: 0.04,
    /** Each record rounded up to 1 KB. */
    onDemandIngestUsdPerGb: 0.08,
    onDemandRetrievalUsdPerGb: 0.04,
    /** Retention beyond 24 h (up to 7 days), USD per GB-month. */
    onDemandExtendedRetentionUsdPerGbMonth: 0.1,
    provisionedShardHourUsd: 0.015,
    /** PUT payload units (25 KB of a record each), USD per million. */
    provisionedPutUnitUsdPerMillion: 0.014,
    /** Retention beyond 24 h, USD per shard-hour. */
    provisionedExtendedRetentionShardHourUsd: 0.02,
  },
  lambda: {
    arm64UsdPerGbSecond: 0.0000133334,
    x86UsdPerGbSecond: 0.0000166667,
    requestUsdPerMillion: 0.2,
  },
  stepFunctions: { standardUsdPerThousandTransitions: 0.025 },
  /** The SQS interface endpoint, per AZ. */
  vpcEndpointUsdPerAzHour: 0.011,
  kmsKeyUsdPerMonth: 1,
  /** A CloudWatch alarm per metric it evaluates (metric math counts each metric). */
  cloudwatchAlarmMetricUsdPerMonth: 0.1,
  /** The operator instance (t4g.micro) and its 8 GB gp3 volume. */
  operatorInstanceUsdPerMonth: 0.0092 * HOURS_PER_MONTH + 8 * 0.088,
} as const;

/** Metrics the stack's alarms evaluate: 7 in observability.ts (rollup-failed 3, zone loads 2, memory 3 as a Metrics Insights query) and 2 per API function. */
export const ALARM_METRICS = 16;

export const PRICE_PAGES = [
  "https://aws.amazon.com/memorydb/pricing/",
  "https://aws.amazon.com/kinesis/data-streams/pricing/",
  "https://aws.amazon.com/lambda/pricing/",
  "https://aws.amazon.com/step-functions/pricing/",
  "https://aws.amazon.com/privatelink/pricing/",
] as const;

export interface Quota {
  readonly value: number;
  readonly what: string;
  readonly source: string;
}

/** Default AWS quotas the planner compares a load with. */
export const QUOTAS = {
  lambdaConcurrency: {
    value: 1000,
    what: "Lambda concurrent executions per Region (default; new accounts start lower; can be raised to tens of thousands)",
    source: "https://docs.aws.amazon.com/lambda/latest/dg/limits.html",
  },
  kinesisShards: {
    value: 20_000,
    what: "Kinesis shards per account in us-east-1, us-west-2 and eu-west-1 (1,000 or 6,000 in other Regions)",
    source: "https://docs.aws.amazon.com/streams/latest/dev/service-sizes-and-limits.html",
  },
  kinesisOnDemandStartMBps: {
    value: 4,
    what: "write throughput of a new on-demand stream, MB/s (it then scales with the traffic)",
    source: "https://docs.aws.amazon.com/streams/latest/dev/service-sizes-and-limits.html",
  },
  memorydbNodesPerCluster: {
    value: 90,
    what: "MemoryDB nodes per cluster (default quota)",
    source: "https://docs.aws.amazon.com/memorydb/latest/devguide/quota-limits.html",
  },
  memorydbNodesPerRegion: {
    value: 300,
    what: "MemoryDB nodes per Region (default quota)",
    source: "https://docs.aws.amazon.com/memorydb/latest/devguide/quota-limits.html",
  },
  memorydbMaxNodesPerCluster: {
    value: 500,
    what: "MemoryDB nodes per cluster at most, with a raised quota (500 shards without replicas to 100 shards with 4)",
    source: "https://docs.aws.amazon.com/memorydb/latest/devguide/shards.html",
  },
} as const satisfies Record<string, Quota>;

/** Lambda gives a function CPU in proportion to its memory: one vCPU at 1,769 MB. */
export const LAMBDA_MB_PER_VCPU = 1769;
export const LAMBDA_VCPU_SOURCE =
  "https://docs.aws.amazon.com/lambda/latest/dg/configuration-memory.html";
/** Data tiering reserves this share of a node's DRAM for non-data use. */
export const DATA_TIERING_RESERVED_DRAM = 0.19;
export const DATA_TIERING_SOURCE =
  "https://docs.aws.amazon.com/memorydb/latest/devguide/data-tiering.html";
