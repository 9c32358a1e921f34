/**
 * `site --site S [--time-zone Z | --utc] [--json]`: read or set a site's time zone in the zone
 * registry (`sketchstream:{config}:time-zones`; no entry means UTC). Without ADMIN_API_URL it
 * talks to Redis at REDIS_ENDPOINT (HGET, HSET, HDEL); with it, to the admin API (the admin
 * function's URL, SigV4-signed with the caller's AWS credentials), which is how it is done in
 * AWS: only the admin function's Redis user may write the registry.
 *
 * A zone name is checked here before anything is sent (functions/domain/time-zones.ts), so a
 * bad one is a usage error (exit 2); the admin API checks it again.
 */

import type { RedisClient } from "../functions/adapters/redis.js";
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
  /** Bound on the Redis conversation (or each API request), ms. Default 15000. */
  readonly timeoutMs?: number;
}

export type SiteAction =
  | { readonly kind: "read" }
  | { readonly kind: "set"; readonly timeZone: string }
  | { readonly kind: "remove" };

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

export function parseSiteArgs(args: readonly string[]): SiteRequest {
  const flags = parseFlags("site", args, {
    site: { type: "string" },
    "time-zone": { type: "string" },
    utc: { type: "boolean" },
    json: { type: "boolean" },
  });
  if (flags.site === undefined) throw new UsageError("site: --site is required");
  try {
    assertSiteId(flags.site);
  } catch (err) {
    throw new UsageError(`site: ${messageOf(err)}`);
  }
  const zone = flags["time-zone"];
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
  request: SiteRequest,
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

function applyThroughRedis(request: SiteRequest, env: Env, deps: SiteDeps) {
  const config = loadRuntimeConfig(env);
  return withRedis(
    config.redis,
    { ...(deps.connect ? { connect: deps.connect } : {}), timeoutMs: deps.timeoutMs ?? 15_000 },
    async (connection) => {
      try {
        return await apply(redisRegistry(connection.client), request);
      } catch (err) {
        if (/NOPERM/.test(messageOf(err))) {
          const user = config.redis.auth.mode === "none" ? "default" : config.redis.auth.user;
          throw new CliError(
            `the Redis user "${user}" may not ${request.action.kind === "read" ? "read" : "write"} the zone registry (${messageOf(err)}): in AWS, set ${ADMIN_API.variable} (the stack's ${ADMIN_API.output} output) to go through the admin function, whose user may`,
          );
        }
        throw err;
      }
    },
  );
}

export async function runSite(args: readonly string[], deps: SiteDeps): Promise<number> {
  const request = parseSiteArgs(args);
  const api = functionUrlApiFromEnv(deps.env, ADMIN_API, deps);
  const { before, after, changed } = api
    ? await apply(adminApiRegistry(api, deps.timeoutMs ?? 15_000), request)
    : await applyThroughRedis(request, deps.env, deps);
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
