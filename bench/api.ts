/**
 * The read API benchmark as a library (no side effects on import): `npm run bench:api`
 * (bench/api.bench.ts) prints its report, and the benchmarks report (bench/report/reads.ts)
 * reuses its data loading and its measurement. What it measures:
 *
 *   app    createApiRuntime(env).app served by @hono/node-server, as `npm run cli -- api` does:
 *          routing, validation, the cover's look-ups, the PFCOUNT(s), the JSON answer.
 *   limit  a bare `node:http` server that, for the same URL, sends the very Redis commands the
 *          app sends for it on a bare auto-pipelining ioredis Cluster, in the same order and
 *          with the same waits (a command goes out once the replies the app had when it sent it
 *          are in), then answers with the app's JSON body, precomputed. No routing, no
 *          validation, no cover, no serialization: what any server must pay to answer.
 *
 * The commands are recorded once per case by running the app's own code (createApiApp) over a
 * recording proxy of its ioredis client; INFO commandstats of every primary then checks that
 * one request to the served app, and one to the limit server, each send exactly those.
 *
 * Data (loadApiData): sites with days of traffic ending today (the run's clock, the real date
 * by default: Redis expires keys by the real clock, and the consumer rejects events older than
 * the retention from its now), loaded through the real consumer handler, then a scheduled
 * rollup through the real state machine (runRollupLocally), so a count's cover takes months
 * and weeks. RETENTION_DAYS (and weeks and months, if needed) is raised to hold the whole
 * history. Before any timing, each case's answer is checked: the estimate (every point's, for a
 * series) must equal a bare PFCOUNT over all of the range's day keys (the same HyperLogLog
 * registers, so the same number), with nothing missing.
 *
 * Load (measureApiCases): a client in a child process (bench/api.bench.ts run with
 * LOAD_CLIENT_FLAG, so its CPU is not the servers' event loop) keeps `concurrency` keep-alive
 * requests in flight (node:http Agent); per case and contender, an untimed warm-up, then
 * `requests` timed requests in `rounds` rounds, the order of app and limit alternating between
 * rounds so machine noise hits both alike. Latency is per request at the client (request
 * written → last byte read); "busy" is this process's event-loop time per request
 * (performance.eventLoopUtilization), i.e. the server's own CPU cost.
 */

import { type ChildProcess, fork } from "node:child_process";
import { mkdir, writeFile } from "node:fs/promises";
import { createServer, type Server } from "node:http";
import { Session } from "node:inspector/promises";
import type { AddressInfo } from "node:net";
import { availableParallelism, cpus } from "node:os";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { fileURLToPath } from "node:url";
import { serve } from "@hono/node-server";
import type { Hono } from "hono";
import { Redis } from "ioredis";
import * as v from "valibot";
import { type ClickPayload, mulberry32 } from "../cli/generator.js";
import type { RedisClient } from "../functions/adapters/redis.js";
import { connectRedis } from "../functions/adapters/redis.js";
import { createApiApp, type ReadRedis } from "../functions/api/app.js";
import { CountBody, SeriesBody } from "../functions/api/schemas.js";
import { at } from "../functions/domain/arrays.js";
import { messageOf } from "../functions/domain/errors.js";
import { parseKey, uniqueVisitorsKey } from "../functions/domain/keys.js";
import {
  addDays,
  DAY_MS,
  dayOf,
  dayStartMs,
  daysInRange,
  isoWeekOf,
  weekStartDay,
} from "../functions/domain/periods.js";
import {
  DEFAULT_RETENTION,
  loadRuntimeConfig,
  RETENTION_LIMITS,
  type RuntimeConfig,
} from "../functions/domain/runtime-env.js";
import { RollupOutputSchema } from "../functions/rollup/input.js";
import type { RunningRedisCluster } from "../local/redis-cluster.js";
import { runRollupLocally } from "../state-machines/local-runner.js";
import {
  type FromClient,
  LOAD_CLIENT_FLAG,
  type LoadJob,
  type LoadResult,
  type ToClient,
} from "./api-load.js";
import {
  type BenchConsumer,
  benchClients,
  type Closer,
  dayPayloads,
  fmtInt,
  ingestThroughConsumer,
  parseBenchArgs,
  progress,
  silencePowertools,
  startBenchCluster,
  table,
} from "./lib.js";

/** The target: the app's p50 latency within this factor of the limit's, per case. */
export const TARGET_P50_WITHIN_LIMIT = 1.5;
/** Events per consumer invocation while loading the history, two invocations in flight. */
const BATCH = 10_000;

export { LOAD_CLIENT_FLAG, serveLoadJobs } from "./api-load.js";

/** The load client's entry: the CLI, which runs serveLoadJobs on import when given LOAD_CLIENT_FLAG. */
const LOAD_CLIENT_ENTRY = fileURLToPath(new URL("./api.bench.ts", import.meta.url));
/** RETENTION_DAYS beyond the history: no day expires during a run, even one across midnight. */
export const RETENTION_MARGIN_DAYS = 30;

/** The data a run reads: what loadApiData writes. */
export interface ApiDataOptions {
  readonly sites: number;
  /** Days of history ending today (the clock's day). */
  readonly days: number;
  readonly usersPerDay: number;
  readonly users: number;
  readonly seed: number;
  /** The run's clock at its start (epoch ms); default Date.now(). It then runs at real speed. */
  readonly nowMs?: number;
}

/** How measureApiCases times each case. */
export interface ApiTimingOptions {
  readonly requests: number;
  readonly rounds: number;
  readonly warmup: number;
  readonly concurrency: number;
  readonly profileDir?: string;
}

