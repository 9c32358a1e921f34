/**
 * The measured constants of the capacity planner: what `npm run bench:scale` writes to
 * bench/results/scale-constants.json and `npm run cli -- capacity` reads. One valibot schema
 * for both sides: the bench validates what it writes, the planner refuses a file that is
 * missing, unreadable or of another format version (with the command that makes a new one).
 *
 * Also the rollup state machine's cost per execution in Step Functions state transitions,
 * counted from the ASL itself (state-machines/rollup.asl.json), so both the bench and the
 * planner follow the definition the stack deploys.
 */

import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import * as v from "valibot";
import { messageOf } from "../functions/domain/errors.js";
import { CliError } from "./io.js";

/** Bumped whenever a field is added, removed or changes meaning; the planner refuses others. */
export const SCALE_CONSTANTS_FORMAT = 2;

const PROJECT_ROOT = join(dirname(fileURLToPath(import.meta.url)), "..");
/** Where `npm run bench:scale` writes its constants and the planner reads them by default. */
export const DEFAULT_CONSTANTS_PATH = join(
  PROJECT_ROOT,
  "bench",
  "results",
  "scale-constants.json",
);
/** The rollup state machine the stack deploys. */
export const ROLLUP_ASL_PATH = join(PROJECT_ROOT, "state-machines", "rollup.asl.json");

const count = v.pipe(v.number(), v.integer(), v.minValue(0));
const positive = v.pipe(v.number(), v.gtValue(0));
const nonNegative = v.pipe(v.number(), v.minValue(0));

const CommandStat = v.object({ command: v.string(), calls: count, usec: count });

const PrimaryBookkeeping = v.object({
  port: count,
  /** Bookkeeping keys (every `sketchstream:*` key but the per-site event-type sets). */
  keys: count,
  bytes: count,
});

const BookkeepingSnapshot = v.object({
  perPrimary: v.array(PrimaryBookkeeping),
  /** Bytes of the busiest primary over the mean of all primaries. */
  maxOverMean: nonNegative,
  /** Every bookkeeping key seen, with its primary, type, members and bytes. */
  keys: v.array(
    v.object({ key: v.string(), port: count, type: v.string(), members: count, bytes: count }),
  ),
});

const FamilyPeriodMemory = v.object({
  family: v.picklist(["uv", "ev"]),
  period: v.picklist(["day", "week", "month"]),
  /** Keys of this family and period at the bench's number of sites (estimated from the sample). */
  keys: nonNegative,
  sampledKeys: count,
  sparseShare: nonNegative,
  denseShare: nonNegative,
  bytesPerKey: nonNegative,
  bytes: nonNegative,
  /** How the figure was obtained (sample, scaling from the merged sites). */
  source: v.string(),
});

