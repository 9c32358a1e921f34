/**
 * `rollup` against AWS Step Functions, with the SFN client as the only mock (an object whose
 * send() records the commands it is given), and once through the real SDK client against a
 * local HTTP stub of the Step Functions JSON API (SFN_ENDPOINT), as a child process.
 */

import { execFile } from "node:child_process";
import { createServer, type IncomingMessage } from "node:http";
import { promisify } from "node:util";
import {
  DescribeExecutionCommand,
  type DescribeExecutionCommandOutput,
  StartExecutionCommand,
  type StartExecutionCommandOutput,
} from "@aws-sdk/client-sfn";
import { describe, expect, it } from "vitest";
import { runCli } from "../../cli/app.js";
import type { SfnSender } from "../../cli/rollup.js";
import { testNowMs } from "../helpers/clock.js";
import { exitFailure } from "../helpers/exec.js";
import { listeningPort } from "../helpers/net.js";
import { captureIo } from "./capture.js";

const ARN = "arn:aws:states:eu-west-1:123456789012:stateMachine:sketchstream-dev-rollup";
const EXECUTION = "arn:aws:states:eu-west-1:123456789012:execution:sketchstream-dev-rollup:run-1";

type Described = Partial<DescribeExecutionCommandOutput>;
type SfnCommand = StartExecutionCommand | DescribeExecutionCommand;

/** The command as the StartExecution it must be; fails naming what it was otherwise. */
function startCommand(command: SfnCommand | undefined): StartExecutionCommand {
  if (command instanceof StartExecutionCommand) return command;
  throw new Error(`expected StartExecution, got ${command?.constructor.name ?? "no command"}`);
}

/** A recording SFN edge: StartExecution answers EXECUTION, DescribeExecution the given states. */
class FakeSfn implements SfnSender {
  readonly sent: SfnCommand[] = [];
  private polls = 0;

  constructor(private readonly states: readonly Described[]) {}

  send(command: StartExecutionCommand): Promise<StartExecutionCommandOutput>;
  send(command: DescribeExecutionCommand): Promise<DescribeExecutionCommandOutput>;
  async send(
    command: SfnCommand,
  ): Promise<StartExecutionCommandOutput | DescribeExecutionCommandOutput> {
    this.sent.push(command);
    if (command instanceof StartExecutionCommand) {
      return { $metadata: {}, executionArn: EXECUTION, startDate: new Date(testNowMs()) };
    }
    const state = this.states[Math.min(this.polls++, this.states.length - 1)];
    return {
      $metadata: {},
      executionArn: EXECUTION,
      stateMachineArn: ARN,
      startDate: new Date(testNowMs()),
      status: "RUNNING",
      ...state,
    };
  }
}

function fakeSfn(states: Described[]): FakeSfn {
  return new FakeSfn(states);
}

function harness(states: Described[], env: Record<string, string> = { STATE_MACHINE_ARN: ARN }) {
  const { out, io } = captureIo(env);
  const sleeps: number[] = [];
  let clock = 0;
  const sfn = fakeSfn(states);
  const deps = {
    ...io,
    sfn,
    now: () => clock,
    sleep: async (ms: number) => {
      sleeps.push(ms);
      clock += ms;
    },
  };
  return { out, sleeps, sfn, deps };
}

const OUTPUT = { status: "succeeded", mode: "scheduled", periodsMerged: 2, keysWritten: 4 };