export interface ApiBenchOptions extends ApiDataOptions, ApiTimingOptions {}

export const API_USAGE = `usage: npm run bench:api -- [options]
  --sites N          sites with traffic, each with the whole history (default 2)
  --days N           days of history ending today, at least 366 (default 380)
  --users-per-day N  events per site and day, each by a random user (default 2000)
  --users N          user population the ids are drawn from (default 200000)
  --requests N       timed requests per case and contender (default 2000)
  --rounds N         rounds the timed requests are split into, order alternating (default 10)
  --warmup N         untimed requests per case and contender before the rounds (default 200)
  --concurrency N    requests in flight, one keep-alive connection each (default 8)
  --seed N           PRNG seed (default 42)
  --profile DIR      after each case's timing, profile the app for one more round (untimed),
                     write DIR/api-<case>.cpuprofile and print where its time goes`;

export function parseApiOptions(argv: readonly string[]): ApiBenchOptions {
  const { values, int } = parseBenchArgs(
    argv,
    {
      sites: { type: "string", default: "2" },
      days: { type: "string", default: "380" },
      "users-per-day": { type: "string", default: "2000" },
      users: { type: "string", default: "200000" },
      requests: { type: "string", default: "2000" },
      rounds: { type: "string", default: "10" },
      warmup: { type: "string", default: "200" },
      concurrency: { type: "string", default: "8" },
      seed: { type: "string", default: "42" },
      profile: { type: "string" },
    },
    API_USAGE,
  );
  const rounds = int("rounds", values.rounds, 1);
  const requests = int("requests", values.requests, 1);
  if (requests < rounds) {
    throw new RangeError(`--requests=${requests} is fewer than --rounds=${rounds}\n${API_USAGE}`);
  }
  const maxDays = RETENTION_LIMITS.days.max - RETENTION_MARGIN_DAYS;
  if (Number(values.days) > maxDays) {
    throw new RangeError(
      `--days=${values.days}: at most ${maxDays} (RETENTION_DAYS ≤ ${RETENTION_LIMITS.days.max})\n${API_USAGE}`,
    );
  }
  return {
    sites: int("sites", values.sites, 1),
    // The 365-day count reads 365 days, the 52-week series at most 364: history longer than both.
    days: int("days", values.days, 366),
    usersPerDay: int("users-per-day", values["users-per-day"], 1),
    users: int("users", values.users, 1),
    requests,
    rounds,
    warmup: int("warmup", values.warmup, 0),
    concurrency: int("concurrency", values.concurrency, 1),
    seed: int("seed", values.seed, 0),
    ...(values.profile ? { profileDir: values.profile } : {}),
  };
}

// ---------------------------------------------------------------------------------------------
// The cases: what a dashboard asks for, every range ending today.

export interface BenchCase {
  readonly name: string;
  readonly kind: "count" | "series";
  readonly site: string;
  readonly from: string;
  readonly to: string;
  /** Points a series must have. */
  readonly points?: number;
  readonly path: string;
}

export function benchCases(site: string, today: string): BenchCase[] {
  const count = (days: number): BenchCase => {
    const from = addDays(today, -(days - 1));
    return {
      name: `count ${days} day${days === 1 ? "" : "s"}`,
      kind: "count",
      site,
      from,
      to: today,
      path: `/v1/sites/${site}/count?from=${from}&to=${today}`,
    };
  };
  const series = (name: string, from: string, granularity: string, points: number) => ({
    name,
    kind: "series" as const,
    site,
    from,
    to: today,
    points,
    path: `/v1/sites/${site}/series?from=${from}&to=${today}&granularity=${granularity}`,
  });
  // 52 ISO weeks: this (partial) week and the 51 before it.
  const weeksFrom = addDays(weekStartDay(isoWeekOf(today)), -51 * 7);
  return [
    count(1),
    count(30),
    count(365),
    series("series 30 days by day", addDays(today, -29), "day", 30),
    series("series 52 weeks by week", weeksFrom, "week", 52),
  ];
}

// ---------------------------------------------------------------------------------------------
// Recording the app's Redis conversation, and replaying it.

/** Every method of ReadRedis, i.e. every command the app can send (a new one fails to compile). */
const READ_COMMANDS: ReadonlySet<string> = new Set(
  Object.keys({
    smismember: true,
    exists: true,
    pfcount: true,
    sscan: true,
    sismember: true,
    smembers: true,
    zmscore: true,
    hget: true,
  } satisfies Record<keyof ReadRedis, true>),
);

type Arg = string | number;

export interface RecordedCommand {
  readonly name: string;
  readonly args: readonly Arg[];
  /** Indices of the commands whose replies had arrived when the app sent this one. */
  readonly after: readonly number[];
}

/** Commands sent together: the app sent them with the same replies in hand. */
interface Wave {
  readonly after: readonly number[];
  readonly commands: readonly { readonly name: string; readonly args: readonly Arg[] }[];
}

/** Wraps the app's client: every ReadRedis call is logged with the replies in hand at the time. */
class CommandRecorder {
  private log: RecordedCommand[] = [];
  private replied: number[] = [];

  /** The commands since the last call, and starts a new log. */
  take(): RecordedCommand[] {
    const out = this.log;
    this.log = [];
    this.replied = [];
    return out;
  }

