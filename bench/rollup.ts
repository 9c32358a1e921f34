/**
 * Throughput of the rollup against a real local Redis Cluster (3 primaries): a scheduled
 * incremental run of the real state machine, compared with a naive full recompute and with the
 * Redis server's own time for the merges. Every contender does the same work per site-period:
 * both HLL families (`uv:` visitors, `ev:` events), each merged only when its source day key
 * exists (an EXISTS first, as the rollup does so that PFMERGE never creates an empty key).
 *
 *   incremental  runRollupLocally({input: {}}): state-machines/rollup.asl.json run by
 *                aws-local-stepfunctions with the real createRollupHandlers, on a mid-month day
 *                whose only change since the last run is today's traffic. Site-periods merged =
 *                the execution's itemsMerged; wall time = the whole execution (plan, pages,
 *                finish).
 *   limit        the same merges (derived from the touched set beforehand, untimed) sent by
 *                a bare auto-pipelining ioredis Cluster, per chunk of (page size × Map
 *                concurrency) items: no state machine, no lock, no ZRANGE, no zones, no key
 *                building. Two ways, alternating which goes first from round to round:
 *                  commands  one EXISTS per distinct day key of both families, then PFMERGE +
 *                            EXPIREAT NX of each period key whose day exists (what the rollup
 *                            sent before it merged on the server);
 *                  script    the rollup's server-side merge (functions/rollup/merge-script.ts):
 *                            one script call per site and chunk, EVALSHA not auto-pipelined, as
 *                            the rollup's client sends it.
 *                The faster of the two is "the bare-client limit" the run is judged against.
 *   naive        a full recompute: every site and site event type in the site index, every week
 *                and month overlapping the history, for each family an EXISTS of the period's
 *                days and, when any exists, one PFMERGE of the period key from all of them, each
 *                awaited before the next, on an ioredis Cluster without auto-pipelining.
 *
 * Server time comes from `INFO commandstats` of every primary (after `CONFIG RESETSTAT` on each):
 * cmdstat_pfmerge usec summed over the primaries, and the busiest primary's share.
 *
 * Dates: "today" is a mid-month day (the latest 15th by default) and the history is the --days
 * days before it; the consumer and the rollup get a clock pinned to today 12:00 UTC that then
 * advances with real time. Redis expires keys by the real clock, so RETENTION_DAYS is raised
 * when the oldest day of history would otherwise expire before the run ends.
 *
 * One warm-up round (untimed, run exactly like the others) comes first: the first round after
 * the large catch-up run pays for its garbage and for compiling the incremental paths, which a
 * warm container has behind it.
 *
 * Targets (issue 13 and 14): the median round's incremental run within 1.2× of the bare-client
 * limit (the median over rounds of each round's incremental / limit, both measured in that
 * round), over at least 10^5 merges per round (the default 12,500 sites make 100,000), and at
 * least 3× faster than the naive full recompute at bringing every week and month up to date.
 *
 * The CLI is bench/rollup.bench.ts (`npm run bench:rollup`); the report (bench/report/rollup.ts)
 * runs measureRollup at several site counts.
 */

import { availableParallelism } from "node:os";
import { StateMachine } from "aws-local-stepfunctions";
import { Cluster, Redis } from "ioredis";
import * as v from "valibot";
import { type ClickPayload, mulberry32 } from "../cli/generator.js";
import { at } from "../functions/domain/arrays.js";
import {
  countingKey,
  everyGroupKey,
  METRICS,
  type Metric,
  parseSiteIndexMember,
} from "../functions/domain/keys.js";
import {
  addDays,
  DAY_MS,
  dayOf,
  dayStartMs,
  daysInPeriod,
  daysInRange,
  isDay,
  isoWeekOf,
  monthOf,
  type Period,
  type RetentionSettings,
} from "../functions/domain/periods.js";
import { DEFAULT_RETENTION, loadRuntimeConfig } from "../functions/domain/runtime-env.js";
import type { RollupHandlers } from "../functions/rollup/handler.js";
import { RollupOutputSchema } from "../functions/rollup/input.js";
import { mergeTouchedDaysOnServer } from "../functions/rollup/merge-script.js";
import {
  type MergeTarget,
  mergeTargets,
  type RollupOutput,
  scriptCallsOf,
} from "../functions/rollup/rollup.js";
import { runRollupLocally } from "../state-machines/local-runner.js";
import { renderRollupAsl } from "../state-machines/render.js";
import {
  benchClients,
  type Closer,
  dayPayloads,
  fmtInt,
  fmtMs,
  ingestThroughConsumer,
  median,
  parseBenchArgs,
  silencePowertools,
  startBenchCluster,
  table,
  timeAsync,
  timeSync,
} from "./lib.js";

export const TARGET_OVER_NAIVE = 3;
export const TARGET_WITHIN_LIMIT = 1.2;
/** Merges per round the limit target is judged over (issue 13). */
export const TARGET_MIN_MERGES = 100_000;
const BATCH = 10_000;

