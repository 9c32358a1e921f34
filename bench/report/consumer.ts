/**
 * The consumer's records/s against batch size, for the report: the consumer benchmark's three
 * contenders (bench/consumer.ts: the handler, the naive per-record baseline and the practical
 * limit) measured at several batch sizes in one run, on one Redis Cluster of 3 primaries, with
 * the bench's own code and its own interleaving: at a batch size, warm-up batches, then rounds
 * of handler and limit on the same batch (order alternating), each followed by a naive slice
 * scaled to a whole batch; records/s from each contender's median batch time. The run goes
 * `passes` times through the batch sizes (largest first), each time with a share of every
 * size's rounds, so that a change in the machine's load (other work on a shared box) hits
 * every size alike. The rounds at a batch size are enough to time `recordsPerSize` records,
 * within [minRounds, maxRounds]; the naive baseline runs at most `naiveRecords` records per
 * batch size and at most one batch per round. The bench's breakdown of the handler's time and
 * of the events family's cost is left out here (`npm run bench:consumer` prints it).
 *
 * Issue 14's targets are judged at the largest batch size of the run (10,000 records, Lambda's
 * largest Kinesis batch, in the default sizes): the limit's records/s at most 1.3 times the
 * handler's, and the handler's at least 15 times the naive baseline's.
 */

import {
  type ConsumerRates,
  type ConsumerRounds,
  concatRounds,
  consumerRates,
  measureRounds,
  startConsumerBench,
  TARGET_OVER_NAIVE,
  TARGET_WITHIN_LIMIT,
} from "../consumer.js";
import { type Closer, median } from "../lib.js";
import type { Figure } from "./charts.js";
import { fmtInt } from "./stats.js";
import {
  type ExperimentContext,
  type ExperimentOutput,
  type TargetResult,
  targetLine,
} from "./types.js";

export interface ConsumerSizes {
  /** Records per Kinesis batch, one point of each line per size (ascending). */
  readonly batchSizes: readonly number[];
  /** Timed rounds at a batch size: enough for this many records, within the bounds below. */
  readonly recordsPerSize: number;
  readonly minRounds: number;
  readonly maxRounds: number;
  /**
   * The run goes through every batch size this many times (largest first each time), a share
   * of each size's rounds per pass, so that a change in the machine's load over the run hits
   * every batch size alike instead of bending the curves.
   */
  readonly passes: number;
  /** Untimed warm-up batches of the handler and the limit at each batch size, in each pass. */
  readonly warmup: number;
  /** Records the naive baseline runs at each batch size (at most one batch per round). */
  readonly naiveRecords: number;
  /** Population the generator draws user ids from, and its seed. */
  readonly users: number;
  readonly seed: number;
}

export const CONSUMER_DEFAULT: ConsumerSizes = {
  batchSizes: [100, 300, 1_000, 3_000, 10_000],
  recordsPerSize: 600_000,
  minRounds: 60,
  maxRounds: 300,
  passes: 4,
  warmup: 2,
  naiveRecords: 60_000,
  users: 100_000,
  seed: 42,
};

export const CONSUMER_SMALL: ConsumerSizes = {
  batchSizes: [100, 1_000],
  recordsPerSize: 3_000,
  minRounds: 5,
  maxRounds: 10,
  passes: 2,
  warmup: 1,
  naiveRecords: 500,
  users: 10_000,
  seed: 42,
};

/** Issue 14 states the targets at this batch size. */
export const CONSUMER_TARGET_BATCH = 10_000;

export interface ConsumerPoint {
  readonly batchSize: number;
  readonly rounds: number;
  /** Records of each naive slice, and in all. */
  readonly naiveSlice: number;
  readonly naiveRecords: number;
  /** Median milliseconds per batch. */
  readonly handlerMs: number;
  readonly limitMs: number;
  readonly naiveMs: number;
  readonly rates: ConsumerRates;
  /** Commands the handler sends for a batch of this size (the last one). */
  readonly commands: number;
}

export interface ConsumerResult {
  readonly sizes: ConsumerSizes;
  readonly points: readonly ConsumerPoint[];
  readonly seconds: number;
}

