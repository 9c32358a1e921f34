/**
 * The scale benchmark's measurement (`npm run bench:scale`, bench/scale.bench.ts; a small run in
 * test/integration/scale-bench.test.ts): a population of sites through the real consumer, then a
 * scheduled rollup through the real rollup handlers, on a local Redis Cluster of 3 primaries.
 * What it measures becomes the constants of the capacity planner (cli/capacity.ts), written to
 * a JSON file (bench/results/scale-constants.json by default) in the format of
 * cli/capacity-constants.ts.
 *
 *   population  N sites, each active on one UTC day (the day before the clock); site of rank r
 *               has max(1, round(U / r^s)) distinct users (Zipf-like, exponent s), each making
 *               `eventsPerUser` events; event types drawn view 70%, like 15%, cart 10%,
 *               purchase 5%. Site ids are a seeded permutation of 1..N, so the text order the
 *               rollup pages in is unrelated to size. Events of all sites are shuffled together,
 *               as a stream interleaves them.
 *   consumer    the first `timedBatches` batches (Kinesis-shaped, local/kinesis-event.ts, of
 *               `batchSize` records) through createConsumerHandler itself, one batch in flight,
 *               as one Lambda invocation works: the per-invocation rate, client CPU and the
 *               servers' work per event. The rest of the events are planned by the handler's
 *               own planBatch and written pipelined per primary, only to load them faster (with
 *               a million sites nearly every record is a new key, and the client library's cost
 *               per command would make the load take most of an hour on two cores).
 *   rollup      createRollupHandlers' plan, merge and finish, called with the events the state
 *               machine passes: the plan over everything touched, then the pages that cover
 *               about `mergeSites` sites with `concurrency` pages at once (the Map). When that is
 *               not every page, the time of all of them is extrapolated from the merged items.
 *   memory      MEMORY USAGE … SAMPLES 0 and the HLL header (GETRANGE key 4 4: 0 dense, 1 sparse)
 *               of every key of a sample of sites: all of the `headSites` largest, and
 *               `tailSample` of the rest, weighted by how many they stand for. Bookkeeping: every
 *               `sketchstream:*` key found by SCAN on each primary (the per-site event-type sets
 *               counted apart), so it reads whatever bookkeeping layout keys.ts has.
 *   server CPU  INFO commandstats (usec, after CONFIG RESETSTAT) and the redis-server processes'
 *               own CPU time (/proc/<pid>/stat), over the consumer's batches and over the merges.
 */

import { execFile } from "node:child_process";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { createConnection, type Socket } from "node:net";
import { cpus, totalmem } from "node:os";
import { dirname } from "node:path";
import { promisify } from "node:util";
import { Command, Redis } from "ioredis";
import * as v from "valibot";
import {
  DEFAULT_CONSTANTS_PATH,
  rollupSuccessPath,
  SCALE_CONSTANTS_FORMAT,
  type ScaleConstants,
  ScaleConstantsSchema,
  transitionsPerRun,
} from "../cli/capacity-constants.js";
import {
  type ClickPayload,
  GENERATOR_EVENTS,
  generatorTime,
  generatorUserId,
  mulberry32,
} from "../cli/generator.js";
import { type HllCommand, planBatch, type StreamRecord } from "../functions/consumer/ingest.js";
import { at } from "../functions/domain/arrays.js";
import { countingKey, type Metric } from "../functions/domain/keys.js";
import { DAY_MS, dayOf, dayStartMs, isoWeekOf, monthOf } from "../functions/domain/periods.js";
import { loadRuntimeConfig } from "../functions/domain/runtime-env.js";
import { kinesisEvent } from "../local/kinesis-event.js";
import {
  type Closer,
  fmtInt,
  fmtMs,
  parseBenchArgs,
  progress,
  silencePowertools,
  startBenchCluster,
  table,
} from "./lib.js";

const run = promisify(execFile);

/** The generator's four event types and how often each is drawn. */
export const EVENT_TYPE_SHARES: Readonly<Record<(typeof GENERATOR_EVENTS)[number], number>> = {
  view: 0.7,
  like: 0.15,
  cart: 0.1,
  purchase: 0.05,
};

export interface ScaleBenchOptions {
  readonly sites: number;
  /** Exponent s of users(rank) = max(1, round(maxUsers / rank^s)). */
  readonly zipf: number;
  /** Users of the largest site. */
  readonly maxUsers: number;
  readonly eventsPerUser: number;
  /** Records per consumer batch (the stack's consumer.batchSize default). */
  readonly batchSize: number;
  /** About how many sites' pages the rollup merges (every page when ≥ sites). */
  readonly mergeSites: number;
  /** Pages merged at once (the Map's MaxConcurrency). */
  readonly concurrency: number;
  readonly seed: number;
  /** The largest sites, all sampled for memory. */
  readonly headSites: number;
  /** How many of the other sites are sampled for memory. */
  readonly tailSample: number;
  /** Batches through the handler, one at a time, timed; the rest are loaded pipelined. */
  readonly timedBatches: number;
  /** Where the constants JSON is written. */
  readonly output: string;
  /** The service's clock when the run starts (epoch ms): the active day is the UTC day before. */
  readonly nowMs: number;
}

export const SCALE_DEFAULTS = {
  sites: 1_000_000,
  zipf: 1,
  maxUsers: 50_000,
  eventsPerUser: 2,
  batchSize: 1000,
  mergeSites: 100_000,
  concurrency: 4,
  seed: 42,
  headSites: 10_000,
  tailSample: 30_000,
  timedBatches: 200,
} as const;

const USAGE = `usage: npm run bench:scale -- [options]
  --sites N            sites, each active on one day (default ${fmtInt(SCALE_DEFAULTS.sites)})
  --zipf S             exponent of users per site: max(1, round(U / rank^S)) (default ${SCALE_DEFAULTS.zipf})
  --max-users N        users of the largest site, U (default ${fmtInt(SCALE_DEFAULTS.maxUsers)})
  --events-per-user N  events each user makes (default ${SCALE_DEFAULTS.eventsPerUser})
  --batch-size N       records per consumer batch (default ${SCALE_DEFAULTS.batchSize}, the stack's)
  --merge-sites N      merge the rollup pages covering about N sites and extrapolate the rest
                       (default ${fmtInt(SCALE_DEFAULTS.mergeSites)}; N >= --sites merges every page)
  --concurrency N      pages merged at once, the Map's MaxConcurrency (default ${SCALE_DEFAULTS.concurrency})
  --seed N             PRNG seed (default ${SCALE_DEFAULTS.seed})
  --head-sites N       largest sites whose keys are all measured (default ${fmtInt(SCALE_DEFAULTS.headSites)})
  --tail-sample N      other sites measured, weighted (default ${fmtInt(SCALE_DEFAULTS.tailSample)})
  --timed-batches N    consumer batches through the handler, one at a time, timed (the
                       per-invocation rate); the rest are planned by planBatch and written
                       pipelined to load them faster (default ${SCALE_DEFAULTS.timedBatches})
  --output FILE        constants JSON (default bench/results/scale-constants.json)`;

