/**
 * The CLI's client of the read API (functions/api/app.ts). In AWS the API is a Lambda function
 * URL with AWS_IAM auth, so every request is SigV4-signed for service `lambda` with the
 * caller's own AWS credentials (the standard chain: environment, profile, SSO, ...). This is
 * how an operator counts from a workstation that has no network path to MemoryDB.
 *
 * `signedGet` is the one signing primitive (the dashboard's proxy uses it too); `readApiFromEnv`
 * and `getFromApi` add what the CLI needs: API_URL and the region from the environment, and
 * every failure turned into a message that says what to check.
 */

import { Sha256 } from "@aws-crypto/sha256-js";
import { defaultProvider } from "@aws-sdk/credential-provider-node";
import { HttpRequest } from "@smithy/protocol-http";
import { SignatureV4 } from "@smithy/signature-v4";
import type { AwsCredentialIdentity, AwsCredentialIdentityProvider } from "@smithy/types";
import * as v from "valibot";
import { messageOf } from "../functions/domain/errors.js";
import type { Env } from "../functions/domain/runtime-env.js";
import { CliError } from "./io.js";

export interface ApiClientOptions {
  readonly region: string;
  readonly credentials: AwsCredentialIdentity | AwsCredentialIdentityProvider;
  readonly fetch?: typeof fetch;
  /** The signing clock. Default: the real one (AWS refuses signatures more than 5 min off). */
  readonly now?: () => Date;
}

/**
 * A GET signed as a Lambda function URL with AWS_IAM auth expects: the method, host, path,
 * query and the x-amz-date, x-amz-security-token (with temporary credentials) and
 * x-amz-content-sha256 headers, in an Authorization header. Exactly the signed headers are
 * sent (fetch takes the Host from the URL, which is the signed one).
 */
export async function signedGet(url: URL, options: ApiClientOptions): Promise<Response> {
  const query: Record<string, string | string[]> = {};
  for (const [name, value] of url.searchParams) {
    const seen = query[name];
    query[name] = seen === undefined ? value : [...(Array.isArray(seen) ? seen : [seen]), value];
  }
  const request = new HttpRequest({
    method: "GET",
    protocol: url.protocol,
    hostname: url.hostname,
    ...(url.port === "" ? {} : { port: Number(url.port) }),
    path: url.pathname,
    query,
    headers: { host: url.host },
  });
  const signer = new SignatureV4({
    service: "lambda",
    region: options.region,
    credentials: options.credentials,
    sha256: Sha256,
  });
  const signed = await signer.sign(request, { signingDate: options.now?.() ?? new Date() });
  return (options.fetch ?? fetch)(url, { method: "GET", headers: { ...signed.headers } });
}

const FUNCTION_URL_HOST_RE = /^[a-z0-9]+\.lambda-url\.([a-z]{2}(?:-[a-z]+)+-\d+)\.on\.aws$/;

/** The region of a Lambda function URL (`<id>.lambda-url.<region>.on.aws`); else undefined. */
export function regionOfFunctionUrl(url: URL): string | undefined {
  return FUNCTION_URL_HOST_RE.exec(url.hostname.toLowerCase())?.[1];
}

/** The variable that sends the CLI's reads through the read API instead of to Redis. */
export const API_URL_VARIABLE = "API_URL";

/** What a test (or another caller) may replace in the CLI's API client. */
export interface ReadApiDeps {
  /** Credentials to sign with. Default: defaultProvider(), the caller's standard AWS chain. */
  readonly apiCredentials?: AwsCredentialIdentity | AwsCredentialIdentityProvider;
  readonly fetch?: typeof fetch;
  /** The signing clock. Default: the real one. */
  readonly signingClock?: () => Date;
}

/** The read API the CLI talks to: its base URL (ending in "/") and how to sign for it. */
export interface ReadApi {
  readonly baseUrl: URL;
  readonly options: ApiClientOptions;
}

/**
 * The read API named by API_URL, or undefined when it is unset (then the CLI reads Redis).
 * The region comes from the function URL's host, else from AWS_REGION; credentials from the
 * caller's standard chain (AWS_PROFILE, environment variables, SSO, instance role, ...).
 */
export function readApiFromEnv(env: Env, deps: ReadApiDeps = {}): ReadApi | undefined {
  const text = env[API_URL_VARIABLE]?.trim();
  if (text === undefined || text === "") return undefined;
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new CliError(
      `${API_URL_VARIABLE}="${text}" is not a URL: use the stack's api_url output, e.g. https://abc123.lambda-url.eu-west-1.on.aws/`,
    );
  }
  if (url.protocol !== "https:" && url.protocol !== "http:") {
    throw new CliError(`${API_URL_VARIABLE}="${text}" must be an http(s) URL`);
  }
  if (url.search !== "" || url.hash !== "") {
    throw new CliError(
      `${API_URL_VARIABLE}="${text}" must be the API's base URL, without a query or fragment`,
    );
  }
  const region = regionOfFunctionUrl(url) ?? (env.AWS_REGION?.trim() || undefined);
  if (region === undefined) {
    throw new CliError(
      `${API_URL_VARIABLE}=${url.href} does not name its AWS region (a function URL is https://<id>.lambda-url.<region>.on.aws/) and AWS_REGION is not set: set AWS_REGION to the region of the read API, which requests are signed for`,
    );
  }
  if (!url.pathname.endsWith("/")) url.pathname = `${url.pathname}/`;
  return {
    baseUrl: url,
    options: {
      region,
      credentials: deps.apiCredentials ?? defaultProvider(),
      ...(deps.fetch ? { fetch: deps.fetch } : {}),
      ...(deps.signingClock ? { now: deps.signingClock } : {}),
    },
  };
}

