/**
 * The report's rollup experiment: bench/rollup.ts's measureRollup at several site counts, each
 * on a cluster of its own (stopped before the next), charted as site-periods merged per second
 * for the scheduled run of the real state machine, the same merges on a bare client (single
 * commands and the rollup's script calls) and the naive full recompute. The scale bench's
 * larger figures are quoted from its own file (bench/results/scale-constants.json) with its
 * own stamp.
 */

import { loadScaleConstants } from "../../cli/capacity-constants.js";
import type { Closer } from "../lib.js";
import {
  bestLimit,
  latestMidMonth,
  type Measured,
  measureRollup,
  ROLLUP_BENCH_DEFAULTS,
  type RollupBenchResult,
  rollupVerdict,
  TARGET_MIN_MERGES,
  TARGET_OVER_NAIVE,
  TARGET_WITHIN_LIMIT,
} from "../rollup.js";
import type { Figure } from "./charts.js";
import { fmtInt } from "./stats.js";
import {
  type ExperimentContext,
  type ExperimentOutput,
  type TargetResult,
  targetLine,
} from "./types.js";

export interface RollupSizes {
  /** Site counts, smallest first; the targets are judged at the largest. */
  readonly sites: readonly number[];
  readonly days: number;
  readonly rounds: number;
  readonly warmupRounds: number;
  readonly naiveMaxItems: number;
  /** The mid-month day of the incremental runs; default the latest 15th by the real clock. */
  readonly today?: string;
}

export const ROLLUP_DEFAULT: RollupSizes = {
  sites: [1_000, 3_000, ROLLUP_BENCH_DEFAULTS.sites],
  days: ROLLUP_BENCH_DEFAULTS.days,
  rounds: ROLLUP_BENCH_DEFAULTS.rounds,
  warmupRounds: ROLLUP_BENCH_DEFAULTS.warmupRounds,
  naiveMaxItems: ROLLUP_BENCH_DEFAULTS.naiveMaxItems,
};

export const ROLLUP_SMALL: RollupSizes = {
  sites: [40, 120],
  days: 2,
  rounds: 1,
  warmupRounds: 0,
  naiveMaxItems: 300,
};

interface SizeResult {
  readonly sites: number;
  readonly result: RollupBenchResult;
  readonly verdict: ReturnType<typeof rollupVerdict>;
}

const rate = (m: Measured) => (m.items / m.wallMs) * 1000;

/** Runs each size on a cluster of its own, stopping it (and its clients) before the next. */
async function measureSizes(sizes: RollupSizes, context: ExperimentContext): Promise<SizeResult[]> {
  const today = sizes.today ?? latestMidMonth(Date.now());
  const out: SizeResult[] = [];
  for (const sites of sizes.sites) {
    const local: Closer[] = [];
    const closeLocal = async () => {
      for (const close of local.splice(0).reverse()) await close();
    };
    // An interrupt while this size runs stops its cluster too.
    context.closers.push(closeLocal);
    try {
      const result = await measureRollup(
        {
          sites,
          days: sizes.days,
          today,
          eventsPerDay: 1,
          rounds: sizes.rounds,
          warmupRounds: sizes.warmupRounds,
          concurrency: ROLLUP_BENCH_DEFAULTS.concurrency,
          naiveMaxItems: sizes.naiveMaxItems,
          users: ROLLUP_BENCH_DEFAULTS.users,
          seed: ROLLUP_BENCH_DEFAULTS.seed,
        },
        local,
        (text) => context.progress(`rollup, ${fmtInt(sites)} sites: ${text}`),
      );
      out.push({ sites, result, verdict: rollupVerdict(result) });
    } finally {
      await closeLocal();
    }
  }
  return out;
}

export function rollupTargets(results: readonly SizeResult[]): TargetResult[] {
  const top = results.at(-1);
  if (!top) return [];
  const v = top.verdict;
  const short =
    v.merges < TARGET_MIN_MERGES
      ? `; fewer than the ${fmtInt(TARGET_MIN_MERGES)} merges the target is judged over`
      : "";
  return [
    {
      name: "rollup vs bare client",
      pass: v.withinLimit <= TARGET_WITHIN_LIMIT && v.merges >= TARGET_MIN_MERGES,
      text: `the scheduled run took ${v.withinLimit.toFixed(2)}x the time of the same merges on a bare client (the faster of single commands and script calls; median of ${top.result.rounds.length} rounds of ${fmtInt(v.merges)} merges at ${fmtInt(top.sites)} sites${short}; target <= ${TARGET_WITHIN_LIMIT}x)`,
    },
    {
      name: "rollup vs naive",
      pass: v.upToDate >= TARGET_OVER_NAIVE,
      text: `bringing every week and month up to date took the naive full recompute ${v.upToDate.toFixed(1)}x as long as the scheduled run at ${fmtInt(top.sites)} sites${top.result.naive.totalItems ? ` (naive time extrapolated from its first ${fmtInt(top.result.naive.items)} site-periods)` : ""} (target >= ${TARGET_OVER_NAIVE}x)`,
    },
  ];
}

