/**
 * The rollup's bookkeeping as the tests read it: every group's set of a kind (keys.ts
 * bookkeepingKey), one command per group since each group is in its own slot (a multi-key
 * command over them would fail with CROSSSLOT on a cluster).
 */

import {
  type BookkeepingKind,
  everyGroupKey,
  LEGACY_PENDING_KEY,
  LEGACY_SITES_KEY,
  LEGACY_TOUCHED_KEY,
  LEGACY_WORK_KEY,
  LOCK_KEY,
} from "../../functions/domain/keys.js";

/** What the helpers need of a client: an ioredis Redis or Cluster. */
export interface SetReader {
  smembers(key: string): Promise<string[]>;
  scard(key: string): Promise<number>;
  exists(...keys: string[]): Promise<number>;
}

/** Every member of the kind's sets, all groups together. */
export async function membersOfEveryGroup(
  redis: SetReader,
  kind: Exclude<BookkeepingKind, "work">,
): Promise<string[]> {
  const sets = await Promise.all(everyGroupKey(kind).map((key) => redis.smembers(key)));
  return sets.flat();
}

/** How many members the kind's sets hold, all groups together. */
export async function cardOfEveryGroup(
  redis: SetReader,
  kind: Exclude<BookkeepingKind, "work">,
): Promise<number> {
  const counts = await Promise.all(everyGroupKey(kind).map((key) => redis.scard(key)));
  return counts.reduce((n, c) => n + c, 0);
}

/** Which of these keys exist, one EXISTS each (they may be in different slots). */
export async function existingOf(redis: SetReader, keys: readonly string[]): Promise<string[]> {
  const found = await Promise.all(keys.map((key) => redis.exists(key)));
  return keys.filter((_, i) => found[i] === 1);
}

/**
 * What a finished execution must not leave behind: the lock, every group's pending and work
 * sets, and the legacy pending and work sets. Empty when nothing is left.
 */
export async function rollupLeftovers(redis: SetReader): Promise<string[]> {
  return existingOf(redis, [
    LOCK_KEY,
    ...everyGroupKey("pending"),
    ...everyGroupKey("work"),
    LEGACY_PENDING_KEY,
    LEGACY_WORK_KEY,
  ]);
}

/** The single-slot sets of older versions that still exist. */
export async function legacyLeft(redis: SetReader): Promise<string[]> {
  return existingOf(redis, [
    LEGACY_TOUCHED_KEY,
    LEGACY_PENDING_KEY,
    LEGACY_SITES_KEY,
    LEGACY_WORK_KEY,
  ]);
}
