/**
 * The CLI's client of the read API (functions/api/app.ts). In AWS the API is a Lambda function
 * URL with AWS_IAM auth, so every request is SigV4-signed for service `lambda` with the
 * caller's own AWS credentials (the standard chain: environment, profile, SSO, ...). This is
 * how an operator counts from a workstation that has no network path to MemoryDB.
 *
 * `signedRequest` is the one signing primitive (`signedGet`, which the dashboard's proxy uses,
 * is its GET); `readApiFromEnv` and `getFromApi` add what the CLI needs: API_URL and the region
 * from the environment, and every failure turned into a message that says what to check. The
 * admin API (ADMIN_API_URL, `site`) is reached the same way: `functionUrlApiFromEnv` and
 * `requestApi` with ADMIN_API's names.
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

/** What a signed request sends besides its URL. */
export interface SignedRequestInit {
  /** GET, PUT, DELETE, ... */
  readonly method: string;
  /** A JSON value, sent as `application/json` (UTF-8); none for a body-less request. */
  readonly json?: unknown;
}

/**
 * A request signed as a Lambda function URL with AWS_IAM auth expects: the method, host, path,
 * query and the x-amz-date, x-amz-security-token (with temporary credentials) and
 * x-amz-content-sha256 headers, in an Authorization header. x-amz-content-sha256 is the SHA-256
 * of the body (of nothing, without one), so the signature covers the body too: a body changed
 * on the way no longer matches it. Exactly the signed headers are sent (fetch takes the Host
 * from the URL, which is the signed one, and adds only content-length), and the body as the
 * very bytes that were hashed.
 */
export async function signedRequest(
  url: URL,
  init: SignedRequestInit,
  options: ApiClientOptions,
): Promise<Response> {
  const query: Record<string, string | string[]> = {};
  for (const [name, value] of url.searchParams) {
    const seen = query[name];
    query[name] = seen === undefined ? value : [...(Array.isArray(seen) ? seen : [seen]), value];
  }
  const body =
    init.json === undefined ? undefined : new TextEncoder().encode(JSON.stringify(init.json));
  const request = new HttpRequest({
    method: init.method,
    protocol: url.protocol,
    hostname: url.hostname,
    ...(url.port === "" ? {} : { port: Number(url.port) }),
    path: url.pathname,
    query,
    headers: {
      host: url.host,
      ...(body === undefined ? {} : { "content-type": "application/json; charset=utf-8" }),
    },
    ...(body === undefined ? {} : { body }),
  });
  const signer = new SignatureV4({
    service: "lambda",
    region: options.region,
    credentials: options.credentials,
    sha256: Sha256,
  });
  const signed = await signer.sign(request, { signingDate: options.now?.() ?? new Date() });
  return (options.fetch ?? fetch)(url, {
    method: init.method,
    headers: { ...signed.headers },
    ...(body === undefined ? {} : { body }),
  });
}

/** A GET, signed (signedRequest without a body). */
export function signedGet(url: URL, options: ApiClientOptions): Promise<Response> {
  return signedRequest(url, { method: "GET" }, options);
}

const FUNCTION_URL_HOST_RE = /^[a-z0-9]+\.lambda-url\.([a-z]{2}(?:-[a-z]+)+-\d+)\.on\.aws$/;

/** The region of a Lambda function URL (`<id>.lambda-url.<region>.on.aws`); else undefined. */
export function regionOfFunctionUrl(url: URL): string | undefined {
  return FUNCTION_URL_HOST_RE.exec(url.hostname.toLowerCase())?.[1];
}

/** The variable that sends the CLI's reads through the read API instead of to Redis. */
export const API_URL_VARIABLE = "API_URL";

/** How the messages about one function URL API name it and what configures and allows it. */
export interface ApiNames {
  /** "read API", "admin API" */
  readonly what: string;
  /** The variable with its base URL. */
  readonly variable: string;
  /** The stack output that gives it. */
  readonly output: string;
  /** The stack's policy that allows calling it ("operator", "admin") and its output. */
  readonly policy: string;
  readonly policyOutput: string;
  /** What the CLI does instead when the variable is unset. */
  readonly withoutIt: string;
}

export const READ_API: ApiNames = {
  what: "read API",
  variable: API_URL_VARIABLE,
  output: "api_url",
  policy: "operator",
  policyOutput: "operator_policy_arn",
  withoutIt: "read Redis at REDIS_ENDPOINT directly",
};

/** The admin API (functions/admin/app.ts): `site` reads and sets time zones through it. */
export const ADMIN_API: ApiNames = {
  what: "admin API",
  variable: "ADMIN_API_URL",
  output: "admin_api_url",
  policy: "admin",
  policyOutput: "admin_policy_arn",
  withoutIt: "use the zone registry at REDIS_ENDPOINT directly",
};

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

/** A function URL API the CLI talks to, with the names its messages use. */
export interface FunctionUrlApi extends ReadApi {
  readonly names: ApiNames;
}

/**
 * The read API named by API_URL, or undefined when it is unset (then the CLI reads Redis).
 * The region comes from the function URL's host, else from AWS_REGION; credentials from the
 * caller's standard chain (AWS_PROFILE, environment variables, SSO, instance role, ...).
 */
export function readApiFromEnv(env: Env, deps: ReadApiDeps = {}): ReadApi | undefined {
  return functionUrlApiFromEnv(env, READ_API, deps);
}

