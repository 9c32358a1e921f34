/**
 * `site` (zones and `--delete`) against the shared real Redis Cluster: directly (REDIS_ENDPOINT), and through the admin
 * API (ADMIN_API_URL) served by the real admin app behind what stands in for the function
 * URL's AWS_IAM check: each request's SigV4 signature is verified for service `lambda` with
 * test/cli/sigv4.ts (node:crypto, independent of the client's signer), and the body must be
 * the one whose SHA-256 the signature covers (x-amz-content-sha256, a signed header), else 403
 * {"Message":"Forbidden"}, as IAM answers. What is written is checked in Redis itself.
 */

import { createHash } from "node:crypto";
import { createServer, type Server } from "node:http";
import { Cluster } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runCli } from "../../cli/app.js";
import { DELETION_NOTE, deletionScope, ZONE_CHANGE_NOTE } from "../../cli/site.js";
import { type AdminRuntime, createAdminRuntime } from "../../functions/admin/handler.js";
import { TIME_ZONES_KEY } from "../../functions/domain/keys.js";
import { localClusterEnv } from "../../local/redis-cluster.js";
import { testNowMs, utcDay } from "../helpers/clock.js";
import { redisSeed, uniqueSitePrefix } from "../helpers/env.js";
import { listeningPort } from "../helpers/net.js";
import { seedSite, siteState } from "../helpers/site-data.js";
import { captureIo } from "./capture.js";
import { EMPTY_SHA256, parseAuthorization, verifySigV4 } from "./sigv4.js";

const KEY = {
  accessKeyId: "AKIDTESTADMIN",
  secretAccessKey: "test/admin+secret",
  sessionToken: "admin-session-token",
};
const REGION = "eu-west-1";

interface Received {
  readonly method: string;
  readonly path: string;
  /** The query string, without its `?`. */
  readonly query: string;
  readonly body: string;
  readonly headers: Readonly<Record<string, string>>;
  /** Why the request was refused; undefined when it verified. */
  readonly refused: string | undefined;
}

const sha256 = (text: string) => createHash("sha256").update(text).digest("hex");

let redis: Cluster;
let env: Record<string, string>;
let runtime: AdminRuntime;
let server: Server;
let adminUrl: string;
const received: Received[] = [];
/** When set, the server swaps the body for this one (and its hash header) before checking. */
let tamperWith: string | undefined;
/** When set, DELETE requests after this many answer 503, as the admin API does past its deadline. */
let deletesBefore503: number | undefined;
const prefix = uniqueSitePrefix();

