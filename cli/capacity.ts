/**
 * `capacity`: what a load needs and costs, from the constants `npm run bench:scale` measured
 * (cli/capacity-constants.ts), the retention settings (functions/domain/runtime-env.ts) and the
 * dated prices and quotas of cli/capacity-prices.ts. Pure arithmetic in `planCapacity` (and
 * `costOfDeployment` for a given stack configuration), printing in `runCapacity`.
 *
 * The model, in the order it is computed:
 *   keys      keys alive at steady state = sites active in a period × (1 + event types) ×
 *             (retention + 1) periods (the current one and those kept) × 2 families (uv:, ev:).
 *             Sites active in a week: min(sites, 7 × active per day); in a month: min(sites, 30 ×).
 *   elements  per key: uv: users per site-day, ev: events per site-day; per event type the events
 *             split evenly (uv: at most the site's users); a week or month holds its active days'
 *             elements (no returning users: an upper bound for uv:).
 *   memory    MEMORY USAGE of a key of that many elements, measured (sparse up to the measured
 *             dense threshold, then the dense size), plus the server's measured per-key overhead.
 *             Traffic spread unevenly over sites can only cost up to the concave bound of that
 *             curve at the same mean (Jensen), which is what the cluster is sized for. Plus the
 *             rollup's bookkeeping at its peak (touched and pending sets, work items).
 *   MemoryDB  the cheapest node type whose shards hold that at MEMORY_FILL of their memory (data
 *             tiering: keys and the current periods' values in DRAM, the rest on SSD) and whose
 *             engine threads stay under ENGINE_CPU_TARGET at the measured server CPU per event.
 *   Kinesis   provisioned shards for the records/s and bytes/s at KINESIS_FILL, priced against
 *             on-demand; the consumer's parallelization factor from the measured per-invocation
 *             rate (scaled to the Lambda's share of a vCPU), concurrency = shards × factor.
 *   rollup    items per run (each active site-day and its event types, into week and month),
 *             pages as rollup.ts makes them, Map concurrency to finish within half the interval.
 */

import { messageOf } from "../functions/domain/errors.js";
import type { RetentionSettings } from "../functions/domain/periods.js";
import { DEFAULT_RETENTION } from "../functions/domain/runtime-env.js";
import { STACK_LIMITS } from "../functions/domain/stack-limits.js";
import { parseFlags } from "./args.js";
import {
  DEFAULT_CONSTANTS_PATH,
  loadScaleConstants,
  rollupSuccessPath,
  type ScaleConstants,
  type SuccessPath,
  transitionsPerRun,
} from "./capacity-constants.js";
import {
  ALARM_METRICS,
  DATA_TIERING_RESERVED_DRAM,
  DATA_TIERING_SOURCE,
  HOURS_PER_MONTH,
  LAMBDA_MB_PER_VCPU,
  LAMBDA_VCPU_SOURCE,
  MEMORYDB_NODE_TYPES,
  type MemoryDbNodeType,
  PRICE_PAGES,
  PRICE_REGION,
  PRICES,
  PRICES_AS_OF,
  QUOTAS,
  SECONDS_PER_MONTH,
  VALKEY_FACTOR,
} from "./capacity-prices.js";
import { type CliIo, EXIT_OK, UsageError } from "./io.js";

/** Plan a node's memory to at most this share full (the stack's memory alarm fires at 80%). */
export const MEMORY_FILL = 0.75;
/** Keep each primary's engine thread at most this busy (headroom for reads, rollups, failover). */
export const ENGINE_CPU_TARGET = 0.5;
/** Provision Kinesis shards to this share of their limits (uneven partition keys, bursts). */
export const KINESIS_FILL = 0.8;
/** Per Kinesis shard: 1 MiB/s or 1,000 records/s of writes. */
export const SHARD_BYTES_PER_SECOND = 1_048_576;
export const SHARD_RECORDS_PER_SECOND = 1000;
/** Defaults of the optional inputs. */
export const DEFAULT_EVENT_TYPES = 4;
export const DEFAULT_EVENTS_PER_USER = 2;
/** rollup.ts planRollup: a page holds max(2,000, ceil(items / 500)) items. */
export const ROLLUP_MIN_PAGE = 2000;
export const ROLLUP_MAX_PAGES = 500;
/** A run should finish within this share of the schedule's interval. */
export const ROLLUP_TARGET_SHARE = 0.5;
/** Days a month is counted as. */
export const DAYS_PER_MONTH = 30;
/**
 * The consumer benchmark's rate (README "Benchmark: consumer", with the events metric, 5 sites,
 * batches of 10,000, 2026-11-28): an upper bound of a handler's rate, which the planner takes
 * when the scale bench measured more.
 */
export const CONSUMER_BENCH = { recordsPerSecond: 137_190, measuredAt: "2026-11-28" } as const;

/**
 * The limits of stacks/config.ts the plan is checked against: the schema's own
 * (functions/domain/stack-limits.ts), not a copy.
 */
export const CONFIG_LIMITS = STACK_LIMITS;

export interface CapacityInput {
  readonly eventsPerSecond: number;
  readonly sites: number;
  readonly eventTypes: number;
  readonly activeSitesPerDay: number;
  readonly usersPerSiteDay: number;
}

/** The parts of a stack configuration (stacks/config.ts SketchstreamConfig) the cost depends on. */
export interface DeploymentShape {
  readonly memorydb: {
    readonly engine: "valkey" | "redis";
    readonly nodeType: string;
    readonly shards: number;
    readonly replicasPerShard: number;
  };
  readonly stream: {
    readonly mode: "ON_DEMAND" | "PROVISIONED";
    readonly shardCount?: number;
    readonly retentionHours: number;
  };
  readonly consumer: {
    readonly memoryMb: number;
    readonly batchSize: number;
    readonly batchingWindowSeconds: number;
    readonly parallelizationFactor: number;
    readonly architecture: "arm64" | "x86_64";
  };
  readonly rollup: {
    readonly memoryMb: number;
    readonly timeoutSeconds: number;
    readonly mapMaxConcurrency: number;
    readonly scheduleExpression: string;
    readonly architecture: "arm64" | "x86_64";
  };
  readonly retention: RetentionSettings;
  readonly network: { readonly azCount: number };
  readonly access: { readonly enabled: boolean };
}

/**
 * What the planner assumes of the deployment it sizes (the prod config's settings where one
 * applies): Valkey, one replica per shard, 1,024 MB consumer, hourly rollups of 512 MB tasks.
 */
export const PLANNER_DEFAULTS: DeploymentShape = {
  memorydb: { engine: "valkey", nodeType: "db.r7g.large", shards: 1, replicasPerShard: 1 },
  stream: { mode: "ON_DEMAND", retentionHours: 24 },
  consumer: {
    memoryMb: 1024,
    batchSize: 1000,
    batchingWindowSeconds: 1,
    parallelizationFactor: 1,
    architecture: "arm64",
  },
  rollup: {
    memoryMb: 512,
    timeoutSeconds: 300,
    mapMaxConcurrency: 8,
    scheduleExpression: "rate(1 hour)",
    architecture: "arm64",
  },
  retention: DEFAULT_RETENTION,
  network: { azCount: 3 },
  access: { enabled: true },
};

// ---------------------------------------------------------------------------------------------
// HLL memory per key.

