/**
 * The admin API (functions/admin/) against a real local Redis Cluster with the stack's ACL
 * users: the app connects as the registry-writer user, as the admin function does in AWS, and
 * the read API as the reader. What is written (and deleted) is checked in Redis itself, as the
 * default user. The ACL boundary is checked with raw commands: the registry-writer user writes
 * the registry and deletes a site's keys and bookkeeping members, and reads no count, writes no
 * count and touches no other key; the reader may read the registry and not write it.
 */

import { type AddressInfo, createServer, type Socket } from "node:net";
import type { Logger } from "@aws-lambda-powertools/logger";
import { serve } from "@hono/node-server";
import { Validator } from "@seriousme/openapi-schema-validator";
import { handle } from "hono/aws-lambda";
import { Cluster } from "ioredis";
import * as v from "valibot";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runCli } from "../../cli/app.js";
import { AdminErrorBody } from "../../functions/admin/app.js";
import { type AdminRuntime, createAdminRuntime, handler } from "../../functions/admin/handler.js";
import { addCounts, NO_COUNTS, SiteDeletionBody } from "../../functions/admin/offboard.js";
import { type ApiRuntime, createApiRuntime } from "../../functions/api/handler.js";
import { ErrorBody, TimeZoneBody } from "../../functions/api/schemas.js";
import { ACL_RULES } from "../../functions/domain/acl.js";
import {
  AS_OF_KEY,
  groupOfSite,
  LEGACY_PENDING_KEY,
  LEGACY_SITES_KEY,
  LEGACY_TOUCHED_KEY,
  LEGACY_WORK_KEY,
  LOCK_KEY,
  pendingKey,
  siteEventTypesKey,
  sitesKey,
  TIME_ZONES_KEY,
  touchedKey,
  workKey,
} from "../../functions/domain/keys.js";
import { TIME_ZONE_EXAMPLE } from "../../functions/domain/time-zones.js";
import { lambdaContext } from "../../local/lambda-context.js";
import {
  localClusterEnv,
  type RunningRedisCluster,
  startRedisCluster,
} from "../../local/redis-cluster.js";
import { captureIo } from "../cli/capture.js";
import { testNowMs } from "../helpers/clock.js";
import { uniqueSitePrefix } from "../helpers/env.js";
import { functionUrlEvent } from "../helpers/function-url.js";
import { type SeededSite, seedSite, siteState } from "../helpers/site-data.js";

const WRITER = { name: "registry-writer", password: `w-${Math.random().toString(36).slice(2)}` };
const READER = { name: "reader", password: `r-${Math.random().toString(36).slice(2)}` };

let cluster: RunningRedisCluster;
/** The default user: what is really in Redis. */
let admin: Cluster;
let writerEnv: Record<string, string>;
let readerEnv: Record<string, string>;
let adminApi: AdminRuntime;
let readApi: ApiRuntime;
const prefix = uniqueSitePrefix();

function userEnv(user: { name: string; password: string }): Record<string, string> {
  return {
    ...localClusterEnv(cluster.endpoint),
    REDIS_AUTH: "password",
    REDIS_USER: user.name,
    REDIS_PASSWORD: user.password,
  };
}

function clusterAs(user: { name: string; password: string }): Cluster {
  return new Cluster([{ host: "127.0.0.1", port: cluster.port }], {
    redisOptions: { username: user.name, password: user.password },
  });
}

beforeAll(async () => {
  cluster = await startRedisCluster({
    primaries: 3,
    users: [
      { ...WRITER, rules: ACL_RULES.registryWriter },
      { ...READER, rules: ACL_RULES.reader },
    ],
  });
  admin = new Cluster([{ host: "127.0.0.1", port: cluster.port }]);
  writerEnv = userEnv(WRITER);
  readerEnv = userEnv(READER);
  adminApi = createAdminRuntime(writerEnv);
  readApi = createApiRuntime(readerEnv, { now: testNowMs });
}, 60_000);

afterAll(async () => {
  adminApi?.close();
  readApi?.close();
  admin?.disconnect();
  await cluster?.stop();
});

