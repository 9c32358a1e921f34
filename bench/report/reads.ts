/**
 * Reads: how long a count takes as its range grows, and the read API's latency.
 *
 *   count      the real read path, countAnswer (functions/api/answers.ts), which the API's
 *              `/count` and the CLI's `count` both run: the as-of and time-zone look-ups, the
 *              range's days in the rollup's touched and pending sets (SMISMEMBER), EXISTS of each
 *              week and month wholly inside the range, then one PFCOUNT over the fewest keys
 *              that cover the range (functions/domain/cover.ts).
 *   every day  one PFCOUNT over every day key of the range: what counting without the rollup's
 *              week and month keys costs.
 *   cover      the count's PFCOUNT alone, over the keys of its cover (the look-ups left out): where
 *              the count's time goes.
 *
 * One site's history (`days` days ending today, by the run's clock) is loaded through the real
 * consumer handler and rolled up by one scheduled run of the state machine, on a Redis Cluster
 * of 3 primaries started for the run, with the retention raised to hold the whole history so no
 * key expires during the run (bench/api.ts loadApiData, as `npm run bench:api` does). Every
 * answer is checked first: the count's estimate equals the every-day PFCOUNT (the cover's week
 * and month keys hold the same registers), and so does the cover's PFCOUNT.
 *
 * Each call is made alone (nothing else in flight) on an auto-pipelining ioredis Cluster client
 * with the API's connection settings, and timed from the call to its answer; per range and
 * method an untimed warm-up, then `samples` timed calls in `rounds` rounds, the order of the
 * methods alternating between rounds.
 *
 * The API part is `npm run bench:api`'s measurement (bench/api.ts measureApiCases) over the
 * same data: the served app against the limit (a bare server sending the app's
 * very Redis commands), per case, with its target: the app's p50 within 1.5x of the limit's.
 */

import { connectRedis } from "../../functions/adapters/redis.js";
import { countAnswer, rangeRequest } from "../../functions/api/answers.js";
import { uniqueVisitorsKey } from "../../functions/domain/keys.js";
import { addDays, daysInRange } from "../../functions/domain/periods.js";
import { readCalendars } from "../../functions/read/counts.js";
import {
  type ApiData,
  type ApiTimingOptions,
  benchCases,
  type CaseResult,
  describeKeys,
  loadApiData,
  measureApiCases,
  percentile,
  perSecond,
  TARGET_P50_WITHIN_LIMIT,
} from "../api.js";
import type { Closer } from "../lib.js";
import type { Figure } from "./charts.js";
import { hllEncoding } from "./hll-registers.js";
import { fmtInt } from "./stats.js";
import {
  type ExperimentContext,
  type ExperimentOutput,
  type TargetResult,
  targetLine,
} from "./types.js";

export interface ReadsSizes {
  /** Days of history ending today: at least the longest range. */
  readonly days: number;
  /** Events a day, each by a user drawn from `users`. */
  readonly usersPerDay: number;
  readonly users: number;
  readonly seed: number;
  /** Range lengths in days, every range ending today. */
  readonly ranges: readonly number[];
  /** Untimed calls per range and method before the rounds. */
  readonly warmup: number;
  /** Timed calls per range and method. */
  readonly samples: number;
  /** Rounds the timed calls are split into, the order of the methods alternating. */
  readonly rounds: number;
  /** The API's load: requests per case and server, rounds, warm-up, requests in flight. */
  readonly api: ApiTimingOptions;
}

export const READS_DEFAULT: ReadsSizes = {
  // The 365-day count and the 52-week series need 365 days; the rest is margin.
  days: 380,
  // About 2,000 distinct users a day: every day key is dense, as a busy site's are.
  usersPerDay: 2_000,
  users: 200_000,
  seed: 42,
  ranges: [1, 7, 30, 90, 180, 365],
  warmup: 20,
  samples: 500,
  rounds: 10,
  // `npm run bench:api`'s own defaults.
  api: { requests: 2_000, rounds: 10, warmup: 200, concurrency: 8 },
};

