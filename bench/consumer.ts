/**
 * Throughput of the Kinesis consumer against a real local Redis Cluster (3 primaries), compared
 * with a naive baseline and with a practical limit:
 *
 *   handler  createConsumerHandler(env) called with Lambda-shaped batches, as Lambda would.
 *   naive    what the original Python consumer did: per record, PFADD then EXPIREAT, each
 *            awaited before the next, on an ioredis Cluster without auto-pipelining.
 *   limit    (i) base64-decoding + JSON.parse of the batch alone (no validation), plus (ii) the
 *            very commands the handler sends (computed beforehand from pre-parsed input), sent
 *            by a bare auto-pipelining ioredis Cluster, all issued and then awaited together.
 *            Both HLL families: `uv:` (user ids) and `ev:` (event identities).
 *
 * What the events family costs is measured in the same rounds: planBatch timed with and
 * without the `ev:` commands (its `benchWithoutEventsFamily` option, which exists for this),
 * and the limit's round trips (ii) timed again with the visitors-only commands of that plan.
 *
 * Handler and limit batches are interleaved (the order alternates) on the same data, so machine
 * noise hits both alike; each reports the median over the timed batches after a warm-up. The
 * naive baseline is too slow for whole batches in every round: its records (--naive-batches
 * batches' worth) are cut into one slice per round, run after the handler and the limit, and
 * each slice's time is scaled to a whole batch. Its round-trip latency swings a lot with how the
 * scheduler places the processes on the CPUs (from ~35 to ~90 µs per command on a 2-core box),
 * so spreading it over the run gives a far steadier figure than one or two batches in a row.
 *
 * Two of the generator's five sites have a time zone in the registry (BENCH_ZONES, one east
 * and one far east of UTC), so the handler takes both paths: UTC arithmetic and the zone
 * calendars. The limit's commands are planned with the same zones, so both write the same keys.
 *
 * Keys accumulate over the run (no FLUSHALL between phases): numeric site ids cannot be made
 * unique per run, and there are only ~75 keys (5 sites × 3 UTC days × (1 + 4 events)). After
 * the warm-up every key is a dense HLL, whose PFADD cost does not depend on how many ids it
 * holds, which is also the steady state in production; flushing would instead put sparse→dense
 * conversions into some batches and not others. The cluster is new for every run anyway.
 *
 * This file is the measurement, with no side effect when imported: `startConsumerBench` starts
 * the cluster, the handler and the clients once; `measureRounds` runs the rounds above at one
 * batch size (it can be called again on the same bench at another size, as the report's
 * consumer experiment, bench/report/consumer.ts, does, joining the calls by `concatRounds`);
 * `consumerRates` turns rounds into records/s and the two target ratios; `consumerBenchText` is
 * what the command line prints.
 *
 * The command line: npm run bench:consumer -- [--batches N] [--batch-size N] [--users N]
 *                   [--seed N] [--warmup N] [--naive-batches N]   (bench/consumer.bench.ts)
 * It is a measurement, not a test: a missed target is reported, the exit code stays 0.
 */

import type { KinesisStreamEvent } from "aws-lambda";
import { Cluster } from "ioredis";
import { type ClickPayload, generateEvents } from "../cli/generator.js";
import {
  type HllCommand,
  planBatch,
  type StreamRecord,
  sendCommand,
} from "../functions/consumer/ingest.js";
import { EventParser, isEventShape } from "../functions/domain/events.js";
import { TIME_ZONES_KEY } from "../functions/domain/keys.js";
import { expiresAtSeconds, type RetentionSettings } from "../functions/domain/periods.js";
import { loadConsumerRuntimeConfig } from "../functions/domain/runtime-env.js";
import { type ZoneCalendar, ZoneCalendars } from "../functions/domain/time-zones.js";
import { kinesisEvent } from "../local/kinesis-event.js";
import {
  type BenchOptions,
  benchClients,
  type Closer,
  fmtInt,
  fmtMs,
  max,
  median,
  min,
  silencePowertools,
  startBenchCluster,
  table,
  timeAsync,
  timeSync,
} from "./lib.js";