  wrap(client: RedisClient): ReadRedis {
    return new Proxy(client, {
      get: (target, prop, receiver) => {
        const value: unknown = Reflect.get(target, prop, receiver);
        if (typeof prop !== "string" || !READ_COMMANDS.has(prop) || typeof value !== "function") {
          return value;
        }
        return (...args: Arg[]) => {
          const index = this.log.length;
          this.log.push({ name: prop, args, after: [...this.replied] });
          const send = value as (...a: Arg[]) => Promise<unknown>;
          return send.apply(target, args).then((reply) => {
            this.replied.push(index);
            return reply;
          });
        };
      },
    }) as unknown as ReadRedis;
  }
}

function wavesOf(commands: readonly RecordedCommand[]): Wave[] {
  const waves: { after: readonly number[]; commands: { name: string; args: readonly Arg[] }[] }[] =
    [];
  for (const c of commands) {
    const current = waves.at(-1);
    if (current && current.after.join() === c.after.join()) {
      current.commands.push({ name: c.name, args: c.args });
    } else {
      waves.push({ after: c.after, commands: [{ name: c.name, args: c.args }] });
    }
  }
  return waves;
}

const ignore = () => {};

/** Sends the recorded conversation: each wave once the replies it waited for are in. */
async function replay(client: RedisClient, waves: readonly Wave[]): Promise<unknown[]> {
  const replies: Promise<unknown>[] = [];
  for (const wave of waves) {
    if (wave.after.length > 0) await Promise.all(wave.after.map((i) => replies[i]));
    for (const c of wave.commands) {
      const reply = client.call(c.name, ...c.args);
      // Awaited below (or by a later wave); this only keeps a failure from going unhandled
      // while an earlier wave is awaited.
      reply.catch(ignore);
      replies.push(reply);
    }
  }
  return Promise.all(replies);
}

/** "SMISMEMBER ×2 (730 members), EXISTS ×64, ZMSCORE, PFCOUNT (17 keys)". */
export function describeCommands(commands: readonly RecordedCommand[]): string {
  const byName = new Map<string, { calls: number; args: number }>();
  for (const c of commands) {
    const s = byName.get(c.name) ?? { calls: 0, args: 0 };
    s.calls++;
    s.args += c.args.length;
    byName.set(c.name, s);
  }
  return [...byName]
    .map(([name, s]) => {
      const calls = s.calls > 1 ? ` ×${s.calls}` : "";
      const detail =
        name === "smismember"
          ? ` (${fmtInt(s.args - s.calls)} members)`
          : name === "pfcount"
            ? ` (${fmtInt(s.args)} key${s.args === 1 ? "" : "s"})`
            : "";
      return `${name.toUpperCase()}${calls}${detail}`;
    })
    .join(", ");
}

function commandCounts(commands: readonly RecordedCommand[]): Map<string, number> {
  const counts = new Map<string, number>();
  for (const c of commands) counts.set(c.name, (counts.get(c.name) ?? 0) + 1);
  return counts;
}

/** "11 months + 3 weeks + 6 days". */
export function describeKeys(keys: readonly string[]): string {
  const n = { month: 0, week: 0, day: 0 };
  for (const k of keys) n[parseKey(k).period.kind]++;
  const part = (count: number, unit: string) =>
    count > 0 ? [`${count} ${unit}${count === 1 ? "" : "s"}`] : [];
  return [...part(n.month, "month"), ...part(n.week, "week"), ...part(n.day, "day")].join(" + ");
}

// ---------------------------------------------------------------------------------------------
// Commands each request sends, as the servers see them: INFO commandstats of every primary.

/** Commands of the measurement itself or of the client's upkeep, not of a request. */
const NOT_A_REQUEST = /^(info|config|cluster|command)\b/;

class ServerCommandStats {
  constructor(private readonly primaries: readonly Redis[]) {}

  /** Calls per command (lower case) that `fn` caused on the primaries. */
  async during(fn: () => Promise<unknown>): Promise<Map<string, number>> {
    await Promise.all(this.primaries.map((p) => p.config("RESETSTAT")));
    await fn();
    const infos = await Promise.all(this.primaries.map((p) => p.info("commandstats")));
    const calls = new Map<string, number>();
    for (const info of infos) {
      for (const line of info.split(/\r?\n/)) {
        const [, name, n] = /^cmdstat_([^:]+):calls=(\d+)/.exec(line) ?? [];
        if (name === undefined || NOT_A_REQUEST.test(name)) continue;
        calls.set(name, (calls.get(name) ?? 0) + Number(n));
      }
    }
    return calls;
  }
}

function sameCounts(a: ReadonlyMap<string, number>, b: ReadonlyMap<string, number>): boolean {
  return a.size === b.size && [...a].every(([k, n]) => b.get(k) === n);
}

const showCounts = (m: ReadonlyMap<string, number>) =>
  [...m].map(([k, n]) => `${k}×${n}`).join(" ") || "none";

// ---------------------------------------------------------------------------------------------
// The two servers.

interface Listening {
  readonly port: number;
  close(): Promise<void>;
}

/** Keep-alive long enough that no connection is closed between a contender's rounds. */
const KEEP_ALIVE_MS = 60_000;

function listening(server: Server): Promise<Listening> {
  server.keepAliveTimeout = KEEP_ALIVE_MS;
  return new Promise((resolve, reject) => {
    const ready = () => {
      server.off("error", reject);
      resolve({
        port: (server.address() as AddressInfo).port,
        close: () =>
          new Promise<void>((done) => {
            server.closeAllConnections();
            server.close(() => done());
          }),
      });
    };
    server.once("error", reject);
    if (server.listening) ready();
    else server.once("listening", ready);
  });
}

/** The app as `npm run cli -- api` serves it. */
function serveApp(app: Hono): Promise<Listening> {
  const server = serve({ fetch: app.fetch, hostname: "127.0.0.1", port: 0 }) as Server;
  return listening(server);
}

