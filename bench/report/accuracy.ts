/**
 * Accuracy of the estimates against exact truth, for cardinalities from 10^2 to 10^7, on a real
 * redis-server, with the project's own key names:
 *
 *   day      one `uv:` day key fed n distinct user ids; `PFCOUNT`.
 *   day ev:  the same with `ev:` keys and event identities shaped like Kinesis record ids (77
 *            characters), to show the second family's HLLs behave the same.
 *   week     n distinct ids spread over the 7 day keys of an ISO week (every 4th id also comes
 *            back 3 days later: overlapping days, as returning visitors make them), merged into
 *            the week key by PFMERGE as the rollup does; `PFCOUNT` of the week key.
 *   month    the same over the 30 day keys of a month.
 *   range    an arbitrary 17-day range inside that month, counted the way the read API counts a
 *            range whose weeks are pending: one `PFCOUNT` over its 17 day keys.
 * Each merged series also has a reference key fed every one of its ids directly; after each
 * merge the merged registers are compared with the reference's (decoded: encodings may differ).
 *
 * An HLL's registers after n distinct ids depend only on those ids, so each seed feeds one
 * stream per series and reads the estimates at every checkpoint on the way up (1, 2, 3, 5 and
 * 7 × 10^k). Estimates of one seed at different checkpoints share their first ids (they are
 * not independent); seeds are (each uses its own ids). Every seed goes up to
 * `allSeedsUpTo`; only the first `topSeeds` go on to `topCardinality`, which the chart and the
 * text say, since 20 seeds of 10^7 ids in five series would take far longer than the report.
 */

import type { Redis } from "ioredis";
import { countingKey } from "../../functions/domain/keys.js";
import { daysInMonth, daysInWeek } from "../../functions/domain/periods.js";
import { BulkAdder, counterRange, encodeAdd, IdFamily } from "./bulk-add.js";
import type { Figure } from "./charts.js";
import { sameRegisters } from "./hll-registers.js";
import type { RunningRedisServer } from "./redis-server.js";
import { fmtCardinality, fmtInt, fmtPct, median, quantile, rms } from "./stats.js";
import { type ExperimentOutput, type TargetResult, targetLine } from "./types.js";

export interface AccuracySizes {
  readonly seeds: number;
  /** First checkpoint. */
  readonly minCardinality: number;
  /** Every seed goes up to here. */
  readonly allSeedsUpTo: number;
  /** Seeds (the first ones) that go on to `topCardinality`. */
  readonly topSeeds: number;
  readonly topCardinality: number;
}

export const ACCURACY_DEFAULT: AccuracySizes = {
  seeds: 20,
  minCardinality: 100,
  allSeedsUpTo: 1_000_000,
  topSeeds: 4,
  topCardinality: 10_000_000,
};

export const ACCURACY_SMALL: AccuracySizes = {
  seeds: 3,
  minCardinality: 100,
  allSeedsUpTo: 10_000,
  topSeeds: 1,
  topCardinality: 20_000,
};

/** Redis's HLL: 16,384 registers, standard error 1.04 / sqrt(16384). */
export const THEORETICAL_STANDARD_ERROR = 1.04 / Math.sqrt(16_384);
/** The two-sided 90% interval (5th to 95th percentile) of a normal error: ±1.645 σ. */
export const THEORETICAL_P95 = 1.645 * THEORETICAL_STANDARD_ERROR;
/** Issue 14's target: pooled RMS relative error over every cardinality from 10^4. */
export const RMS_TARGET = 0.0098;
export const RMS_TARGET_FROM = 10_000;

export const SERIES = ["day", "day-ev", "week", "month", "range"] as const;
export type SeriesName = (typeof SERIES)[number];

export const SERIES_LABEL: Readonly<Record<SeriesName, string>> = {
  day: "day",
  "day-ev": "day, ev: family",
  week: "week (7 days merged)",
  month: "month (30 days merged)",
  range: "17-day range (PFCOUNT of 17 days)",
};

const MERGED: readonly SeriesName[] = ["week", "month", "range"];

/** One estimate of one series at one checkpoint of one seed. */
export interface Estimate {
  readonly series: SeriesName;
  readonly seed: number;
  readonly checkpoint: number;
  readonly truth: number;
  readonly estimate: number;
}

