/**
 * Least-privilege Redis ACL rules per role, shared by the stack (MemoryDB users) and the tests
 * that run the real handlers under them. Key patterns follow keys.ts.
 *
 * The connection commands are what ioredis needs to connect to a cluster and check readiness:
 * CLUSTER SLOTS (slot map), INFO (ready check), PING.
 */

import { TOUCHED_KEY } from "./keys.js";

const CONNECT = "+ping +info +cluster|slots +cluster|info";

export const ACL_RULES = {
  /** The Kinesis consumer: add ids to daily HLLs, set their deadlines, note touched days. */
  consumer: `~uv:* ~${TOUCHED_KEY} resetchannels -@all ${CONNECT} +pfadd +expireat +sadd`,
  /** Operators with redis-cli: read counts and expiries, nothing else. */
  reader: `~uv:* resetchannels -@all ${CONNECT} +pfcount +ttl +pttl +expiretime +exists +type +scan +cluster|keyslot`,
} as const;
