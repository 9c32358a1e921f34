/**
 * Element access that says what is missing instead of a cast that hides it: with
 * `noUncheckedIndexedAccess`, `items[i]` may be undefined, and these throw a RangeError naming
 * the index when it is.
 */

export function at<T>(items: readonly T[], index: number, what = "item"): T {
  const item = items[index < 0 ? items.length + index : index];
  if (item === undefined) {
    throw new RangeError(`no ${what} at index ${index} of ${items.length}`);
  }
  return item;
}

export function first<T>(items: readonly T[], what = "item"): T {
  return at(items, 0, what);
}

export function last<T>(items: readonly T[], what = "item"): T {
  return at(items, -1, what);
}

/** An array with at least one element, as variadic Redis commands want their keys. */
export type NonEmpty<T> = readonly [T, ...T[]];

export function isNonEmpty<T>(items: readonly T[]): items is NonEmpty<T> {
  return items.length > 0;
}

/** A record with exactly the given keys, each mapped to its value. */
export function recordOf<K extends string, V>(
  keys: readonly K[],
  value: (key: K) => V,
): Record<K, V> {
  const out: Partial<Record<K, V>> = {};
  for (const key of keys) out[key] = value(key);
  // Every key of K was assigned just above.
  return out as Record<K, V>;
}