async function call(
  app: { request: (path: string, init?: RequestInit) => Response | Promise<Response> },
  method: string,
  path: string,
  body?: string,
): Promise<{ status: number; body: unknown; headers: Headers }> {
  const response = await app.request(path, {
    method,
    ...(body === undefined ? {} : { body, headers: { "content-type": "application/json" } }),
  });
  return { status: response.status, body: await response.json(), headers: response.headers };
}

const zonePath = (site: string) => `/v1/sites/${site}/time-zone`;
const put = (site: string, body: string) => call(adminApi.app, "PUT", zonePath(site), body);
const sitePath = (site: string, query = "") => `/v1/sites/${site}${query ? `?${query}` : ""}`;

/** What deleting a seeded site must report. */
function countsOf(seeded: SeededSite) {
  return {
    keys: seeded.keys.length,
    siteIndex: seeded.index.length,
    touched: seeded.touched.length,
    pending: seeded.pending.length,
    timeZone: 1,
  };
}

describe("the admin API as the registry-writer user", () => {
  it("sets, reads and removes a site's zone, and the read API answers the same", async () => {
    const site = `${prefix}set`;
    const asRead = async () =>
      v.parse(TimeZoneBody, (await call(readApi.app, "GET", zonePath(site))).body);
    const asAdmin = async () => (await call(adminApi.app, "GET", zonePath(site))).body;

    const initial = { site, timeZone: "UTC", source: "default" };
    expect(await asAdmin()).toEqual(initial);
    expect(await asRead()).toEqual(initial);

    const set = await put(site, JSON.stringify({ timeZone: "Europe/Paris" }));
    expect(set.status, JSON.stringify(set.body)).toBe(200);
    expect(set.headers.get("cache-control")).toBe("no-store");
    const paris = { site, timeZone: "Europe/Paris", source: "registry" };
    expect(set.body).toEqual(paris);
    expect(await admin.hget(TIME_ZONES_KEY, site)).toBe("Europe/Paris");
    expect(await asAdmin()).toEqual(paris);
    expect(await asRead()).toEqual(paris);

    // A name Intl.supportedValuesOf omits (DESIGN.md) is accepted, and replaces the entry.
    const kathmandu = await put(site, JSON.stringify({ timeZone: "Asia/Kathmandu" }));
    expect(kathmandu.body).toEqual({ site, timeZone: "Asia/Kathmandu", source: "registry" });
    expect(await admin.hget(TIME_ZONES_KEY, site)).toBe("Asia/Kathmandu");

    const removed = await call(adminApi.app, "DELETE", zonePath(site));
    expect(removed.status).toBe(200);
    expect(removed.body).toEqual(initial);
    expect(await admin.hexists(TIME_ZONES_KEY, site)).toBe(0);
    expect(await asRead()).toEqual(initial);
    // Removing what is not there is not an error: the site is on UTC either way.
    expect((await call(adminApi.app, "DELETE", zonePath(site))).body).toEqual(initial);
  });

  it("refuses a bad zone name with 400 naming a valid example, and writes nothing", async () => {
    const site = `${prefix}bad`;
    const fresh = `${prefix}fresh`;
    await admin.hset(TIME_ZONES_KEY, site, "Asia/Tokyo");
    const cases: [string, RegExp][] = [
      [JSON.stringify({ timeZone: "EST" }), /"EST" is not an Area\/Location name.*Europe\/Paris/],
      [JSON.stringify({ timeZone: "+05:30" }), /"\+05:30" is a UTC offset.*Europe\/Paris/],
      [
        JSON.stringify({ timeZone: "europe/paris" }),
        /"europe\/paris" is not in its canonical case: write Europe\/Paris/,
      ],
      [JSON.stringify({ timeZone: 5 }), /^timeZone: timeZone must be a string.*Europe\/Paris/],
      [JSON.stringify({}), /^timeZone is required$/],
      [JSON.stringify({ timeZone: "UTC", zone: "x" }), /^unknown parameter "zone"/],
      ["Europe/Paris", /^the body must be JSON such as \{"timeZone":"Europe\/Paris"\}$/],
      ["", /^the body must be JSON/],
    ];
    for (const target of [site, fresh]) {
      for (const [body, message] of cases) {
        const answer = await put(target, body);
        expect(answer.status, body).toBe(400);
        const error = v.parse(AdminErrorBody, answer.body);
        expect(error.error).toBe("invalid_request");
        expect(error.message, body).toMatch(message);
      }
    }
    expect(await admin.hget(TIME_ZONES_KEY, site)).toBe("Asia/Tokyo");
    expect(await admin.hexists(TIME_ZONES_KEY, fresh)).toBe(0);
    expect(TIME_ZONE_EXAMPLE).toBe("Europe/Paris");

    const badSite = await put("a:b", JSON.stringify({ timeZone: "Europe/Paris" }));
    expect(badSite.status).toBe(400);
    expect(v.parse(AdminErrorBody, badSite.body).message).toMatch(/site "a:b" is not a site id/);
  });

  it("deletes a site's data only with confirm={site}, all of it, and nothing of a site with a similar id", async () => {
    const site = `${prefix}gone`;
    const neighbour = `${prefix}gone1`;
    const seeded = await seedSite(admin, site, "Europe/Paris");
    await seedSite(admin, neighbour, "Asia/Tokyo");
    const before = await siteState(admin, site);
    const neighbourBefore = await siteState(admin, neighbour);

    const refusals: [string, RegExp][] = [
      [
        "",
        /^confirm is required: deleting site \S+ removes all of its counts and cannot be undone; to go ahead, add \?confirm=\S+$/,
      ],
      [`confirm=${neighbour}`, /^confirm "\S+" is not the site id: .*add \?confirm=/],
      [
        `confirm=${site}&cursor=keys:x`,
        /^cursor: cursor "keys:x" is not a deletion cursor: pass back the cursor the previous answer gave/,
      ],
      [`confirm=${site}&force=1`, /^unknown parameter "force"/],
    ];
    for (const [query, message] of refusals) {
      const answer = await call(adminApi.app, "DELETE", sitePath(site, query));
      expect(answer.status, query).toBe(400);
      const error = v.parse(AdminErrorBody, answer.body);
      expect(error.error).toBe("invalid_request");
      expect(error.message, query).toMatch(message);
    }
    expect(await siteState(admin, site), "a refused request deletes nothing").toEqual(before);

    const deleted = await call(adminApi.app, "DELETE", sitePath(site, `confirm=${site}`));
    expect(deleted.status, JSON.stringify(deleted.body)).toBe(200);
    expect(deleted.headers.get("cache-control")).toBe("no-store");
    const body = v.parse(SiteDeletionBody, deleted.body);
    expect(body).toMatchObject({ site, deleted: countsOf(seeded), cursor: null });
    const after = await siteState(admin, site);
    expect([...after.keys.keys()]).toEqual([]);
    expect(after).toMatchObject({ index: [], touched: [], pending: [], timeZone: null });
    expect(await siteState(admin, neighbour)).toEqual(neighbourBefore);

    // Again: nothing left to delete.
    const again = await call(adminApi.app, "DELETE", sitePath(site, `confirm=${site}`));
    expect(v.parse(SiteDeletionBody, again.body).deleted).toEqual(NO_COUNTS);
  });

  it("deletes a large site in steps: each answer's cursor resumes it, to the same total", async () => {
    const site = `${prefix}steps`;
    const seeded = await seedSite(admin, site, "UTC");
    const stepping = createAdminRuntime(writerEnv, { deletionBudgetMs: 0 });
    try {
      let total = NO_COUNTS;
      let cursor: string | null = null;
      let requests = 0;
      do {
        const query: string = `confirm=${site}${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ""}`;
        const answer = await call(stepping.app, "DELETE", sitePath(site, query));
        expect(answer.status, JSON.stringify(answer.body)).toBe(200);
        const step = v.parse(SiteDeletionBody, answer.body);
        expect(step.pages).toBe(1);
        total = addCounts(total, step.deleted);
        cursor = step.cursor;
        requests += 1;
        expect(requests).toBeLessThan(1000);
      } while (cursor !== null);
      expect(requests).toBeGreaterThanOrEqual(5);
      expect(total).toEqual(countsOf(seeded));
      expect((await siteState(admin, site)).keys.size).toBe(0);
    } finally {
      stepping.close();
    }
  });

  it("answers another method on its path with 405 and Allow, an unknown route with 404", async () => {
    const post = await call(adminApi.app, "POST", zonePath(`${prefix}x`), "{}");
    expect(post.status).toBe(405);
    expect(post.headers.get("allow")).toBe("GET, PUT, DELETE");
    expect(v.parse(AdminErrorBody, post.body)).toEqual({
      error: "method_not_allowed",
      message:
        "POST is not allowed on /v1/sites/{site}/time-zone: use GET, PUT, DELETE (see /v1/openapi.json)",
    });
    const getSite = await call(adminApi.app, "GET", sitePath(`${prefix}x`));
    expect(getSite.status).toBe(405);
    expect(getSite.headers.get("allow")).toBe("DELETE");
    // The admin API has no read route besides the zone.
    const count = await call(adminApi.app, "GET", `/v1/sites/${prefix}x/count`);
    expect(count.status).toBe(404);
    expect(v.parse(AdminErrorBody, count.body).error).toBe("not_found");
  });

  it("serves an OpenAPI 3.1 document that validates and names its routes", async () => {
    const doc = (await call(adminApi.app, "GET", "/v1/openapi.json")).body as {
      paths: Record<
        string,
        Record<string, { requestBody?: unknown; parameters?: { name: string; in: string }[] }>
      >;
    };
    const result = await new Validator().validate(doc);
    expect(result.errors ?? []).toEqual([]);
    expect(Object.keys(doc.paths)).toEqual(["/v1/sites/{site}/time-zone", "/v1/sites/{site}"]);
    const operations = doc.paths["/v1/sites/{site}/time-zone"] ?? {};
    expect(Object.keys(operations)).toEqual(["get", "put", "delete"]);
    expect(JSON.stringify(operations.put?.requestBody)).toContain('"timeZone"');
    const deletion = doc.paths["/v1/sites/{site}"]?.delete;
    expect(deletion?.parameters?.map((p) => `${p.in} ${p.name}`)).toEqual([
      "path site",
      "query confirm",
      "query cursor",
    ]);
    expect(JSON.stringify(deletion)).toMatch(/cannot be undone/i);
  });

  it("answers 503 with Retry-After within the deadline when Redis accepts but never answers", async () => {
    const sockets = new Set<Socket>();
    const silent = createServer((socket) => sockets.add(socket));
    await new Promise<void>((resolve) => silent.listen(0, "127.0.0.1", resolve));
    const { port } = silent.address() as AddressInfo;
    const stuck = createAdminRuntime({
      ...writerEnv,
      REDIS_ENDPOINT: `127.0.0.1:${port}`,
      API_REDIS_DEADLINE_MS: "300",
    });
    try {
      const started = performance.now();
      const answer = await call(
        stuck.app,
        "PUT",
        zonePath(`${prefix}stuck`),
        JSON.stringify({ timeZone: "Europe/Paris" }),
      );
      expect(answer.status).toBe(503);
      expect(answer.headers.get("retry-after")).toBe("5");
      expect(answer.body).toEqual({
        error: "unavailable",
        message: "Redis did not answer within 300 ms: try again shortly",
      });
      expect(performance.now() - started).toBeLessThan(300 + 1500);
    } finally {
      stuck.close();
      for (const socket of sockets) socket.destroy();
      await new Promise((resolve) => silent.close(resolve));
    }
  });
});

