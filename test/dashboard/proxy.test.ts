/**
 * The dashboard's server without a browser: what it refuses (foreign Host, foreign Origin,
 * missing or wrong token, anything but GET/HEAD, paths outside / and /v1/*) and what it
 * forwards. Locally, against a real Redis Cluster loaded by the real consumer and rollup
 * (test/helpers/read-fixture.ts), a GET through the dashboard equals the read app's own
 * answer. In API_URL mode the AWS edge is a recording fetch: the request it gets is checked
 * for its URL (path and query only), its SigV4 signature (recomputed here with node:crypto,
 * independently of the signer) and for the absence of everything the browser sent.
 */

import { createHash, createHmac } from "node:crypto";
import * as v from "valibot";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { bundleClient, type ClientBundle } from "../../cli/dashboard/page.js";
import { TOKEN_HEADER } from "../../cli/dashboard/server.js";
import {
  DEFAULT_DASHBOARD_PORT,
  type RunningDashboard,
  runDashboard,
  startDashboard,
} from "../../cli/dashboard.js";
import { UsageError } from "../../cli/io.js";
import { type ApiRuntime, createApiRuntime } from "../../functions/api/handler.js";
import { CountBody, ErrorBody, SeriesBody } from "../../functions/api/schemas.js";
import { at, first, last } from "../../functions/domain/arrays.js";
import { captureIo } from "../cli/capture.js";
import { daysAgo } from "../helpers/clock.js";
import { type ReadFixture, startReadFixture } from "../helpers/read-fixture.js";
import { checked } from "../helpers/schema.js";
import { jsonOf, rawRequest } from "./raw-http.js";

let fixture: ReadFixture;
let bundle: ClientBundle;
let dashboard: RunningDashboard;
let app: ApiRuntime;
let site: string;

beforeAll(async () => {
  [fixture, bundle] = await Promise.all([startReadFixture({ sites: 2, days: 40 }), bundleClient()]);
  site = at(fixture.sites, 1, "site");
  // The dashboard reads as the stack's reader ACL user, like the read API in AWS.
  dashboard = await startDashboard({
    env: fixture.readerEnv,
    port: 0,
    now: () => fixture.nowMs,
    bundle,
  });
  app = createApiRuntime(fixture.readerEnv, { now: () => fixture.nowMs });
}, 60_000);

afterAll(async () => {
  await dashboard?.close();
  app?.close();
  await fixture?.stop();
});

const withToken = () => ({ [TOKEN_HEADER]: dashboard.token });
const ErrorAnswer = v.object({ error: v.string(), message: v.string() });

