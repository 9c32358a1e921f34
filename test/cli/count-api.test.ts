/**
 * `count` through the read API (API_URL) and the `api` command, against a real Redis Cluster
 * loaded by the real consumer and rollup (test/helpers/read-fixture.ts).
 *
 * The API server here is the real app (createApiRuntime, reading as the reader ACL user) behind
 * what stands in for the function URL's AWS_IAM check: it verifies each request's SigV4
 * signature for service `lambda` with test/cli/sigv4.ts (node:crypto, independent of the
 * client's signer) and answers 403 {"Message":"Forbidden"}, as IAM does, when it is wrong.
 */

import { type ChildProcess, execFile, spawn } from "node:child_process";
import { createServer, type Server } from "node:http";
import { promisify } from "node:util";
import { getRequestListener } from "@hono/node-server";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startApiServer } from "../../cli/api.js";
import { runCli } from "../../cli/app.js";
import { createApiRuntime } from "../../functions/api/handler.js";
import { daysAgo, utcDay } from "../helpers/clock.js";
import { listeningPort, portOpen } from "../helpers/net.js";
import { type ReadFixture, startReadFixture } from "../helpers/read-fixture.js";
import { captureIo } from "./capture.js";
import { parseAuthorization, verifySigV4 } from "./sigv4.js";

const run = promisify(execFile);

const KEY = {
  accessKeyId: "AKIDTESTCLIENT",
  secretAccessKey: "test/secret+key",
  sessionToken: "test-session-token",
};
const REGION = "eu-west-1";

interface Received {
  readonly path: string;
  readonly authorization: string | undefined;
  readonly securityToken: string | undefined;
  /** Why the signature was refused; undefined when it verified. */
  readonly refused: string | undefined;
}

let fixture: ReadFixture;
let site: string;
let runtime: ReturnType<typeof createApiRuntime>;
let server: Server;
let apiUrl: string;
const received: Received[] = [];