interface LimitRoute {
  readonly waves: readonly Wave[];
  readonly body: Buffer;
}

/** The limit: the recorded conversation on a bare client, then the app's body, precomputed. */
function serveLimit(
  client: RedisClient,
  routes: ReadonlyMap<string, LimitRoute>,
): Promise<Listening> {
  const server = createServer((req, res) => {
    const route = routes.get(req.url ?? "");
    if (!route) {
      res.writeHead(404).end();
      return;
    }
    replay(client, route.waves).then(
      () => {
        res.writeHead(200, {
          "content-type": "application/json",
          "content-length": route.body.length,
          "cache-control": "no-store",
        });
        res.end(route.body);
      },
      (err: unknown) => {
        res.writeHead(500, { "content-type": "text/plain" }).end(messageOf(err));
      },
    );
  });
  server.listen(0, "127.0.0.1");
  return listening(server);
}

// ---------------------------------------------------------------------------------------------
// The load client: a child process, bench/api.bench.ts run with LOAD_CLIENT_FLAG (bench/api-load.ts).

/** In the benchmark: the child process and its jobs. */
class LoadClient {
  private nextId = 0;
  private readonly pending = new Map<number, (m: FromClient) => void>();

  private constructor(private readonly child: ChildProcess) {
    child.on("message", (m: FromClient) => {
      this.pending.get(m.id)?.(m);
      this.pending.delete(m.id);
    });
  }

  static start(closers: Closer[]): LoadClient {
    // The tsx loader flags, without a --cpu-prof meant for this process; a process that was
    // not started by tsx (a test runner's worker) gives the child tsx's loader itself.
    const inherited = process.execArgv.filter((a) => !a.startsWith("--cpu-prof"));
    const execArgv = inherited.some((a) => /[/\\]tsx[/\\]|^tsx$/.test(a))
      ? inherited
      : [...inherited, "--import", "tsx"];
    const child = fork(LOAD_CLIENT_ENTRY, [LOAD_CLIENT_FLAG], {
      execArgv,
      serialization: "advanced",
    });
    closers.push(() => {
      child.kill();
    });
    child.on("exit", (code, signal) => {
      if (code !== 0 && signal !== "SIGTERM") {
        console.error(`the load client exited (code ${code}, signal ${signal})`);
      }
    });
    return new LoadClient(child);
  }

  run(job: LoadJob): Promise<LoadResult> {
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, (m) => {
        if ("error" in m) reject(new Error(`the load client failed: ${m.error}`));
        else if (m.result.failures > 0) {
          reject(
            new Error(
              `${m.result.failures} of ${job.requests} requests to ${job.path} failed: ${m.result.firstFailure}`,
            ),
          );
        } else resolve(m.result);
      });
      this.child.send({ id, job } satisfies ToClient);
    });
  }
}

// ---------------------------------------------------------------------------------------------
// Profiling the app (--profile): this process's main thread, where the app and ioredis run.

interface ProfileNode {
  readonly id: number;
  readonly callFrame: { functionName: string; url: string };
  readonly hitCount?: number;
  readonly children?: readonly number[];
}

/** Where a frame's code lives: a package, a project directory, Node's own modules, or V8. */
function areaOf(url: string, functionName: string): string {
  if (url === "") return functionName.startsWith("(") ? functionName : "(native)";
  const pkg = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (pkg?.[1]) return pkg[1];
  if (url.startsWith("node:")) {
    const parts = url.slice(5).split("/");
    return `node:${parts.slice(0, parts[0] === "internal" ? 2 : 1).join("/")}`;
  }
  const project = /\/(functions|bench|local|cli)\/(.+)$/.exec(url);
  return project ? `${project[1]}/${project[2]}` : url;
}

async function profiled(
  session: Session,
  fn: () => Promise<unknown>,
): Promise<{ nodes: ProfileNode[]; raw: unknown }> {
  await session.post("Profiler.enable");
  await session.post("Profiler.setSamplingInterval", { interval: 100 });
  await session.post("Profiler.start");
  await fn();
  const { profile } = await session.post("Profiler.stop");
  await session.post("Profiler.disable");
  return { nodes: profile.nodes as ProfileNode[], raw: profile };
}

function profileSummary(nodes: readonly ProfileNode[]): string {
  const total = nodes.reduce((n, p) => n + (p.hitCount ?? 0), 0);
  const idle = nodes
    .filter((p) => p.callFrame.functionName === "(idle)")
    .reduce((n, p) => n + (p.hitCount ?? 0), 0);
  const busy = total - idle;
  const areas = new Map<string, number>();
  const fns = new Map<string, number>();
  for (const p of nodes) {
    const hits = p.hitCount ?? 0;
    const { functionName, url } = p.callFrame;
    if (hits === 0 || functionName === "(idle)") continue;
    const area = areaOf(url, functionName);
    areas.set(area, (areas.get(area) ?? 0) + hits);
    // No line numbers: tsx's transpiled code does not keep them.
    const fn = functionName.startsWith("(")
      ? functionName
      : `${functionName || "(anonymous)"} ${area}`;
    fns.set(fn, (fns.get(fn) ?? 0) + hits);
  }
  // Inclusive time of the project's functions: each sample counts once for every distinct
  // project function on its stack, so countRange shows what it costs with its callees.
  const parent = new Map<number, ProfileNode>();
  for (const p of nodes) for (const child of p.children ?? []) parent.set(child, p);
  const inclusive = new Map<string, number>();
  for (const p of nodes) {
    const hits = p.hitCount ?? 0;
    if (hits === 0 || p.callFrame.functionName === "(idle)") continue;
    const seen = new Set<string>();
    for (let q: ProfileNode | undefined = p; q; q = parent.get(q.id)) {
      const area = areaOf(q.callFrame.url, q.callFrame.functionName);
      if (area.startsWith("functions/") && q.callFrame.functionName !== "") {
        seen.add(`${q.callFrame.functionName} ${area}`);
      }
    }
    for (const fn of seen) inclusive.set(fn, (inclusive.get(fn) ?? 0) + hits);
  }
  const top = (m: Map<string, number>, n: number) =>
    [...m]
      .sort((a, b) => b[1] - a[1])
      .slice(0, n)
      .map(([name, hits]) => [name, `${((hits / busy) * 100).toFixed(1)}%`]);
  return [
    `    busy ${((busy / total) * 100).toFixed(0)}% of the samples; self time by where the code lives:`,
    indent(table(["area", "of busy"], top(areas, 10)), 6),
    "    hottest functions (self time):",
    indent(table(["function", "of busy"], top(fns, 10)), 6),
    "    the project's functions, inclusive (with what they call):",
    indent(table(["function", "of busy"], top(inclusive, 10)), 6),
  ].join("\n");
}

