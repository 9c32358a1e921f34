/**
 * Runs the rollup state machine locally: the same state-machines/rollup.asl.json that the
 * stack deploys, executed by aws-local-stepfunctions, with its Lambda tasks bound in-process
 * to the real rollup handlers against the Redis given by the environment.
 *
 * Each task gets its event and returns its output as JSON text would carry them (as Lambda
 * does), so nothing that would not survive serialization passes between states.
 * aws-local-stepfunctions 3 stamps `$$.Execution.StartTime` with the machine's clock whatever
 * the context says; the runner hands Plan the start time it was asked for instead, as Step
 * Functions would have given it.
 */

import { randomUUID } from "node:crypto";
import { StateMachine } from "aws-local-stepfunctions";
import type { Env } from "../functions/domain/runtime-env.js";
import {
  createRollupHandlers,
  type RollupHandlerOptions,
  type RollupHandlers,
} from "../functions/rollup/handler.js";
import { renderRollupAsl } from "./render.js";

const LOCAL_ARN = "arn:aws:lambda:us-east-1:000000000000:function:sketchstream-local";

type Definition = ConstructorParameters<typeof StateMachine>[0];
type TaskHandler = NonNullable<
  NonNullable<
    NonNullable<Parameters<StateMachine["run"]>[1]>["overrides"]
  >["taskResourceLocalHandlers"]
>[string];
type Json = Parameters<TaskHandler>[0];

/** A value as it arrives after JSON serialization (what Lambda returns to Step Functions). */
function asJson(value: unknown): Json {
  return JSON.parse(JSON.stringify(value ?? null));
}

// Constructing a StateMachine validates the definition (about 100-200 ms here): once per
// rendered definition and process is enough.
const machines = new Map<string, StateMachine>();
function stateMachineFor(text: string): StateMachine {
  let machine = machines.get(text);
  if (!machine) {
    const definition: Definition = JSON.parse(text);
    machine = new StateMachine(definition);
    machines.set(text, machine);
  }
  return machine;
}

/** Plan's event with the requested start time in place of the one the library stamped. */
function withStartTime(event: Json, startTime: Date): Json {
  if (typeof event !== "object" || event === null || Array.isArray(event)) return event;
  if (typeof event.startTime !== "string") {
    throw new Error(
      "the Plan task's event has no startTime: rollup.asl.json must pass $$.Execution.StartTime",
    );
  }
  return { ...event, startTime: startTime.toISOString() };
}

export interface LocalRollupOptions {
  readonly env: Env;
  /** Execution input: {} or {"from","to"}. */
  readonly input?: unknown;
  /**
   * The execution's start time (`$$.Execution.StartTime`): every date decision of the rollup
   * comes from it, and the handlers' clock runs on from it. Required, so that no caller
   * silently takes the machine's clock (tests pin it; the CLI passes its own clock).
   */
  readonly startTime: Date;
  readonly executionName?: string;
  readonly mapMaxConcurrency?: number;
  /** Handlers to use (e.g. with injected faults); by default made from `env`. */
  readonly handlers?: RollupHandlers;
  readonly handlerOptions?: RollupHandlerOptions;
  /** Shortens Wait and Retry delays (ms) for tests; real delays otherwise. */
  readonly fastTimers?: boolean;
}

export interface LocalRollupResult {
  readonly executionArn: string;
  readonly status: "SUCCEEDED" | "FAILED";
  readonly output?: unknown;
  readonly error?: string;
  readonly cause?: string;
}

export async function runRollupLocally(options: LocalRollupOptions): Promise<LocalRollupResult> {
  const startMs = options.startTime.getTime();
  const startedAt = performance.now();
  // The execution's clock: its start time, advancing in real time (durations stay real).
  const clock = () => startMs + Math.round(performance.now() - startedAt);
  const handlers =
    options.handlers ??
    createRollupHandlers(options.env, { now: clock, ...options.handlerOptions });
  const text = renderRollupAsl({
    PlanFunctionArn: `${LOCAL_ARN}-plan`,
    MergeFunctionArn: `${LOCAL_ARN}-merge`,
    FinishFunctionArn: `${LOCAL_ARN}-finish`,
    MapMaxConcurrency: options.mapMaxConcurrency ?? 4,
  });
  const name = options.executionName ?? randomUUID();
  const executionArn = `arn:aws:states:us-east-1:000000000000:execution:sketchstream-rollup:${name}`;
  const input = asJson(options.input ?? {});
  const task =
    (handler: (event: Json) => Promise<unknown>): TaskHandler =>
    async (event) =>
      asJson(await handler(event));
  const run = stateMachineFor(text).run(input, {
    context: {
      Execution: {
        Id: executionArn,
        Name: name,
        Input: input,
        StartTime: options.startTime.toISOString(),
        RoleArn: "arn:aws:iam::000000000000:role/sketchstream-rollup",
      },
    },
    overrides: {
      taskResourceLocalHandlers: {
        Plan: task((event) => handlers.plan(withStartTime(event, options.startTime))),
        MergePage: task(handlers.merge),
        Finish: task(handlers.finish),
        ReleaseLockAfterFailure: task(handlers.finish),
      },
      ...(options.fastTimers
        ? {
            waitTimeOverrides: { WaitForLock: 50 },
            retryIntervalOverrides: {
              Plan: 10,
              MergePage: 10,
              Finish: 10,
              ReleaseLockAfterFailure: 10,
            },
          }
        : {}),
    },
  });
  try {
    const output = await run.result;
    return { executionArn, status: "SUCCEEDED", output };
  } catch (err) {
    // The library's ExecutionError wraps the state's error as its cause.
    const inner = err instanceof Error && err.cause instanceof Error ? err.cause : err;
    return {
      executionArn,
      status: "FAILED",
      error: inner instanceof Error ? inner.name : "Error",
      cause: inner instanceof Error ? inner.message : String(inner),
    };
  } finally {
    if (!options.handlers) handlers.close();
  }
}