/** One comparison of a merged key with the reference key fed all of its ids. */
export interface RegisterCheck {
  readonly series: SeriesName;
  readonly seed: number;
  readonly checkpoint: number;
  readonly sameRegisters: boolean;
  readonly sameEstimate: boolean;
}

export interface SeriesPoint {
  readonly series: SeriesName;
  readonly checkpoint: number;
  readonly truth: number;
  readonly seeds: number;
  readonly median: number;
  readonly p5: number;
  readonly p95: number;
  readonly rms: number;
}

export interface AccuracyResult {
  readonly sizes: AccuracySizes;
  readonly estimates: readonly Estimate[];
  readonly checks: readonly RegisterCheck[];
  readonly points: readonly SeriesPoint[];
  /** Pooled RMS relative error of every estimate whose truth is at least 10^4, all series. */
  readonly pooledRms: number;
  readonly pooledCount: number;
  readonly rmsBySeries: Readonly<Record<SeriesName, number>>;
  readonly idsAdded: number;
  readonly seconds: number;
}

/** 1, 2, 3, 5 and 7 × 10^k from `min` to `max` (and `max` itself). */
export function checkpoints(min: number, max: number): number[] {
  const out: number[] = [];
  for (let k = 0; 10 ** k <= max; k++) {
    for (const m of [1, 2, 3, 5, 7]) {
      const n = m * 10 ** k;
      if (n >= min && n <= max) out.push(n);
    }
  }
  if (out.at(-1) !== max) out.push(max);
  return out;
}

const CHUNK = 20_000;
const WEEK = "2030-W23";
const MONTH = "2030-06";
/** Days 4 … 20 of the month (0-based 3 … 19): crosses week boundaries, starts mid-week. */
const RANGE_FIRST = 3;
const RANGE_LAST = 19;
/** Every 4th id comes back this many days after its first day (mod the period). */
const RETURN_EVERY = 4;
const RETURN_AFTER = 3;
const KINESIS_SEQUENCE_HEAD = "4959033827149025660855969253836157109592157598";

/** The keys and id families of one seed. */
function seedPlan(seed: number) {
  const s = String(seed).padStart(2, "0");
  const daySite = `acc-${s}-day`;
  const weekSite = `acc-${s}-week`;
  const monthSite = `acc-${s}-month`;
  const monthDays = daysInMonth(MONTH);
  const rangeDays = monthDays.slice(RANGE_FIRST, RANGE_LAST + 1);
  const visitorsKey = (site: string, label: string) => countingKey("visitors", site, label);
  return {
    day: { key: visitorsKey(daySite, "2030-06-15"), ids: new IdFamily(`u-${s}-d-`) },
    dayEv: {
      key: countingKey("events", daySite, "2030-06-15"),
      ids: new IdFamily(`shardId-${String(seed).padStart(12, "0")}:${KINESIS_SEQUENCE_HEAD}`),
    },
    week: {
      days: daysInWeek(WEEK).map((d) => visitorsKey(weekSite, d)),
      key: visitorsKey(weekSite, WEEK),
      reference: `ref:{site_id=${weekSite}}:${WEEK}`,
      ids: new IdFamily(`u-${s}-w-`),
    },
    month: {
      days: monthDays.map((d) => visitorsKey(monthSite, d)),
      key: visitorsKey(monthSite, MONTH),
      reference: `ref:{site_id=${monthSite}}:${MONTH}`,
      ids: new IdFamily(`u-${s}-m-`),
    },
    range: {
      days: rangeDays.map((d) => visitorsKey(monthSite, d)),
      merged: `tmp:{site_id=${monthSite}}:${rangeDays[0]}..${rangeDays.at(-1)}`,
      reference: `ref:{site_id=${monthSite}}:${rangeDays[0]}..${rangeDays.at(-1)}`,
    },
  };
}
type SeedPlan = ReturnType<typeof seedPlan>;

/** The day (0-based) of id `i` in a period of `days` days, and the day it comes back, or -1. */
function firstDay(i: number, days: number): number {
  return i % days;
}
function returnDay(i: number, days: number): number {
  return i % RETURN_EVERY === 0 ? (i + RETURN_AFTER) % days : -1;
}

/**
 * Ids `from … to-1` sorted into the days of a period (each id on its first day and, every 4th,
 * again on its return day); with a range of days, also the ids that fall in it at least once.
 */
