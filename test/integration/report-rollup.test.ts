/**
 * The report's rollup experiment (bench/report/rollup.ts) at small sizes: bench/rollup.ts's
 * measureRollup at two site counts, each on a cluster of its own; the block's table has a row
 * per size with the four contenders' rates, the targets are judged (never a PASS at sizes below
 * the merges the target asks for), and the chart renders.
 */

import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Closer } from "../../bench/lib.js";
import type { Stamp } from "../../bench/report/machine.js";
import { ROLLUP_SMALL, rollupExperiment } from "../../bench/report/rollup.js";
import type { ExperimentOutput } from "../../bench/report/types.js";
import { latestMidMonth } from "../../bench/rollup.js";
import { testNowMs, utcDay } from "../helpers/clock.js";
import { expectFiguresRender } from "../helpers/svg.js";

const STAMP: Stamp = {
  command: "npm run bench:report -- --small",
  date: utcDay(testNowMs()),
  machine: { cores: 2, cpuModel: "test CPU", node: "v22.0.0", redis: "7.0.15" },
};

describe("the rollup block at small sizes", () => {
  const closers: Closer[] = [];
  let rollup: ExperimentOutput;

  beforeAll(async () => {
    // The history ends on the test clock's mid-month day; its keys expire by the real clock,
    // after it, so nothing expires during the run.
    rollup = await rollupExperiment(
      { ...ROLLUP_SMALL, today: latestMidMonth(testNowMs()) },
      { progress: () => {}, closers },
    );
  }, 120_000);

  afterAll(async () => {
    for (const close of closers.splice(0).reverse()) await close();
  });

  it("is a well-formed block that shows only its own chart", () => {
    expect(rollup.id).toBe("rollup");
    expect(rollup.markdown.startsWith("## Rollup\n")).toBe(true);
    const shown = [...rollup.markdown.matchAll(/\]\(charts\/([^)]+)\)/g)].map((m) => m[1]);
    expect(shown).toEqual(rollup.figures.map((f) => f.file));
    for (const t of rollup.targets) {
      expect(rollup.markdown).toContain(`- **${t.pass ? "PASS" : "MISS"}** ${t.name}: ${t.text}`);
    }
  });

  it("renders its chart as a well-formed SVG with its title and the stamp", async () => {
    await expectFiguresRender(rollup.figures, STAMP);
  });

  it("measures the rollup at each size: the run, both bare-client limits and the naive recompute", () => {
    const rows = rollup.markdown.split("\n").filter((l) => /^\| \d/.test(l)) ?? [];
    expect(rows.map((r) => r.split("|")[1]?.trim())).toEqual(
      ROLLUP_SMALL.sites.map((n) => String(n)),
    );
    for (const row of rows) {
      const rates = [...row.matchAll(/([\d,]+)\/s/g)].map((m) => Number(m[1]?.replaceAll(",", "")));
      expect(rates, row).toHaveLength(4);
      for (const r of rates) expect(r, row).toBeGreaterThan(0);
    }
    expect(rollup.targets.map((t) => t.name)).toEqual(["rollup vs bare client", "rollup vs naive"]);
    // Small runs make far fewer merges than the target is judged over: never a PASS here.
    expect(rollup.targets[0]?.pass).toBe(false);
    expect(rollup.targets[0]?.text).toMatch(/fewer than the 100,000 merges/);
  });
});