beforeAll(async () => {
  fixture = await startReadFixture({ sites: 1, usersPerDay: 100 });
  site = fixture.sites[0] ?? "";
  runtime = createApiRuntime(fixture.readerEnv, { now: () => fixture.nowMs });
  const serveApp = getRequestListener(runtime.app.fetch);
  server = createServer((req, res) => {
    const headers: Record<string, string> = {};
    for (const [name, value] of Object.entries(req.headers)) {
      if (typeof value === "string") headers[name] = value;
    }
    const url = new URL(req.url ?? "/", `http://${headers.host}`);
    const refused = verifySigV4(
      { method: req.method ?? "", url, headers },
      { ...KEY, region: REGION },
    );
    received.push({
      path: url.pathname,
      authorization: headers.authorization,
      securityToken: headers["x-amz-security-token"],
      refused,
    });
    if (refused) {
      res.writeHead(403, { "content-type": "application/json" }).end('{"Message":"Forbidden"}');
      return;
    }
    void serveApp(req, res);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  apiUrl = `http://127.0.0.1:${listeningPort(server)}/`;
}, 60_000);

afterAll(async () => {
  server?.closeAllConnections();
  await new Promise((resolve) => server?.close(resolve));
  runtime?.close();
  await fixture?.stop();
});

async function cli(
  argv: string[],
  env: Record<string, string>,
  credentials: { accessKeyId: string; secretAccessKey: string; sessionToken?: string } = KEY,
) {
  const { out, io } = captureIo(env);
  const code = await runCli(argv, {
    ...io,
    now: () => fixture.nowMs,
    apiCredentials: credentials,
    signingClock: () => new Date(fixture.nowMs),
  });
  return { code, ...out };
}

const direct = (argv: string[]) => cli(argv, fixture.readerEnv);
const apiEnv = () => ({ ...fixture.readerEnv, API_URL: apiUrl, AWS_REGION: REGION });
const viaApi = (argv: string[]) => cli(argv, apiEnv());

describe("count with API_URL", () => {
  it("prints exactly what the direct path prints, text and --json, from requests signed for lambda", async () => {
    const selections = [
      // Days past the 62-day retention at the start: the warning on stderr must match too.
      ["--from", daysAgo(70, fixture.nowMs), "--to", daysAgo(0, fixture.nowMs)],
      ["--month", daysAgo(20, fixture.nowMs).slice(0, 7)],
      ["--day", daysAgo(3, fixture.nowMs), "--event", "purchase"],
      // Events: days before events were first recorded (the fixture's first day) as well.
      [
        "--from",
        daysAgo(70, fixture.nowMs),
        "--to",
        daysAgo(0, fixture.nowMs),
        "--metric",
        "events",
      ],
    ];
    const before = received.length;
    for (const selection of selections) {
      for (const format of [[], ["--json"]]) {
        const argv = ["count", "--site", site, ...selection, ...format];
        const expected = await direct(argv);
        expect(expected.code, expected.stderr).toBe(0);
        const actual = await viaApi(argv);
        expect(actual.code, actual.stderr).toBe(0);
        expect(actual.stdout).toBe(expected.stdout);
        expect(actual.stderr).toBe(expected.stderr);
      }
    }
    const first = await direct(["count", "--site", site, ...(selections[0] ?? []), "--json"]);
    expect(JSON.parse(first.stdout).keys.length).toBeGreaterThan(2);
    expect(first.stderr).toContain("warning: 8 of the days counted");
    const events = await direct(["count", "--site", site, ...(selections[3] ?? []), "--json"]);
    const counted = JSON.parse(events.stdout);
    expect(counted).toMatchObject({ metric: "events", complete: false });
    expect(counted.keys[0]).toMatch(/^ev:/);
    // 70 to 60 days ago are before the fixture's first day; 70 to 63, past the retention too,
    // are reported once, for the reason that comes first: events were never recorded there.
    expect(counted.notRecorded).toEqual(
      Array.from({ length: 11 }, (_, i) => daysAgo(70 - i, fixture.nowMs)),
    );
    expect(events.stderr).toBe(
      `warning: 11 of the days counted (${daysAgo(70, fixture.nowMs)} to ${daysAgo(60, fixture.nowMs)}) are before events were first recorded (${daysAgo(59, fixture.nowMs)}, as of ${new Date(fixture.eventsSinceMs).toISOString()}): their events are not recorded, so the estimate covers the other days only.\n`,
    );

    const requests = received.slice(before);
    expect(requests).toHaveLength(selections.length * 2);
    for (const request of requests) {
      expect(request.refused).toBeUndefined();
      expect(request.path).toBe(`/v1/sites/${site}/count`);
      expect(request.authorization).toContain(
        `Credential=${KEY.accessKeyId}/${utcDay(fixture.nowMs).replaceAll("-", "")}/${REGION}/lambda/aws4_request`,
      );
      expect(parseAuthorization(request.authorization)?.signedHeaders).toContain(
        "x-amz-security-token",
      );
      expect(request.securityToken).toBe(KEY.sessionToken);
    }
  });

  it("--day today asks the time-zone route first, then counts that day, as the direct path does", async () => {
    for (const format of [[], ["--json"]]) {
      const argv = ["count", "--site", site, "--day", "today", ...format];
      const expected = await direct(argv);
      expect(expected.code, expected.stderr).toBe(0);
      const before = received.length;
      const actual = await viaApi(argv);
      expect(actual.code, actual.stderr).toBe(0);
      expect(actual.stdout).toBe(expected.stdout);
      expect(actual.stderr).toBe(expected.stderr);
      const requests = received.slice(before);
      expect(requests.map((r) => [r.path, r.refused])).toEqual([
        [`/v1/sites/${site}/time-zone`, undefined],
        [`/v1/sites/${site}/count`, undefined],
      ]);
    }
    // The fixture's site has no zone: today is the UTC date of the clock.
    const json = JSON.parse(
      (await viaApi(["count", "--site", site, "--day", "today", "--json"])).stdout,
    );
    expect(json).toMatchObject({ from: daysAgo(0, fixture.nowMs), timeZone: "UTC" });
    expect(json.estimate).toBeGreaterThan(0);
  });

  it("without REDIS_ENDPOINT leaves the redis-cli command out of the text and null in --json", async () => {
    const argv = ["count", "--site", site, "--month", daysAgo(20, fixture.nowMs).slice(0, 7)];
    const env = { API_URL: apiUrl, AWS_REGION: REGION };
    const text = await cli(argv, env);
    expect(text.code, text.stderr).toBe(0);
    expect(text.stdout).not.toContain("redis-cli -c");
    expect(text.stdout).toContain(
      "in one PFCOUNT, through the read API (set REDIS_ENDPOINT as in the stack's cli_env to see the redis-cli command)",
    );
    const json = await cli([...argv, "--json"], env);
    const withEndpoint = await direct([...argv, "--json"]);
    const { redisCli, ...rest } = JSON.parse(json.stdout);
    expect(redisCli).toBeNull();
    const { redisCli: directCommand, ...directRest } = JSON.parse(withEndpoint.stdout);
    expect(directCommand).toMatch(/^redis-cli /);
    expect(rest).toEqual(directRest);
    expect(Object.keys(JSON.parse(json.stdout))).toEqual(
      Object.keys(JSON.parse(withEndpoint.stdout)),
    );
  });

  it("fails with exit 1, saying to check the credentials and the operator policy, when IAM refuses (403)", async () => {
    const before = received.length;
    const result = await cli(
      ["count", "--site", site, "--day", daysAgo(1, fixture.nowMs)],
      apiEnv(),
      { ...KEY, secretAccessKey: "not-the-secret" },
    );
    expect(received.slice(before).map((r) => r.refused)).toEqual(["the signature does not match"]);
    expect(result.code).toBe(1);
    expect(result.stdout).toBe("");
    expect(result.stderr).toMatch(
      /^error: the read API at http:\/\/127\.0\.0\.1:\d+ refused the request \(HTTP 403 Forbidden: \{"Message":"Forbidden"\}\)/,
    );
    expect(result.stderr).toContain("check that your AWS credentials are the ones you mean");
    expect(result.stderr).toContain("operator policy (output operator_policy_arn)");
  });

  it("fails with exit 1 and the API's own message on an API error", async () => {
    const wrongBase = await cli(["count", "--site", site, "--day", daysAgo(1, fixture.nowMs)], {
      ...apiEnv(),
      API_URL: `${apiUrl}nowhere/`,
    });
    expect(wrongBase.code).toBe(1);
    expect(wrongBase.stderr).toBe(
      `error: the read API answered HTTP 404 Not Found (not_found): no route GET /nowhere/v1/sites/${site}/count: see /v1/openapi.json for the routes\n`,
    );

    // An API whose Redis cannot be reached answers 503 with Retry-After.
    const unreachable = await startApiServer(
      { ...fixture.readerEnv, REDIS_ENDPOINT: "127.0.0.1:1", API_REDIS_DEADLINE_MS: "500" },
      { port: 0 },
    );
    try {
      const result = await cli(["count", "--site", site, "--day", daysAgo(1, fixture.nowMs)], {
        ...apiEnv(),
        API_URL: unreachable.url,
      });
      expect(result.code).toBe(1);
      expect(result.stderr).toMatch(
        /^error: the read API answered HTTP 503 Service Unavailable \(unavailable\): .+ \(retry after 5 s\)\n$/,
      );
    } finally {
      await unreachable.close();
    }
  });

  it("rejects a bad range as a usage error (exit 2) before asking the API", async () => {
    const before = received.length;
    const result = await viaApi([
      ...["count", "--site", site],
      ...["--from", daysAgo(1, fixture.nowMs), "--to", daysAgo(5, fixture.nowMs)],
    ]);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain("is before --from");
    expect(received.length).toBe(before);
  });

  it("as a child process signs with the standard credential chain (here, the environment's keys)", async () => {
    const argv = ["count", "--site", site, "--month", daysAgo(20, fixture.nowMs).slice(0, 7)];
    const expected = await direct(argv);
    const before = received.length;
    const { stdout, stderr } = await run("node_modules/.bin/tsx", ["cli/main.ts", ...argv], {
      timeout: 30_000,
      env: {
        PATH: process.env.PATH ?? "",
        ...apiEnv(),
        AWS_ACCESS_KEY_ID: KEY.accessKeyId,
        AWS_SECRET_ACCESS_KEY: KEY.secretAccessKey,
        AWS_SESSION_TOKEN: KEY.sessionToken,
        AWS_CONFIG_FILE: "/nonexistent",
        AWS_SHARED_CREDENTIALS_FILE: "/nonexistent",
      },
    });
    expect(stderr).toBe("");
    expect(stdout).toBe(expected.stdout);
    const [request] = received.slice(before);
    expect(request?.refused).toBeUndefined();
    expect(request?.securityToken).toBe(KEY.sessionToken);
  });
});

describe("the api command", () => {
  it("serves the real app on 127.0.0.1 with --port 0, prints its URL and routes, and stops", async () => {
    let port = 0;
    let answer: unknown;
    const { out, io } = captureIo(fixture.readerEnv);
    const code = await runCli(["api", "--port", "0"], {
      ...io,
      now: () => fixture.nowMs,
      untilStopped: async (running) => {
        port = running.port;
        const month = daysAgo(20, fixture.nowMs).slice(0, 7);
        const response = await fetch(
          `${running.url}/v1/sites/${site}/count?from=${month}-01&to=${month}-10`,
        );
        answer = { status: response.status, body: await response.json() };
        return "test done";
      },
    });
    expect(code, out.stderr).toBe(0);
    expect(port).toBeGreaterThan(0);
    const url = `http://127.0.0.1:${port}`;
    expect(out.stdout).toContain(`read API on ${url} against Redis at ${fixture.cluster.endpoint}`);
    expect(out.stdout).toContain(`GET ${url}/v1/sites/{site}/series`);
    expect(out.stdout).toContain(`GET ${url}/v1/openapi.json`);
    expect(out.stdout).toContain("stopping the read API (test done)");
    const month = daysAgo(20, fixture.nowMs).slice(0, 7);
    const count = await direct([
      ...["count", "--site", site, "--json"],
      ...["--from", `${month}-01`, "--to", `${month}-10`],
    ]);
    expect(answer).toMatchObject({
      status: 200,
      body: { site, estimate: JSON.parse(count.stdout).estimate },
    });
    expect(await portOpen(port), "the port is closed after the command returns").toBe(false);
  });

  it("serves the admin routes too: PUT and DELETE of a site's time zone", async () => {
    const api = await startApiServer(fixture.env, { port: 0, now: () => fixture.nowMs });
    try {
      const zone = `${api.url}/v1/sites/${site}/time-zone`;
      const put = await fetch(zone, {
        method: "PUT",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ timeZone: "Asia/Kathmandu" }),
      });
      expect(put.status).toBe(200);
      expect(await (await fetch(zone)).json()).toEqual({
        site,
        timeZone: "Asia/Kathmandu",
        source: "registry",
      });
      const bad = await fetch(zone, { method: "PUT", body: JSON.stringify({ timeZone: "EST" }) });
      expect(bad.status).toBe(400);
      expect((await fetch(zone, { method: "DELETE" })).status).toBe(200);
      expect(await (await fetch(zone)).json()).toMatchObject({
        timeZone: "UTC",
        source: "default",
      });
    } finally {
      await api.close();
    }
  });

  it("says so when the port is taken (exit 1)", async () => {
    const taken = listeningPort(server);
    const { out, io } = captureIo(fixture.readerEnv);
    const code = await runCli(["api", "--port", String(taken)], io);
    expect(code).toBe(1);
    expect(out.stderr).toBe(
      `error: port ${taken} on 127.0.0.1 is in use: choose another with --port N, or --port 0 for a free one\n`,
    );
  });

  it("runs as `npm run cli -- api --port 0` until SIGTERM, then exits 0 and frees the port", async () => {
    const child: ChildProcess = spawn(
      process.execPath,
      ["--import", "tsx", "cli/main.ts", "api", "--port", "0"],
      {
        env: { PATH: process.env.PATH ?? "", ...fixture.readerEnv },
        stdio: ["ignore", "pipe", "pipe"],
      },
    );
    let stdout = "";
    let stderr = "";
    child.stderr?.on("data", (chunk: Buffer) => {
      stderr += chunk.toString();
    });
    const exited = new Promise<number | null>((resolve) => child.once("exit", resolve));
    try {
      const url = await new Promise<string>((resolve, reject) => {
        const timer = setTimeout(
          () => reject(new Error(`no URL within 20 s: ${stdout}${stderr}`)),
          20_000,
        );
        child.stdout?.on("data", (chunk: Buffer) => {
          stdout += chunk.toString();
          const match = /read API on (http:\/\/127\.0\.0\.1:\d+) /.exec(stdout);
          if (match?.[1]) {
            clearTimeout(timer);
            resolve(match[1]);
          }
        });
      });
      const response = await fetch(`${url}/v1/sites/${site}/events`);
      expect(await response.json()).toEqual({ site, events: ["purchase", "view"] });
      child.kill("SIGTERM");
      expect(await exited, stderr).toBe(0);
      expect(stdout).toContain("stopping the read API (SIGTERM)");
      expect(await portOpen(Number(new URL(url).port))).toBe(false);
    } finally {
      if (child.exitCode === null) child.kill("SIGKILL");
    }
  });
});
