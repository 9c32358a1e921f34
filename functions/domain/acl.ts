/**
 * Least-privilege Redis ACL rules per role, shared by the stack (MemoryDB users) and the tests
 * that run the real handlers under them. Key patterns follow keys.ts.
 *
 * The connection commands are what ioredis needs to connect to a cluster and check readiness:
 * CLUSTER SLOTS (slot map), INFO (ready check), PING.
 */

import { PENDING_KEY, SITES_KEY, TOUCHED_KEY } from "./keys.js";

const CONNECT = "+ping +info +cluster|slots +cluster|info";

export const ACL_RULES = {
  /** The Kinesis consumer: add ids to daily HLLs, set their deadlines, note touched days. */
  consumer: `~uv:* ~${TOUCHED_KEY} ~${SITES_KEY} resetchannels -@all ${CONNECT} +pfadd +expireat +sadd`,
  /**
   * The rollup: merge days into weeks and months, rebuild through a temporary key, and keep its
   * bookkeeping (lock, touched/pending/work sets). EVAL runs the lock's compare-and-delete; a
   * script runs with the caller's ACL, so it cannot reach beyond these rules.
   */
  rollup: `~uv:* ~sketchstream:{rollup}:* resetchannels -@all ${CONNECT} +pfmerge +pfcount +expireat +exists +rename +del +unlink +sadd +sscan +scard +sunionstore +zadd +zrange +zcard +set +get +pexpire +eval +evalsha +multi +exec`,
  /**
   * Operators with redis-cli and the CLI's `count`: read counts and expiries, and ask the
   * rollup's touched/pending sets whether a week or month key is up to date (every command
   * allowed on them reads: SMISMEMBER, EXISTS, TYPE).
   */
  reader: `~uv:* ~${TOUCHED_KEY} ~${PENDING_KEY} resetchannels -@all ${CONNECT} +pfcount +ttl +pttl +expiretime +exists +type +scan +cluster|keyslot +smismember`,
} as const;
