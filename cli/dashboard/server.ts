/**
 * The dashboard's HTTP server: one page and a read-only proxy of `/v1/*`, on 127.0.0.1 only.
 * In API_URL mode the proxy signs with the operator's AWS credentials, so it must not become
 * a way for another web page (or another local user's browser tab) to read through them:
 *
 * - the Host header must be exactly `127.0.0.1:PORT` or `localhost:PORT`, which a page on a
 *   rebinding DNS name (evil.example resolving to 127.0.0.1) cannot forge;
 * - every `/v1/*` request needs the per-run random token in `x-dashboard-token`, which only the
 *   page has (a cross-origin page can neither read it nor send a custom header without a CORS
 *   preflight, which gets a 405); the page itself is served only with the token in its query;
 * - a request whose Origin is another site's is refused;
 * - only GET and HEAD are served; the upstream gets the path and query only, never the
 *   browser's headers.
 */

import { timingSafeEqual } from "node:crypto";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import { messageOf } from "../../functions/domain/errors.js";
import { type Upstream, UpstreamError } from "./upstream.js";

/** The header the page sends the token in. */
export const TOKEN_HEADER = "x-dashboard-token";
export const LOOPBACK = "127.0.0.1";

export interface DashboardPage {
  readonly html: string;
  /** The page's Content-Security-Policy (inline script and style allowed by hash only). */
  readonly contentSecurityPolicy: string;
}

export interface DashboardServerOptions {
  /** TCP port on 127.0.0.1; 0 picks a free one. */
  readonly port: number;
  readonly token: string;
  readonly page: DashboardPage;
  readonly upstream: Upstream;
}

export interface RunningDashboardServer {
  readonly port: number;
  /** The URL to open: `http://127.0.0.1:PORT/?token=...`. */
  readonly url: string;
  close(): Promise<void>;
}

/** Headers on every answer: nothing cached, sniffed, framed or referred elsewhere. */
const BASE_HEADERS = {
  "cache-control": "no-store",
  "x-content-type-options": "nosniff",
  "x-frame-options": "DENY",
  "referrer-policy": "no-referrer",
  "cross-origin-resource-policy": "same-origin",
} as const;

/** Upstream headers worth passing to the page; every other one is dropped. */
const FORWARDED_RESPONSE_HEADERS = ["content-type", "retry-after"] as const;

function sameSecret(given: string | undefined, expected: string): boolean {
  if (given === undefined) return false;
  const a = Buffer.from(given);
  const b = Buffer.from(expected);
  return a.length === b.length && timingSafeEqual(a, b);
}

function sendJson(
  res: ServerResponse,
  status: number,
  body: { error: string; message: string },
  extra: Record<string, string> = {},
): void {
  res.writeHead(status, {
    ...BASE_HEADERS,
    "content-type": "application/json; charset=utf-8",
    ...extra,
  });
  res.end(JSON.stringify(body));
}

export async function startDashboardServer(
  options: DashboardServerOptions,
): Promise<RunningDashboardServer> {
  let port = options.port;
  let allowedHosts: ReadonlySet<string> = new Set();

  const handle = async (req: IncomingMessage, res: ServerResponse) => {
    const host = req.headers.host ?? "";
    if (!allowedHosts.has(host)) {
      sendJson(res, 403, {
        error: "forbidden_host",
        message: `this dashboard answers only requests for ${LOOPBACK}:${port} or localhost:${port}, not for Host "${host}": open the URL the dashboard printed`,
      });
      return;
    }
    const origin = req.headers.origin;
    if (origin !== undefined && origin !== `http://${host}`) {
      sendJson(res, 403, {
        error: "forbidden_origin",
        message: `requests from ${origin} are refused: only the dashboard's own page may use it`,
      });
      return;
    }
    if (req.method !== "GET" && req.method !== "HEAD") {
      sendJson(
        res,
        405,
        {
          error: "method_not_allowed",
          message: `the dashboard only reads: ${req.method} is not allowed, use GET`,
        },
        { allow: "GET, HEAD" },
      );
      return;
    }
    const target = req.url ?? "";
    // Origin-form only ("/path?query"); "//host/..." stays a path here, never another host.
    const url = target.startsWith("/") ? new URL(`http://${host}${target}`) : undefined;
    if (url === undefined) {
      sendJson(res, 400, {
        error: "bad_request",
        message: `request target "${target}" is not a path`,
      });
      return;
    }
    if (url.pathname === "/") {
      if (!sameSecret(url.searchParams.get("token") ?? undefined, options.token)) {
        sendJson(res, 403, {
          error: "forbidden_token",
          message:
            "the page needs this run's token: open the full URL the dashboard printed (http://127.0.0.1:PORT/?token=...)",
        });
        return;
      }
      res.writeHead(200, {
        ...BASE_HEADERS,
        "content-type": "text/html; charset=utf-8",
        "content-security-policy": options.page.contentSecurityPolicy,
      });
      res.end(options.page.html);
      return;
    }
    if (!url.pathname.startsWith("/v1/")) {
      sendJson(res, 404, {
        error: "not_found",
        message: `the dashboard serves / and /v1/*, not ${url.pathname}`,
      });
      return;
    }
    const token = req.headers[TOKEN_HEADER];
    if (!sameSecret(typeof token === "string" ? token : undefined, options.token)) {
      sendJson(res, 403, {
        error: "forbidden_token",
        message: `API requests through the dashboard need this run's token in the ${TOKEN_HEADER} header: reload the page from the URL the dashboard printed`,
      });
      return;
    }
    let answer: Response;
    try {
      answer = await options.upstream(`${url.pathname}${url.search}`);
    } catch (err) {
      if (err instanceof UpstreamError) {
        sendJson(res, err.status, { error: "upstream_failed", message: err.message });
      } else {
        sendJson(res, 502, {
          error: "upstream_failed",
          message: `the dashboard could not get ${url.pathname} from the read API: ${messageOf(err)}`,
        });
      }
      return;
    }
    const body = Buffer.from(await answer.arrayBuffer());
    const headers: Record<string, string> = { ...BASE_HEADERS };
    for (const name of FORWARDED_RESPONSE_HEADERS) {
      const value = answer.headers.get(name);
      if (value !== null) headers[name] = value;
    }
    res.writeHead(answer.status, headers);
    res.end(body);
  };

  const server = createServer((req, res) => {
    handle(req, res).catch((err: unknown) => {
      if (res.headersSent) {
        res.destroy();
        return;
      }
      sendJson(res, 500, {
        error: "internal",
        message: `the dashboard failed to answer: ${messageOf(err)}`,
      });
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.port, LOOPBACK, () => {
      server.off("error", reject);
      resolve();
    });
  });
  const address = server.address();
  if (address === null || typeof address === "string") {
    server.close();
    throw new Error(`the dashboard server is not listening on a TCP port (address: ${address})`);
  }
  port = address.port;
  allowedHosts = new Set([`${LOOPBACK}:${port}`, `localhost:${port}`]);
  const origin = `http://${LOOPBACK}:${port}`;
  return {
    port,
    url: `${origin}/?token=${encodeURIComponent(options.token)}`,
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.close((err) => (err ? reject(err) : resolve()));
        server.closeAllConnections();
      }),
  };
}