export interface RollupBenchOptions {
  readonly sites: number;
  readonly days: number;
  readonly today: string;
  readonly eventsPerDay: number;
  readonly rounds: number;
  /** Untimed rounds first, exactly like the timed ones: the steady state of a warm container. */
  readonly warmupRounds: number;
  readonly concurrency: number;
  readonly naiveMaxItems: number;
  readonly users: number;
  readonly seed: number;
}

export const ROLLUP_BENCH_DEFAULTS = {
  sites: 12_500,
  days: 8,
  rounds: 5,
  warmupRounds: 1,
  concurrency: 4,
  naiveMaxItems: 20_000,
  users: 100_000,
  seed: 42,
} as const;

const USAGE = `usage: npm run bench:rollup -- [options]
  --sites N            sites with traffic (default 12500: 100,000 merges a round)
  --days N             days of history before today (default 8)
  --today YYYY-MM-DD   the mid-month day of the incremental run (default: the latest 15th)
  --events-per-day N   events per site and day (default 1; each day's event types rotate)
  --rounds N           timed incremental rounds, each after a new slice of today's traffic
                       (default 5)
  --warmup-rounds N    untimed rounds before them, run the same way (default 1)
  --concurrency N      MaxConcurrency of the Map state (default 4, the dev stack's)
  --naive-max-items N  stop the naive recompute after N site-periods and extrapolate its time
                       to all of them (default 20000; 0 runs it whole)
  --users N            user population the ids are drawn from (default 100000)
  --seed N             PRNG seed (default 42)`;

/** The latest 15th of a month on or before the real date. */
export function latestMidMonth(nowMs: number): string {
  const today = dayOf(nowMs);
  const fifteenth = `${today.slice(0, 8)}15`;
  if (today >= fifteenth) return fifteenth;
  const d = new Date(dayStartMs(`${today.slice(0, 8)}01`) - DAY_MS);
  return `${dayOf(d.getTime()).slice(0, 8)}15`;
}

export function parseRollupOptions(argv: readonly string[]): RollupBenchOptions {
  const d = ROLLUP_BENCH_DEFAULTS;
  const { values, int } = parseBenchArgs(
    argv,
    {
      sites: { type: "string", default: String(d.sites) },
      days: { type: "string", default: String(d.days) },
      today: { type: "string" },
      "events-per-day": { type: "string", default: "1" },
      rounds: { type: "string", default: String(d.rounds) },
      "warmup-rounds": { type: "string", default: String(d.warmupRounds) },
      concurrency: { type: "string", default: String(d.concurrency) },
      "naive-max-items": { type: "string", default: String(d.naiveMaxItems) },
      users: { type: "string", default: String(d.users) },
      seed: { type: "string", default: String(d.seed) },
    },
    USAGE,
  );
  const today = values.today ?? latestMidMonth(Date.now());
  if (!isDay(today)) throw new RangeError(`--today=${today}: expected YYYY-MM-DD\n${USAGE}`);
  if (dayStartMs(today) > Date.now()) {
    throw new RangeError(`--today=${today} is in the future: Redis expires keys by the real clock`);
  }
  return {
    sites: int("sites", values.sites, 1),
    days: int("days", values.days, 1),
    today,
    eventsPerDay: int("events-per-day", values["events-per-day"], 1),
    rounds: int("rounds", values.rounds, 1),
    warmupRounds: int("warmup-rounds", values["warmup-rounds"], 0),
    concurrency: int("concurrency", values.concurrency, 1),
    naiveMaxItems: int("naive-max-items", values["naive-max-items"], 0),
    users: int("users", values.users, 1),
    seed: int("seed", values.seed, 0),
  };
}

/** Weeks and months that overlap a range (what a backfill of it recomputes). */
function periodsOverlapping(from: string, to: string): Period[] {
  const seen = new Map<string, Period>();
  for (const day of daysInRange(from, to)) {
    seen.set(isoWeekOf(day), { kind: "week", label: isoWeekOf(day) });
    seen.set(monthOf(day), { kind: "month", label: monthOf(day) });
  }
  return [...seen.values()];
}

/** The work items a scheduled plan makes of these touched-set members: the members. */
function workItemsOf(touched: readonly string[]): string[] {
  return [...new Set(touched)].sort();
}

// ---------------------------------------------------------------------------------------------
// Server-side time: INFO commandstats of every primary.

interface CmdStat {
  calls: number;
  usec: number;
}

type NodeStats = Map<string, CmdStat>;

function parseCommandStats(info: string): NodeStats {
  const stats: NodeStats = new Map();
  for (const line of info.split(/\r?\n/)) {
    const m = /^cmdstat_([^:]+):calls=(\d+),usec=(\d+)/.exec(line);
    const [, command, calls, usec] = m ?? [];
    if (command) stats.set(command, { calls: Number(calls), usec: Number(usec) });
  }
  return stats;
}

class ServerStats {
  constructor(private readonly primaries: readonly Redis[]) {}

  async reset(): Promise<void> {
    await Promise.all(this.primaries.map((p) => p.config("RESETSTAT")));
  }