const indent = (text: string, n: number) =>
  text
    .split("\n")
    .map((l) => " ".repeat(n) + l)
    .join("\n");

// ---------------------------------------------------------------------------------------------

export interface Measurement {
  readonly latenciesMs: number[];
  wallMs: number;
  requests: number;
  /** This process's event-loop busy time during the timed requests. */
  busyMs: number;
}

const newMeasurement = (): Measurement => ({ latenciesMs: [], wallMs: 0, requests: 0, busyMs: 0 });

export interface CaseResult {
  readonly case: BenchCase;
  readonly commands: readonly RecordedCommand[];
  readonly waves: number;
  readonly bodyBytes: number;
  /** What the answer is made of: the cover's keys, or the series' PFCOUNTs. */
  readonly cover: string;
  readonly estimate: string;
  readonly app: Measurement;
  readonly limit: Measurement;
  readonly profile?: string;
}

export interface Loaded {
  readonly events: number;
  readonly ms: number;
  readonly firstDay: string;
  readonly today: string;
  readonly rollupItems: number;
  readonly rollupMs: number;
}

/** A history loaded and rolled up on a cluster of its own, for the API (or any read) to read. */
export interface ApiData {
  readonly startedAt: Date;
  /** The run's clock: the start's epoch ms plus the real time elapsed since. */
  readonly now: () => number;
  readonly cluster: RunningRedisCluster;
  /** The functions' environment pointing at the cluster (retention raised to hold the history). */
  readonly env: Readonly<Record<string, string>>;
  readonly config: RuntimeConfig;
  /** A bare auto-pipelining ioredis Cluster (the limit's client). */
  readonly bare: RedisClient;
  /** One plain client per primary, for INFO and CONFIG. */
  readonly primaries: readonly Redis[];
  readonly redisVersion: string;
  readonly retention: { days: number; weeks: number; months: number };
  readonly loaded: Loaded;
}

/**
 * Starts a cluster (stopped by the closers), writes `days` days of traffic ending today for
 * every site through the real consumer handler, then runs one scheduled rollup through the
 * state machine, so counts have week and month keys to use.
 */
export async function loadApiData(
  opts: ApiDataOptions,
  closers: Closer[],
  status: (text: string) => void = progress,
): Promise<ApiData> {
  const startMs = opts.nowMs ?? Date.now();
  const startedAt = new Date(startMs);
  const started = performance.now();
  const now = () => startMs + Math.round(performance.now() - started);
  const today = dayOf(startMs);
  const firstDay = addDays(today, -(opts.days - 1));
  // The whole history within retention (the consumer rejects older events, Redis expires keys).
  const retention = {
    days: opts.days + RETENTION_MARGIN_DAYS,
    weeks: Math.min(
      RETENTION_LIMITS.weeks.max,
      Math.max(DEFAULT_RETENTION.weeks, Math.ceil(opts.days / 7) + 8),
    ),
    months: Math.min(
      RETENTION_LIMITS.months.max,
      Math.max(DEFAULT_RETENTION.months, Math.ceil(opts.days / 28) + 2),
    ),
  };
  const { cluster, env } = await startBenchCluster(closers, {
    [RETENTION_LIMITS.days.variable]: String(retention.days),
    [RETENTION_LIMITS.weeks.variable]: String(retention.weeks),
    [RETENTION_LIMITS.months.variable]: String(retention.months),
  });
  const config = loadRuntimeConfig(env);

  silencePowertools();
  const { createConsumerHandler } = await import("../functions/consumer/handler.js");

  const { pipelined: bare } = benchClients(cluster, closers);
  const primaries = cluster.ports.map((port) => new Redis({ host: cluster.host, port }));
  for (const p of primaries) {
    p.on("error", () => {});
    closers.push(() => p.disconnect());
  }
  const redisVersion =
    /redis_version:(\S+)/.exec(await at(primaries, 0, "primary").info("server"))?.[1] ?? "?";

  // --- the data: history through the real consumer, then a scheduled rollup -----------------
  const consumer = createConsumerHandler(env, { now });
  closers.push(() => consumer.close());
  const history = await loadHistory(opts, consumer, firstDay, today, now, status);
  status("scheduled rollup through the state machine…");
  const rollupStart = performance.now();
  const rollup = await runRollupLocally({ env, input: {}, startTime: new Date(now()) });
  const rollupMs = performance.now() - rollupStart;
  if (rollup.status !== "SUCCEEDED") {
    throw new Error(`the rollup ${rollup.status}: ${rollup.error}: ${rollup.cause}`);
  }
  const rollupItems = v.parse(RollupOutputSchema, rollup.output).itemsMerged;
  return {
    startedAt,
    now,
    cluster,
    env,
    config,
    bare,
    primaries,
    redisVersion,
    retention: config.retention,
    loaded: { ...history, rollupItems: rollupItems ?? 0, rollupMs },
  };
}

