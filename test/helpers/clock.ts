/**
 * The test suite's one clock. Every date a test writes or expects derives from TEST_NOW (a
 * fixed instant in the future, `2031-06-15T10:00:00Z` unless the environment overrides it), so
 * the suite gives the same answers on any day it runs, a Sunday at the turn of a year included.
 *
 * Redis keeps real time: `EXPIREAT` with a deadline already past deletes the key as it is
 * written. A key of day D lives until D + 1 + retention days, so every day a test may write
 * (back to TEST_NOW minus the retention) stays alive only while TEST_NOW minus the retention is
 * after the real now. `testNowMs()` checks that and fails loudly, with the reason, otherwise.
 */

import { DAY_MS } from "../unit/calendar.js";

export { DAY_MS };
export const DEFAULT_TEST_NOW = "2031-06-15T10:00:00Z";
/** The daily retention the functions default to (RETENTION_DAYS). */
export const DEFAULT_RETENTION_DAYS = 62;

/** Parses TEST_NOW (or the default); a malformed value fails naming the variable. */
export function configuredTestNow(env: NodeJS.ProcessEnv = process.env): number {
  const text = env.TEST_NOW?.trim() || DEFAULT_TEST_NOW;
  const ms = Date.parse(text);
  if (!/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?Z$/.test(text) || Number.isNaN(ms)) {
    throw new Error(
      `TEST_NOW="${text}" is not a UTC instant: use the form ${DEFAULT_TEST_NOW} (or unset it)`,
    );
  }
  return ms;
}

/**
 * Refuses a test clock whose oldest writable day would already be expired in real time.
 * Reading the real clock here is the point: it is the one thing the test clock cannot replace.
 */
export function assertTestClockUsable(
  testNow: number,
  retentionDays: number,
  realNow: number = Date.now(),
): void {
  const oldest = testNow - retentionDays * DAY_MS;
  if (oldest < realNow) {
    const iso = (ms: number) => new Date(ms).toISOString();
    throw new Error(
      `TEST_NOW=${iso(testNow)} minus the ${retentionDays}-day retention (${iso(oldest)}) is before the real now (${iso(realNow)}): Redis would delete the keys of those days as they are written (EXPIREAT in the past). Set TEST_NOW to an instant at least ${retentionDays} days after today, or unset it (default ${DEFAULT_TEST_NOW}).`,
    );
  }
}

/** "Now" for every test: TEST_NOW, checked against the daily retention the test uses. */
export function testNowMs(retentionDays: number = DEFAULT_RETENTION_DAYS): number {
  const now = configuredTestNow();
  assertTestClockUsable(now, retentionDays);
  return now;
}

/** The UTC day label of an instant, computed without the modules under test. */
export function utcDay(ms: number): string {
  return new Date(ms).toISOString().slice(0, 10);
}

/** The UTC day `n` days before the test clock's day (0 = today). */
export function daysAgo(n: number, now: number = testNowMs()): string {
  return utcDay(now - n * DAY_MS);
}