  async read(): Promise<ServerSample> {
    const infos = await Promise.all(this.primaries.map((p) => p.info("commandstats")));
    return new ServerSample(infos.map(parseCommandStats));
  }
}

class ServerSample {
  constructor(readonly nodes: readonly NodeStats[]) {}

  /** Calls and usec of one command, summed over the primaries. */
  total(command: string): CmdStat {
    const sum = { calls: 0, usec: 0 };
    for (const n of this.nodes) {
      const s = n.get(command);
      if (s) {
        sum.calls += s.calls;
        sum.usec += s.usec;
      }
    }
    return sum;
  }

  /** usec of one command on the primary that spent the most on it. */
  busiest(command: string): number {
    return Math.max(0, ...this.nodes.map((n) => n.get(command)?.usec ?? 0));
  }

  /** Every command seen, summed over the primaries, most usec first. */
  commands(): [string, CmdStat][] {
    const names = new Set(this.nodes.flatMap((n) => [...n.keys()]));
    return [...names]
      .map((name): [string, CmdStat] => [name, this.total(name)])
      .sort((a, b) => b[1].usec - a[1].usec);
  }
}

/** Runs `fn`, returning its wall time and this process's CPU time meanwhile, in ms. */
async function measure(fn: () => Promise<unknown>): Promise<{ wallMs: number; cpuMs: number }> {
  const cpu = process.cpuUsage();
  const wallMs = await timeAsync(fn);
  const used = process.cpuUsage(cpu);
  return { wallMs, cpuMs: (used.user + used.system) / 1000 };
}

/** What runRollupLocally pays per execution before the first state: building the machine. */
function timeStateMachineConstruction(concurrency: number): number {
  const arn = "arn:aws:lambda:us-east-1:000000000000:function:sketchstream-local";
  const definition = JSON.parse(
    renderRollupAsl({
      PlanFunctionArn: `${arn}-plan`,
      MergeFunctionArn: `${arn}-merge`,
      FinishFunctionArn: `${arn}-finish`,
      MapMaxConcurrency: concurrency,
    }),
  );
  return timeSync(() => new StateMachine(definition));
}

// ---------------------------------------------------------------------------------------------
// Instrumented handlers: when each state's task ran, inside the state machine's wall time.

interface Span {
  readonly start: number;
  readonly end: number;
}

class HandlerTimings {
  plan: Span[] = [];
  merge: Span[] = [];
  finish: Span[] = [];
  pages = 0;
  pageSize = 0;
  items = 0;
}

function timedHandlers(inner: RollupHandlers, timings: () => HandlerTimings): RollupHandlers {
  const time = async <T>(into: (t: HandlerTimings) => Span[], fn: () => Promise<T>): Promise<T> => {
    const start = performance.now();
    try {
      return await fn();
    } finally {
      into(timings()).push({ start, end: performance.now() });
    }
  };
  return {
    plan: (event) =>
      time(
        (t) => t.plan,
        async () => {
          const out = await inner.plan(event);
          if (out.status === "ready") {
            const t = timings();
            t.pages = out.pages.length;
            t.pageSize = out.plan.pageSize;
            t.items = out.plan.items;
          }
          return out;
        },
      ),
    merge: (event) =>
      time(
        (t) => t.merge,
        () => inner.merge(event),
      ),
    finish: (event) =>
      time(
        (t) => t.finish,
        () => inner.finish(event),
      ),
    close: () => inner.close(),
  };
}

// ---------------------------------------------------------------------------------------------

export interface Measured {
  readonly name: string;
  readonly items: number;
  readonly wallMs: number;
  /** CPU time of this Node process (user + system) meanwhile: the client side's cost. */
  readonly cpuMs: number;
  readonly server: ServerSample;
  /** Set when only part of the work was run and the time to do all of it is extrapolated. */
  readonly totalItems?: number;
}

export interface IncrementalRound extends Measured {
  readonly timings: HandlerTimings;
  readonly output: RollupOutput;
  readonly buildMs: number;
  /** `new StateMachine(definition)` (it validates the ASL), timed apart. */
  readonly constructMs: number;
  /** The same merges as single commands on a bare pipelined client. */
  readonly limitCommands: Measured;
  /** The same merges as the rollup's script calls on a bare client. */
  readonly limitScript: Measured;
  /** Merges the limit sent per family: period keys whose touched day exists. */
  readonly mergesByMetric: Readonly<Record<Metric, number>>;
}

/** The faster of a round's two bare-client limits. */
export function bestLimit(round: IncrementalRound): Measured {
  return round.limitScript.wallMs <= round.limitCommands.wallMs
    ? round.limitScript
    : round.limitCommands;
}

/**
 * A scheduled page's merges as single commands on a bare client: an EXISTS per distinct day key,
 * then PFMERGE + EXPIREAT NX of each target whose day exists. Returns the merges sent per family.
 */
