/**
 * Memory of the counting keys on a real redis-server, by `MEMORY USAGE key SAMPLES 0` (the whole
 * value, with the key, object header and allocator rounding: what the server really holds):
 *
 *   HLL vs SET   one `uv:` day key against an exact SET of the same ids, read on the way up
 *                at 1, 2, 3, 5 and 7 × 10^k from 10^3 to 10^6.
 *   transition   a key's size every few ids across the sparse-to-dense switch, which Redis
 *                makes when the sparse value would exceed `hll-sparse-max-bytes` (read from the
 *                server); several seeds, since where it happens depends on the ids.
 *   per site     every key one site holds, both metrics, with the default retention: three
 *                traffic profiles (100, 1,000 and 10,000 visits a day from a population ten
 *                times that, 3 events a visit) written for five ISO weeks, the weeks and the
 *                month merged by PFMERGE as the rollup does; each kind of key's measured mean
 *                size times the number of such keys a site holds after one year, and once
 *                every retention is full.
 */

import { mulberry32 } from "../../cli/generator.js";
import { countingKey, type Metric } from "../../functions/domain/keys.js";
import {
  daysInMonth,
  daysInRange,
  daysInWeek,
  type RetentionSettings,
} from "../../functions/domain/periods.js";
import { DEFAULT_RETENTION } from "../../functions/domain/runtime-env.js";
import { checkpoints } from "./accuracy.js";
import { BulkAdder, counterRange, encodeAdd, IdFamily } from "./bulk-add.js";
import type { Figure } from "./charts.js";
import { hllEncoding } from "./hll-registers.js";
import type { RunningRedisServer } from "./redis-server.js";
import { fmtBytes, fmtCardinality, fmtInt } from "./stats.js";
import { type ExperimentOutput, type TargetResult, targetLine } from "./types.js";

export interface MemorySizes {
  readonly minCardinality: number;
  readonly maxCardinality: number;
  /** The transition scan: from 0 to here, reading every `transitionStep` ids. */
  readonly transitionMax: number;
  readonly transitionStep: number;
  readonly transitionSeeds: number;
  /** Visits a day of each per-site profile. */
  readonly siteProfiles: readonly number[];
}

export const MEMORY_DEFAULT: MemorySizes = {
  minCardinality: 1_000,
  maxCardinality: 1_000_000,
  transitionMax: 3_000,
  transitionStep: 20,
  transitionSeeds: 5,
  siteProfiles: [100, 1_000, 10_000],
};

export const MEMORY_SMALL: MemorySizes = {
  minCardinality: 1_000,
  maxCardinality: 10_000,
  transitionMax: 2_500,
  transitionStep: 250,
  transitionSeeds: 1,
  siteProfiles: [100],
};

/** Issue 14's target: an HLL at least this many times smaller than the exact SET at 10^6. */
export const MEMORY_RATIO_TARGET = 1_000;
export const MEMORY_RATIO_AT = 1_000_000;

export interface SizePoint {
  readonly cardinality: number;
  readonly hllBytes: number;
  readonly setBytes: number;
  readonly hllEncoding: "dense" | "sparse";
}

export interface TransitionPoint {
  readonly seed: number;
  readonly cardinality: number;
  /** MEMORY USAGE. */
  readonly memoryBytes: number;
  /** STRLEN: the HLL value itself. */
  readonly valueBytes: number;
  readonly encoding: "dense" | "sparse";
}

export interface KeyCounts {
  readonly days: number;
  readonly weeks: number;
  readonly months: number;
}

export interface SiteProfile {
  readonly visitsPerDay: number;
  readonly population: number;
  readonly eventsPerVisit: number;
  /** Mean MEMORY USAGE of each kind of key, by metric. */
  readonly keyBytes: Readonly<Record<Metric, KeyCounts>>;
  /** Mean distinct count of each kind of key, by metric (PFCOUNT). */
  readonly keyCounts: Readonly<Record<Metric, KeyCounts>>;
  readonly afterOneYear: number;
  readonly steadyState: number;
  /** Whether every key of the profile (both metrics, days, weeks, month) was dense. */
  readonly allDense: boolean;
}