export function parseScaleArgs(argv: readonly string[], nowMs: number): ScaleBenchOptions {
  const d = SCALE_DEFAULTS;
  const { values, int } = parseBenchArgs(
    argv,
    {
      sites: { type: "string", default: String(d.sites) },
      zipf: { type: "string", default: String(d.zipf) },
      "max-users": { type: "string", default: String(d.maxUsers) },
      "events-per-user": { type: "string", default: String(d.eventsPerUser) },
      "batch-size": { type: "string", default: String(d.batchSize) },
      "merge-sites": { type: "string", default: String(d.mergeSites) },
      concurrency: { type: "string", default: String(d.concurrency) },
      seed: { type: "string", default: String(d.seed) },
      "head-sites": { type: "string", default: String(d.headSites) },
      "tail-sample": { type: "string", default: String(d.tailSample) },
      "timed-batches": { type: "string", default: String(d.timedBatches) },
      output: { type: "string", default: DEFAULT_CONSTANTS_PATH },
    },
    USAGE,
  );
  const zipf = Number(values.zipf);
  if (!/^\d+(\.\d+)?$/.test(values.zipf) || zipf > 4) {
    throw new RangeError(`--zipf must be a number from 0 to 4, got "${values.zipf}"\n${USAGE}`);
  }
  return {
    sites: int("sites", values.sites, 1),
    zipf,
    maxUsers: int("max-users", values["max-users"], 1),
    eventsPerUser: int("events-per-user", values["events-per-user"], 1),
    batchSize: int("batch-size", values["batch-size"], 1),
    mergeSites: int("merge-sites", values["merge-sites"], 1),
    concurrency: int("concurrency", values.concurrency, 1),
    seed: int("seed", values.seed, 0),
    headSites: int("head-sites", values["head-sites"], 0),
    tailSample: int("tail-sample", values["tail-sample"], 0),
    timedBatches: int("timed-batches", values["timed-batches"], 1),
    output: values.output,
    nowMs,
  };
}

// ---------------------------------------------------------------------------------------------
// The population.

const TYPES = GENERATOR_EVENTS;

/** Typed-array element that must exist (noUncheckedIndexedAccess). */
function el(array: Int32Array | Uint8Array | Uint32Array, index: number): number {
  const value = array[index];
  if (value === undefined) throw new RangeError(`index ${index} outside ${array.length}`);
  return value;
}

/** Sites by rank (0 = largest): their ids, users, and what the stream gave them. */
class Population {
  readonly siteIds: Int32Array;
  readonly users: Int32Array;
  readonly events: number;
  readonly totalUsers: number;
  /** Bit t set when the site got an event of TYPES[t]. */
  readonly typeMask: Uint8Array;
  /** Events of (rank, type): index rank * TYPES.length + t. */
  readonly typeEvents: Uint32Array;

  constructor(readonly opts: ScaleBenchOptions) {
    const n = opts.sites;
    const random = mulberry32(opts.seed);
    this.siteIds = new Int32Array(n);
    for (let i = 0; i < n; i++) this.siteIds[i] = i + 1;
    shuffle(this.siteIds, random);
    this.users = new Int32Array(n);
    let users = 0;
    for (let r = 0; r < n; r++) {
      const u = Math.max(1, Math.round(opts.maxUsers / (r + 1) ** opts.zipf));
      this.users[r] = u;
      users += u;
    }
    this.totalUsers = users;
    this.events = users * opts.eventsPerUser;
    this.typeMask = new Uint8Array(n);
    this.typeEvents = new Uint32Array(n * TYPES.length);
  }

  siteId(rank: number): string {
    return String(el(this.siteIds, rank));
  }

  /** The event types of a site, as the consumer saw them. */
  typesOf(rank: number): string[] {
    const mask = el(this.typeMask, rank);
    return TYPES.filter((_, t) => (mask & (1 << t)) !== 0);
  }

  /** Every event, shuffled across sites, in batches of `size`; records the types sent. */
  *batches(size: number, dayStart: number, onRecordBytes: (bytes: number) => void) {
    const random = mulberry32(this.opts.seed + 1);
    const order = new Int32Array(this.events);
    let i = 0;
    for (let r = 0; r < this.opts.sites; r++) {
      const n = el(this.users, r) * this.opts.eventsPerUser;
      order.fill(r, i, i + n);
      i += n;
    }
    shuffle(order, random);
    const seen = new Int32Array(this.opts.sites);
    const shares = TYPES.map((t) => EVENT_TYPE_SHARES[t]);
    let batch: ClickPayload[] = [];
    for (let e = 0; e < order.length; e++) {
      const r = el(order, e);
      const nth = el(seen, r);
      seen[r] = nth + 1;
      let t = 0;
      let draw = random();
      while (t < shares.length - 1 && draw >= (shares[t] ?? 0)) {
        draw -= shares[t] ?? 0;
        t++;
      }
      this.typeMask[r] = el(this.typeMask, r) | (1 << t);
      const slot = r * TYPES.length + t;
      this.typeEvents[slot] = el(this.typeEvents, slot) + 1;
      const payload: ClickPayload = {
        user_id: generatorUserId(Math.floor(nth / this.opts.eventsPerUser)),
        site_id: el(this.siteIds, r),
        event: at(TYPES, t),
        sku: `sku-${String(Math.floor(random() * 10_000)).padStart(4, "0")}`,
        amount: 1 + Math.floor(random() * 10),
        event_time: generatorTime(dayStart + Math.floor(random() * (DAY_MS - 1))),
      };
      if (e % 97 === 0) onRecordBytes(Buffer.byteLength(JSON.stringify(payload)));
      batch.push(payload);
      if (batch.length === size) {
        yield batch;
        batch = [];
      }
    }
    if (batch.length > 0) yield batch;
  }
}

function shuffle(array: Int32Array, random: () => number): void {
  for (let i = array.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    const a = el(array, i);
    array[i] = el(array, j);
    array[j] = a;
  }
}

// ---------------------------------------------------------------------------------------------
// The servers: per-primary clients, command statistics and process CPU.

interface CmdStat {
  calls: number;
  usec: number;
}

function parseCommandStats(info: string): Map<string, CmdStat> {
  const stats = new Map<string, CmdStat>();
  for (const line of info.split(/\r?\n/)) {
    const [, command, calls, usec] = /^cmdstat_([^:]+):calls=(\d+),usec=(\d+)/.exec(line) ?? [];
    if (command) stats.set(command, { calls: Number(calls), usec: Number(usec) });
  }
  return stats;
}

function infoField(info: string, field: string): number {
  const m = new RegExp(`^${field}:(\\d+)`, "m").exec(info);
  if (!m) throw new Error(`INFO has no ${field}`);
  return Number(m[1]);
}

/** What the primaries did over an interval: commands, CPU, bytes received. */
interface ServerWork {
  readonly commands: { command: string; calls: number; usec: number }[];
  readonly commandUsec: number;
  readonly processCpuMs: number;
  readonly netInputBytes: number;
}

class Primaries {
  readonly clients: Redis[];
  /** Slot → index of the primary serving it. */
  private readonly slotOwner = new Int32Array(16384).fill(-1);
  private clockTicks = 100;

