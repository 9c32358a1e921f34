/**
 * What the rollup's Lambdas are given. The execution's input: `{}` for the scheduled,
 * incremental run, or `{"from":"YYYY-MM-DD","to":"YYYY-MM-DD"}` for a backfill; anything else is
 * refused before anything is written. And the events the state machine passes to each task
 * (Plan, MergePage, Finish), checked at the handler's edge like any JSON from outside.
 */

import * as v from "valibot";
import { messageOf } from "../domain/errors.js";
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
  const fields = new Map<string, unknown>(Object.entries(input));
  const unknown = [...fields.keys()].filter((k) => k !== "from" && k !== "to");
  if (unknown.length > 0) {
    throw new RollupInputError(`unknown rollup input field(s) ${unknown.join(", ")}: ${USAGE}`);
  }
  const from = fields.get("from");
  const to = fields.get("to");
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
      throw new RollupInputError(`"${name}": ${messageOf(err)}`);
    }
  }
  if (to < from) throw new RollupInputError(`"to" (${to}) is before "from" (${from})`);
  return { mode: "backfill", from, to };
}

const PlanSummarySchema = v.object({
  executionId: v.string(),
  /** `$$.Execution.StartTime`: every date decision comes from it, not from a Lambda clock. */
  startTime: v.string(),
  mode: v.picklist(["scheduled", "backfill"]),
  from: v.optional(v.string()),
  to: v.optional(v.string()),
  /** Work items in every group's work set (a scheduled run's: its touched site-days). */
  items: v.number(),
  pageSize: v.number(),
  /**
   * Work items of each bookkeeping group (keys.ts), in group order: pages cut the groups' work
   * sets, taken in that order, into runs of `pageSize` (rollup.ts pageSegments). Absent only in a plan of the
   * version before the groups, whose one work set was `sketchstream:{rollup}:work`.
   */
  groupItems: v.optional(v.array(v.number())),
  sites: v.number(),
  periods: v.array(v.string()),
});

/**
 * One page's result. `merged` counts (site, period[, event]) merges, each in both families
 * (`uv:` and `ev:`): two per scheduled work item (its day into its week and its month), one
 * per backfill item; `keysWritten` and `keysRemoved` count period keys of both families (see
 * mergePage).
 */
const MergeOutputSchema = v.object({
  page: v.number(),
  merged: v.number(),
  keysWritten: v.number(),
  keysRemoved: v.number(),
});

/** Plan's event: the execution's input, id and start time, and the lock attempt. */
export const PlanInputSchema = v.object({
  input: v.unknown(),
  executionId: v.string(),
  startTime: v.string(),
  attempt: v.optional(v.number()),
});

/** MergePage's event: one page of the plan. */
export const MergeInputSchema = v.object({ plan: PlanSummarySchema, page: v.number() });

/** Finish's event, after the Map (plan, results) or after a failure (executionId only). */
export const FinishInputSchema = v.object({
  plan: v.optional(PlanSummarySchema),
  results: v.optional(v.array(MergeOutputSchema)),
  outcome: v.picklist(["succeeded", "failed"]),
  executionId: v.optional(v.string()),
});

/**
 * The execution's output (Finish's result): what a scheduled or backfill run merged.
 * `itemsMerged` counts (site, period[, event]) merges, each in both families (a scheduled run
 * merges each touched site-day into its week and its month: two);
 * `keysWritten` counts week and month keys of both families (`uv:` and `ev:`) that received
 * data, and `keysRemoved` those a backfill deleted because none of their days exists. A family
 * with no existing day for a period (history from before the events metric, an expired day)
 * writes nothing and is not counted.
 */
export const RollupOutputSchema = v.object({
  status: v.picklist(["succeeded", "failed"]),
  mode: v.optional(v.picklist(["scheduled", "backfill"])),
  from: v.optional(v.string()),
  to: v.optional(v.string()),
  periods: v.optional(v.array(v.string())),
  periodsMerged: v.optional(v.number()),
  sitesMerged: v.optional(v.number()),
  itemsMerged: v.optional(v.number()),
  keysWritten: v.optional(v.number()),
  keysRemoved: v.optional(v.number()),
  durationMs: v.optional(v.number()),
});
export type RollupOutput = v.InferOutput<typeof RollupOutputSchema>;

/** What every page and the finish step need to know about the execution. */
export type PlanSummary = v.InferOutput<typeof PlanSummarySchema>;
export type PlanInput = v.InferOutput<typeof PlanInputSchema>;
export type MergeInput = v.InferOutput<typeof MergeInputSchema>;
export type MergeOutput = v.InferOutput<typeof MergeOutputSchema>;
export type FinishInput = v.InferOutput<typeof FinishInputSchema>;

/**
 * A task's event, checked against its schema. The state machine builds these events, so a
 * mismatch means the ASL and the handlers disagree: the error names the task and the field.
 */
export function taskEvent<S extends v.GenericSchema>(
  task: string,
  schema: S,
  event: unknown,
): v.InferOutput<S> {
  const result = v.safeParse(schema, event);
  if (result.success) return result.output;
  const issue = result.issues[0];
  const path = issue.path?.map((p) => String(p.key)).join(".") ?? "(event)";
  throw new RollupInputError(
    `the ${task} task received an event it does not accept (${path}: ${issue.message}); state-machines/rollup.asl.json and functions/rollup/handler.ts disagree`,
  );
}
