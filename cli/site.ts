/**
 * `site --site S [--time-zone Z | --utc | --delete --yes] [--json]`: read or set a site's time
 * zone in the zone registry (`sketchstream:{config}:time-zones`; no entry means UTC), or delete
 * all of the site's data (offboarding: functions/admin/offboard.ts). Without ADMIN_API_URL it
 * talks to Redis at REDIS_ENDPOINT; with it, to the admin API (the admin function's URL,
 * SigV4-signed with the caller's AWS credentials), which is how it is done in AWS: only the
 * admin function's Redis user may write the registry and delete a site's keys.
 *
 * A zone name is checked here before anything is sent (functions/domain/time-zones.ts), so a
 * bad one is a usage error (exit 2); the admin API checks it again. A deletion without --yes
 * is a usage error that says what would be deleted.
 *
 * A deletion runs in steps that each stop after a time budget and return a cursor (the admin
 * API answers one step per request, within its deadline); a line of progress follows each
 * step, so a long one (SCAN walks every key of the node that holds the site) shows it moving.
 */

import type { RedisClient } from "../functions/adapters/redis.js";
import {
  addCounts,
  deleteSiteData,
  NO_COUNTS,
  type SiteDataCounts,
  SiteDeletionBody,
  type SiteDeletionStep,
} from "../functions/admin/offboard.js";
import { TimeZoneBody } from "../functions/api/schemas.js";
import { messageOf } from "../functions/domain/errors.js";
import { assertSiteId, TIME_ZONES_KEY } from "../functions/domain/keys.js";
import { type Env, loadRuntimeConfig } from "../functions/domain/runtime-env.js";
import { assertTimeZone } from "../functions/domain/time-zones.js";
import { type SiteTimeZone, siteTimeZone } from "../functions/read/catalog.js";
import {
  ADMIN_API,
  type FunctionUrlApi,
  functionUrlApiFromEnv,
  type ReadApiDeps,
  requestApi,
} from "./api-client.js";
import { parseFlags } from "./args.js";
import { CliError, type CliIo, EXIT_OK, UsageError } from "./io.js";
import { type ConnectRedis, withRedis } from "./redis.js";

export interface SiteDeps extends CliIo, ReadApiDeps {
  readonly connect?: ConnectRedis;
  /** Bound on the Redis conversation (or each API request, or deletion step), ms. Default 15000. */
  readonly timeoutMs?: number;
  /**
   * ms a deletion step works against Redis before it reports progress and goes on from its
   * cursor. Default a third of timeoutMs. (Through the admin API, the API sets its own.)
   */
  readonly deletionStepMs?: number;
}

export type SiteAction =
  | { readonly kind: "read" }
  | { readonly kind: "set"; readonly timeZone: string }
  | { readonly kind: "remove" }
  | { readonly kind: "delete" };

export interface SiteRequest {
  readonly site: string;
  readonly action: SiteAction;
  readonly json: boolean;
}

/** What `site --json` prints after a change (a read prints the admin API's answer as is). */
export interface SiteChangeResult extends SiteTimeZone {
  readonly site: string;
  readonly previous: SiteTimeZone;
  /** False when the registry already said so: nothing was written. */
  readonly changed: boolean;
}

/** What every change of zone is followed by: whom it affects, and whom it does not. */
export const ZONE_CHANGE_NOTE =
  "This applies to events ingested from now on: the consumer re-reads the zone registry within 60 s. Keys already written keep their labels (their dates are those of the zone they were written in): they are never rewritten.";

/** What `site --delete` removes, for the confirmation and the answer. */
export function deletionScope(site: string): string {
  return `every key of site ${site} (its day, week and month HyperLogLogs of both metrics, uv: and ev:, per event type too, and its event-type set), its members of the site index and of the rollup's touched and pending sets, and its time-zone entry`;
}

/** Said after a deletion: what could bring the site back, and how to be sure it is gone. */
export const DELETION_NOTE =
  "Events of this site still in the stream, retried, redriven or sent later are counted again: stop its producers first. Run this again after the next rollup: a run that deletes nothing confirms the site is gone.";