type HllConstants = ScaleConstants["hll"];

function sparsePoints(hll: HllConstants): { cardinality: number; bytes: number }[] {
  return hll.bytesByCardinality
    .filter((p) => !p.dense && p.cardinality < hll.denseAtCardinality)
    .sort((a, b) => a.cardinality - b.cardinality);
}

/** MEMORY USAGE of a key holding `n` elements: measured sparse sizes (interpolated), then dense. */
export function hllKeyBytes(hll: HllConstants, n: number): number {
  if (n >= hll.denseAtCardinality) return hll.denseBytes;
  const points = sparsePoints(hll);
  const first = points[0];
  if (first === undefined || n <= first.cardinality) return first?.bytes ?? hll.denseBytes;
  for (let i = 1; i < points.length; i++) {
    const a = points[i - 1];
    const b = points[i];
    if (a && b && n <= b.cardinality) {
      return (
        a.bytes + ((b.bytes - a.bytes) * (n - a.cardinality)) / (b.cardinality - a.cardinality)
      );
    }
  }
  return points.at(-1)?.bytes ?? hll.denseBytes;
}

/**
 * The least line from the smallest key's size that stays above every measured size, capped at
 * the dense size: a concave bound of hllKeyBytes, so keys whose mean is `n` take at most
 * bound(n) each on average however their elements are spread (Jensen's inequality).
 */
export function hllKeyBytesBound(hll: HllConstants, n: number): number {
  const points = sparsePoints(hll);
  const base = points[0];
  if (base === undefined) return hll.denseBytes;
  let slope =
    (hll.denseBytes - base.bytes) / Math.max(1, hll.denseAtCardinality - base.cardinality);
  for (const p of points) {
    if (p.cardinality > base.cardinality) {
      slope = Math.max(slope, (p.bytes - base.bytes) / (p.cardinality - base.cardinality));
    }
  }
  return Math.min(hll.denseBytes, base.bytes + slope * Math.max(0, n - base.cardinality));
}

// ---------------------------------------------------------------------------------------------
// The plan.

export type Family = "uv" | "ev";
export type PeriodName = "day" | "week" | "month";

export interface KeyRow {
  readonly family: Family;
  readonly period: PeriodName;
  /** Keys alive: the site's key, then one per event type. */
  readonly siteKeys: number;
  readonly typeKeys: number;
  /** Elements per key (mean). */
  readonly siteElements: number;
  readonly typeElements: number;
  readonly siteDense: boolean;
  readonly typeDense: boolean;
  /** Bytes if every site were average, and the bound for any spread of traffic over sites. */
  readonly bytes: number;
  readonly bytesBound: number;
}

export interface MemoryDbOption {
  readonly nodeType: string;
  readonly dataTiering: boolean;
  readonly shards: number;
  readonly memoryShards: number;
  readonly cpuShards: number;
  readonly replicasPerShard: number;
  readonly nodes: number;
  readonly monthlyUsd: number;
  readonly feasible: boolean;
}

export interface CostLine {
  readonly item: string;
  readonly monthlyUsd: number;
  readonly detail: string;
}

export interface CapacityPlan {
  readonly input: CapacityInput;
  readonly derived: {
    readonly eventsPerDay: number;
    readonly eventsPerSiteDay: number;
    readonly sitesPerWeek: number;
    readonly sitesPerMonth: number;
  };
  readonly keys: readonly KeyRow[];
  readonly memory: {
    readonly hllBytes: number;
    readonly hllBytesBound: number;
    readonly bookkeepingBytes: number;
    /** What the cluster is sized for: the bound plus the bookkeeping. */
    readonly totalBytes: number;
    readonly keys: number;
  };
  readonly memorydb: {
    readonly choice: MemoryDbOption;
    readonly cheapestMemoryOnly?: MemoryDbOption;
    readonly cheapestDataTiering?: MemoryDbOption;
    readonly engineCpuCores: number;
    readonly dataWrittenGbPerMonth: number;
  };
  readonly kinesis: {
    readonly mode: "ON_DEMAND" | "PROVISIONED";
    readonly recordBytes: number;
    readonly bytesPerSecond: number;
    readonly shards: number;
    readonly provisionedMonthlyUsd: number;
    readonly onDemandMonthlyUsd: number;
  };
  readonly consumer: {
    readonly perInvocationEventsPerSecond: number;
    readonly batchSize: number;
    readonly batchingWindowSeconds: number;
    readonly parallelizationFactor: number;
    readonly concurrency: number;
    readonly invocationsPerMonth: number;
  };
  readonly rollup: {
    readonly scheduleMinutes: number;
    readonly runsPerMonth: number;
    readonly itemsPerRun: number;
    readonly pageSize: number;
    readonly pages: number;
    readonly mapMaxConcurrency: number;
    readonly perWorkerItemsPerSecond: number;
    readonly planSeconds: number;
    readonly serverSeconds: number;
    readonly clientSeconds: number;
    readonly runSeconds: number;
    readonly pageSeconds: number;
    readonly transitionsPerRun: number;
    readonly transitionsPerMonth: number;
  };
  readonly cost: { readonly lines: readonly CostLine[]; readonly totalMonthlyUsd: number };
  /** Quotas to raise and limits of stacks/config.ts the load exceeds, in plain words. */
  readonly warnings: readonly string[];
  /** stacks/config.ts values for this plan (field → value). */
  readonly config: Readonly<Record<string, string | number>>;
  readonly assumptions: readonly string[];
  readonly constants: {
    readonly measuredAt: string;
    readonly machine: string;
    readonly redis: string;
  };
}

/**
 * redis-server CPU per event: the larger of the handler's batches (an empty keyspace) and the
 * load's (the same commands in bigger pipelines, into a keyspace of millions of keys).
 */
export function serverUsPerEvent(constants: ScaleConstants): number {
  return Math.max(
    constants.consumer.serverProcessCpuUsPerEvent,
    constants.consumer.loadServerProcessCpuUsPerEvent,
  );
}

/** Minutes between runs of a `rate(…)` expression; cron and at() are taken as hourly. */
export function scheduleMinutes(expression: string): number {
  const m = /^rate\((\d+) (minute|minutes|hour|hours|day|days)\)$/.exec(expression);
  if (!m) return 60;
  const n = Number(m[1]);
  const unit = m[2] ?? "hour";
  return unit.startsWith("minute") ? n : unit.startsWith("hour") ? n * 60 : n * 1440;
}

function lambdaUsdPerGbSecond(architecture: "arm64" | "x86_64"): number {
  return architecture === "arm64"
    ? PRICES.lambda.arm64UsdPerGbSecond
    : PRICES.lambda.x86UsdPerGbSecond;
}

/** The Lambda's share of one vCPU at this much memory (at most 1 for one thread of work). */
export function vcpuShare(memoryMb: number): number {
  return Math.min(1, memoryMb / LAMBDA_MB_PER_VCPU);
}

export function nodeTypeNamed(name: string): MemoryDbNodeType | undefined {
  return MEMORYDB_NODE_TYPES.find((t) => t.name === name);
}

function nodeHourlyUsd(type: MemoryDbNodeType, engine: "valkey" | "redis"): number {
  return type.redisOssHourlyUsd * (engine === "valkey" ? VALKEY_FACTOR : 1);
}

const GIB = 2 ** 30;

