/**
 * `npm run cli -- dashboard [--port N]`: one page on 127.0.0.1 (site picker, range, metric,
 * event type, granularity; chart, table, the range's true total, its events per visitor, "as
 * of") over a read-only proxy of `/v1/*`. The proxy reaches the read app in-process against
 * REDIS_ENDPOINT, or, when API_URL is set, the read API signed with the operator's AWS
 * credentials (which then never leave this process). cli/dashboard/server.ts says how the
 * proxy keeps other web pages out; cli/dashboard/page.ts how the page is built. The page gets
 * this process's clock (the test clock in tests), so "today" in a site's zone is by it.
 */

import { randomBytes } from "node:crypto";
import { type ApiRuntime, createApiRuntime } from "../functions/api/handler.js";
import { addDays, dayOf } from "../functions/domain/periods.js";
import type { Env } from "../functions/domain/runtime-env.js";
import { type ReadApiDeps, readApiFromEnv } from "./api-client.js";
import { parseFlags, wholeNumberArg } from "./args.js";
import type { DashboardConfig } from "./dashboard/client/config.js";
import { bundleClient, type ClientBundle, renderPage } from "./dashboard/page.js";
import { LOOPBACK, startDashboardServer, TOKEN_HEADER } from "./dashboard/server.js";
import { appUpstream, signedUpstream, type Upstream } from "./dashboard/upstream.js";
import { CliError, type CliIo, EXIT_OK } from "./io.js";

export const DEFAULT_DASHBOARD_PORT = 8788;
/** The default range: today (in the chosen site's time zone) and the days before it, this many in all. */
export const DEFAULT_RANGE_DAYS = 30;

export interface DashboardDeps extends CliIo, ReadApiDeps {
  /**
   * The clock that says when now is: the default range ends on today by it, in the chosen
   * site's time zone. Default Date.now.
   */
  readonly now?: () => number;
  /** Stops the dashboard when aborted; by default SIGINT or SIGTERM does. */
  readonly signal?: AbortSignal;
}

export interface DashboardOptions extends ReadApiDeps {
  readonly env: Env;
  /** TCP port on 127.0.0.1; 0 picks a free one. */
  readonly port: number;
  readonly now?: () => number;
  /** A bundle made before (tests start several dashboards); made now by default. */
  readonly bundle?: ClientBundle;
}

export interface RunningDashboard {
  /** The URL to open, with this run's token. */
  readonly url: string;
  readonly port: number;
  readonly token: string;
  /** "local": the read app in this process; "api": the read API at API_URL, signed. */
  readonly mode: DashboardConfig["mode"];
  /** The Redis endpoint or the API's URL. */
  readonly source: string;
  /** The signing region in "api" mode. */
  readonly region?: string;
  close(): Promise<void>;
}

/** Starts the page and proxy; resolves once they listen. */
export async function startDashboard(options: DashboardOptions): Promise<RunningDashboard> {
  const api = readApiFromEnv(options.env, options);
  let runtime: ApiRuntime | undefined;
  let upstream: Upstream;
  if (api) {
    upstream = signedUpstream(api);
  } else {
    // The local app is made (and its configuration checked) only when API_URL is unset.
    runtime = createApiRuntime(options.env, options.now ? { now: options.now } : {});
    upstream = appUpstream(runtime.app);
  }
  const mode = api === undefined ? "local" : "api";
  const source = api === undefined ? (options.env.REDIS_ENDPOINT ?? "") : api.baseUrl.href;
  try {
    const token = randomBytes(32).toString("base64url");
    const nowMs = (options.now ?? Date.now)();
    const today = dayOf(nowMs);
    const page = await renderPage(options.bundle ?? (await bundleClient()), {
      token,
      tokenHeader: TOKEN_HEADER,
      nowMs,
      rangeDays: DEFAULT_RANGE_DAYS,
      today,
      defaultFrom: addDays(today, -(DEFAULT_RANGE_DAYS - 1)),
      mode,
      source,
    });
    const server = await startDashboardServer({
      port: options.port,
      token,
      page,
      upstream,
    }).catch((err: unknown) => {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === "EADDRINUSE") {
        throw new CliError(
          `port ${options.port} on ${LOOPBACK} is in use: stop what listens there, or pick another port with --port N (--port 0 picks a free one)`,
        );
      }
      throw err;
    });
    return {
      url: server.url,
      port: server.port,
      token,
      mode,
      source,
      ...(api ? { region: api.options.region } : {}),
      async close() {
        await server.close();
        runtime?.close();
      },
    };
  } catch (err) {
    runtime?.close();
    throw err;
  }
}

/** Resolves when `signal` aborts, or on SIGINT/SIGTERM without one. */
function stopRequested(signal: AbortSignal | undefined): Promise<void> {
  if (signal) {
    return new Promise((resolve) => {
      if (signal.aborted) resolve();
      else signal.addEventListener("abort", () => resolve(), { once: true });
    });
  }
  return new Promise((resolve) => {
    const stop = () => {
      process.off("SIGINT", stop);
      process.off("SIGTERM", stop);
      resolve();
    };
    process.on("SIGINT", stop);
    process.on("SIGTERM", stop);
  });
}

export async function runDashboard(args: readonly string[], deps: DashboardDeps): Promise<number> {
  const flags = parseFlags("dashboard", args, { port: { type: "string" } });
  const port = wholeNumberArg("port", flags.port, DEFAULT_DASHBOARD_PORT, 0, 65_535);
  const dashboard = await startDashboard({
    env: deps.env,
    port,
    ...(deps.now ? { now: deps.now } : {}),
    ...(deps.apiCredentials ? { apiCredentials: deps.apiCredentials } : {}),
    ...(deps.fetch ? { fetch: deps.fetch } : {}),
    ...(deps.signingClock ? { signingClock: deps.signingClock } : {}),
  });
  deps.stdout.write(
    dashboard.mode === "local"
      ? `dashboard: local read app, reading Redis at ${dashboard.source} (REDIS_ENDPOINT)\n`
      : `dashboard: read API at ${dashboard.source} (API_URL), requests signed with your AWS credentials for region ${dashboard.region}\n`,
  );
  deps.stdout.write(
    `open ${dashboard.url}\n(only this URL works: it carries this run's token; Ctrl-C stops the dashboard)\n`,
  );
  await stopRequested(deps.signal);
  await dashboard.close();
  return EXIT_OK;
}