export const READS_SMALL: ReadsSizes = {
  days: 35,
  usersPerDay: 30,
  users: 1_000,
  seed: 42,
  ranges: [1, 7, 30],
  warmup: 2,
  samples: 20,
  rounds: 2,
  api: { requests: 30, rounds: 2, warmup: 5, concurrency: 4 },
};

export interface ReadsOptions {
  /** The run's clock at its start (epoch ms); default Date.now(). Tests pass their own. */
  readonly nowMs?: number;
}

export const READ_METHODS = ["count", "everyDay", "cover"] as const;
export type ReadMethod = (typeof READ_METHODS)[number];

export const METHOD_LABELS: Readonly<Record<ReadMethod, string>> = {
  count: "count (fewest-keys cover)",
  everyDay: "PFCOUNT of every day key",
  cover: "PFCOUNT of the cover's keys alone",
};

export interface LatencySummary {
  readonly latenciesMs: readonly number[];
  readonly p50Ms: number;
  readonly p99Ms: number;
}

export interface RangePoint {
  readonly days: number;
  readonly from: string;
  readonly to: string;
  /** Keys of the count's cover, and what they are ("11 months + 4 weeks + 2 days"). */
  readonly coverKeys: number;
  readonly cover: string;
  /** Day keys the every-day PFCOUNT reads (= days). */
  readonly dayKeys: number;
  /** The estimate, the same for every method (checked). */
  readonly estimate: number;
  readonly methods: Readonly<Record<ReadMethod, LatencySummary>>;
}

export interface ApiCaseSummary {
  readonly name: string;
  readonly path: string;
  /** Redis round trips per request, and the answer's make-up. */
  readonly roundTrips: number;
  readonly answer: string;
  readonly app: { readonly p50Ms: number; readonly p99Ms: number; readonly perSecond: number };
  readonly limit: { readonly p50Ms: number; readonly p99Ms: number; readonly perSecond: number };
  /** app p50 / limit p50. */
  readonly ratio: number;
}

export interface ReadsResult {
  readonly sizes: ReadsSizes;
  readonly site: string;
  readonly firstDay: string;
  readonly today: string;
  readonly events: number;
  readonly loadSeconds: number;
  readonly rollupItems: number;
  readonly rollupSeconds: number;
  readonly retention: { readonly days: number; readonly weeks: number; readonly months: number };
  /** Encoding of the site's day keys (uv:), from their values. */
  readonly dayKeyEncodings: { readonly dense: number; readonly sparse: number };
  readonly redisVersion: string;
  readonly ranges: readonly RangePoint[];
  readonly api: readonly ApiCaseSummary[];
  readonly seconds: number;
}

const SITE = "1";

function summary(latenciesMs: readonly number[]): LatencySummary {
  return {
    latenciesMs,
    p50Ms: percentile(latenciesMs, 50),
    p99Ms: percentile(latenciesMs, 99),
  };
}

/** Calls per round: `total` split as evenly as can be over `rounds`. */
function perRound(total: number, rounds: number, r: number): number {
  return Math.floor(total / rounds) + (r < total % rounds ? 1 : 0);
}

async function dayKeyEncodings(data: ApiData, firstDay: string, today: string) {
  const counts = { dense: 0, sparse: 0 };
  for (const day of daysInRange(firstDay, today)) {
    const value = await data.bare.getBuffer(uniqueVisitorsKey(SITE, day));
    if (value !== null) counts[hllEncoding(value)]++;
  }
  return counts;
}