interface MemoryNeeds {
  readonly totalBytes: number;
  /** With data tiering: what must stay in DRAM (every key's name and header, the periods being written, the bookkeeping). */
  readonly dramBytes: number;
}

/** Shards of a node type that hold the memory, and the cluster's cost with replicas. */
function memorydbOption(
  type: MemoryDbNodeType,
  needs: MemoryNeeds,
  cpuShards: number,
  replicasPerShard: number,
  engine: "valkey" | "redis",
  fixedShards?: number,
): MemoryDbOption {
  const dataTiering = type.ssdGiB > 0;
  const dram = type.memoryGiB * GIB * (dataTiering ? 1 - DATA_TIERING_RESERVED_DRAM : 1);
  const memoryShards = dataTiering
    ? Math.max(
        Math.ceil(needs.dramBytes / (dram * MEMORY_FILL)),
        Math.ceil(needs.totalBytes / ((dram + type.ssdGiB * GIB) * MEMORY_FILL)),
      )
    : Math.ceil(needs.totalBytes / (dram * MEMORY_FILL));
  const shards = fixedShards ?? Math.max(1, memoryShards, cpuShards);
  const nodes = shards * (1 + replicasPerShard);
  return {
    nodeType: type.name,
    dataTiering,
    shards,
    memoryShards: Math.max(1, memoryShards),
    cpuShards,
    replicasPerShard,
    nodes,
    monthlyUsd: nodes * nodeHourlyUsd(type, engine) * HOURS_PER_MONTH,
    feasible:
      shards <= CONFIG_LIMITS.memorydbShards &&
      nodes <= QUOTAS.memorydbMaxNodesPerCluster.value &&
      shards >= memoryShards &&
      shards >= cpuShards,
  };
}

function kinesisCosts(
  eventsPerSecond: number,
  recordBytes: number,
  shards: number,
  retentionHours: number,
): { provisioned: number; onDemand: number } {
  const p = PRICES.kinesis;
  const recordsPerMonth = eventsPerSecond * SECONDS_PER_MONTH;
  const extended = retentionHours > 24;
  const provisioned =
    shards * HOURS_PER_MONTH * p.provisionedShardHourUsd +
    (recordsPerMonth / 1e6) * Math.ceil(recordBytes / 25_600) * p.provisionedPutUnitUsdPerMillion +
    (extended ? shards * HOURS_PER_MONTH * p.provisionedExtendedRetentionShardHourUsd : 0);
  const ingestGb = (recordsPerMonth * Math.ceil(recordBytes / 1024) * 1024) / GIB;
  const retrievalGb = (recordsPerMonth * recordBytes) / GIB;
  const storedGb = extended
    ? (eventsPerSecond * recordBytes * (Math.min(retentionHours, 168) - 24) * 3600) / GIB
    : 0;
  const onDemand =
    HOURS_PER_MONTH * p.onDemandStreamHourUsd +
    ingestGb * p.onDemandIngestUsdPerGb +
    retrievalGb * p.onDemandRetrievalUsdPerGb +
    storedGb * p.onDemandExtendedRetentionUsdPerGbMonth;
  return { provisioned, onDemand };
}

/** Which of the deployment's choices are given (the rest the planner makes). */
export interface FixedChoices {
  readonly nodeType?: string;
  readonly shards?: number;
  readonly streamMode?: "ON_DEMAND" | "PROVISIONED";
  readonly streamShards?: number;
  readonly parallelizationFactor?: number;
  readonly mapMaxConcurrency?: number;
}

/**
 * The plan for a load. `deployment` gives the settings that are not chosen (retention, engine,
 * replicas, function sizes, schedule); `fixed` pins choices (a given stack configuration's
 * node type, shards, stream mode and shards), which `costOfDeployment` uses.
 */