function splitIntoDays(
  from: number,
  to: number,
  days: number,
  range?: { readonly first: number; readonly last: number },
): { perDay: Int32Array[]; inRange: Int32Array } {
  const counts = new Int32Array(days);
  let rangeCount = 0;
  const inRangeDay = (d: number) => range !== undefined && d >= range.first && d <= range.last;
  for (let i = from; i < to; i++) {
    const a = firstDay(i, days);
    const b = returnDay(i, days);
    counts[a] = (counts[a] ?? 0) + 1;
    if (b >= 0) counts[b] = (counts[b] ?? 0) + 1;
    if (inRangeDay(a) || inRangeDay(b)) rangeCount++;
  }
  const perDay = Array.from(counts, (c) => new Int32Array(c));
  const fill = new Int32Array(days);
  const inRange = new Int32Array(rangeCount);
  const place = (day: number, id: number) => {
    const ids = perDay[day];
    const slot = fill[day] ?? 0;
    if (ids === undefined) throw new RangeError(`no day ${day} in a period of ${days}`);
    ids[slot] = id;
    fill[day] = slot + 1;
  };
  let r = 0;
  for (let i = from; i < to; i++) {
    const a = firstDay(i, days);
    const b = returnDay(i, days);
    place(a, i);
    if (b >= 0) place(b, i);
    if (inRangeDay(a) || inRangeDay(b)) inRange[r++] = i;
  }
  return { perDay, inRange };
}

/** Sends ids `from … to-1` of every series of a seed; returns the ids added and range ids. */
async function feed(adder: BulkAdder, plan: SeedPlan, from: number, to: number) {
  let added = 0;
  let rangeIds = 0;
  const send = async (key: string, ids: IdFamily, counters: Int32Array) => {
    if (counters.length === 0) return;
    added += counters.length;
    await adder.send(encodeAdd("PFADD", key, ids, counters));
  };
  for (let c = from; c < to; c += CHUNK) {
    const e = Math.min(to, c + CHUNK);
    const all = counterRange(c, e);
    await send(plan.day.key, plan.day.ids, all);
    await send(plan.dayEv.key, plan.dayEv.ids, all);
    const week = splitIntoDays(c, e, plan.week.days.length);
    for (const [d, key] of plan.week.days.entries()) {
      await send(key, plan.week.ids, week.perDay[d] ?? new Int32Array(0));
    }
    await send(plan.week.reference, plan.week.ids, all);
    const month = splitIntoDays(c, e, plan.month.days.length, {
      first: RANGE_FIRST,
      last: RANGE_LAST,
    });
    for (const [d, key] of plan.month.days.entries()) {
      await send(key, plan.month.ids, month.perDay[d] ?? new Int32Array(0));
    }
    await send(plan.month.reference, plan.month.ids, all);
    await send(plan.range.reference, plan.month.ids, month.inRange);
    rangeIds += month.inRange.length;
  }
  return { added, rangeIds };
}

/** Reads every series' estimate at a checkpoint, and checks each merge against its reference. */
async function readCheckpoint(
  client: Redis,
  plan: SeedPlan,
  seed: number,
  checkpoint: number,
  rangeTruth: number,
): Promise<{ estimates: Estimate[]; checks: RegisterCheck[] }> {
  const p = client.pipeline();
  p.pfcount(plan.day.key);
  p.pfcount(plan.dayEv.key);
  const merges = [
    { series: "week", dest: plan.week.key, days: plan.week.days, ref: plan.week.reference },
    { series: "month", dest: plan.month.key, days: plan.month.days, ref: plan.month.reference },
    { series: "range", dest: plan.range.merged, days: plan.range.days, ref: plan.range.reference },
  ] as const;
  for (const m of merges) {
    // PFMERGE keeps what the destination held: start from nothing, as the rollup's backfill does.
    p.del(m.dest);
    p.pfmerge(m.dest, ...m.days);
    // The week and month are read from their merged key; the range as the read API reads it,
    // one PFCOUNT over its days.
    if (m.series === "range") p.pfcount(...m.days);
    else p.pfcount(m.dest);
    p.getBuffer(m.dest);
    p.getBuffer(m.ref);
    p.pfcount(m.ref);
  }
  const replies = (await p.exec()) ?? [];
  const values = replies.map(([err, value], i) => {
    if (err) throw new Error(`checkpoint read ${i} failed: ${err.message}`);
    return value;
  });
  const num = (i: number) => Number(values[i]);
  const buf = (i: number) => {
    const v = values[i];
    if (!Buffer.isBuffer(v)) throw new Error(`expected an HLL value at reply ${i}, got ${v}`);
    return v;
  };
  const estimates: Estimate[] = [
    { series: "day", seed, checkpoint, truth: checkpoint, estimate: num(0) },
    { series: "day-ev", seed, checkpoint, truth: checkpoint, estimate: num(1) },
  ];
  const checks: RegisterCheck[] = [];
  merges.forEach((m, k) => {
    const base = 2 + k * 6;
    const estimate = num(base + 2);
    const truth = m.series === "range" ? rangeTruth : checkpoint;
    estimates.push({ series: m.series, seed, checkpoint, truth, estimate });
    checks.push({
      series: m.series,
      seed,
      checkpoint,
      sameRegisters: sameRegisters(buf(base + 3), buf(base + 4)),
      sameEstimate: estimate === num(base + 5),
    });
  });
  return { estimates, checks };
}

