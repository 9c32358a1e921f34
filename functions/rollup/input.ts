/**
 * The rollup execution's input: `{}` for the scheduled, incremental run, or
 * `{"from":"YYYY-MM-DD","to":"YYYY-MM-DD"}` for a backfill. Anything else is refused before
 * anything is written.
 */

import { dayStartMs } from "../domain/periods.js";

/** Error names are what Step Functions matches in Retry and Catch (Lambda's errorType). */
export class RollupInputError extends Error {
  override name = "RollupInputError";
}

export type RollupMode =
  | { readonly mode: "scheduled" }
  | { readonly mode: "backfill"; readonly from: string; readonly to: string };

const USAGE = 'expected {} (scheduled run) or {"from":"YYYY-MM-DD","to":"YYYY-MM-DD"} (backfill)';

export function parseRollupInput(input: unknown): RollupMode {
  if (input === null || input === undefined) return { mode: "scheduled" };
  if (typeof input !== "object" || Array.isArray(input)) {
    throw new RollupInputError(`rollup input must be a JSON object: ${USAGE}`);
  }
  const fields = input as Record<string, unknown>;
  const unknown = Object.keys(fields).filter((k) => k !== "from" && k !== "to");
  if (unknown.length > 0) {
    throw new RollupInputError(`unknown rollup input field(s) ${unknown.join(", ")}: ${USAGE}`);
  }
  const { from, to } = fields;
  if (from === undefined && to === undefined) return { mode: "scheduled" };
  if (typeof from !== "string" || typeof to !== "string") {
    throw new RollupInputError(`a backfill needs both "from" and "to" as strings: ${USAGE}`);
  }
  for (const [name, value] of [
    ["from", from],
    ["to", to],
  ] as const) {
    try {
      dayStartMs(value);
    } catch (err) {
      throw new RollupInputError(`"${name}": ${(err as Error).message}`);
    }
  }
  if (to < from) throw new RollupInputError(`"to" (${to}) is before "from" (${from})`);
  return { mode: "backfill", from, to };
}
