/**
 * Reading in the site's time zone (DESIGN.md, "Per-site time zones"), against a real Redis
 * Cluster with the stack's reader ACL user, the real read app (createApiRuntime, with its
 * injectable clock) and the real CLI: a site in Pacific/Kiritimati (UTC+14 all year) and one
 * in America/St_Johns (UTC-02:30 in summer), beside a site without an entry (UTC).
 *
 * Every expected instant is a hard-coded fact, not computed with Intl:
 * - local midnight starting 2031-06-16 is 2031-06-15T10:00:00Z in Kiritimati and
 *   2031-06-16T02:30:00Z in St John's (NDT, daylight time from March 9 to November 2, 2031);
 * - with the default 62-day retention, day 2031-04-14 expires at the local midnight starting
 *   2031-06-16 (2031-04-14 + 1 + 62 days), so at those same instants;
 * - 2030-01-01T11:00:00Z is 2030-01-02 01:00 in Kiritimati (a year before the calendars'
 *   span around the clock) and 2030-01-01 07:30 in St John's.
 */

import { Logger } from "@aws-lambda-powertools/logger";
import { Cluster } from "ioredis";
import * as v from "valibot";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { type ApiServer, startApiServer } from "../../cli/api.js";
import { runCli } from "../../cli/app.js";
import { createApiApp, type ReadRedis } from "../../functions/api/app.js";
import { type ApiRuntime, createApiRuntime } from "../../functions/api/handler.js";
import { CountBody, SeriesBody } from "../../functions/api/schemas.js";
import { ACL_RULES } from "../../functions/domain/acl.js";
import { AS_OF_EVENTS_SINCE, AS_OF_KEY, TIME_ZONES_KEY } from "../../functions/domain/keys.js";
import { type RunningRedisCluster, startRedisCluster } from "../../local/redis-cluster.js";
import { captureIo } from "../cli/capture.js";
import { uniqueSitePrefix } from "../helpers/env.js";

const KIRITIMATI = "Pacific/Kiritimati";
const ST_JOHNS = "America/St_Johns";
/** The first instant of 2031-06-16 in each zone. */
const MIDNIGHT_0616 = {
  [KIRITIMATI]: Date.parse("2031-06-15T10:00:00Z"),
  [ST_JOHNS]: Date.parse("2031-06-16T02:30:00Z"),
  UTC: Date.parse("2031-06-16T00:00:00Z"),
} as const;
const SECOND = 1000;

let cluster: RunningRedisCluster;
let admin: Cluster;
let readerEnv: Record<string, string>;
let runtime: ApiRuntime;
let logger: Logger;
/** The read app's clock, set by each test. */
let clockMs = MIDNIGHT_0616[KIRITIMATI];

const prefix = uniqueSitePrefix();
const kiritimati = `${prefix}kir`;
const stJohns = `${prefix}stj`;
const utcSite = `${prefix}utc`;
const invalid = `${prefix}bad`;

beforeAll(async () => {
  cluster = await startRedisCluster({
    primaries: 3,
    users: [{ name: "reader", password: "reader-pw", rules: ACL_RULES.reader }],
  });
  admin = new Cluster([{ host: "127.0.0.1", port: cluster.port }]);
  readerEnv = {
    REDIS_ENDPOINT: cluster.endpoint,
    REDIS_CLUSTER: "true",
    REDIS_TLS: "false",
    REDIS_AUTH: "password",
    REDIS_USER: "reader",
    REDIS_PASSWORD: "reader-pw",
    POWERTOOLS_LOG_LEVEL: "CRITICAL",
  };
  await admin.hset(TIME_ZONES_KEY, kiritimati, KIRITIMATI, stJohns, ST_JOHNS, invalid, "EST");
  logger = new Logger({ serviceName: "read-time-zones-test", logLevel: "CRITICAL" });
  runtime = createApiRuntime(readerEnv, { now: () => clockMs, logger });
}, 30_000);