  constructor(
    readonly ports: readonly number[],
    readonly pids: readonly number[],
    host: string,
  ) {
    this.clients = ports.map((port) => {
      const client = new Redis({ host, port, enableAutoPipelining: true });
      client.on("error", () => {});
      return client;
    });
  }

  async init(): Promise<void> {
    const first = at(this.clients, 0, "primary");
    const slots = (await first.call("CLUSTER", "SLOTS")) as [number, number, [string, number]][];
    for (const [from, to, [, port]] of slots) {
      const owner = this.ports.indexOf(port);
      for (let s = from; s <= to; s++) this.slotOwner[s] = owner;
    }
    try {
      this.clockTicks = Number((await run("getconf", ["CLK_TCK"])).stdout.trim()) || 100;
    } catch {
      this.clockTicks = 100;
    }
  }

  /** Primary of each hash tag seen: every key here has one, and a site's keys share it. */
  private readonly ownerOfTag = new Map<string, number>();

  /** Which primary serves a key (by its slot, as the cluster routes it). */
  indexOf(key: string): number {
    const open = key.indexOf("{");
    const close = open < 0 ? -1 : key.indexOf("}", open + 1);
    const tag = close > open + 1 ? key.slice(open + 1, close) : undefined;
    const known = tag === undefined ? undefined : this.ownerOfTag.get(tag);
    if (known !== undefined) return known;
    const slot = new Command("exists", [key]).getSlot();
    const owner = el(this.slotOwner, slot);
    if (owner < 0) throw new Error(`no primary serves slot ${slot}`);
    if (tag !== undefined) this.ownerOfTag.set(tag, owner);
    return owner;
  }

  /** The client of the primary that serves a key. */
  of(key: string): Redis {
    return at(this.clients, this.indexOf(key), "primary");
  }

  close(): void {
    for (const c of this.clients) c.disconnect();
  }

  async resetStats(): Promise<void> {
    await Promise.all(this.clients.map((c) => c.config("RESETSTAT")));
  }

  /** CPU time (user + system) of the redis-server processes, ms; 0 where /proc is missing. */
  async processCpuMs(): Promise<number> {
    let ticks = 0;
    for (const pid of this.pids) {
      try {
        const stat = await readFile(`/proc/${pid}/stat`, "utf8");
        const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
        ticks += Number(fields[11]) + Number(fields[12]);
      } catch {
        return 0;
      }
    }
    return (ticks / this.clockTicks) * 1000;
  }

  async netInputBytes(): Promise<number> {
    const infos = await Promise.all(this.clients.map((c) => c.info("stats")));
    return infos.reduce((n, info) => n + infoField(info, "total_net_input_bytes"), 0);
  }

  async usedMemory(): Promise<number> {
    const infos = await Promise.all(this.clients.map((c) => c.info("memory")));
    return infos.reduce((n, info) => n + infoField(info, "used_memory"), 0);
  }

  /** Runs `fn` and returns what the servers did meanwhile. */
  async measure(fn: () => Promise<void>): Promise<ServerWork> {
    await this.resetStats();
    const cpu0 = await this.processCpuMs();
    const net0 = await this.netInputBytes();
    await fn();
    const cpu1 = await this.processCpuMs();
    const net1 = await this.netInputBytes();
    const infos = await Promise.all(this.clients.map((c) => c.info("commandstats")));
    const total = new Map<string, CmdStat>();
    for (const stats of infos.map(parseCommandStats)) {
      for (const [name, s] of stats) {
        const t = total.get(name) ?? { calls: 0, usec: 0 };
        t.calls += s.calls;
        t.usec += s.usec;
        total.set(name, t);
      }
    }
    // The statistics' own commands (INFO, CONFIG) are not the workload's.
    for (const name of ["info", "config|resetstat", "config", "cluster|slots"]) total.delete(name);
    const commands = [...total]
      .map(([command, s]) => ({ command, ...s }))
      .sort((a, b) => b.usec - a.usec);
    return {
      commands,
      commandUsec: commands.reduce((n, c) => n + c.usec, 0),
      processCpuMs: cpu1 - cpu0,
      netInputBytes: net1 - net0,
    };
  }
}

/** Promises `make(item)` for every item, at most `width` at a time in flight. */
async function pipelined<T, R>(
  items: readonly T[],
  width: number,
  make: (item: T) => Promise<R>,
): Promise<R[]> {
  const out: R[] = [];
  for (let i = 0; i < items.length; i += width) {
    out.push(...(await Promise.all(items.slice(i, i + width).map(make))));
  }
  return out;
}

/**
 * Writes a batch's planned commands (ingest.ts HllCommand) pipelined, one socket per primary,
 * each command on the primary that serves its key. Every reply of these commands is one line
 * (an integer, or an error), so replies are counted by line; an error reply fails the batch.
 */
class RespWriter {
  private constructor(
    private readonly primaries: Primaries,
    private readonly conns: RespConnection[],
  ) {}

  static async open(primaries: Primaries): Promise<RespWriter> {
    const conns = await Promise.all(
      primaries.ports.map(
        (port) =>
          new Promise<RespConnection>((resolve, reject) => {
            const socket = createConnection({ host: "127.0.0.1", port }, () =>
              resolve(new RespConnection(socket)),
            );
            socket.once("error", reject);
          }),
      ),
    );
    return new RespWriter(primaries, conns);
  }

  send(commands: readonly HllCommand[]): Promise<void> {
    const texts = this.conns.map(() => [] as string[]);
    const counts = this.conns.map(() => 0);
    for (const command of commands) {
      const i = this.primaries.indexOf(command.key);
      at(texts, i).push(resp(argsOf(command)));
      counts[i] = (counts[i] ?? 0) + 1;
    }
    return Promise.all(
      this.conns.map((conn, i) => conn.send(at(texts, i).join(""), counts[i] ?? 0)),
    ).then(() => undefined);
  }

  close(): void {
    for (const conn of this.conns) conn.socket.destroy();
  }
}

class RespConnection {
  private readonly waiting: {
    left: number;
    error?: string;
    resolve(): void;
    reject(e: Error): void;
  }[] = [];
  private lineStart = true;
  private errorLine: string | undefined;

  constructor(readonly socket: Socket) {
    socket.on("data", (chunk: Buffer) => this.receive(chunk));
    socket.on("error", (err) => {
      for (const w of this.waiting.splice(0)) w.reject(err);
    });
  }

  send(text: string, replies: number): Promise<void> {
    if (replies === 0) return Promise.resolve();
    return new Promise((resolve, reject) => {
      this.waiting.push({ left: replies, resolve, reject });
      this.socket.write(text);
    });
  }

  /** Counts reply lines; a line starting with "-" is an error, kept for the batch's failure. */
  private receive(chunk: Buffer): void {
    let from = 0;
    while (from < chunk.length) {
      if (this.lineStart && chunk[from] === 45) this.errorLine = "";
      const end = chunk.indexOf(10, from);
      if (end < 0) {
        if (this.errorLine !== undefined) this.errorLine += chunk.toString("latin1", from);
        this.lineStart = false;
        return;
      }
      if (this.errorLine !== undefined) this.errorLine += chunk.toString("latin1", from, end);
      from = end + 1;
      this.lineStart = true;
      const w = this.waiting[0];
      if (w === undefined) throw new Error("a reply came that no command waited for");
      if (this.errorLine !== undefined) w.error ??= this.errorLine.trim();
      this.errorLine = undefined;
      if (--w.left === 0) {
        this.waiting.shift();
        if (w.error === undefined) w.resolve();
        else w.reject(new Error(`Redis answered ${w.error}`));
      }
    }
  }
}

