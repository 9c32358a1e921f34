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
 *   limit        the very commands that run issues (derived from the touched set beforehand,
 *                untimed): per chunk of (page size × Map concurrency) items, one EXISTS per
 *                distinct day key of both families, then PFMERGE + EXPIREAT NX of each period
 *                key whose day exists, sent by a bare auto-pipelining ioredis Cluster: no state
 *                machine, no lock, no ZRANGE, no key building. Shows what the merges cost on
 *                their own.
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
 * Usage: npm run bench:rollup -- [--sites N] [--days N] [--today YYYY-MM-DD] [--rounds N] …
 * It is a measurement, not a test: a missed target is reported, the exit code stays 0.
 */

import { availableParallelism } from "node:os";
import { StateMachine } from "aws-local-stepfunctions";
import { type Cluster, Redis } from "ioredis";
import * as v from "valibot";
import {
  type ClickPayload,
  GENERATOR_EVENTS,
  generatorTime,
  generatorUserId,
  mulberry32,
} from "../cli/generator.js";
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
import {
  type MergeTarget,
  mergeTargets,
  type RollupOutput,
  scheduledItemsOf,
} from "../functions/rollup/rollup.js";
import { runRollupLocally } from "../state-machines/local-runner.js";
import { renderRollupAsl } from "../state-machines/render.js";
import {
  benchClients,
  type Closer,
  fmtInt,
  fmtMs,
  ingestThroughConsumer,
  median,
  parseBenchArgs,
  progress,
  runWithCleanup,
  startBenchCluster,
  table,
  timeAsync,
  timeSync,
} from "./lib.js";

const TARGET_OVER_NAIVE = 3;
const TARGET_WITHIN_SERVER = 1.3;
const BATCH = 10_000;

interface RollupBenchOptions {
  readonly sites: number;
  readonly days: number;
  readonly today: string;
  readonly eventsPerDay: number;
  readonly rounds: number;
  readonly concurrency: number;
  readonly naiveMaxItems: number;
  readonly users: number;
  readonly seed: number;
}

const USAGE = `usage: npm run bench:rollup -- [options]
  --sites N            sites with traffic (default 2000)
  --days N             days of history before today (default 45)
  --today YYYY-MM-DD   the mid-month day of the incremental run (default: the latest 15th)
  --events-per-day N   events per site and day (default 1; each day's event types rotate)
  --rounds N           timed incremental rounds, each after a new slice of today's traffic
                       (default 3)
  --concurrency N      MaxConcurrency of the Map state (default 4, the dev stack's)
  --naive-max-items N  stop the naive recompute after N site-periods and extrapolate its time
                       to all of them (default 0: run it whole)
  --users N            user population the ids are drawn from (default 100000)
  --seed N             PRNG seed (default 42)`;

/** The latest 15th of a month on or before the real date. */
function latestMidMonth(nowMs: number): string {
  const today = dayOf(nowMs);
  const fifteenth = `${today.slice(0, 8)}15`;
  if (today >= fifteenth) return fifteenth;
  const d = new Date(dayStartMs(`${today.slice(0, 8)}01`) - DAY_MS);
  return `${dayOf(d.getTime()).slice(0, 8)}15`;
}

