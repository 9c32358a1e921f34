/**
 * Seconds and peak RSS of `cdktf synth` with the project's deep imports against importing the
 * provider package root, side by side in one run:
 *
 *   deep   the app as it is: every resource class imported from
 *          `@cdktf/provider-aws/lib/<resource>/index.js`, so only the namespaces the stacks use
 *          are loaded.
 *   root   the same app, with `@cdktf/provider-aws` also loaded by its package root before the
 *          app starts (bench/report/synth-root.mjs, given to node with `--import`): the root's
 *          lib/index.js requires every resource and data-source namespace eagerly, which is
 *          what one `import { … } from "@cdktf/provider-aws"` in a stack costs. main.ts and
 *          stacks/ are not touched.
 *
 * Each run is the real `cdktf synth` CLI (offline; `--app` is cdktf.json's app command with the
 * preloads inserted, `--output` a temporary directory), timed from spawn to exit; with
 * `via: "app"` the app command alone is run, as the CLI runs it (shell, CDKTF_OUTDIR). Both
 * variants get bench/report/synth-rss.mjs, which records at exit each node process's peak RSS
 * (`process.resourceUsage().maxRSS`), its lifetime and how many provider modules it loaded: the
 * app process always, and the CLI process when the CLI is run. Variants alternate; medians are
 * reported. Every run's output tree is hashed, and the two variants must synthesize the same
 * bytes, so the difference is only the import style.
 */

