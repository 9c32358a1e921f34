/**
 * `npm run local`: the whole sketchstream pipeline on this machine, no AWS account needed.
 * A real Redis Cluster and a local Kinesis on loopback; the generator's events put with
 * PutRecords; the event-source poller invoking the real consumer handler; the rollup state
 * machine run from the same ASL file with the real handlers; then tables of HLL estimates
 * against exact distinct counts: unique users, and events with events per visitor.
 *
 * One generator site (ZONED_SITE) counts in a zone far from UTC, set in the zone registry before
 * the first event is sent: its keys carry its local dates, and its today, week and month in the
 * tables are its own. The exact counts find those local dates with plain offset arithmetic, not
 * with the consumer's zone calendars, so the comparison checks them.
 *
 * One clock drives every date: `--now` (default: the machine's clock) is where it starts, and
 * it advances in real time from there. The generated events end at `--now` (the report's
 * "today" is its day); the consumer's time window and the rollup's start time read the
 * advancing clock, so a run pinned to another instant is consistent end to end.
 */

import { spawn } from "node:child_process";
import { mkdir, mkdtemp, readFile } from "node:fs/promises";
import { constants, tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { Cluster } from "ioredis";
import * as v from "valibot";
import { type ApiServer, DEFAULT_API_PORT, describeRoutes, startApiServer } from "../cli/api.js";
import { instantArg, wholeNumberArg } from "../cli/args.js";
import { type GENERATOR_SITES, generateEvents } from "../cli/generator.js";
import { CliError } from "../cli/io.js";
import { putAll } from "../cli/producer.js";
import { messageOf } from "../functions/domain/errors.js";
import { eventsKey, TIME_ZONES_KEY, uniqueVisitorsKey } from "../functions/domain/keys.js";
import {
  addDays,
  DAY_MS,
  dayOf,
  daysInRange,
  isoWeekOf,
  monthOf,
} from "../functions/domain/periods.js";
import { DEFAULT_RETENTION } from "../functions/domain/runtime-env.js";
import { RollupOutputSchema } from "../functions/rollup/input.js";
import { runRollupLocally } from "../state-machines/local-runner.js";
import { RedisServerMissingError } from "./redis-cluster.js";
import { type LocalRuntime, startLocalRuntime } from "./runtime.js";

const USAGE = `usage: npm run local -- [--total N] [--days N] [--users N] [--seed N] [--shards N] [--now INSTANT] [--data-dir DIR] [--keep]
  --total N      events to send (default 200000)
  --days N       days the events span, ending today, at most ${DEFAULT_RETENTION.days} (default 45)
  --users N      distinct users to draw from (default 50000)
  --seed N       generator seed; the same seed gives the same run (default 1)
  --shards N     shards of the local Kinesis stream (default 4)
  --now INSTANT  the pipeline's clock starts here, e.g. 2031-06-15T10:00:00Z (default: now)
  --data-dir DIR where Redis, the quarantine and on-failure files live (default: a new temporary directory)
  --keep         leave the Redis Cluster running for redis-cli (stop it with the printed kill
                 command), and serve the read API on 127.0.0.1:${DEFAULT_API_PORT} (or a free port) until Ctrl-C`;

/** Records that are malformed on purpose, to show that they are quarantined, not counted. */
const MALFORMED = [
  "not json at all",
  JSON.stringify({
    user_id: "u-1",
    site_id: "715}:x{",
    event: "view",
    event_time: "2024-03-09 14:02:11",
  }),
  JSON.stringify({ user_id: "u-1", site_id: 715, event: "view", event_time: "yesterday" }),
];

/**
 * A time zone with one offset all year, so a local date is plain arithmetic: the UTC date of the
 * instant plus the offset. The exact counts use that, independently of the code under test.
 */
interface FixedZone {
  readonly zone: string;
  readonly offsetHours: number;
}

const UTC_ZONE: FixedZone = { zone: "UTC", offsetHours: 0 };

/**
 * The demo's site in a zone far from UTC: Kiritimati has been UTC+14 all year since 1995, so
 * most of its day falls on the UTC date before, and its "today" is often UTC's tomorrow.
 */
const ZONED_SITE: { readonly site: (typeof GENERATOR_SITES)[number] } & FixedZone = {
  site: 283,
  zone: "Pacific/Kiritimati",
  offsetHours: 14,
};

function zoneOfSite(site: number): FixedZone {
  return site === ZONED_SITE.site ? ZONED_SITE : UTC_ZONE;
}

/** `UTC`, or `Pacific/Kiritimati (UTC+14)`. */
function describeZone({ zone, offsetHours }: FixedZone): string {
  return offsetHours === 0 ? zone : `${zone} (UTC${offsetHours > 0 ? "+" : ""}${offsetHours})`;
}

/** The local date of an instant in a fixed-offset zone. */
function localDayOf(ms: number, { offsetHours }: FixedZone): string {
  return new Date(ms + offsetHours * 3_600_000).toISOString().slice(0, 10);
}

/** The instant of a generator `event_time` ("YYYY-MM-DD HH:MM:SS", UTC). */
function generatorInstant(eventTime: string): number {
  return Date.parse(`${eventTime.replace(" ", "T")}Z`);
}

/**
 * The exact counts take ZONED_SITE's offset as fixed: this fails the run, rather than print
 * wrong "exact" counts, if the time zone data of this Node says otherwise over the run's span.
 */
function assertFixedOffset(zone: FixedZone, instants: readonly number[]): void {
  const format = new Intl.DateTimeFormat("en-US", {
    timeZone: zone.zone,
    timeZoneName: "longOffset",
  });
  const sign = zone.offsetHours < 0 ? "-" : "+";
  const expected = `GMT${sign}${String(Math.abs(zone.offsetHours)).padStart(2, "0")}:00`;
  for (const ms of instants) {
    const found = format.formatToParts(ms).find((p) => p.type === "timeZoneName")?.value;
    if (found !== expected) {
      throw new Error(
        `the demo's exact counts take ${zone.zone} as ${expected} all year, but this Node's time zone data says ${found} at ${new Date(ms).toISOString()}: update Node (its ICU time zone data), or choose another --now`,
      );
    }
  }
}

interface LocalOptions {
  readonly help: boolean;
  readonly total: number;
  readonly days: number;
  readonly users: number;
  readonly seed: number;
  readonly shards: number;
  readonly nowMs: number;
  readonly dataDir: string | undefined;
  readonly keep: boolean;
}

function usageError(message: string): never {
  console.error(`${message}\n\n${USAGE}`);
  process.exit(2);
}

function parseOptions(realNow: number): LocalOptions {
  try {
    const { values } = parseArgs({
      options: {
        total: { type: "string" },
        days: { type: "string" },
        users: { type: "string" },
        seed: { type: "string" },
        shards: { type: "string" },
        now: { type: "string" },
        "data-dir": { type: "string" },
        keep: { type: "boolean", default: false },
        help: { type: "boolean", short: "h", default: false },
      },
    });
    const days = wholeNumberArg("days", values.days, 45, 1, DEFAULT_RETENTION.days);
    const nowMs = instantArg("now", values.now, realNow);
    // Redis keeps real time: a day whose key deadline has passed is deleted as it is written.
    // The zoned site's days end (and expire) its offset earlier than UTC's.
    const oldestDay = Math.floor(nowMs / DAY_MS) - (days - 1);
    const zoneLeadMs = Math.max(0, ZONED_SITE.offsetHours) * 3_600_000;
    if ((oldestDay + 1 + DEFAULT_RETENTION.days) * DAY_MS - zoneLeadMs <= realNow) {
      throw new Error(
        `--now ${values.now}: the keys of its ${days} days would already have expired in real time (daily retention ${DEFAULT_RETENTION.days} days); choose an instant later than ${dayOf(realNow + zoneLeadMs - (DEFAULT_RETENTION.days - days) * DAY_MS)}`,
      );
    }
    return {
      help: values.help === true,
      total: wholeNumberArg("total", values.total, 200_000, 1),
      days,
      users: wholeNumberArg("users", values.users, 50_000, 1),
      seed: wholeNumberArg("seed", values.seed, 1, 1),
      shards: wholeNumberArg("shards", values.shards, 4, 1, 50),
      nowMs,
      dataDir: values["data-dir"],
      keep: values.keep === true,
    };
  } catch (err) {
    return usageError(messageOf(err));
  }
}

/**
 * Exact distinct users per site and per day, week, month and the whole range; and events per
 * site over the range. Days are the site's local dates (`add` is given them). The demo's events
 * carry no event_id, so each is counted by its Kinesis record id: every record sent is one
 * distinct event.
 */
class Truth {
  readonly sets = new Map<string, Set<string>>();
  readonly events = new Map<number, number>();
  add(site: number, day: string, user: string) {
    this.events.set(site, (this.events.get(site) ?? 0) + 1);
    for (const label of [day, isoWeekOf(day), monthOf(day), "range"]) {
      const key = `${site}|${label}`;
      let set = this.sets.get(key);
      if (!set) {
        set = new Set();
        this.sets.set(key, set);
      }
      set.add(user);
    }
  }
  count(site: number, label: string): number {
    return this.sets.get(`${site}|${label}`)?.size ?? 0;
  }
  eventCount(site: number): number {
    return this.events.get(site) ?? 0;
  }
  sites(): number[] {
    return [...new Set([...this.sets.keys()].map((k) => Number(k.split("|")[0])))].sort(
      (a, b) => a - b,
    );
  }
}

/** Events per visitor with three decimals; "-" without visitors. */
function ratio(events: number, visitors: number): string {
  return visitors === 0 ? "-" : (events / visitors).toFixed(3);
}

function pct(estimate: number, exact: number): string {
  if (exact === 0) return "-";
  const e = ((estimate - exact) / exact) * 100;
  return `${e >= 0 ? "+" : ""}${e.toFixed(2)}%`;
}

/** Columns right-aligned (numbers), but those in `leftAligned` (words). */
function table(rows: readonly (readonly string[])[], leftAligned: readonly number[] = []): string {
  const widths = (rows[0] ?? []).map((_, c) => Math.max(...rows.map((r) => (r[c] ?? "").length)));
  const pad = (cell: string, c: number) =>
    leftAligned.includes(c) ? cell.padEnd(widths[c] ?? 0) : cell.padStart(widths[c] ?? 0);
  return rows.map((row) => `  ${row.map(pad).join("  ")}`.trimEnd()).join("\n");
}

type Log = (message: string) => void;

/** Puts the generator's events (and the malformed ones) and waits until all are consumed. */
async function sendEvents(runtime: LocalRuntime, opts: LocalOptions, log: Log): Promise<Truth> {
  const truth = new Truth();
  const events = generateEvents({
    seed: opts.seed,
    users: opts.users,
    days: opts.days,
    // The events end at --now itself: "today" of the report is that instant's day, however
    // long the cluster took to start.
    endMs: opts.nowMs,
  });
  function* records() {
    for (let i = 0; i < opts.total; i++) {
      const event = events.next().value;
      const day = localDayOf(generatorInstant(event.event_time), zoneOfSite(event.site_id));
      truth.add(event.site_id, day, event.user_id);
      yield {
        partitionKey: `part-${String(i % 100_000).padStart(5, "0")}`,
        data: Buffer.from(JSON.stringify(event)),
      };
    }
    for (const [i, text] of MALFORMED.entries())
      yield { partitionKey: `bad-${i}`, data: Buffer.from(text) };
  }
  log(
    `sending ${opts.total.toLocaleString("en")} events over ${opts.days} days (+${MALFORMED.length} malformed) with PutRecords; the consumer reads as they arrive`,
  );
  let lastReport = 0;
  const put = await putAll(records(), {
    kinesis: runtime.kinesis,
    stream: runtime.streamName,
    onProgress: ({ sent }) => {
      if (sent - lastReport >= opts.total / 4 || sent >= opts.total) {
        lastReport = sent;
        const consumed = runtime.poller.stats.recordsCheckpointed;
        log(`  put ${sent.toLocaleString("en")}, consumed ${consumed.toLocaleString("en")}`);
      }
    },
  });
  await runtime.poller.drain();
  const stats = runtime.poller.stats;
  const quarantined = (await readFile(runtime.quarantineFile, "utf8").catch(() => ""))
    .split("\n")
    .filter(Boolean).length;
  log(
    `consumer done: ${stats.recordsCheckpointed.toLocaleString("en")} records in ${stats.invocations} invocations (${put.retried} put retries); ${quarantined} quarantined to ${runtime.quarantineFile}`,
  );
  return truth;
}

/**
 * Puts ZONED_SITE in its zone in the registry, as `npm run cli -- site --time-zone` would. Done
 * before the first event: the consumer reads a site's zone when it first sees the site, and
 * then at most once a minute.
 */
async function setDemoZone(runtime: LocalRuntime, log: Log): Promise<void> {
  const redis = new Cluster([{ host: runtime.redis.host, port: runtime.redis.port }]);
  try {
    await redis.hset(TIME_ZONES_KEY, String(ZONED_SITE.site), ZONED_SITE.zone);
  } finally {
    redis.disconnect();
  }
  log(
    `site ${ZONED_SITE.site} counts in ${describeZone(ZONED_SITE)}: its days are its own (HSET ${TIME_ZONES_KEY} ${ZONED_SITE.site} ${ZONED_SITE.zone}); the other sites count in UTC`,
  );
}

/** Midnight UTC starting the first day the generator's events fall on. */
function firstEventDayMs(opts: LocalOptions): number {
  return (Math.floor(opts.nowMs / DAY_MS) - (opts.days - 1)) * DAY_MS;
}

/** A zone's today, week and month, and the local dates the generator's events fall on. */
interface ZoneDates {
  readonly zone: FixedZone;
  readonly today: string;
  readonly week: string;
  readonly month: string;
  readonly days: readonly string[];
}

function zoneDates(zone: FixedZone, opts: LocalOptions): ZoneDates {
  const today = localDayOf(opts.nowMs, zone);
  return {
    zone,
    today,
    week: isoWeekOf(today),
    month: monthOf(today),
    // The generator's UTC days, in the zone: one date more when the zone is not UTC.
    days: daysInRange(localDayOf(firstEventDayMs(opts), zone), today),
  };
}

async function rollUp(runtime: LocalRuntime, clock: () => number, log: Log): Promise<void> {
  log("running the rollup state machine (state-machines/rollup.asl.json) locally");
  const rollup = await runRollupLocally({
    env: runtime.env,
    input: {},
    startTime: new Date(clock()),
  });
  if (rollup.status !== "SUCCEEDED")
    throw new Error(`the rollup failed: ${rollup.error}: ${rollup.cause}`);
  const out = v.parse(RollupOutputSchema, rollup.output);
  log(
    `rollup: ${out.keysWritten ?? 0} week and month keys written for ${out.sitesMerged ?? 0} sites (${(out.periods ?? []).join(", ")})`,
  );
}

/**
 * Estimates of today, this week, this month and the whole range against the exact counts, each
 * site in its own calendar; then the range's events and events per visitor against theirs.
 */
async function printTable(runtime: LocalRuntime, truth: Truth, opts: LocalOptions): Promise<void> {
  const redis = new Cluster([{ host: runtime.redis.host, port: runtime.redis.port }]);
  const all = `all ${opts.days} days`;
  try {
    console.log(
      `\neach site's today, week and month are its own, in its zone (${TIME_ZONES_KEY}; no entry: UTC):`,
    );
    const zoneRows = [UTC_ZONE, ZONED_SITE].map((zone) => {
      const { today, week, month, days } = zoneDates(zone, opts);
      return [
        describeZone(zone),
        `today ${today}, week ${week}, month ${month}; ${all}: its dates ${days[0]} to ${today}`,
      ];
    });
    console.log(table(zoneRows, [0, 1]));

    console.log(`\nunique users: HyperLogLog estimate / exact count (error)`);
    const rows = [["site", "zone", "today", "week", "month", all]];
    const eventRows = [["site", "zone", `events, ${all}`, "events per visitor"]];
    const cell = (estimate: number, exact: number) =>
      `${estimate} / ${exact} (${pct(estimate, exact)})`;
    for (const site of truth.sites()) {
      const s = String(site);
      const { zone, today, week, month, days } = zoneDates(zoneOfSite(site), opts);
      const visitors = await redis.pfcount(...days.map((d) => uniqueVisitorsKey(s, d)));
      const events = await redis.pfcount(...days.map((d) => eventsKey(s, d)));
      const exactVisitors = truth.count(site, "range");
      const exactEvents = truth.eventCount(site);
      rows.push([
        s,
        zone.zone,
        cell(await redis.pfcount(uniqueVisitorsKey(s, today)), truth.count(site, today)),
        cell(await redis.pfcount(uniqueVisitorsKey(s, week)), truth.count(site, week)),
        cell(await redis.pfcount(uniqueVisitorsKey(s, month)), truth.count(site, month)),
        cell(visitors, exactVisitors),
      ]);
      eventRows.push([
        s,
        zone.zone,
        cell(events, exactEvents),
        `${ratio(events, visitors)} / ${ratio(exactEvents, exactVisitors)} (${pct(events / visitors, exactEvents / exactVisitors)})`,
      ]);
    }
    console.log(table(rows, [1]));
    console.log(
      "\nevents: HyperLogLog estimate / exact count of distinct event identities (error); the demo's events\nhave no event_id, so each record is one event, by its Kinesis record id",
    );
    console.log(table(eventRows, [1]));
  } finally {
    redis.disconnect();
  }
}

/** `NAME=value ...` of the variables a command needs to reach the local cluster. */
function localRedisVariables(env: Readonly<Record<string, string>>): string {
  return ["REDIS_ENDPOINT", "REDIS_TLS"]
    .filter((name) => env[name] !== undefined)
    .map((name) => `${name}=${env[name]}`)
    .join(" ");
}

/**
 * --keep: the read API on 127.0.0.1 against the local cluster (port 8787, or a free one when
 * that is taken), until Ctrl-C or SIGTERM; the cluster itself keeps running after that.
 */
async function serveApiUntilStopped(
  runtime: LocalRuntime,
  opts: LocalOptions,
  today: string,
  clock: () => number,
  stopped: Promise<string>,
): Promise<void> {
  let api: ApiServer;
  try {
    api = await startApiServer(runtime.env, { port: DEFAULT_API_PORT, now: clock });
  } catch (err) {
    // Only a taken port is worth working around; anything else is a real failure.
    if (!(err instanceof CliError)) throw err;
    console.log(`port ${DEFAULT_API_PORT} is in use: serving the read API on a free port instead`);
    api = await startApiServer(runtime.env, { port: 0, now: clock });
  }
  const from = addDays(today, 1 - opts.days);
  const redisVariables = localRedisVariables(runtime.env);
  console.log(`\nthe read API serves the local cluster on ${api.url} (loopback only, no auth):`);
  for (const line of describeRoutes(api.url)) console.log(line);
  console.log(
    `  e.g. curl '${api.url}/v1/sites/715/series?from=${from}&to=${today}&granularity=week'`,
  );
  console.log(`       curl '${api.url}/v1/sites/${ZONED_SITE.site}/time-zone'`);
  console.log("\nthe CLI and the dashboard against the local cluster:");
  console.log(
    `  ${redisVariables} npm run cli -- series --site 715 --from ${from} --to ${today} --granularity week`,
  );
  console.log(`  ${redisVariables} npm run cli -- dashboard`);
  console.log(
    `\nCtrl-C stops the read API. The Redis Cluster keeps running after that; stop it with: kill ${runtime.redis.pids.join(" ")}`,
  );
  const signal = await stopped;
  await api.close();
  console.log(
    `\nread API stopped (${signal}). Redis is still running; stop it with: kill ${runtime.redis.pids.join(" ")}`,
  );
}

/** Set in the environment of the process that runs the pipeline in its own process group. */
const OWN_GROUP_VARIABLE = "SKETCHSTREAM_LOCAL_OWN_GROUP";

/**
 * With --keep, Redis must outlive the Ctrl-C that stops the read API. A terminal sends Ctrl-C's
 * SIGINT to its whole foreground process group, and the Redis servers, children of the process
 * that starts them, are in that process's group. So with --keep this process runs the pipeline
 * in a child of a new process group (same program, same flags) and only passes SIGINT and
 * SIGTERM on to it: the servers never see the terminal's signal.
 */
async function runInOwnProcessGroup(): Promise<never> {
  const child = spawn(process.execPath, [...process.execArgv, ...process.argv.slice(1)], {
    detached: true,
    stdio: "inherit",
    env: { ...process.env, [OWN_GROUP_VARIABLE]: "1" },
  });
  for (const signal of ["SIGINT", "SIGTERM"] as const) {
    process.on(signal, () => child.kill(signal));
  }
  const code = await new Promise<number>((resolve) => {
    child.once("error", (err) => {
      console.error(`sketchstream local failed to start: ${messageOf(err)}`);
      resolve(1);
    });
    child.once("exit", (exitCode, signal) =>
      resolve(exitCode ?? (signal ? 128 + constants.signals[signal] : 1)),
    );
  });
  process.exit(code);
}

/**
 * Set once Ctrl-C (or SIGTERM) asked the pipeline to stop: what fails after that (a put to the
 * Kinesis being stopped) is the stop, not an error to report.
 */
let stopping = false;

function printExplore(port: number, today: string, opts: LocalOptions): void {
  const zoned = zoneDates(ZONED_SITE, opts);
  console.log("\nexplore with redis-cli (while the cluster runs; use --keep to leave it running):");
  console.log(`  redis-cli -c -p ${port} PFCOUNT '${uniqueVisitorsKey("715", today)}'`);
  console.log(`  redis-cli -c -p ${port} PFCOUNT '${uniqueVisitorsKey("715", isoWeekOf(today))}'`);
  console.log(
    `  redis-cli -c -p ${port} PFCOUNT '${uniqueVisitorsKey("715", monthOf(today), "purchase")}'`,
  );
  console.log(`  redis-cli -c -p ${port} EXPIRETIME '${uniqueVisitorsKey("715", monthOf(today))}'`);
  console.log(`  redis-cli -c -p ${port} PFCOUNT '${eventsKey("715", isoWeekOf(today))}'`);
  // No trailing shell comment: zsh does not take them at its prompt by default.
  console.log(
    `site ${ZONED_SITE.site}'s zone, and its today (${zoned.today} in ${ZONED_SITE.zone}):`,
  );
  console.log(`  redis-cli -c -p ${port} HGET '${TIME_ZONES_KEY}' ${ZONED_SITE.site}`);
  console.log(
    `  redis-cli -c -p ${port} PFCOUNT '${uniqueVisitorsKey(String(ZONED_SITE.site), zoned.today)}'`,
  );
}

async function main(): Promise<void> {
  const started = Date.now();
  const opts = parseOptions(started);
  if (opts.help) {
    console.log(USAGE);
    return;
  }
  if (opts.keep && process.env[OWN_GROUP_VARIABLE] !== "1") return runInOwnProcessGroup();
  assertFixedOffset(ZONED_SITE, [firstEventDayMs(opts), opts.nowMs]);
  // The pipeline's clock: --now, advancing in real time.
  const clock = () => opts.nowMs + (Date.now() - started);
  const dataDir = opts.dataDir
    ? resolve(opts.dataDir)
    : await mkdtemp(join(tmpdir(), "sketchstream-local-"));
  await mkdir(dataDir, { recursive: true });
  const log: Log = (message) =>
    console.log(`[${((Date.now() - started) / 1000).toFixed(1)}s] ${message}`);
  console.log(`sketchstream local: data in ${dataDir}`);
  if (opts.nowMs !== started) console.log(`clock: starts at ${new Date(opts.nowMs).toISOString()}`);

  let runtime: LocalRuntime | undefined;
  // Until the pipeline is done, Ctrl-C stops everything; with --keep, afterwards it only ends
  // the read API (serveApiUntilStopped), and Redis keeps running as --keep promises.
  let onInterrupt = (signal: NodeJS.Signals) => {
    // A second signal stops waiting. Exiting, rather than dying of the signal, still runs the
    // exit handlers that kill the Redis servers this process started.
    if (stopping) process.exit(128 + constants.signals[signal]);
    stopping = true;
    console.log(`\ninterrupted (${signal}): stopping Redis and the local Kinesis`);
    void (runtime?.stop() ?? Promise.resolve()).finally(() =>
      process.exit(128 + constants.signals[signal]),
    );
  };
  // `on`, not `once`: a second signal (one Ctrl-C can arrive twice, from the terminal and
  // relayed by tsx) must not kill this process outright, leaving its Redis servers behind.
  process.on("SIGINT", () => onInterrupt("SIGINT"));
  process.on("SIGTERM", () => onInterrupt("SIGTERM"));

  // The demo prints its own summary; EMF metrics and per-record logs would drown it.
  process.env.POWERTOOLS_METRICS_DISABLED ??= "true";
  process.env.POWERTOOLS_LOG_LEVEL ??= "ERROR";

  log(
    `starting a Redis Cluster (3 primaries + 3 replicas) and a local Kinesis stream (${opts.shards} shards) on 127.0.0.1`,
  );
  runtime = await startLocalRuntime({
    dataDir,
    shards: opts.shards,
    mapping: {
      batchSize: 1000,
      batchingWindowMs: 200,
      maximumRetryAttempts: 3,
      bisectOnError: true,
    },
    now: clock,
    log,
  });
  log(`Redis on ports ${runtime.redis.ports.join(", ")}; Kinesis at ${runtime.kinesisEndpoint}`);

  await setDemoZone(runtime, log);
  const truth = await sendEvents(runtime, opts, log);
  await rollUp(runtime, clock, log);
  const today = dayOf(opts.nowMs);
  await printTable(runtime, truth, opts);

  console.log(`\ndone in ${((Date.now() - started) / 1000).toFixed(1)}s`);
  printExplore(runtime.redis.port, today, opts);
  if (opts.keep) {
    const stopped = new Promise<string>((resolve) => {
      onInterrupt = resolve;
    });
    await runtime.stop({ keepRedis: true });
    await serveApiUntilStopped(runtime, opts, today, clock, stopped);
    process.exit(0);
  }
  if (!stopping) await runtime.stop();
}

main().catch(async (err: unknown) => {
  // The interrupt handler exits once everything it stops has stopped.
  if (stopping) return;
  if (err instanceof RedisServerMissingError) console.error(err.message);
  else
    console.error(
      `sketchstream local failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`,
    );
  process.exit(1);
});
