/**
 * The synth experiment of the benchmarks report (bench/report/synth.ts) at its small size: one
 * real synth of the deep-import app by cdktf.json's app command, its block and its chart. Checks
 * that the block is well formed and shows only its own chart, that the chart renders to a
 * well-formed SVG, and that the numbers are plausible and agree between the table and the chart.
 * The side-by-side comparison with the package root is too slow for `npm test` (DEFAULT runs
 * it); its ratio and wording are checked on a two-variant result built from given runs.
 */

import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Closer } from "../../bench/lib.js";
import { type Stamp, thisMachine } from "../../bench/report/machine.js";
import {
  cdktfAppCommand,
  compareOutputs,
  SYNTH_SMALL,
  type SynthResult,
  type SynthRun,
  summarize,
  synthExperiment,
  synthFigures,
  synthMarkdown,
  treeDigest,
  variantCommand,
} from "../../bench/report/synth.js";
import type { ExperimentOutput } from "../../bench/report/types.js";
import { ENVIRONMENT_NAMES, loadConfig } from "../../stacks/config.js";
import { testNowMs, utcDay } from "../helpers/clock.js";
import { expectFiguresRender } from "../helpers/svg.js";

const STAMP: Stamp = {
  command: "npm run bench:report -- --small",
  date: utcDay(testNowMs()),
  machine: thisMachine("n/a"),
};

/** The Markdown table's rows as cells (header and separator dropped). */
function tableRows(markdown: string): string[][] {
  const lines = markdown.split("\n").filter((l) => l.startsWith("| "));
  return lines.slice(2).map((l) =>
    l
      .split("|")
      .slice(1, -1)
      .map((c) => c.trim()),
  );
}

/** The median of a cell like `12.34` or `12.34 (11.00–13.00)`. */
function cellMedian(cell: string | undefined): number {
  return Number((cell ?? "").split(" ")[0]);
}

interface BarRow {
  readonly variant: string;
  readonly measure: string;
  readonly median: number;
  readonly min: number;
  readonly max: number;
}

/** The chart's bars: its seconds panel and its peak-RSS panel. */
function barPanels(output: { figures: readonly { spec: unknown }[] }): BarRow[][] {
  const spec = output.figures[0]?.spec as { hconcat: { data: { values: BarRow[] } }[] };
  return spec.hconcat.map((panel) => panel.data.values);
}

describe("the synth experiment at its small size", () => {
  const closers: Closer[] = [];
  let output: ExperimentOutput;

  beforeAll(async () => {
    output = await synthExperiment(SYNTH_SMALL, { progress: () => {}, closers });
  }, 120_000);

  afterAll(async () => {
    for (const close of closers.reverse()) await close();
  });

  it("writes a well-formed block that shows only its own chart and judges no target", () => {
    expect(output.id).toBe("synth");
    expect(output.markdown.startsWith("## ")).toBe(true);
    const files = output.figures.map((f) => f.file);
    expect(files.length).toBeGreaterThan(0);
    for (const file of files) expect(file.startsWith("synth")).toBe(true);
    const shown = [...output.markdown.matchAll(/\]\(charts\/([^)\s]+)\)/g)].map((m) => m[1]);
    expect(shown.length).toBeGreaterThan(0);
    for (const file of shown) expect(files).toContain(file);
    expect(output.targets).toEqual([]);
    expect(output.markdown).not.toMatch(/\*\*(PASS|MISS)\*\*/);
    expect(output.markdown).toContain("No target in issue 14 for synth");
  });

  it("renders its chart as a well-formed SVG with its title and the stamp", async () => {
    await expectFiguresRender(output.figures, STAMP);
  });

  it("measures plausible numbers that agree between the table and the chart", () => {
    const rows = tableRows(output.markdown);
    expect(rows).toHaveLength(SYNTH_SMALL.variants.length);
    const [variant, runs, modules, wall, app, rss] = rows[0] ?? [];
    expect(variant).toContain("deep");
    expect(Number(runs)).toBe(SYNTH_SMALL.runs);
    const namespaces = Number(/all (\d+) namespaces/.exec(output.markdown)?.[1]);
    expect(namespaces).toBeGreaterThan(1_000);
    // The deep imports load a few dozen of the provider's modules, far from all of them.
    expect(Number(modules)).toBeGreaterThan(10);
    expect(Number(modules)).toBeLessThan(namespaces / 10);
    // The app process lives inside the command that starts it.
    expect(cellMedian(app)).toBeGreaterThan(0);
    expect(cellMedian(wall)).toBeGreaterThan(cellMedian(app));
    // A node process that loads cdktf and the stacks: tens to hundreds of MiB.
    expect(cellMedian(rss)).toBeGreaterThan(30);
    expect(cellMedian(rss)).toBeLessThan(4_096);
    const [seconds = [], memory = []] = barPanels(output);
    const bar = (panel: BarRow[], measure: string) => panel.find((b) => b.measure === measure);
    expect(bar(seconds, "app command")?.median.toFixed(2)).toBe(cellMedian(wall).toFixed(2));
    expect(bar(seconds, "app process")?.median.toFixed(2)).toBe(cellMedian(app).toFixed(2));
    expect(bar(memory, "app process")?.median.toFixed(0)).toBe(cellMedian(rss).toFixed(0));
    for (const b of [...seconds, ...memory]) {
      expect(b.min).toBeLessThanOrEqual(b.median);
      expect(b.median).toBeLessThanOrEqual(b.max);
    }
  });

  it("synthesizes every stack of the app, the same tree on every run", () => {
    expect(output.markdown).toMatch(/Every run wrote the same output tree \((\d+) files/);
    const files = Number(/output tree \((\d+) files/.exec(output.markdown)?.[1]);
    expect(files).toBeGreaterThanOrEqual(ENVIRONMENT_NAMES.length);
    for (const name of ENVIRONMENT_NAMES) {
      expect(output.markdown).toContain(loadConfig(name).namePrefix);
    }
  });
});

