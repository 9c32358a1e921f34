/** node:util parseArgs with its errors turned into usage errors, and the date checks. */

import { type ParseArgsConfig, parseArgs } from "node:util";
import { messageOf } from "../functions/domain/errors.js";
import { dayStartMs, monthStartDay, weekStartDay } from "../functions/domain/periods.js";
import { UsageError } from "./io.js";

type Options = NonNullable<ParseArgsConfig["options"]>;

export function parseFlags<T extends Options>(
  command: string,
  args: readonly string[],
  options: T,
): ReturnType<typeof parseArgs<{ options: T; strict: true; allowPositionals: false }>>["values"] {
  try {
    return parseArgs({ args: [...args], options, strict: true, allowPositionals: false }).values;
  } catch (err) {
    throw new UsageError(`${command}: ${messageOf(err)}`);
  }
}

/** A date flag's value, checked with periods.ts; a bad one is a usage error naming the flag. */
export function dayFlag(flag: string, value: string): string {
  try {
    dayStartMs(value);
    return value;
  } catch (err) {
    throw new UsageError(`--${flag}: ${messageOf(err)}`);
  }
}

export function weekFlag(value: string): string {
  try {
    weekStartDay(value);
    return value;
  } catch (err) {
    throw new UsageError(`--week: ${messageOf(err)}`);
  }
}

export function monthFlag(value: string): string {
  try {
    monthStartDay(value);
    return value;
  } catch (err) {
    throw new UsageError(`--month: ${messageOf(err)}`);
  }
}

/** `--from` and `--to` together or not at all, both real dates, `to` not before `from`. */
export function dayRangeFlags(
  from: string | undefined,
  to: string | undefined,
): { from: string; to: string } | undefined {
  if (from === undefined && to === undefined) return undefined;
  if (from === undefined || to === undefined) {
    throw new UsageError(
      `--${from === undefined ? "to" : "from"} needs --${from === undefined ? "from" : "to"} as well: give both dates of the range, e.g. --from 2024-03-01 --to 2024-03-31`,
    );
  }
  dayFlag("from", from);
  dayFlag("to", to);
  if (to < from) throw new UsageError(`--to ${to} is before --from ${from}`);
  return { from, to };
}

/** A whole-number flag within [min, max], or `fallback` when absent; else a usage error. */
export function wholeNumberArg(
  flag: string,
  text: string | undefined,
  fallback: number,
  min: number,
  max: number = Number.MAX_SAFE_INTEGER,
): number {
  if (text === undefined) return fallback;
  if (!/^\d+$/.test(text) || Number(text) < min || Number(text) > max) {
    throw new UsageError(`--${flag} must be a whole number from ${min} to ${max}, got "${text}"`);
  }
  return Number(text);
}

/**
 * An instant flag in ISO-8601 UTC (`2031-06-15T10:00:00Z`, seconds and fraction optional), as
 * ms since the epoch, or `fallback` when absent; else a usage error naming the flag.
 */
export function instantArg(flag: string, text: string | undefined, fallback: number): number {
  if (text === undefined) return fallback;
  const ms = Date.parse(text);
  if (!/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,3})?)?Z$/.test(text) || Number.isNaN(ms)) {
    throw new UsageError(
      `--${flag} must be a UTC instant such as 2031-06-15T10:00:00Z, got "${text}"`,
    );
  }
  return ms;
}