export async function measureAccuracy(
  server: RunningRedisServer,
  sizes: AccuracySizes,
  progress: (text: string) => void = () => {},
): Promise<AccuracyResult> {
  const start = performance.now();
  const adder = await BulkAdder.connect(server.host, server.port);
  const estimates: Estimate[] = [];
  const checks: RegisterCheck[] = [];
  let idsAdded = 0;
  try {
    for (let seed = 1; seed <= sizes.seeds; seed++) {
      await server.client.flushall("SYNC");
      const plan = seedPlan(seed);
      const top = seed <= sizes.topSeeds ? sizes.topCardinality : sizes.allSeedsUpTo;
      let fed = 0;
      let rangeTruth = 0;
      for (const n of checkpoints(sizes.minCardinality, top)) {
        progress(`accuracy: seed ${seed}/${sizes.seeds}, ${fmtInt(n)} ids`);
        const { added, rangeIds } = await feed(adder, plan, fed, n);
        await adder.drain();
        fed = n;
        idsAdded += added;
        rangeTruth += rangeIds;
        const read = await readCheckpoint(server.client, plan, seed, n, rangeTruth);
        estimates.push(...read.estimates);
        checks.push(...read.checks);
      }
    }
  } finally {
    adder.close();
    await server.client.flushall("SYNC");
  }
  return summarizeAccuracy(sizes, estimates, checks, idsAdded, (performance.now() - start) / 1000);
}

const relError = (e: Estimate) => e.estimate / e.truth - 1;

export function summarizeAccuracy(
  sizes: AccuracySizes,
  estimates: readonly Estimate[],
  checks: readonly RegisterCheck[],
  idsAdded: number,
  seconds: number,
): AccuracyResult {
  const groups = new Map<string, Estimate[]>();
  for (const e of estimates) {
    const k = `${e.series}|${e.checkpoint}`;
    const g = groups.get(k);
    if (g) g.push(e);
    else groups.set(k, [e]);
  }
  const points: SeriesPoint[] = [];
  for (const group of groups.values()) {
    const [head] = group;
    if (head === undefined) continue;
    const errors = group.map(relError);
    points.push({
      series: head.series,
      checkpoint: head.checkpoint,
      truth: head.truth,
      seeds: group.length,
      median: median(errors),
      p5: quantile(errors, 0.05),
      p95: quantile(errors, 0.95),
      rms: rms(errors),
    });
  }
  const pooled = estimates.filter((e) => e.truth >= RMS_TARGET_FROM);
  const rmsBySeries = Object.fromEntries(
    SERIES.map((s) => [s, rms(pooled.filter((e) => e.series === s).map(relError))]),
  ) as Record<SeriesName, number>;
  return {
    sizes,
    estimates,
    checks,
    points,
    pooledRms: rms(pooled.map(relError)),
    pooledCount: pooled.length,
    rmsBySeries,
    idsAdded,
    seconds,
  };
}