/** Issue 14's targets at 10,000-record batches: limit time / handler time at most this… */
export const TARGET_WITHIN_LIMIT = 1.3;
/** …and handler throughput at least this many times the naive baseline's. */
export const TARGET_OVER_NAIVE = 15;

/** Generator sites given a zone in the registry; the other three stay UTC. */
export const BENCH_ZONES: Readonly<Record<string, string>> = {
  "715": "Europe/Paris",
  "283": "Pacific/Kiritimati",
};

/** The zones the handler reads from the registry, for planning the limit's commands. */
export type CalendarOf = (siteId: string) => ZoneCalendar | undefined;

/** A calendar lookup for BENCH_ZONES (its calendars are built on first use and cached). */
export function benchCalendars(): CalendarOf {
  const calendars = new ZoneCalendars({ pastDays: 70, futureDays: 2 });
  return (siteId) => {
    const zone = BENCH_ZONES[siteId];
    return zone === undefined ? undefined : calendars.forZone(zone, Date.now());
  };
}

export interface Batch {
  readonly payloads: ClickPayload[];
  readonly event: KinesisStreamEvent;
  /** What the handler sends: both families. */
  readonly commands: readonly HllCommand[];
  /** The same plan without the `ev:` family: what the consumer sent before it existed. */
  readonly visitorsOnly: readonly HllCommand[];
}

/** The records as the handler builds them, record ids included (the `ev:` elements). */
export function streamRecords(event: KinesisStreamEvent): StreamRecord[] {
  return event.Records.map((r) => ({
    sequenceNumber: r.kinesis.sequenceNumber,
    partitionKey: r.kinesis.partitionKey,
    data: r.kinesis.data,
    eventSourceArn: r.eventSourceARN,
    eventId: r.eventID,
  }));
}

/** Sends the planned commands all at once, as the handler does, on a bare client. */
export function sendAll(redis: Cluster, commands: readonly HllCommand[]): Promise<unknown> {
  return Promise.all(commands.map((c) => sendCommand(redis, c)));
}

/** Part (i) of the limit: what any consumer must do to read the records at all. */
export function decodeAll(event: KinesisStreamEvent): unknown[] {
  const records = event.Records;
  const out: unknown[] = new Array(records.length);
  for (let i = 0; i < records.length; i++) {
    const record = records[i];
    if (record === undefined) continue;
    const data = record.kinesis.data;
    out[i] = JSON.parse(Buffer.from(data, "base64").toString("utf8"));
  }
  return out;
}

/**
 * The original consumer's approach: one PFADD and one EXPIREAT per record, each awaited. It
 * writes only the site's daily key, half the HLL writes the handler does, which favours it.
 */
export async function naiveIngest(
  redis: Cluster,
  event: KinesisStreamEvent,
  retention: RetentionSettings,
): Promise<void> {
  const expiry = new Map<string, number>();
  for (const record of event.Records) {
    // The generator's own records: the baseline trusts their shape, as the original did.
    const e = JSON.parse(Buffer.from(record.kinesis.data, "base64").toString("utf8")) as {
      user_id: string;
      site_id: number;
      event_time: string;
    };
    const day = e.event_time.slice(0, 10);
    let at = expiry.get(day);
    if (at === undefined) {
      at = expiresAtSeconds({ kind: "day", label: day }, retention);
      expiry.set(day, at);
    }
    const key = `uv:{site_id=${e.site_id}}:${day}`;
    await redis.pfadd(key, e.user_id);
    await redis.expireat(key, at);
  }
}

/** Times the handler's own parts on one batch, outside the handler (medians taken later). */
export interface ParseTimings {
  parseData: number;
  validate: number;
  schema: number;
  plan: number;
  /** planBatch without the `ev:` family. */
  planVisitorsOnly: number;
}

