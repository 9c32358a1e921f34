/** Helpers of the consumer benchmark: timing, statistics, tables and the command-line options. */

import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type ParseArgsConfig, parseArgs } from "node:util";
import { Cluster } from "ioredis";
import { wholeNumberArg } from "../cli/args.js";
import {
  type ClickPayload,
  GENERATOR_EVENTS,
  generatorTime,
  generatorUserId,
} from "../cli/generator.js";
import { at } from "../functions/domain/arrays.js";
import { messageOf } from "../functions/domain/errors.js";
import { kinesisEvent } from "../local/kinesis-event.js";
import { type RunningRedisCluster, startRedisCluster } from "../local/redis-cluster.js";

/** Milliseconds `fn` takes (awaited). */
export async function timeAsync(fn: () => Promise<unknown>): Promise<number> {
  const start = performance.now();
  await fn();
  return performance.now() - start;
}

/** Milliseconds `fn` takes. */
export function timeSync(fn: () => unknown): number {
  const start = performance.now();
  fn();
  return performance.now() - start;
}

export function median(values: readonly number[]): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? at(sorted, mid) : (at(sorted, mid - 1) + at(sorted, mid)) / 2;
}

export function min(values: readonly number[]): number {
  return Math.min(...values);
}

export function max(values: readonly number[]): number {
  return Math.max(...values);
}

/** Right-aligned table with a header row and a rule under it. */
export function table(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const line = (cells: readonly string[]) =>
    cells
      .map((c, i) => (i === 0 ? c.padEnd(widths[i] ?? 0) : c.padStart(widths[i] ?? 0)))
      .join("  ");
  return [line(header), widths.map((w) => "-".repeat(w)).join("  "), ...rows.map(line)].join("\n");
}

export function fmtInt(n: number): string {
  return Number.isFinite(n) ? Math.round(n).toLocaleString("en-US") : "n/a";
}

export function fmtMs(n: number): string {
  return Number.isFinite(n) ? n.toFixed(1) : "n/a";
}

export interface BenchOptions {
  /** Timed batches of the handler and of the limit (interleaved). */
  readonly batches: number;
  readonly batchSize: number;
  /** Population the user ids are drawn from. */
  readonly users: number;
  readonly seed: number;
  /** Warm-up batches of the handler and of the limit, not timed. */
  readonly warmup: number;
  /** Batches' worth of records the naive baseline runs (slow: two round trips per record). */
  readonly naiveBatches: number;
}

const USAGE = `usage: npm run bench:consumer -- [options]
  --batches N        timed batches of the handler and of the limit (default 20)
  --batch-size N     Kinesis records per batch (default 10000)
  --users N          user population the ids are drawn from (default 100000)
  --seed N           PRNG seed (default 42)
  --warmup N         untimed warm-up batches per contender (default 2)
  --naive-batches N  batches' worth of records for the naive baseline, run in one slice per
                     round (default 2)`;

type FlagOptions = NonNullable<ParseArgsConfig["options"]>;

/**
 * A bench's flags (strict, no positionals): with --help or -h, prints the usage and exits;
 * otherwise the values and a parser of whole-number flags that fails with the usage.
 */
export function parseBenchArgs<T extends FlagOptions>(
  argv: readonly string[],
  options: T,
  usage: string,
): {
  values: ReturnType<
    typeof parseArgs<{ options: T; strict: true; allowPositionals: false }>
  >["values"];
  int: ReturnType<typeof wholeNumberFlag>;
} {
  if (argv.includes("--help") || argv.includes("-h")) {
    console.log(usage);
    process.exit(0);
  }
  const { values } = parseArgs({ args: [...argv], options, strict: true, allowPositionals: false });
  return { values, int: wholeNumberFlag(usage) };
}