describe("rollup on AWS (mocked SFN edge)", () => {
  it("starts the scheduled run with input {} and prints the execution ARN (no --wait)", async () => {
    const h = harness([]);
    expect(await runCli(["rollup"], h.deps)).toBe(0);
    expect(h.sfn.sent).toHaveLength(1);
    const [start] = h.sfn.sent;
    expect(start).toBeInstanceOf(StartExecutionCommand);
    expect(startCommand(start).input).toEqual({ stateMachineArn: ARN, input: "{}" });
    expect(h.out.stdout).toBe(`${EXECUTION}\n`);
  });

  it("starts a backfill with from/to, polls DescribeExecution every 2 s and prints the output", async () => {
    const h = harness([
      { status: "RUNNING" },
      { status: "RUNNING" },
      { status: "SUCCEEDED", output: JSON.stringify(OUTPUT) },
    ]);
    const code = await runCli(
      ["rollup", "--from", "2024-03-01", "--to", "2024-03-31", "--wait"],
      h.deps,
    );
    expect(code, h.out.stderr).toBe(0);
    const [sent, ...describes] = h.sfn.sent;
    const start = startCommand(sent);
    expect(start.input).toEqual({
      stateMachineArn: ARN,
      input: JSON.stringify({ from: "2024-03-01", to: "2024-03-31" }),
    });
    expect(JSON.parse(start.input.input ?? "")).toEqual({
      from: "2024-03-01",
      to: "2024-03-31",
    });
    expect(describes).toHaveLength(3);
    for (const d of describes) {
      expect(d).toBeInstanceOf(DescribeExecutionCommand);
      expect(d.input).toEqual({ executionArn: EXECUTION });
    }
    expect(h.sleeps).toEqual([2000, 2000]);
    const [arnLine, ...json] = h.out.stdout.split("\n");
    expect(arnLine).toBe(EXECUTION);
    expect(JSON.parse(json.join("\n"))).toEqual(OUTPUT);
    // Not a terminal: plain lines, no spinner control characters.
    expect(h.out.stderr).toContain("run-1: SUCCEEDED after 4s");
    expect(h.out.stderr).not.toContain("\u001b");
  });

  it("exits 1 and prints the error and cause when the execution FAILED", async () => {
    const h = harness([
      { status: "RUNNING" },
      { status: "FAILED", error: "RollupInputError", cause: "2024-01 cannot be recomputed" },
    ]);
    expect(await runCli(["rollup", "--wait"], h.deps)).toBe(1);
    expect(h.out.stdout).toBe(`${EXECUTION}\n`);
    expect(h.out.stderr).toContain(
      "run-1: FAILED after 2s: RollupInputError: 2024-01 cannot be recomputed",
    );
  });

  it.each([
    "TIMED_OUT",
    "ABORTED",
  ] as const)("exits 1 when the execution ends %s", async (status) => {
    const h = harness([{ status }]);
    expect(await runCli(["rollup", "--wait"], h.deps)).toBe(1);
    expect(h.out.stderr).toContain(`run-1: ${status}`);
  });

  it("exits 1 with the AWS error when StartExecution fails", async () => {
    const h = harness([]);
    const deps = {
      ...h.deps,
      sfn: {
        async send() {
          throw Object.assign(new Error("State Machine Does Not Exist: 'arn…'"), {
            name: "StateMachineDoesNotExist",
          });
        },
      },
    };
    expect(await runCli(["rollup"], deps)).toBe(1);
    expect(h.out.stderr).toContain(`StartExecution on ${ARN} failed: StateMachineDoesNotExist`);
  });

  it("refuses a STATE_MACHINE_ARN that is not a state machine ARN (exit 1, names it)", async () => {
    const h = harness([], {
      STATE_MACHINE_ARN: "arn:aws:lambda:eu-west-1:123456789012:function:x",
    });
    expect(await runCli(["rollup"], h.deps)).toBe(1);
    expect(h.out.stderr).toContain("STATE_MACHINE_ARN=");
    expect(h.sfn.sent).toHaveLength(0);
  });
});

describe("rollup through the real SDK client and SFN_ENDPOINT (child process)", () => {
  it("sends StartExecution and DescribeExecution over HTTP and exits 1 on FAILED", async () => {
    const requests: { target: string; body: Record<string, unknown> }[] = [];
    let describes = 0;
    const server = createServer(async (req: IncomingMessage, res) => {
      let body = "";
      for await (const chunk of req) body += chunk;
      const target = String(req.headers["x-amz-target"]);
      requests.push({ target, body: JSON.parse(body) });
      res.setHeader("content-type", "application/x-amz-json-1.0");
      if (target === "AWSStepFunctions.StartExecution") {
        res.end(JSON.stringify({ executionArn: EXECUTION, startDate: 1_700_000_000 }));
      } else {
        describes++;
        res.end(
          JSON.stringify(
            describes < 2
              ? { executionArn: EXECUTION, status: "RUNNING" }
              : { executionArn: EXECUTION, status: "FAILED", error: "RollupBusy", cause: "held" },
          ),
        );
      }
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    const port = listeningPort(server);
    try {
      const result = await promisify(execFile)(
        "node_modules/.bin/tsx",
        ["cli/main.ts", "rollup", "--from", "2024-03-01", "--to", "2024-03-03", "--wait"],
        {
          timeout: 30_000,
          env: {
            PATH: process.env.PATH ?? "",
            HOME: "/nonexistent",
            STATE_MACHINE_ARN: ARN,
            SFN_ENDPOINT: `http://127.0.0.1:${port}`,
            AWS_ACCESS_KEY_ID: "AKIDEXAMPLE",
            AWS_SECRET_ACCESS_KEY: "secret",
          },
        },
      ).then((r) => ({ code: 0, ...r }), exitFailure);
      expect(result.code, result.stderr).toBe(1);
      expect(result.stdout).toBe(`${EXECUTION}\n`);
      expect(result.stderr).toContain("FAILED");
      expect(result.stderr).toContain("RollupBusy: held");
      expect(requests[0]).toEqual({
        target: "AWSStepFunctions.StartExecution",
        body: { stateMachineArn: ARN, input: '{"from":"2024-03-01","to":"2024-03-03"}' },
      });
      expect(requests.slice(1).map((r) => r.target)).toEqual([
        "AWSStepFunctions.DescribeExecution",
        "AWSStepFunctions.DescribeExecution",
      ]);
      expect(requests[1]?.body).toEqual({ executionArn: EXECUTION });
    } finally {
      server.close();
    }
  });
});