export function parseSiteArgs(args: readonly string[]): SiteRequest {
  const flags = parseFlags("site", args, {
    site: { type: "string" },
    "time-zone": { type: "string" },
    utc: { type: "boolean" },
    delete: { type: "boolean" },
    yes: { type: "boolean" },
    json: { type: "boolean" },
  });
  if (flags.site === undefined) throw new UsageError("site: --site is required");
  try {
    assertSiteId(flags.site);
  } catch (err) {
    throw new UsageError(`site: ${messageOf(err)}`);
  }
  const zone = flags["time-zone"];
  if (flags.delete && (zone !== undefined || flags.utc)) {
    throw new UsageError(
      `site: --delete deletes the site's time-zone entry with the rest of its data: give --delete alone, not with ${zone !== undefined ? "--time-zone" : "--utc"}`,
    );
  }
  if (flags.yes && !flags.delete) {
    throw new UsageError("site: --yes confirms --delete and does nothing alone");
  }
  if (flags.delete) {
    if (!flags.yes) {
      throw new UsageError(
        `site: --delete removes ${deletionScope(flags.site)}. It cannot be undone: add --yes to delete`,
      );
    }
    return { site: flags.site, action: { kind: "delete" }, json: flags.json ?? false };
  }
  if (zone !== undefined && flags.utc) {
    throw new UsageError(
      "site: give --time-zone Z to set a zone or --utc to go back to UTC, not both",
    );
  }
  let action: SiteAction = { kind: "read" };
  if (zone !== undefined) {
    try {
      assertTimeZone(zone);
    } catch (err) {
      throw new UsageError(`site: --time-zone: ${messageOf(err)}`);
    }
    action = { kind: "set", timeZone: zone };
  } else if (flags.utc) {
    action = { kind: "remove" };
  }
  return { site: flags.site, action, json: flags.json ?? false };
}

/** The registry's three operations on one site, each answering the site's zone afterwards. */
interface Registry {
  read(site: string): Promise<SiteTimeZone>;
  set(site: string, timeZone: string): Promise<SiteTimeZone>;
  remove(site: string): Promise<SiteTimeZone>;
}

function redisRegistry(redis: RedisClient): Registry {
  return {
    read: (site) => siteTimeZone(redis, site),
    async set(site, timeZone) {
      await redis.hset(TIME_ZONES_KEY, site, timeZone);
      return { timeZone, source: "registry" };
    },
    async remove(site) {
      await redis.hdel(TIME_ZONES_KEY, site);
      return { timeZone: "UTC", source: "default" };
    },
  };
}

function adminApiRegistry(api: FunctionUrlApi, timeoutMs: number): Registry {
  const call = async (site: string, method: string, json?: unknown): Promise<SiteTimeZone> => {
    const { timeZone, source } = await requestApi(
      api,
      {
        method,
        path: `v1/sites/${encodeURIComponent(site)}/time-zone`,
        ...(json === undefined ? {} : { json }),
      },
      TimeZoneBody,
      timeoutMs,
    );
    return { timeZone, source };
  };
  return {
    read: (site) => call(site, "GET"),
    set: (site, timeZone) => call(site, "PUT", { timeZone }),
    remove: (site) => call(site, "DELETE"),
  };
}

/** The zone the site has before and after the request, and whether anything was written. */
async function apply(
  registry: Registry,
  request: SiteRequest & { readonly action: Exclude<SiteAction, { kind: "delete" }> },
): Promise<{ before: SiteTimeZone; after: SiteTimeZone; changed: boolean }> {
  const before = await registry.read(request.site);
  const { action } = request;
  if (action.kind === "read") return { before, after: before, changed: false };
  const already =
    action.kind === "set"
      ? before.source === "registry" && before.timeZone === action.timeZone
      : before.source === "default";
  if (already) return { before, after: before, changed: false };
  const after =
    action.kind === "set"
      ? await registry.set(request.site, action.timeZone)
      : await registry.remove(request.site);
  return { before, after, changed: true };
}

function describeZone(zone: SiteTimeZone): string {
  return zone.source === "default"
    ? `${zone.timeZone}, the default (no entry in the zone registry)`
    : `${zone.timeZone} (set in the zone registry)`;
}

/** `work` against REDIS_ENDPOINT; NOPERM becomes a CliError saying to use the admin API. */
function throughRedis<T>(
  env: Env,
  deps: SiteDeps,
  what: string,
  work: (redis: RedisClient) => Promise<T>,
): Promise<T> {
  const config = loadRuntimeConfig(env);
  return withRedis(
    config.redis,
    { ...(deps.connect ? { connect: deps.connect } : {}), timeoutMs: deps.timeoutMs ?? 15_000 },
    async (connection) => {
      try {
        return await work(connection.client);
      } catch (err) {
        if (/NOPERM/.test(messageOf(err))) {
          const user = config.redis.auth.mode === "none" ? "default" : config.redis.auth.user;
          throw new CliError(
            `the Redis user "${user}" may not ${what} (${messageOf(err)}): in AWS, set ${ADMIN_API.variable} (the stack's ${ADMIN_API.output} output) to go through the admin function, whose user may`,
          );
        }
        throw err;
      }
    },
  );
}

/** One deletion step from `cursor` (undefined: the start). */
type DeletionStepper = (cursor: string | undefined) => Promise<SiteDeletionStep>;