describe("the synth comparison", () => {
  const run = (
    variant: "deep" | "root",
    round: number,
    wall: number,
    app: number,
    mib: number,
    bundle = "z1",
  ): SynthRun => ({
    variant,
    round,
    wallSeconds: wall,
    appSeconds: app,
    appPeakBytes: mib * 1024 * 1024,
    cliPeakBytes: 300 * 1024 * 1024,
    providerModules: variant === "deep" ? 40 : 2_153,
    outputDigest: `tree-${bundle}`,
    outputHashes: { "stacks/a/cdk.tf.json": "j1", "stacks/a/assets/bundle.zip": bundle },
  });
  const runs = [
    run("deep", 0, 10, 3, 180),
    run("root", 0, 21, 16, 730),
    run("deep", 1, 11, 4, 182),
    run("root", 1, 23, 17, 742),
    run("deep", 2, 12, 5, 181),
    run("root", 2, 22, 18, 736),
  ];
  const result: SynthResult = {
    sizes: { runs: 3, warmups: 0, variants: ["deep", "root"], via: "cli" },
    appCommand: "npx tsx main.ts",
    commands: {},
    runs,
    summaries: [summarize(runs, "deep"), summarize(runs, "root")],
    rootNamespaces: 2_135,
    outputFiles: 11,
    stacks: ["a", "b"],
    ...compareOutputs(runs),
    versions: { cdktfCli: "0", cdktf: "0", providerAws: "0", tsx: "0" },
    seconds: 1,
    loadAverage: { start: 1, end: 1 },
  };

  it("states the ratio of the medians shown in the table, in the table and in words", () => {
    const markdown = synthMarkdown(result);
    const rows = tableRows(markdown);
    const deep = rows.find((r) => r[0]?.startsWith("deep")) ?? [];
    const root = rows.find((r) => r[0]?.startsWith("provider package root")) ?? [];
    const ratio = rows.find((r) => r[0]?.startsWith("root / deep")) ?? [];
    for (const column of [3, 4, 5]) {
      const expected = cellMedian(root[column]) / cellMedian(deep[column]);
      expect(ratio[column]).toBe(`${expected.toFixed(1)}x`);
    }
    const wallRatio = cellMedian(root[3]) / cellMedian(deep[3]);
    expect(markdown).toContain(`\`cdktf synth\` ${wallRatio.toFixed(1)}x slower`);
    expect(markdown).toContain("Every run of both variants wrote the same output tree");
    const bars = barPanels({ figures: synthFigures(result) }).flat();
    expect(new Set(bars.map((b) => b.variant)).size).toBe(2);
  });

  it("says which files changed, and whether the variants agreed within each round", () => {
    expect(result.sameOutput).toBe(true);
    // A bundle rebuilt between rounds (the sources changed), the same within each round.
    const drift = runs.map((r) =>
      r.round === 2 ? { ...r, ...run(r.variant, 2, 1, 1, 1, "z2") } : r,
    );
    expect(compareOutputs(drift)).toEqual({
      sameOutput: false,
      differingFiles: ["stacks/a/assets/bundle.zip"],
      roundsSame: 3,
      rounds: 3,
    });
    const markdown = synthMarkdown({ ...result, ...compareOutputs(drift) });
    expect(markdown).toContain("did not all write the same output tree");
    expect(markdown).toContain("`stacks/a/assets/bundle.zip`");
    expect(markdown).toContain("the same tree in 3 of 3 rounds");
    // The variants disagreeing within a round.
    const split = runs.map((r) =>
      r.variant === "root" && r.round === 1 ? run("root", 1, 1, 1, 1, "z3") : r,
    );
    expect(compareOutputs(split)).toMatchObject({ sameOutput: false, roundsSame: 2, rounds: 3 });
  });

  it("hashes a tree by its paths and contents", async () => {
    const dir = await mkdtemp(join(tmpdir(), "sketchstream-synth-test-"));
    try {
      await writeFile(join(dir, "a.json"), "{}");
      await writeFile(join(dir, "b.json"), "[]");
      const first = await treeDigest(dir);
      expect(first.files).toBe(2);
      expect((await treeDigest(dir)).digest).toBe(first.digest);
      await writeFile(join(dir, "b.json"), "[ ]");
      expect((await treeDigest(dir)).digest).not.toBe(first.digest);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it("adds the preloads to cdktf.json's app command, and refuses another form", async () => {
    const app = await cdktfAppCommand();
    const deep = variantCommand(app, "deep");
    const root = variantCommand(app, "root");
    expect(deep).toMatch(/^npx tsx --import \S+synth-rss\.mjs \S+$/);
    expect(root).toMatch(/^npx tsx --import \S+synth-rss\.mjs --import \S+synth-root\.mjs \S+$/);
    expect(deep.split(" ").at(-1)).toBe(app.split(" ").at(-1));
    expect(() => variantCommand("node dist/main.js", "deep")).toThrow(/npx tsx/);
  });
});
