/**
 * Runs the rollup state machine locally: the same state-machines/rollup.asl.json that the
 * stack deploys, executed by aws-local-stepfunctions, with its Lambda tasks bound in-process
 * to the real rollup handlers against the Redis given by the environment.
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

// Constructing a StateMachine validates the definition (about 100-200 ms here): once per
// rendered definition and process is enough.
const machines = new Map<string, StateMachine>();
function stateMachineFor(
  text: string,
  definition: ConstructorParameters<typeof StateMachine>[0],
): StateMachine {
  let machine = machines.get(text);
  if (!machine) {
    machine = new StateMachine(definition);
    machines.set(text, machine);
  }
  return machine;
}

export interface LocalRollupOptions {
  readonly env: Env;
  /** Execution input: {} or {"from","to"}. */
  readonly input?: unknown;
  /** Defaults to now; tests pin it to make dates reproducible. */
  readonly startTime?: Date;
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
  const handlers = options.handlers ?? createRollupHandlers(options.env, options.handlerOptions);
  const definition = JSON.parse(
    renderRollupAsl({
      PlanFunctionArn: `${LOCAL_ARN}-plan`,
      MergeFunctionArn: `${LOCAL_ARN}-merge`,
      FinishFunctionArn: `${LOCAL_ARN}-finish`,
      MapMaxConcurrency: options.mapMaxConcurrency ?? 4,
    }),
  );
  const name = options.executionName ?? randomUUID();
  const executionArn = `arn:aws:states:us-east-1:000000000000:execution:sketchstream-rollup:${name}`;
  const input = (options.input ?? {}) as Record<string, unknown>;
  const machine = stateMachineFor(JSON.stringify(definition), definition);
  const run = machine.run(input as never, {
    context: {
      Execution: {
        Id: executionArn,
        Name: name,
        Input: input as never,
        StartTime: (options.startTime ?? new Date()).toISOString(),
        RoleArn: "arn:aws:iam::000000000000:role/sketchstream-rollup",
      },
    },
    overrides: {
      taskResourceLocalHandlers: {
        Plan: (i) => handlers.plan(i as never) as never,
        MergePage: (i) => handlers.merge(i as never) as never,
        Finish: (i) => handlers.finish(i as never) as never,
        ReleaseLockAfterFailure: (i) => handlers.finish(i as never) as never,
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
    const e = err as Error & { cause?: unknown };
    const inner = (e.cause ?? e) as { name?: string; message?: string };
    return {
      executionArn,
      status: "FAILED",
      error: inner.name ?? e.name,
      cause: inner.message ?? e.message,
    };
  } finally {
    if (!options.handlers) handlers.close();
  }
}