function argsOf(command: HllCommand): string[] {
  switch (command.name) {
    case "pfadd":
      return ["PFADD", command.key, ...command.args];
    case "expireat":
      return ["EXPIREAT", command.key, String(command.at), "NX"];
    case "sadd":
      return ["SADD", command.key, ...command.args];
    case "asOf":
      return ["ZADD", command.key, command.mode, String(command.at), command.member];
  }
}

function resp(args: readonly string[]): string {
  let out = `*${args.length}\r\n`;
  for (const a of args) out += `$${Buffer.byteLength(a)}\r\n${a}\r\n`;
  return out;
}

// ---------------------------------------------------------------------------------------------
// Bookkeeping: every sketchstream:* key on each primary.

const SITE_SET_RE = /^sketchstream:\{site_id=[^}]*\}:/;
/** How many per-site event-type sets are measured (they are all alike: a few short members). */
const SITE_SET_SAMPLE = 500;

interface BookkeepingKey {
  key: string;
  port: number;
  type: string;
  members: number;
  bytes: number;
}

interface BookkeepingScan {
  readonly perPrimary: { port: number; keys: number; bytes: number }[];
  readonly maxOverMean: number;
  readonly keys: BookkeepingKey[];
  /** Per-site event-type sets seen, and a sample of their sizes. */
  readonly siteSets: number;
  readonly siteSetSampleBytes: number[];
}

async function scanBookkeeping(primaries: Primaries): Promise<BookkeepingScan> {
  const keys: BookkeepingKey[] = [];
  let siteSets = 0;
  const siteSetSampleBytes: number[] = [];
  for (const [i, client] of primaries.clients.entries()) {
    const port = at(primaries.ports, i);
    let cursor = "0";
    do {
      const [next, found] = await client.scan(cursor, "MATCH", "sketchstream:*", "COUNT", 10_000);
      cursor = next;
      // The site sets are counted, a few hundred measured; every other key measured, pipelined.
      const measured = found.map(async (key) => {
        if (SITE_SET_RE.test(key)) {
          siteSets++;
          if (siteSetSampleBytes.length < SITE_SET_SAMPLE) {
            siteSetSampleBytes.push(0);
            const at = siteSetSampleBytes.length - 1;
            siteSetSampleBytes[at] = Number(await client.memory("USAGE", key, "SAMPLES", 0));
          }
          return;
        }
        const type = await client.type(key);
        const [members, bytes] = await Promise.all([
          type === "set"
            ? client.scard(key)
            : type === "zset"
              ? client.zcard(key)
              : type === "hash"
                ? client.hlen(key)
                : 1,
          client.memory("USAGE", key, "SAMPLES", 0),
        ]);
        keys.push({ key, port, type, members, bytes: Number(bytes) });
      });
      await Promise.all(measured);
    } while (cursor !== "0");
  }
  const perPrimary = primaries.ports.map((port) => {
    const mine = keys.filter((k) => k.port === port);
    return { port, keys: mine.length, bytes: mine.reduce((n, k) => n + k.bytes, 0) };
  });
  const mean = perPrimary.reduce((n, p) => n + p.bytes, 0) / Math.max(1, perPrimary.length);
  const maxOverMean = mean > 0 ? Math.max(...perPrimary.map((p) => p.bytes)) / mean : 0;
  keys.sort((a, b) => b.bytes - a.bytes);
  return { perPrimary, maxOverMean, keys, siteSets, siteSetSampleBytes };
}

/** Bytes per member of the bookkeeping keys whose name has `:<role>` (all groups together). */
function bytesPerMember(scan: BookkeepingScan, role: string): number {
  const matching = scan.keys.filter((k) => new RegExp(`:${role}(:|$)`).test(k.key));
  const members = matching.reduce((n, k) => n + k.members, 0);
  return members > 0 ? matching.reduce((n, k) => n + k.bytes, 0) / members : 0;
}

// ---------------------------------------------------------------------------------------------
// HLL memory.

/** PFADDs distinct ids one by one into a fresh key until it turns dense. */
async function denseThreshold(primaries: Primaries, day: string): Promise<ScaleConstants["hll"]> {
  // A site id no population uses (they are numbers), as long as a six-digit one.
  const key = countingKey("visitors", "hll-probe", day);
  const client = primaries.of(key);
  const [, maxBytes] = (await client.config("GET", "hll-sparse-max-bytes")) as [string, string];
  await client.del(key);
  const checkpoints = new Set([1, 2, 5, 10, 20, 50, 100, 200, 300, 500, 750, 1000, 1500, 2000]);
  const samples: { cardinality: number; bytes: number; dense: boolean }[] = [];
  const memory = async () => Number(await client.memory("USAGE", key, "SAMPLES", 0));
  // One id at a time, each PFADD followed by a look at the header (and, at the checkpoints, the
  // key's size), pipelined 100 ids at a time: the replies come in order, so the first dense
  // header is the exact count at which the key turned dense.
  const CHUNK = 100;
  let denseAt = 0;
  for (let from = 1; denseAt === 0; from += CHUNK) {
    if (from > 1_000_000) throw new Error(`${key} is still sparse after 1,000,000 distinct ids`);
    const steps = Array.from({ length: CHUNK }, (_, i) => {
      const n = from + i;
      const added = client.pfadd(key, `u-${n}`);
      const header = client.getrangeBuffer(key, 4, 4);
      const size = checkpoints.has(n) ? memory() : undefined;
      return { n, added, header, size };
    });
    for (const step of steps) {
      await step.added;
      const dense = (await step.header)[0] === 0;
      const bytes = step.size === undefined ? undefined : await step.size;
      if (denseAt !== 0) continue;
      if (bytes !== undefined) samples.push({ cardinality: step.n, bytes, dense });
      if (dense) denseAt = step.n;
    }
  }
  // One sparse sample just below the threshold, rebuilt (PFADD of n-1 ids into a fresh key).
  const below = `${key}:below`;
  await client.del(below);
  for (let i = 1; i < denseAt; i += 1000) {
    const ids = Array.from({ length: Math.min(1000, denseAt - i) }, (_, j) => `u-${i + j}`);
    await client.pfadd(below, ...ids);
  }
  const belowBytes = Number(await client.memory("USAGE", below, "SAMPLES", 0));
  samples.push({ cardinality: denseAt - 1, bytes: belowBytes, dense: false });
  const denseBytes = await memory();
  samples.push({ cardinality: denseAt, bytes: denseBytes, dense: true });
  await client.del(key, below);
  samples.sort((a, b) => a.cardinality - b.cardinality);
  return {
    sparseMaxBytes: Number(maxBytes),
    denseAtCardinality: denseAt,
    denseBytes,
    keyNameBytes: Buffer.byteLength(key),
    bytesByCardinality: samples,
  };
}