async function mergeWithCommands(
  client: Cluster,
  targets: readonly MergeTarget[],
  chunk: number,
): Promise<Record<Metric, number>> {
  const merges: Record<Metric, number> = { visitors: 0, events: 0 };
  for (let i = 0; i < targets.length; i += chunk) {
    const part = targets.slice(i, i + chunk);
    const days = [...new Set(part.flatMap((t) => t.days))];
    const found = await Promise.all(days.map((d) => client.exists(d)));
    const present = new Set(days.filter((_, j) => found[j] === 1));
    await Promise.all(
      part
        .filter((t) => t.days.some((d) => present.has(d)))
        .flatMap((t) => {
          merges[t.metric]++;
          return [client.pfmerge(t.key, ...t.days), client.expireat(t.key, t.expireAt, "NX")];
        }),
    );
  }
  return merges;
}

/**
 * A scheduled page's merges as the rollup sends them (merge-script.ts), on a bare client: per
 * chunk, one script call per site, all in flight together. Returns the merges per family.
 */
async function mergeWithScript(
  client: Cluster,
  targets: readonly MergeTarget[],
  chunk: number,
): Promise<Record<Metric, number>> {
  const merges: Record<Metric, number> = { visitors: 0, events: 0 };
  const metricOf = new Map(targets.map((t) => [t.key, t.metric]));
  for (let i = 0; i < targets.length; i += chunk) {
    const calls = scriptCallsOf(targets.slice(i, i + chunk));
    const results = await Promise.all(calls.map((call) => mergeTouchedDaysOnServer(client, call)));
    for (const [j, flags] of results.entries()) {
      for (const [k, merged] of flags.entries()) {
        const metric = metricOf.get(calls[j]?.[k]?.key ?? "");
        if (merged && metric) merges[metric]++;
      }
    }
  }
  return merges;
}

/** What measureRollup found: every round, the catch-up and the naive recompute. */
export interface RollupBenchResult {
  readonly opts: RollupBenchOptions;
  readonly ports: readonly number[];
  readonly retention: RetentionSettings;
  readonly historyDays: readonly string[];
  readonly historyEvents: number;
  readonly historyMs: number;
  readonly catchUp: { ms: number; output: RollupOutput; timings: HandlerTimings };
  readonly rounds: readonly IncrementalRound[];
  readonly naive: Measured;
  readonly periods: readonly Period[];
  readonly siteCount: number;
}

/**
 * Runs the benchmark on a cluster of its own (registered in `closers`): history through the real
 * consumer, an untimed catch-up run, then `rounds` timed rounds of today's traffic, each merged
 * by the state machine and then by both bare-client limits, and the naive recompute.
 */
