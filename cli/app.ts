/**
 * The operator CLI's dispatcher: picks the command, runs it with its dependencies, and turns
 * what it throws into the exit code. Usage errors exit 2 with the usage text on stderr;
 * runtime failures (configuration, Redis, AWS) exit 1 with their cause.
 */

import { messageOf } from "../functions/domain/errors.js";
import { ConfigError } from "../functions/domain/runtime-env.js";
import { type CountDeps, runCount } from "./count.js";
import {
  CliError,
  type CliIo,
  EXIT_FAILURE,
  EXIT_OK,
  EXIT_USAGE,
  USAGE,
  UsageError,
} from "./io.js";
import { type RollupDeps, runRollup } from "./rollup.js";
import { runSend, type SendDeps } from "./send.js";
import { runToken, type TokenDeps } from "./token.js";

/** The streams and environment, plus any command dependency a test wants to replace. */
export type CliDeps = CliIo &
  Partial<Omit<CountDeps, keyof CliIo>> &
  Partial<Omit<RollupDeps, keyof CliIo>> &
  Partial<Omit<TokenDeps, keyof CliIo>> &
  Partial<Omit<SendDeps, keyof CliIo>>;

const COMMANDS: Record<string, (args: readonly string[], deps: CliDeps) => Promise<number>> = {
  send: runSend,
  rollup: runRollup,
  count: runCount,
  token: runToken,
};

export async function runCli(argv: readonly string[], deps: CliDeps): Promise<number> {
  const [command, ...args] = argv;
  if (command === "help" || command === "--help" || command === "-h") {
    deps.stdout.write(USAGE);
    return EXIT_OK;
  }
  if (args.includes("--help") || args.includes("-h")) {
    deps.stdout.write(USAGE);
    return EXIT_OK;
  }
  const run = command === undefined ? undefined : COMMANDS[command];
  try {
    if (!run) {
      throw new UsageError(
        command === undefined ? "no command given" : `unknown command "${command}"`,
      );
    }
    return await run(args, deps);
  } catch (err) {
    if (err instanceof UsageError) {
      deps.stderr.write(`error: ${err.message}\n\n${USAGE}`);
      return EXIT_USAGE;
    }
    if (err instanceof CliError || err instanceof ConfigError) {
      deps.stderr.write(`error: ${err.message}\n`);
      return EXIT_FAILURE;
    }
    const cause = err instanceof Error ? err.cause : undefined;
    deps.stderr.write(
      `error: ${messageOf(err)}${cause === undefined ? "" : `\n  cause: ${messageOf(cause)}`}\n`,
    );
    return EXIT_FAILURE;
  }
}
