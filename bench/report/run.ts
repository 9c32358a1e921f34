/**
 * Runs the report's experiments and writes their part of the report: one SVG per figure under
 * `<docs>/charts/` and one generated block per experiment in `<docs>/benchmarks.md` (other
 * blocks and hand-written text are kept). Another bench joins the report by returning an
 * `ExperimentOutput` and going through `writeReport`.
 */

import { mkdir, readFile, writeFile } from "node:fs/promises";
import { dirname, join, relative, sep } from "node:path";
import type { Closer } from "../lib.js";
import {
  ACCURACY_DEFAULT,
  ACCURACY_SMALL,
  type AccuracySizes,
  accuracyExperiment,
} from "./accuracy.js";
import { renderFigure } from "./charts.js";
import {
  CONSUMER_DEFAULT,
  CONSUMER_SMALL,
  type ConsumerSizes,
  consumerExperiment,
} from "./consumer.js";
import { COST_DEFAULT, COST_SMALL, type CostSizes, costExperiment } from "./cost.js";
import { type Stamp, thisMachine } from "./machine.js";
import {
  assertPlacedBlocks,
  readmeBenchmarksMarkdown,
  updatePlacedBlocks,
  updateReport,
  withSummary,
} from "./markdown.js";
import { MEMORY_DEFAULT, MEMORY_SMALL, type MemorySizes, memoryExperiment } from "./memory.js";
import { READS_DEFAULT, READS_SMALL, type ReadsSizes, readsExperiment } from "./reads.js";
import { type RunningRedisServer, redisServerVersion, startRedisServer } from "./redis-server.js";
import { ROLLUP_DEFAULT, ROLLUP_SMALL, type RollupSizes, rollupExperiment } from "./rollup.js";
import { SCALE_DEFAULT, SCALE_SMALL, type ScaleSizes, scaleExperiment } from "./scale.js";
import { SYNTH_DEFAULT, SYNTH_SMALL, type SynthSizes, synthExperiment } from "./synth.js";
import type { ExperimentContext, ExperimentOutput } from "./types.js";

/** Every experiment, in the order the report runs and shows them. */
export const EXPERIMENTS = [
  "accuracy",
  "memory",
  "consumer",
  "rollup",
  "reads",
  "scale",
  "synth",
  "cost",
] as const;
export type ExperimentName = (typeof EXPERIMENTS)[number];

export interface ReportSizes {
  readonly accuracy: AccuracySizes;
  readonly memory: MemorySizes;
  readonly consumer: ConsumerSizes;
  readonly rollup: RollupSizes;
  readonly reads: ReadsSizes;
  readonly scale: ScaleSizes;
  readonly synth: SynthSizes;
  readonly cost: CostSizes;
}

export const DEFAULT_SIZES: ReportSizes = {
  accuracy: ACCURACY_DEFAULT,
  memory: MEMORY_DEFAULT,
  consumer: CONSUMER_DEFAULT,
  rollup: ROLLUP_DEFAULT,
  reads: READS_DEFAULT,
  scale: SCALE_DEFAULT,
  synth: SYNTH_DEFAULT,
  cost: COST_DEFAULT,
};
export const SMALL_SIZES: ReportSizes = {
  accuracy: ACCURACY_SMALL,
  memory: MEMORY_SMALL,
  consumer: CONSUMER_SMALL,
  rollup: ROLLUP_SMALL,
  reads: READS_SMALL,
  scale: SCALE_SMALL,
  synth: SYNTH_SMALL,
  cost: COST_SMALL,
};

/**
 * How each experiment runs: accuracy and memory share one redis-server of the report's; the
 * others start what they need (a cluster, child processes) through the context.
 */
const RUNNERS: Readonly<
  Record<
    ExperimentName,
    (
      sizes: ReportSizes,
      server: () => Promise<RunningRedisServer>,
      context: ExperimentContext,
    ) => Promise<ExperimentOutput>
  >
> = {
  accuracy: async (sizes, server, context) =>
    accuracyExperiment(await server(), sizes.accuracy, context.progress),
  memory: async (sizes, server, context) =>
    memoryExperiment(await server(), sizes.memory, context.progress),
  consumer: (sizes, _server, context) => consumerExperiment(sizes.consumer, context),
  rollup: (sizes, _server, context) => rollupExperiment(sizes.rollup, context),
  reads: (sizes, _server, context) => readsExperiment(sizes.reads, context),
  scale: (sizes, _server, context) => scaleExperiment(sizes.scale, context),
  synth: (sizes, _server, context) => synthExperiment(sizes.synth, context),
  cost: (sizes, _server, context) => costExperiment(sizes.cost, context),
};

export const REPORT_FILE = "benchmarks.md";
export const CHARTS_DIR = "charts";