async function measureRanges(
  data: ApiData,
  sizes: ReadsSizes,
  closers: Closer[],
  progress: (text: string) => void,
): Promise<RangePoint[]> {
  const { today } = data.loaded;
  // The app's connection settings: an auto-pipelining Cluster client, as the API and CLI use.
  const connection = connectRedis(data.config.redis);
  closers.push(() => connection.close());
  const client = connection.client;
  const retentionDays = data.config.retention.days;
  const calendars = readCalendars(retentionDays);

  const prepared = sizes.ranges.map((days) => {
    const from = addDays(today, -(days - 1));
    if (from < data.loaded.firstDay) {
      throw new RangeError(`a ${days}-day range starts before the ${sizes.days}-day history`);
    }
    const request = rangeRequest({ site: SITE, from, to: today, metric: "visitors" });
    const dayKeys = daysInRange(from, today).map((d) => uniqueVisitorsKey(SITE, d));
    return { days, from, request, dayKeys };
  });
  const count = (p: (typeof prepared)[number]) =>
    countAnswer(client, p.request, { retentionDays, nowMs: data.now(), calendars });

  // Checked, untimed: the same number three ways, and nothing missing.
  const checked: ((typeof prepared)[number] & { keys: string[]; estimate: number })[] = [];
  for (const p of prepared) {
    progress(`reads: checking the ${p.days}-day count…`);
    const answer = await count(p);
    const everyDay = await client.pfcount(...p.dayKeys);
    const cover = await client.pfcount(...answer.keys);
    if (answer.estimate !== everyDay || cover !== everyDay) {
      throw new Error(
        `${p.days} days: count ${answer.estimate}, cover PFCOUNT ${cover}, every-day PFCOUNT ${everyDay}: not the same registers`,
      );
    }
    if (!answer.complete) {
      throw new Error(`${p.days} days: the count is incomplete (${answer.missing.join(", ")})`);
    }
    if (answer.keys.length > p.dayKeys.length) {
      throw new Error(`${p.days} days: a cover of ${answer.keys.length} keys`);
    }
    checked.push({ ...p, keys: answer.keys, estimate: answer.estimate });
  }

  const calls: Record<ReadMethod, (p: (typeof checked)[number]) => Promise<unknown>> = {
    count,
    everyDay: (p) => client.pfcount(...p.dayKeys),
    cover: (p) => client.pfcount(...p.keys),
  };
  for (const p of checked) {
    for (const method of READ_METHODS) {
      for (let i = 0; i < sizes.warmup; i++) await calls[method](p);
    }
  }
  const latencies = checked.map(
    () => ({ count: [], everyDay: [], cover: [] }) as Record<ReadMethod, number[]>,
  );
  for (let r = 0; r < sizes.rounds; r++) {
    progress(`reads: round ${r + 1}/${sizes.rounds} of the range latencies…`);
    const order = r % 2 === 0 ? READ_METHODS : [...READ_METHODS].reverse();
    for (const [i, p] of checked.entries()) {
      for (const method of order) {
        const into = latencies[i]?.[method] ?? [];
        for (let k = 0; k < perRound(sizes.samples, sizes.rounds, r); k++) {
          const start = performance.now();
          await calls[method](p);
          into.push(performance.now() - start);
        }
      }
    }
  }
  return checked.map((p, i) => {
    const l = latencies[i] ?? { count: [], everyDay: [], cover: [] };
    return {
      days: p.days,
      from: p.from,
      to: today,
      coverKeys: p.keys.length,
      cover: describeKeys(p.keys),
      dayKeys: p.dayKeys.length,
      estimate: p.estimate,
      methods: {
        count: summary(l.count),
        everyDay: summary(l.everyDay),
        cover: summary(l.cover),
      },
    };
  });
}

function apiSummary(c: CaseResult): ApiCaseSummary {
  const side = (m: CaseResult["app"]) => ({
    p50Ms: percentile(m.latenciesMs, 50),
    p99Ms: percentile(m.latenciesMs, 99),
    perSecond: perSecond(m),
  });
  const app = side(c.app);
  const limit = side(c.limit);
  return {
    name: c.case.name,
    path: c.case.path,
    roundTrips: c.waves,
    answer: c.cover,
    app,
    limit,
    ratio: app.p50Ms / limit.p50Ms,
  };
}

