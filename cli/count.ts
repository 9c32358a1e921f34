/**
 * `count`: the unique-visitor estimate of a site over a day, week, month or any range, as one
 * PFCOUNT over the keys functions/domain/cover.ts chooses, plus the redis-cli command that gives the same.
 *
 * A week or month key is only trusted when it exists and the rollup has nothing left to merge
 * into it: none of its days is in the touched set (written since the last run) or the pending
 * set (being merged by a run now). Both are checked with SMISMEMBER on exactly the members the
 * consumer writes (`site|day`, or `site|day|event` with --event), never with a scan.
 */

import type { RedisConnection } from "../functions/adapters/redis.js";
import { first, last } from "../functions/domain/arrays.js";
import { candidatePeriods, coverRange, MAX_RANGE_DAYS } from "../functions/domain/cover.js";
import { messageOf } from "../functions/domain/errors.js";
import {
  assertEventType,
  assertSiteId,
  PENDING_KEY,
  parseKey,
  TOUCHED_KEY,
  touchedMember,
  uniqueVisitorsKey,
} from "../functions/domain/keys.js";
import {
  dayExpiresAtMs,
  dayStartMs,
  daysInMonth,
  daysInPeriod,
  daysInRange,
  daysInWeek,
  type Period,
} from "../functions/domain/periods.js";
import type { RedisSettings } from "../functions/domain/runtime-env.js";
import { loadRuntimeConfig } from "../functions/domain/runtime-env.js";
import { dayFlag, dayRangeFlags, monthFlag, parseFlags, weekFlag } from "./args.js";
import { type CliIo, EXIT_OK, UsageError } from "./io.js";
import { type ConnectRedis, withRedis } from "./redis.js";

export interface CountRequest {
  readonly site: string;
  readonly event?: string;
  readonly from: string;
  readonly to: string;
  readonly json: boolean;
}

export interface CountDeps extends CliIo {
  readonly connect?: ConnectRedis;
  /** The clock, for the retention warning. Default Date.now. */
  readonly now?: () => number;
  /** Bound on the whole Redis conversation, ms. Default 15000. */
  readonly timeoutMs?: number;
}

/** The Redis commands `count` uses; an ioredis Redis or Cluster satisfies it. */
export interface CountRedis {
  smismember(key: string, ...members: string[]): Promise<number[]>;
  exists(...keys: string[]): Promise<number>;
  pfcount(...keys: string[]): Promise<number>;
}

export interface CountResult {
  readonly site: string;
  readonly event: string | null;
  readonly from: string;
  readonly to: string;
  readonly keys: readonly string[];
  readonly estimate: number;
  readonly redisCli: string;
}

const MEMBERS_PER_CALL = 5000;

export function parseCountArgs(args: readonly string[]): CountRequest {
  const flags = parseFlags("count", args, {
    site: { type: "string" },
    event: { type: "string" },
    day: { type: "string" },
    week: { type: "string" },
    month: { type: "string" },
    from: { type: "string" },
    to: { type: "string" },
    json: { type: "boolean" },
  });
  if (flags.site === undefined) throw new UsageError("count: --site is required");
  try {
    assertSiteId(flags.site);
    if (flags.event !== undefined) assertEventType(flags.event);
  } catch (err) {
    throw new UsageError(`count: ${messageOf(err)}`);
  }
  const chosen = (["day", "week", "month", "from", "to"] as const).filter(
    (f) => flags[f] !== undefined,
  );
  const selectors = chosen.filter((f) => f !== "to").map((f) => (f === "from" ? "from/to" : f));
  if (selectors.length !== 1 || (chosen.includes("to") && !chosen.includes("from"))) {
    throw new UsageError(
      chosen.length === 0
        ? "count: say which days: one of --day, --week, --month, or --from with --to"
        : `count: give exactly one of --day, --week, --month, or --from with --to (got ${chosen.map((f) => `--${f}`).join(", ")})`,
    );
  }
  let days: string[];
  if (flags.day !== undefined) days = [dayFlag("day", flags.day)];
  else if (flags.week !== undefined) days = daysInWeek(weekFlag(flags.week));
  else if (flags.month !== undefined) days = daysInMonth(monthFlag(flags.month));
  else {
    const range = dayRangeFlags(flags.from, flags.to);
    if (!range) throw new UsageError("count: --from and --to are required together");
    days = [range.from, range.to];
    if (daysInRange(range.from, range.to).length > MAX_RANGE_DAYS) {
      throw new UsageError(`count: a range may span at most ${MAX_RANGE_DAYS} days`);
    }
  }
  return {
    site: flags.site,
    ...(flags.event !== undefined ? { event: flags.event } : {}),
    from: first(days, "day"),
    to: last(days, "day"),
    json: flags.json ?? false,
  };
}

async function membersIn(redis: CountRedis, key: string, members: string[]): Promise<Set<string>> {
  const found = new Set<string>();
  for (let i = 0; i < members.length; i += MEMBERS_PER_CALL) {
    const chunk = members.slice(i, i + MEMBERS_PER_CALL);
    const flags = await redis.smismember(key, ...chunk);
    chunk.forEach((m, j) => {
      if (flags[j] === 1) found.add(m);
    });
  }
  return found;
}

/**
 * The weeks and months of the range whose key can answer for their days. When the pending sets
 * cannot be read (e.g. a reader user without access to them), none: days are always exact.
 */