export interface MemoryResult {
  readonly sizes: MemorySizes;
  readonly points: readonly SizePoint[];
  readonly transition: readonly TransitionPoint[];
  /** Cardinality at which each seed's key turned dense (undefined: it did not in the scan). */
  readonly transitionAt: readonly (number | undefined)[];
  readonly sparseMaxBytes: number;
  readonly denseBytes: number;
  /** MEMORY USAGE of an HLL with no ids (PFADD of the key alone). */
  readonly emptyBytes: number;
  readonly profiles: readonly SiteProfile[];
  readonly retention: RetentionSettings;
  readonly keysAfterOneYear: KeyCounts;
  readonly keysSteady: KeyCounts;
  readonly idLength: number;
  readonly seconds: number;
}

const DAY = "2030-06-15";
const CHUNK = 20_000;
const EVENTS_PER_VISIT = 3;
/** Five whole ISO weeks (2030-W18 … W22) holding all of May 2030. */
const PROFILE_FIRST = "2030-04-29";
const PROFILE_LAST = "2030-06-02";
const PROFILE_WEEKS = ["2030-W18", "2030-W19", "2030-W20", "2030-W21", "2030-W22"];
const PROFILE_MONTH = "2030-05";

/** Keys a site holds under a retention: today's plus the retained ones, within `elapsedDays`. */
export function keysHeld(retention: RetentionSettings, elapsedDays: number): KeyCounts {
  return {
    days: Math.min(elapsedDays, retention.days + 1),
    weeks: Math.min(Math.ceil(elapsedDays / 7), retention.weeks + 1),
    months: Math.min(Math.ceil((elapsedDays * 12) / 365), retention.months + 1),
  };
}

async function memoryUsage(server: RunningRedisServer, key: string): Promise<number> {
  const bytes = await server.client.call("MEMORY", "USAGE", key, "SAMPLES", "0");
  if (typeof bytes !== "number") throw new Error(`MEMORY USAGE ${key} returned ${bytes}`);
  return bytes;
}

async function encodingOf(server: RunningRedisServer, key: string) {
  const value = await server.client.getBuffer(key);
  if (value === null) throw new Error(`${key} does not exist`);
  return hllEncoding(value);
}

async function hllVersusSet(server: RunningRedisServer, adder: BulkAdder, sizes: MemorySizes) {
  const ids = new IdFamily("u-");
  const hll = countingKey("visitors", "mem", DAY);
  const set = `exact:{site_id=mem}:${DAY}`;
  const points: SizePoint[] = [];
  let fed = 0;
  for (const n of checkpoints(sizes.minCardinality, sizes.maxCardinality)) {
    for (let c = fed; c < n; c += CHUNK) {
      const counters = counterRange(c, Math.min(n, c + CHUNK));
      await adder.send(encodeAdd("PFADD", hll, ids, counters));
      await adder.send(encodeAdd("SADD", set, ids, counters));
    }
    await adder.drain();
    fed = n;
    const setSize = await server.client.scard(set);
    if (setSize !== n) throw new Error(`the exact SET holds ${setSize} ids, expected ${n}`);
    points.push({
      cardinality: n,
      hllBytes: await memoryUsage(server, hll),
      setBytes: await memoryUsage(server, set),
      hllEncoding: await encodingOf(server, hll),
    });
  }
  return { points, idLength: ids.id(0).length };
}

async function transitionScan(server: RunningRedisServer, adder: BulkAdder, sizes: MemorySizes) {
  const points: TransitionPoint[] = [];
  const transitionAt: (number | undefined)[] = [];
  for (let seed = 1; seed <= sizes.transitionSeeds; seed++) {
    const ids = new IdFamily(`u-${String(seed).padStart(2, "0")}-t-`);
    const key = countingKey("visitors", `mem-t${seed}`, DAY);
    let at: number | undefined;
    for (let n = 0; n <= sizes.transitionMax; n += sizes.transitionStep) {
      if (n > 0) {
        await adder.send(encodeAdd("PFADD", key, ids, counterRange(n - sizes.transitionStep, n)));
        await adder.drain();
      } else {
        await server.client.pfadd(key); // an empty HLL: its size at 0
      }
      const encoding = await encodingOf(server, key);
      if (encoding === "dense") at ??= n;
      points.push({
        seed,
        cardinality: n,
        memoryBytes: await memoryUsage(server, key),
        valueBytes: await server.client.strlen(key),
        encoding,
      });
    }
    transitionAt.push(at);
  }
  return { points, transitionAt };
}