afterAll(async () => {
  runtime?.close();
  admin?.disconnect();
  await cluster?.stop();
});

async function get(path: string, atMs: number) {
  clockMs = atMs;
  const response = await runtime.app.request(path);
  const body: unknown = await response.json();
  expect(response.status, JSON.stringify(body)).toBe(200);
  return { body, cacheControl: response.headers.get("cache-control") };
}

const count = async (site: string, query: string, atMs: number) => {
  const { body, cacheControl } = await get(`/v1/sites/${site}/count?${query}`, atMs);
  return { body: v.parse(CountBody, body), cacheControl };
};

const NO_STORE = "no-store";
const CACHED = "private, max-age=300";

describe("Cache-Control follows the site's local midnight", () => {
  it("Kiritimati: a range ending 2031-06-15 is live until 2031-06-15T10:00:00Z, then cached", async () => {
    const query = "from=2031-06-01&to=2031-06-15";
    const midnight = MIDNIGHT_0616[KIRITIMATI];
    const before = await count(kiritimati, query, midnight - SECOND);
    expect(before.cacheControl).toBe(NO_STORE);
    expect(before.body.timeZone).toBe(KIRITIMATI);
    expect((await count(kiritimati, query, midnight)).cacheControl).toBe(CACHED);
    expect((await count(kiritimati, query, midnight + SECOND)).cacheControl).toBe(CACHED);
    // The series route the same way.
    const series = `/v1/sites/${kiritimati}/series?${query}&granularity=week`;
    expect((await get(series, midnight - SECOND)).cacheControl).toBe(NO_STORE);
    const after = await get(series, midnight + SECOND);
    expect(after.cacheControl).toBe(CACHED);
    expect(v.parse(SeriesBody, after.body).timeZone).toBe(KIRITIMATI);
    // A UTC site at the same instant is still in 2031-06-15: live.
    expect((await count(utcSite, query, midnight + SECOND)).cacheControl).toBe(NO_STORE);
  });

  it("St John's: live until 2031-06-16T02:30:00Z, 2.5 hours after UTC's midnight", async () => {
    const query = "from=2031-06-01&to=2031-06-15";
    const midnight = MIDNIGHT_0616[ST_JOHNS];
    const before = await count(stJohns, query, midnight - SECOND);
    expect(before.cacheControl).toBe(NO_STORE);
    expect(before.body.timeZone).toBe(ST_JOHNS);
    expect((await count(stJohns, query, midnight + SECOND)).cacheControl).toBe(CACHED);
    // UTC's 2031-06-15 ended at midnight UTC: a UTC site's answer was cached by then.
    const utc = await count(utcSite, query, midnight - SECOND);
    expect(utc.cacheControl).toBe(CACHED);
    expect(utc.body.timeZone).toBe("UTC");
    expect((await count(utcSite, query, MIDNIGHT_0616.UTC - SECOND)).cacheControl).toBe(NO_STORE);
  });
});

describe("missing follows the zone's expiry instant", () => {
  // 2031-04-13 expired a day earlier; 2031-04-15 expires a day later.
  const query = "from=2031-04-13&to=2031-04-15";

  for (const [zone, site] of [
    [KIRITIMATI, () => kiritimati],
    [ST_JOHNS, () => stJohns],
    ["UTC", () => utcSite],
  ] as const) {
    it(`${zone}: day 2031-04-14 is missing from its expiry instant on, to the second`, async () => {
      const expiry = MIDNIGHT_0616[zone];
      const before = await count(site(), query, expiry - SECOND);
      expect(before.body).toMatchObject({ complete: false, missing: ["2031-04-13"] });
      const at = await count(site(), query, expiry);
      expect(at.body).toMatchObject({ complete: false, missing: ["2031-04-13", "2031-04-14"] });
      const series = await get(
        `/v1/sites/${site()}/series?${query}&granularity=day`,
        expiry - SECOND,
      );
      expect(v.parse(SeriesBody, series.body).points.map((p) => p.complete)).toEqual([
        false,
        true,
        true,
      ]);
    });
  }
});

