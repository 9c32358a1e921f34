/**
 * `api [--port N]`: the read API (functions/api/app.ts, the code the Lambda runs) served on
 * 127.0.0.1 with @hono/node-server, against REDIS_ENDPOINT, until SIGINT or SIGTERM. Only the
 * loopback address: the local API has no auth, so nothing beyond this machine may reach it.
 *
 * `startApiServer` is the start/stop used by this command, `npm run local -- --keep` and tests.
 */

import type { Server } from "node:http";
import type { AddressInfo } from "node:net";
import type { Logger } from "@aws-lambda-powertools/logger";
import { createAdaptorServer } from "@hono/node-server";
import { createAdminRuntime } from "../functions/admin/handler.js";
import { ROUTES } from "../functions/api/app.js";
import { createApiRuntime } from "../functions/api/handler.js";
import type { Env } from "../functions/domain/runtime-env.js";
import { parseFlags, wholeNumberArg } from "./args.js";
import { CliError, type CliIo, EXIT_OK } from "./io.js";

export const API_HOST = "127.0.0.1";
export const DEFAULT_API_PORT = 8787;

export interface ApiServerOptions {
  /** TCP port on 127.0.0.1; 0 picks a free one. Default 8787. */
  readonly port?: number;
  /** The API's clock (today, retention). Default Date.now. */
  readonly now?: () => number;
  readonly logger?: Logger;
}

export interface ApiServer {
  /** `http://127.0.0.1:<port>`, without a trailing slash. */
  readonly url: string;
  readonly port: number;
  /** Stops accepting, drops open connections, then closes the Redis connection. */
  close(): Promise<void>;
}

function isErrno(err: unknown, code: string): boolean {
  return err instanceof Error && "code" in err && err.code === code;
}

/**
 * The read app and the admin app over `env` (the functions' runtime variables), listening on
 * 127.0.0.1: writes (PUT and DELETE, the admin routes) go to the admin app, everything else to
 * the read app. In AWS they are two functions; locally, one loopback server without auth.
 */
export async function startApiServer(env: Env, options: ApiServerOptions = {}): Promise<ApiServer> {
  const port = options.port ?? DEFAULT_API_PORT;
  // Throws ConfigError naming every bad variable before anything listens.
  const runtime = createApiRuntime(env, {
    ...(options.now ? { now: options.now } : {}),
    ...(options.logger ? { logger: options.logger } : {}),
  });
  const admin = createAdminRuntime(env, {
    ...(options.logger ? { logger: options.logger } : {}),
  });
  const fetch = (request: Request) =>
    request.method === "PUT" || request.method === "DELETE"
      ? admin.app.fetch(request)
      : runtime.app.fetch(request);
  // The default adaptor server is a node:http Server (no TLS or HTTP/2 options given).
  const server = createAdaptorServer({ fetch, hostname: API_HOST }) as Server;
  try {
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(port, API_HOST, () => {
        server.off("error", reject);
        resolve();
      });
    });
  } catch (err) {
    runtime.close();
    admin.close();
    if (isErrno(err, "EADDRINUSE")) {
      throw new CliError(
        `port ${port} on ${API_HOST} is in use: choose another with --port N, or --port 0 for a free one`,
      );
    }
    throw err;
  }
  const bound = (server.address() as AddressInfo).port;
  let closed: Promise<void> | undefined;
  return {
    url: `http://${API_HOST}:${bound}`,
    port: bound,
    close() {
      closed ??= new Promise<void>((resolve) => {
        server.close(() => resolve());
        // Keep-alive connections would hold close() open until their idle timeout.
        server.closeAllConnections();
      }).finally(() => {
        runtime.close();
        admin.close();
      });
      return closed;
    },
  };
}

/** The routes the server answers, one line each, with their summary. */
export function describeRoutes(url: string): string[] {
  const lines = ROUTES.map((r) => ({ path: `GET ${url}${r.path}`, summary: r.summary }));
  lines.push({ path: `GET ${url}/v1/openapi.json`, summary: "OpenAPI 3 document of the routes" });
  lines.push({
    path: `PUT|DELETE ${url}/v1/sites/{site}/time-zone`,
    summary: 'Set ({"timeZone":"Europe/Paris"}) or remove a site\'s time zone (the admin routes)',
  });
  lines.push({
    path: `DELETE ${url}/v1/sites/{site}?confirm={site}`,
    summary: "Delete a site's data (offboarding; repeat with the answer's cursor until it is null)",
  });
  const width = Math.max(...lines.map((l) => l.path.length));
  return lines.map((l) => `  ${l.path.padEnd(width)}  ${l.summary}`);
}

/** Resolves with the signal's name at the first SIGINT or SIGTERM. */
export function untilSignal(): Promise<string> {
  return new Promise((resolve) => {
    const stop = (signal: string) => {
      process.off("SIGINT", stop);
      process.off("SIGTERM", stop);
      resolve(signal);
    };
    process.on("SIGINT", stop);
    process.on("SIGTERM", stop);
  });
}

export interface ApiCommandDeps extends CliIo {
  /** The API's clock. Default Date.now. */
  readonly now?: () => number;
  /** Resolves (with a reason) when the server should stop. Default: SIGINT or SIGTERM. */
  readonly untilStopped?: (server: ApiServer) => Promise<string>;
}

export async function runApi(args: readonly string[], deps: ApiCommandDeps): Promise<number> {
  const flags = parseFlags("api", args, { port: { type: "string" } });
  const port = wholeNumberArg("port", flags.port, DEFAULT_API_PORT, 0, 65535);
  const server = await startApiServer(deps.env, deps.now ? { port, now: deps.now } : { port });
  try {
    deps.stdout.write(
      [
        `read API on ${server.url} against Redis at ${deps.env.REDIS_ENDPOINT ?? "?"} (loopback only, no auth); Ctrl-C stops it`,
        ...describeRoutes(server.url),
        `e.g. curl '${server.url}/v1/sites?limit=10'`,
        "",
      ].join("\n"),
    );
    const reason = await (deps.untilStopped ?? untilSignal)(server);
    deps.stdout.write(`stopping the read API (${reason})\n`);
  } finally {
    await server.close();
  }
  return EXIT_OK;
}