export const ScaleConstantsSchema = v.object({
  formatVersion: v.literal(SCALE_CONSTANTS_FORMAT),
  /** UTC date the bench ran, YYYY-MM-DD. */
  measuredAt: v.pipe(v.string(), v.regex(/^\d{4}-\d{2}-\d{2}$/)),
  machine: v.object({
    cores: count,
    cpuModel: v.string(),
    memoryBytes: count,
    platform: v.string(),
    arch: v.string(),
  }),
  versions: v.object({ node: v.string(), redisServer: v.string() }),
  inputs: v.object({
    sites: count,
    zipfExponent: nonNegative,
    maxUsersPerSite: count,
    eventsPerUser: count,
    eventTypeShares: v.record(v.string(), nonNegative),
    batchSize: count,
    mergeSites: count,
    mapConcurrency: count,
    seed: count,
    day: v.string(),
    primaries: count,
    memorySample: v.object({ headSites: count, tailSites: count }),
  }),
  generated: v.object({
    events: count,
    users: count,
    /** Members the consumer added to the touched set: (site, day) and (site, day, event). */
    touchedMembers: count,
    /** Mean Kinesis record data, bytes (JSON before base64). */
    recordBytes: positive,
  }),
  hll: v.object({
    /** The server's hll-sparse-max-bytes. */
    sparseMaxBytes: count,
    /** Distinct elements, added one by one to a fresh key, at which it turned dense. */
    denseAtCardinality: count,
    /** MEMORY USAGE of a dense key. */
    denseBytes: count,
    /** Length of the probe key's name (MEMORY USAGE includes it). */
    keyNameBytes: count,
    /** MEMORY USAGE of the probe key as it grew, sparse until denseAtCardinality. */
    bytesByCardinality: v.array(v.object({ cardinality: count, bytes: count, dense: v.boolean() })),
  }),
  memory: v.object({
    byFamilyPeriod: v.array(FamilyPeriodMemory),
    /** used_memory of all primaries after the ingest minus before it. */
    usedMemoryDeltaBytes: v.number(),
    /** Sum of MEMORY USAGE of the HLL keys and site event-type sets the ingest made (estimated). */
    keyBytesEstimate: nonNegative,
    /** used_memory delta (less the bookkeeping) over the MEMORY USAGE sum: what the server adds. */
    overheadFactor: nonNegative,
    /** HLL keys and event-type sets the ingest made (estimated from the sample). */
    keysEstimate: nonNegative,
    /** What the server holds per key beyond MEMORY USAGE (dict and expiry entries), bytes. */
    perKeyOverheadBytes: v.number(),
    /** MEMORY USAGE of one site's event-type set, mean of a sample. */
    siteEventTypesBytesPerSite: nonNegative,
  }),
  bookkeeping: v.object({
    afterIngest: BookkeepingSnapshot,
    afterPlan: BookkeepingSnapshot,
    bytesPerTouchedMember: nonNegative,
    bytesPerWorkItem: nonNegative,
    bytesPerSiteIndexMember: nonNegative,
  }),
  consumer: v.object({
    how: v.string(),
    events: count,
    batches: count,
    /** Events of the batches the handler ran (one at a time), and its time for them. */
    timedEvents: count,
    handlerMs: positive,
    /** Events per second of one handler with one batch in flight (a Lambda invocation's shape). */
    eventsPerSecond: positive,
    /** The other events, planned by planBatch and written pipelined (loading, not measuring). */
    loadEvents: count,
    loadMs: nonNegative,
    loadEventsPerSecond: nonNegative,
    /** This process's CPU per event while the handler ran the timed batches. */
    clientCpuUsPerEvent: nonNegative,
    /** INFO commandstats usec of every command, all primaries, per event. */
    serverCommandUsPerEvent: nonNegative,
    /** CPU time of the redis-server processes (/proc), per event: includes network and parsing. */
    serverProcessCpuUsPerEvent: nonNegative,
    /** total_net_input_bytes of the primaries per event: the bytes of the write commands. */
    netInputBytesPerEvent: nonNegative,
    /** redis-server process CPU per event while loading (bigger pipelines than the handler's). */
    loadServerProcessCpuUsPerEvent: nonNegative,
    commands: v.array(CommandStat),
  }),
  /**
   * A scheduled run. Rates are per work item: a touched (site, day[, event]) member, merged into
   * its week and its month (format 1 counted those two merges as two items).
   */
  rollup: v.object({
    how: v.string(),
    planMs: nonNegative,
    items: count,
    pageSize: count,
    pages: count,
    mergedPages: count,
    mergedItems: count,
    /** The merged pages' own count: (site, period[, event]) merges, two per work item. */
    mergedSitePeriods: count,
    mergedSites: count,
    mapConcurrency: count,
    mergeWallMs: nonNegative,
    itemsPerSecond: nonNegative,
    /** itemsPerSecond over the Map concurrency: one MergePage task's rate. */
    perWorkerItemsPerSecond: nonNegative,
    /** Merge time of every item of the plan: measured when all were merged, else extrapolated. */
    fullMergeMs: nonNegative,
    extrapolated: v.boolean(),
    serverCommandUsPerItem: nonNegative,
    serverProcessCpuUsPerItem: nonNegative,
    pfmergeUsPerCall: nonNegative,
    netInputBytesPerItem: nonNegative,
    commands: v.array(CommandStat),
  }),
  stepFunctions: v.object({
    fixedStates: v.array(v.string()),
    perPageStates: v.array(v.string()),
    pages: count,
    transitionsPerRun: count,
  }),
  wallMs: nonNegative,
});

