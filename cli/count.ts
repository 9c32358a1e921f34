/**
 * `count`: the unique-visitor estimate of a site over a day, week, month or any range, as one
 * PFCOUNT over the fewest keys that cover it (functions/read/counts.ts, shared with the read
 * API), plus the redis-cli command that gives the same.
 *
 * With API_URL set, the count is asked of the read API (GET /v1/sites/{site}/count, signed with
 * the caller's AWS credentials) instead of Redis, and printed the same way. The redis-cli line
 * still comes from this environment's Redis settings (the stack's cli_env has them); without
 * REDIS_ENDPOINT there is no command to show, so the text leaves the line out and --json says
 * "redisCli": null rather than print a command that names no cluster.
 */

import type { RedisConnection } from "../functions/adapters/redis.js";
import { CountBody } from "../functions/api/schemas.js";
import { first, last } from "../functions/domain/arrays.js";
import { MAX_RANGE_DAYS } from "../functions/domain/cover.js";
import { messageOf } from "../functions/domain/errors.js";
import { assertEventType, assertSiteId, parseKey } from "../functions/domain/keys.js";
import { daysInMonth, daysInRange, daysInWeek } from "../functions/domain/periods.js";
import type { Env, RedisSettings, RuntimeConfig } from "../functions/domain/runtime-env.js";
import { loadRuntimeConfig } from "../functions/domain/runtime-env.js";
import { type CountContext, type CountRedis, countRange } from "../functions/read/counts.js";
import { getFromApi, type ReadApi, type ReadApiDeps, readApiFromEnv } from "./api-client.js";
import { dayFlag, dayRangeFlags, monthFlag, parseFlags, weekFlag } from "./args.js";
import { type CliIo, EXIT_OK, type Output, UsageError } from "./io.js";
import { type ConnectRedis, withRedis } from "./redis.js";

export interface CountRequest {
  readonly site: string;
  readonly event?: string;
  readonly from: string;
  readonly to: string;
  readonly json: boolean;
}

export interface CountDeps extends CliIo, ReadApiDeps {
  readonly connect?: ConnectRedis;
  /** The clock, for the retention warning. Default Date.now. */
  readonly now?: () => number;
  /** Bound on the whole Redis conversation (or the API request), ms. Default 15000. */
  readonly timeoutMs?: number;
}

export interface CountResult {
  readonly site: string;
  readonly event: string | null;
  readonly from: string;
  readonly to: string;
  readonly keys: readonly string[];
  readonly estimate: number;
  /** The same PFCOUNT with redis-cli; null when read through the API without REDIS_ENDPOINT. */
  readonly redisCli: string | null;
}

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
  context: CountContext,
): Promise<CountResult & { readonly missing: readonly string[] }> {
  const counted = await countRange(redis, request, context);
  return {
    site: request.site,
    event: request.event ?? null,
    from: request.from,
    to: request.to,
    keys: counted.keys,
    estimate: counted.estimate,
    redisCli: redisCliCommand(settings, counted.keys),
    missing: counted.missing,
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
  const lines = [
    `${result.estimate}`,
    `  unique visitors (HyperLogLog estimate, standard error 0.81%) of site ${result.site}, ${what}, ${range}`,
  ];
  if (result.redisCli === null) {
    lines.push(
      `  from ${parts.join(", ")} in one PFCOUNT, through the read API (set REDIS_ENDPOINT as in the stack's cli_env to see the redis-cli command)`,
    );
  } else {
    lines.push(`  from ${parts.join(", ")} in one PFCOUNT; the same with redis-cli:`);
    lines.push(`  ${result.redisCli}`);
  }
  return `${lines.join("\n")}\n`;
}

/** The warning for days counted from day keys past their retention (gone, so adding nothing). */
export function warnExpired(
  stderr: Output,
  expired: readonly string[],
  retentionDays: number | undefined,
): void {
  if (expired.length === 0) return;
  const retention =
    retentionDays === undefined ? "the retention" : `the ${retentionDays}-day retention`;
  stderr.write(
    `warning: ${expired.length} of the days counted (${expired[0]}${expired.length > 1 ? ` to ${expired[expired.length - 1]}` : ""}) are past ${retention} of daily keys (RETENTION_DAYS): their keys have expired and add nothing to the estimate. Older ranges are exact only in whole weeks and months.\n`,
  );
}

/**
 * The runtime config when the environment names a Redis endpoint, else undefined: reading
 * through the API needs none, but uses it for the redis-cli line and the retention warning.
 */
export function optionalRuntimeConfig(env: Env): RuntimeConfig | undefined {
  return env.REDIS_ENDPOINT?.trim() ? loadRuntimeConfig(env) : undefined;
}

async function countThroughApi(
  api: ReadApi,
  request: CountRequest,
  deps: CountDeps,
): Promise<number> {
  const config = optionalRuntimeConfig(deps.env);
  const body = await getFromApi(
    api,
    `v1/sites/${encodeURIComponent(request.site)}/count`,
    { from: request.from, to: request.to, event: request.event },
    CountBody,
    deps.timeoutMs ?? 15_000,
  );
  const result: CountResult = {
    site: body.site,
    event: body.event,
    from: body.from,
    to: body.to,
    keys: body.keys,
    estimate: body.estimate,
    redisCli: config ? redisCliCommand(config.redis, body.keys) : null,
  };
  warnExpired(deps.stderr, body.missing, config?.retention.days);
  deps.stdout.write(request.json ? `${JSON.stringify(result)}\n` : describe(result));
  return EXIT_OK;
}

export async function runCount(args: readonly string[], deps: CountDeps): Promise<number> {
  const request = parseCountArgs(args);
  const api = readApiFromEnv(deps.env, deps);
  if (api) return countThroughApi(api, request, deps);
  const config = loadRuntimeConfig(deps.env);
  const settings = config.redis;
  const { missing: expired, ...result } = await withRedis(
    settings,
    { ...(deps.connect ? { connect: deps.connect } : {}), timeoutMs: deps.timeoutMs ?? 15_000 },
    (connection: RedisConnection) =>
      countVisitors(connection.client, settings, request, {
        retentionDays: config.retention.days,
        nowMs: (deps.now ?? Date.now)(),
        warn: (line) => deps.stderr.write(`${line}\n`),
      }),
  );
  warnExpired(deps.stderr, expired, config.retention.days);
  deps.stdout.write(request.json ? `${JSON.stringify(result)}\n` : describe(result));
  return EXIT_OK;
}