describe("the dashboard's refusals", () => {
  it("serves the page only with this run's token in its query", async () => {
    const good = await rawRequest(dashboard.port, { path: `/?token=${dashboard.token}` });
    expect(good.status).toBe(200);
    expect(good.headers["content-type"]).toBe("text/html; charset=utf-8");
    expect(good.text).toContain('<table id="points">');
    // The page carries the given clock, so the default range ends on the fixture's day (in the
    // chosen site's zone; before a site is chosen, the UTC date).
    expect(good.text).toContain(`"nowMs":${fixture.nowMs}`);
    expect(good.text).toContain(`"rangeDays":30`);
    expect(good.text).toContain(`"today":"${daysAgo(0, fixture.nowMs)}"`);
    expect(good.text).toContain(`"defaultFrom":"${daysAgo(29, fixture.nowMs)}"`);
    const csp = String(good.headers["content-security-policy"]);
    expect(csp).toContain("default-src 'none'");
    expect(csp).toContain("connect-src 'self'");
    expect(csp).toMatch(/script-src 'sha256-[A-Za-z0-9+/=]+'/);
    // No CDN: nothing in the page names another origin to load from.
    expect(good.text).not.toMatch(/<(script|link)[^>]+(src|href)="https?:/);

    for (const path of [
      "/",
      "/?token=",
      `/?token=${dashboard.token.slice(0, -1)}x`,
      `/?tok=${dashboard.token}`,
    ]) {
      const refused = await rawRequest(dashboard.port, { path });
      expect(refused.status, path).toBe(403);
      expect(checked(ErrorAnswer, jsonOf(refused), path).error).toBe("forbidden_token");
      expect(refused.text).not.toContain(dashboard.token);
    }
  });

  it("refuses API calls without the token in its header, or with a wrong one", async () => {
    const path = `/v1/sites/${site}/events`;
    const cases: Record<string, Record<string, string>> = {
      none: {},
      wrong: { [TOKEN_HEADER]: `${dashboard.token.slice(0, -2)}AA` },
      short: { [TOKEN_HEADER]: dashboard.token.slice(0, 10) },
      "as a cookie": { cookie: `${TOKEN_HEADER}=${dashboard.token}` },
    };
    for (const [name, headers] of Object.entries(cases)) {
      const refused = await rawRequest(dashboard.port, { path, headers });
      expect(refused.status, name).toBe(403);
      const body = checked(ErrorAnswer, jsonOf(refused), name);
      expect(body.error).toBe("forbidden_token");
      expect(body.message).toContain(TOKEN_HEADER);
    }
    // In the query, where the page's own URL has it, it does not open the API either.
    const inQuery = await rawRequest(dashboard.port, { path: `${path}?token=${dashboard.token}` });
    expect(inQuery.status).toBe(403);
    const allowed = await rawRequest(dashboard.port, { path, headers: withToken() });
    expect(allowed.status).toBe(200);
  });

  it("refuses any Host but 127.0.0.1:PORT and localhost:PORT (DNS rebinding), token or not", async () => {
    const path = `/v1/sites/${site}/events`;
    const port = dashboard.port;
    for (const host of [
      `evil.example:${port}`,
      "evil.example",
      `127.0.0.1:${port + 1}`,
      "127.0.0.1",
      `localhost.evil.example:${port}`,
      `[::1]:${port}`,
    ]) {
      for (const target of [path, `/?token=${dashboard.token}`]) {
        const refused = await rawRequest(port, { path: target, headers: { ...withToken(), host } });
        expect(refused.status, `${host} ${target}`).toBe(403);
        expect(checked(ErrorAnswer, jsonOf(refused), host).error).toBe("forbidden_host");
      }
    }
    for (const host of [`127.0.0.1:${port}`, `localhost:${port}`]) {
      const allowed = await rawRequest(port, { path, headers: { ...withToken(), host } });
      expect(allowed.status, host).toBe(200);
    }
  });

  it("refuses a request from another site's page (Origin), token or not", async () => {
    const path = `/v1/sites/${site}/events`;
    const refused = await rawRequest(dashboard.port, {
      path,
      headers: { ...withToken(), origin: "https://evil.example" },
    });
    expect(refused.status).toBe(403);
    expect(checked(ErrorAnswer, jsonOf(refused), "origin").error).toBe("forbidden_origin");
    const own = await rawRequest(dashboard.port, {
      path,
      headers: { ...withToken(), origin: `http://127.0.0.1:${dashboard.port}` },
    });
    expect(own.status).toBe(200);
  });

  it("only reads: any method but GET and HEAD is 405 with Allow, even with the token", async () => {
    for (const method of ["POST", "PUT", "PATCH", "DELETE", "OPTIONS"]) {
      for (const path of [`/v1/sites/${site}/time-zone`, `/?token=${dashboard.token}`]) {
        const refused = await rawRequest(dashboard.port, { method, path, headers: withToken() });
        expect(refused.status, `${method} ${path}`).toBe(405);
        expect(refused.headers.allow).toBe("GET, HEAD");
      }
    }
    const head = await rawRequest(dashboard.port, {
      method: "HEAD",
      path: `/v1/sites/${site}/events`,
      headers: withToken(),
    });
    expect(head.status).toBe(200);
    expect(head.text).toBe("");
  });

  it("forwards /v1/* only: other paths, and paths that leave /v1/ or name another host, are 404", async () => {
    for (const path of [
      "/favicon.ico",
      "/v1",
      "/v1/../admin",
      "//evil.example/v1/sites",
      "/v2/sites",
    ]) {
      const refused = await rawRequest(dashboard.port, { path, headers: withToken() });
      expect(refused.status, path).toBe(404);
      expect(checked(ErrorAnswer, jsonOf(refused), path).error).toBe("not_found");
    }
  });
});

describe("reading through the dashboard (local app)", () => {
  it("answers /v1/sites/{site}/count exactly as the read app does", async () => {
    const path = `/v1/sites/${site}/count?from=${daysAgo(29, fixture.nowMs)}&to=${daysAgo(0, fixture.nowMs)}&event=view`;
    const through = await rawRequest(dashboard.port, { path, headers: withToken() });
    const direct = await app.app.request(path);
    expect(through.status).toBe(200);
    const body = checked(CountBody, jsonOf(through), "count through the dashboard");
    expect(body).toEqual(checked(CountBody, await direct.json(), "count from the app"));
    // A real count of real data, not two equal zeros.
    expect(body.estimate).toBeGreaterThan(1000);
    expect(body.complete).toBe(true);
    expect(through.headers["content-type"]).toBe(direct.headers.get("content-type"));
    // The proxy's own headers, not the app's caching.
    expect(through.headers["cache-control"]).toBe("no-store");
  });

  it("answers a series the same way, and passes the API's 400 and 404 through with their message", async () => {
    const from = first(fixture.days, "day");
    const to = last(fixture.days, "day");
    const path = `/v1/sites/${site}/series?from=${from}&to=${to}&granularity=week`;
    const through = await rawRequest(dashboard.port, { path, headers: withToken() });
    const direct = await app.app.request(path);
    expect(checked(SeriesBody, jsonOf(through), "series")).toEqual(await direct.json());

    const reversed = await rawRequest(dashboard.port, {
      path: `/v1/sites/${site}/count?from=${to}&to=${from}`,
      headers: withToken(),
    });
    expect(reversed.status).toBe(400);
    const error = checked(ErrorBody, jsonOf(reversed), "400");
    expect(error.message).toContain("is before");

    const unknown = await rawRequest(dashboard.port, {
      path: "/v1/sites/no-such-site/events",
      headers: withToken(),
    });
    expect(unknown.status).toBe(404);
    expect(checked(ErrorBody, jsonOf(unknown), "404").error).toBe("unknown_site");
  });
});

describe("the dashboard command", () => {
  it("prints the mode and the tokened URL, serves it, and stops when asked", async () => {
    const { out, io } = captureIo(fixture.readerEnv);
    const stop = new AbortController();
    const running = runDashboard(["--port", "0"], {
      ...io,
      now: () => fixture.nowMs,
      signal: stop.signal,
    });
    await expect.poll(() => out.stdout, { timeout: 10_000 }).toContain("open http");
    const url = /open (\S+)\n/.exec(out.stdout)?.[1] ?? "";
    expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/\?token=[A-Za-z0-9_-]{43}$/);
    expect(out.stdout).toContain(
      `local read app, reading Redis at ${fixture.readerEnv.REDIS_ENDPOINT}`,
    );
    const page = await fetch(url);
    expect(page.status).toBe(200);
    // Another run's token does not open this run's page.
    const other = await fetch(url.replace(/token=.*/, `token=${dashboard.token}`));
    expect(other.status).toBe(403);
    stop.abort();
    await expect(running).resolves.toBe(0);
    await expect(fetch(url)).rejects.toThrow();
  });

  it("rejects a bad --port as a usage error, and defaults to 8788", async () => {
    const { io } = captureIo(fixture.readerEnv);
    for (const port of ["x", "-1", "65536", "1.5"]) {
      await expect(runDashboard(["--port", port], io), port).rejects.toThrow(UsageError);
    }
    expect(DEFAULT_DASHBOARD_PORT).toBe(8788);
  });

  it("without API_URL and without REDIS_ENDPOINT, says what to set", async () => {
    const { io } = captureIo({});
    await expect(runDashboard(["--port", "0"], io)).rejects.toThrow(/REDIS_ENDPOINT/);
  });
});

