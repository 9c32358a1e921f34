/**
 * `rollup`: start the rollup state machine and, with --wait, follow it to its end.
 *   AWS      StartExecution on STATE_MACHINE_ARN with {} or {"from","to"}; --wait polls
 *            DescribeExecution until the execution is no longer RUNNING.
 *   --local  the same ASL run in-process (state-machines/local-runner.ts) against REDIS_ENDPOINT.
 * stdout gets the execution ARN and then the execution's output JSON; progress and failures
 * go to stderr. Exit code 0 only when the execution SUCCEEDED (or, without --wait, started).
 */

import { isatty, WriteStream } from "node:tty";
import { Logger } from "@aws-lambda-powertools/logger";
import {
  DescribeExecutionCommand,
  type DescribeExecutionCommandOutput,
  SFNClient,
  StartExecutionCommand,
  type StartExecutionCommandOutput,
} from "@aws-sdk/client-sfn";
import { createSpinner } from "nanospinner";
import { messageOf } from "../functions/domain/errors.js";
import type { LocalRollupOptions, LocalRollupResult } from "../state-machines/local-runner.js";
import { dayRangeFlags, parseFlags } from "./args.js";
import { CliError, type CliIo, EXIT_FAILURE, EXIT_OK, type Output } from "./io.js";

export interface RollupRequest {
  readonly input: Record<string, never> | { readonly from: string; readonly to: string };
  readonly wait: boolean;
  readonly local: boolean;
}

/** The Step Functions edge: an SFNClient, or a test double recording what it is sent. */
export interface SfnSender {
  send(command: StartExecutionCommand): Promise<StartExecutionCommandOutput>;
  send(command: DescribeExecutionCommand): Promise<DescribeExecutionCommandOutput>;
}

export interface ProgressSpinner {
  update(text: string): void;
  stop(): void;
}

export interface RollupDeps extends CliIo {
  /** Made from STATE_MACHINE_ARN's region (and SFN_ENDPOINT) when not given. */
  readonly sfn?: SfnSender;
  readonly runLocal?: (options: LocalRollupOptions) => Promise<LocalRollupResult>;
  readonly sleep?: (ms: number) => Promise<void>;
  readonly now?: () => number;
  /** DescribeExecution interval, ms. Default 2000. */
  readonly pollIntervalMs?: number;
  /** A spinner on stderr; by default nanospinner when stderr is a terminal, else none. */
  readonly spinner?: (text: string) => ProgressSpinner | undefined;
}

/** A line of progress every this many ms when stderr is not a terminal. */
const PLAIN_PROGRESS_MS = 30_000;

// arn:aws:states:eu-west-1:123456789012:stateMachine:sketchstream-dev-rollup
const STATE_MACHINE_ARN_RE =
  /^arn:aws[a-z-]*:states:([a-z]{2}(?:-[a-z]+)+-\d+):\d{12}:stateMachine:[A-Za-z0-9_-]{1,80}$/;

export function parseRollupArgs(args: readonly string[]): RollupRequest {
  const flags = parseFlags("rollup", args, {
    from: { type: "string" },
    to: { type: "string" },
    wait: { type: "boolean" },
    local: { type: "boolean" },
  });
  const range = dayRangeFlags(flags.from, flags.to);
  return {
    input: range ? { from: range.from, to: range.to } : {},
    wait: flags.wait ?? false,
    local: flags.local ?? false,
  };
}

/** STATE_MACHINE_ARN, checked, and the region it names. */
export function stateMachineFromEnv(env: CliIo["env"]): { arn: string; region: string } {
  const arn = env.STATE_MACHINE_ARN?.trim();
  const example = "arn:aws:states:eu-west-1:123456789012:stateMachine:sketchstream-dev-rollup";
  if (!arn) {
    throw new CliError(
      `STATE_MACHINE_ARN is not set: expected the rollup state machine's ARN (stack output), e.g. ${example}; or use --local to run the rollup in-process against REDIS_ENDPOINT`,
    );
  }
  const match = STATE_MACHINE_ARN_RE.exec(arn);
  if (!match) {
    throw new CliError(
      `STATE_MACHINE_ARN="${arn}" is invalid: expected a Step Functions state machine ARN, e.g. ${example}`,
    );
  }
  const [, region = ""] = match;
  return { arn, region };
}

function duration(ms: number): string {
  const s = Math.round(ms / 1000);
  return s < 60 ? `${s}s` : `${Math.floor(s / 60)}m ${s % 60}s`;
}

function printOutput(out: Output, output: unknown): void {
  let value = output;
  if (typeof output === "string") {
    try {
      value = JSON.parse(output);
    } catch {
      value = output;
    }
  }
  out.write(`${JSON.stringify(value, null, 2)}\n`);
}

/**
 * nanospinner on an interactive stderr, else none (plain lines instead). nanospinner decides
 * on its own whether to redraw from fd 1, TERM and CI, and loops forever on a terminal that
 * reports 0 columns, so it is used only when all of those agree with stderr being a terminal.
 */