export async function measureReads(
  sizes: ReadsSizes,
  context: ExperimentContext,
  options: ReadsOptions = {},
): Promise<ReadsResult> {
  const longest = Math.max(...sizes.ranges);
  if (sizes.ranges.length === 0 || longest > sizes.days) {
    throw new RangeError(`ranges ${sizes.ranges.join(", ")} need up to ${longest} days of history`);
  }
  const started = performance.now();
  // What this run starts, stopped once: at its end (so the experiments after it have the CPU)
  // or by the runner's closers on an interrupt or a failure.
  const own: Closer[] = [];
  let closed: Promise<void> | undefined;
  const close = () => {
    closed ??= (async () => {
      for (const c of own.reverse()) await c();
    })();
    return closed;
  };
  context.closers.push(close);
  try {
    context.progress("reads: starting a Redis Cluster and loading the history…");
    const data = await loadApiData(
      {
        sites: 1,
        days: sizes.days,
        usersPerDay: sizes.usersPerDay,
        users: sizes.users,
        seed: sizes.seed,
        ...(options.nowMs === undefined ? {} : { nowMs: options.nowMs }),
      },
      own,
      (text) => context.progress(text === "" ? "" : `reads: ${text}`),
    );
    const { firstDay, today } = data.loaded;
    const encodings = await dayKeyEncodings(data, firstDay, today);
    const ranges = await measureRanges(data, sizes, own, context.progress);
    // The API's cases that fit the history (at small sizes, not the 365-day ones).
    const cases = benchCases(SITE, today).filter((c) => c.from >= firstDay);
    const api = await measureApiCases(data, cases, sizes.api, own, (text) =>
      context.progress(text === "" ? "" : `reads, API: ${text}`),
    );
    context.progress("");
    return {
      sizes,
      site: SITE,
      firstDay,
      today,
      events: data.loaded.events,
      loadSeconds: data.loaded.ms / 1000,
      rollupItems: data.loaded.rollupItems,
      rollupSeconds: data.loaded.rollupMs / 1000,
      retention: data.retention,
      dayKeyEncodings: encodings,
      redisVersion: data.redisVersion,
      ranges,
      api: api.map(apiSummary),
      seconds: (performance.now() - started) / 1000,
    };
  } finally {
    await close();
  }
}

export function readsTargets(result: ReadsResult): TargetResult[] {
  return result.api.map((c) => ({
    name: `API p50, ${c.name}`,
    pass: c.ratio <= TARGET_P50_WITHIN_LIMIT,
    text: `the app's p50 ${ms(c.app.p50Ms)} ms is ${c.ratio.toFixed(2)}x the limit's ${ms(c.limit.p50Ms)} ms (target <= ${TARGET_P50_WITHIN_LIMIT}x)`,
  }));
}

const ms = (n: number) => (Number.isFinite(n) ? (n < 10 ? n.toFixed(2) : n.toFixed(1)) : "n/a");
const plural = (n: number, one: string) => `${fmtInt(n)} ${one}${n === 1 ? "" : "s"}`;

const COLORS = { count: "#1f4e79", everyDay: "#e45756", cover: "#9ecae9" };