export function timeParsing(
  batch: Batch,
  decoded: readonly unknown[],
  retention: RetentionSettings,
  round: number,
  calendarOf: CalendarOf,
): ParseTimings {
  const nowMs = Date.now();
  const records = batch.event.Records;
  let bad = 0;
  const parseDataMs = timeSync(() => {
    const parser = new EventParser({ nowMs, retentionDays: retention.days });
    for (const r of records) if ("reason" in parser.decode(r.kinesis.data, r.eventID)) bad++;
  });
  const validateMs = timeSync(() => {
    const parser = new EventParser({ nowMs, retentionDays: retention.days });
    for (let i = 0; i < decoded.length; i++) {
      const id = records[i]?.eventID ?? "";
      if ("reason" in parser.check(decoded[i], id)) bad++;
    }
  });
  const schemaMs = timeSync(() => {
    for (const value of decoded) {
      if (!isEventShape(value)) bad++;
    }
  });
  if (bad > 0) throw new Error(`${bad} generated records failed validation`);
  const stream = streamRecords(batch.event);
  // Both plans, in an order that alternates over the rounds, so neither always runs second.
  const both = () => timeSync(() => planBatch(stream, { nowMs, retention, calendarOf }));
  const visitorsOnly = () =>
    timeSync(() =>
      planBatch(stream, { nowMs, retention, calendarOf, benchWithoutEventsFamily: true }),
    );
  let planMs: number;
  let planVisitorsOnlyMs: number;
  if (round % 2 === 0) {
    planMs = both();
    planVisitorsOnlyMs = visitorsOnly();
  } else {
    planVisitorsOnlyMs = visitorsOnly();
    planMs = both();
  }
  return {
    parseData: parseDataMs,
    validate: validateMs,
    schema: schemaMs,
    plan: planMs,
    planVisitorsOnly: planVisitorsOnlyMs,
  };
}

/** The limit's two parts on one batch, and the decoded records (for timeParsing). */
export interface LimitTiming {
  readonly decode: number;
  readonly send: number;
  readonly decoded: unknown[];
}

/** A started benchmark: one cluster, one handler and the two bare clients, for any batch size. */
export interface ConsumerBench {
  /** The cluster's primaries. */
  readonly ports: readonly number[];
  readonly retention: RetentionSettings;
  readonly calendarOf: CalendarOf;
  /** The next `size` generated events as a Kinesis batch (commands not planned yet). */
  makeBatch(size: number): Batch;
  /** The batch with the commands the handler's planBatch makes for it, computed untimed. */
  withCommands(batch: Batch): Batch;
  /** Milliseconds of one handler invocation; throws if it reports a failed record. */
  runHandler(batch: Batch): Promise<number>;
  /** The limit: (i) decode and (ii) the batch's planned commands on the pipelining client. */
  runLimit(batch: Batch): Promise<LimitTiming>;
  /**
   * The limit's round trips (ii) again, with both families and with visitors only, order
   * alternating: both replay a batch already stored, so they differ only by the `ev:` commands.
   */
  runSendPair(batch: Batch, round: number): Promise<{ both: number; visitorsOnly: number }>;
  /** The naive baseline on these records (untimed here). */
  runNaive(event: KinesisStreamEvent): Promise<void>;
}

export interface ConsumerBenchSetup {
  readonly seed: number;
  /** Population the user ids are drawn from. */
  readonly users: number;
}

/**
 * Starts a Redis Cluster (3 primaries), registers BENCH_ZONES, creates the consumer handler and
 * the two bare clients; everything is stopped by the closers.
 */