async function siteProfile(
  server: RunningRedisServer,
  adder: BulkAdder,
  visitsPerDay: number,
  held: { readonly afterOneYear: KeyCounts; readonly steady: KeyCounts },
): Promise<SiteProfile> {
  const site = `mem-site-${visitsPerDay}`;
  const population = visitsPerDay * 10;
  const users = new IdFamily("u-");
  const events = new IdFamily(`shardId-000000000001:49590338271490256608559692538361571095`);
  const days = daysInRange(PROFILE_FIRST, PROFILE_LAST);
  let eventCounter = 0;
  for (const [j, day] of days.entries()) {
    const random = mulberry32(visitsPerDay * 1_000 + j);
    const visitors = Int32Array.from({ length: visitsPerDay }, () =>
      Math.floor(random() * population),
    );
    const eventIds = counterRange(eventCounter, eventCounter + visitsPerDay * EVENTS_PER_VISIT);
    eventCounter += eventIds.length;
    await adder.send(encodeAdd("PFADD", countingKey("visitors", site, day), users, visitors));
    await adder.send(encodeAdd("PFADD", countingKey("events", site, day), events, eventIds));
  }
  await adder.drain();
  const keyBytes = {} as Record<Metric, KeyCounts>;
  const keyCounts = {} as Record<Metric, KeyCounts>;
  let allDense = true;
  for (const metric of ["visitors", "events"] as const) {
    const key = (label: string) => countingKey(metric, site, label);
    for (const week of PROFILE_WEEKS)
      await server.client.pfmerge(key(week), ...daysInWeek(week).map(key));
    await server.client.pfmerge(key(PROFILE_MONTH), ...daysInMonth(PROFILE_MONTH).map(key));
    const measure = async (labels: readonly string[]) => {
      let bytes = 0;
      let count = 0;
      for (const label of labels) {
        bytes += await memoryUsage(server, key(label));
        count += await server.client.pfcount(key(label));
        if ((await encodingOf(server, key(label))) !== "dense") allDense = false;
      }
      return { bytes: bytes / labels.length, count: count / labels.length };
    };
    const d = await measure(days);
    const w = await measure(PROFILE_WEEKS);
    const m = await measure([PROFILE_MONTH]);
    keyBytes[metric] = { days: d.bytes, weeks: w.bytes, months: m.bytes };
    keyCounts[metric] = { days: d.count, weeks: w.count, months: m.count };
  }
  const perSite = (counts: KeyCounts) =>
    (["visitors", "events"] as const).reduce((sum, metric) => {
      const b = keyBytes[metric];
      return sum + counts.days * b.days + counts.weeks * b.weeks + counts.months * b.months;
    }, 0);
  return {
    visitsPerDay,
    population,
    eventsPerVisit: EVENTS_PER_VISIT,
    keyBytes,
    keyCounts,
    afterOneYear: perSite(held.afterOneYear),
    steadyState: perSite(held.steady),
    allDense,
  };
}