function redisDeletion(site: string, deps: SiteDeps): DeletionStepper {
  const stepMs = deps.deletionStepMs ?? Math.floor((deps.timeoutMs ?? 15_000) / 3);
  // A connection per step: each step is bounded by timeoutMs, and a long deletion has no
  // single bound.
  return (cursor) =>
    throughRedis(deps.env, deps, "delete a site's data", (redis) =>
      deleteSiteData(redis, site, { budgetMs: stepMs, ...(cursor ? { cursor } : {}) }),
    );
}

function adminApiDeletion(site: string, api: FunctionUrlApi, timeoutMs: number): DeletionStepper {
  return (cursor) =>
    requestApi(
      api,
      {
        method: "DELETE",
        path: `v1/sites/${encodeURIComponent(site)}`,
        query: { confirm: site, cursor },
      },
      SiteDeletionBody,
      timeoutMs,
    );
}

function describeMembers(deleted: SiteDataCounts): string {
  return `${deleted.keys} keys, ${deleted.siteIndex} site-index members, ${deleted.touched} touched and ${deleted.pending} pending rollup members`;
}

/**
 * Steps until the cursor is null; a progress line on stderr after every unfinished step. A
 * failure midway says that running the command again finishes the job.
 */
async function deleteInSteps(
  site: string,
  step: DeletionStepper,
  deps: SiteDeps,
): Promise<{ deleted: SiteDataCounts; pages: number }> {
  let deleted = NO_COUNTS;
  let pages = 0;
  let cursor: string | undefined;
  for (;;) {
    let answer: SiteDeletionStep;
    try {
      answer = await step(cursor);
    } catch (err) {
      if (cursor === undefined) throw err;
      throw new CliError(
        `${messageOf(err)}. The deletion of site ${site} stopped after ${pages} pages (deleted ${describeMembers(deleted)}): run the same command again to finish it; a deletion is idempotent`,
      );
    }
    deleted = addCounts(deleted, answer.deleted);
    pages += answer.pages;
    if (answer.cursor === null) return { deleted, pages };
    cursor = answer.cursor;
    deps.stderr.write(
      `site ${site}: deleting... ${pages} pages so far, deleted ${describeMembers(deleted)}\n`,
    );
  }
}

async function runDeletion(
  site: string,
  json: boolean,
  api: FunctionUrlApi | undefined,
  deps: SiteDeps,
): Promise<number> {
  const step = api
    ? adminApiDeletion(site, api, deps.timeoutMs ?? 15_000)
    : redisDeletion(site, deps);
  const { deleted, pages } = await deleteInSteps(site, step, deps);
  const nothing = Object.values(deleted).every((n) => n === 0);
  if (json) {
    deps.stdout.write(`${JSON.stringify({ site, deleted, pages })}\n`);
  } else {
    deps.stdout.write(
      nothing
        ? `site ${site}: nothing to delete (no key, no index, touched or pending member, no time-zone entry)\n`
        : `site ${site}: deleted ${describeMembers(deleted)} and ${deleted.timeZone === 1 ? "its time-zone entry" : "no time-zone entry (it had none)"}\n`,
    );
  }
  if (!nothing) deps.stderr.write(`${DELETION_NOTE}\n`);
  return EXIT_OK;
}

export async function runSite(args: readonly string[], deps: SiteDeps): Promise<number> {
  const parsed = parseSiteArgs(args);
  const api = functionUrlApiFromEnv(deps.env, ADMIN_API, deps);
  const { action } = parsed;
  if (action.kind === "delete") return runDeletion(parsed.site, parsed.json, api, deps);
  const request = { ...parsed, action };
  const { before, after, changed } = api
    ? await apply(adminApiRegistry(api, deps.timeoutMs ?? 15_000), request)
    : await throughRedis(
        deps.env,
        deps,
        `${action.kind === "read" ? "read" : "write"} the zone registry`,
        (redis) => apply(redisRegistry(redis), request),
      );
  const { site } = request;
  if (request.action.kind === "read") {
    deps.stdout.write(
      request.json
        ? `${JSON.stringify({ site, ...after })}\n`
        : `site ${site}: ${describeZone(after)}\n`,
    );
    return EXIT_OK;
  }
  if (request.json) {
    const result: SiteChangeResult = { site, ...after, previous: before, changed };
    deps.stdout.write(`${JSON.stringify(result)}\n`);
    if (changed) deps.stderr.write(`${ZONE_CHANGE_NOTE}\n`);
    return EXIT_OK;
  }
  deps.stdout.write(
    changed
      ? `site ${site}: ${describeZone(after)}, was ${before.timeZone}${before.source === "default" ? " (the default)" : ""}\n${ZONE_CHANGE_NOTE}\n`
      : `site ${site}: already ${describeZone(after)}; nothing changed\n`,
  );
  return EXIT_OK;
}