function parseRollupOptions(argv: readonly string[]): RollupBenchOptions {
  const { values, int } = parseBenchArgs(
    argv,
    {
      sites: { type: "string", default: "2000" },
      days: { type: "string", default: "45" },
      today: { type: "string" },
      "events-per-day": { type: "string", default: "1" },
      rounds: { type: "string", default: "3" },
      concurrency: { type: "string", default: "4" },
      "naive-max-items": { type: "string", default: "0" },
      users: { type: "string", default: "100000" },
      seed: { type: "string", default: "42" },
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

/** The work items a scheduled plan makes of these touched-set members (deduplicated). */
function workItemsOf(touched: readonly string[]): string[] {
  return [...new Set(touched.flatMap(scheduledItemsOf))].sort();
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

interface Measured {
  readonly name: string;
  readonly items: number;
  readonly wallMs: number;
  /** CPU time of this Node process (user + system) meanwhile: the client side's cost. */
  readonly cpuMs: number;
  readonly server: ServerSample;
  /** Set when only part of the work was run and the time to do all of it is extrapolated. */
  readonly totalItems?: number;
}

interface IncrementalRound extends Measured {
  readonly timings: HandlerTimings;
  readonly output: RollupOutput;
  readonly buildMs: number;
  /** `new StateMachine(definition)` (it validates the ASL), timed apart. */
  readonly constructMs: number;
  readonly limit: Measured;
  /** Merges the limit sent per family: period keys whose touched day exists. */
  readonly mergesByMetric: Readonly<Record<Metric, number>>;
}

/**
 * The commands mergePage sends for a scheduled page, on a bare client: an EXISTS per distinct
 * day key, then PFMERGE + EXPIREAT NX of each target whose day exists. Returns the merges sent
 * per family.
 */
async function mergeTouchedLikeTheRollup(
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

async function run(opts: RollupBenchOptions, closers: Closer[]): Promise<void> {
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

  // Powertools reads these when a Logger or Metrics is constructed, which the handler modules
  // do as they are imported: set them first, then import the handlers dynamically.
  process.env.POWERTOOLS_METRICS_DISABLED = "true";
  process.env.POWERTOOLS_LOG_LEVEL = "CRITICAL";
  const { createConsumerHandler } = await import("../functions/consumer/handler.js");
  const { createRollupHandlers } = await import("../functions/rollup/handler.js");
  const consumer = createConsumerHandler(env, { now: clock });
  closers.push(() => consumer.close());
  let current = new HandlerTimings();
  const rollup = timedHandlers(createRollupHandlers(env, { now: clock }), () => current);
  closers.push(() => rollup.close());

  const { pipelined, naive: naiveClient } = benchClients(cluster, closers);
  const primaries = cluster.ports.map((port) => new Redis({ host: cluster.host, port }));
  for (const p of primaries) {
    p.on("error", () => {});
    closers.push(() => p.disconnect());
  }
  const stats = new ServerStats(primaries);

  // --- history: --days days of traffic through the real consumer handler -------------------
  const random = mulberry32(opts.seed);
  const payloadsOf = function* (day: string, dayIndex: number, spanMs: number) {
    const start = dayStartMs(day);
    for (let site = 1; site <= opts.sites; site++) {
      for (let k = 0; k < opts.eventsPerDay; k++) {
        yield {
          user_id: generatorUserId(Math.floor(random() * opts.users)),
          site_id: site,
          event: at(GENERATOR_EVENTS, (site + dayIndex + k) % GENERATOR_EVENTS.length),
          sku: `sku-${String(Math.floor(random() * 10_000)).padStart(4, "0")}`,
          amount: 1 + Math.floor(random() * 10),
          event_time: generatorTime(start + Math.floor(random() * spanMs)),
        } satisfies ClickPayload;
      }
    }
  };
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
  for (let r = 0; r < opts.rounds; r++) {
    // Today's traffic so far (before noon): the only change since the last run.
    await ingest(
      payloadsOf(opts.today, todayIndex, 12 * 3_600_000 - 1),
      (n) => `round ${r + 1}/${opts.rounds}: today's traffic, ${fmtInt(n)} events`,
    );
    // Every bookkeeping group's touched set (keys.ts), one SMEMBERS each: they are in other slots.
    const touched = (
      await Promise.all(everyGroupKey("touched").map((key) => pipelined.smembers(key)))
    ).flat();
    const items = workItemsOf(touched);
    progress(`round ${r + 1}/${opts.rounds}: scheduled incremental rollup…`);
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
    if (output.itemsMerged !== items.length) {
      throw new Error(
        `the run merged ${output.itemsMerged} items; the touched set implied ${items.length}`,
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

    // The same merges on a bare auto-pipelining client (idempotent: the keys do not change).
    progress(`round ${r + 1}/${opts.rounds}: limit (the same merges, pipelined)…`);
    // Targets come one per item and family: a chunk of items is twice as many targets.
    const chunk = Math.max(1, current.pageSize * opts.concurrency * METRICS.length);
    await stats.reset();
    let mergesByMetric: Record<Metric, number> = { visitors: 0, events: 0 };
    const limitTime = await measure(async () => {
      mergesByMetric = await mergeTouchedLikeTheRollup(pipelined, targets, chunk);
    });
    const limit: Measured = {
      name: "limit",
      items: items.length,
      ...limitTime,
      server: await stats.read(),
    };
    rounds.push({
      name: "incremental",
      items: output.itemsMerged ?? 0,
      wallMs,
      cpuMs,
      server,
      timings: current,
      output,
      buildMs,
      constructMs: timeStateMachineConstruction(opts.concurrency),
      limit,
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

  report(opts, {
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
  });
}

// ---------------------------------------------------------------------------------------------

interface Report {
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
    fmtMs(usToMs(pf.usec)),
    fmtMs(usToMs(m.server.busiest("pfmerge"))),
    pf.calls > 0 ? (pf.usec / pf.calls).toFixed(1) : "n/a",
    pf.usec > 0 ? `${(m.wallMs / usToMs(pf.usec)).toFixed(2)}×` : "n/a",
  ];
}

function report(opts: RollupBenchOptions, r: Report): void {
  const mid = medianRound(r.rounds);
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
    `  incremental: ${r.rounds.length} round(s), each after ${fmtInt(opts.sites * opts.eventsPerDay)} events of today; Map MaxConcurrency ${opts.concurrency}`,
  );
  console.log(
    `  plan of the median round: ${fmtInt(t.items)} items, ${t.pages} page(s) of ${fmtInt(t.pageSize)}; periods ${(mid.output.periods ?? []).join(", ")}; ${fmtInt(mid.output.sitesMerged ?? 0)} sites`,
  );
  console.log(
    `  period keys the median round merges into, by family (days that exist): uv: visitors ${fmtInt(mid.mergesByMetric.visitors)}, ev: events ${fmtInt(mid.mergesByMetric.events)}; each of the ${fmtInt(mid.items)} items checks both families`,
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
    "server PFMERGE ms",
    "busiest primary ms",
    "µs/PFMERGE",
    "wall/server",
  ];
  console.log(
    table(header, [
      measuredRow("incremental (state machine, median round)", mid),
      measuredRow("limit: its merges, bare pipelined client", mid.limit),
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
          measuredRow(`round ${i + 1} limit`, round.limit),
        ]),
      ),
    );
    console.log("");
  }

  // Every figure from the median round, so that they agree with its row in the table.
  const incWall = mid.wallMs;
  const incRate = rate(mid.items, mid.wallMs);
  const naiveRate = rate(r.naive.items, r.naive.wallMs);
  const naiveFullMs = r.naive.totalItems ? (r.naive.totalItems / naiveRate) * 1000 : r.naive.wallMs;
  const upToDate = naiveFullMs / incWall;
  const throughput = incRate / naiveRate;
  const pfUsec = mid.server.total("pfmerge").usec;
  const pfBusiest = mid.server.busiest("pfmerge");
  const withinServer = incWall / usToMs(pfUsec);
  const withinBusiest = incWall / usToMs(pfBusiest);
  const verdict = (ok: boolean) => (ok ? "PASS" : "MISS");

  console.log("ratios (the median incremental round):");
  console.log(
    `  time to bring every week and month up to date: naive full recompute ${fmtMs(naiveFullMs)} ms${r.naive.totalItems ? " (extrapolated)" : ""} / incremental run ${fmtMs(incWall)} ms = ${upToDate.toFixed(1)}×`,
  );
  console.log(
    `  site-periods merged per second: incremental ${fmtInt(incRate)} / naive ${fmtInt(naiveRate)} = ${throughput.toFixed(2)}× (a rate per item: it does not count that the incremental run merges ${((mid.items / (r.siteCount * r.periods.length)) * 100).toFixed(1)}% of the site-periods)`,
  );
  console.log(
    `  incremental wall / server PFMERGE time: ${fmtMs(incWall)} / ${fmtMs(usToMs(pfUsec))} ms summed over the primaries = ${withinServer.toFixed(2)}×; / ${fmtMs(usToMs(pfBusiest))} ms on the busiest primary = ${withinBusiest.toFixed(2)}×`,
  );
  console.log("");
  console.log("targets:");
  console.log(
    `  incremental ≥ ${TARGET_OVER_NAIVE}× the naive full recompute (time to be up to date): ${upToDate.toFixed(1)}×  ${verdict(upToDate >= TARGET_OVER_NAIVE)}`,
  );
  console.log(
    `    (site-periods/s alone, for reference: ${throughput.toFixed(2)}×  ${verdict(throughput >= TARGET_OVER_NAIVE)})`,
  );
  console.log(
    `  incremental wall within ${TARGET_WITHIN_SERVER}× of the server PFMERGE time (summed over primaries): ${withinServer.toFixed(2)}×  ${verdict(withinServer <= TARGET_WITHIN_SERVER)}`,
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
        brow("  Plan task (lock, SUNIONSTORE, SSCAN, ZADD)", plan),
        brow(`  MergePage tasks, time any was running (${t.merge.length} pages)`, mergeSpan),
        brow(
          `    sum over pages (median ${fmtMs(median(pageMs))} ms/page, concurrency ${opts.concurrency})`,
          mergeSum,
        ),
        brow("    building keys from items (parse, daysInPeriod, key names)", mid.buildMs),
        brow("    limit: the same merges on a bare pipelined client", mid.limit.wallMs),
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
    "server time is commandstats' time inside redis-server per command: on a box with fewer CPUs than processes, preemption under load inflates it (compare µs/PFMERGE of the naive run, one command at a time)",
  );
}

await runWithCleanup((closers) => run(parseRollupOptions(process.argv.slice(2)), closers));
