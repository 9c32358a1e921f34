/**
 * A reproducible producer of click events shaped like the original Python generator's:
 *   {"user_id":"u-###-##","site_id":489|715|283|190|875,"event":"view|like|cart|purchase",
 *    "sku":"sku-NNNN","amount":1-10,"event_time":"YYYY-MM-DD HH:MM:SS"}
 * The same seed gives the same events, so local runs and benchmarks can be compared.
 */

import { at } from "../functions/domain/arrays.js";
import { DAY_MS } from "../functions/domain/periods.js";

export const GENERATOR_SITES = [489, 715, 283, 190, 875] as const;
export const GENERATOR_EVENTS = ["view", "like", "cart", "purchase"] as const;

/** mulberry32: small, fast and good enough for test data. */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export interface ClickPayload {
  readonly user_id: string;
  readonly site_id: number;
  readonly event: string;
  readonly sku: string;
  readonly amount: number;
  readonly event_time: string;
}

/** The generator's `event_time` format: UTC, `YYYY-MM-DD HH:MM:SS`. */
export function generatorTime(ms: number): string {
  return new Date(ms).toISOString().slice(0, 19).replace("T", " ");
}

/**
 * User number `n` as the generator's `u-###-##`: 100,000 users fill u-000-00 … u-999-99;
 * a larger population widens the first group.
 */
export function generatorUserId(n: number): string {
  return `u-${String(Math.floor(n / 100)).padStart(3, "0")}-${String(n % 100).padStart(2, "0")}`;
}

export interface GeneratorOptions {
  readonly seed: number;
  /** Distinct users to draw from. */
  readonly users: number;
  /** Events fall in the `days` UTC days ending with the day of `endMs` (inclusive). */
  readonly days: number;
  readonly endMs: number;
}

function pick<T>(random: () => number, items: readonly T[]): T {
  return at(items, Math.floor(random() * items.length));
}

/** An endless, seeded stream of events; take as many as needed. */
export function* generateEvents(options: GeneratorOptions): Generator<ClickPayload> {
  const random = mulberry32(options.seed);
  const lastDayStart = Math.floor(options.endMs / DAY_MS) * DAY_MS;
  const firstDayStart = lastDayStart - (options.days - 1) * DAY_MS;
  const span = Math.max(1, options.endMs - firstDayStart);
  for (;;) {
    yield {
      user_id: generatorUserId(Math.floor(random() * options.users)),
      site_id: pick(random, GENERATOR_SITES),
      event: pick(random, GENERATOR_EVENTS),
      sku: `sku-${String(Math.floor(random() * 10_000)).padStart(4, "0")}`,
      amount: 1 + Math.floor(random() * 10),
      event_time: generatorTime(firstDayStart + Math.floor(random() * span)),
    };
  }
}