export type ScaleConstants = v.InferOutput<typeof ScaleConstantsSchema>;

/** The constants in `path`, checked; a missing, unreadable or stale file says how to remake it. */
export function loadScaleConstants(path: string = DEFAULT_CONSTANTS_PATH): ScaleConstants {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (err) {
    throw new CliError(
      `cannot read the measured constants ${path} (${messageOf(err)}): run \`npm run bench:scale\` to measure them (about 20 minutes), or pass --constants <file>`,
    );
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new CliError(
      `${path} is not JSON (${messageOf(err)}): run \`npm run bench:scale\` again`,
    );
  }
  const result = v.safeParse(ScaleConstantsSchema, json);
  if (!result.success) {
    const issue = result.issues[0];
    const where = issue.path?.map((p) => String(p.key)).join(".") ?? "(file)";
    const found =
      typeof json === "object" && json !== null && "formatVersion" in json
        ? String(json.formatVersion)
        : "none";
    throw new CliError(
      `${path} is not in the format this planner reads (formatVersion ${SCALE_CONSTANTS_FORMAT}; the file has ${found}; first problem at ${where}: ${issue.message}): run \`npm run bench:scale\` to measure them again`,
    );
  }
  return result.output;
}

/** The states one execution passes through on its way to success: fixed, and per page. */
export interface SuccessPath {
  readonly fixedStates: readonly string[];
  readonly perPageStates: readonly string[];
}

type AslState = {
  readonly Type?: string;
  readonly Next?: string;
  readonly End?: boolean;
  readonly Choices?: readonly { readonly Next?: string }[];
  readonly ItemProcessor?: AslMachine;
  readonly Iterator?: AslMachine;
};
type AslMachine = { readonly StartAt?: string; readonly States?: Record<string, AslState> };

/**
 * Walks an ASL definition from StartAt along the path of a successful execution: `Next` of
 * each state, the first rule of a Choice (the definition lists its success branch first: the
 * lock was taken), until a state ends. A Map's item processor is walked the same way: those are
 * the states of every page. Retries and the lock wait add transitions this does not count.
 */
export function successPath(definition: unknown): SuccessPath {
  const fixed: string[] = [];
  const perPage: string[] = [];
  const walk = (machine: AslMachine, into: string[], what: string) => {
    const states = machine.States ?? {};
    let name = machine.StartAt;
    const seen = new Set<string>();
    while (name !== undefined) {
      if (seen.has(name)) throw new Error(`${what}: the success path loops at state ${name}`);
      seen.add(name);
      const state = states[name];
      if (state === undefined) throw new Error(`${what}: no state named ${name}`);
      into.push(name);
      const processor = state.ItemProcessor ?? state.Iterator;
      if (state.Type === "Map" && processor) walk(processor, perPage, `${what} ${name}`);
      if (state.End === true || state.Type === "Succeed" || state.Type === "Fail") break;
      name = state.Type === "Choice" ? state.Choices?.[0]?.Next : state.Next;
    }
  };
  const machine = definition as AslMachine;
  if (typeof definition !== "object" || definition === null || machine.StartAt === undefined) {
    throw new Error("the ASL definition has no StartAt");
  }
  walk(machine, fixed, "ASL");
  return { fixedStates: fixed, perPageStates: perPage };
}

/** The success path of the deployed rollup definition (placeholders need no values to walk it). */
export function rollupSuccessPath(path: string = ROLLUP_ASL_PATH): SuccessPath {
  return successPath(JSON.parse(readFileSync(path, "utf8")));
}

/** State transitions of one successful execution with `pages` pages. */
export function transitionsPerRun(path: SuccessPath, pages: number): number {
  return path.fixedStates.length + path.perPageStates.length * pages;
}