export async function measureMemory(
  server: RunningRedisServer,
  sizes: MemorySizes,
  progress: (text: string) => void = () => {},
): Promise<MemoryResult> {
  const start = performance.now();
  const adder = await BulkAdder.connect(server.host, server.port);
  try {
    await server.client.flushall("SYNC");
    const config = (await server.client.config("GET", "hll-sparse-max-bytes")) as string[];
    const sparseMaxBytes = Number(config[1]);
    progress("memory: HLL against the exact SET");
    const { points, idLength } = await hllVersusSet(server, adder, sizes);
    await server.client.flushall("SYNC");
    progress("memory: the sparse-to-dense transition");
    const { points: transition, transitionAt } = await transitionScan(server, adder, sizes);
    const denseKey = countingKey("visitors", "mem-dense", DAY);
    await server.client.pfadd(denseKey, ...Array.from({ length: 20_000 }, (_, i) => `d-${i}`));
    if ((await encodingOf(server, denseKey)) !== "dense") throw new Error("expected a dense HLL");
    const denseBytes = await memoryUsage(server, denseKey);
    await server.client.flushall("SYNC");
    const retention = DEFAULT_RETENTION;
    const keysAfterOneYear = keysHeld(retention, 365);
    const keysSteady = keysHeld(retention, Number.POSITIVE_INFINITY);
    const profiles: SiteProfile[] = [];
    for (const visits of sizes.siteProfiles) {
      progress(`memory: a site of ${fmtInt(visits)} visits a day`);
      profiles.push(
        await siteProfile(server, adder, visits, {
          afterOneYear: keysAfterOneYear,
          steady: keysSteady,
        }),
      );
    }
    return {
      sizes,
      points,
      transition,
      transitionAt,
      sparseMaxBytes,
      denseBytes,
      emptyBytes: transition.find((p) => p.cardinality === 0)?.memoryBytes ?? Number.NaN,
      profiles,
      retention,
      keysAfterOneYear,
      keysSteady,
      idLength,
      seconds: (performance.now() - start) / 1000,
    };
  } finally {
    adder.close();
    await server.client.flushall("SYNC");
  }
}

function ratioAt(result: MemoryResult, n: number): number | undefined {
  const p = result.points.find((x) => x.cardinality === n);
  return p ? p.setBytes / p.hllBytes : undefined;
}

export function memoryTargets(result: MemoryResult): TargetResult[] {
  const ratio = ratioAt(result, MEMORY_RATIO_AT);
  const p = result.points.find((x) => x.cardinality === MEMORY_RATIO_AT);
  return [
    {
      name: "memory",
      pass: ratio !== undefined && ratio >= MEMORY_RATIO_TARGET,
      text:
        ratio === undefined || p === undefined
          ? `not measured at ${fmtCardinality(MEMORY_RATIO_AT)} in this run (largest: ${fmtCardinality(result.sizes.maxCardinality)}; target >= ${fmtInt(MEMORY_RATIO_TARGET)}x)`
          : `the HLL is ${fmtInt(ratio)}x smaller than the exact SET at ${fmtCardinality(MEMORY_RATIO_AT)} (${fmtBytes(p.hllBytes)} against ${fmtBytes(p.setBytes)}; target >= ${fmtInt(MEMORY_RATIO_TARGET)}x)`,
    },
  ];
}