export async function startConsumerBench(
  setup: ConsumerBenchSetup,
  closers: Closer[],
): Promise<ConsumerBench> {
  const startedAt = Date.now();
  // Events over the last 2 UTC days (today and yesterday), as in a live stream.
  const events = generateEvents({
    seed: setup.seed,
    users: setup.users,
    days: 2,
    endMs: startedAt,
  });
  const makeBatch = (size: number): Batch => {
    const payloads: ClickPayload[] = [];
    for (let i = 0; i < size; i++) payloads.push(events.next().value);
    return { payloads, event: kinesisEvent(payloads), commands: [], visitorsOnly: [] };
  };
  const calendarOf = benchCalendars();

  const { cluster, env } = await startBenchCluster(closers);
  const { retention } = loadConsumerRuntimeConfig(env);
  const zoneSetup = new Cluster([{ host: "127.0.0.1", port: cluster.port }]);
  await zoneSetup.hset(TIME_ZONES_KEY, BENCH_ZONES);
  zoneSetup.disconnect();
  // The limit sends exactly the commands the handler's planBatch makes, computed untimed.
  const withCommands = (b: Batch): Batch => {
    const stream = streamRecords(b.event);
    const nowMs = Date.now();
    const plan = planBatch(stream, { nowMs, retention, calendarOf });
    if (plan.rejected.length > 0) throw new Error("generated records were rejected");
    const visitorsOnly = planBatch(stream, {
      nowMs,
      retention,
      calendarOf,
      benchWithoutEventsFamily: true,
    });
    return { ...b, commands: plan.commands, visitorsOnly: visitorsOnly.commands };
  };

  silencePowertools();
  const { createConsumerHandler } = await import("../functions/consumer/handler.js");
  const handler = createConsumerHandler(env);
  closers.push(() => handler.close());
  const { pipelined: limitClient, naive: naiveClient } = benchClients(cluster, closers);

  return {
    ports: cluster.ports,
    retention,
    calendarOf,
    makeBatch,
    withCommands,
    async runHandler(batch) {
      let failures = 0;
      const ms = await timeAsync(async () => {
        failures = (await handler(batch.event)).batchItemFailures.length;
      });
      if (failures > 0) throw new Error("the handler reported a failed batch");
      return ms;
    },
    async runLimit(batch) {
      let decoded: unknown[] = [];
      const decode = timeSync(() => {
        decoded = decodeAll(batch.event);
      });
      const send = await timeAsync(() => sendAll(limitClient, batch.commands));
      return { decode, send, decoded };
    },
    async runSendPair(batch, round) {
      const both = () => timeAsync(() => sendAll(limitClient, batch.commands));
      const visitorsOnly = () => timeAsync(() => sendAll(limitClient, batch.visitorsOnly));
      if (round % 2 === 0) {
        const b = await both();
        return { both: b, visitorsOnly: await visitorsOnly() };
      }
      const v = await visitorsOnly();
      return { both: await both(), visitorsOnly: v };
    },
    runNaive: (event) => naiveIngest(naiveClient, event, retention),
  };
}

export interface RoundsOptions {
  /** Timed rounds (batches of the handler and of the limit, interleaved). */
  readonly batches: number;
  readonly batchSize: number;
  /** Untimed warm-up batches of the handler and of the limit. */
  readonly warmup: number;
  /** Records the naive baseline runs in all, cut into one slice per round. */
  readonly naiveRecords: number;
  /**
   * Also time the handler's parts and the events family's cost in every round (the command
   * line's breakdown tables); the report's experiment leaves them out.
   */
  readonly parts: boolean;
}

/** Per-batch milliseconds of every round (the naive ones scaled to a whole batch). */
export interface ConsumerRounds {
  readonly batchSize: number;
  readonly handlerMs: number[];
  readonly decodeMs: number[];
  readonly sendMs: number[];
  readonly limitMs: number[];
  readonly naiveMs: number[];
  /** Records of each naive slice. */
  readonly naiveSlice: number;
  /** Empty unless `parts`. */
  readonly parse: ParseTimings[];
  readonly commands: readonly HllCommand[];
  readonly visitorsOnly: readonly HllCommand[];
  /** Empty unless `parts`. */
  readonly pairBothMs: number[];
  readonly pairVisitorsOnlyMs: number[];
}

/**
 * The warm-up, then `batches` rounds at one batch size: handler and limit on the same batch
 * (order alternating), the parts when asked, then a naive slice scaled to a whole batch.
 */
