/**
 * The operator CLI's dispatcher: picks the command, runs it with its dependencies, and turns
 * what it throws into the exit code. Usage errors exit 2 with the usage text on stderr;
 * runtime failures (configuration, Redis, AWS) exit 1 with their cause.
 */

import { messageOf } from "../functions/domain/errors.js";
import { ConfigError } from "../functions/domain/runtime-env.js";
import type { ApiCommandDeps } from "./api.js";
import type { CapacityDeps } from "./capacity.js";
import { type CountDeps, runCount } from "./count.js";
import type { DashboardDeps } from "./dashboard.js";
import {
  CliError,
  type CliIo,
  EXIT_FAILURE,
  EXIT_OK,
  EXIT_USAGE,
  USAGE,
  UsageError,
} from "./io.js";
import type { RedriveDeps } from "./redrive.js";
import { type RollupDeps, runRollup } from "./rollup.js";
import { runSend, type SendDeps } from "./send.js";
import { runSeries, type SeriesDeps } from "./series.js";
import { runSite, type SiteDeps } from "./site.js";
import { runToken, type TokenDeps } from "./token.js";

/** The streams and environment, plus any command dependency a test wants to replace. */
export type CliDeps = CliIo &
  Partial<Omit<CountDeps, keyof CliIo>> &
  Partial<Omit<RollupDeps, keyof CliIo>> &
  Partial<Omit<TokenDeps, keyof CliIo>> &
  Partial<Omit<SendDeps, keyof CliIo>> &
  Partial<Omit<SeriesDeps, keyof CliIo>> &
  Partial<Omit<SiteDeps, keyof CliIo>> &
  Partial<Omit<ApiCommandDeps, keyof CliIo>> &
  Partial<Omit<DashboardDeps, keyof CliIo>> &
  Partial<Omit<RedriveDeps, keyof CliIo>> &
  Partial<Omit<CapacityDeps, keyof CliIo>>;

const COMMANDS: Record<string, (args: readonly string[], deps: CliDeps) => Promise<number>> = {
  send: runSend,
  rollup: runRollup,
  count: runCount,
  series: runSeries,
  site: runSite,
  // Loaded when used: the API server (Hono, Powertools) would add ~0.2 s to every command.
  api: async (args, deps) => (await import("./api.js")).runApi(args, deps),
  // The same for the dashboard (esbuild bundles its page when it starts).
  dashboard: async (args, deps) => (await import("./dashboard.js")).runDashboard(args, deps),
  token: runToken,
  // Loaded when used: the Lambda client and the consumer handler are only needed here.
  redrive: async (args, deps) => (await import("./redrive.js")).runRedrive(args, deps),
  // Needs no AWS or Redis: the measured constants and the price table.
  capacity: async (args, deps) => (await import("./capacity.js")).runCapacity(args, deps),
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