import { type ChildProcess, spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdir, mkdtemp, readdir, readFile, realpath, rm } from "node:fs/promises";
import { availableParallelism, loadavg, tmpdir } from "node:os";
import { delimiter, dirname, join, relative, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import type { Figure } from "./charts.js";
import { median } from "./stats.js";
import type { ExperimentContext, ExperimentOutput } from "./types.js";

export type SynthVariant = "deep" | "root";

export interface SynthSizes {
  /** Measured runs of each variant (alternating, deep first). */
  readonly runs: number;
  /** Unmeasured runs of each variant before the measured ones (warm caches: bundles, files). */
  readonly warmups: number;
  readonly variants: readonly SynthVariant[];
  /** `cli`: the `cdktf synth` CLI; `app`: the app command of cdktf.json alone. */
  readonly via: "cli" | "app";
}

export const SYNTH_DEFAULT: SynthSizes = {
  runs: 5,
  warmups: 1,
  variants: ["deep", "root"],
  via: "cli",
};

/**
 * One run of the deep-import app, by its app command (2–6 s here): the CLI adds ~8 s and the
 * package-root variant ~15 s more per run, more than `npm test` may spend on this experiment, so
 * both are left to DEFAULT.
 */
export const SYNTH_SMALL: SynthSizes = {
  runs: 1,
  warmups: 0,
  variants: ["deep"],
  via: "app",
};

export const SYNTH_VARIANT_LABEL: Readonly<Record<SynthVariant, string>> = {
  deep: "deep imports (as the project does)",
  root: "provider package root",
};

const PROJECT_ROOT = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
const RSS_PRELOAD = fileURLToPath(new URL("./synth-rss.mjs", import.meta.url));
const ROOT_PRELOAD = fileURLToPath(new URL("./synth-root.mjs", import.meta.url));
const RUN_TIMEOUT_MS = 600_000;

/** One measured (or warm-up) synth. */
export interface SynthRun {
  readonly variant: SynthVariant;
  /** Spawn to exit of the whole command (the CLI, or the app command). */
  readonly wallSeconds: number;
  /** Lifetime of the app's node process (the one that loads the provider). */
  readonly appSeconds: number;
  /** Peak RSS of the app's node process. */
  readonly appPeakBytes: number;
  /** Peak RSS of the CLI's own node process (only when the CLI is run). */
  readonly cliPeakBytes: number | undefined;
  /** Modules under @cdktf/provider-aws/lib the app process had loaded at exit. */
  readonly providerModules: number;
  /** SHA-256 over the output tree (relative paths and contents). */
  readonly outputDigest: string;
  /** SHA-256 of each output file, by relative path. */
  readonly outputHashes: Readonly<Record<string, string>>;
  /** Round of the run (warm-up rounds first), one run of each variant per round. */
  readonly round: number;
}

export interface SynthSummary {
  readonly variant: SynthVariant;
  readonly runs: number;
  readonly wallSeconds: Stat;
  readonly appSeconds: Stat;
  readonly appPeakBytes: Stat;
  readonly cliPeakBytes: Stat | undefined;
  readonly providerModules: number;
}

export interface Stat {
  readonly median: number;
  readonly min: number;
  readonly max: number;
}

export interface SynthResult {
  readonly sizes: SynthSizes;
  /** cdktf.json's `app`. */
  readonly appCommand: string;
  /** The command each variant ran (the CLI's `--app`, or the shell command). */
  readonly commands: Readonly<Partial<Record<SynthVariant, string>>>;
  readonly runs: readonly SynthRun[];
  readonly summaries: readonly SynthSummary[];
  /** Namespaces the provider root's lib/index.js requires. */
  readonly rootNamespaces: number;
  /** Files and stacks of the synthesized output. */
  readonly outputFiles: number;
  readonly stacks: readonly string[];
  /** Whether every measured and warm-up run of every variant wrote the same output tree. */
  readonly sameOutput: boolean;
  /** Output files whose content was not the same in every run (empty when `sameOutput`). */
  readonly differingFiles: readonly string[];
  /** Rounds (warm-ups included) in which every variant wrote the same tree, of `rounds`. */
  readonly roundsSame: number;
  readonly rounds: number;
  readonly versions: {
    readonly cdktfCli: string;
    readonly cdktf: string;
    readonly providerAws: string;
    readonly tsx: string;
  };
  readonly seconds: number;
  /** 1-minute load average of the machine when the runs started and when they ended. */
  readonly loadAverage: { readonly start: number; readonly end: number };
}

async function packageVersion(name: string): Promise<string> {
  const text = await readFile(join(PROJECT_ROOT, "node_modules", name, "package.json"), "utf8");
  return (JSON.parse(text) as { version: string }).version;
}

/** The app command of cdktf.json (what `cdktf synth` runs). */
export async function cdktfAppCommand(root: string = PROJECT_ROOT): Promise<string> {
  const config = JSON.parse(await readFile(join(root, "cdktf.json"), "utf8")) as { app?: unknown };
  if (typeof config.app !== "string") throw new Error("cdktf.json has no string `app`");
  return config.app;
}

function shellQuote(s: string): string {
  return /^[\w@%+=:,./-]+$/.test(s) ? s : `'${s.replaceAll("'", `'\\''`)}'`;
}

/**
 * The app command with the variant's preloads given to node: `npx tsx main.ts` becomes
 * `npx tsx --import <synth-rss.mjs> [--import <synth-root.mjs>] main.ts` (tsx passes node flags
 * on to the node process that runs the app).
 */
export function variantCommand(app: string, variant: SynthVariant): string {
  const match = /^(npx tsx)\s+(\S.*)$/.exec(app.trim());
  if (!match) {
    throw new Error(`cdktf.json's app "${app}" is not "npx tsx <entry>": update synth.ts`);
  }
  const preloads = [RSS_PRELOAD, ...(variant === "root" ? [ROOT_PRELOAD] : [])];
  const flags = preloads.map((p) => `--import ${shellQuote(pathToFileURL(p).href)}`);
  return `${match[1]} ${flags.join(" ")} ${match[2]}`;
}

/** The entry file of an `npx tsx … <entry>` command, absolute. */
function appEntry(app: string): string {
  const entry = app.trim().split(/\s+/).at(-1);
  if (!entry) throw new Error(`no entry in the app command "${app}"`);
  return resolve(PROJECT_ROOT, entry);
}

/** Namespaces the provider's package root loads: the `require("./…")` lines of lib/index.js. */
export async function providerRootNamespaces(): Promise<number> {
  const index = join(PROJECT_ROOT, "node_modules", "@cdktf", "provider-aws", "lib", "index.js");
  const text = await readFile(index, "utf8");
  return [...text.matchAll(/^exports\.\w+ = require\("\.\/[^"]+"\);$/gm)].length;
}

/** SHA-256 over every file of a tree (sorted relative paths and their contents). */
export async function treeDigest(
  dir: string,
): Promise<{ digest: string; files: number; hashes: Record<string, string> }> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true });
  const files = entries
    .filter((e) => e.isFile())
    .map((e) => relative(dir, join(e.parentPath, e.name)))
    .sort();
  const hash = createHash("sha256");
  const hashes: Record<string, string> = {};
  for (const file of files) {
    const content = await readFile(join(dir, file));
    hashes[file] = createHash("sha256").update(content).digest("hex");
    hash.update(`${file}\0${hashes[file]}\n`);
  }
  return { digest: hash.digest("hex"), files: files.length, hashes };
}