/**
 * Serves the app and the limit over the data, records and checks every case (untimed), then
 * times each with the load client. Every case's range must lie within the data's history.
 */
export async function measureApiCases(
  data: ApiData,
  cases: readonly BenchCase[],
  opts: ApiTimingOptions,
  closers: Closer[],
  status: (text: string) => void = progress,
): Promise<CaseResult[]> {
  const { env, config, bare, now } = data;
  silencePowertools();
  const { createApiRuntime } = await import("../functions/api/handler.js");
  const stats = new ServerCommandStats(data.primaries);

  // --- the servers ----------------------------------------------------------------------------
  const runtime = createApiRuntime(env, { now });
  closers.push(() => runtime.close());
  const appServer = await serveApp(runtime.app);
  closers.push(() => appServer.close());

  // The app's own code over a recording client with the runtime's connection settings.
  const recorder = new CommandRecorder();
  const recordingConnection = connectRedis(config.redis);
  closers.push(() => recordingConnection.close());
  const recordingApp = createApiApp({
    redis: { get: () => recorder.wrap(recordingConnection.client), reset: () => {} },
    retentionDays: config.retention.days,
    now,
  });

  const routes = new Map<string, LimitRoute>();
  const limitServer = await serveLimit(bare, routes);
  closers.push(() => limitServer.close());
  const appUrl = (path: string) => `http://127.0.0.1:${appServer.port}${path}`;
  const limitUrl = (path: string) => `http://127.0.0.1:${limitServer.port}${path}`;

  // --- record, check the answers and the conversations (untimed) -----------------------------
  const prepared: Omit<CaseResult, "app" | "limit" | "profile">[] = [];
  for (const c of cases) {
    if (c.from < data.loaded.firstDay || c.to > data.loaded.today) {
      throw new RangeError(
        `${c.name}: ${c.from}..${c.to} is not within the history ${data.loaded.firstDay}..${data.loaded.today}`,
      );
    }
    status(`${c.name}: recording and checking…`);
    const served = await fetch(appUrl(c.path));
    const body = await served.text();
    if (served.status !== 200) throw new Error(`${c.path}: HTTP ${served.status}: ${body}`);
    // Recorded twice: the first also connects and learns the slots, which is not a request's.
    await recordingApp.request(c.path);
    recorder.take();
    const recordedResponse = await recordingApp.request(c.path);
    const commands = recorder.take();
    const recordedBody = await recordedResponse.text();
    if (recordedBody !== body) {
      throw new Error(
        `${c.path}: the recording app answered differently from the served app:\n${recordedBody}\n${body}`,
      );
    }
    const waves = wavesOf(commands);
    const replies = await replay(bare, waves);
    const pfcounts = commands.flatMap((cmd, i) => (cmd.name === "pfcount" ? [replies[i]] : []));
    const checked = await checkAnswer(bare, c, body, pfcounts);
    routes.set(c.path, { waves, body: Buffer.from(body) });

    // One request to each server sends exactly the recorded commands.
    const recorded = commandCounts(commands);
    for (const [name, url] of [
      ["app", appUrl(c.path)],
      ["limit", limitUrl(c.path)],
    ] as const) {
      const seen = await stats.during(async () => {
        const res = await fetch(url);
        await res.arrayBuffer();
      });
      if (!sameCounts(seen, recorded)) {
        throw new Error(
          `${c.name}: one request to the ${name} sent ${showCounts(seen)}; recorded ${showCounts(recorded)}`,
        );
      }
    }
    prepared.push({
      case: c,
      commands,
      waves: waves.length,
      bodyBytes: Buffer.byteLength(body),
      ...checked,
    });
  }

  // --- timing ---------------------------------------------------------------------------------
  const load = LoadClient.start(closers);
  const session = opts.profileDir ? new Session() : undefined;
  if (session && opts.profileDir) {
    session.connect();
    closers.push(() => session.disconnect());
    await mkdir(opts.profileDir, { recursive: true });
  }
  const results: CaseResult[] = [];
  const perRound = (r: number) =>
    Math.floor(opts.requests / opts.rounds) + (r < opts.requests % opts.rounds ? 1 : 0);
  for (const p of prepared) {
    const c = p.case;
    const contenders = { app: appServer.port, limit: limitServer.port };
    const job = (port: number, requests: number): LoadJob => ({
      port,
      path: c.path,
      requests,
      concurrency: opts.concurrency,
      expectedBytes: p.bodyBytes,
    });
    for (const [name, port] of Object.entries(contenders)) {
      status(`${c.name}: warm-up of the ${name}…`);
      if (opts.warmup > 0) await load.run(job(port, opts.warmup));
    }
    const measured = { app: newMeasurement(), limit: newMeasurement() };
    for (let r = 0; r < opts.rounds; r++) {
      const order = r % 2 === 0 ? (["app", "limit"] as const) : (["limit", "app"] as const);
      for (const name of order) {
        status(`${c.name}: round ${r + 1}/${opts.rounds}, ${name}…`);
        const m = measured[name];
        const elu = performance.eventLoopUtilization();
        const result = await load.run(job(contenders[name], perRound(r)));
        m.busyMs += performance.eventLoopUtilization(elu).active;
        m.latenciesMs.push(...result.latenciesMs);
        m.wallMs += result.wallMs;
        m.requests += result.latenciesMs.length;
      }
    }
    let profile: string | undefined;
    if (session && opts.profileDir) {
      status(`${c.name}: profiling the app…`);
      const { nodes, raw } = await profiled(session, () =>
        load.run(job(appServer.port, perRound(0))),
      );
      const file = join(opts.profileDir, `api-${c.name.replaceAll(" ", "-")}.cpuprofile`);
      await writeFile(file, JSON.stringify(raw));
      profile = `  ${c.name} (${file}):\n${profileSummary(nodes)}`;
    }
    results.push({ ...p, ...measured, ...(profile === undefined ? {} : { profile }) });
  }
  status("");
  return results;
}