export function planCapacity(
  input: CapacityInput,
  constants: ScaleConstants,
  deployment: DeploymentShape = PLANNER_DEFAULTS,
  fixed: FixedChoices = {},
  path: SuccessPath = rollupSuccessPath(),
): CapacityPlan {
  const { eventsPerSecond: eps, sites, eventTypes: types, activeSitesPerDay: active } = input;
  const retention = deployment.retention;
  const eventsPerDay = eps * 86_400;
  const eventsPerSiteDay = eventsPerDay / active;
  const users = input.usersPerSiteDay;
  const sitesPerWeek = Math.min(sites, 7 * active);
  const sitesPerMonth = Math.min(sites, DAYS_PER_MONTH * active);
  const hll = constants.hll;
  const overhead = Math.max(0, constants.memory.perKeyOverheadBytes);

  // --- keys and memory ---------------------------------------------------------------------------
  const periods: { period: PeriodName; sites: number; alive: number; days: number }[] = [
    { period: "day", sites: active, alive: retention.days + 1, days: 1 },
    {
      period: "week",
      sites: sitesPerWeek,
      alive: retention.weeks + 1,
      days: (7 * active) / sitesPerWeek,
    },
    {
      period: "month",
      sites: sitesPerMonth,
      alive: retention.months + 1,
      days: (DAYS_PER_MONTH * active) / sitesPerMonth,
    },
  ];
  const perDay: Record<Family, { site: number; type: number }> = {
    uv: { site: users, type: Math.min(users, eventsPerSiteDay / types) },
    ev: { site: eventsPerSiteDay, type: eventsPerSiteDay / types },
  };
  const keys: KeyRow[] = [];
  for (const family of ["uv", "ev"] as const) {
    for (const p of periods) {
      const siteKeys = p.sites * p.alive;
      const typeKeys = siteKeys * types;
      const siteElements = perDay[family].site * p.days;
      const typeElements = perDay[family].type * p.days;
      const size = (n: number) => hllKeyBytes(hll, n) + overhead;
      const bound = (n: number) => hllKeyBytesBound(hll, n) + overhead;
      keys.push({
        family,
        period: p.period,
        siteKeys,
        typeKeys,
        siteElements,
        typeElements,
        siteDense: siteElements >= hll.denseAtCardinality,
        typeDense: typeElements >= hll.denseAtCardinality,
        bytes: siteKeys * size(siteElements) + typeKeys * size(typeElements),
        bytesBound: siteKeys * bound(siteElements) + typeKeys * bound(typeElements),
      });
    }
  }
  const hllBytes = keys.reduce((n, k) => n + k.bytes, 0);
  const hllBytesBound = keys.reduce((n, k) => n + k.bytesBound, 0);
  const keyCount = keys.reduce((n, k) => n + k.siteKeys + k.typeKeys, 0);

  // Bookkeeping at its peak: a run's pending set while the next run's touched set fills, its
  // work items, the site index and the sites' event-type sets.
  const bk = constants.bookkeeping;
  const touchedPerRun = active * (1 + types);
  // A scheduled run's work items are its pending members (each merged into its week and month).
  const itemsPerRun = touchedPerRun;
  const bookkeepingBytes =
    2 * touchedPerRun * bk.bytesPerTouchedMember +
    itemsPerRun * bk.bytesPerWorkItem +
    sites * (1 + types) * bk.bytesPerSiteIndexMember +
    sites * constants.memory.siteEventTypesBytesPerSite;
  const totalBytes = hllBytesBound + bookkeepingBytes;
  // The keys being written now (the current day, week and month) stay in DRAM with data
  // tiering, as does every key's name and header (the smallest key's size stands for it).
  const current = keys.reduce(
    (n, k) =>
      n + k.bytesBound / Math.max(1, periods.find((p) => p.period === k.period)?.alive ?? 1),
    0,
  );
  const dramBytes = keyCount * (hllKeyBytes(hll, 1) + overhead) + current + bookkeepingBytes;

  // --- MemoryDB -------------------------------------------------------------------------------------
  const scheduleMin = scheduleMinutes(deployment.rollup.scheduleExpression);
  const runsPerHour = 60 / scheduleMin;
  const engineCpuCores =
    (eps * serverUsPerEvent(constants) +
      (itemsPerRun * runsPerHour * constants.rollup.serverProcessCpuUsPerItem) / 3600) /
    1e6;
  const cpuShards = Math.max(1, Math.ceil(engineCpuCores / ENGINE_CPU_TARGET));
  const { engine, replicasPerShard } = deployment.memorydb;
  const needs = { totalBytes, dramBytes };
  const options = MEMORYDB_NODE_TYPES.map((t) =>
    memorydbOption(t, needs, cpuShards, replicasPerShard, engine),
  );
  const cheapest = (list: MemoryDbOption[]) =>
    [...list]
      .filter((o) => o.feasible)
      .sort((a, b) => a.monthlyUsd - b.monthlyUsd || a.nodes - b.nodes)[0];
  const cheapestMemoryOnly = cheapest(options.filter((o) => !o.dataTiering));
  const cheapestDataTiering = cheapest(options.filter((o) => o.dataTiering));
  const pinnedType = fixed.nodeType === undefined ? undefined : nodeTypeNamed(fixed.nodeType);
  if (fixed.nodeType !== undefined && pinnedType === undefined) {
    throw new RangeError(
      `node type ${fixed.nodeType} is not in the planner's price table (cli/capacity-prices.ts): ${MEMORYDB_NODE_TYPES.map((t) => t.name).join(", ")}`,
    );
  }
  const choice =
    pinnedType !== undefined
      ? memorydbOption(pinnedType, needs, cpuShards, replicasPerShard, engine, fixed.shards)
      : (cheapest(options) ??
        // Nothing fits one cluster: the largest type, with as many shards as it would take.
        options.reduce((a, b) => (b.memoryShards < a.memoryShards ? b : a)));

  // --- Kinesis and the consumer ------------------------------------------------------------------
  const recordBytes = constants.generated.recordBytes;
  const bytesPerSecond = eps * recordBytes;
  const perInvocation =
    Math.min(constants.consumer.eventsPerSecond, CONSUMER_BENCH.recordsPerSecond) *
    vcpuShare(deployment.consumer.memoryMb);
  const pfLimit = CONFIG_LIMITS.consumerParallelizationFactor;
  const shards =
    fixed.streamShards ??
    Math.max(
      1,
      Math.ceil(bytesPerSecond / (SHARD_BYTES_PER_SECOND * KINESIS_FILL)),
      Math.ceil(eps / (SHARD_RECORDS_PER_SECOND * KINESIS_FILL)),
      // Enough shards that the consumer keeps up with at most the largest factor.
      Math.ceil(eps / (perInvocation * pfLimit)),
    );
  const perShard = eps / shards;
  const parallelizationFactor =
    fixed.parallelizationFactor ??
    Math.min(pfLimit, Math.max(1, Math.ceil(perShard / perInvocation)));
  const concurrency = shards * parallelizationFactor;
  const window = deployment.consumer.batchingWindowSeconds || 1;
  const avgBatch = Math.max(1, Math.min(10_000, (perShard / parallelizationFactor) * window));
  const batchSize = Math.min(
    CONFIG_LIMITS.consumerBatchSize,
    Math.max(deployment.consumer.batchSize, Math.ceil(avgBatch / 100) * 100),
  );
  const costs = kinesisCosts(eps, recordBytes, shards, deployment.stream.retentionHours);
  const mode =
    fixed.streamMode ?? (costs.provisioned < costs.onDemand ? "PROVISIONED" : "ON_DEMAND");
  const invocationsPerMonth = (eps * SECONDS_PER_MONTH) / avgBatch;

  // --- rollup -----------------------------------------------------------------------------------------
  const r = constants.rollup;
  const pageSize = Math.max(ROLLUP_MIN_PAGE, Math.ceil(itemsPerRun / ROLLUP_MAX_PAGES));
  const pages = Math.ceil(itemsPerRun / pageSize);
  const perWorker = r.perWorkerItemsPerSecond * vcpuShare(deployment.rollup.memoryMb);
  const planSeconds = r.items > 0 ? (r.planMs / 1000 / r.items) * itemsPerRun : 0;
  const serverSeconds = (itemsPerRun * r.serverProcessCpuUsPerItem) / 1e6 / choice.shards;
  const budgetSeconds = Math.max(1, scheduleMin * 60 * ROLLUP_TARGET_SHARE - planSeconds);
  const mapMaxConcurrency =
    fixed.mapMaxConcurrency ??
    Math.min(
      CONFIG_LIMITS.rollupMapMaxConcurrency,
      Math.max(1, Math.ceil(itemsPerRun / perWorker / budgetSeconds)),
    );
  const workers = Math.max(1, Math.min(mapMaxConcurrency, pages));
  const clientSeconds = perWorker > 0 ? itemsPerRun / (perWorker * workers) : 0;
  const runSeconds = planSeconds + Math.max(serverSeconds, clientSeconds);
  const pageSeconds = perWorker > 0 ? pageSize / perWorker : 0;
  const runsPerMonth = HOURS_PER_MONTH * runsPerHour;
  const perRun = transitionsPerRun(path, pages);

  // --- cost -------------------------------------------------------------------------------------------
  const dataWrittenGbPerMonth =
    ((eps * constants.consumer.netInputBytesPerEvent +
      (itemsPerRun * runsPerHour * r.netInputBytesPerItem) / 3600) *
      SECONDS_PER_MONTH) /
    GIB;
  const m = PRICES.memorydb;
  const dataWrittenUsd =
    engine === "valkey"
      ? Math.max(0, dataWrittenGbPerMonth - m.valkeyFreeDataWrittenGbPerMonth) *
        m.valkeyDataWrittenUsdPerGb
      : dataWrittenGbPerMonth * m.redisOssDataWrittenUsdPerGb;
  const consumerGbSeconds =
    ((eps * SECONDS_PER_MONTH) / perInvocation) * (deployment.consumer.memoryMb / 1024);
  const consumerUsd =
    consumerGbSeconds * lambdaUsdPerGbSecond(deployment.consumer.architecture) +
    (invocationsPerMonth / 1e6) * PRICES.lambda.requestUsdPerMillion;
  const rollupGbSeconds =
    runsPerMonth *
    (planSeconds + (perWorker > 0 ? itemsPerRun / perWorker : 0)) *
    (deployment.rollup.memoryMb / 1024);
  const rollupUsd =
    rollupGbSeconds * lambdaUsdPerGbSecond(deployment.rollup.architecture) +
    ((runsPerMonth * (pages + 2)) / 1e6) * PRICES.lambda.requestUsdPerMillion;
  const sfnUsd =
    ((runsPerMonth * perRun) / 1000) * PRICES.stepFunctions.standardUsdPerThousandTransitions;
  const type = nodeTypeNamed(choice.nodeType);
  const lines: CostLine[] = [
    {
      item: "MemoryDB nodes",
      monthlyUsd: choice.monthlyUsd,
      detail: `${choice.nodes} × ${choice.nodeType} (${engine}) × $${type ? nodeHourlyUsd(type, engine).toFixed(4) : "?"}/h × ${HOURS_PER_MONTH} h`,
    },
    {
      item: "MemoryDB data written",
      monthlyUsd: dataWrittenUsd,
      detail: `${fmt(dataWrittenGbPerMonth)} GB/month (${constants.consumer.netInputBytesPerEvent.toFixed(0)} bytes per event)${engine === "valkey" ? `, the first ${fmt(m.valkeyFreeDataWrittenGbPerMonth)} GB free` : ""}`,
    },
    {
      item: `Kinesis (${mode})`,
      monthlyUsd: mode === "PROVISIONED" ? costs.provisioned : costs.onDemand,
      detail:
        mode === "PROVISIONED"
          ? `${fmt(shards)} shard${shards === 1 ? "" : "s"}, PUT payload units${deployment.stream.retentionHours > 24 ? ", extended retention" : ""}`
          : `stream-hours, ${fmt(eps * SECONDS_PER_MONTH)} records each billed as ${Math.ceil(recordBytes / 1024)} KB in, ${recordBytes.toFixed(0)} bytes out`,
    },
    {
      item: "Lambda: consumer",
      monthlyUsd: consumerUsd,
      detail: `${fmt(consumerGbSeconds)} GB-s, ${fmt(invocationsPerMonth)} invocations`,
    },
    {
      item: "Lambda: rollup",
      monthlyUsd: rollupUsd,
      detail: `${fmt(rollupGbSeconds)} GB-s over ${fmt(runsPerMonth)} runs`,
    },
    {
      item: "Step Functions",
      monthlyUsd: sfnUsd,
      detail: `${fmt(perRun)} transitions per run × ${fmt(runsPerMonth)} runs`,
    },
    {
      item: "SQS interface endpoint",
      monthlyUsd: deployment.network.azCount * PRICES.vpcEndpointUsdPerAzHour * HOURS_PER_MONTH,
      detail: `${deployment.network.azCount} AZs`,
    },
    { item: "KMS key", monthlyUsd: PRICES.kmsKeyUsdPerMonth, detail: "1 key" },
    {
      item: "CloudWatch alarms",
      monthlyUsd: ALARM_METRICS * PRICES.cloudwatchAlarmMetricUsdPerMonth,
      detail: `${ALARM_METRICS} alarm metrics`,
    },
    ...(deployment.access.enabled
      ? [
          {
            item: "Operator instance",
            monthlyUsd: PRICES.operatorInstanceUsdPerMonth,
            detail: "t4g.micro + 8 GB gp3",
          },
        ]
      : []),
  ];
  const totalMonthlyUsd = lines.reduce((n, l) => n + l.monthlyUsd, 0);

  // --- what needs a quota increase or exceeds the stack's limits -------------------------------
  const warnings: string[] = [];
  const lambdaTotal = concurrency + mapMaxConcurrency + 2;
  if (lambdaTotal > QUOTAS.lambdaConcurrency.value) {
    warnings.push(
      `Lambda: about ${fmt(lambdaTotal)} concurrent executions (consumer ${fmt(concurrency)}, rollup ${mapMaxConcurrency + 2}) exceed the default quota of ${fmt(QUOTAS.lambdaConcurrency.value)} per Region: request an increase (Service Quotas, "Concurrent executions") before the load arrives.`,
    );
  }
  if (concurrency > CONFIG_LIMITS.consumerReservedConcurrency) {
    warnings.push(
      `consumer concurrency ${fmt(concurrency)} is above what stacks/config.ts lets consumer.reservedConcurrency reserve (at most ${CONFIG_LIMITS.consumerReservedConcurrency}): leave it unset.`,
    );
  }
  if (mode === "PROVISIONED" && shards > CONFIG_LIMITS.streamShardCount) {
    warnings.push(
      `Kinesis: ${fmt(shards)} provisioned shards exceed stacks/config.ts's limit of ${CONFIG_LIMITS.streamShardCount} (stream.shardCount in stacks/config-schema.ts): raise that limit, or use ON_DEMAND (${usd(costs.onDemand)} a month instead of ${usd(costs.provisioned)}).`,
    );
  }
  if (shards > QUOTAS.kinesisShards.value) {
    warnings.push(
      `Kinesis: ${fmt(shards)} shards exceed the account's default of ${fmt(QUOTAS.kinesisShards.value)} (${QUOTAS.kinesisShards.what}): request an increase.`,
    );
  } else if (shards > 1000) {
    warnings.push(
      `Kinesis: ${fmt(shards)} shards: within the default ${fmt(QUOTAS.kinesisShards.value)} of us-east-1, us-west-2 and eu-west-1, above the 1,000 of some other Regions: check the Region's quota.`,
    );
  }
  if (mode === "ON_DEMAND" && bytesPerSecond > QUOTAS.kinesisOnDemandStartMBps.value * 1e6) {
    warnings.push(
      `Kinesis ON_DEMAND: a new stream takes ${QUOTAS.kinesisOnDemandStartMBps.value} MB/s of writes and scales with the traffic; ${fmt(bytesPerSecond / 1e6)} MB/s from the start is throttled (producers retry) until it has: ramp the load up, or start PROVISIONED.`,
    );
  }
  if (!choice.feasible) {
    warnings.push(
      choice.shards > CONFIG_LIMITS.memorydbShards ||
        choice.nodes > QUOTAS.memorydbMaxNodesPerCluster.value
        ? `MemoryDB: ${fmt(choice.shards)} shards of ${choice.nodeType} (${fmt(choice.nodes)} nodes) do not fit one cluster (at most ${CONFIG_LIMITS.memorydbShards} shards in stacks/config.ts and ${QUOTAS.memorydbMaxNodesPerCluster.value} nodes per cluster in MemoryDB): shorten retention (RETENTION_*), or keep fewer per-event-type keys, or split sites over stacks.`
        : `MemoryDB: ${choice.nodeType} × ${choice.shards} shards hold less than the load needs (${fmt(choice.memoryShards)} shards for memory, ${fmt(cpuShards)} for CPU).`,
    );
  }
  if (choice.nodes > QUOTAS.memorydbNodesPerCluster.value) {
    warnings.push(
      `MemoryDB: ${fmt(choice.nodes)} nodes exceed the default quota of ${QUOTAS.memorydbNodesPerCluster.value} nodes per cluster: request an increase (Service Quotas, MemoryDB "Nodes per cluster").`,
    );
  }
  if (choice.nodes > QUOTAS.memorydbNodesPerRegion.value) {
    warnings.push(
      `MemoryDB: ${fmt(choice.nodes)} nodes exceed the default quota of ${QUOTAS.memorydbNodesPerRegion.value} nodes per Region: request an increase.`,
    );
  }
  if (perShard / perInvocation > pfLimit) {
    warnings.push(
      `consumer: ${fmt(perShard)} records/s per shard need more than ${pfLimit} invocations per shard at ${fmt(perInvocation)} records/s each: add shards.`,
    );
  }
  if (pageSeconds > deployment.rollup.timeoutSeconds) {
    warnings.push(
      `rollup: a page of ${fmt(pageSize)} items takes about ${fmt(pageSeconds)} s, beyond rollup.timeoutSeconds (${deployment.rollup.timeoutSeconds} s): raise it (at most ${CONFIG_LIMITS.rollupTimeoutSeconds}) or the function's memory.`,
    );
  }
  if (runSeconds > scheduleMin * 60) {
    warnings.push(
      `rollup: a run takes about ${fmt(runSeconds)} s, longer than the ${scheduleMin}-minute schedule: runs queue on the lock; raise rollup.mapMaxConcurrency (at most ${CONFIG_LIMITS.rollupMapMaxConcurrency}), add shards, or run less often.`,
    );
  }
  warnings.push(
    "Kinesis records aggregated by the KPL (Kinesis Producer Library) are not supported: the consumer reads one JSON event per record and quarantines an aggregated one; producers must put one event per record (PutRecords takes up to 500 a call).",
  );

  const config: Record<string, string | number> = {
    "memorydb.nodeType": choice.nodeType,
    "memorydb.shards": choice.shards,
    "memorydb.replicasPerShard": replicasPerShard,
    "stream.mode": mode,
    ...(mode === "PROVISIONED" ? { "stream.shardCount": shards } : {}),
    "consumer.batchSize": batchSize,
    "consumer.parallelizationFactor": parallelizationFactor,
    "rollup.mapMaxConcurrency": mapMaxConcurrency,
    "budget.monthlyUsd": budgetUsd(totalMonthlyUsd),
  };

  const assumptions = [
    `prices: ${PRICE_REGION} on-demand list prices as of ${PRICES_AS_OF}, written into cli/capacity-prices.ts by hand, not fetched: check ${PRICE_PAGES.join(", ")}`,
    `MemoryDB ${engine}: node-hours as listed (Valkey ${(VALKEY_FACTOR * 100).toFixed(0)}% of Redis OSS); data written $${m.redisOssDataWrittenUsdPerGb}/GB (Redis OSS) or free up to ${fmt(m.valkeyFreeDataWrittenGbPerMonth)} GB a month, then $${m.valkeyDataWrittenUsdPerGb}/GB (Valkey); snapshots within the free allowance`,
    `Kinesis: on-demand $${PRICES.kinesis.onDemandStreamHourUsd}/stream-hour, $${PRICES.kinesis.onDemandIngestUsdPerGb}/GB in (records rounded up to 1 KB), $${PRICES.kinesis.onDemandRetrievalUsdPerGb}/GB out; provisioned $${PRICES.kinesis.provisionedShardHourUsd}/shard-hour, $${PRICES.kinesis.provisionedPutUnitUsdPerMillion}/million PUT payload units; a shard takes 1 MiB/s or 1,000 records/s, planned at ${KINESIS_FILL * 100}%`,
    `Lambda: $${PRICES.lambda.arm64UsdPerGbSecond}/GB-s (arm64), $${PRICES.lambda.requestUsdPerMillion}/million requests; a function gets a vCPU share of memory / ${LAMBDA_MB_PER_VCPU} MB (${LAMBDA_VCPU_SOURCE}); Step Functions $${PRICES.stepFunctions.standardUsdPerThousandTransitions}/1,000 transitions`,
    `fixed: SQS endpoint $${PRICES.vpcEndpointUsdPerAzHour}/AZ-hour, KMS $${PRICES.kmsKeyUsdPerMonth}/key-month, CloudWatch $${PRICES.cloudwatchAlarmMetricUsdPerMonth}/alarm metric, operator instance $${PRICES.operatorInstanceUsdPerMonth.toFixed(2)}/month; logs and data transfer not counted`,
    `memory: MEMORY USAGE by elements per key as measured (dense at ${fmt(hll.denseAtCardinality)} elements, ${fmt(hll.denseBytes)} bytes) + ${fmt(overhead)} bytes per key of server overhead; nodes planned ${MEMORY_FILL * 100}% full; data tiering keeps ${DATA_TIERING_RESERVED_DRAM * 100}% of DRAM for itself (${DATA_TIERING_SOURCE})`,
    `traffic: every active site has the mean traffic; per event type, events split evenly; weeks and months hold the elements of all their active days (no returning visitors): an upper bound for uv: keys. Memory is sized on the bound that holds however traffic is spread over sites`,
    `server CPU: ${serverUsPerEvent(constants).toFixed(2)} µs per event (the larger of the handler's batches and the bulk load into millions of keys) and ${constants.rollup.serverProcessCpuUsPerItem.toFixed(2)} µs per rollup item of redis-server process time, measured on ${constants.machine.cpuModel} (not Graviton), each primary's engine kept ${ENGINE_CPU_TARGET * 100}% busy at most`,
    `consumer: ${fmt(Math.min(constants.consumer.eventsPerSecond, CONSUMER_BENCH.recordsPerSecond))} events/s per invocation (the scale bench's handler, one batch at a time, with a million sites nearly every record a new key; the consumer bench measured ${fmt(CONSUMER_BENCH.recordsPerSecond)} with 5 sites) × the Lambda's vCPU share`,
    `rollup: every active site-day and its event types touched between runs (an upper bound), merged into its week and month; ${fmt(r.perWorkerItemsPerSecond)} items/s per MergePage task as measured locally, × the Lambda's vCPU share; pages as rollup.ts makes them (max(${ROLLUP_MIN_PAGE}, items / ${ROLLUP_MAX_PAGES})); transitions counted from state-machines/rollup.asl.json, retries not counted`,
  ];

  return {
    input,
    derived: { eventsPerDay, eventsPerSiteDay, sitesPerWeek, sitesPerMonth },
    keys,
    memory: { hllBytes, hllBytesBound, bookkeepingBytes, totalBytes, keys: keyCount },
    memorydb: {
      choice,
      ...(cheapestMemoryOnly ? { cheapestMemoryOnly } : {}),
      ...(cheapestDataTiering ? { cheapestDataTiering } : {}),
      engineCpuCores,
      dataWrittenGbPerMonth,
    },
    kinesis: {
      mode,
      recordBytes,
      bytesPerSecond,
      shards,
      provisionedMonthlyUsd: costs.provisioned,
      onDemandMonthlyUsd: costs.onDemand,
    },
    consumer: {
      perInvocationEventsPerSecond: perInvocation,
      batchSize,
      batchingWindowSeconds: window,
      parallelizationFactor,
      concurrency,
      invocationsPerMonth,
    },
    rollup: {
      scheduleMinutes: scheduleMin,
      runsPerMonth,
      itemsPerRun,
      pageSize,
      pages,
      mapMaxConcurrency,
      perWorkerItemsPerSecond: perWorker,
      planSeconds,
      serverSeconds,
      clientSeconds,
      runSeconds,
      pageSeconds,
      transitionsPerRun: perRun,
      transitionsPerMonth: runsPerMonth * perRun,
    },
    cost: { lines, totalMonthlyUsd },
    warnings,
    config,
    assumptions,
    constants: {
      measuredAt: constants.measuredAt,
      machine: `${constants.machine.cores} × ${constants.machine.cpuModel}`,
      redis: constants.versions.redisServer,
    },
  };
}