export async function measureRollup(
  opts: RollupBenchOptions,
  closers: Closer[],
  progress: (text: string) => void = () => {},
): Promise<RollupBenchResult> {
  const realStart = Date.now();
  const todayStart = dayStartMs(opts.today);
  const pinnedNow = todayStart + 12 * 3_600_000;
  // The service's clock: today at noon, then advancing with real time.
  const clock = () => pinnedNow + (Date.now() - realStart);
  const firstDay = addDays(opts.today, -opts.days);
  const historyDays = daysInRange(firstDay, addDays(opts.today, -1));
  // Daily keys expire `retention` days after their day, by the real clock: keep the oldest one
  // alive for the whole run (with a week to spare).
  const needed = Math.ceil((realStart - dayStartMs(firstDay)) / DAY_MS) + 7;
  const retentionDays = Math.max(DEFAULT_RETENTION.days, needed);

  const { cluster, env } = await startBenchCluster(closers, {
    RETENTION_DAYS: String(retentionDays),
  });
  const { retention } = loadRuntimeConfig(env);

  silencePowertools();
  const { createConsumerHandler } = await import("../functions/consumer/handler.js");
  const { createRollupHandlers } = await import("../functions/rollup/handler.js");
  const consumer = createConsumerHandler(env, { now: clock });
  closers.push(() => consumer.close());
  let current = new HandlerTimings();
  const rollup = timedHandlers(createRollupHandlers(env, { now: clock }), () => current);
  closers.push(() => rollup.close());

  const { pipelined, naive: naiveClient } = benchClients(cluster, closers);
  // The rollup's client sends EVALSHA outside auto-pipelining (functions/adapters/redis.ts): so
  // does the script limit's.
  const scriptClient = new Cluster([{ host: cluster.host, port: cluster.port }], {
    enableAutoPipelining: true,
    autoPipeliningIgnoredCommands: ["eval", "evalsha"],
  });
  scriptClient.on("error", () => {});
  closers.push(() => scriptClient.disconnect());
  const primaries = cluster.ports.map((port) => new Redis({ host: cluster.host, port }));
  for (const p of primaries) {
    p.on("error", () => {});
    closers.push(() => p.disconnect());
  }
  const stats = new ServerStats(primaries);

  // --- history: --days days of traffic through the real consumer handler -------------------
  const random = mulberry32(opts.seed);
  const payloadsOf = (day: string, dayIndex: number, spanMs: number) =>
    dayPayloads(
      random,
      {
        day,
        dayIndex,
        spanMs,
        sites: opts.sites,
        eventsPerSite: opts.eventsPerDay,
        users: opts.users,
      },
      dayStartMs(day),
    );

  const ingest = (payloads: Iterable<ClickPayload>, label: (sent: number) => string) =>
    ingestThroughConsumer(consumer, payloads, {
      batchSize: BATCH,
      onSent: (sent) => progress(label(sent)),
    });

  const historyStart = performance.now();
  let historyEvents = 0;
  for (const [i, day] of historyDays.entries()) {
    historyEvents += await ingest(
      payloadsOf(day, i, DAY_MS - 1),
      (n) =>
        `history: day ${i + 1}/${historyDays.length} (${day}), ${fmtInt(historyEvents + n)} events`,
    );
  }
  const historyMs = performance.now() - historyStart;

  // --- bring every week and month up to date (untimed) --------------------------------------
  progress(`scheduled rollup of the whole history (untimed)…`);
  current = new HandlerTimings();
  const catchUpStart = performance.now();
  const catchUp = await runRollupLocally({
    env,
    input: {},
    startTime: new Date(clock()),
    handlers: rollup,
    mapMaxConcurrency: opts.concurrency,
  });
  const catchUpMs = performance.now() - catchUpStart;
  if (catchUp.status !== "SUCCEEDED") {
    throw new Error(`catch-up rollup ${catchUp.status}: ${catchUp.error}: ${catchUp.cause}`);
  }
  const catchUpOut = v.parse(RollupOutputSchema, catchUp.output);
  const catchUpTimings = current;

  // --- timed incremental rounds ---------------------------------------------------------------
  const rounds: IncrementalRound[] = [];
  const todayIndex = historyDays.length;
  // The first rounds after the large catch-up run pay for its garbage and for compiling the
  // incremental paths: the warm-up rounds run exactly like the others and are not kept.
  const total = opts.warmupRounds + opts.rounds;
  for (let i = 0; i < total; i++) {
    const warmup = i < opts.warmupRounds;
    const r = warmup ? i : i - opts.warmupRounds;
    const roundName = warmup
      ? `warm-up round ${r + 1}/${opts.warmupRounds}`
      : `round ${r + 1}/${opts.rounds}`;
    // Today's traffic so far (before noon): the only change since the last run.
    await ingest(
      payloadsOf(opts.today, todayIndex, 12 * 3_600_000 - 1),
      (n) => `${roundName}: today's traffic, ${fmtInt(n)} events`,
    );
    // Every bookkeeping group's touched set (keys.ts), one SMEMBERS each: they are in other slots.
    const touched = (
      await Promise.all(everyGroupKey("touched").map((key) => pipelined.smembers(key)))
    ).flat();
    const items = workItemsOf(touched);
    progress(`${roundName}: scheduled incremental rollup…`);
    current = new HandlerTimings();
    await stats.reset();
    let result: Awaited<ReturnType<typeof runRollupLocally>> | undefined;
    const { wallMs, cpuMs } = await measure(async () => {
      result = await runRollupLocally({
        env,
        input: {},
        startTime: new Date(clock()),
        handlers: rollup,
        mapMaxConcurrency: opts.concurrency,
      });
    });
    if (!result) throw new Error("no result");
    const server = await stats.read();
    if (result.status !== "SUCCEEDED") {
      throw new Error(`incremental rollup ${result.status}: ${result.error}: ${result.cause}`);
    }
    const output = v.parse(RollupOutputSchema, result.output);
    // Each touched site-day is merged into its week and its month.
    if (output.itemsMerged !== items.length * 2) {
      throw new Error(
        `the run merged ${output.itemsMerged} site-periods; the touched set implied ${items.length * 2}`,
      );
    }
    const leftovers = await Promise.all(
      [...everyGroupKey("pending"), ...everyGroupKey("work")].map((key) => pipelined.exists(key)),
    );
    if (leftovers.some((n) => n !== 0)) {
      throw new Error("the run left a pending or work set behind");
    }

    // The client-side work mergePage does to turn items into commands, timed on its own.
    let targets: MergeTarget[] = [];
    const buildMs = timeSync(() => {
      targets = mergeTargets(items, retention);
    });

    // The same merges on bare clients (idempotent: the keys do not change), both ways, the
    // first one alternating between rounds so that neither always runs on a warmer machine.
    // A chunk is the targets of as many pages as the Map runs at once (a scheduled item has
    // four: week and month, both families). Site-periods are targets per family.
    const sitePeriods = targets.length / METRICS.length;
    const chunk = Math.max(
      1,
      Math.round((current.pageSize * opts.concurrency * targets.length) / items.length),
    );
    const limits = new Map<string, { measured: Measured; merges: Record<Metric, number> }>();
    const ways = [
      { name: "commands", client: pipelined, send: mergeWithCommands },
      { name: "script", client: scriptClient, send: mergeWithScript },
    ];
    for (const way of r % 2 === 0 ? ways : [...ways].reverse()) {
      progress(`${roundName}: limit (the same merges, ${way.name})…`);
      await stats.reset();
      let merges: Record<Metric, number> = { visitors: 0, events: 0 };
      const time = await measure(async () => {
        merges = await way.send(way.client, targets, chunk);
      });
      limits.set(way.name, {
        measured: {
          name: `limit (${way.name})`,
          items: sitePeriods,
          ...time,
          server: await stats.read(),
        },
        merges,
      });
    }
    const commands = limits.get("commands");
    const script = limits.get("script");
    if (!commands || !script) throw new Error("a limit was not measured");
    if (JSON.stringify(commands.merges) !== JSON.stringify(script.merges)) {
      throw new Error(
        `the two limits merged different keys: commands ${JSON.stringify(commands.merges)}, script ${JSON.stringify(script.merges)}`,
      );
    }
    const mergesByMetric = commands.merges;
    if (warmup) continue;
    rounds.push({
      name: "incremental",
      items: sitePeriods,
      wallMs,
      cpuMs,
      server,
      timings: current,
      output,
      buildMs,
      constructMs: timeStateMachineConstruction(opts.concurrency),
      limitCommands: commands.measured,
      limitScript: script.measured,
      mergesByMetric,
    });
  }

  // --- naive full recompute -------------------------------------------------------------------
  const periods = periodsOverlapping(firstDay, opts.today);
  const siteCount = (
    await Promise.all(everyGroupKey("sites").map((key) => pipelined.scard(key)))
  ).reduce((n, c) => n + c, 0);
  const naiveTotal = siteCount * periods.length;
  const naiveLimit = opts.naiveMaxItems > 0 ? Math.min(opts.naiveMaxItems, naiveTotal) : naiveTotal;
  progress(
    `naive full recompute: ${fmtInt(naiveLimit)} site-periods, both families, one round trip per command…`,
  );
  await stats.reset();
  let naiveItems = 0;
  const naiveTime = await measure(async () => {
    const members: string[] = [];
    for (const key of everyGroupKey("sites")) members.push(...(await naiveClient.smembers(key)));
    for (const member of members) {
      const { siteId, event } = parseSiteIndexMember(member);
      for (const period of periods) {
        if (naiveItems >= naiveLimit) return;
        const periodDays = daysInPeriod(period);
        for (const metric of METRICS) {
          const days = periodDays.map((day) => countingKey(metric, siteId, day, event));
          if ((await naiveClient.exists(...days)) === 0) continue;
          await naiveClient.pfmerge(countingKey(metric, siteId, period.label, event), ...days);
        }
        naiveItems++;
        if (naiveItems % 10_000 === 0) {
          progress(`naive full recompute: ${fmtInt(naiveItems)}/${fmtInt(naiveLimit)}`);
        }
      }
    }
  });
  const naive: Measured = {
    name: "naive",
    items: naiveItems,
    ...naiveTime,
    server: await stats.read(),
    ...(naiveItems < naiveTotal ? { totalItems: naiveTotal } : {}),
  };
  progress("");

  return {
    opts,
    ports: cluster.ports,
    retention,
    historyDays,
    historyEvents,
    historyMs,
    catchUp: { ms: catchUpMs, output: catchUpOut, timings: catchUpTimings },
    rounds,
    naive,
    periods,
    siteCount,
  };
}