/** `npm run bench:api`: loads the data, measures every case, prints the report. */
export async function runApiBench(opts: ApiBenchOptions, closers: Closer[]): Promise<void> {
  const data = await loadApiData(opts, closers);
  const cases = benchCases("1", data.loaded.today);
  const results = await measureApiCases(data, cases, opts, closers);
  report(opts, {
    startedAt: data.startedAt,
    ports: data.cluster.ports,
    redisVersion: data.redisVersion,
    retention: data.retention,
    loaded: data.loaded,
    results,
  });
}

/** `days` days of traffic for every site, through the real consumer handler. */
async function loadHistory(
  opts: ApiDataOptions,
  consumer: BenchConsumer,
  firstDay: string,
  today: string,
  now: () => number,
  status: (text: string) => void,
): Promise<Omit<Loaded, "rollupItems" | "rollupMs">> {
  const random = mulberry32(opts.seed);
  const days = daysInRange(firstDay, today);
  // Today's events must not be in the consumer's future: they end a second before the start.
  const todaySpanMs = Math.max(1, now() - dayStartMs(today) - 1000);
  const payloadsOf = (day: string, dayIndex: number): Generator<ClickPayload> =>
    dayPayloads(
      random,
      {
        day,
        dayIndex,
        spanMs: day === today ? todaySpanMs : DAY_MS - 1,
        sites: opts.sites,
        eventsPerSite: opts.usersPerDay,
        users: opts.users,
      },
      dayStartMs(day),
    );
  const start = performance.now();
  let sent = 0;
  for (const [i, day] of days.entries()) {
    status(`history: day ${i + 1}/${days.length} (${day}), ${fmtInt(sent)} events`);
    sent += await ingestThroughConsumer(consumer, payloadsOf(day, i), { batchSize: BATCH });
  }
  return { events: sent, ms: performance.now() - start, firstDay, today };
}

/**
 * The app's answer is right: every estimate equals a bare PFCOUNT over all the days it covers
 * (a cover's week and month keys hold the registers of their days, so the union is the same
 * and so is the number), nothing is missing, the replayed PFCOUNTs give the same numbers, and
 * the 30- and 365-day counts do use the rollup's keys.
 */
async function checkAnswer(
  bare: RedisClient,
  c: BenchCase,
  body: string,
  replayed: readonly unknown[],
): Promise<{ cover: string; estimate: string }> {
  const json: unknown = JSON.parse(body);
  const expect = async (from: string, to: string) =>
    bare.pfcount(...daysInRange(from, to).map((d) => uniqueVisitorsKey(c.site, d)));
  const wrong = (what: string) => new Error(`${c.name}: ${what}\n${body}`);
  if (c.kind === "count") {
    const answer = v.parse(CountBody, json);
    const expected = await expect(c.from, c.to);
    if (answer.estimate !== expected) {
      throw wrong(`the app's estimate ${answer.estimate} ≠ PFCOUNT of every day ${expected}`);
    }
    if (!answer.complete) throw wrong("the answer is incomplete: the history does not cover it");
    if (replayed.length !== 1 || replayed[0] !== expected) {
      throw wrong(`the replayed PFCOUNT gave ${replayed.join(",")}, not ${expected}`);
    }
    const cover = describeKeys(answer.keys);
    const days = daysInRange(c.from, c.to).length;
    if (days >= 30 && !/week/.test(cover)) throw wrong(`no week key in the cover (${cover})`);
    if (days >= 365 && !/month/.test(cover)) throw wrong(`no month key in the cover (${cover})`);
    const n = answer.keys.length;
    return { cover: `${n} key${n === 1 ? "" : "s"}: ${cover}`, estimate: fmtInt(answer.estimate) };
  }
  const answer = v.parse(SeriesBody, json);
  if (answer.points.length !== c.points) {
    throw wrong(`${answer.points.length} points, expected ${c.points}`);
  }
  const expected = await Promise.all(answer.points.map((p) => expect(p.from, p.to)));
  answer.points.forEach((p, i) => {
    if (p.estimate !== expected[i]) {
      throw wrong(`point ${p.period}: estimate ${p.estimate} ≠ PFCOUNT of its days ${expected[i]}`);
    }
    if (!p.complete) throw wrong(`point ${p.period} is incomplete`);
    if (replayed[i] !== p.estimate) throw wrong(`the replayed PFCOUNT of ${p.period} differs`);
  });
  if (replayed.length !== answer.points.length) throw wrong("not one PFCOUNT per point");
  const estimates = answer.points.map((p) => p.estimate);
  return {
    cover: `${answer.points.length} points, one PFCOUNT each`,
    estimate: `${fmtInt(Math.min(...estimates))}…${fmtInt(Math.max(...estimates))}`,
  };
}