describe("notRecorded uses the local day of events-since", () => {
  async function withEventsSince<T>(ms: number, work: () => Promise<T>): Promise<T> {
    const [saved] = await admin.zmscore(AS_OF_KEY, AS_OF_EVENTS_SINCE);
    await admin.zadd(AS_OF_KEY, ms, AS_OF_EVENTS_SINCE);
    try {
      return await work();
    } finally {
      if (saved === null || saved === undefined) await admin.zrem(AS_OF_KEY, AS_OF_EVENTS_SINCE);
      else await admin.zadd(AS_OF_KEY, saved, AS_OF_EVENTS_SINCE);
    }
  }
  const notRecorded = async (site: string, query: string) =>
    (await count(site, `${query}&metric=events`, MIDNIGHT_0616.UTC)).body.notRecorded;

  it("2031-06-10T12:00:00Z is 2031-06-11 in Kiritimati; 2031-06-10T01:00:00Z is 2031-06-09 in St John's", async () => {
    const query = "from=2031-06-08&to=2031-06-12";
    await withEventsSince(Date.parse("2031-06-10T12:00:00Z"), async () => {
      expect(await notRecorded(kiritimati, query)).toEqual([
        "2031-06-08",
        "2031-06-09",
        "2031-06-10",
      ]);
      expect(await notRecorded(utcSite, query)).toEqual(["2031-06-08", "2031-06-09"]);
    });
    await withEventsSince(Date.parse("2031-06-10T01:00:00Z"), async () => {
      expect(await notRecorded(stJohns, query)).toEqual(["2031-06-08"]);
      expect(await notRecorded(utcSite, query)).toEqual(["2031-06-08", "2031-06-09"]);
      const series = await get(
        `/v1/sites/${stJohns}/series?${query}&granularity=day&metric=events`,
        MIDNIGHT_0616.UTC,
      );
      expect(v.parse(SeriesBody, series.body).points.map((p) => p.notRecorded)).toEqual([
        ["2031-06-08"],
        [],
        [],
        [],
        [],
      ]);
    });
  });

  it("an events-since long before the clock (outside the calendar's span) still maps to its local day", async () => {
    const query = "from=2029-12-31&to=2030-01-03";
    await withEventsSince(Date.parse("2030-01-01T11:00:00Z"), async () => {
      expect(await notRecorded(kiritimati, query)).toEqual(["2029-12-31", "2030-01-01"]);
      expect(await notRecorded(stJohns, query)).toEqual(["2029-12-31"]);
    });
  });
});

describe("an entry that is not a valid zone", () => {
  it("is read as UTC, and the API logs a warning naming the entry and the fix", async () => {
    const warn = vi.spyOn(logger, "warn");
    try {
      const query = "from=2031-06-01&to=2031-06-15";
      // At UTC's midnight, Kiritimati's would be long past and EST's (-05:00) not yet come.
      const before = await count(invalid, query, MIDNIGHT_0616.UTC - SECOND);
      expect(before.body.timeZone).toBe("UTC");
      expect(before.cacheControl).toBe(NO_STORE);
      expect((await count(invalid, query, MIDNIGHT_0616.UTC)).cacheControl).toBe(CACHED);
      const messages = warn.mock.calls.map((call) => String(call[0]));
      expect(messages.length).toBeGreaterThan(0);
      expect(messages[0]).toContain(`site ${invalid}'s entry in the time-zone registry`);
      expect(messages[0]).toContain('is "EST", which is not a valid zone');
      expect(messages[0]).toContain(`npm run cli -- site --site ${invalid} --time-zone <zone>`);
    } finally {
      warn.mockRestore();
    }
  });
});