export function memoryFigures(result: MemoryResult): Figure[] {
  const rows = result.points.flatMap((p) => [
    { cardinality: p.cardinality, bytes: p.hllBytes, what: "HLL (PFADD)" },
    { cardinality: p.cardinality, bytes: p.setBytes, what: "exact SET (SADD)" },
  ]);
  const labels = result.points
    .filter((p) => Number.isInteger(Math.log10(p.cardinality)))
    .map((p) => ({
      cardinality: p.cardinality,
      bytes: Math.sqrt(p.setBytes * p.hllBytes),
      text: `${fmtInt(p.setBytes / p.hllBytes)}x`,
    }));
  const memory: Figure = {
    file: "memory.svg",
    title: "Memory of one key: HLL against an exact SET of the same ids",
    subtitle: [
      `MEMORY USAGE … SAMPLES 0 after n distinct ${result.idLength}-character ids.`,
      "Labels: how many times smaller the HLL is.",
    ],
    spec: {
      width: 520,
      height: 280,
      layer: [
        {
          data: { values: rows },
          mark: { type: "line", point: true },
          encoding: {
            x: {
              field: "cardinality",
              type: "quantitative",
              scale: { type: "log" },
              axis: { title: "distinct ids in the key", format: "~s" },
            },
            y: {
              field: "bytes",
              type: "quantitative",
              scale: { type: "log" },
              axis: { title: "bytes (log scale)", format: "~s" },
            },
            color: {
              field: "what",
              type: "nominal",
              title: null,
              scale: { range: ["#1f4e79", "#e45756"] },
            },
          },
        },
        {
          data: { values: labels },
          mark: { type: "text", fontSize: 11, fontWeight: "bold", color: "#333", dx: 16 },
          encoding: {
            x: { field: "cardinality", type: "quantitative" },
            y: { field: "bytes", type: "quantitative" },
            text: { field: "text" },
          },
        },
      ],
    } as Figure["spec"],
  };
  const transitionRows = result.transition.flatMap((p) => [
    {
      seed: `seed ${p.seed}`,
      cardinality: p.cardinality,
      bytes: p.memoryBytes,
      what: "MEMORY USAGE",
    },
    {
      seed: `seed ${p.seed}`,
      cardinality: p.cardinality,
      bytes: p.valueBytes,
      what: "value (STRLEN)",
    },
  ]);
  const transition: Figure = {
    file: "memory-transition.svg",
    title: "Sparse to dense: one HLL key's size as ids arrive",
    subtitle: [
      `Read every ${result.sizes.transitionStep} ids, ${result.sizes.transitionSeeds} seeds; dashed: hll-sparse-max-bytes = ${fmtInt(result.sparseMaxBytes)} (this server).`,
      `Past it the key turns dense: ${fmtInt(result.denseBytes)} bytes in memory, whatever the count.`,
    ],
    spec: {
      width: 520,
      height: 260,
      layer: [
        {
          data: { values: transitionRows },
          mark: { type: "line", interpolate: "step-after", strokeWidth: 1.5 },
          encoding: {
            x: {
              field: "cardinality",
              type: "quantitative",
              axis: { title: "distinct ids in the key" },
            },
            y: { field: "bytes", type: "quantitative", axis: { title: "bytes", format: "~s" } },
            color: {
              field: "what",
              type: "nominal",
              title: null,
              scale: { range: ["#1f4e79", "#f58518"] },
            },
            detail: { field: "seed", type: "nominal" },
          },
        },
        {
          data: { values: [{ y: result.sparseMaxBytes }] },
          mark: { type: "rule", strokeDash: [5, 3], color: "#888" },
          encoding: { y: { field: "y", type: "quantitative" } },
        },
      ],
    } as Figure["spec"],
  };
  return [memory, transition];
}

/** Bytes of one metric's keys of a site profile, for the given numbers of keys. */
function metricBytes(profile: SiteProfile, metric: Metric, counts: KeyCounts): number {
  const b = profile.keyBytes[metric];
  return counts.days * b.days + counts.weeks * b.weeks + counts.months * b.months;
}