export function readsFigures(result: ReadsResult): Figure[] {
  const shown = ["count", "everyDay"] as const;
  const rows = result.ranges.flatMap((r) =>
    shown.map((method) => ({
      days: r.days,
      method: METHOD_LABELS[method],
      p50: r.methods[method].p50Ms,
      p99: r.methods[method].p99Ms,
      keys: method === "count" ? r.coverKeys : r.dayKeys,
      label: plural(method === "count" ? r.coverKeys : r.dayKeys, "key"),
    })),
  );
  const color = {
    field: "method",
    type: "nominal",
    title: null,
    legend: { labelLimit: 400 },
    sort: shown.map((m) => METHOD_LABELS[m]),
    scale: { domain: shown.map((m) => METHOD_LABELS[m]), range: shown.map((m) => COLORS[m]) },
  };
  const x = {
    field: "days",
    type: "quantitative",
    scale: {
      type: "log",
      nice: false,
      domain: [
        Math.min(...result.ranges.map((r) => r.days)) / 1.3,
        Math.max(...result.ranges.map((r) => r.days)) * 1.6,
      ],
    },
    axis: { title: "range length, days (log scale)", values: result.ranges.map((r) => r.days) },
  };
  const ranges: Figure = {
    file: "reads.svg",
    title: "Count latency against range length",
    subtitle: [
      `One count at a time on a local Redis Cluster of 3 primaries; ${fmtInt(result.sizes.samples)} calls per point.`,
      "Line: median; the bar reaches the p99 (tick). Labels: keys read by the one PFCOUNT.",
    ],
    spec: {
      width: 520,
      height: 300,
      data: { values: rows },
      layer: [
        {
          mark: { type: "rule", strokeWidth: 2, opacity: 0.6 },
          encoding: {
            x,
            y: { field: "p50", type: "quantitative" },
            y2: { field: "p99" },
            color,
          },
        },
        {
          mark: { type: "tick", orient: "horizontal", thickness: 2, size: 10 },
          encoding: { x, y: { field: "p99", type: "quantitative" }, color },
        },
        {
          mark: { type: "line", point: true, strokeWidth: 2 },
          encoding: {
            x,
            y: {
              field: "p50",
              type: "quantitative",
              scale: { type: "log" },
              axis: { title: "latency, ms (log scale)" },
            },
            color,
          },
        },
        // Key counts: the count's above its point, the every-day PFCOUNT's below.
        ...shown.map((method) => ({
          transform: [{ filter: { field: "method", equal: METHOD_LABELS[method] } }],
          mark: {
            type: "text",
            fontSize: 10,
            dx: 5,
            dy: method === "count" ? -9 : 12,
            align: "left",
          },
          encoding: {
            x,
            y: { field: "p50", type: "quantitative" },
            text: { field: "label" },
            color,
          },
        })),
      ],
    } as Figure["spec"],
  };
  const apiRows = result.api.flatMap((c) => [
    { case: c.name, server: "app", p50: c.app.p50Ms, p99: c.app.p99Ms },
    { case: c.name, server: "limit", p50: c.limit.p50Ms, p99: c.limit.p99Ms },
  ]);
  const targetRows = result.api.map((c) => ({
    case: c.name,
    server: "app",
    target: c.limit.p50Ms * TARGET_P50_WITHIN_LIMIT,
  }));
  const order = result.api.map((c) => c.name);
  const y = {
    field: "case",
    type: "nominal",
    sort: order,
    axis: { title: null, labelLimit: 300 },
  };
  const yOffset = { field: "server", type: "nominal", sort: ["app", "limit"] };
  const serverColor = {
    field: "server",
    type: "nominal",
    title: null,
    scale: { domain: ["app", "limit"], range: ["#1f4e79", "#f58518"] },
  };
  const latency = {
    type: "quantitative",
    scale: { type: "log" },
    axis: { title: "latency per request, ms (log scale)" },
  };
  const api: Figure = {
    file: "reads-api.svg",
    title: "Read API latency per request: the app against the limit",
    subtitle: [
      `${result.sizes.api.concurrency} requests in flight over keep-alive HTTP on 127.0.0.1; ${fmtInt(result.sizes.api.requests)} timed requests per case and server.`,
      `Dot: p50; the bar reaches the p99 (tick); black tick: the target, ${TARGET_P50_WITHIN_LIMIT}x the limit's p50.`,
    ],
    spec: {
      width: 480,
      height: { step: 22 },
      layer: [
        {
          data: { values: apiRows },
          mark: { type: "rule", strokeWidth: 2, opacity: 0.6 },
          encoding: {
            y,
            yOffset,
            x: { field: "p50", ...latency },
            x2: { field: "p99" },
            color: serverColor,
          },
        },
        {
          data: { values: apiRows },
          mark: { type: "tick", orient: "vertical", thickness: 2, size: 10 },
          encoding: { y, yOffset, x: { field: "p99", type: "quantitative" }, color: serverColor },
        },
        {
          data: { values: apiRows },
          mark: { type: "point", filled: true, size: 50 },
          encoding: { y, yOffset, x: { field: "p50", type: "quantitative" }, color: serverColor },
        },
        {
          data: { values: targetRows },
          mark: { type: "tick", orient: "vertical", thickness: 2, size: 14, color: "#000" },
          encoding: { y, yOffset, x: { field: "target", type: "quantitative" } },
        },
      ],
    } as Figure["spec"],
  };
  return result.api.length > 0 ? [ranges, api] : [ranges];
}