describe("the zone costs no round trip", () => {
  it("the HGET of the registry goes out before any reply of the count's first commands has come back", async () => {
    const client = new Cluster([{ host: "127.0.0.1", port: cluster.port }], {
      enableAutoPipelining: true,
      redisOptions: { username: "reader", password: "reader-pw" },
    });
    try {
      await client.ping();
      const sent: { name: string; repliesBefore: number }[] = [];
      let replies = 0;
      const recording = new Proxy(client, {
        get(target, name, receiver) {
          const value = Reflect.get(target, name, receiver);
          if (typeof value !== "function" || typeof name !== "string") return value;
          return (...args: unknown[]) => {
            sent.push({ name, repliesBefore: replies });
            const result = value.apply(target, args);
            if (result instanceof Promise) {
              void result.then(
                () => replies++,
                () => replies++,
              );
            }
            return result;
          };
        },
      }) as unknown as ReadRedis;
      const app = createApiApp({
        redis: { get: () => recording, reset: () => {} },
        retentionDays: 62,
        now: () => MIDNIGHT_0616[KIRITIMATI],
      });
      const response = await app.request(
        `/v1/sites/${kiritimati}/count?from=2031-05-01&to=2031-06-15&metric=events`,
      );
      expect(response.status).toBe(200);
      expect(v.parse(CountBody, await response.json()).timeZone).toBe(KIRITIMATI);
      const hget = sent.find((s) => s.name === "hget");
      expect(hget, JSON.stringify(sent)).toBeDefined();
      expect(hget?.repliesBefore).toBe(0);
      // The PFCOUNT waits for the cover's look-ups; the zone never held anything up.
      expect(sent.find((s) => s.name === "pfcount")?.repliesBefore).toBeGreaterThan(0);
    } finally {
      client.disconnect();
    }
  });
});