/** The URL of an API path (e.g. `v1/sites/715/count`) under the base, with its query. */
export function apiUrl(
  api: ReadApi,
  path: string,
  query: Readonly<Record<string, string | undefined>> = {},
): URL {
  const url = new URL(path.replace(/^\/+/, ""), api.baseUrl);
  for (const [name, value] of Object.entries(query)) {
    if (value !== undefined) url.searchParams.set(name, value);
  }
  return url;
}

/** The API's error body, {"error","message"}. */
const ApiErrorBody = v.object({ error: v.string(), message: v.string() });

function bodyText(text: string): string {
  const oneLine = text.replace(/\s+/g, " ").trim();
  return oneLine.length > 300 ? `${oneLine.slice(0, 300)}...` : oneLine;
}

/** A failed answer as a CliError saying what the API said and what to check. */
function answerError(url: URL, response: Response, text: string): CliError {
  const status = `HTTP ${response.status}${response.statusText ? ` ${response.statusText}` : ""}`;
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  if (response.status === 401 || response.status === 403) {
    // Function URLs answer {"Message":"Forbidden"} when IAM refuses the signed request.
    return new CliError(
      `the read API at ${url.origin} refused the request (${status}${text ? `: ${bodyText(text)}` : ""}): check that your AWS credentials are the ones you mean (aws sts get-caller-identity; AWS_PROFILE) and that the stack's operator policy (output operator_policy_arn) is attached to them: it allows lambda:InvokeFunctionUrl and lambda:InvokeFunction on the read API`,
    );
  }
  const parsed = v.safeParse(ApiErrorBody, json);
  if (parsed.success) {
    const retry = response.headers.get("retry-after");
    return new CliError(
      `the read API answered ${status} (${parsed.output.error}): ${parsed.output.message}${retry ? ` (retry after ${retry} s)` : ""}`,
    );
  }
  return new CliError(
    `the read API at ${url.origin} answered ${status}${text ? `: ${bodyText(text)}` : ""}`,
  );
}

/**
 * GET an API path, signed, and its JSON body checked against `schema`. Every failure is a
 * CliError: no credentials, no answer within `timeoutMs`, an error answer (the API's own
 * message), or a body that is not what the route documents.
 */
export async function getFromApi<T>(
  api: ReadApi,
  path: string,
  query: Readonly<Record<string, string | undefined>>,
  schema: v.GenericSchema<unknown, T>,
  timeoutMs: number,
): Promise<T> {
  const url = apiUrl(api, path, query);
  const baseFetch = api.options.fetch ?? fetch;
  const bounded: typeof fetch = (input, init) =>
    baseFetch(input, { ...init, signal: AbortSignal.timeout(timeoutMs) });
  let response: Response;
  let text: string;
  try {
    response = await signedGet(url, { ...api.options, fetch: bounded });
    text = await response.text();
  } catch (err) {
    const name = err instanceof Error ? err.name : "";
    if (name === "CredentialsProviderError" || /credential/i.test(messageOf(err))) {
      throw new CliError(
        `no AWS credentials to sign the request to ${API_URL_VARIABLE} (${messageOf(err)}): configure them as for the AWS CLI (AWS_PROFILE, aws sso login, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY), or unset ${API_URL_VARIABLE} to read Redis at REDIS_ENDPOINT directly`,
      );
    }
    if (name === "TimeoutError") {
      throw new CliError(
        `no answer from the read API at ${url.origin} within ${timeoutMs / 1000} s: check ${API_URL_VARIABLE} and this machine's network`,
      );
    }
    const cause =
      err instanceof Error && err.cause !== undefined ? `: ${messageOf(err.cause)}` : "";
    throw new CliError(
      `cannot reach the read API at ${url.origin} (${messageOf(err)}${cause}): check ${API_URL_VARIABLE} (the stack's api_url output) and this machine's network`,
    );
  }
  if (!response.ok) throw answerError(url, response, text);
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    throw new CliError(
      `the read API at ${url.origin} answered ${url.pathname} with something that is not JSON (${bodyText(text)}): is ${API_URL_VARIABLE} the stack's api_url output?`,
    );
  }
  const parsed = v.safeParse(schema, json);
  if (!parsed.success) {
    const issue = parsed.issues[0];
    throw new CliError(
      `the read API at ${url.origin} answered ${url.pathname} with a body this CLI does not expect (${issue ? `${v.getDotPath(issue) ?? "body"}: ${issue.message}` : "invalid"}): is ${API_URL_VARIABLE} the read API of a stack of this version?`,
    );
  }
  return parsed.output;
}
