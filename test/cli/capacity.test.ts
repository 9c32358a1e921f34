/**
 * The capacity planner (cli/capacity.ts): its arithmetic against cases worked by hand (the
 * working is in the comments), its input checks through the CLI, its limits against the stack
 * schema's, and its constants: read from the file `npm run bench:scale` writes, which must
 * exist and be of the current format.
 */

import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runCli } from "../../cli/app.js";
import {
  budgetUsd,
  CONFIG_LIMITS,
  type DeploymentShape,
  hllKeyBytes,
  hllKeyBytesBound,
  PLANNER_DEFAULTS,
  planCapacity,
  scheduleMinutes,
  sizedLoad,
  withDefaults,
} from "../../cli/capacity.js";
import {
  DEFAULT_CONSTANTS_PATH,
  loadScaleConstants,
  rollupSuccessPath,
  SCALE_CONSTANTS_FORMAT,
  type ScaleConstants,
  successPath,
} from "../../cli/capacity-constants.js";
import { CliError } from "../../cli/io.js";
import { STACK_LIMITS } from "../../stacks/config-schema.js";
import { captureIo } from "./capture.js";

/** The measured file, which the planner reads by default: a missing or stale one fails here. */
const measured = loadScaleConstants();

/**
 * Round constants for the hand-worked cases, on top of the measured file's shape:
 *   sizes: 100 bytes at 1 element, 1,100 at 101, 3,100 at 1,001; dense from 2,001 at 12,100;
 *   no per-key overhead; bookkeeping 60 bytes a touched member, 120 a work item, 50 a site-index
 *   member, 200 a site's event-type set; consumer 1,769 events/s (× 1,024/1,769 MB of vCPU =
 *   1,024 per invocation), 10 µs of server CPU (5 while loading: the larger counts) and 500
 *   bytes written per event; rollup 1,769
 *   items/s per task (× 512/1,769 = 512), 20 µs per item, plan 10 µs per item; records 200 bytes.
 */
const ROUND: ScaleConstants = {
  ...measured,
  hll: {
    ...measured.hll,
    denseAtCardinality: 2001,
    denseBytes: 12_100,
    bytesByCardinality: [
      { cardinality: 1, bytes: 100, dense: false },
      { cardinality: 101, bytes: 1100, dense: false },
      { cardinality: 1001, bytes: 3100, dense: false },
      { cardinality: 2001, bytes: 12_100, dense: true },
    ],
  },
  memory: { ...measured.memory, perKeyOverheadBytes: 0, siteEventTypesBytesPerSite: 200 },
  bookkeeping: {
    ...measured.bookkeeping,
    bytesPerTouchedMember: 60,
    bytesPerWorkItem: 120,
    bytesPerSiteIndexMember: 50,
  },
  consumer: {
    ...measured.consumer,
    eventsPerSecond: 1769,
    serverProcessCpuUsPerEvent: 10,
    loadServerProcessCpuUsPerEvent: 5,
    netInputBytesPerEvent: 500,
  },
  rollup: {
    ...measured.rollup,
    perWorkerItemsPerSecond: 1769,
    serverProcessCpuUsPerItem: 20,
    planMs: 1000,
    items: 100_000,
    netInputBytesPerItem: 100,
  },
  generated: { ...measured.generated, recordBytes: 200 },
};

/** The planner's deployment with one day, week and month of retention: 2 of each alive. */
const SHORT: DeploymentShape = { ...PLANNER_DEFAULTS, retention: { days: 1, weeks: 1, months: 1 } };

describe("the measured constants", () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "sketchstream-capacity-"));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it("are read from the file bench:scale writes, in the current format", () => {
    expect(DEFAULT_CONSTANTS_PATH).toMatch(/bench\/results\/scale-constants\.json$/);
    expect(measured.formatVersion).toBe(SCALE_CONSTANTS_FORMAT);
    expect(measured.inputs.sites).toBeGreaterThan(0);
  });

  it("refuse a missing file, saying how to make it", () => {
    expect(() => loadScaleConstants(join(dir, "missing.json"))).toThrow(CliError);
    expect(() => loadScaleConstants(join(dir, "missing.json"))).toThrow(/npm run bench:scale/);
  });

  it("refuse a file of another format version, or with a field missing", async () => {
    const stale = join(dir, "stale.json");
    await writeFile(
      stale,
      JSON.stringify({ ...measured, formatVersion: SCALE_CONSTANTS_FORMAT - 1 }),
    );
    expect(() => loadScaleConstants(stale)).toThrow(
      new RegExp(
        `formatVersion ${SCALE_CONSTANTS_FORMAT}; the file has ${SCALE_CONSTANTS_FORMAT - 1}`,
      ),
    );
    const { hll: _dropped, ...rest } = measured;
    const partial = join(dir, "partial.json");
    await writeFile(partial, JSON.stringify(rest));
    expect(() => loadScaleConstants(partial)).toThrow(/first problem at hll.*npm run bench:scale/);
  });
});