/** The API named by the `names.variable` of `env`, as readApiFromEnv for the read API. */
export function functionUrlApiFromEnv(
  env: Env,
  names: ApiNames,
  deps: ReadApiDeps = {},
): FunctionUrlApi | undefined {
  const { variable } = names;
  const text = env[variable]?.trim();
  if (text === undefined || text === "") return undefined;
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new CliError(
      `${variable}="${text}" is not a URL: use the stack's ${names.output} output, e.g. https://abc123.lambda-url.eu-west-1.on.aws/`,
    );
  }
  if (url.protocol !== "https:" && url.protocol !== "http:") {
    throw new CliError(`${variable}="${text}" must be an http(s) URL`);
  }
  if (url.search !== "" || url.hash !== "") {
    throw new CliError(
      `${variable}="${text}" must be the API's base URL, without a query or fragment`,
    );
  }
  const region = regionOfFunctionUrl(url) ?? (env.AWS_REGION?.trim() || undefined);
  if (region === undefined) {
    throw new CliError(
      `${variable}=${url.href} does not name its AWS region (a function URL is https://<id>.lambda-url.<region>.on.aws/) and AWS_REGION is not set: set AWS_REGION to the region of the ${names.what}, which requests are signed for`,
    );
  }
  if (!url.pathname.endsWith("/")) url.pathname = `${url.pathname}/`;
  return {
    baseUrl: url,
    names,
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
function answerError(names: ApiNames, url: URL, response: Response, text: string): CliError {
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
      `the ${names.what} at ${url.origin} refused the request (${status}${text ? `: ${bodyText(text)}` : ""}): check that your AWS credentials are the ones you mean (aws sts get-caller-identity; AWS_PROFILE) and that the stack's ${names.policy} policy (output ${names.policyOutput}) is attached to them: it allows lambda:InvokeFunctionUrl and lambda:InvokeFunction on the ${names.what}`,
    );
  }
  const parsed = v.safeParse(ApiErrorBody, json);
  if (parsed.success) {
    const retry = response.headers.get("retry-after");
    return new CliError(
      `the ${names.what} answered ${status} (${parsed.output.error}): ${parsed.output.message}${retry ? ` (retry after ${retry} s)` : ""}`,
    );
  }
  return new CliError(
    `the ${names.what} at ${url.origin} answered ${status}${text ? `: ${bodyText(text)}` : ""}`,
  );
}

/**
 * GET an API path, signed, and its JSON body checked against `schema`. Every failure is a
 * CliError: no credentials, no answer within `timeoutMs`, an error answer (the API's own
 * message), or a body that is not what the route documents.
 */
export function getFromApi<T>(
  api: ReadApi,
  path: string,
  query: Readonly<Record<string, string | undefined>>,
  schema: v.GenericSchema<unknown, T>,
  timeoutMs: number,
): Promise<T> {
  return requestApi({ ...api, names: READ_API }, { method: "GET", path, query }, schema, timeoutMs);
}

/** One request to a function URL API: what getFromApi sends, with any method and a JSON body. */
export interface ApiRequest {
  readonly method: string;
  /** Under the base URL, e.g. `v1/sites/715/time-zone`. */
  readonly path: string;
  readonly query?: Readonly<Record<string, string | undefined>>;
  /** A JSON body (signed: its SHA-256 is x-amz-content-sha256). */
  readonly json?: unknown;
}

/**
 * A request to an API path, signed, and its JSON answer checked against `schema`; every
 * failure a CliError, as getFromApi's, naming the API as `api.names` says.
 */
export async function requestApi<T>(
  api: FunctionUrlApi,
  request: ApiRequest,
  schema: v.GenericSchema<unknown, T>,
  timeoutMs: number,
): Promise<T> {
  const { names } = api;
  const { variable } = names;
  const url = apiUrl(api, request.path, request.query);
  const baseFetch = api.options.fetch ?? fetch;
  const bounded: typeof fetch = (input, init) =>
    baseFetch(input, { ...init, signal: AbortSignal.timeout(timeoutMs) });
  let response: Response;
  let text: string;
  try {
    response = await signedRequest(
      url,
      { method: request.method, ...(request.json === undefined ? {} : { json: request.json }) },
      { ...api.options, fetch: bounded },
    );
    text = await response.text();
  } catch (err) {
    const name = err instanceof Error ? err.name : "";
    if (name === "CredentialsProviderError" || /credential/i.test(messageOf(err))) {
      throw new CliError(
        `no AWS credentials to sign the request to ${variable} (${messageOf(err)}): configure them as for the AWS CLI (AWS_PROFILE, aws sso login, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY), or unset ${variable} to ${names.withoutIt}`,
      );
    }
    if (name === "TimeoutError") {
      throw new CliError(
        `no answer from the ${names.what} at ${url.origin} within ${timeoutMs / 1000} s: check ${variable} and this machine's network`,
      );
    }
    const cause =
      err instanceof Error && err.cause !== undefined ? `: ${messageOf(err.cause)}` : "";
    throw new CliError(
      `cannot reach the ${names.what} at ${url.origin} (${messageOf(err)}${cause}): check ${variable} (the stack's ${names.output} output) and this machine's network`,
    );
  }
  if (!response.ok) throw answerError(names, url, response, text);
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    throw new CliError(
      `the ${names.what} at ${url.origin} answered ${url.pathname} with something that is not JSON (${bodyText(text)}): is ${variable} the stack's ${names.output} output?`,
    );
  }
  const parsed = v.safeParse(schema, json);
  if (!parsed.success) {
    const issue = parsed.issues[0];
    throw new CliError(
      `the ${names.what} at ${url.origin} answered ${url.pathname} with a body this CLI does not expect (${issue ? `${v.getDotPath(issue) ?? "body"}: ${issue.message}` : "invalid"}): is ${variable} the ${names.what} of a stack of this version?`,
    );
  }
  return parsed.output;
}