export interface ReportOptions {
  readonly sizes: ReportSizes;
  /** Where benchmarks.md and charts/ go (the repository's `docs`). */
  readonly docsDir: string;
  /** The command that reproduces this run, stamped on everything it writes. */
  readonly command: string;
  /** UTC date of the run, `YYYY-MM-DD`. */
  readonly date: string;
  /** Experiments to run (default: all). */
  readonly only?: readonly ExperimentName[];
  readonly progress?: (text: string) => void;
  /** Cleanup registry of the caller (a redis-server started here is stopped by it too). */
  readonly closers?: Closer[];
  /**
   * The README, whose generated blocks (`benchmarks` and the experiments' own) are rewritten
   * too; unset, only the docs directory is written.
   */
  readonly readmePath?: string;
}

/** The README's block with the summary of targets and the accuracy and memory charts. */
export const README_BENCHMARKS_BLOCK = "benchmarks";

export interface WrittenReport {
  readonly stamp: Stamp;
  readonly outputs: readonly ExperimentOutput[];
  readonly reportPath: string;
  readonly chartPaths: readonly string[];
}

export async function runReport(options: ReportOptions): Promise<WrittenReport> {
  const only = options.only ?? EXPERIMENTS;
  const closers = options.closers ?? [];
  const context: ExperimentContext = { progress: options.progress ?? (() => {}), closers };
  let started: RunningRedisServer | undefined;
  const server = async () => {
    if (!started) {
      started = await startRedisServer();
      closers.push(() => started?.stop());
    }
    return started;
  };
  const outputs: ExperimentOutput[] = [];
  try {
    for (const name of EXPERIMENTS) {
      if (only.includes(name)) outputs.push(await RUNNERS[name](options.sizes, server, context));
    }
  } finally {
    // What the experiments started is stopped here when the caller gave no cleanup registry.
    if (options.closers === undefined) {
      for (const close of closers.splice(0).reverse()) await close();
    } else {
      await started?.stop();
    }
  }
  const redisVersion = started?.version ?? (await redisServerVersion());
  const stamp: Stamp = {
    command: options.command,
    date: options.date,
    machine: thisMachine(redisVersion),
  };
  // A README without its blocks is refused before anything is written.
  if (options.readmePath !== undefined) {
    assertPlacedBlocks(
      await readFile(options.readmePath, "utf8"),
      [README_BENCHMARKS_BLOCK, ...outputs.flatMap((o) => o.readme ?? []).map((b) => b.id)],
      relative(process.cwd(), options.readmePath),
    );
  }
  const written = await writeReport(options.docsDir, outputs, stamp, options.progress);
  if (options.readmePath !== undefined) await writeReadme(options.readmePath, written);
  return written;
}

/** Rewrites the README's generated blocks from a report just written. */
async function writeReadme(readmePath: string, written: WrittenReport): Promise<void> {
  const readme = await readFile(readmePath, "utf8");
  const report = await readFile(written.reportPath, "utf8");
  const fromRoot = (path: string) => relative(dirname(readmePath), path).split(sep).join("/");
  const blocks = [
    {
      id: README_BENCHMARKS_BLOCK,
      markdown: readmeBenchmarksMarkdown(
        report,
        fromRoot(written.reportPath),
        fromRoot(join(dirname(written.reportPath), CHARTS_DIR)),
      ),
    },
    ...written.outputs.flatMap((o) => o.readme ?? []),
  ];
  await writeFile(
    readmePath,
    updatePlacedBlocks(readme, blocks, written.stamp, relative(process.cwd(), readmePath)),
  );
}

const CHART_REF_RE = /\]\(charts\/([^)\s]+\.svg)\)/g;

/**
 * Renders every figure to `<docsDir>/charts/<file>` and replaces (or appends) each output's block
 * in `<docsDir>/benchmarks.md`. Refuses a block that shows a chart it did not produce.
 */
export async function writeReport(
  docsDir: string,
  outputs: readonly ExperimentOutput[],
  stamp: Stamp,
  progress: (text: string) => void = () => {},
): Promise<WrittenReport> {
  const chartsDir = join(docsDir, CHARTS_DIR);
  await mkdir(chartsDir, { recursive: true });
  const chartPaths: string[] = [];
  for (const output of outputs) {
    const files = new Set(output.figures.map((f) => f.file));
    for (const [, file = ""] of output.markdown.matchAll(CHART_REF_RE)) {
      if (!files.has(file)) {
        throw new Error(`block "${output.id}" shows charts/${file}, which none of its figures is`);
      }
    }
    for (const figure of output.figures) {
      progress(`rendering charts/${figure.file}`);
      const path = join(chartsDir, figure.file);
      await writeFile(path, await renderFigure(figure, stamp));
      chartPaths.push(path);
    }
  }
  const reportPath = join(docsDir, REPORT_FILE);
  const existing = await readFile(reportPath, "utf8").catch((err: NodeJS.ErrnoException) => {
    if (err.code === "ENOENT") return undefined;
    throw err;
  });
  const blocks = outputs.map((o) => ({ id: o.id, markdown: o.markdown }));
  await writeFile(reportPath, withSummary(updateReport(existing, blocks, stamp), stamp));
  return { stamp, outputs, reportPath, chartPaths };
}