export function memoryMarkdown(result: MemoryResult, targets: readonly TargetResult[]): string {
  const at = result.transitionAt.filter((n): n is number => n !== undefined);
  const lo = Math.min(...at);
  const hi = Math.max(...at);
  const transitionText =
    at.length === 0
      ? `not within the ${fmtInt(result.sizes.transitionMax)} ids scanned`
      : lo === hi
        ? `at ${fmtInt(lo)} distinct ids (read every ${result.sizes.transitionStep})`
        : `between ${fmtInt(lo)} and ${fmtInt(hi)} distinct ids depending on the ids (read every ${result.sizes.transitionStep})`;
  const sizeRows = result.points
    .filter((p) => Number.isInteger(Math.log10(p.cardinality)))
    .map(
      (p) =>
        `| ${fmtCardinality(p.cardinality)} | ${fmtInt(p.hllBytes)} (${p.hllEncoding}) | ${fmtInt(p.setBytes)} | ${fmtInt(p.setBytes / p.hllBytes)}x |`,
    );
  const { keysAfterOneYear: y1, keysSteady: st, retention } = result;
  const profileRows = result.profiles.flatMap((p) =>
    (["visitors", "events"] as const).map((metric) => {
      const b = p.keyBytes[metric];
      const c = p.keyCounts[metric];
      const family = metric === "visitors" ? "uv:" : "ev:";
      const cell = (bytes: number, count: number) => `${fmtInt(bytes)} (~${fmtInt(count)})`;
      return `| ${fmtInt(p.visitsPerDay)} visits/day | \`${family}\` | ${cell(b.days, c.days)} | ${cell(b.weeks, c.weeks)} | ${cell(b.months, c.months)} |`;
    }),
  );
  const totalRows = result.profiles.map(
    (p) =>
      `| ${fmtInt(p.visitsPerDay)} visits/day | ${fmtBytes(p.afterOneYear)} | ${fmtBytes(p.steadyState)} | ${fmtBytes(p.steadyState * 1_000_000)} |`,
  );
  const largest = result.points.at(-1);
  const ratio = largest ? largest.setBytes / largest.hllBytes : Number.NaN;
  const smallest = result.profiles[0];
  const evShare = smallest
    ? metricBytes(smallest, "events", st) / smallest.steadyState
    : Number.NaN;
  const dense = result.profiles.find((p) => p.allDense);
  const sentences = [
    smallest
      ? `Events never repeat, so a site's \`ev:\` keys grow dense long before its \`uv:\` keys: at ${fmtInt(smallest.visitsPerDay)} visits a day they are ${Math.round(evShare * 100)}% of the site's memory.`
      : "",
    dense
      ? `From ${fmtInt(dense.visitsPerDay)} visits a day every key is dense, which is the most a site can cost whatever its traffic (${fmtBytes(dense.steadyState)} with full retention); size a cluster from the profile of its busiest sites.`
      : "",
  ].filter((x) => x !== "");
  return `## Memory

![Memory of one key: HLL against an exact SET](charts/memory.svg)

An exact SET grows with every distinct id (${largest ? `${fmtInt(largest.setBytes / largest.cardinality)} bytes an id at ${fmtCardinality(largest.cardinality)}` : "n/a"}); an HLL stops growing at ${fmtBytes(result.denseBytes)} once dense, so at ${largest ? fmtCardinality(largest.cardinality) : "n/a"} ids it is ${fmtInt(ratio)}x smaller. To size a cluster, count each busy key at its dense size; exact counts of the same visitors would need what the SET line shows, per key.

| distinct ids | HLL bytes | exact SET bytes | SET / HLL |
| --- | --- | --- | --- |
${sizeRows.join("\n")}

![Sparse to dense: one HLL key's size as ids arrive](charts/memory-transition.svg)

A key starts sparse (${fmtInt(result.emptyBytes)} bytes with no ids) and grows a few bytes per id until its value would pass \`hll-sparse-max-bytes\` (${fmtInt(result.sparseMaxBytes)} on this server), which happened ${transitionText}; then it turns dense, ${fmtBytes(result.denseBytes)} in memory, and never grows again. Sparse keys are what keep small sites cheap; raising \`hll-sparse-max-bytes\` keeps keys of a few thousand ids sparse longer, at more CPU for each PFADD to them.

Bytes per site, both metrics (\`uv:\` visitors and \`ev:\` events), day + week + month keys with the default retention (${retention.days} days, ${retention.weeks} weeks, ${retention.months} months): after one year a site holds ${y1.days} day, ${y1.weeks} week and ${y1.months} month keys per metric; once every retention is full, ${st.days}, ${st.weeks} and ${st.months}. Each event type a site sends adds keys of its own (\`…:event=purchase:…\`) on top.

| site | family | day key, bytes (~distinct) | week key | month key |
| --- | --- | --- | --- | --- |
${profileRows.join("\n")}

| site | per site after one year | per site, retention full | 10^6 such sites, retention full |
| --- | --- | --- | --- |
${totalRows.join("\n")}

${sentences.join(" ")}

${targets.map(targetLine).join("\n")}

How it was measured: \`MEMORY USAGE key SAMPLES 0\` (key, object and allocator overhead included) on one redis-server; ids of ${result.idLength} characters (\`u-00012345\`) for the HLL and the SET, read on the way up; the per-site profiles draw visitors from a population ten times the daily visits, with ${EVENTS_PER_VISIT} events a visit (event ids shaped like Kinesis record ids), over five ISO weeks (35 days) holding one month, whose week and month keys are PFMERGE of their days, as the rollup writes them. ${result.seconds.toFixed(0)} s.`;
}

export async function memoryExperiment(
  server: RunningRedisServer,
  sizes: MemorySizes,
  progress?: (text: string) => void,
): Promise<ExperimentOutput> {
  const result = await measureMemory(server, sizes, progress);
  const targets = memoryTargets(result);
  return {
    id: "memory",
    markdown: memoryMarkdown(result, targets),
    figures: memoryFigures(result),
    targets,
  };
}