describe("memory of one key", () => {
  it("interpolates the measured sparse sizes and is dense from the threshold", () => {
    const hll = ROUND.hll;
    expect(hllKeyBytes(hll, 1)).toBe(100);
    // 100 + (1,100 - 100) × (51 - 1) / (101 - 1) = 600
    expect(hllKeyBytes(hll, 51)).toBe(600);
    // 1,100 + (3,100 - 1,100) × (551 - 101) / (1,001 - 101) = 2,100
    expect(hllKeyBytes(hll, 551)).toBe(2100);
    // Past the last sparse point and below the threshold: the last sparse size.
    expect(hllKeyBytes(hll, 1500)).toBe(3100);
    expect(hllKeyBytes(hll, 2001)).toBe(12_100);
  });

  it("bounds it with the steepest line from the smallest key, capped at the dense size", () => {
    const hll = ROUND.hll;
    // Slopes from (1, 100): to 101: 10 a element; to 1,001: 3; to the dense 2,001: 6. So 10.
    expect(hllKeyBytesBound(hll, 51)).toBe(600);
    // 100 + 10 × 550 = 5,600, though one key of 551 elements takes 2,100.
    expect(hllKeyBytesBound(hll, 551)).toBe(5600);
    expect(hllKeyBytesBound(hll, 1500)).toBe(12_100);
  });

  it("the bound is above the measured curve everywhere", () => {
    for (let n = 1; n <= 3 * measured.hll.denseAtCardinality; n += 7) {
      expect(hllKeyBytesBound(measured.hll, n)).toBeGreaterThanOrEqual(
        hllKeyBytes(measured.hll, n) - 1e-9,
      );
    }
  });
});

describe("a small load, worked by hand", () => {
  // 1 event/s over 864 sites: 86,400 / 864 = 100 events per site-day; users by default half: 50;
  // 4 event types; 1 day, week and month of retention: 2 of each period alive.
  const input = withDefaults({ eventsPerSecond: 1, sites: 864 });
  const plan = planCapacity(input, ROUND, SHORT);
  const row = (family: string, period: string) =>
    plan.keys.find((k) => k.family === family && k.period === period);

  it("takes the defaults", () => {
    expect(input).toEqual({
      eventsPerSecond: 1,
      sites: 864,
      eventTypes: 4,
      activeSitesPerDay: 864,
      usersPerSiteDay: 50,
    });
    expect(plan.derived.eventsPerSiteDay).toBe(100);
  });

  it("counts keys and their memory by family and period", () => {
    // uv: day: 864 sites × 2 days = 1,728 site keys of 50 users (600 - 10 = 590 bytes), and
    // 1,728 × 4 = 6,912 event-type keys of min(50, 100 / 4) = 25 (100 + 10 × 24 = 340 bytes):
    // 1,728 × 590 + 6,912 × 340 = 1,019,520 + 2,350,080 = 3,369,600.
    expect(row("uv", "day")).toMatchObject({
      siteKeys: 1728,
      typeKeys: 6912,
      siteElements: 50,
      typeElements: 25,
      bytes: 3_369_600,
    });
    // ev: day: 100 events (100 + 10 × 99 = 1,090 bytes) and 25 per type (340):
    // 1,728 × 1,090 + 6,912 × 340 = 1,883,520 + 2,350,080 = 4,233,600.
    expect(row("ev", "day")?.bytes).toBe(4_233_600);
    // ev: month: 30 active days × 100 = 3,000 events: dense (12,100 bytes).
    expect(row("ev", "month")).toMatchObject({ siteElements: 3000, siteDense: true });
    // Keys: 2 families × 3 periods × (1,728 + 6,912) = 51,840.
    expect(plan.memory.keys).toBe(51_840);
  });

  it("adds the bookkeeping at its peak", () => {
    // touched a run: 864 × (1 + 4) = 4,320, and as many work items (one per touched member).
    // 2 × 4,320 × 60 + 4,320 × 120 + 864 × 5 × 50 + 864 × 200 = 518,400 + 518,400 + 216,000 +
    // 172,800 = 1,425,600.
    expect(plan.memory.bookkeepingBytes).toBe(1_425_600);
    expect(plan.memory.totalBytes).toBe(plan.memory.hllBytesBound + 1_425_600);
  });

  it("picks the cheapest node type: one small shard with its replica", () => {
    // 2 nodes × $0.057 × 0.7 (Valkey) × 730 h = $58.254.
    expect(plan.memorydb.choice).toMatchObject({
      nodeType: "db.t4g.small",
      shards: 1,
      nodes: 2,
    });
    expect(plan.memorydb.choice.monthlyUsd).toBeCloseTo(58.254, 6);
    // Engine: (1 event/s × 10 µs + 4,320 items an hour × 20 µs / 3,600 s) = 34 µs/s.
    expect(plan.memorydb.engineCpuCores).toBeCloseTo(34e-6, 12);
  });

  it("sizes the stream, the consumer and the rollup", () => {
    expect(plan.kinesis.shards).toBe(1);
    expect(plan.consumer.perInvocationEventsPerSecond).toBeCloseTo(1024, 9);
    expect(plan.consumer).toMatchObject({
      parallelizationFactor: 1,
      concurrency: 1,
      batchSize: 1000,
    });
    // 4,320 items: pages of max(2,000, ceil(4,320 / 500)) = 2,000, so 3 pages; 5 states once
    // and 1 per page: 8 transitions. 512 items/s per task, one task: 4,320 / 512 = 8.4375 s,
    // plus the plan: 4,320 × 10 µs = 0.0432 s.
    expect(plan.rollup).toMatchObject({ itemsPerRun: 4320, pageSize: 2000, pages: 3 });
    expect(plan.rollup.transitionsPerRun).toBe(8);
    expect(plan.rollup.mapMaxConcurrency).toBe(1);
    expect(plan.rollup.runSeconds).toBeCloseTo(8.4807, 9);
  });

  it("needs no quota increase: only the note on KPL aggregation", () => {
    expect(plan.warnings).toHaveLength(1);
    expect(plan.warnings[0]).toMatch(/KPL.*not supported/);
  });
});