/** A budget from an estimate: rounded up to the next $10. */
export function budgetUsd(monthlyUsd: number): number {
  return Math.max(10, Math.ceil(monthlyUsd / 10) * 10);
}

/** The defaults of the optional inputs, given the required ones. */
export function withDefaults(
  given: Pick<CapacityInput, "eventsPerSecond" | "sites"> & Partial<CapacityInput>,
): CapacityInput {
  const eventTypes = given.eventTypes ?? DEFAULT_EVENT_TYPES;
  const activeSitesPerDay = given.activeSitesPerDay ?? given.sites;
  const eventsPerSiteDay = (given.eventsPerSecond * 86_400) / activeSitesPerDay;
  return {
    eventsPerSecond: given.eventsPerSecond,
    sites: given.sites,
    eventTypes,
    activeSitesPerDay,
    usersPerSiteDay:
      given.usersPerSiteDay ?? Math.max(1, eventsPerSiteDay / DEFAULT_EVENTS_PER_USER),
  };
}

/** Checks an input's values together; each problem names its flag. */
export function checkInput(input: CapacityInput): void {
  const problems: string[] = [];
  if (input.activeSitesPerDay > input.sites) {
    problems.push(
      `--active-sites-per-day (${fmt(input.activeSitesPerDay)}) cannot exceed --sites (${fmt(input.sites)})`,
    );
  }
  const eventsPerSiteDay = (input.eventsPerSecond * 86_400) / input.activeSitesPerDay;
  if (input.usersPerSiteDay > eventsPerSiteDay) {
    problems.push(
      `--users-per-site-day (${fmt(input.usersPerSiteDay)}) cannot exceed the events per site-day the other flags give (${fmt(eventsPerSiteDay)} = events/s × 86,400 / active sites): every user makes at least one event`,
    );
  }
  if (problems.length > 0) throw new UsageError(`capacity: ${problems.join("; ")}`);
}