/** Timed rounds at one batch size, in all passes (a whole number of rounds per pass). */
export function roundsAt(sizes: ConsumerSizes, batchSize: number): number {
  const wanted = Math.ceil(sizes.recordsPerSize / batchSize);
  const rounds = Math.min(sizes.maxRounds, Math.max(sizes.minRounds, wanted));
  return Math.ceil(rounds / sizes.passes) * sizes.passes;
}

export async function measureConsumer(
  sizes: ConsumerSizes,
  context: ExperimentContext,
): Promise<ConsumerResult> {
  if (sizes.batchSizes.length === 0) throw new RangeError("no batch sizes to measure");
  const started = performance.now();
  // What this run starts, stopped once: at its end (so the experiments after it have the CPU)
  // or by the runner's closers on an interrupt or a failure.
  const own: Closer[] = [];
  let closed: Promise<void> | undefined;
  const close = () => {
    closed ??= (async () => {
      const errors: unknown[] = [];
      for (const c of own.reverse()) {
        try {
          await c();
        } catch (err) {
          errors.push(err);
        }
      }
      if (errors.length > 0) throw errors[0];
    })();
    return closed;
  };
  context.closers.push(close);
  try {
    context.progress("consumer: starting a Redis Cluster…");
    const bench = await startConsumerBench({ seed: sizes.seed, users: sizes.users }, own);
    // Largest first in each pass: the first pass's warm-up is the bench's own, and the smaller
    // batches then write into keys the larger ones filled, as a production cluster's keys are.
    const order = [...sizes.batchSizes].sort((a, b) => b - a);
    const measured = new Map<number, ConsumerRounds[]>(order.map((size) => [size, []]));
    for (let pass = 1; pass <= sizes.passes; pass++) {
      for (const batchSize of order) {
        const rounds = roundsAt(sizes, batchSize);
        const perPass = rounds / sizes.passes;
        const naive = Math.min(sizes.naiveRecords, rounds * batchSize);
        const label = `consumer, pass ${pass}/${sizes.passes}, ${fmtInt(batchSize)}-record batches`;
        const r = await measureRounds(
          bench,
          {
            batches: perPass,
            batchSize,
            warmup: sizes.warmup,
            naiveRecords: Math.ceil(naive / sizes.passes),
            parts: false,
          },
          (text) => context.progress(text === "" ? "" : `${label}: ${text}`),
        );
        measured.get(batchSize)?.push(r);
      }
    }
    const points = order.map((batchSize): ConsumerPoint => {
      const r = concatRounds(measured.get(batchSize) ?? []);
      return {
        batchSize,
        rounds: r.handlerMs.length,
        naiveSlice: r.naiveSlice,
        naiveRecords: r.naiveSlice * r.naiveMs.length,
        handlerMs: median(r.handlerMs),
        limitMs: median(r.limitMs),
        naiveMs: median(r.naiveMs),
        rates: consumerRates(r),
        commands: r.commands.length,
      };
    });
    points.sort((a, b) => a.batchSize - b.batchSize);
    return { sizes, points, seconds: (performance.now() - started) / 1000 };
  } finally {
    await close();
  }
}

/** The point the targets are judged at: the largest batch size of the run. */
export function targetPoint(result: ConsumerResult): ConsumerPoint {
  const top = result.points.reduce<ConsumerPoint | undefined>(
    (best, p) => (best === undefined || p.batchSize > best.batchSize ? p : best),
    undefined,
  );
  if (top === undefined) throw new RangeError("no batch size was measured");
  return top;
}

/** `1.23x` */
function times(ratio: number): string {
  return Number.isFinite(ratio) ? `${ratio.toFixed(2)}x` : "n/a";
}