export function rollupFigures(results: readonly SizeResult[]): Figure[] {
  const rows = results.flatMap(({ sites, result, verdict }) => {
    const m = verdict.median;
    return [
      { sites, rate: rate(m), what: "scheduled run (median round)" },
      { sites, rate: rate(m.limitScript), what: "bare client, script calls" },
      { sites, rate: rate(m.limitCommands), what: "bare client, single commands" },
      { sites, rate: rate(result.naive), what: "naive full recompute" },
    ];
  });
  return [
    {
      file: "rollup.svg",
      title: "Rollup: site-periods merged per second against the number of sites",
      subtitle: [
        "One day's traffic per site, then a scheduled run; bare clients send the same merges.",
        "Each site-period is one week or month key of both families (uv: and ev:).",
      ],
      spec: {
        width: 520,
        height: 280,
        data: { values: rows },
        mark: { type: "line", point: true },
        encoding: {
          x: {
            field: "sites",
            type: "quantitative",
            // The measured sizes only: a log scale would otherwise round out to the next decade.
            scale: { type: "log", nice: false },
            axis: { title: "sites with traffic today", format: "~s" },
          },
          y: {
            field: "rate",
            type: "quantitative",
            scale: { type: "log" },
            axis: { title: "site-periods merged per second (log scale)", format: "~s" },
          },
          color: {
            field: "what",
            type: "nominal",
            title: null,
            sort: [
              "scheduled run (median round)",
              "bare client, script calls",
              "bare client, single commands",
              "naive full recompute",
            ],
            scale: { range: ["#e45756", "#1f4e79", "#54a24b", "#f58518"] },
            legend: { columns: 2, labelLimit: 320 },
          },
        },
      } as Figure["spec"],
    },
  ];
}

/** The scale bench's own figures, as its file states them (or why they are not shown). */
function scaleQuote(): string {
  let constants: ReturnType<typeof loadScaleConstants>;
  try {
    constants = loadScaleConstants();
  } catch (err) {
    return `The scale bench's file could not be read (${err instanceof Error ? err.message : String(err)}); run \`npm run bench:scale\`.`;
  }
  const r = constants.rollup;
  return `At larger scale, from the scale bench's own file (\`bench/results/scale-constants.json\`, \`npm run bench:scale\`, measured ${constants.measuredAt} on ${constants.machine.cores} cores, Node ${constants.versions.node}): ${fmtInt(constants.inputs.sites)} sites, a plan of ${fmtInt(r.items)} items in ${(r.planMs / 1000).toFixed(1)} s; merging ${fmtInt(r.mergedItems)} items of ${fmtInt(r.mergedSites)} sites ran at ${fmtInt(r.itemsPerSecond)} items/s with ${r.mapConcurrency} pages at a time${r.extrapolated ? `, so all ${fmtInt(r.items)} would take about ${(r.fullMergeMs / 60_000).toFixed(1)} min (extrapolated)` : ""}.`;
}

export function rollupMarkdown(
  results: readonly SizeResult[],
  targets: readonly TargetResult[],
): string {
  const first = results[0]?.result;
  const header =
    "| sites | merges a round | scheduled run | bare client, script | bare client, commands | naive | run / faster bare client, each round (median) | commands / script |\n|---:|---:|---:|---:|---:|---:|---:|---:|";
  const rows = results.map(({ sites, result, verdict }) => {
    const m = verdict.median;
    const best = bestLimit(m) === m.limitScript ? "script" : "commands";
    const each = verdict.withinLimitByRound.map((x) => x.toFixed(2)).join(", ");
    return `| ${fmtInt(sites)} | ${fmtInt(verdict.merges)} | ${fmtInt(rate(m))}/s | ${fmtInt(rate(m.limitScript))}/s | ${fmtInt(rate(m.limitCommands))}/s | ${fmtInt(rate(result.naive))}/s${result.naive.totalItems ? "*" : ""} | ${each} (**${verdict.withinLimit.toFixed(2)}x**; median round's faster: ${best}) | ${verdict.scriptGain.toFixed(2)}x |`;
  });
  const anyCut = results.some((r) => r.result.naive.totalItems);
  return `## Rollup

![Site-periods merged per second against the number of sites](charts/rollup.svg)

${header}
${rows.join("\n")}
${anyCut ? "\n\\* the naive recompute ran its first site-periods only; its rate is theirs.\n" : ""}
What it means for an operator: a scheduled run's cost is the number of (site, day) pairs touched since the last run, not the history: each touched day is merged into its week and its month once. Merging on the server (one script call per site doing the EXISTS, PFMERGE and EXPIREAT of its keys) is what the rollup sends; the gap between the scheduled run and the bare client is the state machine, the lock, the plan and the paging. The naive full recompute re-merges every day of every week and month of every site, so its time grows with history and sites together.

${targets.map(targetLine).join("\n")}

How it was measured: for each site count, a new local Redis Cluster of 3 primaries; ${first ? `${first.historyDays.length} days of history` : "days of history"} (one event per site and day, event types rotating) through the real consumer handler and an untimed catch-up run; then ${first?.opts.warmupRounds ? `${first.opts.warmupRounds} untimed warm-up round(s) and ` : ""}${first?.opts.rounds ?? ""} timed round(s), each after a slice of today's traffic: the scheduled run of \`state-machines/rollup.asl.json\` in aws-local-stepfunctions with the real handlers (Map concurrency ${ROLLUP_BENCH_DEFAULTS.concurrency}), then the same merges from a bare auto-pipelining ioredis client as single commands (EXISTS, PFMERGE, EXPIREAT NX) and as the rollup's script calls, the two in alternating order; the ratio is taken within each round and its median reported. The naive recompute is one command per round trip. Details and every round: \`npm run bench:rollup\` (bench/rollup.ts).

${scaleQuote()}`;
}

export async function rollupExperiment(
  sizes: RollupSizes,
  context: ExperimentContext,
): Promise<ExperimentOutput> {
  const results = await measureSizes(sizes, context);
  const targets = rollupTargets(results);
  return {
    id: "rollup",
    markdown: rollupMarkdown(results, targets),
    figures: rollupFigures(results),
    targets,
  };
}
