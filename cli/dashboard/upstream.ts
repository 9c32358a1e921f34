/**
 * Where the dashboard's proxy sends `/v1/*`: the read app in-process (against REDIS_ENDPOINT),
 * or the read API at API_URL, signed with the operator's AWS credentials. Either way the
 * upstream gets only a path and a query: the proxy builds every request itself, so nothing
 * the browser sent (cookies, Authorization, the dashboard's token) can reach it, and the
 * signature never reaches the browser.
 */

import { messageOf } from "../../functions/domain/errors.js";
import { type ReadApi, signedGet } from "../api-client.js";

/** Answers a GET of `pathAndQuery` (`/v1/...?...`, already checked by the proxy). */
export type Upstream = (pathAndQuery: string) => Promise<Response>;

/** An upstream failure the proxy turns into a JSON error with this status and message. */
export class UpstreamError extends Error {
  override name = "UpstreamError";
  constructor(
    readonly status: 502 | 504,
    message: string,
  ) {
    super(message);
  }
}

/** The read app of this process (createApiRuntime(env).app). */
export function appUpstream(app: {
  fetch(request: Request): Response | Promise<Response>;
}): Upstream {
  // The origin is a placeholder: the app routes on the path and query only.
  return async (pathAndQuery) =>
    app.fetch(new Request(new URL(pathAndQuery, "http://read-app.local")));
}

/** How long the read API may take before the dashboard shows a timeout. */
export const UPSTREAM_TIMEOUT_MS = 15_000;

/**
 * The read API at `api.baseUrl`, each request a fresh SigV4-signed GET (service lambda) of the
 * path and query under that base.
 */
export function signedUpstream(api: ReadApi, timeoutMs: number = UPSTREAM_TIMEOUT_MS): Upstream {
  const baseFetch = api.options.fetch ?? fetch;
  const bounded: typeof fetch = (input, init) =>
    baseFetch(input, { ...init, signal: AbortSignal.timeout(timeoutMs) });
  return async (pathAndQuery) => {
    // Relative to the base, so an API_URL with a path prefix keeps it.
    const url = new URL(pathAndQuery.replace(/^\/+/, ""), api.baseUrl);
    try {
      return await signedGet(url, { ...api.options, fetch: bounded });
    } catch (err) {
      const name = err instanceof Error ? err.name : "";
      if (name === "CredentialsProviderError" || /credential/i.test(messageOf(err))) {
        throw new UpstreamError(
          502,
          `no AWS credentials to sign the request to API_URL (${messageOf(err)}): configure them as for the AWS CLI (AWS_PROFILE, aws sso login, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY) and restart the dashboard`,
        );
      }
      if (name === "TimeoutError") {
        throw new UpstreamError(
          504,
          `no answer from the read API at ${url.origin} within ${timeoutMs / 1000} s: check API_URL and this machine's network`,
        );
      }
      const cause =
        err instanceof Error && err.cause !== undefined ? `: ${messageOf(err.cause)}` : "";
      throw new UpstreamError(
        502,
        `cannot reach the read API at ${url.origin} (${messageOf(err)}${cause}): check API_URL (the stack's api_url output) and this machine's network`,
      );
    }
  };
}