export function consumerTargets(result: ConsumerResult): TargetResult[] {
  const top = targetPoint(result);
  const { handler, limit, naive, withinLimit, overNaive } = top.rates;
  const at = `${fmtInt(top.batchSize)}-record batches`;
  const note =
    top.batchSize === CONSUMER_TARGET_BATCH
      ? ""
      : `; issue 14 sets it at ${fmtInt(CONSUMER_TARGET_BATCH)}-record batches, this run's largest is ${fmtInt(top.batchSize)}`;
  return [
    {
      name: "consumer vs limit",
      pass: withinLimit <= TARGET_WITHIN_LIMIT,
      text: `at ${at} the practical limit does ${fmtInt(limit)} records/s, ${times(withinLimit)} the handler's ${fmtInt(handler)} (target <= ${TARGET_WITHIN_LIMIT.toFixed(1)}x${note})`,
    },
    {
      name: "consumer vs naive",
      pass: overNaive >= TARGET_OVER_NAIVE,
      text: `at ${at} the handler does ${times(overNaive)} the naive baseline's ${fmtInt(naive)} records/s (target >= ${TARGET_OVER_NAIVE}x${note})`,
    },
  ];
}

/** The lines of the chart, in legend order. */
const CONTENDERS = [
  { key: "handler", label: "handler", color: "#1f4e79" },
  { key: "limit", label: "practical limit", color: "#54a24b" },
  { key: "naive", label: "naive, per record", color: "#e45756" },
] as const;

export function consumerFigures(result: ConsumerResult): Figure[] {
  const values = result.points.flatMap((p) =>
    CONTENDERS.map((c) => ({ batchSize: p.batchSize, rate: p.rates[c.key], contender: c.label })),
  );
  const rounds = result.points.map((p) => p.rounds);
  const roundsText =
    Math.min(...rounds) === Math.max(...rounds)
      ? `${fmtInt(rounds[0] ?? 0)} rounds`
      : `${fmtInt(Math.min(...rounds))}-${fmtInt(Math.max(...rounds))} rounds`;
  return [
    {
      file: "consumer.svg",
      title: "Consumer throughput against batch size",
      subtitle: [
        `Median of ${roundsText} per batch size, one local Redis Cluster (3 primaries).`,
        "Handler and limit alternate on the same batches; a naive slice follows each round.",
      ],
      spec: {
        width: 520,
        height: 300,
        data: { values },
        mark: { type: "line", point: { size: 50 }, strokeWidth: 2 },
        encoding: {
          x: {
            field: "batchSize",
            type: "quantitative",
            scale: { type: "log" },
            axis: {
              title: "records per batch (log scale)",
              values: result.points.map((p) => p.batchSize),
              format: ",d",
            },
          },
          y: {
            field: "rate",
            type: "quantitative",
            scale: { type: "log" },
            axis: { title: "records/s (log scale)", format: "~s" },
          },
          color: {
            field: "contender",
            type: "nominal",
            title: null,
            sort: CONTENDERS.map((c) => c.label),
            scale: {
              domain: CONTENDERS.map((c) => c.label),
              range: CONTENDERS.map((c) => c.color),
            },
          },
        },
      } as Figure["spec"],
    },
  ];
}

/** What larger batches bought the handler, against the naive consumer, in this run. */
function batchSizeSentence(
  first: ConsumerPoint,
  top: ConsumerPoint,
  naiveRates: readonly number[],
): string {
  const gain = top.rates.handler / first.rates.handler;
  const naive = `${fmtInt(Math.min(...naiveRates))} to ${fmtInt(Math.max(...naiveRates))} records/s`;
  if (gain > 1) {
    return `From ${fmtInt(first.batchSize)}- to ${fmtInt(top.batchSize)}-record batches the handler goes from ${fmtInt(first.rates.handler)} to ${fmtInt(top.rates.handler)} records/s (${times(gain)}) while the naive consumer measures ${naive} whatever the batch, since the handler's records share one round of grouped commands per batch and each naive record waits for its own two round trips: keep the event source mapping's batches large.`;
  }
  return `In this run the handler did not gain from larger batches (${fmtInt(first.rates.handler)} records/s at ${fmtInt(first.batchSize)}-record batches, ${fmtInt(top.rates.handler)} at ${fmtInt(top.batchSize)}), against ${naive} for the naive consumer, whose every record waits for its own two round trips.`;
}

