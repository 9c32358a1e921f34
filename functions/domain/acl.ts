/**
 * Least-privilege Redis ACL rules per role, shared by the stack (MemoryDB users) and the tests
 * that run the real handlers under them. Key patterns follow keys.ts.
 *
 * The connection commands are what ioredis needs to connect to a cluster and check readiness:
 * CLUSTER SLOTS (slot map), INFO (ready check), PING.
 */

import {
  AS_OF_KEY,
  bookkeepingKeyPattern,
  LEGACY_PENDING_KEY,
  LEGACY_SITES_KEY,
  LEGACY_TOUCHED_KEY,
  LEGACY_WORK_KEY,
  LOCK_KEY,
  TIME_ZONES_KEY,
} from "./keys.js";

/** Every site's event-type set (keys.ts siteEventTypesKey), as an ACL key pattern. */
const EVENT_TYPES = "sketchstream:{site_id=*}:event-types";

const CONNECT = "+ping +info +cluster|slots +cluster|info";

/** Every group's set of a kind (keys.ts bookkeepingKey), as an ACL key pattern. */
const TOUCHED = bookkeepingKeyPattern("touched");
const PENDING = bookkeepingKeyPattern("pending");
const SITES = bookkeepingKeyPattern("sites");
const WORK = bookkeepingKeyPattern("work");

/**
 * The single-slot sets of versions before the groups (keys.ts LEGACY_*): the rollup drains
 * them; until it has, the read side and offboarding look at them too.
 */
const LEGACY_READ = `~${LEGACY_TOUCHED_KEY} ~${LEGACY_PENDING_KEY} ~${LEGACY_SITES_KEY}`;

export const ACL_RULES = {
  /**
   * The Kinesis consumer: add ids to daily HLLs of both families (`uv:` user ids, `ev:` event
   * identities), set their deadlines, note touched days, sites and event types, and stamp the
   * time of its last stored batch (ZADD GT on `as-of`) and of its first (ZADD LT). Touched and
   * site-index members go to the site's group's sets. EXISTS asks, once per execution
   * environment, whether any site index exists (a fresh install), the single-slot one of older
   * versions included, which is read-only to it.
   * HMGET reads the zones of a batch's sites from the registry, which is read-only to it
   * (`%R~`, Redis 7 key permissions): none of its writes can touch the registry. No WAIT:
   * only a consumer that waits for replicas (REDIS_WAIT_REPLICAS=1, self-managed Redis) needs
   * it, and its rules come from `consumerAclRules`; the deployed (MemoryDB) user never waits.
   */
  consumer: `~uv:* ~ev:* ~${TOUCHED} ~${SITES} ~${EVENT_TYPES} ~${AS_OF_KEY} %R~${TIME_ZONES_KEY} %R~${LEGACY_SITES_KEY} resetchannels -@all ${CONNECT} +pfadd +expireat +sadd +zadd +exists +hmget`,
  /**
   * The rollup: merge days into weeks and months (`uv:` and `ev:` alike), rebuild through a
   * temporary key, and keep its bookkeeping (lock, `as-of`, every group's touched, pending,
   * site-index and work sets; the single-slot sets of older versions, which it drains: SREM
   * moves the old site index's members into the groups). EVAL/EVALSHA run its three scripts:
   * the lock's compare-and-delete, the take of a group's touched set (EXISTS, RENAME or
   * SUNIONSTORE + DEL) and a scheduled run's merges (EXISTS, PFMERGE, EXPIREAT NX: one call per
   * site); a script runs with the caller's ACL, so each command it calls is checked against
   * these rules and it cannot reach beyond them. No PFCOUNT, SCARD or MULTI: it never reads a
   * count, and its one transaction is a script. HMGET reads the zones of a page's sites (week
   * and month expiry) and HLEN asks whether any site has a zone (a backfill's retention check);
   * the registry is read-only to it (`%R~`), so none of its DEL, RENAME or EXPIREAT can touch
   * it.
   */
  rollup: `~uv:* ~ev:* ~${LOCK_KEY} ~${AS_OF_KEY} ~${TOUCHED} ~${PENDING} ~${SITES} ~${WORK} ${LEGACY_READ} ~${LEGACY_WORK_KEY} %R~${TIME_ZONES_KEY} resetchannels -@all ${CONNECT} +hmget +hlen +pfmerge +expireat +exists +rename +del +unlink +sadd +srem +sscan +sunionstore +zadd +zrange +zcard +set +get +pexpire +eval +evalsha`,
  /**
   * Operators with redis-cli, the CLI's `count` and the read API: read counts (`uv:` and `ev:`)
   * and expiries, ask the rollup's touched/pending sets (the site's group's, and the single-slot
   * ones of older versions until a rollup drained them) whether a week or month key is up to
   * date, page through the site index (SSCAN, SISMEMBER), list a site's event types (SMEMBERS),
   * read the `asOf` times (ZMSCORE) and a site's time zone (HGET). Every command allowed here
   * only reads.
   */
  reader: `~uv:* ~ev:* ~${TOUCHED} ~${PENDING} ~${SITES} ${LEGACY_READ} ~${EVENT_TYPES} ~${AS_OF_KEY} ~${TIME_ZONES_KEY} resetchannels -@all ${CONNECT} +pfcount +ttl +pttl +expiretime +exists +type +scan +cluster|keyslot +smismember +sscan +sismember +smembers +zmscore +hget`,
  /**
   * The admin function: read, set and remove a site's entry in the zone registry (HGET, HSET,
   * HDEL), and delete a site's data (functions/admin/offboard.ts): find the node of the site's
   * slot (CLUSTER KEYSLOT), SCAN it for the site's keys and UNLINK them; SSCAN the site index
   * and the rollup's touched and pending sets (the site's group's, and the single-slot ones of
   * older versions) for the site's members and SREM them. Counting
   * keys and event-type sets are write-only to it (`%W~`, enough for UNLINK): it can delete
   * counts and never read one (no PFCOUNT, GET or any read command either). SCAN lists key
   * names, as the reader's may. UNLINK of a whole bookkeeping set or the registry is within
   * these rules, but no more than SREM or HDEL of every member already is. The read API's
   * reader user may only read: the write boundary is this user, behind its own function.
   */
  registryWriter: `~${TIME_ZONES_KEY} ~${SITES} ~${TOUCHED} ~${PENDING} ${LEGACY_READ} %W~uv:* %W~ev:* %W~${EVENT_TYPES} resetchannels -@all ${CONNECT} +hget +hset +hdel +cluster|keyslot +scan +unlink +sscan +srem`,
} as const;

/**
 * The consumer's rules for how it is configured: with `waitForReplicas` (REDIS_WAIT_REPLICAS=1)
 * it also sends `WAIT` (which reads and writes no key) to each primary it wrote to.
 */
export function consumerAclRules(options: { readonly waitForReplicas: boolean }): string {
  return options.waitForReplicas ? `${ACL_RULES.consumer} +wait` : ACL_RULES.consumer;
}