// ---------------------------------------------------------------------------------------------
// A stack configuration: the load it is sized for, its cost there, and its budget.

/**
 * The load a deployment is sized for: at one event per second per site (the ratio of the issue's
 * million sites at a million events a second), the most sites whose keys fit its cluster
 * (MEMORY_FILL of every primary's memory) and whose events its primaries' engines take at
 * ENGINE_CPU_TARGET, with the other inputs at their defaults.
 */
export function sizedLoad(
  deployment: DeploymentShape,
  constants: ScaleConstants,
  path: SuccessPath = rollupSuccessPath(),
): CapacityInput {
  const type = nodeTypeNamed(deployment.memorydb.nodeType);
  if (type === undefined) {
    throw new RangeError(
      `node type ${deployment.memorydb.nodeType} is not in the planner's price table (cli/capacity-prices.ts)`,
    );
  }
  const fits = (sites: number) => {
    const plan = planCapacity(
      withDefaults({ eventsPerSecond: sites, sites }),
      constants,
      deployment,
      { nodeType: type.name, shards: deployment.memorydb.shards },
      path,
    );
    const option = plan.memorydb.choice;
    return option.memoryShards <= option.shards && option.cpuShards <= option.shards;
  };
  let low = 1;
  let high = 2;
  while (fits(high) && high < 1e12) {
    low = high;
    high *= 2;
  }
  if (!fits(low)) return withDefaults({ eventsPerSecond: 1, sites: 1 });
  while (high - low > 1) {
    const mid = Math.floor((low + high) / 2);
    if (fits(mid)) low = mid;
    else high = mid;
  }
  return withDefaults({ eventsPerSecond: low, sites: low });
}

