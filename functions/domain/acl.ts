/**
 * Least-privilege Redis ACL rules per role, shared by the stack (MemoryDB users) and the tests
 * that run the real handlers under them. Key patterns follow keys.ts.
 *
 * The connection commands are what ioredis needs to connect to a cluster and check readiness:
 * CLUSTER SLOTS (slot map), INFO (ready check), PING.
 */

import { AS_OF_KEY, PENDING_KEY, SITES_KEY, TIME_ZONES_KEY, TOUCHED_KEY } from "./keys.js";

/** Every site's event-type set (keys.ts siteEventTypesKey), as an ACL key pattern. */
const EVENT_TYPES = "sketchstream:{site_id=*}:event-types";

const CONNECT = "+ping +info +cluster|slots +cluster|info";

export const ACL_RULES = {
  /**
   * The Kinesis consumer: add ids to daily HLLs of both families (`uv:` user ids, `ev:` event
   * identities), set their deadlines, note touched days, sites and event types, and stamp the
   * time of its last stored batch (ZADD GT on `as-of`) and of its first (ZADD LT). EXISTS
   * asks, once per execution environment, whether the site index exists (a fresh install).
   * HMGET reads the zones of a batch's sites from the registry, which is read-only to it
   * (`%R~`, Redis 7 key permissions): none of its writes can touch the registry.
   */
  consumer: `~uv:* ~ev:* ~${TOUCHED_KEY} ~${SITES_KEY} ~${EVENT_TYPES} ~${AS_OF_KEY} %R~${TIME_ZONES_KEY} resetchannels -@all ${CONNECT} +pfadd +expireat +sadd +zadd +exists +hmget`,
  /**
   * The rollup: merge days into weeks and months (`uv:` and `ev:` alike), rebuild through a
   * temporary key, and keep its bookkeeping (lock, touched/pending/work sets). EVAL runs the
   * lock's compare-and-delete; a script runs with the caller's ACL, so it cannot reach beyond
   * these rules. HMGET reads the zones of a page's sites (week and month expiry) and HLEN asks
   * whether any site has a zone (a backfill's retention check); the registry is read-only to
   * it (`%R~`), so none of its DEL, RENAME or EXPIREAT can touch it.
   */
  rollup: `~uv:* ~ev:* ~sketchstream:{rollup}:* %R~${TIME_ZONES_KEY} resetchannels -@all ${CONNECT} +hmget +hlen +pfmerge +pfcount +expireat +exists +rename +del +unlink +sadd +sscan +scard +sunionstore +zadd +zrange +zcard +set +get +pexpire +eval +evalsha +multi +exec`,
  /**
   * Operators with redis-cli, the CLI's `count` and the read API: read counts (`uv:` and `ev:`)
   * and expiries, ask the rollup's touched/pending sets whether a week or month key is up to
   * date, page through the site index (SSCAN, SISMEMBER), list a site's event types (SMEMBERS),
   * read the `asOf` times (ZMSCORE) and a site's time zone (HGET). Every command allowed here
   * only reads.
   */
  reader: `~uv:* ~ev:* ~${TOUCHED_KEY} ~${PENDING_KEY} ~${SITES_KEY} ~${EVENT_TYPES} ~${AS_OF_KEY} ~${TIME_ZONES_KEY} resetchannels -@all ${CONNECT} +pfcount +ttl +pttl +expiretime +exists +type +scan +cluster|keyslot +smismember +sscan +sismember +smembers +zmscore +hget`,
  /**
   * The admin function: read, set and remove a site's entry in the zone registry (HGET, HSET,
   * HDEL), and nothing else. The read API's reader user may only HGET it: the write boundary is
   * this user, behind its own function.
   */
  registryWriter: `~${TIME_ZONES_KEY} resetchannels -@all ${CONNECT} +hget +hset +hdel`,
} as const;