export function consumerMarkdown(result: ConsumerResult, targets: readonly TargetResult[]): string {
  const { sizes, points } = result;
  const top = targetPoint(result);
  const first = points[0] ?? top;
  const rows = points.map(
    (p) =>
      `| ${fmtInt(p.batchSize)} | ${fmtInt(p.rounds)} | ${fmtInt(p.rates.handler)} | ${fmtInt(p.rates.limit)} | ${fmtInt(p.rates.naive)} | ${times(p.rates.withinLimit)} | ${times(p.rates.overNaive)} |`,
  );
  const naiveRates = points.map((p) => p.rates.naive);
  const slices = points.map((p) => p.naiveSlice);
  const sliceText =
    Math.min(...slices) === Math.max(...slices)
      ? fmtInt(Math.min(...slices))
      : `${fmtInt(Math.min(...slices))} to ${fmtInt(Math.max(...slices))}`;
  const passesText = sizes.passes === 1 ? "once" : `${fmtInt(sizes.passes)} times`;
  const sentences = [
    points.length > 1 ? batchSizeSentence(first, top, naiveRates) : "",
    `At ${fmtInt(top.batchSize)}-record batches the handler runs at ${Math.round((100 * top.rates.handler) / top.rates.limit)}% of the practical limit (the gap is what the handler does beyond decoding the records and sending the same commands: validating, grouping, its bookkeeping; \`npm run bench:consumer\` breaks it down) and ${times(top.rates.overNaive)} the naive consumer.`,
    "These are one process on this machine against a local cluster; in Lambda the rates scale with the function's CPU share, and a network round trip to the cluster (not measured here) costs the naive consumer two per record but the handler one round per batch.",
  ].filter((s) => s !== "");
  return `## Consumer

Records/s of the Kinesis consumer against the number of records per batch, three contenders measured side by side in one run by the consumer benchmark's own code (\`bench/consumer.ts\`):

- **handler**: \`createConsumerHandler(env)\` called with Lambda-shaped Kinesis batches, as Lambda calls it (validation, both HLL families \`uv:\` and \`ev:\`, ${fmtInt(top.commands)} grouped commands for a ${fmtInt(top.batchSize)}-record batch).
- **practical limit**: base64 + \`JSON.parse\` of the batch alone, plus the very commands the handler sends (planned beforehand, untimed) on a bare auto-pipelining ioredis Cluster client.
- **naive, per record**: what the original consumer did, \`PFADD\` then \`EXPIREAT\` for each record, each awaited (the daily \`uv:\` key only: half the handler's writes, which favours it).

| records per batch | rounds | handler records/s | limit records/s | naive records/s | limit / handler | handler / naive |
| --- | --- | --- | --- | --- | --- | --- |
${rows.join("\n")}

![Consumer throughput against batch size](charts/consumer.svg)

${sentences.join(" ")}

${targets.map(targetLine).join("\n")}

How it was measured: one Redis Cluster of 3 primaries on this machine, new for the run; generated events (seed ${sizes.seed}, ${fmtInt(sizes.users)} users, 5 sites of which 2 in time zones, the last 2 days). The run went ${passesText} through the batch sizes, largest first${sizes.passes > 1 ? ", so that a change in the machine's load hits every size alike" : ""}; ${sizes.passes > 1 ? "each time, " : ""}at each size, ${sizes.warmup} untimed warm-up batch${sizes.warmup === 1 ? "" : "es"}, then ${sizes.passes > 1 ? "its share of " : ""}the rounds (enough for ${fmtInt(sizes.recordsPerSize)} records per size, ${fmtInt(sizes.minRounds)} to ${fmtInt(sizes.maxRounds)}) of handler and limit on the same new batch, order alternating, each followed by a naive slice of ${sliceText} records whose time is scaled to a whole batch (at most ${fmtInt(sizes.naiveRecords)} naive records per batch size). Records/s is the batch size over each contender's median batch time; the ratios compare those medians. Keys accumulate over the run, so the smaller batches write into keys the larger ones already filled, as a production cluster's keys are. ${result.seconds.toFixed(0)} s.`;
}

export async function consumerExperiment(
  sizes: ConsumerSizes,
  context: ExperimentContext,
): Promise<ExperimentOutput> {
  const result = await measureConsumer(sizes, context);
  const targets = consumerTargets(result);
  return {
    id: "consumer",
    markdown: consumerMarkdown(result, targets),
    figures: consumerFigures(result),
    targets,
  };
}