/** The plan of a deployment as configured (its node type, shards, stream, factor and Map). */
export function costOfDeployment(
  deployment: DeploymentShape,
  input: CapacityInput,
  constants: ScaleConstants,
  path: SuccessPath = rollupSuccessPath(),
): CapacityPlan {
  return planCapacity(
    input,
    constants,
    deployment,
    {
      nodeType: deployment.memorydb.nodeType,
      shards: deployment.memorydb.shards,
      streamMode: deployment.stream.mode,
      ...(deployment.stream.shardCount === undefined
        ? {}
        : { streamShards: deployment.stream.shardCount }),
      parallelizationFactor: deployment.consumer.parallelizationFactor,
      mapMaxConcurrency: deployment.rollup.mapMaxConcurrency,
    },
    path,
  );
}

/** The monthly budget of a deployment: its cost at the load it is sized for, rounded up to $10. */
export function deploymentBudget(
  deployment: DeploymentShape,
  constants: ScaleConstants,
  path: SuccessPath = rollupSuccessPath(),
): { load: CapacityInput; plan: CapacityPlan; monthlyUsd: number } {
  const load = sizedLoad(deployment, constants, path);
  const plan = costOfDeployment(deployment, load, constants, path);
  return { load, plan, monthlyUsd: budgetUsd(plan.cost.totalMonthlyUsd) };
}

// ---------------------------------------------------------------------------------------------
// The command.

export interface CapacityDeps extends CliIo {
  /** The constants file; default bench/results/scale-constants.json. */
  readonly constantsPath?: string;
}

function positiveNumber(flag: string, text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  const n = Number(text.replaceAll("_", ""));
  if (!/^\d+(\.\d+)?(e\d+)?$/i.test(text.replaceAll("_", "")) || !Number.isFinite(n) || n <= 0) {
    throw new UsageError(
      `--${flag} must be a number above 0 (e.g. 1000000, 1e6 or 1_000_000), got "${text}"`,
    );
  }
  return n;
}

function wholeNumber(
  flag: string,
  text: string | undefined,
  min: number,
  max: number,
): number | undefined {
  const n = positiveNumber(flag, text);
  if (n === undefined) return undefined;
  if (!Number.isInteger(n) || n < min || n > max) {
    throw new UsageError(
      `--${flag} must be a whole number from ${fmt(min)} to ${fmt(max)}, got "${text}"`,
    );
  }
  return n;
}

export function parseCapacityArgs(args: readonly string[]): {
  input: CapacityInput;
  json: boolean;
  constants?: string;
} {
  const flags = parseFlags("capacity", args, {
    "events-per-second": { type: "string" },
    sites: { type: "string" },
    "event-types": { type: "string" },
    "active-sites-per-day": { type: "string" },
    "users-per-site-day": { type: "string" },
    constants: { type: "string" },
    json: { type: "boolean", default: false },
  });
  const eventsPerSecond = positiveNumber("events-per-second", flags["events-per-second"]);
  const sites = wholeNumber("sites", flags.sites, 1, 1e12);
  const missing = [
    ...(eventsPerSecond === undefined ? ["--events-per-second N"] : []),
    ...(sites === undefined ? ["--sites N"] : []),
  ];
  if (eventsPerSecond === undefined || sites === undefined) {
    throw new UsageError(`capacity needs ${missing.join(" and ")}`);
  }
  const eventTypes = wholeNumber("event-types", flags["event-types"], 1, 1000);
  const activeSitesPerDay = wholeNumber(
    "active-sites-per-day",
    flags["active-sites-per-day"],
    1,
    1e12,
  );
  const usersPerSiteDay = positiveNumber("users-per-site-day", flags["users-per-site-day"]);
  const input = withDefaults({
    eventsPerSecond,
    sites,
    ...(eventTypes === undefined ? {} : { eventTypes }),
    ...(activeSitesPerDay === undefined ? {} : { activeSitesPerDay }),
    ...(usersPerSiteDay === undefined ? {} : { usersPerSiteDay }),
  });
  checkInput(input);
  return { input, json: flags.json, ...(flags.constants ? { constants: flags.constants } : {}) };
}

