/**
 * The scale benchmark (`npm run bench:scale`, bench/scale.ts) at a small size, so it cannot rot:
 * its own 3-primary cluster, the real consumer and rollup handlers, the constants file it writes
 * (checked against the planner's schema and for figures that agree with each other), and the
 * planner reading that file.
 */

import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as v from "valibot";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Closer } from "../../bench/lib.js";
import { runScaleBench, SCALE_DEFAULTS, type ScaleBenchOptions } from "../../bench/scale.js";
import { planCapacity, withDefaults } from "../../cli/capacity.js";
import {
  loadScaleConstants,
  SCALE_CONSTANTS_FORMAT,
  type ScaleConstants,
  ScaleConstantsSchema,
} from "../../cli/capacity-constants.js";
import { testNowMs, utcDay } from "../helpers/clock.js";

const SITES = 2000;

describe("bench:scale at 2,000 sites", () => {
  let dir: string;
  let opts: ScaleBenchOptions;
  let result: ScaleConstants;
  const lines: string[] = [];

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "sketchstream-scale-bench-"));
    opts = {
      ...SCALE_DEFAULTS,
      sites: SITES,
      // The largest site: 1,000 users, 2,000 events (its ev: day key turns dense).
      maxUsers: 1000,
      // Part of the pages: the rest is extrapolated, as at a million sites.
      mergeSites: SITES / 2,
      headSites: SITES,
      tailSample: 0,
      timedBatches: 3,
      output: join(dir, "constants.json"),
      nowMs: testNowMs(),
    };
    const closers: Closer[] = [];
    try {
      result = await runScaleBench(opts, closers, (line) => lines.push(line));
    } finally {
      for (const close of closers.reverse()) await close();
    }
  }, 60_000);

  afterAll(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it("writes its constants in the planner's format, dated by its clock", async () => {
    const json: unknown = JSON.parse(await readFile(opts.output, "utf8"));
    expect(v.parse(ScaleConstantsSchema, json)).toEqual(result);
    expect(result.formatVersion).toBe(SCALE_CONSTANTS_FORMAT);
    expect(result.measuredAt).toBe(utcDay(opts.nowMs));
    expect(result.inputs.day).toBe(utcDay(opts.nowMs - 86_400_000));
    expect(result.versions.redisServer).toMatch(/^Redis server v=\d/);
    expect(result.machine.cores).toBeGreaterThan(0);
    expect(lines.join("\n")).toContain(`constants written to ${opts.output}`);
  });

  it("sent every event, the first batches through the handler", () => {
    const { generated, consumer } = result;
    expect(generated.events).toBe(2 * generated.users);
    expect(consumer.timedEvents).toBe(3 * opts.batchSize);
    expect(consumer.timedEvents + consumer.loadEvents).toBe(generated.events);
    expect(consumer.eventsPerSecond).toBeGreaterThan(0);
    expect(consumer.clientCpuUsPerEvent).toBeGreaterThan(0);
    expect(consumer.serverCommandUsPerEvent).toBeGreaterThan(0);
    expect(consumer.netInputBytesPerEvent).toBeGreaterThan(generated.recordBytes / 4);
    expect(consumer.commands.map((c) => c.command)).toEqual(
      expect.arrayContaining(["pfadd", "expireat", "sadd"]),
    );
  });

  it("planned an item per touched member, merged about half and extrapolated the rest", () => {
    const { rollup, generated, stepFunctions } = result;
    expect(rollup.items).toBe(generated.touchedMembers);
    // Each touched site-day went into its week and its month.
    expect(rollup.mergedSitePeriods).toBe(2 * rollup.mergedItems);
    expect(rollup.mergedPages).toBe(Math.ceil(rollup.pages / 2));
    expect(rollup.mergedItems).toBeLessThan(rollup.items);
    expect(rollup.mergedItems).toBe(Math.min(rollup.items, rollup.mergedPages * rollup.pageSize));
    expect(rollup.extrapolated).toBe(true);
    expect(rollup.fullMergeMs).toBeCloseTo(
      (rollup.mergeWallMs * rollup.items) / rollup.mergedItems,
      6,
    );
    // Pages run in site-id order, which is unrelated to size: the merged pages' share of the
    // sites is about their share of the items.
    const share = rollup.mergedItems / rollup.items;
    expect(rollup.mergedSites / SITES).toBeGreaterThan(share - 0.1);
    expect(rollup.mergedSites / SITES).toBeLessThan(share + 0.1);
    expect(rollup.pages).toBe(Math.ceil(rollup.items / rollup.pageSize));
    expect(rollup.pfmergeUsPerCall).toBeGreaterThan(0);
    expect(stepFunctions.transitionsPerRun).toBe(
      stepFunctions.fixedStates.length + stepFunctions.perPageStates.length * rollup.pages,
    );
  });

  it("found where a key turns dense, and sizes that grow with it", () => {
    const { hll } = result;
    expect(hll.denseAtCardinality).toBeGreaterThan(100);
    expect(hll.denseBytes).toBeGreaterThan(12_288);
    const sparse = hll.bytesByCardinality.filter((p) => !p.dense);
    for (let i = 1; i < sparse.length; i++) {
      expect(sparse[i]?.bytes).toBeGreaterThanOrEqual(sparse[i - 1]?.bytes ?? 0);
    }
    expect(Math.max(...sparse.map((p) => p.bytes))).toBeLessThan(hll.denseBytes);
  });

  it("measured every family and period, the week and month keys about one per day key", () => {
    const rows = result.memory.byFamilyPeriod;
    expect(rows.map((r) => `${r.family}:${r.period}`)).toEqual([
      "uv:day",
      "uv:week",
      "uv:month",
      "ev:day",
      "ev:week",
      "ev:month",
    ]);
    for (const row of rows) {
      expect(row.keys).toBeGreaterThanOrEqual(2 * SITES);
      expect(row.bytes).toBeCloseTo(row.keys * row.bytesPerKey, 0);
      expect(row.sparseShare + row.denseShare).toBeCloseTo(1, 9);
    }
    const keys = (family: string, period: string) =>
      rows.find((r) => r.family === family && r.period === period)?.keys;
    // Week and month keys exist for the merged sites, scaled to all: one per day key.
    expect(keys("uv", "week")).toBeCloseTo(keys("uv", "day") ?? 0, -2);
    expect(keys("ev", "month")).toBeCloseTo(keys("ev", "day") ?? 0, -2);
    // The largest site's 2,000 events: its ev: day key is dense.
    expect(rows.find((r) => r.family === "ev" && r.period === "day")?.denseShare).toBeGreaterThan(
      0,
    );
    expect(result.memory.usedMemoryDeltaBytes).toBeGreaterThan(result.memory.keyBytesEstimate / 2);
  });

  it("found the bookkeeping on every primary, at its peak after the plan", () => {
    const { afterIngest, afterPlan } = result.bookkeeping;
    expect(afterIngest.perPrimary).toHaveLength(3);
    const total = (s: typeof afterIngest) => s.perPrimary.reduce((n, p) => n + p.bytes, 0);
    expect(total(afterPlan)).toBeGreaterThan(total(afterIngest));
    expect(afterPlan.maxOverMean).toBeGreaterThanOrEqual(1);
    // One touched member per (site, day) and (site, day, event): one per uv: day key.
    const uvDays = result.memory.byFamilyPeriod.find(
      (r) => r.family === "uv" && r.period === "day",
    );
    expect(result.generated.touchedMembers).toBe(uvDays?.keys);
    expect(result.bookkeeping.bytesPerTouchedMember).toBeGreaterThan(0);
    expect(result.bookkeeping.bytesPerWorkItem).toBeGreaterThan(0);
  });

  it("is what the capacity planner reads", () => {
    const constants = loadScaleConstants(opts.output);
    const plan = planCapacity(withDefaults({ eventsPerSecond: 1000, sites: 10_000 }), constants);
    expect(plan.memory.totalBytes).toBeGreaterThan(0);
    expect(plan.cost.totalMonthlyUsd).toBeGreaterThan(0);
  });
});