interface KeySample {
  readonly family: "uv" | "ev";
  readonly period: "day" | "week" | "month";
  /** Stratum: 0 head, 1 tail. */
  readonly stratum: 0 | 1;
  readonly bytes: number;
  readonly dense: boolean;
}

const FAMILIES: readonly { readonly family: "uv" | "ev"; readonly metric: Metric }[] = [
  { family: "uv", metric: "visitors" },
  { family: "ev", metric: "events" },
];

/** The ranks measured: every head site, then a seeded sample of the rest. */
function sampleRanks(opts: ScaleBenchOptions): { head: number[]; tail: number[] } {
  const headCount = Math.min(opts.headSites, opts.sites);
  const head = Array.from({ length: headCount }, (_, r) => r);
  const rest = opts.sites - headCount;
  const want = Math.min(opts.tailSample, rest);
  const random = mulberry32(opts.seed + 2);
  const picked = new Set<number>();
  while (picked.size < want) picked.add(headCount + Math.floor(random() * rest));
  return { head, tail: [...picked].sort((a, b) => a - b) };
}

/** MEMORY USAGE and encoding of every key of the sampled sites (missing keys are skipped). */
async function measureKeys(
  primaries: Primaries,
  population: Population,
  ranks: { head: number[]; tail: number[] },
  day: string,
): Promise<KeySample[]> {
  const labels = { day, week: isoWeekOf(day), month: monthOf(day) } as const;
  const wanted: Omit<KeySample, "bytes" | "dense">[] = [];
  const keys: string[] = [];
  const strata: [0 | 1, number[]][] = [
    [0, ranks.head],
    [1, ranks.tail],
  ];
  for (const [stratum, list] of strata) {
    for (const rank of list) {
      const site = population.siteId(rank);
      const scopes = [undefined, ...population.typesOf(rank)];
      for (const { family, metric } of FAMILIES) {
        for (const period of ["day", "week", "month"] as const) {
          for (const event of scopes) {
            wanted.push({ family, period, stratum });
            keys.push(countingKey(metric, site, labels[period], event));
          }
        }
      }
    }
  }
  const measured = await pipelined(keys, 20_000, async (key) => {
    const client = primaries.of(key);
    const [bytes, header] = await Promise.all([
      client.memory("USAGE", key, "SAMPLES", 0),
      client.getrangeBuffer(key, 4, 4),
    ]);
    return { bytes: bytes === null ? undefined : Number(bytes), dense: header[0] === 0 };
  });
  const out: KeySample[] = [];
  for (const [i, m] of measured.entries()) {
    if (m.bytes === undefined) continue;
    out.push({ ...at(wanted, i), bytes: m.bytes, dense: m.dense });
  }
  return out;
}

/**
 * Memory per family and period at the bench's number of sites, from the samples: each stratum's
 * mean per site it sampled, times the sites it stands for. Week and month keys exist only for
 * merged sites: their means are per merged site of the stratum (the merged pages are a random
 * share of the sites, since site ids are a permutation), i.e. what a full run would write.
 */
function familyPeriodMemory(
  samples: readonly KeySample[],
  strataSizes: readonly [number, number],
  strataSampled: readonly [number, number],
  mergedSampled: readonly [number, number],
): ScaleConstants["memory"]["byFamilyPeriod"] {
  const rows: ScaleConstants["memory"]["byFamilyPeriod"] = [];
  for (const { family } of FAMILIES) {
    for (const period of ["day", "week", "month"] as const) {
      let keys = 0;
      let bytes = 0;
      let dense = 0;
      let sampled = 0;
      for (const stratum of [0, 1] as const) {
        const mine = samples.filter(
          (s) => s.family === family && s.period === period && s.stratum === stratum,
        );
        const sitesBehind = period === "day" ? strataSampled[stratum] : mergedSampled[stratum];
        if (sitesBehind === 0 || mine.length === 0) continue;
        const weight = strataSizes[stratum] / sitesBehind;
        keys += mine.length * weight;
        bytes += mine.reduce((n, s) => n + s.bytes, 0) * weight;
        dense += mine.filter((s) => s.dense).length * weight;
        sampled += mine.length;
      }
      rows.push({
        family,
        period,
        keys,
        sampledKeys: sampled,
        sparseShare: keys > 0 ? 1 - dense / keys : 0,
        denseShare: keys > 0 ? dense / keys : 0,
        bytesPerKey: keys > 0 ? bytes / keys : 0,
        bytes,
        source:
          period === "day"
            ? `every key of ${fmtInt(strataSampled[0])} largest and ${fmtInt(strataSampled[1])} other sampled sites, weighted to ${fmtInt(strataSizes[0] + strataSizes[1])} sites`
            : `keys of the ${fmtInt(mergedSampled[0] + mergedSampled[1])} sampled sites the merged pages covered, scaled to all ${fmtInt(strataSizes[0] + strataSizes[1])} sites (a full run)`,
      });
    }
  }
  return rows;
}

// ---------------------------------------------------------------------------------------------

async function redisServerVersion(): Promise<string> {
  const { stdout } = await run("redis-server", ["--version"]);
  return stdout.trim();
}

/**
 * Runs the benchmark, prints its report with `log`, writes and returns the constants. `status`
 * takes the status lines (default: the terminal's status line on stderr).
 */
