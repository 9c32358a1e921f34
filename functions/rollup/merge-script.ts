/**
 * Server-side merging for a scheduled run: one script call per site and slice of its targets
 * does what the client would otherwise send as three commands per target (EXISTS of the touched
 * day, PFMERGE of it into the period key, EXPIREAT NX of the period key). Every key of a site
 * carries the site's hash tag (`{site_id=715}`, keys.ts), so one call's keys share a slot, as a
 * script in a cluster requires. Measured by `npm run bench:rollup` against the same merges sent
 * as single commands by a bare pipelined client: the script call is what the rollup keeps.
 *
 * A script runs with the caller's ACL: each `redis.call` is checked against the rollup user's
 * rules (keys.ts patterns, acl.ts), so the script can reach nothing the user could not.
 * Replicas get the script's effects (Redis 7 replicates effects, not the call).
 */

import { createHash } from "node:crypto";
import { messageOf } from "../domain/errors.js";

/**
 * KEYS: period key 1, day key 1, period key 2, day key 2, …; ARGV[i]: period key i's deadline
 * (unix seconds). For each pair, when the day key exists, PFMERGE it into the period key and
 * give the period key its deadline unless it has one (EXPIREAT NX): the same three commands,
 * same order, as the single-command path. Returns one integer per pair: 1 merged, 0 the day
 * key does not exist (nothing written: PFMERGE would create an empty period key).
 */
export const MERGE_TOUCHED_DAYS_LUA = `local merged = {}
for i = 1, #ARGV do
  local period, day = KEYS[2 * i - 1], KEYS[2 * i]
  if redis.call("EXISTS", day) == 1 then
    redis.call("PFMERGE", period, day)
    redis.call("EXPIREAT", period, ARGV[i], "NX")
    merged[i] = 1
  else
    merged[i] = 0
  end
end
return merged`;

export const MERGE_TOUCHED_DAYS_SHA = sha1(MERGE_TOUCHED_DAYS_LUA);

function sha1(text: string): string {
  return createHash("sha1").update(text).digest("hex");
}

/**
 * The most targets one call carries. A call blocks its shard while it runs (about 12 µs per
 * PFMERGE of a sparse day, far more for dense ones): 64 keeps a call around a millisecond even
 * when every day is dense, and a site's usual handful of targets is one call.
 */
export const MERGE_SCRIPT_MAX_TARGETS = 64;

/** The commands the script call needs; an ioredis Redis or Cluster satisfies it. */
export interface ScriptRedis {
  evalsha(sha: string, numKeys: number, ...args: (string | number)[]): Promise<unknown>;
  eval(script: string, numKeys: number, ...args: (string | number)[]): Promise<unknown>;
}

/** One period key and the touched day merged into it. */
export interface TouchedDayMerge {
  readonly key: string;
  readonly day: string;
  readonly expireAt: number;
}

/**
 * Runs the script for targets that share a slot (one site's), at most MERGE_SCRIPT_MAX_TARGETS:
 * EVALSHA, and EVAL with the script's text when the node does not have it cached (NOSCRIPT:
 * after a restart or failover, once per node and call in flight). Returns, per target, whether
 * its day existed and was merged.
 */
export async function mergeTouchedDaysOnServer(
  redis: ScriptRedis,
  targets: readonly TouchedDayMerge[],
): Promise<boolean[]> {
  if (targets.length > MERGE_SCRIPT_MAX_TARGETS) {
    throw new RangeError(
      `${targets.length} targets in one merge script call: at most ${MERGE_SCRIPT_MAX_TARGETS}`,
    );
  }
  const args: (string | number)[] = [];
  for (const t of targets) args.push(t.key, t.day);
  for (const t of targets) args.push(t.expireAt);
  const reply = await runScript(
    redis,
    { lua: MERGE_TOUCHED_DAYS_LUA, sha: MERGE_TOUCHED_DAYS_SHA },
    targets.length * 2,
    args,
  );
  if (!Array.isArray(reply) || reply.length !== targets.length) {
    throw new Error(
      `the merge script answered ${JSON.stringify(reply)?.slice(0, 200)} for ${targets.length} targets: expected one 0 or 1 per target`,
    );
  }
  return reply.map((flag) => flag === 1);
}

/** A script and its SHA-1, as EVALSHA names it. */
export interface RedisScript {
  readonly lua: string;
  readonly sha: string;
}

export function redisScript(lua: string): RedisScript {
  return { lua, sha: sha1(lua) };
}

/**
 * EVALSHA of a script, and EVAL with its text when the node does not have it cached (NOSCRIPT:
 * after a restart or a failover, once per node and call in flight).
 */
export async function runScript(
  redis: ScriptRedis,
  script: RedisScript,
  numKeys: number,
  args: readonly (string | number)[],
): Promise<unknown> {
  try {
    return await redis.evalsha(script.sha, numKeys, ...args);
  } catch (err) {
    if (!messageOf(err).startsWith("NOSCRIPT")) throw err;
    return await redis.eval(script.lua, numKeys, ...args);
  }
}
