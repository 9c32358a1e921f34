/**
 * The report's cost block (bench/report/cost.ts): the capacity planner's monthly cost at three
 * reference loads, from the measured constants file and the dated prices. Checks the block's
 * Markdown and charts, that its figures are the planner's (recomputed here), that the prod load
 * is the prod config at the load it is sized for, and that it names the constants file it read.
 */

import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Closer } from "../../bench/lib.js";
import {
  COST_SMALL,
  type CostResult,
  componentOf,
  costExperiment,
  measureCost,
  priceEntries,
  usd,
} from "../../bench/report/cost.js";
import type { Stamp } from "../../bench/report/machine.js";
import type { ExperimentOutput } from "../../bench/report/types.js";
import { planCapacity, withDefaults } from "../../cli/capacity.js";
import { DEFAULT_CONSTANTS_PATH, loadScaleConstants } from "../../cli/capacity-constants.js";
import { PRICE_REGION, PRICES_AS_OF } from "../../cli/capacity-prices.js";
import { ENVIRONMENTS } from "../../stacks/config.js";
import { testNowMs, utcDay } from "../helpers/clock.js";
import { expectFiguresRender } from "../helpers/svg.js";

const STAMP: Stamp = {
  command: "npm run bench:report -- --small",
  date: utcDay(testNowMs()),
  machine: { cores: 2, cpuModel: "test CPU", node: "v22.0.0", redis: "7.0.15" },
};

describe("the cost block at small sizes", () => {
  const closers: Closer[] = [];
  let output: ExperimentOutput;
  let result: CostResult;

  beforeAll(async () => {
    output = await costExperiment(COST_SMALL, { progress: () => {}, closers });
    result = measureCost(COST_SMALL);
  });

  afterAll(async () => {
    for (const close of closers.reverse()) await close();
  });

  it("is a well-formed block that shows only its own charts and has no targets", () => {
    expect(output.id).toBe("cost");
    expect(output.markdown.startsWith("## Cost\n")).toBe(true);
    const files = output.figures.map((f) => f.file);
    expect(files).toEqual(["cost.svg", "cost-components.svg"]);
    const shown = [...output.markdown.matchAll(/\]\(charts\/([^)\s]+)\)/g)].map((m) => m[1]);
    expect(shown.sort()).toEqual([...files].sort());
    expect(output.targets).toEqual([]);
    expect(output.markdown).not.toMatch(/\*\*(PASS|MISS)\*\*/);
  });

  it("renders every chart as a well-formed SVG with its title and the stamp", async () => {
    await expectFiguresRender(output.figures, STAMP);
  });

  it("prices three loads, each total the sum of its lines, growing with the load", () => {
    expect(result.cases.map((c) => c.id)).toEqual(["small", "prod", "large"]);
    for (const c of result.cases) {
      const sum = c.plan.cost.lines.reduce((n, l) => n + l.monthlyUsd, 0);
      expect(c.plan.cost.totalMonthlyUsd).toBeCloseTo(sum, 6);
      for (const line of c.plan.cost.lines) expect(line.monthlyUsd).toBeGreaterThanOrEqual(0);
      expect(output.markdown).toContain(`**${usd(c.plan.cost.totalMonthlyUsd)}**`);
      expect(output.markdown).toContain(c.label);
    }
    const [small, prod, large] = result.cases.map((c) => c.plan.cost.totalMonthlyUsd);
    expect(small).toBeLessThan(prod ?? 0);
    expect(prod).toBeLessThan(large ?? 0);
  });

  it("is the planner's own arithmetic for the loads it chooses", () => {
    const constants = loadScaleConstants();
    for (const id of ["small", "large"] as const) {
      const c = result.cases.find((x) => x.id === id);
      const load = id === "small" ? COST_SMALL.small : COST_SMALL.large;
      const plan = planCapacity(withDefaults(load), constants);
      expect(c?.input).toEqual(withDefaults(load));
      expect(c?.plan.cost).toEqual(plan.cost);
      expect(c?.plan.memorydb.choice).toEqual(plan.memorydb.choice);
    }
  });

  it("prices the prod config as configured, at one event per second per site", () => {
    const prod = result.cases.find((c) => c.id === "prod");
    const config = ENVIRONMENTS.prod;
    expect(prod?.input.sites).toBe(prod?.input.eventsPerSecond);
    expect(prod?.plan.memorydb.choice.nodeType).toBe(config.memorydb.nodeType);
    expect(prod?.plan.memorydb.choice.shards).toBe(config.memorydb.shards);
    expect(prod?.plan.kinesis.mode).toBe(config.stream.mode);
    // The planner's own choice for the same load costs at most what the config does.
    expect(result.prodPlannerChoice.input).toEqual(prod?.input);
    expect(result.prodPlannerChoice.cost.totalMonthlyUsd).toBeLessThanOrEqual(
      (prod?.plan.cost.totalMonthlyUsd ?? 0) + 1e-6,
    );
    expect(output.markdown).toContain(
      `${usd(result.prodPlannerChoice.cost.totalMonthlyUsd)} a month`,
    );
  });

  it("lists every price with its date and region, every component, and the loads' needs", () => {
    expect(output.markdown).toContain(PRICES_AS_OF);
    expect(output.markdown).toContain(PRICE_REGION);
    for (const [path, value] of priceEntries()) {
      const shown = value.toLocaleString("en-US", { maximumSignificantDigits: 6 });
      expect(output.markdown, path).toMatch(
        new RegExp(`^- .+: ${shown.replaceAll(".", "\\.")}$`, "m"),
      );
    }
    expect(output.markdown.match(/^- .*: [\d,.]+$/gm)?.length).toBe(priceEntries().length);
    for (const line of result.cases[2]?.plan.cost.lines ?? []) {
      expect(output.markdown).toContain(`| ${componentOf(line.item)} |`);
    }
    const large = result.cases.find((c) => c.id === "large");
    expect(output.markdown).toContain(`${large?.plan.memorydb.choice.nodes} nodes`);
    // The large load needs quota increases, and the block says so.
    expect(large?.plan.warnings.some((w) => w.includes("quota"))).toBe(true);
    for (const w of large?.plan.warnings ?? []) expect(output.markdown).toContain(w);
  });

  it("names the constants file it read, with that file's own date", async () => {
    const dir = await mkdtemp(join(tmpdir(), "sketchstream-report-cost-"));
    try {
      const json = JSON.parse(await readFile(DEFAULT_CONSTANTS_PATH, "utf8"));
      const path = join(dir, "other-constants.json");
      await writeFile(path, JSON.stringify({ ...json, measuredAt: "2030-01-02" }));
      const other = await costExperiment(
        { ...COST_SMALL, constantsPath: path },
        { progress: () => {}, closers },
      );
      expect(other.markdown).toContain(path);
      expect(other.markdown).toContain("on 2030-01-02");
      expect(output.markdown).toContain("`bench/results/scale-constants.json`");
      expect(output.markdown).toContain(`on ${loadScaleConstants().measuredAt}`);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