export function readsMarkdown(result: ReadsResult, targets: readonly TargetResult[]): string {
  const s = result.sizes;
  const rangeRows = result.ranges.map((r) => {
    const c = r.methods.count;
    const e = r.methods.everyDay;
    return `| ${plural(r.days, "day")} | ${fmtInt(r.coverKeys)} (${r.cover}) | ${ms(c.p50Ms)} / ${ms(c.p99Ms)} | ${ms(r.methods.cover.p50Ms)} | ${fmtInt(r.dayKeys)} | ${ms(e.p50Ms)} / ${ms(e.p99Ms)} | ${(e.p50Ms / c.p50Ms).toFixed(2)}x |`;
  });
  const apiRows = result.api.map(
    (c) =>
      `| ${c.name} | ${c.roundTrips} | ${c.answer} | ${ms(c.app.p50Ms)} / ${ms(c.app.p99Ms)} | ${ms(c.limit.p50Ms)} / ${ms(c.limit.p99Ms)} | ${c.ratio.toFixed(2)}x | ${fmtInt(c.app.perSecond)} | ${fmtInt(c.limit.perSecond)} |`,
  );
  const { dense, sparse } = result.dayKeyEncodings;
  const encoding =
    sparse === 0 ? "all dense" : dense === 0 ? "all sparse" : `${dense} dense, ${sparse} sparse`;
  const longest = result.ranges.reduce((a, b) => (b.days > a.days ? b : a));
  const shortest = result.ranges.reduce((a, b) => (b.days < a.days ? b : a));
  const speedUp = longest.methods.everyDay.p50Ms / longest.methods.count.p50Ms;
  const lookups = shortest.methods.count.p50Ms - shortest.methods.cover.p50Ms;
  const rangeSentences = [
    `Over ${plural(longest.days, "day")} the count reads ${plural(longest.coverKeys, "key")} instead of ${fmtInt(longest.dayKeys)} and its median is ${ms(longest.methods.count.p50Ms)} ms against ${ms(longest.methods.everyDay.p50Ms)} ms for every day key: ${
      speedUp >= 1
        ? `${speedUp.toFixed(1)}x faster. A PFCOUNT of several keys merges every one of them, so without the rollup's weeks and months a count's time grows with its days.`
        : `${(1 / speedUp).toFixed(1)}x slower. With day keys this small (${encoding}) merging them costs less than the cover's look-up round trips; the cover pays off on dense keys and long ranges.`
    }`,
    `The count's look-ups (the as-of and zone reads, the touched and pending sets, EXISTS of the candidate weeks and months) add round trips of their own: over ${plural(shortest.days, "day")} the count's median is ${ms(shortest.methods.count.p50Ms)} ms against ${ms(shortest.methods.cover.p50Ms)} ms for its PFCOUNT alone (${lookups >= 0 ? `${ms(lookups)} ms more` : `${ms(-lookups)} ms less, within the noise`}).`,
    speedUp >= 1
      ? "For an operator: dashboards can ask for long ranges freely once the scheduled rollup has run; a range whose weeks or months the rollup has not merged yet falls back to day keys and costs what the every-day line shows."
      : "For an operator: at this size the look-ups dominate; measure at the full size (`npm run bench:report`) before drawing conclusions.",
  ];
  const worst = result.api.reduce<ApiCaseSummary | undefined>(
    (a, b) => (a === undefined || b.ratio > a.ratio ? b : a),
    undefined,
  );
  const slowest = result.api.reduce<ApiCaseSummary | undefined>(
    (a, b) => (a === undefined || b.app.p99Ms > a.app.p99Ms ? b : a),
    undefined,
  );
  const apiSentences =
    worst && slowest
      ? [
          `The app's p50 is at most ${worst.ratio.toFixed(2)}x the limit's (${worst.name}); what it adds over the limit is its routing, validation, cover and JSON, on the same event loop as its Redis client.`,
          `The slowest p99 is ${ms(slowest.app.p99Ms)} ms (${slowest.name}) with ${s.api.concurrency} requests in flight on this machine's shared cores: an API instance's latency is its Redis round trips plus its CPU per request, so add instances (or Lambda concurrency) before requests queue.`,
        ]
      : [];
  const apiPart =
    result.api.length === 0
      ? ""
      : `
The read API over HTTP, \`npm run bench:api\`'s measurement on the same data (its one site): the app (\`createApiRuntime(env).app\` on @hono/node-server, as \`npm run cli -- api\` serves it) against the limit (a bare \`node:http\` server sending the very Redis commands the app sends for the URL, recorded from the app and checked against INFO commandstats, then a precomputed body). A child process keeps ${s.api.concurrency} keep-alive requests in flight; per case and server ${fmtInt(s.api.warmup)} warm-up requests, then ${fmtInt(s.api.requests)} timed in ${s.api.rounds} rounds, the order alternating.

| case | Redis round trips | answer | app p50 / p99 ms | limit p50 / p99 ms | app / limit p50 | app req/s | limit req/s |
| --- | --- | --- | --- | --- | --- | --- | --- |
${apiRows.join("\n")}

![Read API latency per request: the app against the limit](charts/reads-api.svg)

${apiSentences.join(" ")}
`;
  return `## Reads

How long a count takes as its range grows: the real read path (\`countAnswer\`, what the API's \`/count\` and the CLI's \`count\` run: the as-of and zone look-ups, the range's days in the rollup's touched and pending sets, EXISTS of each week and month inside the range, then one PFCOUNT over the fewest keys that cover the range) against one PFCOUNT over every day key of the range. Every range ends ${result.today}; the answers were checked equal first.

| range | count's cover, keys | count, median / p99 ms | its PFCOUNT alone, median ms | day keys | PFCOUNT of every day, median / p99 ms | every day / count, median |
| --- | --- | --- | --- | --- | --- | --- |
${rangeRows.join("\n")}

![Count latency against range length](charts/reads.svg)

${rangeSentences.join(" ")}
${apiPart}
${targets.map(targetLine).join("\n")}

How it was measured: a Redis Cluster of 3 primaries on this machine, new for the run; one site with ${fmtInt(s.days)} days of history (${result.firstDay} to ${result.today}), ${fmtInt(s.usersPerDay)} events a day by users drawn from ${fmtInt(s.users)} (seed ${s.seed}), ${fmtInt(result.events)} events through the consumer handler in ${result.loadSeconds.toFixed(1)} s, then one scheduled rollup through the state machine (${fmtInt(result.rollupItems)} site-periods merged in ${result.rollupSeconds.toFixed(1)} s); retention raised to ${result.retention.days} days, ${result.retention.weeks} weeks and ${result.retention.months} months so nothing expires during the run; the day keys are ${encoding}. The range latencies are one call at a time on an auto-pipelining ioredis Cluster client with the API's connection settings, timed from the call to its answer: per range and method ${fmtInt(s.warmup)} warm-up calls, then ${fmtInt(s.samples)} timed in ${s.rounds} rounds, the order of the methods alternating; p50 and p99 are nearest-rank percentiles. ${result.seconds.toFixed(0)} s.`;
}

export interface ReadsOutput extends ExperimentOutput {
  /** The measurements behind the block (for tests and callers that want the numbers). */
  readonly result: ReadsResult;
}

export async function readsExperiment(
  sizes: ReadsSizes,
  context: ExperimentContext,
  options: ReadsOptions = {},
): Promise<ReadsOutput> {
  const result = await measureReads(sizes, context, options);
  const targets = readsTargets(result);
  return {
    id: "reads",
    markdown: readsMarkdown(result, targets),
    figures: readsFigures(result),
    targets,
    result,
  };
}
