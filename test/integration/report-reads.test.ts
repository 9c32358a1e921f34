/**
 * The report's Reads experiment (bench/report/reads.ts) at its small size, so it cannot rot: its
 * own cluster, a short history through the real consumer and rollup, count latencies by range
 * length against PFCOUNT of every day key, and the read API against its limit. Checks the
 * block's Markdown, that every figure renders to a well-formed SVG, and that the numbers shown
 * are the ones measured and agree with each other.
 */

import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { percentile, RETENTION_MARGIN_DAYS, TARGET_P50_WITHIN_LIMIT } from "../../bench/api.js";
import type { Closer } from "../../bench/lib.js";
import { type Stamp, thisMachine } from "../../bench/report/machine.js";
import {
  READ_METHODS,
  READS_SMALL,
  type ReadsOutput,
  readsExperiment,
} from "../../bench/report/reads.js";
import { targetLine } from "../../bench/report/types.js";
import { DAY_MS, testNowMs, utcDay } from "../helpers/clock.js";
import { expectFiguresRender } from "../helpers/svg.js";

// The history's keys live for its days plus the margin loadApiData adds to the retention.
const NOW = testNowMs(READS_SMALL.days + RETENTION_MARGIN_DAYS);
const TODAY = utcDay(NOW);

describe("the Reads experiment at its small size", () => {
  const closers: Closer[] = [];
  let output: ReadsOutput;

  beforeAll(async () => {
    output = await readsExperiment(READS_SMALL, { progress: () => {}, closers }, { nowMs: NOW });
  }, 60_000);

  afterAll(async () => {
    for (const close of closers.reverse()) await close();
  });

  it("writes a well-formed block that shows only its own figures and every target", () => {
    const { markdown, figures, targets } = output;
    expect(output.id).toBe("reads");
    expect(markdown.startsWith("## Reads\n")).toBe(true);
    const shown = [...markdown.matchAll(/\]\(charts\/([^)\s]+)\)/g)].map((m) => m[1]);
    expect(shown.sort()).toEqual(figures.map((f) => f.file).sort());
    for (const f of figures) expect(f.file).toMatch(/^reads(-[a-z]+)?\.svg$/);
    expect(targets.length).toBe(output.result.api.length);
    for (const t of targets) expect(markdown).toContain(targetLine(t));
    expect(markdown).toMatch(/^- \*\*(PASS|MISS)\*\* API p50, /m);
    // Nothing left unfilled.
    expect(markdown).not.toMatch(/undefined|NaN|\[object/);
  });

  it("renders every figure to a well-formed SVG with its title and stamp", async () => {
    const stamp: Stamp = {
      command: "npm run bench:report -- --small",
      date: TODAY,
      machine: thisMachine(output.result.redisVersion),
    };
    expect(output.figures.map((f) => f.file)).toEqual(["reads.svg", "reads-api.svg"]);
    await expectFiguresRender(output.figures, stamp, 150);
  });

  it("times every range with every method, one sample per timed call", () => {
    const { result } = output;
    expect(result.today).toBe(TODAY);
    expect(result.firstDay).toBe(utcDay(NOW - (READS_SMALL.days - 1) * DAY_MS));
    expect(result.ranges.map((r) => r.days)).toEqual(READS_SMALL.ranges);
    for (const r of result.ranges) {
      expect(r.to).toBe(TODAY);
      expect(r.from).toBe(utcDay(NOW - (r.days - 1) * DAY_MS));
      expect(r.dayKeys).toBe(r.days);
      expect(r.coverKeys).toBeGreaterThanOrEqual(1);
      expect(r.coverKeys).toBeLessThanOrEqual(r.days);
      // At most the range's distinct users, give or take the HLL's error.
      expect(r.estimate).toBeGreaterThan(0);
      expect(r.estimate).toBeLessThanOrEqual(r.days * READS_SMALL.usersPerDay * 1.05);
      for (const method of READ_METHODS) {
        const m = r.methods[method];
        expect(m.latenciesMs).toHaveLength(READS_SMALL.samples);
        for (const l of m.latenciesMs) expect(l).toBeGreaterThan(0);
        expect(m.p50Ms).toBe(percentile(m.latenciesMs, 50));
        expect(m.p99Ms).toBe(percentile(m.latenciesMs, 99));
        expect(m.p99Ms).toBeGreaterThanOrEqual(m.p50Ms);
      }
    }
    // A 30-day range holds whole ISO weeks, which the rollup merged: the cover uses them.
    const month = result.ranges.find((r) => r.days === 30);
    expect(month?.cover).toMatch(/week/);
    expect(month?.coverKeys).toBeLessThan(30);
    // One day is one key either way.
    expect(result.ranges.find((r) => r.days === 1)?.coverKeys).toBe(1);
    expect(result.dayKeyEncodings.dense + result.dayKeyEncodings.sparse).toBe(READS_SMALL.days);
  });

  it("shows in its table the numbers it measured, and ratios computed from them", () => {
    const { markdown, result } = output;
    for (const r of result.ranges) {
      const c = r.methods.count;
      const e = r.methods.everyDay;
      const row = markdown
        .split("\n")
        .find((line) => line.startsWith(`| ${r.days} day${r.days === 1 ? "" : "s"} |`));
      expect(row, `${r.days} days`).toBeDefined();
      expect(row).toContain(`| ${r.coverKeys} (${r.cover}) |`);
      expect(row).toContain(`| ${(e.p50Ms / c.p50Ms).toFixed(2)}x |`);
    }
  });

  it("measures the API's cases that fit the history, with the target judged per case", () => {
    const { result, targets, markdown } = output;
    expect(result.api.map((c) => c.name)).toEqual([
      "count 1 day",
      "count 30 days",
      "series 30 days by day",
    ]);
    for (const [i, c] of result.api.entries()) {
      for (const side of [c.app, c.limit]) {
        expect(side.p50Ms).toBeGreaterThan(0);
        expect(side.p99Ms).toBeGreaterThanOrEqual(side.p50Ms);
        expect(side.perSecond).toBeGreaterThan(0);
      }
      expect(c.roundTrips).toBeGreaterThanOrEqual(1);
      expect(c.ratio).toBeCloseTo(c.app.p50Ms / c.limit.p50Ms, 10);
      expect(targets[i]?.pass).toBe(c.ratio <= TARGET_P50_WITHIN_LIMIT);
      expect(targets[i]?.text).toContain(`${c.ratio.toFixed(2)}x`);
      expect(markdown).toContain(`| ${c.name} | ${c.roundTrips} | ${c.answer} |`);
    }
  });
});