// ---------------------------------------------------------------------------------------------

const rate = (items: number, ms: number) => (items / ms) * 1000;
const usToMs = (us: number) => us / 1000;

/** Length of the union of spans: the time at least one of them was running. */
function covered(spans: readonly Span[]): number {
  const sorted = [...spans].sort((a, b) => a.start - b.start);
  let total = 0;
  let end = Number.NEGATIVE_INFINITY;
  for (const s of sorted) {
    if (s.end <= end) continue;
    total += s.end - Math.max(s.start, end);
    end = s.end;
  }
  return total;
}

const sum = (spans: readonly Span[]) => spans.reduce((n, s) => n + (s.end - s.start), 0);

/** The round whose wall time is the median (the lower middle one for an even count). */
function medianRound(rounds: readonly IncrementalRound[]): IncrementalRound {
  const sorted = [...rounds].sort((a, b) => a.wallMs - b.wallMs);
  return at(sorted, Math.floor((sorted.length - 1) / 2), "round");
}

function measuredRow(name: string, m: Measured): string[] {
  const pf = m.server.total("pfmerge");
  return [
    name,
    fmtInt(m.items),
    fmtMs(m.wallMs),
    fmtMs(m.cpuMs),
    fmtInt(rate(m.items, m.wallMs)),
    fmtInt(m.server.total("exists").calls),
    fmtInt(pf.calls),
    fmtInt(m.server.total("evalsha").calls + m.server.total("eval").calls),
    fmtMs(usToMs(pf.usec)),
    fmtMs(usToMs(m.server.busiest("pfmerge"))),
    pf.calls > 0 ? (pf.usec / pf.calls).toFixed(1) : "n/a",
  ];
}

/** The figures the targets are judged on, from every round. */
export interface RollupVerdict {
  readonly median: IncrementalRound;
  /** Each round's incremental wall / the faster bare-client limit of that round. */
  readonly withinLimitByRound: readonly number[];
  /** The median of withinLimitByRound. */
  readonly withinLimit: number;
  /** Each round's single-command limit wall / script limit wall (> 1: the script is faster). */
  readonly scriptGainByRound: readonly number[];
  readonly scriptGain: number;
  /** Merges (period keys whose day exists, both families) in the median round. */
  readonly merges: number;
  /** Naive full recompute (extrapolated when cut short) / the median incremental run. */
  readonly upToDate: number;
  readonly naiveFullMs: number;
  /** Site-periods per second, incremental / naive. */
  readonly throughput: number;
}

