/**
 * The report's scale block (bench/report/scale.ts) at a small size: the scale bench's own cluster,
 * consumer and rollup through runScaleBench, its constants written to a temporary file (never to
 * the planner's), side by side with the full-size figures quoted from
 * bench/results/scale-constants.json. Checks the block's Markdown and chart, that the quoted
 * figures are the file's, that each ratio is the two columns' quotient, that the run left the
 * planner's file alone and printed nothing to stdout, and that it closed what it started.
 */

import { createHash } from "node:crypto";
import { readFile, stat } from "node:fs/promises";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import type { Closer } from "../../bench/lib.js";
import type { Stamp } from "../../bench/report/machine.js";
import { SCALE_SMALL, scaleExperiment } from "../../bench/report/scale.js";
import type { ExperimentOutput } from "../../bench/report/types.js";
import {
  DEFAULT_CONSTANTS_PATH,
  loadScaleConstants,
  type ScaleConstants,
} from "../../cli/capacity-constants.js";
import { testNowMs, utcDay } from "../helpers/clock.js";
import { expectFiguresRender } from "../helpers/svg.js";

const STAMP: Stamp = {
  command: "npm run bench:report -- --small",
  date: utcDay(testNowMs()),
  machine: { cores: 2, cpuModel: "test CPU", node: "v22.0.0", redis: "7.0.15" },
};

async function fileState(path: string): Promise<{ hash: string; mtimeMs: number }> {
  const text = await readFile(path);
  return {
    hash: createHash("sha256").update(text).digest("hex"),
    mtimeMs: (await stat(path)).mtimeMs,
  };
}

/** `1,234` / `12.5` / `1.13x` as a number. */
function parseCell(cell: string): number {
  return Number(cell.replaceAll(",", "").replace(/x$/, ""));
}

describe("the scale block at a small size", () => {
  const closers: Closer[] = [];
  let output: ExperimentOutput;
  let full: ScaleConstants;
  let before: { hash: string; mtimeMs: number };
  let after: { hash: string; mtimeMs: number };
  const printed: unknown[] = [];
  const statusLines: string[] = [];

  beforeAll(async () => {
    full = loadScaleConstants();
    before = await fileState(DEFAULT_CONSTANTS_PATH);
    const log = vi.spyOn(console, "log").mockImplementation((...args) => {
      printed.push(args);
    });
    try {
      output = await scaleExperiment(
        { ...SCALE_SMALL, nowMs: testNowMs() },
        { progress: (text) => statusLines.push(text), closers },
      );
    } finally {
      log.mockRestore();
    }
    after = await fileState(DEFAULT_CONSTANTS_PATH);
  }, 60_000);

  afterAll(async () => {
    for (const close of closers.reverse()) await close();
  });

  it("is a well-formed block that shows only its own chart and has no targets", () => {
    expect(output.id).toBe("scale");
    expect(output.markdown.startsWith("## Scale\n")).toBe(true);
    expect(output.figures.map((f) => f.file)).toEqual(["scale.svg"]);
    const shown = [...output.markdown.matchAll(/\]\(charts\/([^)\s]+)\)/g)].map((m) => m[1]);
    expect(shown).toEqual(["scale.svg"]);
    expect(output.targets).toEqual([]);
    expect(output.markdown).not.toMatch(/\*\*(PASS|MISS)\*\*/);
  });

  it("renders its chart as a well-formed SVG with its title and the stamp", async () => {
    await expectFiguresRender(output.figures, STAMP);
  });

  it("left the planner's constants file as it was, printed nothing, and reported its status", () => {
    expect(after).toEqual(before);
    expect(printed).toEqual([]);
    expect(statusLines.some((l) => l.startsWith("scale: "))).toBe(true);
    // It closed its cluster and temporary file itself; the closer it left is a no-op now.
    expect(closers).toHaveLength(1);
  });

  it("quotes the full run from its file, with the file's own stamp", () => {
    expect(output.markdown).toContain("`bench/results/scale-constants.json`");
    expect(output.markdown).toContain(`(${full.measuredAt}, ${full.machine.cores} × `);
    expect(output.markdown).toContain(
      `full run, ${full.inputs.sites.toLocaleString("en-US")} sites`,
    );
    expect(output.markdown).toContain(
      `this run, ${SCALE_SMALL.sites.toLocaleString("en-US")} sites`,
    );
  });

  it("shows each constant for both runs, the ratio their quotient, the full column the file's", () => {
    const rows = output.markdown
      .split("\n")
      .filter((l) => /^\| (consumer|rollup|HLL and memory|bookkeeping) \|/.test(l))
      .map((l) => l.split("|").map((c) => c.trim()));
    expect(rows.length).toBeGreaterThan(20);
    for (const [, group, name, reducedCell, fullCell, ratioCell] of rows) {
      const reduced = parseCell(reducedCell ?? "");
      const fullValue = parseCell(fullCell ?? "");
      const ratio = parseCell(ratioCell ?? "");
      expect(reduced, `${group} ${name}`).toBeGreaterThanOrEqual(0);
      expect(fullValue, `${group} ${name}`).toBeGreaterThan(0);
      // Cells are rounded for display: the ratio agrees with them within that rounding.
      if (fullValue >= 10 && reduced >= 10) {
        expect(Math.abs(ratio - reduced / fullValue), `${group} ${name}`).toBeLessThanOrEqual(
          0.02 * Math.max(1, ratio) + 0.01,
        );
      }
    }
    const cell = (name: string) => rows.find((r) => r[2]?.startsWith(name))?.[4];
    expect(cell("events/s per invocation")).toBe(
      Math.round(full.consumer.eventsPerSecond).toLocaleString("en-US"),
    );
    expect(cell("a key turns dense at")).toBe(full.hll.denseAtCardinality.toLocaleString("en-US"));
    expect(cell("dense key")).toBe(full.hll.denseBytes.toLocaleString("en-US"));
    // The dense threshold and size are Redis's, whatever the population: the same in both.
    const same = (name: string) => rows.find((r) => r[2]?.startsWith(name))?.[5];
    expect(same("a key turns dense at")).toBe("1.00x");
    expect(same("dense key")).toBe("1.00x");
  });
});