export function parseOptions(argv: readonly string[]): BenchOptions {
  const { values, int } = parseBenchArgs(
    argv,
    {
      batches: { type: "string", default: "20" },
      "batch-size": { type: "string", default: "10000" },
      users: { type: "string", default: "100000" },
      seed: { type: "string", default: "42" },
      warmup: { type: "string", default: "2" },
      "naive-batches": { type: "string", default: "2" },
    },
    USAGE,
  );
  return {
    batches: int("batches", values.batches, 1),
    batchSize: int("batch-size", values["batch-size"], 1),
    users: int("users", values.users, 1),
    seed: int("seed", values.seed, 0),
    warmup: int("warmup", values.warmup, 0),
    naiveBatches: int("naive-batches", values["naive-batches"], 1),
  };
}

/** A parser of whole-number flags that fails with the flag, the bound and the usage text. */
export function wholeNumberFlag(
  usage: string,
): (name: string, text: string, least: number) => number {
  return (name, text, least) => {
    try {
      return wholeNumberArg(name, text, least, least);
    } catch (err) {
      throw new RangeError(`${messageOf(err)}\n${usage}`);
    }
  };
}

/**
 * A Redis Cluster of 3 primaries for a benchmark, stopped by the closers, and the functions'
 * environment pointing at it (with a quarantine file in a temporary directory).
 */
export async function startBenchCluster(
  closers: Closer[],
  extraEnv: Readonly<Record<string, string>> = {},
): Promise<{ cluster: RunningRedisCluster; env: Record<string, string> }> {
  progress("starting a Redis Cluster…");
  const cluster = await startRedisCluster();
  closers.push(() => cluster.stop());
  const qdir = await mkdtemp(join(tmpdir(), "sketchstream-bench-"));
  closers.push(() => rm(qdir, { recursive: true, force: true }));
  const env = {
    REDIS_ENDPOINT: cluster.endpoint,
    REDIS_CLUSTER: "true",
    REDIS_TLS: "false",
    REDIS_AUTH: "none",
    ...extraEnv,
    QUARANTINE_FILE: join(qdir, "quarantine.jsonl"),
  };
  return { cluster, env };
}

/**
 * The two clients the benchmarks compare with: auto-pipelined (the practical limit) and plain,
 * one command per round trip when awaited one at a time (the naive baseline).
 */
export function benchClients(
  cluster: RunningRedisCluster,
  closers: Closer[],
): { pipelined: Cluster; naive: Cluster } {
  const node = { host: cluster.host, port: cluster.port };
  const make = (enableAutoPipelining: boolean) => {
    const client = new Cluster([node], { enableAutoPipelining });
    client.on("error", () => {});
    closers.push(() => client.disconnect());
    return client;
  };
  return { pipelined: make(true), naive: make(false) };
}

/**
 * Keeps Powertools quiet in a benchmark: no EMF metrics on stdout, no log lines below CRITICAL.
 * Powertools reads these when a Logger or Metrics is constructed, which the handler modules do
 * as they are imported: call this first, then import the handlers dynamically (no static import
 * of a benchmark may load Powertools).
 */
export function silencePowertools(): void {
  process.env.POWERTOOLS_METRICS_DISABLED = "true";
  process.env.POWERTOOLS_LOG_LEVEL = "CRITICAL";
}

/** One status line on stderr, rewritten in place (only on a terminal); "" clears it. */
export function progress(text: string): void {
  if (process.stderr.isTTY) process.stderr.write(`\r\x1b[K${text}`);
}

export type Closer = () => Promise<void> | void;

/**
 * Runs a benchmark with cleanup: `run` registers closers (cluster, clients, temporary files) as
 * it creates things, and they run in reverse order when it ends, fails, or on SIGINT/SIGTERM.
 * A failure sets exit code 1; an interrupt exits 130 once everything is closed.
 */