describe("a million events a second, worked by hand", () => {
  const plan = planCapacity(withDefaults({ eventsPerSecond: 1e6, sites: 1e6 }), ROUND);

  it("takes provisioned Kinesis shards for the records, cheaper than on-demand", () => {
    // Records: 1,000,000 / (1,000 × 0.8) = 1,250 shards; bytes: 200 MB/s / 0.8 MiB = 239.
    expect(plan.kinesis.shards).toBe(1250);
    // Provisioned: 1,250 × 730 h × $0.015 = $13,687.50, plus 2.628e12 records a month × 1 PUT
    // unit × $0.014 / million = $36,792: $50,479.50.
    expect(plan.kinesis.provisionedMonthlyUsd).toBeCloseTo(50_479.5, 6);
    // On-demand: 730 × $0.04 = $29.20; in 2.628e12 × 1 KB = 2,506,256.1 GiB × $0.08 =
    // $200,500.49; out 2.628e12 × 200 B = 489,502.36 GiB × $0.04 = $19,580.09: $220,109.78.
    expect(plan.kinesis.onDemandMonthlyUsd).toBeCloseTo(220_109.78, 1);
    expect(plan.kinesis.mode).toBe("PROVISIONED");
  });

  it("has one invocation per shard: 800 records/s each against 1,024 a invocation", () => {
    expect(plan.consumer.parallelizationFactor).toBe(1);
    expect(plan.consumer.concurrency).toBe(1250);
  });

  it("says what exceeds the stack's limits and which quotas to raise", () => {
    const text = plan.warnings.join("\n");
    expect(text).toContain("1,250 provisioned shards exceed stacks/config.ts's limit of 500");
    expect(text).toMatch(/Lambda: about 1,2\d\d concurrent executions .* default quota of 1,000/);
    expect(text).toContain("consumer.reservedConcurrency");
    expect(text.includes("default quota of 90 nodes per cluster")).toBe(
      plan.memorydb.choice.nodes > 90,
    );
    expect(text).toMatch(/KPL.*not supported/);
    expect(plan.config["stream.mode"]).toBe("PROVISIONED");
    expect(plan.config["stream.shardCount"]).toBe(1250);
  });

  it("pages a run of 5,000,000 items into 500 pages of 10,000", () => {
    // 1,000,000 sites × (1 + 4) = 5,000,000 touched members, an item each; max(2,000, 10,000).
    expect(plan.rollup).toMatchObject({ itemsPerRun: 5_000_000, pageSize: 10_000, pages: 500 });
    expect(plan.rollup.transitionsPerRun).toBe(505);
  });

  it("holds the memory in the shards it chose, without data tiering or with it", () => {
    const choice = plan.memorydb.choice;
    const type = choice.nodeType;
    expect(choice.shards).toBeGreaterThanOrEqual(choice.memoryShards);
    const memoryOnly = planCapacity(
      withDefaults({ eventsPerSecond: 1e6, sites: 1e6 }),
      ROUND,
      PLANNER_DEFAULTS,
      { nodeType: "db.r7g.large" },
    ).memorydb.choice;
    // 13.07 GiB a node, 75% of it used.
    expect(memoryOnly.memoryShards).toBe(
      Math.ceil(plan.memory.totalBytes / (13.07 * 2 ** 30 * 0.75)),
    );
    expect(type).toMatch(/^db\./);
  });
});