export async function measureRounds(
  bench: ConsumerBench,
  opts: RoundsOptions,
  progress: (text: string) => void,
): Promise<ConsumerRounds> {
  // Warm-up: connections, slot maps, JIT; every key becomes a dense HLL.
  for (let i = 0; i < opts.warmup; i++) {
    progress(`warm-up ${i + 1}/${opts.warmup}`);
    const batch = bench.withCommands(bench.makeBatch(opts.batchSize));
    await bench.runHandler(batch);
    await bench.runLimit(batch);
  }
  await bench.runNaive(bench.makeBatch(Math.min(500, opts.batchSize)).event);
  const naiveSlice = Math.max(1, Math.ceil(opts.naiveRecords / opts.batches));

  const handlerMs: number[] = [];
  const decodeMs: number[] = [];
  const sendMs: number[] = [];
  const limitMs: number[] = [];
  const parse: ParseTimings[] = [];
  const naiveMs: number[] = [];
  const pairBothMs: number[] = [];
  const pairVisitorsOnlyMs: number[] = [];
  let commandsPerBatch: readonly HllCommand[] = [];
  let visitorsOnlyPerBatch: readonly HllCommand[] = [];
  const what = opts.parts
    ? "handler, limit, the ev: family's cost and a naive slice"
    : "handler, limit and a naive slice";
  for (let i = 0; i < opts.batches; i++) {
    progress(`round ${i + 1}/${opts.batches}: ${what}`);
    const batch = bench.withCommands(bench.makeBatch(opts.batchSize));
    commandsPerBatch = batch.commands;
    visitorsOnlyPerBatch = batch.visitorsOnly;
    let limit: LimitTiming;
    if (i % 2 === 0) {
      handlerMs.push(await bench.runHandler(batch));
      limit = await bench.runLimit(batch);
    } else {
      limit = await bench.runLimit(batch);
      handlerMs.push(await bench.runHandler(batch));
    }
    decodeMs.push(limit.decode);
    sendMs.push(limit.send);
    limitMs.push(limit.decode + limit.send);
    if (opts.parts) {
      parse.push(timeParsing(batch, limit.decoded, bench.retention, i, bench.calendarOf));
      const pair = await bench.runSendPair(batch, i);
      pairBothMs.push(pair.both);
      pairVisitorsOnlyMs.push(pair.visitorsOnly);
    }
    const slice = bench.makeBatch(naiveSlice).event;
    const sliceMs = await timeAsync(() => bench.runNaive(slice));
    naiveMs.push((sliceMs * opts.batchSize) / naiveSlice);
  }
  progress("");
  return {
    batchSize: opts.batchSize,
    handlerMs,
    decodeMs,
    sendMs,
    limitMs,
    naiveMs,
    naiveSlice,
    parse,
    commands: commandsPerBatch,
    visitorsOnly: visitorsOnlyPerBatch,
    pairBothMs,
    pairVisitorsOnlyMs,
  };
}

/** Rounds of one batch size measured in several calls, as if measured in one. */
export function concatRounds(parts: readonly ConsumerRounds[]): ConsumerRounds {
  const first = parts[0];
  if (first === undefined) throw new RangeError("no rounds to join");
  for (const p of parts) {
    if (p.batchSize !== first.batchSize || p.naiveSlice !== first.naiveSlice) {
      throw new RangeError("rounds of different batch or naive slice sizes cannot be joined");
    }
  }
  const all = <T>(pick: (r: ConsumerRounds) => readonly T[]) => parts.flatMap((p) => pick(p));
  const last = parts.at(-1) ?? first;
  return {
    batchSize: first.batchSize,
    handlerMs: all((r) => r.handlerMs),
    decodeMs: all((r) => r.decodeMs),
    sendMs: all((r) => r.sendMs),
    limitMs: all((r) => r.limitMs),
    naiveMs: all((r) => r.naiveMs),
    naiveSlice: first.naiveSlice,
    parse: all((r) => r.parse),
    commands: last.commands,
    visitorsOnly: last.visitorsOnly,
    pairBothMs: all((r) => r.pairBothMs),
    pairVisitorsOnlyMs: all((r) => r.pairVisitorsOnlyMs),
  };
}

/** Records/s of each contender (from its median batch time) and the two target ratios. */
export interface ConsumerRates {
  readonly handler: number;
  readonly limit: number;
  readonly naive: number;
  /** Handler time / limit time = limit records/s / handler records/s (target ≤ 1.3). */
  readonly withinLimit: number;
  /** Naive time / handler time = handler records/s / naive records/s (target ≥ 15). */
  readonly overNaive: number;
  /** Naive time / limit time. */
  readonly limitOverNaive: number;
}