export async function runWithCleanup(run: (closers: Closer[]) => Promise<void>): Promise<void> {
  const closers: Closer[] = [];
  let closed: Promise<void> | undefined;
  const close = () => {
    closed ??= (async () => {
      for (const c of closers.reverse()) {
        try {
          await c();
        } catch (err) {
          console.error("cleanup:", err);
        }
      }
    })();
    return closed;
  };
  let interrupted = false;
  const onSignal = (signal: NodeJS.Signals) => {
    interrupted = true;
    progress("");
    console.error(`\n${signal}: stopping the Redis Cluster…`);
    void close().finally(() => process.exit(130));
  };
  process.once("SIGINT", onSignal);
  process.once("SIGTERM", onSignal);
  try {
    await run(closers);
  } catch (err) {
    // After a signal the cluster is going away under the run: its errors are expected.
    if (!interrupted) {
      progress("");
      console.error(err);
      process.exitCode = 1;
    }
  } finally {
    await close();
    process.removeListener("SIGINT", onSignal);
    process.removeListener("SIGTERM", onSignal);
  }
}

/** A consumer handler, as far as loading a bench's data needs it. */
export type BenchConsumer = (
  event: ReturnType<typeof kinesisEvent>,
) => Promise<{ batchItemFailures: readonly unknown[] }>;

/**
 * Sends payloads through the consumer in batches of `batchSize`, two batches in flight (one's
 * grouping overlaps the other's round trips); throws the first failure. Returns how many.
 */
export async function ingestThroughConsumer(
  consumer: BenchConsumer,
  payloads: Iterable<ClickPayload>,
  options: { readonly batchSize: number; readonly onSent?: (sent: number) => void },
): Promise<number> {
  let sent = 0;
  let batch: ClickPayload[] = [];
  let failure: unknown;
  const inFlight = new Set<Promise<void>>();
  const send = (records: ClickPayload[]) => {
    const p: Promise<void> = consumer(kinesisEvent(records))
      .then((res) => {
        if (res.batchItemFailures.length > 0) throw new Error("the consumer failed a batch");
      })
      .catch((err: unknown) => {
        failure ??= err;
      })
      .finally(() => inFlight.delete(p));
    inFlight.add(p);
    sent += records.length;
    options.onSent?.(sent);
  };
  for (const payload of payloads) {
    batch.push(payload);
    if (batch.length === options.batchSize) {
      send(batch);
      batch = [];
      while (inFlight.size >= 2) await Promise.race(inFlight);
      if (failure !== undefined) throw failure;
    }
  }
  if (batch.length > 0) send(batch);
  await Promise.all(inFlight);
  if (failure !== undefined) throw failure;
  return sent;
}

/** What `dayPayloads` generates: which day, and how much traffic on it. */
export interface DayTraffic {
  readonly day: string;
  /** The day's index in the history: event types rotate with it. */
  readonly dayIndex: number;
  /** Events fall in [start of day, start + spanMs). */
  readonly spanMs: number;
  /** Sites 1 … sites. */
  readonly sites: number;
  readonly eventsPerSite: number;
  /** Users are drawn from a population of this size. */
  readonly users: number;
}

/**
 * One day's generator events, site by site, drawn from `random` (mulberry32): each site gets
 * `eventsPerSite` events of users from the population, at random times within the span, event
 * types rotating with the site, the day and the event's index. The rollup and read benches load
 * their history with it.
 */
export function* dayPayloads(
  random: () => number,
  traffic: DayTraffic,
  dayStartMs: number,
): Generator<ClickPayload> {
  for (let site = 1; site <= traffic.sites; site++) {
    for (let k = 0; k < traffic.eventsPerSite; k++) {
      yield {
        user_id: generatorUserId(Math.floor(random() * traffic.users)),
        site_id: site,
        event: at(GENERATOR_EVENTS, (site + traffic.dayIndex + k) % GENERATOR_EVENTS.length),
        sku: `sku-${String(Math.floor(random() * 10_000)).padStart(4, "0")}`,
        amount: 1 + Math.floor(random() * 10),
        event_time: generatorTime(dayStartMs + Math.floor(random() * traffic.spanMs)),
      };
    }
  }
}