describe("a stack configuration", () => {
  it("is sized for the most sites whose keys fit its cluster", () => {
    const deployment: DeploymentShape = {
      ...PLANNER_DEFAULTS,
      memorydb: { ...PLANNER_DEFAULTS.memorydb, nodeType: "db.r7g.large", shards: 2 },
    };
    const load = sizedLoad(deployment, ROUND);
    const fits = (sites: number) => {
      const plan = planCapacity(
        withDefaults({ eventsPerSecond: sites, sites }),
        ROUND,
        deployment,
        { nodeType: "db.r7g.large", shards: 2 },
      );
      return plan.memorydb.choice.memoryShards <= 2;
    };
    expect(load.eventsPerSecond).toBe(load.sites);
    expect(fits(load.sites)).toBe(true);
    expect(fits(load.sites + 1)).toBe(false);
  });

  it("reads schedules and rounds budgets up to $10", () => {
    expect(scheduleMinutes("rate(1 hour)")).toBe(60);
    expect(scheduleMinutes("rate(15 minutes)")).toBe(15);
    expect(scheduleMinutes("rate(1 day)")).toBe(1440);
    expect(budgetUsd(1234.5)).toBe(1240);
    expect(budgetUsd(1230)).toBe(1230);
    expect(budgetUsd(3)).toBe(10);
  });

  it("checks the limits of stacks/config-schema.ts", () => {
    // The very object the schema is built from, not a copy of it.
    expect(CONFIG_LIMITS).toBe(STACK_LIMITS);
  });

  it("counts Step Functions transitions along the deployed definition's success path", () => {
    expect(rollupSuccessPath()).toEqual({
      fixedStates: ["Start", "Plan", "LockTaken", "MergePages", "Finish"],
      perPageStates: ["MergePage"],
    });
    expect(() => successPath({ StartAt: "A", States: { A: { Type: "Pass", Next: "A" } } })).toThrow(
      /loops/,
    );
  });
});

describe("npm run cli -- capacity", () => {
  const run = async (...args: string[]) => {
    const { io, out } = captureIo();
    const code = await runCli(["capacity", ...args], io);
    return { code, ...out };
  };

  it("prints the plan for a million sites at a million events a second", async () => {
    const r = await run("--events-per-second", "1e6", "--sites", "1_000_000");
    expect(r.code).toBe(0);
    expect(r.stdout).toContain("Capacity for 1,000,000 events/s over 1,000,000 sites");
    expect(r.stdout).toMatch(/MemoryDB: \d+ × db\./);
    expect(r.stdout).toContain("stacks/config.ts values for this load:");
    expect(r.stdout).toContain("stream.shardCount: 1250");
    expect(r.stdout).toMatch(/prices: eu-west-1 on-demand list prices as of \d{4}-\d\d-\d\d/);
  });

  it("prints the plan as JSON with --json", async () => {
    const r = await run("--events-per-second", "100", "--sites", "1000", "--json");
    expect(r.code).toBe(0);
    const plan = JSON.parse(r.stdout);
    expect(plan.input).toEqual(withDefaults({ eventsPerSecond: 100, sites: 1000 }));
    expect(plan.cost.totalMonthlyUsd).toBeGreaterThan(0);
  });

  it.each([
    [[], "capacity needs --events-per-second N and --sites N"],
    [["--sites", "10"], "capacity needs --events-per-second N"],
    [
      ["--events-per-second", "fast", "--sites", "10"],
      "--events-per-second must be a number above 0",
    ],
    [["--events-per-second", "10", "--sites", "1.5"], "--sites must be a whole number from 1"],
    [["--events-per-second", "10", "--sites", "10", "--event-types", "0"], "--event-types must be"],
    [
      ["--events-per-second", "10", "--sites", "10", "--active-sites-per-day", "11"],
      "--active-sites-per-day (11) cannot exceed --sites (10)",
    ],
    [
      ["--events-per-second", "1", "--sites", "86400", "--users-per-site-day", "2"],
      "--users-per-site-day (2) cannot exceed the events per site-day",
    ],
    [["--events-per-second", "1", "--sites", "1", "--bogus"], "capacity: Unknown option '--bogus'"],
  ])("refuses %j with a usage error", async (args, message) => {
    const r = await run(...args);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(message);
    expect(r.stderr).toContain("Usage: npm run cli");
  });

  it("fails with the way out when the constants file is missing", async () => {
    const r = await run(
      "--events-per-second",
      "1",
      "--sites",
      "1",
      "--constants",
      "/nonexistent/c.json",
    );
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("run `npm run bench:scale`");
  });
});