interface ProcessRecord {
  readonly argv1: string;
  readonly code: number;
  readonly maxRssKiB: number;
  readonly seconds: number;
  readonly providerModules: number;
}

async function readRecords(file: string): Promise<ProcessRecord[]> {
  const text = await readFile(file, "utf8").catch(() => "");
  return text
    .split("\n")
    .filter((line) => line.trim() !== "")
    .map((line) => JSON.parse(line) as ProcessRecord);
}

function stat(values: readonly number[]): Stat {
  return { median: median(values), min: Math.min(...values), max: Math.max(...values) };
}

export function summarize(runs: readonly SynthRun[], variant: SynthVariant): SynthSummary {
  const own = runs.filter((r) => r.variant === variant);
  const cli = own.map((r) => r.cliPeakBytes).filter((b): b is number => b !== undefined);
  return {
    variant,
    runs: own.length,
    wallSeconds: stat(own.map((r) => r.wallSeconds)),
    appSeconds: stat(own.map((r) => r.appSeconds)),
    appPeakBytes: stat(own.map((r) => r.appPeakBytes)),
    cliPeakBytes: cli.length === own.length && cli.length > 0 ? stat(cli) : undefined,
    providerModules: Math.max(...own.map((r) => r.providerModules)),
  };
}

interface Runner {
  readonly app: string;
  readonly cliBin: string;
  readonly base: string;
  readonly env: NodeJS.ProcessEnv;
  child: ChildProcess | undefined;
  count: number;
  /** Files and stacks of the first run's output. */
  tree: { files: number; stacks: string[] } | undefined;
}

