/** Bounding a wait: the one helper the Redis connector and the zone registry copy share. */

/**
 * `promise`, or a rejection `${what}: no answer within ${ms} ms` once `ms` have passed; the
 * timer is cleared either way. The promise itself is not cancelled: the caller decides what a
 * late answer means.
 */
export async function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new Error(`${what}: no answer within ${ms} ms`)),
      Math.max(0, ms),
    );
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}