describe("the ACL users", () => {
  it("the registry-writer user writes the registry, deletes a site's keys and members, and nothing else", async () => {
    const writer = clusterAs(WRITER);
    const site = `${prefix}acl`;
    try {
      // It can do what the admin app does (so the refusals below are the ACL, not the login).
      expect(await writer.hset(TIME_ZONES_KEY, site, "Europe/Paris")).toBe(1);
      expect(await writer.hget(TIME_ZONES_KEY, site)).toBe("Europe/Paris");
      expect(await writer.hdel(TIME_ZONES_KEY, site)).toBe(1);
      const dayKey = `uv:{site_id=${site}}:2031-06-15`;
      const eventsKey = `ev:{site_id=${site}}:event=view:2031-W24`;
      const eventTypes = siteEventTypesKey(site);
      await admin.pfadd(dayKey, "someone");
      await admin.pfadd(eventsKey, "event-1");
      await admin.sadd(eventTypes, "view");
      // The site's group's sets, and the single-slot sets of older versions (until drained).
      const group = groupOfSite(site);
      await admin.sadd(sitesKey(group), site);
      await admin.sadd(touchedKey(group), `${site}|2031-06-15`);
      await admin.sadd(pendingKey(group), `${site}|2031-06-14`);
      await admin.sadd(LEGACY_SITES_KEY, site);
      await admin.sadd(LEGACY_TOUCHED_KEY, `${site}|2031-06-13`);
      await admin.sadd(LEGACY_PENDING_KEY, `${site}|2031-06-12`);
      const refused: [string, () => Promise<unknown>][] = [
        ["PFADD uv:", () => writer.pfadd(dayKey, "intruder")],
        ["PFCOUNT uv:", () => writer.pfcount(dayKey)],
        ["PFCOUNT ev:", () => writer.pfcount(eventsKey)],
        ["GET uv:", () => writer.get(dayKey)],
        ["EXISTS uv:", () => writer.exists(dayKey)],
        ["DUMP uv:", () => writer.dump(dayKey)],
        ["SMEMBERS event types", () => writer.smembers(eventTypes)],
        ["SADD the site index", () => writer.sadd(sitesKey(group), "forged")],
        ["SMEMBERS the site index", () => writer.smembers(sitesKey(group))],
        ["SADD the touched set", () => writer.sadd(touchedKey(group), "forged|2031-06-15")],
        ["SADD the legacy site index", () => writer.sadd(LEGACY_SITES_KEY, "forged")],
        ["SET", () => writer.set(`sketchstream:{config}:other`, "x")],
        ["HSET another key", () => writer.hset("sketchstream:{config}:settings", site, "x")],
        ["UNLINK another key", () => writer.unlink("sketchstream:{config}:settings")],
        ["UNLINK as-of", () => writer.unlink(AS_OF_KEY)],
        ["UNLINK the rollup lock", () => writer.unlink(LOCK_KEY)],
        ["UNLINK the rollup work", () => writer.unlink(workKey(group))],
        ["UNLINK the legacy rollup work", () => writer.unlink(LEGACY_WORK_KEY)],
        ["UNLINK a key of no family", () => writer.unlink(`x:{site_id=${site}}:2031-06-15`)],
        ["DEL uv:", () => writer.del(dayKey)],
        ["DEL the registry", () => writer.del(TIME_ZONES_KEY)],
        ["HGETALL the registry", () => writer.hgetall(TIME_ZONES_KEY)],
        ["KEYS", () => writer.call("KEYS", "*")],
        ["FLUSHALL", () => writer.flushall()],
      ];
      for (const [name, command] of refused) {
        await expect(command(), name).rejects.toThrow(/NOPERM/);
      }
      expect(await admin.pfcount(dayKey)).toBe(1);
      expect(await admin.exists("sketchstream:{config}:settings")).toBe(0);
      expect(await admin.sismember(sitesKey(group), "forged")).toBe(0);

      // What a deletion does, command by command.
      const slot = await writer.cluster("KEYSLOT", eventTypes);
      expect(slot).toBe(await admin.cluster("KEYSLOT", dayKey));
      const [, found] = await writer.sscan(sitesKey(group), "0", "MATCH", site, "COUNT", 1000);
      expect(found).toEqual([site]);
      expect(await writer.srem(sitesKey(group), site)).toBe(1);
      expect(await writer.srem(touchedKey(group), `${site}|2031-06-15`)).toBe(1);
      expect(await writer.srem(pendingKey(group), `${site}|2031-06-14`)).toBe(1);
      const [, foundBefore] = await writer.sscan(LEGACY_SITES_KEY, "0", "MATCH", site);
      expect(foundBefore).toEqual([site]);
      expect(await writer.srem(LEGACY_SITES_KEY, site)).toBe(1);
      expect(await writer.srem(LEGACY_TOUCHED_KEY, `${site}|2031-06-13`)).toBe(1);
      expect(await writer.srem(LEGACY_PENDING_KEY, `${site}|2031-06-12`)).toBe(1);
      const scanned: string[] = [];
      for (const node of writer.nodes("master")) {
        let cursor = "0";
        do {
          const [next, keys] = await node.scan(cursor, "MATCH", `*{site_id=${site}}*`);
          scanned.push(...keys);
          cursor = next;
        } while (cursor !== "0");
      }
      expect(scanned.sort()).toEqual([dayKey, eventsKey, eventTypes].sort());
      expect(await writer.unlink(dayKey, eventsKey, eventTypes)).toBe(3);
      expect(await admin.exists(dayKey, eventsKey, eventTypes)).toBe(0);
    } finally {
      writer.disconnect();
    }
  });

  it("the reader user may read the registry and not write it", async () => {
    const reader = clusterAs(READER);
    const site = `${prefix}reader`;
    try {
      await admin.hset(TIME_ZONES_KEY, site, "Asia/Tokyo");
      expect(await reader.hget(TIME_ZONES_KEY, site)).toBe("Asia/Tokyo");
      await expect(reader.hset(TIME_ZONES_KEY, site, "UTC")).rejects.toThrow(/NOPERM/);
      await expect(reader.hdel(TIME_ZONES_KEY, site)).rejects.toThrow(/NOPERM/);
      await expect(reader.del(TIME_ZONES_KEY)).rejects.toThrow(/NOPERM/);
      expect(await admin.hget(TIME_ZONES_KEY, site)).toBe("Asia/Tokyo");
    } finally {
      reader.disconnect();
    }
  });

  it("the read API has no write route: PUT and DELETE are 404, and its OpenAPI has none", async () => {
    const site = `${prefix}readonly`;
    for (const method of ["PUT", "DELETE"]) {
      const answer = await call(
        readApi.app,
        method,
        zonePath(site),
        method === "PUT" ? JSON.stringify({ timeZone: "Europe/Paris" }) : undefined,
      );
      expect(answer.status, method).toBe(404);
      expect(v.parse(ErrorBody, answer.body).error).toBe("not_found");
    }
    expect(await admin.hexists(TIME_ZONES_KEY, site)).toBe(0);
    const doc = (await call(readApi.app, "GET", "/v1/openapi.json")).body as {
      paths: Record<string, object>;
    };
    for (const operations of Object.values(doc.paths)) {
      expect(Object.keys(operations)).toEqual(["get"]);
    }
  });

  it("`site` directly through Redis works as the registry-writer and, as the reader, says to use the admin API", async () => {
    const site = `${prefix}cli`;
    const asWriter = captureIo(writerEnv);
    expect(await runCli(["site", "--site", site, "--time-zone", "Europe/Paris"], asWriter.io)).toBe(
      0,
    );
    expect(await admin.hget(TIME_ZONES_KEY, site)).toBe("Europe/Paris");

    const asReader = captureIo(readerEnv);
    const code = await runCli(["site", "--site", site, "--utc"], asReader.io);
    expect(code).toBe(1);
    expect(asReader.out.stderr).toMatch(
      /^error: the Redis user "reader" may not write the zone registry \(NOPERM.*\): in AWS, set ADMIN_API_URL \(the stack's admin_api_url output\) to go through the admin function, whose user may\n$/,
    );
    expect(await admin.hget(TIME_ZONES_KEY, site)).toBe("Europe/Paris");
  });
});

describe("the Lambda entry point", () => {
  it("answers function-URL PUT events (payload 2.0, JSON body) as the Node server does", async () => {
    const server = serve({ fetch: adminApi.app.fetch, hostname: "127.0.0.1", port: 0 });
    await new Promise((resolve) => server.once("listening", resolve));
    const { port } = server.address() as AddressInfo;
    const saved = { ...process.env };
    Object.assign(process.env, writerEnv);
    try {
      const cases: [string, string, string][] = [
        ["PUT", `${prefix}lambda`, JSON.stringify({ timeZone: "America/St_Johns" })],
        ["PUT", `${prefix}lambda`, JSON.stringify({ timeZone: "EST" })],
        ["GET", `${prefix}lambda`, ""],
        ["DELETE", `${prefix}lambda`, ""],
        ["POST", `${prefix}lambda`, "{}"],
      ];
      for (const [method, site, body] of cases) {
        const lambda = (await handler(
          adminEvent(method, zonePath(site), body),
          lambdaContext({ functionName: "sketchstream-dev-admin" }),
        )) as { statusCode: number; body: string; headers: Record<string, string> };
        const overHttp = await fetch(`http://127.0.0.1:${port}${zonePath(site)}`, {
          method,
          ...(body === "" ? {} : { body, headers: { "content-type": "application/json" } }),
        });
        expect(lambda.statusCode, `${method} ${body}`).toBe(overHttp.status);
        expect(JSON.parse(lambda.body)).toEqual(await overHttp.json());
        expect(lambda.headers["content-type"]).toMatch(/^application\/json/);
      }
      // The PUT through Lambda wrote the registry (the DELETE then removed it).
      expect(await admin.hexists(TIME_ZONES_KEY, `${prefix}lambda`)).toBe(0);
      const once = (await handler(
        adminEvent(
          "PUT",
          zonePath(`${prefix}lambda2`),
          JSON.stringify({ timeZone: "Pacific/Kiritimati" }),
        ),
        lambdaContext(),
      )) as { statusCode: number };
      expect(once.statusCode).toBe(200);
      expect(await admin.hget(TIME_ZONES_KEY, `${prefix}lambda2`)).toBe("Pacific/Kiritimati");
    } finally {
      process.env = saved;
      await new Promise((resolve) => server.close(resolve));
    }
  });

  it("logs every change with the IAM caller the function URL reports", async () => {
    const logged: { message: string; extra: unknown }[] = [];
    const logger = {
      info: (message: string, extra: unknown) => logged.push({ message, extra }),
      error: (message: string, extra: unknown) => logged.push({ message, extra }),
    } as unknown as Logger;
    const runtime = createAdminRuntime(writerEnv, { logger });
    try {
      const lambda = handle(runtime.app);
      const site = `${prefix}audit`;
      const body = JSON.stringify({ timeZone: "Asia/Kathmandu" });
      // Function URLs base64-encode bodies they do not take for text; JSON is text, but the
      // adapter must read either.
      const event = {
        ...adminEvent("PUT", zonePath(site), body),
        body: Buffer.from(body).toString("base64"),
        isBase64Encoded: true,
      };
      expect((await lambda(event, lambdaContext())).statusCode).toBe(200);
      expect(
        (await lambda(adminEvent("DELETE", zonePath(site), ""), lambdaContext())).statusCode,
      ).toBe(200);
      // A refused name changes nothing, so it is not an audited change.
      await lambda(adminEvent("PUT", zonePath(site), '{"timeZone":"EST"}'), lambdaContext());
      // Nor is a deletion refused for want of its confirmation.
      await lambda(adminEvent("DELETE", sitePath(site), ""), lambdaContext());
      const gone = `${prefix}audit-gone`;
      const seeded = await seedSite(admin, gone, "Europe/Paris");
      const deletion = await lambda(
        adminEvent("DELETE", sitePath(gone), "", `confirm=${gone}`),
        lambdaContext(),
      );
      expect(deletion.statusCode).toBe(200);
      const caller = "arn:aws:iam::123456789012:user/operator";
      expect(logged).toEqual([
        { message: "time zone set", extra: { site, timeZone: "Asia/Kathmandu", caller } },
        { message: "time zone removed", extra: { site, timeZone: null, caller } },
        {
          message: "site deleted",
          extra: { site: gone, deleted: countsOf(seeded), cursor: null, caller },
        },
      ]);
    } finally {
      runtime.close();
    }
  });
});

/** A Lambda function URL's event (API Gateway payload 2.0), as AWS sends it with AWS_IAM auth. */

/** A function URL event of the admin API; an empty body is none. */
function adminEvent(method: string, path: string, body: string, query = "") {
  return functionUrlEvent({ method, path, query, ...(body === "" ? {} : { body }) });
}
