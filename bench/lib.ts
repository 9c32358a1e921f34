/**
 * Helpers of the consumer benchmark: a seeded generator of click events shaped like the original
 * Python generator's, the exact Redis commands the consumer sends for a batch (computed from
 * pre-parsed input), timing and statistics, and the command-line options.
 */

import { parseArgs } from "node:util";
import * as v from "valibot";
import type { HllWriter } from "../functions/consumer/ingest.js";
import { MAX_USER_ID_LENGTH } from "../functions/shared/events.js";
import { TOUCHED_KEY, touchedMember, uniqueVisitorsKey } from "../functions/shared/keys.js";
import { expiresAtSeconds, type RetentionSettings } from "../functions/shared/periods.js";
import { generatorTime } from "../test/helpers/kinesis.js";

export const SITES = [489, 715, 283, 190, 875] as const;
export const EVENTS = ["view", "like", "cart", "purchase"] as const;
const TWO_DAYS_MS = 2 * 86_400_000;
/** The handler's default most ids per PFADD (DEFAULT_CHUNK in functions/consumer/ingest.ts). */
export const PFADD_CHUNK = 2000;

/** mulberry32: small, fast and good enough for test data; the same seed gives the same run. */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** One click event as the Python generator wrote it to Kinesis. */
export interface ClickPayload {
  readonly user_id: string;
  readonly site_id: number;
  readonly event: string;
  readonly sku: string;
  readonly amount: number;
  readonly event_time: string;
}

function pick<T>(random: () => number, items: readonly T[]): T {
  return items[Math.floor(random() * items.length)] as T;
}

/**
 * The generator's user id `u-###-##` for user number `n` of the population: 100,000 users fill
 * u-000-00 … u-999-99 exactly; a larger population widens the first group.
 */
export function userId(n: number): string {
  return `u-${String(Math.floor(n / 100)).padStart(3, "0")}-${String(n % 100).padStart(2, "0")}`;
}

/** `count` events of users drawn uniformly from `users`, timed within the 2 days before `nowMs`. */
export function generatePayloads(
  random: () => number,
  count: number,
  users: number,
  nowMs: number,
): ClickPayload[] {
  const out: ClickPayload[] = new Array(count);
  for (let i = 0; i < count; i++) {
    out[i] = {
      user_id: userId(Math.floor(random() * users)),
      site_id: pick(random, SITES),
      event: pick(random, EVENTS),
      sku: `sku-${String(Math.floor(random() * 10_000)).padStart(4, "0")}`,
      amount: 1 + Math.floor(random() * 10),
      event_time: generatorTime(nowMs - Math.floor(random() * TWO_DAYS_MS)),
    };
  }
  return out;
}

/** One Redis command of the consumer, in the order the handler issues them. */
export type HllCommand =
  | { readonly name: "pfadd"; readonly key: string; readonly args: readonly string[] }
  | { readonly name: "expireat"; readonly key: string; readonly at: number }
  | { readonly name: "sadd"; readonly key: string; readonly args: readonly string[] };

/**
 * The commands `ingestBatch` sends for these (valid) events: per key, in first-seen order, the
 * distinct ids in PFADDs of at most `chunkSize`, then `EXPIREAT key at NX`; finally one SADD of
 * the touched members. Keys: `uv:{site_id=S}:DAY` and `uv:{site_id=S}:event=E:DAY`.
 */
export function consumerCommands(
  payloads: readonly ClickPayload[],
  retention: RetentionSettings,
  chunkSize = PFADD_CHUNK,
): HllCommand[] {
  const groups = new Map<string, { day: string; ids: string[]; seen: Set<string> }>();
  const touched = new Set<string>();
  const add = (key: string, day: string, id: string) => {
    let group = groups.get(key);
    if (!group) {
      group = { day, ids: [], seen: new Set() };
      groups.set(key, group);
    }
    if (!group.seen.has(id)) {
      group.seen.add(id);
      group.ids.push(id);
    }
  };
  for (const p of payloads) {
    const site = String(p.site_id);
    const day = p.event_time.slice(0, 10); // the generator's times are UTC
    add(uniqueVisitorsKey(site, day), day, p.user_id);
    add(uniqueVisitorsKey(site, day, p.event), day, p.user_id);
    touched.add(touchedMember(site, day));
    touched.add(touchedMember(site, day, p.event));
  }
  const commands: HllCommand[] = [];
  for (const [key, group] of groups) {
    for (let start = 0; start < group.ids.length; start += chunkSize) {
      commands.push({ name: "pfadd", key, args: group.ids.slice(start, start + chunkSize) });
    }
    const at = expiresAtSeconds({ kind: "day", label: group.day }, retention);
    commands.push({ name: "expireat", key, at });
  }
  if (touched.size > 0) commands.push({ name: "sadd", key: TOUCHED_KEY, args: [...touched] });
  return commands;
}