export function accuracyTargets(result: AccuracyResult): TargetResult[] {
  const same = result.checks.filter((c) => c.sameRegisters && c.sameEstimate).length;
  return [
    {
      name: "accuracy",
      pass: result.pooledRms <= RMS_TARGET,
      text: `pooled RMS relative error ${fmtPct(result.pooledRms)} over ${fmtInt(result.pooledCount)} estimates from 10^4 to ${fmtCardinality(result.sizes.topCardinality)} (target <= ${fmtPct(RMS_TARGET)})`,
    },
    {
      name: "merged = fed everything",
      pass: result.checks.length > 0 && same === result.checks.length,
      text: `${fmtInt(same)} of ${fmtInt(result.checks.length)} merged weeks, months and 17-day ranges have registers (and estimates) identical to a single HLL fed all their ids`,
    },
  ];
}

const pct = (x: number) => x * 100;

/** A panel's reference lines: ±σ dashed, the theoretical 5-95% band dotted. */
const REFERENCE_RULES = [
  { y: pct(THEORETICAL_STANDARD_ERROR), dash: "σ" },
  { y: -pct(THEORETICAL_STANDARD_ERROR), dash: "σ" },
  { y: pct(THEORETICAL_P95), dash: "90%" },
  { y: -pct(THEORETICAL_P95), dash: "90%" },
];

/** Shaded span of cardinalities measured with fewer seeds, and its label (empty when none). */
function fewerSeedsLayers(sizes: AccuracySizes, yTop: number | undefined): object[] {
  if (sizes.topCardinality <= sizes.allSeedsUpTo) return [];
  const span = {
    from: sizes.allSeedsUpTo,
    to: sizes.topCardinality,
    label: plural(sizes.topSeeds, "seed"),
  };
  return [
    {
      data: { values: [span] },
      mark: { type: "rect", color: "#000", opacity: 0.06 },
      encoding: {
        x: { field: "from", type: "quantitative" },
        x2: { field: "to" },
      },
    },
    {
      data: { values: [span] },
      mark: {
        type: "text",
        align: "right",
        baseline: "top",
        dx: -2,
        dy: 3,
        fontSize: 10,
        color: "#666",
        ...(yTop === undefined ? { y: 0 } : {}),
      },
      encoding: {
        x: { field: "to", type: "quantitative" },
        ...(yTop === undefined ? {} : { y: { datum: yTop } }),
        text: { field: "label" },
      },
    },
  ];
}

