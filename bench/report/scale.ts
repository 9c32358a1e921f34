/**
 * The scale benchmark (bench/scale.ts `runScaleBench`: its own 3-primary Redis Cluster, the
 * real consumer handler and rollup handlers) at a reduced size, side by side with the full-size
 * figures quoted from bench/results/scale-constants.json with that file's own date and machine
 * (the full run, `npm run bench:scale`, takes 5–20 minutes and stays separate).
 *
 * The reduced run writes its constants to a temporary file, never to the planner's file. Each
 * constant the operator (or the capacity planner) reads is shown for both runs with the ratio
 * this / full, so the block says which figures a quick run reproduces and which depend on the
 * population's size.
 */

import { mkdtemp, rm } from "node:fs/promises";
import { availableParallelism, loadavg, tmpdir } from "node:os";
import { dirname, isAbsolute, join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import {
  DEFAULT_CONSTANTS_PATH,
  loadScaleConstants,
  type ScaleConstants,
} from "../../cli/capacity-constants.js";
import type { Closer } from "../lib.js";
import { runScaleBench, SCALE_DEFAULTS, type ScaleBenchOptions } from "../scale.js";
import type { Figure } from "./charts.js";
import { fmtInt } from "./stats.js";
import type { ExperimentContext, ExperimentOutput } from "./types.js";

export interface ScaleSizes {
  readonly sites: number;
  /** Users of the largest site (users of rank r: max(1, round(maxUsers / r))). */
  readonly maxUsers: number;
  /** About how many sites' rollup pages are merged (the rest extrapolated). */
  readonly mergeSites: number;
  /** The largest sites, all sampled for memory, and how many of the others. */
  readonly headSites: number;
  readonly tailSample: number;
  /** Consumer batches through the handler, one at a time, timed. */
  readonly timedBatches: number;
  /** The full-size constants quoted beside the run (default bench/results/scale-constants.json). */
  readonly fullConstantsPath?: string;
  /** The run's clock, epoch ms (default: the real clock). */
  readonly nowMs?: number;
}

/**
 * The full run's population scaled down tenfold: a tenth of the sites with a tenth of the largest
 * site's users (the same maxUsers / sites, so the same share of sites with k users, and, as at
 * full size, nearly every record a new key); merges and memory sample in proportion, and enough
 * timed batches for a steady rate. About a minute on 2 idle cores.
 */
export const SCALE_DEFAULT: ScaleSizes = {
  sites: SCALE_DEFAULTS.sites / 10,
  maxUsers: SCALE_DEFAULTS.maxUsers / 10,
  mergeSites: SCALE_DEFAULTS.mergeSites / 10,
  headSites: SCALE_DEFAULTS.headSites / 10,
  tailSample: SCALE_DEFAULTS.tailSample / 10,
  timedBatches: 30,
};

/** A few seconds inside `npm test`. */
export const SCALE_SMALL: ScaleSizes = {
  sites: 500,
  maxUsers: 250,
  mergeSites: 250,
  headSites: 500,
  tailSample: 0,
  timedBatches: 2,
};

export interface ScaleResult {
  readonly sizes: ScaleSizes;
  readonly options: ScaleBenchOptions;
  /** This run's constants (written to a temporary file, removed after). */
  readonly reduced: ScaleConstants;
  /** The full-size constants, as their own run wrote them. */
  readonly full: ScaleConstants;
  readonly fullPath: string;
  readonly seconds: number;
  /** The machine's 1-minute load average when the run started and when it ended, and its cores. */
  readonly load: { readonly start: number; readonly end: number; readonly cores: number };
}

const PROJECT_ROOT = join(dirname(fileURLToPath(import.meta.url)), "..", "..");

/** A path inside the repository relative to its root, any other as given. */
function shownPath(path: string): string {
  const inside = relative(PROJECT_ROOT, path);
  return inside === "" || inside.startsWith("..") || isAbsolute(inside) ? path : inside;
}

/** Runs the closers once, in reverse, every one even when one fails; throws the first failure. */
function closeOnce(closers: Closer[]): () => Promise<void> {
  let done: Promise<void> | undefined;
  return () => {
    done ??= (async () => {
      let failure: unknown;
      for (const close of closers.reverse()) {
        try {
          await close();
        } catch (err) {
          failure ??= err;
        }
      }
      if (failure !== undefined) throw failure;
    })();
    return done;
  };
}

export async function measureScale(
  sizes: ScaleSizes,
  context: ExperimentContext,
): Promise<ScaleResult> {
  const fullPath = sizes.fullConstantsPath ?? DEFAULT_CONSTANTS_PATH;
  const full = loadScaleConstants(fullPath);
  const started = performance.now();
  const loadStart = loadavg()[0] ?? Number.NaN;
  // The run's cluster and temporary file are closed as soon as it ends (not with the report),
  // and by the report's closers on an interrupt.
  const own: Closer[] = [];
  const close = closeOnce(own);
  context.closers.push(close);
  try {
    const dir = await mkdtemp(join(tmpdir(), "sketchstream-report-scale-"));
    own.push(() => rm(dir, { recursive: true, force: true }));
    const options: ScaleBenchOptions = {
      ...SCALE_DEFAULTS,
      sites: sizes.sites,
      maxUsers: sizes.maxUsers,
      mergeSites: sizes.mergeSites,
      headSites: Math.min(sizes.headSites, sizes.sites),
      tailSample: sizes.tailSample,
      timedBatches: sizes.timedBatches,
      output: join(dir, "scale-constants.json"),
      nowMs: sizes.nowMs ?? Date.now(),
    };
    if (options.output === DEFAULT_CONSTANTS_PATH)
      throw new Error("refusing to overwrite the planner's constants");
    context.progress(`scale: ${fmtInt(sizes.sites)} sites through the consumer and the rollup`);
    const reduced = await runScaleBench(
      options,
      own,
      () => {},
      (text) => {
        if (text !== "") context.progress(`scale: ${text}`);
      },
    );
    return {
      sizes,
      options,
      reduced,
      full,
      fullPath,
      seconds: (performance.now() - started) / 1000,
      load: { start: loadStart, end: loadavg()[0] ?? Number.NaN, cores: availableParallelism() },
    };
  } finally {
    await close();
  }
}

// ---------------------------------------------------------------------------------------------
// The constants compared.

export type ConstantGroup = "consumer" | "rollup" | "HLL and memory" | "bookkeeping";

export interface ConstantRow {
  readonly group: ConstantGroup;
  readonly name: string;
  readonly unit: string;
  readonly reduced: number;
  readonly full: number;
  /** reduced / full (NaN when full is 0). */
  readonly ratio: number;
  /** Whether the capacity planner (cli/capacity.ts) reads it. */
  readonly planner: boolean;
}

type Pick = (c: ScaleConstants) => number;

const bytesPerKey =
  (family: "uv" | "ev", period: "day" | "week" | "month"): Pick =>
  (c) =>
    c.memory.byFamilyPeriod.find((r) => r.family === family && r.period === period)?.bytesPerKey ??
    Number.NaN;

const CONSTANTS: readonly {
  group: ConstantGroup;
  name: string;
  unit: string;
  pick: Pick;
  planner: boolean;
}[] = [
  {
    group: "consumer",
    name: "events/s per invocation",
    unit: "events/s",
    pick: (c) => c.consumer.eventsPerSecond,
    planner: true,
  },
  {
    group: "consumer",
    name: "mean Kinesis record (JSON)",
    unit: "bytes",
    pick: (c) => c.generated.recordBytes,
    planner: true,
  },
  {
    group: "consumer",
    name: "client CPU per event",
    unit: "µs",
    pick: (c) => c.consumer.clientCpuUsPerEvent,
    planner: false,
  },
  {
    group: "consumer",
    name: "redis-server CPU per event",
    unit: "µs",
    pick: (c) => c.consumer.serverProcessCpuUsPerEvent,
    planner: true,
  },
  {
    group: "consumer",
    name: "redis-server CPU per event, bulk load",
    unit: "µs",
    pick: (c) => c.consumer.loadServerProcessCpuUsPerEvent,
    planner: true,
  },
  {
    group: "consumer",
    name: "bytes written per event",
    unit: "bytes",
    pick: (c) => c.consumer.netInputBytesPerEvent,
    planner: true,
  },
  {
    group: "rollup",
    name: "plan, items/s",
    unit: "items/s",
    pick: (c) => (c.rollup.planMs > 0 ? (c.rollup.items / c.rollup.planMs) * 1000 : Number.NaN),
    planner: true,
  },
  {
    group: "rollup",
    name: "merge items/s (all pages at once)",
    unit: "items/s",
    pick: (c) => c.rollup.itemsPerSecond,
    planner: false,
  },
  {
    group: "rollup",
    name: "merge items/s per MergePage task",
    unit: "items/s",
    pick: (c) => c.rollup.perWorkerItemsPerSecond,
    planner: true,
  },
  {
    group: "rollup",
    name: "redis-server CPU per merged item",
    unit: "µs",
    pick: (c) => c.rollup.serverProcessCpuUsPerItem,
    planner: true,
  },
  {
    group: "rollup",
    name: "PFMERGE per call",
    unit: "µs",
    pick: (c) => c.rollup.pfmergeUsPerCall,
    planner: false,
  },
  {
    group: "rollup",
    name: "bytes written per merged item",
    unit: "bytes",
    pick: (c) => c.rollup.netInputBytesPerItem,
    planner: true,
  },
  {
    group: "HLL and memory",
    name: "a key turns dense at (distinct ids)",
    unit: "ids",
    pick: (c) => c.hll.denseAtCardinality,
    planner: true,
  },
  {
    group: "HLL and memory",
    name: "dense key (MEMORY USAGE)",
    unit: "bytes",
    pick: (c) => c.hll.denseBytes,
    planner: true,
  },
  ...(["uv", "ev"] as const).flatMap((family) =>
    (["day", "week", "month"] as const).map((period) => ({
      group: "HLL and memory" as const,
      name: `bytes per ${family}: ${period} key (mean)`,
      unit: "bytes",
      pick: bytesPerKey(family, period),
      planner: false,
    })),
  ),
  {
    group: "HLL and memory",
    name: "server overhead per key",
    unit: "bytes",
    pick: (c) => c.memory.perKeyOverheadBytes,
    planner: true,
  },
  {
    group: "HLL and memory",
    name: "a site's event-type set",
    unit: "bytes",
    pick: (c) => c.memory.siteEventTypesBytesPerSite,
    planner: true,
  },
  {
    group: "bookkeeping",
    name: "bytes per touched member",
    unit: "bytes",
    pick: (c) => c.bookkeeping.bytesPerTouchedMember,
    planner: true,
  },
  {
    group: "bookkeeping",
    name: "bytes per work item",
    unit: "bytes",
    pick: (c) => c.bookkeeping.bytesPerWorkItem,
    planner: true,
  },
  {
    group: "bookkeeping",
    name: "bytes per site-index member",
    unit: "bytes",
    pick: (c) => c.bookkeeping.bytesPerSiteIndexMember,
    planner: true,
  },
  {
    group: "bookkeeping",
    name: "busiest primary / mean (plan's peak)",
    unit: "x",
    pick: (c) => c.bookkeeping.afterPlan.maxOverMean,
    planner: false,
  },
];

export function constantRows(result: ScaleResult): ConstantRow[] {
  return CONSTANTS.map((k) => {
    const reduced = k.pick(result.reduced);
    const full = k.pick(result.full);
    return {
      group: k.group,
      name: k.name,
      unit: k.unit,
      reduced,
      full,
      ratio: full !== 0 ? reduced / full : Number.NaN,
      planner: k.planner,
    };
  });
}

/**
 * How a run's rollup sent its merges: as server-side script calls (merge-script.ts: EVALSHA, or
 * EVAL after NOSCRIPT) or as single commands (the code before it). Which commands a script calls
 * inside count under their own names too, so the script calls are what tell the two apart.
 */
export function mergePath(c: ScaleConstants): "script calls" | "single commands" {
  const scripts = c.rollup.commands
    .filter((x) => x.command === "evalsha" || x.command === "eval")
    .reduce((n, x) => n + x.calls, 0);
  return scripts > 0 ? "script calls" : "single commands";
}

// ---------------------------------------------------------------------------------------------
// Figures.

function num(n: number, unit: string): string {
  if (!Number.isFinite(n)) return "n/a";
  if (unit === "x") return `${n.toFixed(2)}x`;
  if (Math.abs(n) >= 100) return fmtInt(n);
  return n.toFixed(1);
}

function ratioText(r: number): string {
  return Number.isFinite(r) ? `${r >= 10 || r < 0.1 ? r.toPrecision(2) : r.toFixed(2)}x` : "n/a";
}

/** Share of the counting keys that are sparse, over every family and period. */
export function sparseShare(c: ScaleConstants): number {
  const rows = c.memory.byFamilyPeriod;
  const keys = rows.reduce((n, r) => n + r.keys, 0);
  return keys > 0 ? rows.reduce((n, r) => n + r.keys * r.sparseShare, 0) / keys : Number.NaN;
}

function sparsePct(c: ScaleConstants): string {
  const s = sparseShare(c);
  return Number.isFinite(s) ? `${(s * 100).toFixed(s > 0.999 ? 3 : 1)}%` : "n/a";
}

const GROUPS: readonly ConstantGroup[] = ["consumer", "rollup", "HLL and memory", "bookkeeping"];
const PLANNER_YES = "read by the capacity planner";
const PLANNER_NO = "not read by the planner";

export function scaleFigures(result: ScaleResult): Figure[] {
  const rows = constantRows(result).filter((r) => Number.isFinite(r.ratio) && r.ratio > 0);
  const names = rows.map((r) => r.name);
  const ratios = rows.map((r) => r.ratio);
  const lo = Math.min(0.5, ...ratios);
  const hi = Math.max(2, ...ratios);
  const points = rows.map((r) => ({
    name: r.name,
    group: r.group,
    ratio: r.ratio,
    label: ratioText(r.ratio),
    planner: r.planner ? PLANNER_YES : PLANNER_NO,
  }));
  const ratioFigure: Figure = {
    file: "scale.svg",
    title: `Scale bench: ${fmtInt(result.reduced.inputs.sites)} sites here against the full ${fmtInt(result.full.inputs.sites)}-site run`,
    subtitle: [
      `Each constant of this run over the same constant of bench/results/scale-constants.json (${result.full.measuredAt}); 1 = the same.`,
      "Shaded: within 0.8x–1.25x. Filled points: constants the capacity planner reads.",
    ],
    spec: {
      width: 420,
      height: { step: 17 },
      layer: [
        {
          data: { values: [{ lo: 0.8, hi: 1.25 }] },
          mark: { type: "rect", color: "#e8f0e0" },
          encoding: {
            x: { field: "lo", type: "quantitative" },
            x2: { field: "hi" },
          },
        },
        {
          data: { values: [{ x: 1 }] },
          mark: { type: "rule", color: "#888", strokeDash: [4, 3] },
          encoding: { x: { field: "x", type: "quantitative" } },
        },
        {
          data: { values: points },
          encoding: {
            y: {
              field: "name",
              type: "nominal",
              sort: names,
              axis: { title: null, labelLimit: 360 },
            },
            x: {
              field: "ratio",
              type: "quantitative",
              scale: { type: "log", domain: [lo / 1.2, hi * 1.2] },
              axis: { title: "this run / full run (log scale)", format: "~g" },
            },
          },
          layer: [
            {
              mark: { type: "point", size: 70, strokeWidth: 2 },
              encoding: {
                color: {
                  field: "group",
                  type: "nominal",
                  title: null,
                  sort: GROUPS,
                  scale: { scheme: "tableau10" },
                },
                fill: {
                  field: "planner",
                  type: "nominal",
                  title: null,
                  scale: { domain: [PLANNER_YES, PLANNER_NO], range: ["#555", "white"] },
                  legend: { labelLimit: 300, symbolStrokeColor: "#555" },
                },
              },
            },
            {
              mark: { type: "text", align: "left", dx: 9, fontSize: 10, color: "#333" },
              encoding: { text: { field: "label" } },
            },
          ],
        },
      ],
    } as Figure["spec"],
  };
  return [ratioFigure];
}

// ---------------------------------------------------------------------------------------------
// Markdown.

function runText(c: ScaleConstants): string {
  const i = c.inputs;
  return `${fmtInt(i.sites)} sites (users of the site of rank r: max(1, round(${fmtInt(i.maxUsersPerSite)} / r^${i.zipfExponent})) = ${fmtInt(c.generated.users)} users, ${fmtInt(c.generated.events)} events); ${fmtInt(c.consumer.timedEvents)} events through the handler in batches of ${fmtInt(i.batchSize)}, the rest loaded pipelined; rollup: ${fmtInt(c.rollup.items)} items in ${fmtInt(c.rollup.pages)} pages, ${fmtInt(c.rollup.mergedPages)} merged ${c.rollup.mapConcurrency} at a time${c.rollup.extrapolated ? " (the rest extrapolated)" : ""}; memory sampled on the ${fmtInt(i.memorySample.headSites)} largest and ${fmtInt(i.memorySample.tailSites)} other sites`;
}

function stampText(c: ScaleConstants): string {
  return `${c.measuredAt}, ${c.machine.cores} × ${c.machine.cpuModel}, Node ${c.versions.node}, ${c.versions.redisServer.split(" sha=")[0]}; ${(c.wallMs / 1000).toFixed(0)} s`;
}

function loadText(result: ScaleResult): string {
  const { start, end, cores } = result.load;
  const busiest = Math.max(start, end);
  const base = `Rates (events/s, items/s, CPU per event) are of ${cores} ${cores === 1 ? "core" : "cores"} shared by the benchmark's client and its 3 redis-servers; the planner scales them to a Lambda's vCPU share.`;
  if (!Number.isFinite(busiest)) return base;
  const loadAvg = `load average ${start.toFixed(1)} at the start of this run, ${end.toFixed(1)} at its end`;
  return busiest > cores
    ? `${base} Other work shared this machine during the run (${loadAvg}, on ${cores} cores), which lowers this run's rates.`
    : `${base} The machine was otherwise about idle (${loadAvg}, on ${cores} cores).`;
}

export function scaleMarkdown(result: ScaleResult): string {
  const { reduced, full } = result;
  const rows = constantRows(result);
  const fullFile = shownPath(result.fullPath);
  const table = rows.map(
    (r) =>
      `| ${r.group} | ${r.name}${r.planner ? " ◆" : ""} | ${num(r.reduced, r.unit)} | ${num(r.full, r.unit)} | ${ratioText(r.ratio)} |`,
  );
  const context = [
    ["sites", fmtInt(reduced.inputs.sites), fmtInt(full.inputs.sites)],
    ["events", fmtInt(reduced.generated.events), fmtInt(full.generated.events)],
    [
      "rollup items (pages merged / pages)",
      `${fmtInt(reduced.rollup.items)} (${reduced.rollup.mergedPages} / ${reduced.rollup.pages})`,
      `${fmtInt(full.rollup.items)} (${full.rollup.mergedPages} / ${full.rollup.pages})`,
    ],
    [
      "all merges, seconds",
      `${(reduced.rollup.fullMergeMs / 1000).toFixed(1)}${reduced.rollup.extrapolated ? " (extrapolated)" : ""}`,
      `${(full.rollup.fullMergeMs / 1000).toFixed(1)}${full.rollup.extrapolated ? " (extrapolated)" : ""}`,
    ],
    [
      "Step Functions transitions a run",
      fmtInt(reduced.stepFunctions.transitionsPerRun),
      fmtInt(full.stepFunctions.transitionsPerRun),
    ],
    ["merges sent as", mergePath(reduced), mergePath(full)],
    ["sparse keys (every family and period)", sparsePct(reduced), sparsePct(full)],
    ["wall time, s", (reduced.wallMs / 1000).toFixed(0), (full.wallMs / 1000).toFixed(0)],
  ].map(([what, a, b]) => `| ${what} | ${a} | ${b} |`);
  const compared = rows.filter((r) => Number.isFinite(r.ratio));
  const close = compared.filter((r) => r.ratio >= 0.8 && r.ratio <= 1.25);
  const far = compared
    .filter((r) => r.ratio < 0.8 || r.ratio > 1.25)
    .sort((a, b) => Math.abs(Math.log(b.ratio)) - Math.abs(Math.log(a.ratio)));
  const plannerFar = far.filter((r) => r.planner);
  const reducedPath = mergePath(reduced);
  const fullPath = mergePath(full);
  const sentences = [
    `${close.length} of the ${compared.length} constants are within 0.8x–1.25x of the full run's${close.some((r) => r.group === "HLL and memory") ? ", among them the HLL's dense threshold and size, which depend on Redis, not on the population" : ""}.`,
    far.length === 0
      ? "None is further off: a reduced run is a fair stand-in for the full one on this machine."
      : `Further off: ${far
          .slice(0, 6)
          .map((r) => `${r.name}: ${ratioText(r.ratio)}`)
          .join(
            "; ",
          )}${far.length > 6 ? `; and ${far.length - 6} more` : ""}. A reduced run does not reproduce these${plannerFar.length > 0 ? ` (${plannerFar.length} of them feed the capacity planner, which should keep reading the full run's file)` : ""}.`,
    reducedPath === fullPath
      ? ""
      : `The two runs sent their merges differently (this run: ${reducedPath}; the full run: ${fullPath}): the rollup code measured here is not the one ${fullFile} measured, so the merge figures compare two implementations; \`npm run bench:scale\` measures the current one at full size.`,
  ].filter((s) => s !== "");
  return `## Scale

The scale benchmark (\`npm run bench:scale\`, bench/scale.ts: its own 3-primary Redis Cluster, the real consumer handler and rollup handlers, memory by \`MEMORY USAGE\`, server CPU from \`/proc\` and \`INFO commandstats\`) run here at a reduced size: ${runText(reduced)}. Its constants went to a temporary file, not to the planner's. Beside it, the full-size figures are quoted from \`${fullFile}\` as its own run wrote them (${stampText(full)}): ${runText(full)}.

![Scale bench: this run's constants against the full run's](charts/scale.svg)

| | constant (◆: read by the capacity planner) | this run, ${fmtInt(reduced.inputs.sites)} sites | full run, ${fmtInt(full.inputs.sites)} sites (${full.measuredAt}) | this / full |
| --- | --- | --- | --- | --- |
${table.join("\n")}

Events/s per invocation: the consumer handler itself with one batch of ${fmtInt(reduced.inputs.batchSize)} in flight, as one Lambda invocation works; bulk load: the other events planned by the handler's \`planBatch\` and written pipelined; redis-server CPU from \`/proc\` of the 3 servers; merge items/s per MergePage task: all pages at once over the Map concurrency; bytes per key: \`MEMORY USAGE … SAMPLES 0\`, sampled sites weighted to all.

| | this run | full run (${full.measuredAt}) |
| --- | --- | --- |
${context.join("\n")}

${sentences.join(" ")}

${loadText(result)} This run took ${result.seconds.toFixed(0)} s.`;
}

/** The README's block of the full-size run's figures ("What a million sites costs"). */
export const README_SCALE_BLOCK = "scale-constants";

const MiB = 1024 * 1024;

/**
 * The full-size run's figures as the README shows them, every one read from its constants file
 * (which carries its own date, machine and versions: it is not re-measured by the report).
 */
export function scaleReadme(c: ScaleConstants): string {
  // The command counts are the handler's, over the events it was timed on.
  const perEvent = (n: number) => (n / c.consumer.timedEvents).toFixed(1);
  const callsOf = (command: string) =>
    c.consumer.commands.find((x) => x.command === command)?.calls ?? 0;
  const merged = c.rollup.commands;
  const commandsPerItem = merged
    .filter((x) => x.calls >= c.rollup.mergedItems / 10)
    .map((x) => `${x.command} ${(x.calls / c.rollup.mergedItems).toFixed(2)}`)
    .join(", ");
  const sparse = c.hll.bytesByCardinality.filter((b) => !b.dense);
  const sparseText = [1, 100, 500, 1000]
    .map((n) => sparse.find((b) => b.cardinality === n))
    .filter((b) => b !== undefined)
    .map(
      (b) => `${fmtInt(b.bytes)} (${fmtInt(b.cardinality)} ${b.cardinality === 1 ? "id" : "ids"})`,
    )
    .join(", ");
  const families = c.memory.byFamilyPeriod;
  const keysPerFamily = Math.round(
    families.reduce((n, f) => n + f.keys, 0) / Math.max(1, families.length),
  );
  const bytesPerKey =
    families.reduce((n, f) => n + f.bytes, 0) /
    Math.max(
      1,
      families.reduce((n, f) => n + f.keys, 0),
    );
  const mib = (b: number) => fmtInt(b / MiB);
  const ingest = c.bookkeeping.afterIngest;
  const plan = c.bookkeeping.afterPlan;
  return `Measured by \`npm run bench:scale\` on ${c.measuredAt} (${c.machine.cores} × ${c.machine.cpuModel}, Node ${c.versions.node}, ${c.versions.redisServer.split(" ").slice(0, 3).join(" ")}) in ${(c.wallMs / 60_000).toFixed(1)} min, as written to \`bench/results/scale-constants.json\`: ${fmtInt(c.inputs.sites)} sites, ${fmtInt(c.generated.users)} users, ${fmtInt(c.generated.events)} events (users per site max(1, round(${fmtInt(c.inputs.maxUsersPerSite)} / rank^${c.inputs.zipfExponent})), ${c.inputs.eventsPerUser} events each).

| | measured |
| --- | --- |
| consumer, per invocation | ${fmtInt(c.consumer.eventsPerSecond)} events/s (${fmtInt(c.consumer.timedEvents)} events through the handler, batches of ${fmtInt(c.inputs.batchSize)}); per event ${c.consumer.clientCpuUsPerEvent.toFixed(1)} µs client CPU, ${c.consumer.serverProcessCpuUsPerEvent.toFixed(1)} µs redis-server CPU (${c.consumer.loadServerProcessCpuUsPerEvent.toFixed(1)} µs loading into millions of keys), ${fmtInt(c.consumer.netInputBytesPerEvent)} bytes written; ${perEvent(callsOf("pfadd"))} PFADD, ${perEvent(callsOf("expireat"))} EXPIREAT, ${perEvent(callsOf("sadd"))} SADD per event |
| rollup plan | ${(c.rollup.planMs / 1000).toFixed(1)} s for ${fmtInt(c.rollup.items)} items, ${fmtInt(c.rollup.pages)} pages of ${fmtInt(c.rollup.pageSize)} |
| rollup merges | ${fmtInt(c.rollup.itemsPerSecond)} items/s with ${c.rollup.mapConcurrency} pages at a time (${fmtInt(c.rollup.perWorkerItemsPerSecond)} per page); all ${fmtInt(c.rollup.items)} items: ${fmtInt(c.rollup.fullMergeMs / 1000)} s${c.rollup.extrapolated ? ` (extrapolated from ${fmtInt(c.rollup.mergedItems)})` : ""}; ${c.rollup.serverProcessCpuUsPerItem.toFixed(1)} µs redis-server CPU per item; commands per item: ${commandsPerItem} |
| Step Functions | ${c.stepFunctions.fixedStates.length} states once + ${c.stepFunctions.perPageStates.length} per page: ${fmtInt(c.stepFunctions.transitionsPerRun)} transitions for ${fmtInt(c.stepFunctions.pages)} pages |
| HLL encoding | dense from ${fmtInt(c.hll.denseAtCardinality)} distinct ids (\`hll-sparse-max-bytes\` ${fmtInt(c.hll.sparseMaxBytes)}): ${fmtInt(c.hll.denseBytes)} bytes; sparse ${sparseText} |
| keys | ${fmtInt(keysPerFamily)} per family and period on average (uv:/ev: × day/week/month), about ${fmtInt(bytesPerKey)} bytes each (\`MEMORY USAGE\`); the server adds ${fmtInt(c.memory.perKeyOverheadBytes)} bytes per key |
| bookkeeping per primary | ${ingest.perPrimary.map((p) => mib(p.bytes)).join(" / ")} MiB after the ingest, ${plan.perPrimary.map((p) => mib(p.bytes)).join(" / ")} MiB at the plan's peak (busiest ${plan.maxOverMean.toFixed(2)}x the mean); ${fmtInt(c.bookkeeping.bytesPerTouchedMember)} bytes a touched member, ${fmtInt(c.bookkeeping.bytesPerWorkItem)} a work item |`;
}

export async function scaleExperiment(
  sizes: ScaleSizes,
  context: ExperimentContext,
): Promise<ExperimentOutput> {
  const result = await measureScale(sizes, context);
  return {
    id: "scale",
    markdown: scaleMarkdown(result),
    figures: scaleFigures(result),
    targets: [],
    readme: [{ id: README_SCALE_BLOCK, markdown: scaleReadme(result.full) }],
  };
}