describe("count --day today in the CLI", () => {
  let api: ApiServer;
  beforeAll(async () => {
    api = await startApiServer(readerEnv, { port: 0, now: () => clockMs, logger });
    // A key for today in Kiritimati and in St John's, so the count shows which day it read.
    await admin.pfadd(`uv:{site_id=${kiritimati}}:2031-06-16`, "a", "b", "c");
    await admin.pfadd(`uv:{site_id=${stJohns}}:2031-06-15`, "a", "b");
  });
  afterAll(async () => {
    await api?.close();
  });

  async function cli(argv: string[], atMs: number, env: Record<string, string> = readerEnv) {
    clockMs = atMs;
    const { out, io } = captureIo(env);
    const code = await runCli(argv, {
      ...io,
      now: () => atMs,
      apiCredentials: { accessKeyId: "AKIDTEST", secretAccessKey: "test-secret" },
    });
    return { code, ...out };
  }
  const viaApi = () => ({ API_URL: api.url, AWS_REGION: "eu-west-1" });

  it("resolves today and yesterday to the site's local date, directly and through the API", async () => {
    // 2031-06-15T10:00:00Z: 2031-06-16 00:00 in Kiritimati, 07:30 on 2031-06-15 in St John's.
    const at = MIDNIGHT_0616[KIRITIMATI];
    for (const env of [readerEnv, viaApi()]) {
      const json = await cli(["count", "--site", kiritimati, "--day", "today", "--json"], at, env);
      expect(json.code, json.stderr).toBe(0);
      expect(JSON.parse(json.stdout)).toMatchObject({
        from: "2031-06-16",
        to: "2031-06-16",
        timeZone: KIRITIMATI,
        estimate: 3,
        keys: [`uv:{site_id=${kiritimati}}:2031-06-16`],
      });
      const text = await cli(["count", "--site", kiritimati, "--day", "today"], at, env);
      expect(text.code, text.stderr).toBe(0);
      expect(text.stdout.split("\n").slice(0, 2)).toEqual([
        "3",
        `  unique visitors (HyperLogLog estimate, standard error 0.81%) of site ${kiritimati}, all events, 2031-06-16 (today in ${KIRITIMATI}); dates are local to ${KIRITIMATI}`,
      ]);
      const yesterday = await cli(
        ["count", "--site", kiritimati, "--day", "yesterday", "--json"],
        at,
        env,
      );
      expect(JSON.parse(yesterday.stdout)).toMatchObject({ from: "2031-06-15", to: "2031-06-15" });
      // One second earlier it is still 2031-06-15 there.
      const earlier = await cli(
        ["count", "--site", kiritimati, "--day", "today", "--json"],
        at - SECOND,
        env,
      );
      expect(JSON.parse(earlier.stdout)).toMatchObject({ from: "2031-06-15", estimate: 0 });

      const stj = await cli(["count", "--site", stJohns, "--day", "today", "--json"], at, env);
      expect(JSON.parse(stj.stdout)).toMatchObject({
        from: "2031-06-15",
        timeZone: ST_JOHNS,
        estimate: 2,
      });
      // 2031-06-16T01:00:00Z: already 2031-06-16 in UTC, still 22:30 on 2031-06-15 in St John's.
      const late = MIDNIGHT_0616.UTC + 3600 * SECOND;
      const stjLate = await cli(
        ["count", "--site", stJohns, "--day", "today", "--json"],
        late,
        env,
      );
      expect(JSON.parse(stjLate.stdout)).toMatchObject({ from: "2031-06-15", estimate: 2 });
      const utc = await cli(["count", "--site", utcSite, "--day", "today"], late, env);
      expect(utc.code, utc.stderr).toBe(0);
      // A UTC site's text names no zone beyond the resolution of "today".
      expect(utc.stdout).toContain(`, all events, 2031-06-16 (today in UTC)\n`);
      expect(utc.stdout).not.toContain("dates are local to");
    }
  });

  it("series names the zone in its table and carries it in --json", async () => {
    const args = ["series", "--site", kiritimati, "--from", "2031-06-14", "--to", "2031-06-16"];
    const at = MIDNIGHT_0616[KIRITIMATI];
    for (const env of [readerEnv, viaApi()]) {
      const table = await cli(args, at, env);
      expect(table.code, table.stderr).toBe(0);
      expect(table.stdout.split("\n")[0]).toMatch(
        new RegExp(`, 2031-06-14 to 2031-06-16, by day; dates are local to ${KIRITIMATI}$`),
      );
      const json = await cli([...args, "--json"], at, env);
      expect(JSON.parse(json.stdout)).toMatchObject({ timeZone: KIRITIMATI });
    }
    const utc = await cli(
      ["series", "--site", utcSite, "--from", "2031-06-14", "--to", "2031-06-16"],
      at,
    );
    expect(utc.stdout).not.toContain("dates are local to");
  });

  it("an invalid entry: today in UTC, with a warning on stderr naming the entry and the fix", async () => {
    // 2031-06-15T10:00:00Z is 2031-06-15 in UTC (EST, were it accepted, would say the same
    // date, so the count's zone is checked too).
    const at = MIDNIGHT_0616[KIRITIMATI];
    for (const env of [readerEnv, viaApi()]) {
      const result = await cli(["count", "--site", invalid, "--day", "today", "--json"], at, env);
      expect(result.code, result.stderr).toBe(0);
      expect(JSON.parse(result.stdout)).toMatchObject({ from: "2031-06-15", timeZone: "UTC" });
      const lines = result.stderr.trimEnd().split("\n");
      // Once, whether the zone was read for "today" or by the count.
      expect(lines).toHaveLength(1);
      expect(lines[0]).toMatch(
        new RegExp(`^warning: site ${invalid}'s entry in the time-zone registry .* is "EST"`),
      );
      expect(lines[0]).toContain(`npm run cli -- site --site ${invalid} --time-zone <zone>`);
    }
    // Without --day today, the direct path warns too (the count reads the zone itself).
    const range = await cli(
      ["count", "--site", invalid, "--from", "2031-06-01", "--to", "2031-06-15"],
      at,
    );
    expect(range.stderr).toContain('is "EST", which is not a valid zone');
    expect(range.stdout).not.toContain("dates are local to");
  });
});