export async function runScaleBench(
  opts: ScaleBenchOptions,
  closers: Closer[],
  log: (line: string) => void = console.log,
  status: (text: string) => void = progress,
): Promise<ScaleConstants> {
  const started = performance.now();
  const startedAt = opts.nowMs;
  const clock = () => startedAt + Math.round(performance.now() - started);
  const day = dayOf(opts.nowMs - DAY_MS);

  const { cluster, env } = await startBenchCluster(closers);
  silencePowertools();
  const { createConsumerHandler } = await import("../functions/consumer/handler.js");
  const { createRollupHandlers } = await import("../functions/rollup/handler.js");
  const consumer = createConsumerHandler(env, { now: clock });
  closers.push(() => consumer.close());
  const rollup = createRollupHandlers(env, { now: clock });
  closers.push(() => rollup.close());
  const primaries = new Primaries(cluster.ports, cluster.pids, cluster.host);
  closers.push(() => primaries.close());
  await primaries.init();

  // --- HLL encoding threshold -----------------------------------------------------------------
  status("HLL: PFADD one by one until a key turns dense…");
  const hll = await denseThreshold(primaries, day);

  // --- consumer ---------------------------------------------------------------------------------
  const population = new Population(opts);
  const usedBefore = await primaries.usedMemory();
  // Two phases over one shuffled stream. Timed: the first `timedBatches` batches through the
  // handler itself, one at a time, as one Lambda invocation works (its rate, client CPU and the
  // servers' work per event). Load: the rest, planned by the handler's own planBatch and written
  // pipelined per primary (RESP on one socket each), which only loads the data faster: the
  // client library's cost per command would make a million sites take most of an hour.
  let handlerMs = 0;
  let clientCpuUs = 0;
  let timedEvents = 0;
  let batches = 0;
  let loadMs = 0;
  let loadEvents = 0;
  const recordBytes: number[] = [];
  const stream = population.batches(opts.batchSize, dayStartMs(day), (b) => recordBytes.push(b));
  const consumerWork = await primaries.measure(async () => {
    while (batches < opts.timedBatches) {
      const next = stream.next();
      if (next.done) break;
      const event = kinesisEvent(next.value);
      batches++;
      const cpu = process.cpuUsage();
      const t0 = performance.now();
      const result = await consumer(event);
      handlerMs += performance.now() - t0;
      const used = process.cpuUsage(cpu);
      clientCpuUs += used.user + used.system;
      if (result.batchItemFailures.length > 0) {
        throw new Error(`the consumer failed batch ${batches}: ${JSON.stringify(result)}`);
      }
      timedEvents += next.value.length;
      if (batches % 20 === 0) {
        status(
          `consumer (handler, one batch at a time): ${fmtInt(timedEvents)} events, ${fmtInt((timedEvents / handlerMs) * 1000)}/s`,
        );
      }
    }
  });
  const { retention } = loadRuntimeConfig(env);
  const writer = await RespWriter.open(primaries);
  closers.push(() => writer.close());
  const loadWork = await primaries.measure(async () => {
    const l0 = performance.now();
    const inFlight = new Set<Promise<void>>();
    let failure: unknown;
    for (const batch of stream) {
      const records = kinesisEvent(batch).Records.map(
        (r): StreamRecord => ({
          sequenceNumber: r.kinesis.sequenceNumber,
          partitionKey: r.kinesis.partitionKey,
          data: r.kinesis.data,
          eventSourceArn: r.eventSourceARN,
          eventId: r.eventID,
        }),
      );
      const plan = planBatch(records, { nowMs: clock(), retention });
      if (plan.rejected.length > 0) {
        throw new Error(`planBatch rejected ${plan.rejected.length} generated records`);
      }
      batches++;
      loadEvents += batch.length;
      const p: Promise<void> = writer
        .send(plan.commands)
        .catch((err: unknown) => {
          failure ??= err;
        })
        .finally(() => inFlight.delete(p));
      inFlight.add(p);
      while (inFlight.size >= 4) await Promise.race(inFlight);
      if (failure !== undefined) throw failure;
      if (batches % 100 === 0) {
        status(
          `consumer (planBatch, pipelined): ${fmtInt(timedEvents + loadEvents)}/${fmtInt(population.events)} events, ${fmtInt((loadEvents / (performance.now() - l0)) * 1000)}/s`,
        );
      }
    }
    await Promise.all(inFlight);
    if (failure !== undefined) throw failure;
    loadMs = performance.now() - l0;
  });
  // The load wrote what the handler would have: the largest site counts its users.
  const largest = countingKey("visitors", population.siteId(0), day);
  const largestCount = await primaries.of(largest).pfcount(largest);
  const largestUsers = el(population.users, 0);
  if (Math.abs(largestCount - largestUsers) > largestUsers * 0.05 + 2) {
    throw new Error(
      `${largest} counts ${largestCount}; the site had ${largestUsers} users: the load did not write what it should`,
    );
  }
  const usedAfterIngest = await primaries.usedMemory();
  status("bookkeeping after the ingest: SCAN sketchstream:* on every primary…");
  const afterIngest = await scanBookkeeping(primaries);

  // --- rollup: plan ---------------------------------------------------------------------------
  status("rollup: plan…");
  const executionId = `arn:aws:states:us-east-1:000000000000:execution:sketchstream-rollup:scale-${opts.seed}`;
  const startTime = new Date(clock()).toISOString();
  const t0 = performance.now();
  const planned = await rollup.plan({ input: {}, executionId, startTime, attempt: 0 });
  const planMs = performance.now() - t0;
  if (planned.status !== "ready")
    throw new Error(`the plan found the lock held: ${planned.heldBy}`);
  status("bookkeeping after the plan: SCAN sketchstream:* on every primary…");
  const afterPlan = await scanBookkeeping(primaries);

  // --- rollup: merges ---------------------------------------------------------------------------
  const pages = planned.pages;
  const pagesToMerge =
    opts.mergeSites >= opts.sites
      ? pages.length
      : Math.max(
          1,
          Math.min(pages.length, Math.ceil((pages.length * opts.mergeSites) / opts.sites)),
        );
  const results: { page: number; merged: number; keysWritten: number; keysRemoved: number }[] = [];
  let mergeWallMs = 0;
  const mergeWork = await primaries.measure(async () => {
    const queue = pages.slice(0, pagesToMerge);
    const m0 = performance.now();
    await Promise.all(
      Array.from({ length: Math.min(opts.concurrency, queue.length) }, async () => {
        for (let page = queue.shift(); page !== undefined; page = queue.shift()) {
          results.push(await rollup.merge({ plan: planned.plan, page }));
          status(`rollup: merged ${results.length}/${pagesToMerge} of ${pages.length} pages`);
        }
      }),
    );
    mergeWallMs = performance.now() - m0;
  });
  // Work items (a scheduled run's: touched site-days) of the pages merged, the first ones: the
  // pages' outputs count site-periods instead (each item merges into its week and its month).
  const mergedItems = Math.min(planned.plan.items, results.length * planned.plan.pageSize);
  const mergedSitePeriods = results.reduce((n, r) => n + r.merged, 0);
  const everyPage = pagesToMerge === pages.length;
  await rollup.finish(
    everyPage
      ? { plan: planned.plan, results, outcome: "succeeded" }
      : { executionId, outcome: "failed" },
  );

  // Which sites the merged pages covered: those whose week key now exists.
  status("which sites were merged…");
  const week = isoWeekOf(day);
  const ranks = Array.from({ length: opts.sites }, (_, r) => r);
  const merged = await pipelined(ranks, 20_000, async (rank) => {
    const key = countingKey("visitors", population.siteId(rank), week);
    return (await primaries.of(key).exists(key)) === 1;
  });
  const mergedSites = merged.filter(Boolean).length;

  // --- memory -------------------------------------------------------------------------------------
  status("memory: MEMORY USAGE of the sampled sites' keys…");
  const sample = sampleRanks(opts);
  const samples = await measureKeys(primaries, population, sample, day);
  const headSize = sample.head.length;
  const strataSizes: [number, number] = [headSize, opts.sites - headSize];
  const strataSampled: [number, number] = [sample.head.length, sample.tail.length];
  const mergedSampled: [number, number] = [
    sample.head.filter((r) => merged[r]).length,
    sample.tail.filter((r) => merged[r]).length,
  ];
  const byFamilyPeriod = familyPeriodMemory(samples, strataSizes, strataSampled, mergedSampled);
  const siteSetMean =
    afterIngest.siteSetSampleBytes.reduce((n, b) => n + b, 0) /
    Math.max(1, afterIngest.siteSetSampleBytes.length);
  const dayBytes = byFamilyPeriod
    .filter((row) => row.period === "day")
    .reduce((n, row) => n + row.bytes, 0);
  const keyBytesEstimate = dayBytes + afterIngest.siteSets * siteSetMean;
  const keysEstimate =
    byFamilyPeriod.filter((row) => row.period === "day").reduce((n, row) => n + row.keys, 0) +
    afterIngest.siteSets;
  const bookkeepingAfterIngest = afterIngest.perPrimary.reduce((n, p) => n + p.bytes, 0);
  const usedMemoryDeltaBytes = usedAfterIngest - usedBefore;
  const overheadFactor =
    keyBytesEstimate > 0 ? (usedMemoryDeltaBytes - bookkeepingAfterIngest) / keyBytesEstimate : 0;

  // --- Step Functions ---------------------------------------------------------------------------
  const path = rollupSuccessPath();
  const versions = { node: process.version, redisServer: await redisServerVersion() };
  status("");

  const events = population.events;
  const touchedMembers = afterIngest.keys
    .filter((k) => /:touched(:|$)/.test(k.key))
    .reduce((n, k) => n + k.members, 0);
  const fullMergeMs = mergedItems > 0 ? (mergeWallMs * planned.plan.items) / mergedItems : 0;
  const itemsPerSecond = mergeWallMs > 0 ? (mergedItems / mergeWallMs) * 1000 : 0;
  const cpu = cpus();
  const constants: ScaleConstants = {
    formatVersion: SCALE_CONSTANTS_FORMAT,
    measuredAt: dayOf(opts.nowMs),
    machine: {
      cores: cpu.length,
      cpuModel: cpu[0]?.model.trim() ?? "unknown",
      memoryBytes: totalmem(),
      platform: process.platform,
      arch: process.arch,
    },
    versions,
    inputs: {
      sites: opts.sites,
      zipfExponent: opts.zipf,
      maxUsersPerSite: opts.maxUsers,
      eventsPerUser: opts.eventsPerUser,
      eventTypeShares: { ...EVENT_TYPE_SHARES },
      batchSize: opts.batchSize,
      mergeSites: opts.mergeSites,
      mapConcurrency: opts.concurrency,
      seed: opts.seed,
      day,
      primaries: cluster.ports.length,
      memorySample: { headSites: sample.head.length, tailSites: sample.tail.length },
    },
    generated: {
      events,
      users: population.totalUsers,
      touchedMembers,
      recordBytes: recordBytes.reduce((n, b) => n + b, 0) / Math.max(1, recordBytes.length),
    },
    hll,
    memory: {
      byFamilyPeriod,
      usedMemoryDeltaBytes,
      keyBytesEstimate,
      overheadFactor,
      keysEstimate,
      perKeyOverheadBytes:
        keysEstimate > 0
          ? (usedMemoryDeltaBytes - bookkeepingAfterIngest - keyBytesEstimate) / keysEstimate
          : 0,
      siteEventTypesBytesPerSite: siteSetMean,
    },
    bookkeeping: {
      afterIngest: snapshot(afterIngest),
      afterPlan: snapshot(afterPlan),
      bytesPerTouchedMember: bytesPerMember(afterIngest, "touched"),
      bytesPerWorkItem: bytesPerMember(afterPlan, "work"),
      bytesPerSiteIndexMember: bytesPerMember(afterIngest, "sites"),
    },
    consumer: {
      how: `createConsumerHandler (the handler itself) called with Kinesis-shaped batches (local/kinesis-event.ts), one at a time: the first ${fmtInt(timedEvents)} events; the other ${fmtInt(loadEvents)} were planned by planBatch and written pipelined per primary to load them faster`,
      events,
      batches,
      timedEvents,
      handlerMs,
      eventsPerSecond: (timedEvents / handlerMs) * 1000,
      loadEvents,
      loadMs,
      loadEventsPerSecond: loadMs > 0 ? (loadEvents / loadMs) * 1000 : 0,
      clientCpuUsPerEvent: clientCpuUs / timedEvents,
      serverCommandUsPerEvent: consumerWork.commandUsec / timedEvents,
      serverProcessCpuUsPerEvent: (consumerWork.processCpuMs * 1000) / timedEvents,
      netInputBytesPerEvent: consumerWork.netInputBytes / timedEvents,
      loadServerProcessCpuUsPerEvent:
        loadEvents > 0 ? (loadWork.processCpuMs * 1000) / loadEvents : 0,
      commands: consumerWork.commands,
    },
    rollup: {
      how: `createRollupHandlers: plan, then merge of ${everyPage ? "every page" : `the first ${pagesToMerge} of ${pages.length} pages (about ${fmtInt(opts.mergeSites)} sites)`}, ${opts.concurrency} at a time, then finish`,
      planMs,
      items: planned.plan.items,
      pageSize: planned.plan.pageSize,
      pages: pages.length,
      mergedPages: results.length,
      mergedItems,
      mergedSitePeriods,
      mergedSites,
      mapConcurrency: opts.concurrency,
      mergeWallMs,
      itemsPerSecond,
      perWorkerItemsPerSecond:
        itemsPerSecond / Math.min(opts.concurrency, Math.max(1, results.length)),
      fullMergeMs,
      extrapolated: !everyPage,
      serverCommandUsPerItem: mergedItems > 0 ? mergeWork.commandUsec / mergedItems : 0,
      serverProcessCpuUsPerItem:
        mergedItems > 0 ? (mergeWork.processCpuMs * 1000) / mergedItems : 0,
      pfmergeUsPerCall: perCall(mergeWork, "pfmerge"),
      netInputBytesPerItem: mergedItems > 0 ? mergeWork.netInputBytes / mergedItems : 0,
      commands: mergeWork.commands,
    },
    stepFunctions: {
      fixedStates: [...path.fixedStates],
      perPageStates: [...path.perPageStates],
      pages: pages.length,
      transitionsPerRun: transitionsPerRun(path, pages.length),
    },
    wallMs: performance.now() - started,
  };
  const checked = v.parse(ScaleConstantsSchema, constants);
  await mkdir(dirname(opts.output), { recursive: true });
  await writeFile(opts.output, `${JSON.stringify(checked, null, 2)}\n`);
  report(checked, afterIngest, afterPlan, opts, log);
  return checked;
}