export async function runCapacity(args: readonly string[], deps: CapacityDeps): Promise<number> {
  const parsed = parseCapacityArgs(args);
  const constants = loadScaleConstants(
    parsed.constants ?? deps.constantsPath ?? DEFAULT_CONSTANTS_PATH,
  );
  let plan: CapacityPlan;
  try {
    plan = planCapacity(parsed.input, constants);
  } catch (err) {
    throw new UsageError(`capacity: ${messageOf(err)}`);
  }
  deps.stdout.write(parsed.json ? `${JSON.stringify(plan, null, 2)}\n` : formatPlan(plan));
  return EXIT_OK;
}

// ---------------------------------------------------------------------------------------------
// Text output.

function fmt(n: number): string {
  if (!Number.isFinite(n)) return String(n);
  const abs = Math.abs(n);
  const digits = abs >= 100 || Number.isInteger(n) ? 0 : abs >= 1 ? 1 : 3;
  return n.toLocaleString("en-US", { maximumFractionDigits: digits, minimumFractionDigits: 0 });
}

function usd(n: number): string {
  return `$${n.toLocaleString("en-US", { maximumFractionDigits: n >= 100 ? 0 : 2, minimumFractionDigits: n >= 100 ? 0 : 2 })}`;
}

function gib(bytes: number): string {
  const g = bytes / GIB;
  return g >= 1024
    ? `${fmt(g / 1024)} TiB`
    : g >= 1
      ? `${fmt(g)} GiB`
      : `${fmt(bytes / 2 ** 20)} MiB`;
}

function columns(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const line = (cells: readonly string[]) =>
    cells
      .map((c, i) => (i === 0 ? c.padEnd(widths[i] ?? 0) : c.padStart(widths[i] ?? 0)))
      .join("  ")
      .trimEnd();
  return [line(header), ...rows.map(line)].join("\n");
}

function optionText(o: MemoryDbOption): string {
  return `${fmt(o.shards)} × ${o.nodeType}${o.dataTiering ? " (data tiering)" : ""}, ${o.replicasPerShard} replica(s) each = ${fmt(o.nodes)} nodes, ${usd(o.monthlyUsd)}/month`;
}

export function formatPlan(plan: CapacityPlan): string {
  const i = plan.input;
  const d = plan.derived;
  const out: string[] = [];
  out.push(
    `Capacity for ${fmt(i.eventsPerSecond)} events/s over ${fmt(i.sites)} sites (${fmt(i.activeSitesPerDay)} active a day, ${i.eventTypes} event types, ${fmt(d.eventsPerSiteDay)} events and ${fmt(i.usersPerSiteDay)} users per site-day)`,
  );
  out.push(
    `constants: bench:scale of ${plan.constants.measuredAt} on ${plan.constants.machine}, ${plan.constants.redis.split(" sha=")[0]}; prices: ${PRICE_REGION}, as of ${PRICES_AS_OF} (assumptions below)`,
  );
  out.push("");
  out.push("Keys and memory at steady state (each period's keys live retention + 1 periods):");
  out.push(
    columns(
      ["family", "period", "keys", "elements/key (site, per type)", "encoding", "memory", "bound"],
      plan.keys.map((k) => [
        `${k.family}:`,
        k.period,
        fmt(k.siteKeys + k.typeKeys),
        `${fmt(k.siteElements)}, ${fmt(k.typeElements)}`,
        `${k.siteDense ? "dense" : "sparse"}, ${k.typeDense ? "dense" : "sparse"}`,
        gib(k.bytes),
        gib(k.bytesBound),
      ]),
    ),
  );
  const m = plan.memory;
  out.push(
    `total: ${fmt(m.keys)} keys, ${gib(m.hllBytes)} with every site average, at most ${gib(m.hllBytesBound)} however traffic is spread; bookkeeping and site sets at the peak of a run ${gib(m.bookkeepingBytes)}; sized for ${gib(m.totalBytes)}`,
  );
  out.push("");
  const db = plan.memorydb;
  out.push(`MemoryDB: ${optionText(db.choice)}`);
  out.push(
    `  shards for memory ${fmt(db.choice.memoryShards)}, for CPU ${fmt(db.choice.cpuShards)} (${fmt(db.engineCpuCores)} engine cores busy at this load); data written ${fmt(db.dataWrittenGbPerMonth)} GB/month`,
  );
  if (db.cheapestMemoryOnly)
    out.push(`  cheapest without data tiering: ${optionText(db.cheapestMemoryOnly)}`);
  if (db.cheapestDataTiering)
    out.push(`  cheapest with data tiering: ${optionText(db.cheapestDataTiering)}`);
  out.push("");
  const k = plan.kinesis;
  out.push(
    `Kinesis: ${k.mode}: ${fmt(i.eventsPerSecond)} records/s of ${fmt(k.recordBytes)} bytes (${fmt(k.bytesPerSecond / 1e6)} MB/s) take ${fmt(k.shards)} shard${k.shards === 1 ? "" : "s"} at ${KINESIS_FILL * 100}%; provisioned ${usd(k.provisionedMonthlyUsd)}/month, on-demand ${usd(k.onDemandMonthlyUsd)}/month`,
  );
  const c = plan.consumer;
  out.push(
    `Consumer: batch size ${fmt(c.batchSize)}, batching window ${c.batchingWindowSeconds} s, parallelization factor ${c.parallelizationFactor}, concurrency ${fmt(c.concurrency)} (shards × factor); ${fmt(c.perInvocationEventsPerSecond)} events/s per invocation`,
  );
  const r = plan.rollup;
  out.push(
    `Rollup (every ${r.scheduleMinutes} min): ${fmt(r.itemsPerRun)} items in ${fmt(r.pages)} pages of ${fmt(r.pageSize)}; Map concurrency ${r.mapMaxConcurrency}; a run takes about ${fmt(r.runSeconds)} s (plan ${fmt(r.planSeconds)} s; merges: Redis ${fmt(r.serverSeconds)} s, tasks ${fmt(r.clientSeconds)} s; a page ${fmt(r.pageSeconds)} s)`,
  );
  out.push(
    `Step Functions: ${fmt(r.transitionsPerRun)} state transitions per run, ${fmt(r.transitionsPerMonth)} a month`,
  );
  out.push("");
  out.push("Monthly cost:");
  out.push(
    columns(
      ["item", "USD/month", "how"],
      [
        ...plan.cost.lines.map((l) => [l.item, usd(l.monthlyUsd), l.detail]),
        ["total", usd(plan.cost.totalMonthlyUsd), ""],
      ],
    ),
  );
  out.push("");
  out.push("Quotas and limits:");
  for (const w of plan.warnings) out.push(`  - ${w}`);
  out.push("");
  out.push("stacks/config.ts values for this load:");
  for (const [field, value] of Object.entries(plan.config)) {
    out.push(`  ${field}: ${typeof value === "string" ? JSON.stringify(value) : value}`);
  }
  out.push("");
  out.push("Assumptions:");
  for (const a of plan.assumptions) out.push(`  - ${a}`);
  return `${out.join("\n")}\n`;
}