async function usablePeriods(
  redis: CountRedis,
  request: CountRequest,
  warn: (line: string) => void,
): Promise<Set<string>> {
  const candidates = candidatePeriods(request.from, request.to);
  if (candidates.length === 0) return new Set();
  const days = [...new Set(candidates.flatMap((p) => daysInPeriod(p)))];
  const members = days.map((day) => touchedMember(request.site, day, request.event));
  let busy: Set<string>;
  try {
    const [touched, pending] = await Promise.all([
      membersIn(redis, TOUCHED_KEY, members),
      membersIn(redis, PENDING_KEY, members),
    ]);
    busy = new Set([...touched, ...pending]);
  } catch (err) {
    if (!/^NOPERM/.test(messageOf(err))) throw err;
    warn(
      `warning: cannot read ${TOUCHED_KEY} and ${PENDING_KEY} (${messageOf(err)}); counting from daily keys only, which is exact while the days are within their retention`,
    );
    return new Set();
  }
  const exists = await Promise.all(
    candidates.map((p) => redis.exists(uniqueVisitorsKey(request.site, p.label, request.event))),
  );
  const usable = new Set<string>();
  candidates.forEach((period, i) => {
    const pendingDay = daysInPeriod(period).some((day) =>
      busy.has(touchedMember(request.site, day, request.event)),
    );
    if (!pendingDay && exists[i] === 1) usable.add(period.label);
  });
  return usable;
}

function shellQuote(s: string): string {
  return /^[A-Za-z0-9_./:=@%+-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`;
}

/** The redis-cli command that runs the same PFCOUNT (it asks for the password, if any). */
export function redisCliCommand(settings: RedisSettings, keys: readonly string[]): string {
  const parts = ["redis-cli"];
  if (settings.cluster) parts.push("-c");
  if (settings.tls) parts.push("--tls");
  if (settings.tls && settings.tlsCaFile) parts.push("--cacert", settings.tlsCaFile);
  parts.push("-h", settings.host, "-p", String(settings.port));
  if (settings.auth.mode !== "none") parts.push("--user", settings.auth.user, "--askpass");
  parts.push("PFCOUNT", ...keys);
  return parts.map(shellQuote).join(" ");
}

export async function countVisitors(
  redis: CountRedis,
  settings: RedisSettings,
  request: CountRequest,
  warn: (line: string) => void = () => {},
): Promise<CountResult> {
  const usable = await usablePeriods(redis, request, warn);
  const cover: Period[] = coverRange(request.from, request.to, (p) => usable.has(p.label));
  const keys = cover.map((p) => uniqueVisitorsKey(request.site, p.label, request.event));
  // One PFCOUNT: every key of a site shares its hash tag, so one slot and no CROSSSLOT.
  const estimate = await redis.pfcount(...keys);
  return {
    site: request.site,
    event: request.event ?? null,
    from: request.from,
    to: request.to,
    keys,
    estimate,
    redisCli: redisCliCommand(settings, keys),
  };
}

function describe(result: CountResult): string {
  const what = result.event === null ? "all events" : `event ${result.event}`;
  const range = result.from === result.to ? result.from : `${result.from} to ${result.to}`;
  const kinds = { month: 0, week: 0, day: 0 };
  for (const key of result.keys) kinds[parseKey(key).period.kind]++;
  const parts = (["month", "week", "day"] as const)
    .filter((k) => kinds[k] > 0)
    .map((k) => `${kinds[k]} ${k}${kinds[k] === 1 ? "" : "s"}`);
  return [
    `${result.estimate}`,
    `  unique visitors (HyperLogLog estimate, standard error 0.81%) of site ${result.site}, ${what}, ${range}`,
    `  from ${parts.join(", ")} in one PFCOUNT; the same with redis-cli:`,
    `  ${result.redisCli}`,
    "",
  ].join("\n");
}

/** Day keys of the cover that are past their retention, so gone from Redis. */
function expiredDays(cover: readonly string[], retentionDays: number, nowMs: number): string[] {
  return cover
    .map((key) => parseKey(key).period)
    .filter(
      (period) =>
        period.kind === "day" && dayExpiresAtMs(dayStartMs(period.label), retentionDays) <= nowMs,
    )
    .map((period) => period.label);
}

export async function runCount(args: readonly string[], deps: CountDeps): Promise<number> {
  const request = parseCountArgs(args);
  const config = loadRuntimeConfig(deps.env);
  const settings = config.redis;
  const result = await withRedis(
    settings,
    { ...(deps.connect ? { connect: deps.connect } : {}), timeoutMs: deps.timeoutMs ?? 15_000 },
    (connection: RedisConnection) =>
      countVisitors(connection.client, settings, request, (line) => deps.stderr.write(`${line}\n`)),
  );
  const expired = expiredDays(result.keys, config.retention.days, (deps.now ?? Date.now)());
  if (expired.length > 0) {
    deps.stderr.write(
      `warning: ${expired.length} of the days counted (${expired[0]}${expired.length > 1 ? ` to ${expired[expired.length - 1]}` : ""}) are past the ${config.retention.days}-day retention of daily keys (RETENTION_DAYS): their keys have expired and add nothing to the estimate. Older ranges are exact only in whole weeks and months.\n`,
    );
  }
  deps.stdout.write(request.json ? `${JSON.stringify(result)}\n` : describe(result));
  return EXIT_OK;
}