export function consumerRates(r: ConsumerRounds): ConsumerRates {
  const rps = (ms: number) => (r.batchSize / ms) * 1000;
  const handler = median(r.handlerMs);
  const limit = median(r.limitMs);
  const naive = median(r.naiveMs);
  return {
    handler: rps(handler),
    limit: rps(limit),
    naive: rps(naive),
    withinLimit: handler / limit,
    overNaive: naive / handler,
    limitOverNaive: naive / limit,
  };
}

/** What `npm run bench:consumer` prints for one run (rounds measured with `parts`). */
export function consumerBenchText(
  opts: BenchOptions,
  r: ConsumerRounds,
  ports: readonly number[],
): string {
  const out: string[] = [];
  const log = (line: string) => out.push(line);
  const n = opts.batchSize;
  const rps = (ms: number) => (n / ms) * 1000;
  const handler = median(r.handlerMs);
  const rates = consumerRates(r);
  const count = (test: (c: HllCommand) => boolean) => r.commands.filter(test).length;
  const named =
    (name: HllCommand["name"], prefix = "") =>
    (c: HllCommand) =>
      c.name === name && c.key.startsWith(prefix);

  log("sketchstream consumer benchmark");
  log(`  node ${process.version}, redis cluster of 3 primaries on 127.0.0.1:${ports.join(",")}`);
  log(
    `  batch ${fmtInt(n)} records; users ${fmtInt(opts.users)}; seed ${opts.seed}; ${opts.warmup} warm-up batches`,
  );
  log(
    `  ${opts.batches} rounds: handler and limit on the same batch (order alternating), then a naive slice`,
  );
  log(
    `  sites in zones: ${Object.entries(BENCH_ZONES)
      .map(([site, zone]) => `${site} ${zone}`)
      .join(", ")}; the other generator sites UTC`,
  );
  log(
    `  naive: ${opts.naiveBatches} batch(es) of records as ${r.naiveMs.length} slices of ${fmtInt(r.naiveSlice)}, each scaled to a batch`,
  );
  const zadd = (mode: "GT" | "LT") => (c: HllCommand) => c.name === "asOf" && c.mode === mode;
  log(
    `  commands per batch (last batch): ${count(named("pfadd"))} PFADD (${count(named("pfadd", "uv:"))} uv:, ${count(named("pfadd", "ev:"))} ev:), ${count(named("expireat"))} EXPIREAT NX (${count(named("expireat", "uv:"))} uv:, ${count(named("expireat", "ev:"))} ev:), ${count(named("sadd"))} SADD, ${count(zadd("GT"))} ZADD GT (asOf consumer), ${count(zadd("LT"))} ZADD LT (events-since)`,
  );
  log("");

  const row = (name: string, ms: number[], unit = "") => {
    const medianMs = median(ms);
    return [
      name,
      unit === "" ? String(ms.length) : `${ms.length} ${unit}`,
      fmtMs(medianMs),
      fmtMs(min(ms)),
      fmtMs(max(ms)),
      fmtInt(rps(medianMs)),
    ];
  };
  log(
    table(
      ["contender", "batches", "median ms/batch", "min ms", "max ms", "records/s"],
      [
        row("handler (createConsumerHandler)", r.handlerMs),
        row("limit = (i) + (ii)", r.limitMs),
        row("  (i) base64 + JSON.parse only", r.decodeMs),
        row("  (ii) grouped commands, auto-pipelined", r.sendMs),
        row("naive (PFADD, EXPIREAT per record)", r.naiveMs, "slices"),
      ],
    ),
  );
  log("");

  const naiveMean = r.naiveMs.reduce((a, b) => a + b, 0) / r.naiveMs.length;
  log(
    `naive over all slices (total records / total time): ${fmtInt(rps(naiveMean))} records/s; its round trips are bimodal on a busy 2-core box, so the median can jump between runs`,
  );
  log("");
  const { overNaive, limitOverNaive, withinLimit } = rates;
  const verdict = (ok: boolean) => (ok ? "PASS" : "MISS");
  log(`handler / naive: ${overNaive.toFixed(1)}× the naive throughput`);
  log(`limit / naive:   ${limitOverNaive.toFixed(1)}× the naive throughput`);
  log(`handler is within ${withinLimit.toFixed(2)}× of the limit (handler time / limit time)`);
  log("");
  log("targets:");
  log(
    `  handler within ${TARGET_WITHIN_LIMIT.toFixed(2)}× of the limit: ${withinLimit.toFixed(2)}×  ${verdict(withinLimit <= TARGET_WITHIN_LIMIT)}`,
  );
  log(
    `  handler ≥ ${TARGET_OVER_NAIVE}× the naive baseline:  ${overNaive.toFixed(1)}×  ${verdict(overNaive >= TARGET_OVER_NAIVE)}`,
  );
  log("");

  const p = (k: keyof ParseTimings) => median(r.parse.map((t) => t[k]));
  const send = median(r.sendMs);
  const decode = median(r.decodeMs);
  const parseAll = p("parseData");
  const validate = p("validate");
  const schema = p("schema");
  const plan = p("plan");
  const share = (ms: number) => `${((ms / handler) * 100).toFixed(0)}%`;
  const perRecord = (ms: number) => ((ms / n) * 1000).toFixed(2);
  const brow = (name: string, ms: number) => [name, fmtMs(ms), perRecord(ms), share(ms)];
  log("where the handler's time goes (medians per batch, measured separately; ≈ = by difference):");
  log(
    table(
      ["part", "ms/batch", "µs/record", "of handler"],
      [
        brow("handler, whole invocation", handler),
        brow("  planBatch (decode, validate, group)", plan),
        brow("    EventParser.decode × batch", parseAll),
        brow("      ≈ base64 + UTF-8 checks, decode, JSON.parse", parseAll - validate),
        brow("        ≈ of which the checks (vs limit i)", parseAll - validate - decode),
        brow("      EventParser.check on decoded objects", validate),
        brow("        compiled JSON Schema check (ajv)", schema),
        brow("        ≈ rest (time, window, site/event checks)", validate - schema),
        brow("    ≈ grouping into keys and commands", plan - parseAll),
        brow("  Redis round trips (limit part ii)", send),
        brow("  ≈ rest (handler − plan − round trips)", handler - plan - send),
      ],
    ),
  );
  log("");

  // The events family's cost: the same batch planned and sent with and without it.
  const planVisitorsOnly = p("planVisitorsOnly");
  const pairBoth = median(r.pairBothMs);
  const pairVisitorsOnly = median(r.pairVisitorsOnlyMs);
  const crow = (name: string, both: number, visitorsOnly: number) => {
    const extra = both - visitorsOnly;
    return [name, fmtMs(both), fmtMs(visitorsOnly), fmtMs(extra), perRecord(extra), share(extra)];
  };
  log(
    `what the events family (ev:) costs (medians per batch of the same batches, each pair timed back to back, order alternating; ${r.commands.length} commands with it, ${r.visitorsOnly.length} without):`,
  );
  log(
    table(
      ["part", "both ms", "uv: only ms", "ev: ms", "ev: µs/record", "of handler"],
      [
        crow("planBatch (decode, validate, group)", plan, planVisitorsOnly),
        crow("Redis round trips (limit ii, replayed)", pairBoth, pairVisitorsOnly),
        crow("together", plan + pairBoth, planVisitorsOnly + pairVisitorsOnly),
      ],
    ),
  );
  return out.join("\n");
}

/** The whole command-line run: start, measure one batch size with the parts, and the text. */
export async function runConsumerBench(
  opts: BenchOptions,
  closers: Closer[],
  progress: (text: string) => void,
): Promise<string> {
  const bench = await startConsumerBench({ seed: opts.seed, users: opts.users }, closers);
  const rounds = await measureRounds(
    bench,
    {
      batches: opts.batches,
      batchSize: opts.batchSize,
      warmup: opts.warmup,
      naiveRecords: opts.naiveBatches * opts.batchSize,
      parts: true,
    },
    progress,
  );
  return consumerBenchText(opts, rounds, bench.ports);
}