// --- API_URL mode: the AWS edge replaced by a recording fetch --------------------------------

const API_HOST = "abcdefghij0123456789.lambda-url.eu-west-1.on.aws";
const credentials = {
  accessKeyId: "AKIDEXAMPLE",
  secretAccessKey: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
  sessionToken: "session/token+value=",
};

interface Recorded {
  readonly url: URL;
  readonly method: string;
  readonly headers: Record<string, string>;
}

function hmac(key: Buffer | string, data: string): Buffer {
  return createHmac("sha256", key).update(data).digest();
}

const sha256Hex = (data: string) => createHash("sha256").update(data).digest("hex");

function rfc3986(s: string): string {
  return encodeURIComponent(s).replace(
    /[!'()*]/g,
    (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`,
  );
}

/** The SigV4 signature of a GET, from the specification (canonical request, scope, key). */
function expectedSignature(
  request: Recorded,
  signedHeaders: readonly string[],
  region: string,
): string {
  const date = request.headers["x-amz-date"] ?? "";
  const canonicalQuery = [...request.url.searchParams.entries()]
    .map(([k, value]) => `${rfc3986(k)}=${rfc3986(value)}`)
    .sort()
    .join("&");
  const headerValue = (name: string) =>
    name === "host" ? request.url.host : (request.headers[name] ?? "");
  const canonicalHeaders = signedHeaders
    .map((name) => `${name}:${headerValue(name).trim()}\n`)
    .join("");
  // Every service but S3 encodes the (already encoded) path segments once more.
  const canonicalPath = request.url.pathname.split("/").map(rfc3986).join("/");
  const payloadHash = request.headers["x-amz-content-sha256"] ?? sha256Hex("");
  const canonicalRequest = [
    "GET",
    canonicalPath,
    canonicalQuery,
    canonicalHeaders,
    signedHeaders.join(";"),
    payloadHash,
  ].join("\n");
  const scope = `${date.slice(0, 8)}/${region}/lambda/aws4_request`;
  const stringToSign = ["AWS4-HMAC-SHA256", date, scope, sha256Hex(canonicalRequest)].join("\n");
  let key = hmac(`AWS4${credentials.secretAccessKey}`, date.slice(0, 8));
  for (const part of [region, "lambda", "aws4_request"]) key = hmac(key, part);
  return createHmac("sha256", key).update(stringToSign).digest("hex");
}

describe("reading through the dashboard (API_URL, signed)", () => {
  let signed: RunningDashboard;
  const recorded: Recorded[] = [];
  let answer: () => Response = () => new Response("{}");

  beforeAll(async () => {
    const recordingFetch: typeof fetch = async (input, init) => {
      const request = new Request(input, init);
      recorded.push({
        url: new URL(request.url),
        method: request.method,
        headers: Object.fromEntries(new Headers(init?.headers).entries()),
      });
      return answer();
    };
    signed = await startDashboard({
      env: { API_URL: `https://${API_HOST}/`, AWS_REGION: "us-east-1" },
      port: 0,
      now: () => fixture.nowMs,
      bundle,
      apiCredentials: credentials,
      fetch: recordingFetch,
      signingClock: () => new Date(fixture.nowMs),
    });
  });

  afterAll(async () => {
    await signed?.close();
  });

  it("sends the read API only the path and query, SigV4-signed for lambda, and nothing the browser sent", async () => {
    recorded.length = 0;
    answer = () =>
      new Response('{"site":"715","estimate":42}', {
        status: 200,
        headers: {
          "content-type": "application/json",
          "set-cookie": "upstream=1",
          "x-amzn-requestid": "abc",
          "access-control-allow-origin": "*",
        },
      });
    const path = "/v1/sites/715/count?from=2031-05-17&to=2031-06-15&event=view";
    const through = await rawRequest(signed.port, {
      path,
      headers: {
        ...{ [TOKEN_HEADER]: signed.token },
        cookie: "session=browser-secret",
        authorization: "Bearer browser-secret",
        "x-amz-security-token": "browser-secret",
        "x-forwarded-for": "203.0.113.9",
        "user-agent": "Mozilla/5.0 browser-secret",
      },
    });
    expect(through.status).toBe(200);
    expect(jsonOf(through)).toEqual({ site: "715", estimate: 42 });
    // Only the content type comes back: no upstream cookie, request id or CORS opening.
    expect(through.headers["set-cookie"]).toBeUndefined();
    expect(through.headers["x-amzn-requestid"]).toBeUndefined();
    expect(through.headers["access-control-allow-origin"]).toBeUndefined();

    expect(recorded).toHaveLength(1);
    const sent = recorded[0] as Recorded;
    expect(sent.method).toBe("GET");
    expect(sent.url.href).toBe(`https://${API_HOST}${path}`);
    expect(JSON.stringify(sent.headers)).not.toContain("browser-secret");
    expect(JSON.stringify(sent.headers)).not.toContain(signed.token);
    expect(Object.keys(sent.headers)).not.toContain("cookie");
    expect(Object.keys(sent.headers)).not.toContain("x-forwarded-for");
    expect(Object.keys(sent.headers)).not.toContain(TOKEN_HEADER);
    // Only what SigV4 needs.
    for (const name of Object.keys(sent.headers)) {
      expect([
        "host",
        "authorization",
        "x-amz-date",
        "x-amz-security-token",
        "x-amz-content-sha256",
      ]).toContain(name);
    }

    // Signed for the function URL's own region (not AWS_REGION), service lambda, at the clock's time.
    const authorization = sent.headers.authorization ?? "";
    const match =
      /^AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE\/(\d{8})\/eu-west-1\/lambda\/aws4_request, SignedHeaders=([a-z0-9;-]+), Signature=([0-9a-f]{64})$/.exec(
        authorization,
      );
    expect(match, authorization).not.toBeNull();
    const [, day, signedHeaderList = "", signature] = match ?? [];
    expect(day).toBe(daysAgo(0, fixture.nowMs).replaceAll("-", ""));
    expect(sent.headers["x-amz-date"]).toBe(
      new Date(fixture.nowMs)
        .toISOString()
        .replace(/[-:]/g, "")
        .replace(/\.\d{3}/, ""),
    );
    expect(sent.headers["x-amz-security-token"]).toBe(credentials.sessionToken);
    const signedHeaders = signedHeaderList.split(";");
    expect(signedHeaders).toContain("host");
    expect(signedHeaders).toContain("x-amz-date");
    expect(signature).toBe(expectedSignature(sent, signedHeaders, "eu-west-1"));
  });

  it("passes the read API's refusal through with its status and message, for the page's banner", async () => {
    answer = () =>
      new Response('{"Message":"Forbidden"}', {
        status: 403,
        headers: { "content-type": "application/json" },
      });
    const refused = await rawRequest(signed.port, {
      path: "/v1/sites?prefix=7",
      headers: { [TOKEN_HEADER]: signed.token },
    });
    expect(refused.status).toBe(403);
    expect(jsonOf(refused)).toEqual({ Message: "Forbidden" });
  });

  it("answers 502 with what to check when the read API cannot be reached", async () => {
    answer = () => {
      throw new TypeError("fetch failed", { cause: new Error("getaddrinfo ENOTFOUND") });
    };
    const failed = await rawRequest(signed.port, {
      path: "/v1/sites",
      headers: { [TOKEN_HEADER]: signed.token },
    });
    expect(failed.status).toBe(502);
    const body = checked(ErrorAnswer, jsonOf(failed), "502");
    expect(body.error).toBe("upstream_failed");
    expect(body.message).toContain(`cannot reach the read API at https://${API_HOST}`);
    expect(body.message).toContain("ENOTFOUND");
    expect(body.message).toContain("API_URL");
  });

  it("still refuses what the local mode refuses, before anything is signed", async () => {
    recorded.length = 0;
    const cases: Parameters<typeof rawRequest>[1][] = [
      { method: "POST", path: "/v1/sites", headers: { [TOKEN_HEADER]: signed.token } },
      { path: "/v1/sites", headers: {} },
      {
        path: "/v1/sites",
        headers: { [TOKEN_HEADER]: signed.token, host: `evil.example:${signed.port}` },
      },
    ];
    for (const request of cases) {
      const refused = await rawRequest(signed.port, request);
      expect([403, 405]).toContain(refused.status);
    }
    expect(recorded).toHaveLength(0);
  });
});