function perCall(work: ServerWork, command: string): number {
  const c = work.commands.find((x) => x.command === command);
  return c && c.calls > 0 ? c.usec / c.calls : 0;
}

function snapshot(scan: BookkeepingScan): ScaleConstants["bookkeeping"]["afterIngest"] {
  return { perPrimary: scan.perPrimary, maxOverMean: scan.maxOverMean, keys: scan.keys };
}

// ---------------------------------------------------------------------------------------------

const mib = (bytes: number) => (bytes / 2 ** 20).toFixed(1);
const us = (n: number) => n.toFixed(2);

function report(
  c: ScaleConstants,
  afterIngest: BookkeepingScan,
  afterPlan: BookkeepingScan,
  opts: ScaleBenchOptions,
  log: (line: string) => void,
): void {
  const i = c.inputs;
  log("sketchstream scale benchmark");
  log(
    `  ${c.machine.cores} CPUs (${c.machine.cpuModel}), ${mib(c.machine.memoryBytes)} MiB; node ${c.versions.node}; ${c.versions.redisServer}; cluster of ${i.primaries} primaries on loopback`,
  );
  log(
    `  ${fmtInt(i.sites)} sites, each active on ${i.day}; users of the site of rank r: max(1, round(${fmtInt(i.maxUsersPerSite)} / r^${i.zipfExponent})) = ${fmtInt(c.generated.users)} users; ${i.eventsPerUser} events per user = ${fmtInt(c.generated.events)} events; event types ${Object.entries(
      i.eventTypeShares,
    )
      .map(([t, s]) => `${t} ${(s * 100).toFixed(0)}%`)
      .join(", ")}; mean record ${c.generated.recordBytes.toFixed(0)} bytes`,
  );
  log("");
  const k = c.consumer;
  log(`consumer: ${k.how}`);
  log(
    `  handler, one batch at a time: ${fmtInt(k.timedEvents)} events in ${(k.handlerMs / 1000).toFixed(1)} s = ${fmtInt(k.eventsPerSecond)} events/s per invocation (batches of ${fmtInt(i.batchSize)})`,
  );
  log(
    `  per event (handler batches): client CPU ${us(k.clientCpuUsPerEvent)} µs; server commands ${us(k.serverCommandUsPerEvent)} µs (INFO commandstats, all primaries); redis-server process CPU ${us(k.serverProcessCpuUsPerEvent)} µs; ${k.netInputBytesPerEvent.toFixed(0)} bytes received`,
  );
  log(
    `  load of the other ${fmtInt(k.loadEvents)} events (planBatch, pipelined): ${(k.loadMs / 1000).toFixed(1)} s = ${fmtInt(k.loadEventsPerSecond)} events/s; redis-server process CPU ${us(k.loadServerProcessCpuUsPerEvent)} µs per event`,
  );
  log(
    table(
      ["command", "calls", "calls/event", "µs/call", "µs/event"],
      k.commands
        .slice(0, 8)
        .map((cmd) => [
          cmd.command,
          fmtInt(cmd.calls),
          (cmd.calls / k.timedEvents).toFixed(3),
          cmd.calls > 0 ? us(cmd.usec / cmd.calls) : "n/a",
          us(cmd.usec / k.timedEvents),
        ]),
    ),
  );
  log("");
  const r = c.rollup;
  log(
    `rollup: plan ${fmtMs(r.planMs)} ms: ${fmtInt(r.items)} items in ${fmtInt(r.pages)} pages of ${fmtInt(r.pageSize)}`,
  );
  log(
    `  merges: ${r.how}: ${fmtInt(r.mergedItems)} items (${fmtInt(r.mergedSites)} sites) in ${fmtMs(r.mergeWallMs)} ms = ${fmtInt(r.itemsPerSecond)} items/s (${fmtInt(r.perWorkerItemsPerSecond)}/s per page worker)`,
  );
  log(
    `  all ${fmtInt(r.items)} items: ${(r.fullMergeMs / 1000).toFixed(1)} s${r.extrapolated ? ` (extrapolated from the merged ${((r.mergedItems / Math.max(1, r.items)) * 100).toFixed(1)}%: a full run would not fit the bench's time budget)` : " (measured)"}`,
  );
  log(
    `  per item: server commands ${us(r.serverCommandUsPerItem)} µs; redis-server process CPU ${us(r.serverProcessCpuUsPerItem)} µs; PFMERGE ${us(r.pfmergeUsPerCall)} µs a call`,
  );
  log(
    table(
      ["command", "calls", "calls/item", "µs/call"],
      r.commands
        .slice(0, 8)
        .map((cmd) => [
          cmd.command,
          fmtInt(cmd.calls),
          (cmd.calls / Math.max(1, r.mergedItems)).toFixed(3),
          cmd.calls > 0 ? us(cmd.usec / cmd.calls) : "n/a",
        ]),
    ),
  );
  const s = c.stepFunctions;
  log(
    `  Step Functions: ${s.fixedStates.length} states once (${s.fixedStates.join(", ")}) + ${s.perPageStates.length} per page (${s.perPageStates.join(", ")}) × ${fmtInt(s.pages)} pages = ${fmtInt(s.transitionsPerRun)} state transitions per run (retries and lock waits add more)`,
  );
  log("");
  const h = c.hll;
  log(
    `HLL encoding: hll-sparse-max-bytes ${h.sparseMaxBytes}; a key turned dense at ${fmtInt(h.denseAtCardinality)} distinct ids; dense MEMORY USAGE ${fmtInt(h.denseBytes)} bytes (key name ${h.keyNameBytes} bytes)`,
  );
  log(
    `  sparse MEMORY USAGE by cardinality: ${h.bytesByCardinality
      .filter((b) => !b.dense)
      .map((b) => `${fmtInt(b.cardinality)}: ${fmtInt(b.bytes)}`)
      .join(", ")}`,
  );
  log("");
  log(
    "memory by family and period (MEMORY USAGE … SAMPLES 0; week and month as after a full run):",
  );
  log(
    table(
      ["family", "period", "keys", "sampled", "sparse", "dense", "bytes/key", "MiB"],
      c.memory.byFamilyPeriod.map((row) => [
        `${row.family}:`,
        row.period,
        fmtInt(row.keys),
        fmtInt(row.sampledKeys),
        `${(row.sparseShare * 100).toFixed(1)}%`,
        `${(row.denseShare * 100).toFixed(1)}%`,
        fmtInt(row.bytesPerKey),
        mib(row.bytes),
      ]),
    ),
  );
  log(
    `  samples: ${fmtInt(opts.headSites)} largest sites whole, ${fmtInt(i.memorySample.tailSites)} of the others; site event-type sets: ${fmtInt(afterIngest.siteSets)} × ${fmtInt(c.memory.siteEventTypesBytesPerSite)} bytes`,
  );
  log(
    `  used_memory after the ingest − before: ${mib(c.memory.usedMemoryDeltaBytes)} MiB; MEMORY USAGE estimate of the day keys and event-type sets ${mib(c.memory.keyBytesEstimate)} MiB: the server adds ×${c.memory.overheadFactor.toFixed(2)}, ${c.memory.perKeyOverheadBytes.toFixed(0)} bytes per key (dict and expiry entries)`,
  );
  log("");
  const bk = (name: string, scan: BookkeepingScan) => {
    log(
      `bookkeeping ${name}: ${scan.perPrimary.map((p) => `${p.port}: ${mib(p.bytes)} MiB in ${p.keys} keys`).join("; ")}; busiest / mean ${scan.maxOverMean.toFixed(2)}x`,
    );
    for (const key of scan.keys.slice(0, 6)) {
      log(
        `  ${key.key} (${key.type}, ${fmtInt(key.members)} members) ${mib(key.bytes)} MiB on ${key.port}`,
      );
    }
  };
  bk("after the ingest", afterIngest);
  bk("after the plan (the peak: pending + work)", afterPlan);
  log(
    `  bytes per touched member ${c.bookkeeping.bytesPerTouchedMember.toFixed(1)}, per work item ${c.bookkeeping.bytesPerWorkItem.toFixed(1)}, per site-index member ${c.bookkeeping.bytesPerSiteIndexMember.toFixed(1)}`,
  );
  log("");
  log(`constants written to ${opts.output}; wall time ${(c.wallMs / 1000).toFixed(1)} s`);
}