/** Issues every command before awaiting any (so an auto-pipelining client batches them). */
export function sendCommands(redis: HllWriter, commands: readonly HllCommand[]): Promise<unknown> {
  const pending: Promise<number>[] = new Array(commands.length);
  for (let i = 0; i < commands.length; i++) {
    const c = commands[i] as HllCommand;
    pending[i] =
      c.name === "pfadd"
        ? redis.pfadd(c.key, ...c.args)
        : c.name === "expireat"
          ? redis.expireat(c.key, c.at, "NX")
          : redis.sadd(c.key, ...c.args);
  }
  return Promise.all(pending);
}

/** An HllWriter that only records what it is asked, to compare with `consumerCommands`. */
export class RecordingWriter implements HllWriter {
  readonly commands: HllCommand[] = [];
  pfadd(key: string, ...elements: string[]): Promise<number> {
    this.commands.push({ name: "pfadd", key, args: elements });
    return Promise.resolve(1);
  }
  expireat(key: string, unixTimeSeconds: number, _nx: "NX"): Promise<number> {
    this.commands.push({ name: "expireat", key, at: unixTimeSeconds });
    return Promise.resolve(1);
  }
  sadd(key: string, ...members: string[]): Promise<number> {
    this.commands.push({ name: "sadd", key, args: members });
    return Promise.resolve(members.length);
  }
}

/**
 * A copy of the (unexported) valibot schema in functions/shared/events.ts, only to time how much
 * of validateEvent is valibot itself. Keep it in step with the original.
 */
export const eventSchemaReplica = v.object({
  user_id: v.union(
    [
      v.pipe(
        v.string(),
        v.minLength(1, "user_id_empty"),
        v.maxLength(MAX_USER_ID_LENGTH, "user_id_too_long"),
      ),
      v.pipe(v.number(), v.finite("wrong_type")),
    ],
    "wrong_type",
  ),
  site_id: v.union(
    [
      v.pipe(
        v.number(),
        v.finite("wrong_type"),
        v.transform((n) => String(n)),
      ),
      v.string(),
    ],
    "wrong_type",
  ),
  event: v.string("wrong_type"),
  event_time: v.string("wrong_type"),
});

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
  return sorted.length % 2 === 1
    ? (sorted[mid] as number)
    : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
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

export function parseOptions(argv: readonly string[]): BenchOptions {
  const { values } = parseArgs({
    args: [...argv],
    options: {
      batches: { type: "string", default: "20" },
      "batch-size": { type: "string", default: "10000" },
      users: { type: "string", default: "100000" },
      seed: { type: "string", default: "42" },
      warmup: { type: "string", default: "2" },
      "naive-batches": { type: "string", default: "2" },
      help: { type: "boolean", short: "h", default: false },
    },
    strict: true,
    allowPositionals: false,
  });
  if (values.help) {
    console.log(USAGE);
    process.exit(0);
  }
  const int = (name: string, text: string, least: number): number => {
    if (!/^\d+$/.test(text) || Number(text) < least) {
      throw new RangeError(`--${name}=${text}: expected a whole number ≥ ${least}\n${USAGE}`);
    }
    return Number(text);
  };
  return {
    batches: int("batches", values.batches, 1),
    batchSize: int("batch-size", values["batch-size"], 1),
    users: int("users", values.users, 1),
    seed: int("seed", values.seed, 0),
    warmup: int("warmup", values.warmup, 0),
    naiveBatches: int("naive-batches", values["naive-batches"], 1),
  };
}