// ---------------------------------------------------------------------------------------------

export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return at(sorted, Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1));
}

const ms2 = (n: number) => (Number.isFinite(n) ? n.toFixed(2) : "n/a");
export const perSecond = (m: Measurement) => (m.requests / m.wallMs) * 1000;

interface Report {
  readonly startedAt: Date;
  readonly ports: readonly number[];
  readonly redisVersion: string;
  readonly retention: { days: number; weeks: number; months: number };
  readonly loaded: Loaded;
  readonly results: readonly CaseResult[];
}

function report(opts: ApiBenchOptions, r: Report): void {
  const cpu = cpus()[0]?.model.trim() ?? "unknown CPU";
  const l = r.loaded;
  console.log(`sketchstream read API benchmark, ${r.startedAt.toISOString()}`);
  console.log(
    `  machine: ${availableParallelism()} CPUs (${cpu}) shared by everything below; node ${process.version}; redis-server ${r.redisVersion}, a cluster of 3 primaries on 127.0.0.1:${r.ports.join(",")}`,
  );
  console.log(
    `  data: ${opts.sites} site(s) × ${opts.days} days (${l.firstDay}..${l.today}), ${fmtInt(opts.usersPerDay)} events per site and day by users drawn from ${fmtInt(opts.users)}; ${fmtInt(l.events)} events through createConsumerHandler in ${(l.ms / 1000).toFixed(1)} s; retention ${r.retention.days} days, ${r.retention.weeks} weeks, ${r.retention.months} months`,
  );
  console.log(
    `  rollup: one scheduled run of the state machine (runRollupLocally) merged ${fmtInt(l.rollupItems)} site-periods in ${(l.rollupMs / 1000).toFixed(1)} s`,
  );
  console.log(
    "  app: createApiRuntime(env).app on @hono/node-server; limit: node:http + a bare auto-pipelining ioredis Cluster replaying the app's commands, then a precomputed body",
  );
  console.log(
    `  load: a child process, ${opts.concurrency} concurrent keep-alive requests (node:http Agent); per case and contender ${fmtInt(opts.warmup)} warm-up requests, then ${fmtInt(opts.requests)} timed in ${opts.rounds} rounds (order alternating); every answer checked for status and length`,
  );
  console.log("");

  console.log(
    "Redis commands per request (recorded from the app, replayed by the limit; one request to each server checked against INFO commandstats):",
  );
  console.log(
    table(
      ["case", "round trips", "commands", "answer", "estimate", "body bytes"],
      r.results.map((c) => [
        c.case.name,
        String(c.waves),
        describeCommands(c.commands),
        c.cover,
        c.estimate,
        fmtInt(c.bodyBytes),
      ]),
    ),
  );
  console.log("  paths:");
  for (const c of r.results) console.log(`    ${c.case.name}: GET ${c.case.path}`);
  console.log("");

  const verdict = (ratio: number) => (ratio <= TARGET_P50_WITHIN_LIMIT ? "PASS" : "MISS");
  const rows = r.results.map((c) => {
    const ratio = percentile(c.app.latenciesMs, 50) / percentile(c.limit.latenciesMs, 50);
    return [
      c.case.name,
      fmtInt(perSecond(c.app)),
      fmtInt(perSecond(c.limit)),
      `${ms2(percentile(c.app.latenciesMs, 50))} / ${ms2(percentile(c.app.latenciesMs, 99))}`,
      `${ms2(percentile(c.limit.latenciesMs, 50))} / ${ms2(percentile(c.limit.latenciesMs, 99))}`,
      `${ratio.toFixed(2)}×`,
      `${verdict(ratio)}`,
    ];
  });
  console.log(
    table(
      [
        "case",
        "app req/s",
        "limit req/s",
        "app p50 / p99 ms",
        "limit p50 / p99 ms",
        "app/limit p50",
        `p50 ≤ ${TARGET_P50_WITHIN_LIMIT}× limit`,
      ],
      rows,
    ),
  );
  console.log("");
  console.log(
    "server cost: this process's event-loop busy time per request (the app or the limit server, with its ioredis client):",
  );
  console.log(
    table(
      ["case", "app µs/req", "limit µs/req", "app/limit", "app req/s / limit req/s"],
      r.results.map((c) => {
        const app = (c.app.busyMs / c.app.requests) * 1000;
        const limit = (c.limit.busyMs / c.limit.requests) * 1000;
        return [
          c.case.name,
          fmtInt(app),
          fmtInt(limit),
          `${(app / limit).toFixed(2)}×`,
          `${(perSecond(c.app) / perSecond(c.limit)).toFixed(2)}×`,
        ];
      }),
    ),
  );
  const misses = r.results.filter(
    (c) =>
      percentile(c.app.latenciesMs, 50) / percentile(c.limit.latenciesMs, 50) >
      TARGET_P50_WITHIN_LIMIT,
  );
  console.log("");
  console.log(
    `target: app p50 within ${TARGET_P50_WITHIN_LIMIT}× of the limit's: ${r.results.length - misses.length}/${r.results.length} cases PASS${misses.length > 0 ? ` (MISS: ${misses.map((c) => c.case.name).join(", ")})` : ""}`,
  );
  const profiles = r.results.flatMap((c) => (c.profile ? [c.profile] : []));
  if (profiles.length > 0) {
    console.log("");
    console.log("where the app's time goes (CPU profile of one more untimed round per case):");
    for (const p of profiles) console.log(p);
  }
}