export function accuracyFigures(result: AccuracyResult): Figure[] {
  const { sizes } = result;
  const seedsNote =
    sizes.topCardinality > sizes.allSeedsUpTo
      ? `${plural(sizes.seeds, "seed")} up to ${fmtCardinality(sizes.allSeedsUpTo)}, the first ${fmtInt(sizes.topSeeds)} on to ${fmtCardinality(sizes.topCardinality)} (shaded)`
      : plural(sizes.seeds, "seed");
  const panels: { title: string; series: SeriesName[] }[] = [
    { title: "day", series: ["day", "day-ev"] },
    { title: "week (7 days merged)", series: ["week"] },
    { title: "month (30 days merged)", series: ["month"] },
    { title: "17-day range", series: ["range"] },
  ];
  const familyOf = (s: SeriesName) => (s === "day-ev" ? "ev: median" : "uv: median");
  const rows = (series: readonly SeriesName[]) =>
    result.points
      .filter((p) => series.includes(p.series))
      .map((p) => ({
        family: familyOf(p.series),
        band: p.series === "day-ev" ? "ev" : "uv",
        truth: p.truth,
        median: pct(p.median),
        p5: pct(p.p5),
        p95: pct(p.p95),
      }));
  const bound = Math.max(
    pct(THEORETICAL_P95) * 1.6,
    ...result.points.flatMap((p) => [Math.abs(pct(p.p5)), Math.abs(pct(p.p95))]),
  );
  const yMax = Math.ceil(bound * 2) / 2;
  const yScale = { domain: [-yMax, yMax] };
  const xScale = {
    type: "log",
    domain: [Math.min(...result.points.map((p) => p.truth)), sizes.topCardinality],
    nice: false,
  };
  const xAxis = { title: "exact cardinality", format: "~s", grid: true, tickCount: 6 };
  const accuracy: Figure = {
    file: "accuracy.svg",
    title: "HLL relative error against exact counts (Redis PFCOUNT, 16,384 registers)",
    subtitle: [
      `Median and 5–95% band (blue) over ${seedsNote}.`,
      `Dashed: ±${fmtPct(THEORETICAL_STANDARD_ERROR)} (1.04/√16384); dotted: ±${fmtPct(THEORETICAL_P95)}, the theoretical 5–95%.`,
      "Weeks and months: PFMERGE of their day keys; the range: one PFCOUNT over 17 day keys.",
    ],
    spec: {
      hconcat: panels.map((panel, i) => ({
        title: { text: panel.title, fontSize: 12, anchor: "middle" },
        width: 200,
        height: 230,
        data: { values: rows(panel.series) },
        layer: [
          ...fewerSeedsLayers(sizes, yMax),
          {
            transform: [{ filter: "datum.band === 'uv'" }],
            mark: { type: "area", opacity: 0.25, color: "#4c78a8" },
            encoding: {
              x: { field: "truth", type: "quantitative", scale: xScale, axis: xAxis },
              y: {
                field: "p5",
                type: "quantitative",
                scale: yScale,
                axis: i === 0 ? { title: "relative error (%)" } : { title: null, labels: false },
              },
              y2: { field: "p95" },
            },
          },
          {
            data: { values: REFERENCE_RULES },
            mark: { type: "rule", color: "#888" },
            encoding: {
              y: { field: "y", type: "quantitative" },
              strokeDash: {
                field: "dash",
                type: "nominal",
                scale: {
                  domain: ["σ", "90%"],
                  range: [
                    [5, 3],
                    [1, 3],
                  ],
                },
                legend: null,
              },
            },
          },
          {
            mark: { type: "line", point: { size: 14 } },
            encoding: {
              x: { field: "truth", type: "quantitative" },
              y: { field: "median", type: "quantitative" },
              color: {
                field: "family",
                type: "nominal",
                title: null,
                scale: { domain: ["uv: median", "ev: median"], range: ["#1f4e79", "#e45756"] },
              },
            },
          },
        ],
      })),
      resolve: { scale: { y: "shared", color: "shared", strokeDash: "shared" } },
    } as Figure["spec"],
  };
  const rmsRows = result.points.map((p) => ({
    series: SERIES_LABEL[p.series],
    truth: p.truth,
    rms: pct(p.rms),
  }));
  const rmsTop = Math.max(pct(RMS_TARGET), ...rmsRows.map((r) => r.rms)) * 1.1;
  const rmsFigure: Figure = {
    file: "accuracy-rms.svg",
    title: "RMS relative error by cardinality, every series",
    subtitle: [
      `RMS over ${seedsNote}.`,
      `Dashed: theory ${fmtPct(THEORETICAL_STANDARD_ERROR)}; red: the target ${fmtPct(RMS_TARGET)} (for the RMS pooled from 10^4).`,
    ],
    spec: {
      width: 600,
      height: 260,
      layer: [
        ...fewerSeedsLayers(sizes, rmsTop),
        {
          data: { values: rmsRows },
          mark: { type: "line", point: { size: 14 } },
          encoding: {
            x: { field: "truth", type: "quantitative", scale: xScale, axis: xAxis },
            y: {
              field: "rms",
              type: "quantitative",
              title: "RMS relative error (%)",
              scale: { domain: [0, rmsTop], nice: false },
            },
            color: {
              field: "series",
              type: "nominal",
              title: null,
              sort: SERIES.map((s) => SERIES_LABEL[s]),
              legend: { columns: 3, labelLimit: 400 },
            },
          },
        },
        {
          data: { values: [{ y: pct(THEORETICAL_STANDARD_ERROR) }] },
          mark: { type: "rule", color: "#888", strokeDash: [5, 3] },
          encoding: { y: { field: "y", type: "quantitative" } },
        },
        {
          data: { values: [{ y: pct(RMS_TARGET) }] },
          mark: { type: "rule", color: "#d62728" },
          encoding: { y: { field: "y", type: "quantitative" } },
        },
      ],
    } as Figure["spec"],
  };
  return [accuracy, rmsFigure];
}

