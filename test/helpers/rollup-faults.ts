/**
 * Fault injection into the rollup's merges: a Redis client (createRollupHandlers' wrapRedis)
 * whose merge calls first go through a hook, which may throw (a crash mid-page) or act (kill a
 * node). A merge call is a scheduled run's script call (EVALSHA, or EVAL of the script after
 * NOSCRIPT; one per site and slice, merge-script.ts) or a backfill's PFMERGE.
 */

import {
  MERGE_TOUCHED_DAYS_LUA,
  MERGE_TOUCHED_DAYS_SHA,
} from "../../functions/rollup/merge-script.js";
import type { RollupRedis } from "../../functions/rollup/rollup.js";

const MERGE_CALLS = new Set<string | symbol>(["evalsha", "eval", "pfmerge"]);

/**
 * Wraps a client so that each merge call runs `hook(n)` first, n counting from 1 across every
 * client this wrapper made. The lock's compare-and-delete (EVAL of another script) is not a
 * merge: only calls whose first argument is the merge script's SHA or text, and PFMERGE, count.
 */
export function onMergeCall(hook: (call: number) => void): (client: RollupRedis) => RollupRedis {
  let calls = 0;
  return (client) =>
    new Proxy(client, {
      get(target, prop, receiver) {
        const original = Reflect.get(target, prop, receiver);
        if (!MERGE_CALLS.has(prop) || typeof original !== "function") return original;
        return (...args: unknown[]) => {
          if (prop === "pfmerge" || isMergeScript(args[0])) hook(++calls);
          return original.apply(target, args);
        };
      },
    });
}

function isMergeScript(first: unknown): boolean {
  return (
    typeof first === "string" &&
    (first === MERGE_TOUCHED_DAYS_SHA || first === MERGE_TOUCHED_DAYS_LUA)
  );
}