beforeAll(async () => {
  const seed = redisSeed();
  redis = new Cluster([seed]);
  env = localClusterEnv(`${seed.host}:${seed.port}`);
  // A deletion answers after every page, as a long one does: the CLI follows the cursors.
  runtime = createAdminRuntime(env, { deletionBudgetMs: 0 });
  server = createServer(async (req, res) => {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    let body = Buffer.concat(chunks).toString("utf8");
    const headers: Record<string, string> = {};
    for (const [name, value] of Object.entries(req.headers)) {
      if (typeof value === "string") headers[name] = value;
    }
    if (tamperWith !== undefined && body !== "") {
      // A body changed on the way, with a hash header to match: only the signature can tell.
      body = tamperWith;
      headers["x-amz-content-sha256"] = sha256(body);
    }
    const url = new URL(req.url ?? "/", `http://${headers.host}`);
    const signed = parseAuthorization(headers.authorization)?.signedHeaders ?? [];
    const refused =
      verifySigV4({ method: req.method ?? "", url, headers }, { ...KEY, region: REGION }) ??
      (signed.includes("x-amz-content-sha256") ? undefined : "the body's hash is not signed") ??
      ((headers["x-amz-content-sha256"] ?? EMPTY_SHA256) === sha256(body)
        ? undefined
        : "the body is not the one whose hash was signed");
    received.push({
      method: req.method ?? "",
      path: url.pathname,
      query: url.search.slice(1),
      body,
      headers,
      refused,
    });
    if (refused) {
      res.writeHead(403, { "content-type": "application/json" }).end('{"Message":"Forbidden"}');
      return;
    }
    if (req.method === "DELETE" && deletesBefore503 !== undefined && deletesBefore503-- <= 0) {
      res
        .writeHead(503, { "content-type": "application/json", "retry-after": "5" })
        .end(
          '{"error":"unavailable","message":"Redis did not answer within 3000 ms: try again shortly"}',
        );
      return;
    }
    // The body was read here, so the app gets it in a Request of its own.
    const answer = await runtime.app.fetch(
      new Request(url, {
        method: req.method ?? "GET",
        headers,
        ...(body === "" ? {} : { body }),
      }),
    );
    res.writeHead(answer.status, Object.fromEntries(answer.headers)).end(await answer.text());
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  adminUrl = `http://127.0.0.1:${listeningPort(server)}/`;
});

afterAll(async () => {
  server?.closeAllConnections();
  await new Promise((resolve) => server?.close(resolve));
  runtime?.close();
  redis?.disconnect();
});

async function cli(argv: string[], cliEnv: Record<string, string>) {
  const { out, io } = captureIo(cliEnv);
  const code = await runCli(argv, {
    ...io,
    apiCredentials: KEY,
    signingClock: () => new Date(testNowMs()),
    // Directly through Redis too, a deletion reports progress after every page.
    deletionStepMs: 0,
  });
  return { code, ...out };
}

const direct = (argv: string[]) => cli(argv, env);
/** Only what the admin path needs: no REDIS_ENDPOINT. */
const viaAdminApi = (argv: string[]) => cli(argv, { ADMIN_API_URL: adminUrl, AWS_REGION: REGION });

describe.each([
  ["directly through Redis", direct],
  ["through ADMIN_API_URL", viaAdminApi],
] as const)("site %s", (how, site) => {
  const id = `${prefix}${how === "through ADMIN_API_URL" ? "api" : "direct"}`;

  it("reads UTC by default, sets a zone, reads it back, and goes back to UTC with --utc", async () => {
    expect(await site(["site", "--site", id])).toEqual({
      code: 0,
      stdout: `site ${id}: UTC, the default (no entry in the zone registry)\n`,
      stderr: "",
    });
    expect(await site(["site", "--site", id, "--json"])).toMatchObject({
      code: 0,
      stdout: `${JSON.stringify({ site: id, timeZone: "UTC", source: "default" })}\n`,
    });

    const set = await site(["site", "--site", id, "--time-zone", "Europe/Paris"]);
    expect(set).toEqual({
      code: 0,
      stdout: `site ${id}: Europe/Paris (set in the zone registry), was UTC (the default)\n${ZONE_CHANGE_NOTE}\n`,
      stderr: "",
    });
    expect(ZONE_CHANGE_NOTE).toMatch(/events ingested from now on.*within 60 s/);
    expect(ZONE_CHANGE_NOTE).toMatch(/Keys already written keep their labels.*never rewritten/);
    expect(await redis.hget(TIME_ZONES_KEY, id)).toBe("Europe/Paris");
    expect((await site(["site", "--site", id])).stdout).toBe(
      `site ${id}: Europe/Paris (set in the zone registry)\n`,
    );

    const again = await site(["site", "--site", id, "--time-zone", "Europe/Paris", "--json"]);
    expect(again.code).toBe(0);
    expect(JSON.parse(again.stdout)).toEqual({
      site: id,
      timeZone: "Europe/Paris",
      source: "registry",
      previous: { timeZone: "Europe/Paris", source: "registry" },
      changed: false,
    });
    expect(again.stderr).toBe("");

    const moved = await site(["site", "--site", id, "--time-zone", "Asia/Kathmandu", "--json"]);
    expect(JSON.parse(moved.stdout)).toEqual({
      site: id,
      timeZone: "Asia/Kathmandu",
      source: "registry",
      previous: { timeZone: "Europe/Paris", source: "registry" },
      changed: true,
    });
    expect(moved.stderr).toBe(`${ZONE_CHANGE_NOTE}\n`);

    const utc = await site(["site", "--site", id, "--utc"]);
    expect(utc).toEqual({
      code: 0,
      stdout: `site ${id}: UTC, the default (no entry in the zone registry), was Asia/Kathmandu\n${ZONE_CHANGE_NOTE}\n`,
      stderr: "",
    });
    expect(await redis.hexists(TIME_ZONES_KEY, id)).toBe(0);
    expect((await site(["site", "--site", id, "--utc"])).stdout).toBe(
      `site ${id}: already UTC, the default (no entry in the zone registry); nothing changed\n`,
    );
  });

  it("refuses a bad zone name or flags as a usage error (exit 2) and writes nothing", async () => {
    await redis.hset(TIME_ZONES_KEY, `${id}-bad`, "Asia/Tokyo");
    const before = received.length;
    const cases: [string[], RegExp][] = [
      [
        ["--time-zone", "EST"],
        /--time-zone: time zone "EST" is not an Area\/Location name.*Europe\/Paris/,
      ],
      [
        ["--time-zone", "+05:30"],
        /--time-zone: time zone "\+05:30" is a UTC offset.*Europe\/Paris/,
      ],
      [["--time-zone", "europe/paris"], /not in its canonical case: write Europe\/Paris/],
      [["--time-zone", "Europe/Paris", "--utc"], /give --time-zone Z to set a zone or --utc/],
    ];
    for (const [flags, message] of cases) {
      const result = await site(["site", "--site", `${id}-bad`, ...flags]);
      expect(result.code, flags.join(" ")).toBe(2);
      expect(result.stdout).toBe("");
      expect(result.stderr).toMatch(message);
      expect(result.stderr).toContain("Usage: npm run cli -- <command>");
    }
    const noSite = await site(["site", "--time-zone", "Europe/Paris"]);
    expect(noSite.code).toBe(2);
    expect(noSite.stderr).toMatch(/^error: site: --site is required/);
    expect((await site(["site", "--site", "a:b"])).code).toBe(2);
    expect(await redis.hget(TIME_ZONES_KEY, `${id}-bad`)).toBe("Asia/Tokyo");
    expect(received.length, "nothing is sent for a usage error").toBe(before);
  });

  it("--delete --yes deletes all of the site's data and nothing of a similar id, with progress; again, nothing", async () => {
    const gone = `${id}-gone`;
    const neighbour = `${id}-gone1`;
    const seeded = await seedSite(redis, gone, "Europe/Paris");
    await seedSite(redis, neighbour, "Asia/Tokyo");
    const neighbourBefore = await siteState(redis, neighbour);
    const before = received.length;

    const result = await site(["site", "--site", gone, "--delete", "--yes"]);
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout).toBe(
      `site ${gone}: deleted ${seeded.keys.length} keys, 3 site-index members, 6 touched and 2 pending rollup members and its time-zone entry\n`,
    );
    const lines = result.stderr.trimEnd().split("\n");
    expect(lines.at(-1)).toBe(DELETION_NOTE);
    const progress = lines.slice(0, -1);
    expect(progress.length).toBeGreaterThanOrEqual(4);
    for (const line of progress) {
      expect(line).toMatch(
        new RegExp(
          `^site ${gone}: deleting\\.\\.\\. \\d+ pages so far, deleted \\d+ keys, \\d+ site-index members, \\d+ touched and \\d+ pending rollup members$`,
        ),
      );
    }
    expect(progress.at(-1)).toContain(`deleted ${seeded.keys.length} keys`);
    const after = await siteState(redis, gone);
    expect([...after.keys.keys()]).toEqual([]);
    expect(after).toMatchObject({ index: [], touched: [], pending: [], timeZone: null });
    expect(await siteState(redis, neighbour)).toEqual(neighbourBefore);
    if (how === "through ADMIN_API_URL") {
      // One signed DELETE per step, confirmed, each after the first resuming from a cursor.
      const requests = received.slice(before);
      expect(requests.length).toBe(progress.length + 1);
      requests.forEach((request, i) => {
        expect(request.refused).toBeUndefined();
        expect([request.method, request.path]).toEqual(["DELETE", `/v1/sites/${gone}`]);
        const query = new URLSearchParams(request.query);
        expect(query.get("confirm")).toBe(gone);
        expect(query.has("cursor")).toBe(i > 0);
      });
    }

    const again = await site(["site", "--site", gone, "--delete", "--yes", "--json"]);
    expect(again.code).toBe(0);
    expect(JSON.parse(again.stdout)).toMatchObject({
      site: gone,
      deleted: { keys: 0, siteIndex: 0, touched: 0, pending: 0, timeZone: 0 },
    });
    expect(again.stderr).not.toContain(DELETION_NOTE);
    const text = await site(["site", "--site", gone, "--delete", "--yes"]);
    expect(text.stdout).toBe(
      `site ${gone}: nothing to delete (no key, no index, touched or pending member, no time-zone entry)\n`,
    );
  });

  it("refuses --delete without --yes, or with a zone flag, as a usage error that says what it would delete", async () => {
    const kept = `${id}-kept`;
    await seedSite(redis, kept, "Europe/Paris");
    const stateBefore = await siteState(redis, kept);
    const before = received.length;
    const noYes = await site(["site", "--site", kept, "--delete"]);
    expect(noYes.code).toBe(2);
    expect(noYes.stdout).toBe("");
    expect(noYes.stderr).toContain(
      `error: site: --delete removes ${deletionScope(kept)}. It cannot be undone: add --yes to delete`,
    );
    expect(deletionScope(kept)).toMatch(
      /every key of site .* both metrics.*site index.*touched and pending.*time-zone entry/,
    );
    expect(noYes.stderr).toContain("Usage: npm run cli -- <command>");
    const cases: [string[], RegExp][] = [
      [["--yes"], /--yes confirms --delete and does nothing alone/],
      [["--delete", "--yes", "--utc"], /give --delete alone, not with --utc/],
      [["--delete", "--yes", "--time-zone", "UTC"], /give --delete alone, not with --time-zone/],
    ];
    for (const [flags, message] of cases) {
      const result = await site(["site", "--site", kept, ...flags]);
      expect(result.code, flags.join(" ")).toBe(2);
      expect(result.stderr).toMatch(message);
    }
    expect(received.length, "nothing is sent for a usage error").toBe(before);
    expect(await siteState(redis, kept)).toEqual(stateBefore);
  });
});

describe("site through ADMIN_API_URL", () => {
  it("signs every request for lambda, and a PUT's body by its SHA-256", async () => {
    const id = `${prefix}signed`;
    const before = received.length;
    const result = await viaAdminApi(["site", "--site", id, "--time-zone", "America/St_Johns"]);
    expect(result.code, result.stderr).toBe(0);
    const requests = received.slice(before);
    expect(requests.map((r) => [r.method, r.path])).toEqual([
      ["GET", `/v1/sites/${id}/time-zone`],
      ["PUT", `/v1/sites/${id}/time-zone`],
    ]);
    for (const request of requests) {
      expect(request.refused).toBeUndefined();
      const auth = parseAuthorization(request.headers.authorization);
      expect(auth).toMatchObject({
        accessKeyId: KEY.accessKeyId,
        day: utcDay(testNowMs()).replaceAll("-", ""),
        region: REGION,
        service: "lambda",
      });
      expect(auth?.signedHeaders).toEqual(
        expect.arrayContaining([
          "host",
          "x-amz-content-sha256",
          "x-amz-date",
          "x-amz-security-token",
        ]),
      );
      expect(request.headers["x-amz-security-token"]).toBe(KEY.sessionToken);
    }
    const [get, put] = requests;
    expect(get?.body).toBe("");
    expect(get?.headers["x-amz-content-sha256"]).toBe(EMPTY_SHA256);
    expect(JSON.parse(put?.body ?? "")).toEqual({ timeZone: "America/St_Johns" });
    expect(put?.headers["x-amz-content-sha256"]).toBe(sha256(put?.body ?? ""));
    expect(put?.headers["content-type"]).toBe("application/json; charset=utf-8");
    expect(parseAuthorization(put?.headers.authorization)?.signedHeaders).toContain("content-type");
    expect(await redis.hget(TIME_ZONES_KEY, id)).toBe("America/St_Johns");
  });

  it("is refused (exit 1, naming the admin policy) when the body is not the one signed", async () => {
    const id = `${prefix}tampered`;
    const before = received.length;
    tamperWith = JSON.stringify({ timeZone: "Asia/Tokyo" });
    let result: Awaited<ReturnType<typeof viaAdminApi>>;
    try {
      result = await viaAdminApi(["site", "--site", id, "--time-zone", "Europe/Paris"]);
    } finally {
      tamperWith = undefined;
    }
    expect(received.slice(before).map((r) => [r.method, r.refused])).toEqual([
      ["GET", undefined],
      ["PUT", "the signature does not match"],
    ]);
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(
      /^error: the admin API at http:\/\/127\.0\.0\.1:\d+ refused the request \(HTTP 403 Forbidden: \{"Message":"Forbidden"\}\)/,
    );
    expect(result.stderr).toContain("the stack's admin policy (output admin_policy_arn)");
    expect(await redis.hexists(TIME_ZONES_KEY, id)).toBe(0);
  });

  it("a deletion that fails midway says how far it got and to run it again, which finishes it", async () => {
    const id = `${prefix}midway`;
    const seeded = await seedSite(redis, id, "Europe/Paris");
    deletesBefore503 = 2;
    let failed: Awaited<ReturnType<typeof viaAdminApi>>;
    try {
      failed = await viaAdminApi(["site", "--site", id, "--delete", "--yes"]);
    } finally {
      deletesBefore503 = undefined;
    }
    expect(failed.code).toBe(1);
    expect(failed.stderr).toMatch(
      new RegExp(
        `error: the admin API answered HTTP 503 .*\\(unavailable\\): Redis did not answer within 3000 ms: try again shortly \\(retry after 5 s\\)\\. The deletion of site ${id} stopped after 2 pages \\(deleted \\d+ keys, \\d+ site-index members, \\d+ touched and \\d+ pending rollup members\\): run the same command again to finish it; a deletion is idempotent\n$`,
      ),
    );
    const again = await viaAdminApi(["site", "--site", id, "--delete", "--yes", "--json"]);
    expect(again.code, again.stderr).toBe(0);
    const { deleted } = JSON.parse(again.stdout) as { deleted: { keys: number } };
    expect(deleted.keys).toBe(seeded.keys.length);
    expect((await siteState(redis, id)).keys.size).toBe(0);
  });

  it("says which variable to fix when ADMIN_API_URL is not a URL (exit 1)", async () => {
    const result = await cli(["site", "--site", `${prefix}x`], { ADMIN_API_URL: "not a url" });
    expect(result).toEqual({
      code: 1,
      stdout: "",
      stderr: `error: ADMIN_API_URL="not a url" is not a URL: use the stack's admin_api_url output, e.g. https://abc123.lambda-url.eu-west-1.on.aws/\n`,
    });
  });
});