export function accuracyMarkdown(result: AccuracyResult, targets: readonly TargetResult[]): string {
  const { sizes } = result;
  const large = result.estimates.filter((e) => e.truth >= RMS_TARGET_FROM);
  const small = result.estimates.filter((e) => e.truth < RMS_TARGET_FROM);
  const absErrors = (list: readonly Estimate[]) => list.map((e) => Math.abs(relError(e)));
  const p90Large = quantile(absErrors(large), 0.9);
  const worstLarge = Math.max(...absErrors(large));
  const rmsSmall = rms(small.map(relError));
  const merged = result.checks.filter((c) => MERGED.includes(c.series));
  const identical = merged.length > 0 && merged.every((c) => c.sameRegisters);
  const rows = SERIES.map((s) => {
    const errors = absErrors(large.filter((e) => e.series === s));
    return `| ${SERIES_LABEL[s]} | ${fmtInt(errors.length)} | ${fmtPct(result.rmsBySeries[s])} | ${fmtPct(quantile(errors, 0.9))} | ${fmtPct(Math.max(...errors))} |`;
  });
  const topNote =
    sizes.topCardinality > sizes.allSeedsUpTo
      ? ` Every seed runs to ${fmtCardinality(sizes.allSeedsUpTo)}; only the first ${plural(sizes.topSeeds, "seed")} go${sizes.topSeeds === 1 ? "es" : ""} on to ${fmtCardinality(sizes.topCardinality)} (each adds ${fmtCardinality(sizes.topCardinality)} ids to each of five series), so above ${fmtCardinality(sizes.allSeedsUpTo)} (shaded grey in the charts) the band and the RMS are over ${plural(sizes.topSeeds, "seed")} only.`
      : "";
  const lowerOrNot =
    rmsSmall < result.pooledRms
      ? `below 10^4 it is lower (${fmtPct(rmsSmall)}), where the estimate comes mostly from the count of empty registers (linear counting), which is more precise`
      : `below 10^4 it is ${fmtPct(rmsSmall)}`;
  return `## Accuracy

![HLL relative error against exact counts](charts/accuracy.svg)

From 10^4 distinct ids up, 90% of the ${fmtInt(large.length)} estimates of every series were within ±${fmtPct(p90Large)} of the exact count (theory: ±${fmtPct(THEORETICAL_P95)}) and the worst was off by ${fmtPct(worstLarge)}; a week or month merged from its days, and a range counted across day keys, are as accurate as one day. For an operator: read a count as ±${fmtPct(THEORETICAL_STANDARD_ERROR)} (one standard error), ±${fmtPct(THEORETICAL_P95)} for a 90% bound, whatever the period or the family (\`uv:\` or \`ev:\`).

![RMS relative error by cardinality](charts/accuracy-rms.svg)

Merging never adds error: ${identical ? "every" : "**not** every"} merged week, month and 17-day range had exactly the registers of one HLL fed all its ids (${fmtInt(merged.length)} comparisons), so a week's or a range's error is that of a single HLL of its distinct ids. The pooled RMS error from 10^4 up is ${fmtPct(result.pooledRms)} against the theoretical ${fmtPct(THEORETICAL_STANDARD_ERROR)}; ${lowerOrNot}.

| series | estimates from 10^4 | RMS | 90th pct of abs. error | worst abs. error |
| --- | --- | --- | --- | --- |
${rows.join("\n")}

${targets.map(targetLine).join("\n")}

How it was measured: ${plural(sizes.seeds, "seed")}, checkpoints at 1, 2, 3, 5 and 7 × 10^k from ${fmtInt(sizes.minCardinality)} to ${fmtCardinality(sizes.topCardinality)}, on one redis-server with the project's key names. Each seed feeds one stream of its own distinct ids per series with variadic PFADD and reads every estimate on the way up (an HLL's registers after n ids depend only on those ids), so one seed's estimates at different checkpoints share ids, while seeds are independent. Weeks and months spread their ids over 7 and 30 day keys, every 4th id coming back 3 days later; the range is days 4-20 of the month. Each merge is compared with a reference key fed all of the same ids, register by register.${topNote} ${fmtInt(result.idsAdded)} ids added in ${result.seconds.toFixed(0)} s.`;
}

function plural(n: number, word: string): string {
  return `${fmtInt(n)} ${word}${n === 1 ? "" : "s"}`;
}

export async function accuracyExperiment(
  server: RunningRedisServer,
  sizes: AccuracySizes,
  progress?: (text: string) => void,
): Promise<ExperimentOutput> {
  const result = await measureAccuracy(server, sizes, progress);
  const targets = accuracyTargets(result);
  return {
    id: "accuracy",
    markdown: accuracyMarkdown(result, targets),
    figures: accuracyFigures(result),
    targets,
  };
}