function defaultSpinner(
  stderr: Output,
  env: CliIo["env"],
): (text: string) => ProgressSpinner | undefined {
  return (text) => {
    const interactive =
      stderr instanceof WriteStream &&
      stderr.columns > 0 &&
      isatty(1) &&
      env.TERM !== "dumb" &&
      env.CI === undefined;
    if (!interactive) return undefined;
    const spinner = createSpinner(text, { stream: stderr }).start();
    return {
      update: (t) => spinner.update({ text: t }),
      stop: () => spinner.stop(),
    };
  };
}

async function runLocal(request: RollupRequest, deps: RollupDeps): Promise<number> {
  // Loaded on demand: the local state machine runtime is only needed here.
  const run = deps.runLocal ?? (await import("../state-machines/local-runner.js")).runRollupLocally;
  const spinner = (deps.spinner ?? defaultSpinner(deps.stderr, deps.env))(
    "running the rollup locally",
  );
  if (!spinner) deps.stderr.write("running the rollup locally against REDIS_ENDPOINT\n");
  let result: LocalRollupResult;
  try {
    result = await run({
      env: deps.env,
      input: request.input,
      startTime: new Date((deps.now ?? Date.now)()),
      // The handlers' JSON logs would mix with the output on stdout: warnings and errors only.
      handlerOptions: {
        logger: new Logger({ serviceName: "sketchstream-rollup", logLevel: "WARN" }),
      },
    });
  } finally {
    spinner?.stop();
  }
  deps.stdout.write(`${result.executionArn}\n`);
  if (result.status === "SUCCEEDED") {
    deps.stderr.write("rollup SUCCEEDED\n");
    printOutput(deps.stdout, result.output);
    return EXIT_OK;
  }
  deps.stderr.write(
    `rollup ${result.status}: ${result.error ?? "unknown error"}${result.cause ? `: ${result.cause}` : ""}\n`,
  );
  return EXIT_FAILURE;
}

/** An SFN client for the region (and SFN_ENDPOINT), with the way to close it. */
function ownSfnClient(env: CliIo["env"], region: string): { sfn: SfnSender; close(): void } {
  const endpoint = env.SFN_ENDPOINT?.trim();
  const client = new SFNClient({ region, ...(endpoint ? { endpoint } : {}) });
  return { sfn: client, close: () => client.destroy() };
}

function awsFailure(action: string, arn: string, err: unknown): CliError {
  const name = err instanceof Error ? `${err.name}: ` : "";
  return new CliError(`${action} on ${arn} failed: ${name}${messageOf(err)}`);
}

async function waitForExecution(
  sfn: SfnSender,
  executionArn: string,
  deps: RollupDeps,
): Promise<number> {
  const now = deps.now ?? Date.now;
  const sleep = deps.sleep ?? ((ms) => new Promise<void>((r) => setTimeout(r, ms)));
  const interval = deps.pollIntervalMs ?? 2000;
  const started = now();
  const name = executionArn.slice(executionArn.lastIndexOf(":") + 1);
  const spinner = (deps.spinner ?? defaultSpinner(deps.stderr, deps.env))(`${name}: RUNNING`);
  if (!spinner) deps.stderr.write(`waiting for ${name}: RUNNING\n`);
  let lastLine = started;
  let described: DescribeExecutionCommandOutput;
  try {
    for (;;) {
      try {
        described = await sfn.send(new DescribeExecutionCommand({ executionArn }));
      } catch (err) {
        throw awsFailure("DescribeExecution", executionArn, err);
      }
      if (described.status !== "RUNNING") break;
      const elapsed = duration(now() - started);
      spinner?.update(`${name}: RUNNING for ${elapsed}`);
      if (!spinner && now() - lastLine >= PLAIN_PROGRESS_MS) {
        deps.stderr.write(`${name}: still RUNNING after ${elapsed}\n`);
        lastLine = now();
      }
      await sleep(interval);
    }
  } finally {
    spinner?.stop();
  }
  const status = described.status ?? "UNKNOWN";
  const took = duration(now() - started);
  if (status === "SUCCEEDED") {
    deps.stderr.write(`${name}: SUCCEEDED after ${took}\n`);
    printOutput(deps.stdout, described.output ?? null);
    return EXIT_OK;
  }
  const reason = [described.error, described.cause].filter((s) => s).join(": ");
  deps.stderr.write(`${name}: ${status} after ${took}${reason ? `: ${reason}` : ""}\n`);
  return EXIT_FAILURE;
}

export async function runRollup(args: readonly string[], deps: RollupDeps): Promise<number> {
  const request = parseRollupArgs(args);
  if (request.local) return runLocal(request, deps);
  const machine = stateMachineFromEnv(deps.env);
  const { sfn, close } = deps.sfn
    ? { sfn: deps.sfn, close: () => {} }
    : ownSfnClient(deps.env, machine.region);
  try {
    let started: StartExecutionCommandOutput;
    try {
      started = await sfn.send(
        new StartExecutionCommand({
          stateMachineArn: machine.arn,
          input: JSON.stringify(request.input),
        }),
      );
    } catch (err) {
      throw awsFailure("StartExecution", machine.arn, err);
    }
    const executionArn = started.executionArn;
    if (!executionArn) throw new CliError("StartExecution returned no executionArn");
    deps.stdout.write(`${executionArn}\n`);
    if (!request.wait) return EXIT_OK;
    return await waitForExecution(sfn, executionArn, deps);
  } finally {
    close();
  }
}