export function rollupVerdict(r: RollupBenchResult): RollupVerdict {
  const mid = medianRound(r.rounds);
  const withinLimitByRound = r.rounds.map((round) => round.wallMs / bestLimit(round).wallMs);
  const scriptGainByRound = r.rounds.map(
    (round) => round.limitCommands.wallMs / round.limitScript.wallMs,
  );
  const naiveRate = rate(r.naive.items, r.naive.wallMs);
  const naiveFullMs = r.naive.totalItems ? (r.naive.totalItems / naiveRate) * 1000 : r.naive.wallMs;
  return {
    median: mid,
    withinLimitByRound,
    withinLimit: median(withinLimitByRound),
    scriptGainByRound,
    scriptGain: median(scriptGainByRound),
    merges: mid.mergesByMetric.visitors + mid.mergesByMetric.events,
    upToDate: naiveFullMs / mid.wallMs,
    naiveFullMs,
    throughput: rate(mid.items, mid.wallMs) / naiveRate,
  };
}

export function printRollupReport(r: RollupBenchResult): void {
  const opts = r.opts;
  const verdict = rollupVerdict(r);
  const mid = verdict.median;
  const t = mid.timings;
  const weeks = r.periods.filter((p) => p.kind === "week").map((p) => p.label);
  const months = r.periods.filter((p) => p.kind === "month").map((p) => p.label);

  console.log("sketchstream rollup benchmark");
  console.log(
    `  node ${process.version}, redis cluster of 3 primaries on 127.0.0.1:${r.ports.join(",")}, ${availableParallelism()} CPUs shared by Node and the servers`,
  );
  console.log(
    `  ${fmtInt(opts.sites)} sites; history ${r.historyDays[0]}..${r.historyDays.at(-1)} (${r.historyDays.length} days, ${opts.eventsPerDay} event(s) per site-day, event types rotating); today ${opts.today}`,
  );
  console.log(
    `  history: ${fmtInt(r.historyEvents)} events through createConsumerHandler in ${(r.historyMs / 1000).toFixed(1)} s; retention ${r.retention.days} days`,
  );
  const cu = r.catchUp;
  console.log(
    `  catch-up scheduled run (untimed for the comparison): ${fmtInt(cu.output.itemsMerged ?? 0)} site-periods in ${cu.timings.pages} pages of ${fmtInt(cu.timings.pageSize)}, ${(cu.ms / 1000).toFixed(1)} s (${fmtInt(rate(cu.output.itemsMerged ?? 0, cu.ms))}/s)`,
  );
  console.log(
    `  incremental: ${r.rounds.length} timed round(s) after ${opts.warmupRounds} untimed warm-up round(s), each after ${fmtInt(opts.sites * opts.eventsPerDay)} events of today; Map MaxConcurrency ${opts.concurrency}`,
  );
  console.log(
    `  plan of the median round: ${fmtInt(t.items)} work items (touched site-days), ${t.pages} page(s) of ${fmtInt(t.pageSize)}; periods ${(mid.output.periods ?? []).join(", ")}; ${fmtInt(mid.output.sitesMerged ?? 0)} sites`,
  );
  console.log(
    `  period keys the median round merges into, by family (days that exist): uv: visitors ${fmtInt(mid.mergesByMetric.visitors)}, ev: events ${fmtInt(mid.mergesByMetric.events)}; each of the ${fmtInt(mid.items)} site-periods checks both families`,
  );
  console.log(
    `  naive: ${fmtInt(r.siteCount)} sites and site event types × ${r.periods.length} periods (weeks ${weeks[0]}..${weeks.at(-1)}, months ${months.join(", ")}) = ${fmtInt(r.siteCount * r.periods.length)} site-periods${r.naive.totalItems ? `; ran ${fmtInt(r.naive.items)} of them (--naive-max-items)` : ""}`,
  );
  console.log("");

  const header = [
    "contender",
    "site-periods",
    "wall ms",
    "client CPU ms",
    "site-periods/s",
    "EXISTSs",
    "PFMERGEs",
    "EVALSHAs",
    "server PFMERGE ms",
    "busiest primary ms",
    "µs/PFMERGE",
  ];
  console.log(
    table(header, [
      measuredRow("incremental (state machine, median round)", mid),
      measuredRow("limit: its merges as single commands, bare client", mid.limitCommands),
      measuredRow("limit: its merges as script calls, bare client", mid.limitScript),
      measuredRow("naive full recompute (1 round trip each)", r.naive),
    ]),
  );
  console.log("");
  if (r.rounds.length > 1) {
    console.log("every incremental round:");
    console.log(
      table(
        header,
        r.rounds.flatMap((round, i) => [
          measuredRow(`round ${i + 1} incremental`, round),
          measuredRow(`round ${i + 1} limit (commands)`, round.limitCommands),
          measuredRow(`round ${i + 1} limit (script)`, round.limitScript),
        ]),
      ),
    );
    console.log("");
  }

  const ratios = (values: readonly number[]) => values.map((x) => `${x.toFixed(2)}×`).join(", ");
  const verdictText = (ok: boolean) => (ok ? "PASS" : "MISS");
  console.log("ratios:");
  console.log(
    `  incremental / faster bare-client limit, each round: ${ratios(verdict.withinLimitByRound)}; median ${verdict.withinLimit.toFixed(2)}×`,
  );
  console.log(
    `  server-side merging: single-command limit / script limit, each round: ${ratios(verdict.scriptGainByRound)}; median ${verdict.scriptGain.toFixed(2)}× (${verdict.scriptGain > 1 ? "the script is faster: the rollup keeps it" : "the script is slower"})`,
  );
  console.log(
    `  time to bring every week and month up to date: naive full recompute ${fmtMs(verdict.naiveFullMs)} ms${r.naive.totalItems ? " (extrapolated)" : ""} / median incremental run ${fmtMs(mid.wallMs)} ms = ${verdict.upToDate.toFixed(1)}×`,
  );
  console.log(
    `  site-periods merged per second: incremental / naive = ${verdict.throughput.toFixed(2)}× (a rate per item: it does not count that the incremental run merges ${((mid.items / (r.siteCount * r.periods.length)) * 100).toFixed(1)}% of the site-periods)`,
  );
  console.log("");
  console.log("targets:");
  console.log(
    `  incremental within ${TARGET_WITHIN_LIMIT}× of the bare-client limit (median of ${r.rounds.length} rounds, ${fmtInt(verdict.merges)} merges each${verdict.merges < TARGET_MIN_MERGES ? `, fewer than the ${fmtInt(TARGET_MIN_MERGES)} the target asks` : ""}): ${verdict.withinLimit.toFixed(2)}×  ${verdictText(verdict.withinLimit <= TARGET_WITHIN_LIMIT)}`,
  );
  console.log(
    `  incremental ≥ ${TARGET_OVER_NAIVE}× the naive full recompute (time to be up to date): ${verdict.upToDate.toFixed(1)}×  ${verdictText(verdict.upToDate >= TARGET_OVER_NAIVE)}`,
  );
  console.log("");

  // Where the incremental run's time goes.
  const wall = mid.wallMs;
  const plan = sum(t.plan);
  const mergeSpan = covered(t.merge);
  const mergeSum = sum(t.merge);
  const finish = sum(t.finish);
  const tasks = covered([...t.plan, ...t.merge, ...t.finish]);
  const pageMs = t.merge.map((s) => s.end - s.start);
  const share = (ms: number) => `${((ms / wall) * 100).toFixed(0)}%`;
  const brow = (name: string, ms: number) => [name, fmtMs(ms), share(ms)];
  console.log("where the median incremental run's time goes (≈ = by difference):");
  console.log(
    table(
      ["part", "ms", "of wall"],
      [
        brow("whole execution (runRollupLocally)", wall),
        brow("  Plan task (lock, take touched, SSCAN, ZADD)", plan),
        brow(`  MergePage tasks, time any was running (${t.merge.length} pages)`, mergeSpan),
        brow(
          `    sum over pages (median ${fmtMs(median(pageMs))} ms/page, concurrency ${opts.concurrency})`,
          mergeSum,
        ),
        brow("    building keys from items (parse, daysInPeriod, key names)", mid.buildMs),
        brow(
          "    limit: the same merges as single commands, bare client",
          mid.limitCommands.wallMs,
        ),
        brow("    limit: the same merges as script calls, bare client", mid.limitScript.wallMs),
        brow("  Finish task", finish),
        brow("  ≈ state machine between tasks (runner, ASL, JSONPath)", wall - tasks),
        brow("    new StateMachine(definition), validating the ASL, timed apart", mid.constructMs),
        brow("  client CPU (this Node process: runner, handlers, ioredis)", mid.cpuMs),
      ],
    ),
  );
  console.log("");
  console.log(
    "server time by command in the median incremental round (INFO commandstats, all primaries):",
  );
  const cmds = mid.server.commands();
  const totalUsec = cmds.reduce((n, [, s]) => n + s.usec, 0);
  console.log(
    table(
      ["command", "calls", "server ms", "µs/call"],
      [
        ...cmds.map(([name, s]) => [
          name,
          fmtInt(s.calls),
          fmtMs(usToMs(s.usec)),
          s.calls > 0 ? (s.usec / s.calls).toFixed(1) : "n/a",
        ]),
        ["all", "", fmtMs(usToMs(totalUsec)), ""],
      ],
    ),
  );
  console.log(
    "server time is commandstats' time inside redis-server per command (commands a script calls are counted under their own names, and again in the script's evalsha): on a box with fewer CPUs than processes, preemption under load inflates it (compare µs/PFMERGE of the naive run, one command at a time)",
  );
}