function waitForExit(child: ChildProcess, output: string[]): Promise<number> {
  return new Promise((resolveExit, reject) => {
    const timer = setTimeout(() => {
      if (child.pid !== undefined) process.kill(-child.pid, "SIGKILL");
      reject(new Error(`synth did not finish in ${RUN_TIMEOUT_MS / 1000} s`));
    }, RUN_TIMEOUT_MS);
    child.on("error", (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.on("exit", (code, signal) => {
      clearTimeout(timer);
      if (code === 0) resolveExit(performance.now());
      else {
        const tail = output.join("").slice(-3_000);
        reject(new Error(`synth exited with ${code ?? signal}:\n${tail}`));
      }
    });
  });
}

async function synthOnce(
  runner: Runner,
  sizes: SynthSizes,
  variant: SynthVariant,
  round: number,
): Promise<SynthRun> {
  const n = runner.count++;
  const outDir = join(runner.base, `out-${n}`);
  const rssFile = join(runner.base, `rss-${n}.jsonl`);
  await mkdir(outDir);
  const command = variantCommand(runner.app, variant);
  const env = { ...runner.env, SYNTH_RSS_FILE: rssFile };
  const output: string[] = [];
  const start = performance.now();
  const child =
    sizes.via === "cli"
      ? spawn(
          process.execPath,
          [
            "--import",
            pathToFileURL(RSS_PRELOAD).href,
            runner.cliBin,
            "synth",
            "--app",
            command,
            "--output",
            outDir,
          ],
          { cwd: PROJECT_ROOT, env, detached: true, stdio: ["ignore", "pipe", "pipe"] },
        )
      : spawn(command, {
          cwd: PROJECT_ROOT,
          env: { ...env, CDKTF_OUTDIR: outDir },
          shell: true,
          detached: true,
          stdio: ["ignore", "pipe", "pipe"],
        });
  runner.child = child;
  child.stdout?.on("data", (chunk: Buffer) => output.push(chunk.toString()));
  child.stderr?.on("data", (chunk: Buffer) => output.push(chunk.toString()));
  try {
    const end = await waitForExit(child, output);
    const records = await readRecords(rssFile);
    const entry = appEntry(runner.app);
    const app = records.find((r) => r.argv1 === entry);
    if (!app) throw new Error(`no peak-RSS record of the app process (${entry}) in ${rssFile}`);
    const cli = records.find((r) => r.argv1 === runner.cliBin);
    if (sizes.via === "cli" && !cli) throw new Error(`no peak-RSS record of the cdktf CLI`);
    const { digest, files, hashes } = await treeDigest(outDir);
    runner.tree ??= {
      files,
      stacks: (await readdir(join(outDir, "stacks"), { withFileTypes: true }))
        .filter((e) => e.isDirectory())
        .map((e) => e.name)
        .sort(),
    };
    return {
      variant,
      wallSeconds: (end - start) / 1000,
      appSeconds: app.seconds,
      appPeakBytes: app.maxRssKiB * 1024,
      cliPeakBytes: cli ? cli.maxRssKiB * 1024 : undefined,
      providerModules: app.providerModules,
      outputDigest: digest,
      outputHashes: hashes,
      round,
    };
  } finally {
    runner.child = undefined;
  }
}

/** Whether the runs wrote the same trees: overall, which files differed, and round by round. */
export function compareOutputs(all: readonly SynthRun[]): {
  sameOutput: boolean;
  differingFiles: string[];
  roundsSame: number;
  rounds: number;
} {
  const first = all[0];
  const paths = new Set(all.flatMap((r) => Object.keys(r.outputHashes)));
  const differingFiles = [...paths]
    .filter((p) => !all.every((r) => r.outputHashes[p] === first?.outputHashes[p]))
    .sort();
  const rounds = [...new Set(all.map((r) => r.round))];
  const roundsSame = rounds.filter((round) => {
    const own = all.filter((r) => r.round === round);
    return own.every((r) => r.outputDigest === own[0]?.outputDigest);
  }).length;
  return {
    sameOutput: all.every((r) => r.outputDigest === first?.outputDigest),
    differingFiles,
    roundsSame,
    rounds: rounds.length,
  };
}

export async function measureSynth(
  sizes: SynthSizes,
  context: ExperimentContext,
): Promise<SynthResult> {
  if (sizes.runs < 1 || sizes.variants.length === 0) throw new RangeError("nothing to measure");
  const start = performance.now();
  const loadAtStart = loadavg()[0] ?? Number.NaN;
  const app = await cdktfAppCommand();
  const cliBin = await realpath(join(PROJECT_ROOT, "node_modules", "cdktf-cli", "bundle", "bin"));
  const base = await mkdtemp(join(tmpdir(), "sketchstream-synth-"));
  // Node 22 of the project first on PATH, for `npx tsx` as for `npm run synth`; no NODE_OPTIONS,
  // so the CLI sets its own default (--max-old-space-size=4096) for the app as it does there.
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    PATH: [dirname(process.execPath), join(PROJECT_ROOT, "node_modules", ".bin"), process.env.PATH]
      .filter((p) => p !== undefined && p !== "")
      .join(delimiter),
    CHECKPOINT_DISABLE: "1",
  };
  delete env.NODE_OPTIONS;
  const runner: Runner = {
    app,
    cliBin: join(cliBin, "cdktf"),
    base,
    env,
    child: undefined,
    count: 0,
    tree: undefined,
  };
  context.closers.push(async () => {
    if (runner.child?.pid !== undefined && runner.child.exitCode === null) {
      try {
        process.kill(-runner.child.pid, "SIGKILL");
      } catch {
        // already gone
      }
    }
    await rm(base, { recursive: true, force: true });
  });
  const all: SynthRun[] = [];
  const runs: SynthRun[] = [];
  const total = sizes.variants.length * (sizes.warmups + sizes.runs);
  for (let round = 0; round < sizes.warmups + sizes.runs; round++) {
    const warm = round < sizes.warmups;
    for (const variant of sizes.variants) {
      context.progress(
        `synth: ${variant} ${warm ? "(warm-up) " : ""}${all.length + 1}/${total} via ${sizes.via}`,
      );
      const run = await synthOnce(runner, sizes, variant, round);
      all.push(run);
      if (!warm) runs.push(run);
      await rm(join(base, `out-${runner.count - 1}`), { recursive: true, force: true });
    }
  }
  const first = all[0];
  if (!first) throw new Error("no synth ran");
  const commands: Partial<Record<SynthVariant, string>> = {};
  for (const v of sizes.variants) commands[v] = variantCommand(app, v);
  return {
    sizes,
    appCommand: app,
    commands,
    runs,
    summaries: sizes.variants.map((v) => summarize(runs, v)),
    rootNamespaces: await providerRootNamespaces(),
    outputFiles: runner.tree?.files ?? 0,
    stacks: runner.tree?.stacks ?? [],
    ...compareOutputs(all),
    versions: {
      cdktfCli: await packageVersion("cdktf-cli"),
      cdktf: await packageVersion("cdktf"),
      providerAws: await packageVersion("@cdktf/provider-aws"),
      tsx: await packageVersion("tsx"),
    },
    seconds: (performance.now() - start) / 1000,
    loadAverage: { start: loadAtStart, end: loadavg()[0] ?? Number.NaN },
  };
}

const MIB = 1024 * 1024;
const COLORS: Readonly<Record<SynthVariant, string>> = { deep: "#1f4e79", root: "#e45756" };

/** root / deep of a statistic's medians; undefined when either variant was not measured. */
export function synthRatio(
  result: SynthResult,
  pick: (s: SynthSummary) => Stat | undefined,
): number | undefined {
  const deep = result.summaries.find((s) => s.variant === "deep");
  const root = result.summaries.find((s) => s.variant === "root");
  const a = deep && pick(deep);
  const b = root && pick(root);
  return a && b ? b.median / a.median : undefined;
}

function wallName(result: SynthResult): string {
  return result.sizes.via === "cli" ? "cdktf synth" : "app command";
}

interface BarRow {
  readonly variant: string;
  readonly measure: string;
  readonly median: number;
  readonly min: number;
  readonly max: number;
  readonly label: string;
}

function bar(s: SynthSummary, measure: string, st: Stat, scale: number, digits: number): BarRow {
  const median = st.median / scale;
  return {
    variant: SYNTH_VARIANT_LABEL[s.variant],
    measure,
    median,
    min: st.min / scale,
    max: st.max / scale,
    label: median.toFixed(digits),
  };
}

export function synthFigures(result: SynthResult): Figure[] {
  const seconds = result.summaries.flatMap((s) => [
    bar(s, wallName(result), s.wallSeconds, 1, 1),
    bar(s, "app process", s.appSeconds, 1, 1),
  ]);
  const memory = result.summaries.flatMap((s) => [
    bar(s, "app process", s.appPeakBytes, MIB, 0),
    ...(s.cliPeakBytes ? [bar(s, "cdktf CLI process", s.cliPeakBytes, MIB, 0)] : []),
  ]);
  const variants = result.summaries.map((s) => s.variant);
  const panel = (rows: readonly BarRow[], title: string) => {
    const x = {
      field: "measure",
      type: "nominal",
      sort: null,
      axis: { title: null, labelAngle: 0, labelLimit: 160 },
    };
    const xOffset = { field: "variant", type: "nominal", sort: null };
    return {
      width: 250,
      height: 240,
      data: { values: rows },
      layer: [
        {
          mark: { type: "bar" },
          encoding: {
            x,
            xOffset,
            y: { field: "median", type: "quantitative", axis: { title } },
            color: {
              field: "variant",
              type: "nominal",
              title: null,
              sort: null,
              legend: { labelLimit: 320 },
              scale: {
                domain: variants.map((v) => SYNTH_VARIANT_LABEL[v]),
                range: variants.map((v) => COLORS[v]),
              },
            },
          },
        },
        {
          mark: { type: "rule", color: "#333" },
          encoding: {
            x,
            xOffset,
            y: { field: "min", type: "quantitative" },
            y2: { field: "max" },
          },
        },
        {
          mark: { type: "text", baseline: "bottom", dy: -3, fontSize: 11, color: "#333" },
          encoding: {
            x,
            xOffset,
            y: { field: "max", type: "quantitative" },
            text: { field: "label" },
          },
        },
      ],
    };
  };
  const runs = result.summaries.map((s) => s.runs);
  const n = Math.min(...runs) === Math.max(...runs) ? `${runs[0]}` : runs.join("/");
  return [
    {
      file: "synth.svg",
      title:
        result.summaries.length > 1
          ? "cdktf synth: deep imports against the provider package root"
          : "cdktf synth with deep imports",
      subtitle: [
        `Median of ${n} run${n === "1" ? "" : "s"} per variant${result.summaries.length > 1 ? ", alternating" : ""}; lines: min to max. @cdktf/provider-aws ${result.versions.providerAws}, cdktf ${result.versions.cdktf}.`,
        result.sizes.via === "cli"
          ? `Wall: the cdktf synth CLI (${result.versions.cdktfCli}) from spawn to exit; app process: the node process running main.ts under tsx.`
          : "Wall: the app command of cdktf.json from spawn to exit (not the CLI); app process: the node process running main.ts.",
      ],
      spec: {
        hconcat: [panel(seconds, "seconds"), panel(memory, "peak RSS, MiB")],
        resolve: { scale: { color: "shared" } },
      } as unknown as Figure["spec"],
    },
  ];
}

function fmtStat(st: Stat, scale: number, digits: number): string {
  const f = (v: number) => (v / scale).toFixed(digits);
  return st.min === st.max ? f(st.median) : `${f(st.median)} (${f(st.min)}–${f(st.max)})`;
}

function fmtRatio(r: number | undefined): string {
  return r === undefined ? "n/a" : `${r.toFixed(1)}x`;
}

export function synthMarkdown(result: SynthResult): string {
  const cpus = availableParallelism();
  const wall = wallName(result);
  const cliColumn = result.sizes.via === "cli";
  const rows = result.summaries.map((s) => {
    const cli = cliColumn ? ` ${s.cliPeakBytes ? fmtStat(s.cliPeakBytes, MIB, 0) : "n/a"} |` : "";
    return `| ${SYNTH_VARIANT_LABEL[s.variant]} | ${s.runs} | ${s.providerModules} | ${fmtStat(s.wallSeconds, 1, 2)} | ${fmtStat(s.appSeconds, 1, 2)} | ${fmtStat(s.appPeakBytes, MIB, 0)} |${cli}`;
  });
  const wallRatio = synthRatio(result, (s) => s.wallSeconds);
  const appRatio = synthRatio(result, (s) => s.appSeconds);
  const rssRatio = synthRatio(result, (s) => s.appPeakBytes);
  const deep = result.summaries.find((s) => s.variant === "deep");
  const root = result.summaries.find((s) => s.variant === "root");
  if (wallRatio !== undefined && deep && root) {
    rows.push(
      `| root / deep (medians) | | | ${fmtRatio(wallRatio)} | ${fmtRatio(appRatio)} | ${fmtRatio(rssRatio)} |${cliColumn ? ` ${fmtRatio(synthRatio(result, (s) => s.cliPeakBytes))} |` : ""}`,
    );
  }
  const meaning =
    wallRatio !== undefined && rssRatio !== undefined && deep && root
      ? `Importing the provider package root makes \`${wall}\` ${fmtRatio(wallRatio)} slower (${deep.wallSeconds.median.toFixed(1)} s against ${root.wallSeconds.median.toFixed(1)} s) and the app process's peak RSS ${fmtRatio(rssRatio)} larger (${(deep.appPeakBytes.median / MIB).toFixed(0)} MiB against ${(root.appPeakBytes.median / MIB).toFixed(0)} MiB), because the root's index requires all ${result.rootNamespaces} namespaces of the provider (${root.providerModules} of its modules loaded) where the deep imports load ${deep.providerModules}. Every deploy, diff and test that synthesizes pays it, so keep stack code on deep imports (\`@cdktf/provider-aws/lib/<resource>\`); a single root import anywhere in the app brings the whole provider back.`
      : `The package-root variant was not measured in this run (variants: ${result.sizes.variants.join(", ")}), so there is no ratio; \`npm run bench:report\` measures both side by side. With deep imports the app loads ${deep?.providerModules ?? "n/a"} modules of the provider, whose root would load all ${result.rootNamespaces} namespaces.`;
  const tree = `${result.outputFiles} files, stacks ${result.stacks.join(", ")}; SHA-256 over paths and contents`;
  const warmed = result.sizes.warmups > 0 ? ", warm-ups included," : "";
  const same = !result.sameOutput
    ? `**The runs did not all write the same output tree** (${tree}, in the first): ${result.differingFiles.length} file${result.differingFiles.length === 1 ? "" : "s"} changed between runs (${result.differingFiles.map((f) => `\`${f}\``).join(", ")}). ${result.summaries.length > 1 ? `Within a round (one run of each variant, back to back) the variants wrote the same tree in ${result.roundsSame} of ${result.rounds} rounds; a file that changes across rounds but not within them comes from the sources changing during the run (a Lambda bundle rebuilt), not from the import style.` : ""}`.trim()
    : result.summaries.length > 1
      ? `Every run of both variants${warmed} wrote the same output tree (${tree}), so the difference is only the import style.`
      : `Every run${warmed} wrote the same output tree (${tree}).`;
  const how =
    result.sizes.via === "cli"
      ? `the \`cdktf synth\` CLI ${result.versions.cdktfCli}, offline, with \`--app\` set to cdktf.json's app command (\`${result.appCommand}\`) plus the preloads and \`--output\` a temporary directory, timed from spawn to exit`
      : `the app command of cdktf.json (\`${result.appCommand}\`) plus the preloads, run in a shell with \`CDKTF_OUTDIR\` set to a temporary directory as the CLI runs it, timed from spawn to exit (the CLI itself was not run)`;
  const commands = result.sizes.variants
    .map(
      (v) =>
        `${v}: \`${(result.commands[v] ?? "").replaceAll(`${pathToFileURL(PROJECT_ROOT).href}/`, "./")}\``,
    )
    .join("; ");
  return `## Synth: deep imports against the provider package root

![${result.summaries.length > 1 ? "cdktf synth seconds and peak RSS, deep imports against the package root" : "cdktf synth seconds and peak RSS with deep imports"}](charts/synth.svg)

| variant | runs | provider modules loaded | ${wall}, s | app process, s | app peak RSS, MiB |${cliColumn ? " cdktf CLI peak RSS, MiB |" : ""}
| --- | --- | --- | --- | --- | --- |${cliColumn ? " --- |" : ""}
${rows.join("\n")}

Medians, with min–max in brackets when runs differ.

${meaning}

${same}

How it was measured: each run is ${how}. The deep variant is the app as it is (every resource imported from \`@cdktf/provider-aws/lib/<resource>\`); the root variant is the same app with \`@cdktf/provider-aws\` loaded by its package root first (\`bench/report/synth-root.mjs\` given to node with \`--import\`; the root's \`lib/index.js\` requires all ${result.rootNamespaces} namespaces eagerly), main.ts and stacks/ unchanged. Commands: ${commands}. Peak RSS is \`process.resourceUsage().maxRSS\` of each node process, recorded at exit by \`bench/report/synth-rss.mjs\` (which also counts the provider modules loaded); the npx and tsx launcher processes are not counted. ${result.sizes.runs} measured run${result.sizes.runs === 1 ? "" : "s"} per variant${result.summaries.length > 1 ? ", alternating" : ""}${result.sizes.warmups > 0 ? `, after ${result.sizes.warmups} unmeasured warm-up run${result.sizes.warmups === 1 ? "" : "s"} of each` : ", no warm-up run"} (Lambda bundles come from the on-disk cache of stacks/bundle.ts); cdktf ${result.versions.cdktf}, @cdktf/provider-aws ${result.versions.providerAws}, tsx ${result.versions.tsx}. Timings depend on what else the machine runs: its 1-minute load average was ${result.loadAverage.start.toFixed(1)} when the runs started and ${result.loadAverage.end.toFixed(1)} when they ended (on ${cpus} cores); the ratios compare runs made side by side. No target in issue 14 for synth. ${result.seconds.toFixed(0)} s.`;
}

export async function synthExperiment(
  sizes: SynthSizes,
  context: ExperimentContext,
): Promise<ExperimentOutput> {
  const result = await measureSynth(sizes, context);
  return {
    id: "synth",
    markdown: synthMarkdown(result),
    figures: synthFigures(result),
    targets: [],
  };
}
