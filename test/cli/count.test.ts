/**
 * `count` and `rollup --local` against a real Redis Cluster. Days are written by the real
 * consumer handler; weeks and months by the real state machine through `rollup --local`. The
 * cluster is this file's own: the rollup's lock and its touched/pending sets are global, so
 * they are not shared with the other test files. Expected values come from Redis directly
 * (PFCOUNT of every day key of the range) and the tests' own calendar.
 */

import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { Cluster } from "ioredis";
import * as v from "valibot";
import { afterAll, assert, beforeAll, describe, expect, it } from "vitest";
import { runCli } from "../../cli/app.js";
import type { CountResult } from "../../cli/count.js";
import { createConsumerHandler } from "../../functions/consumer/handler.js";
import { ACL_RULES } from "../../functions/domain/acl.js";
import { at, first } from "../../functions/domain/arrays.js";
import {
  AS_OF_EVENTS_SINCE,
  AS_OF_KEY,
  groupOfSite,
  LEGACY_PENDING_KEY,
  LEGACY_TOUCHED_KEY,
  parseKey,
  pendingKey,
  touchedKey,
} from "../../functions/domain/keys.js";
import { type RunningRedisCluster, startRedisCluster } from "../../local/redis-cluster.js";
import { cardOfEveryGroup, rollupLeftovers } from "../helpers/bookkeeping.js";
import { testNowMs } from "../helpers/clock.js";
import { uniqueSitePrefix } from "../helpers/env.js";
import { generatorTime, kinesisEvent } from "../helpers/kinesis.js";
import { checked } from "../helpers/schema.js";
import {
  civilFromDays,
  DAY_MS,
  dayLabel,
  daysFromCivil,
  isoWeekLabel,
  monthLength,
  weekdayOfDayNumber,
} from "../unit/calendar.js";
import { captureIo } from "./capture.js";

const run = promisify(execFile);

let cluster: RunningRedisCluster;
let redis: Cluster;
let env: Record<string, string>;

beforeAll(async () => {
  // The operators' reader user, with the stack's ACL rules.
  cluster = await startRedisCluster({
    primaries: 3,
    users: [{ name: "reader", password: "reader-pw", rules: ACL_RULES.reader }],
  });
  redis = new Cluster([{ host: "127.0.0.1", port: cluster.port }]);
  env = {
    REDIS_ENDPOINT: cluster.endpoint,
    REDIS_CLUSTER: "true",
    REDIS_TLS: "false",
    REDIS_AUTH: "none",
    // Long enough that the month three months back is still within the daily retention.
    RETENTION_DAYS: "400",
    QUARANTINE_FILE: `${cluster.dir}/quarantine.jsonl`,
    POWERTOOLS_LOG_LEVEL: "CRITICAL",
  };
});

afterAll(async () => {
  redis?.disconnect();
  await cluster?.stop();
});

const now = testNowMs();

async function cli(argv: string[]) {
  const { out, io } = captureIo(env);
  const code = await runCli(argv, { ...io, now: () => now });
  return { code, ...out };
}

/** `count --json`'s output. */
const CountResultSchema = v.strictObject({
  site: v.string(),
  event: v.nullable(v.string()),
  metric: v.picklist(["visitors", "events"]),
  from: v.string(),
  to: v.string(),
  timeZone: v.nullable(v.string()),
  keys: v.array(v.string()),
  estimate: v.number(),
  complete: v.boolean(),
  missing: v.array(v.string()),
  notRecorded: v.array(v.string()),
  redisCli: v.string(),
});

function parseCountResult(text: string): CountResult {
  return checked(CountResultSchema, JSON.parse(text), "count --json output");
}

async function count(argv: string[]): Promise<CountResult> {
  const result = await cli(["count", ...argv, "--json"]);
  expect(result.code, result.stderr).toBe(0);
  return parseCountResult(result.stdout);
}

// The calendar month three months before this one, and a range of 16 days either side of it.
const todayZ = Math.floor(now / DAY_MS);
const today = civilFromDays(todayZ);
const monthIndex = today.y * 12 + (today.m - 1) - 3;
const [my, mm] = [Math.floor(monthIndex / 12), (monthIndex % 12) + 1];
const monthStart = daysFromCivil(my, mm, 1);
const monthEnd = monthStart + monthLength(my, mm) - 1;
const month = dayLabel(monthStart).slice(0, 7);
const from = monthStart - 16;
const to = monthEnd + 16;
/** Mondays of the ISO weeks wholly inside the month. */
const innerWeeks: number[] = [];
for (let z = monthStart; z + 6 <= monthEnd; z++)
  if (weekdayOfDayNumber(z) === 0) innerWeeks.push(z);
const week = at(innerWeeks, 1, "whole week of the month");
const weekLabel = isoWeekLabel(week);
const weekDays = Array.from({ length: 7 }, (_, i) => dayLabel(week + i));
const monday = first(weekDays, "day of the week");

const prefix = uniqueSitePrefix();
const site = `${prefix}s`;
const key = (label: string, event?: string) =>
  event ? `uv:{site_id=${site}}:event=${event}:${label}` : `uv:{site_id=${site}}:${label}`;
const dayKeys = (a: number, b: number, event?: string) =>
  Array.from({ length: b - a + 1 }, (_, i) => key(dayLabel(a + i), event));
const eventDayKeys = (a: number, b: number) =>
  Array.from({ length: b - a + 1 }, (_, i) => `ev:{site_id=${site}}:${dayLabel(a + i)}`);
/** Records sent per day (each one distinct event: no event_id, so its record id). */
const EVENTS_PER_DAY = 150 + 40;

async function consume(payloads: object[]) {
  const handler = createConsumerHandler(env, { now: () => now });
  try {
    for (let i = 0; i < payloads.length; i += 5000) {
      const result = await handler(kinesisEvent(payloads.slice(i, i + 5000)));
      expect(result.batchItemFailures).toEqual([]);
    }
  } finally {
    handler.close();
  }
}

function eventsFor(z: number, users: number[], event: string) {
  return users.map((u) => ({
    user_id: `u-${u}`,
    site_id: site,
    event,
    sku: "sku-1",
    amount: 1,
    event_time: generatorTime(z * DAY_MS + ((u * 7919) % DAY_MS)),
  }));
}

/** Every key's days, from the label, with the tests' calendar: they must partition the range. */
function daysOfKeys(keys: readonly string[]): string[] {
  return keys.flatMap((k) => {
    const { label } = parseKey(k).period;
    const days: string[] = [];
    for (let z = from - 40; z <= to + 40; z++) {
      const d = dayLabel(z);
      if (d === label || d.slice(0, 7) === label || isoWeekLabel(z) === label) days.push(d);
    }
    return days;
  });
}

async function expectExact(result: CountResult, a = from, b = to, event?: string) {
  const expectedDays = Array.from({ length: b - a + 1 }, (_, i) => dayLabel(a + i));
  expect(daysOfKeys(result.keys).sort()).toEqual(expectedDays);
  const union = await redis.pfcount(...dayKeys(a, b, event));
  expect(union).toBeGreaterThan(0);
  expect(result.estimate, "PFCOUNT of the cover = PFCOUNT of the range's days").toBe(union);
}

describe("count against a real Redis Cluster", () => {
  beforeAll(async () => {
    const payloads: object[] = [];
    for (let z = from - 2; z <= to + 2; z++) {
      // 150 of 2000 users a day, so days overlap; 40 of them purchase (EVENTS_PER_DAY).
      const users = Array.from({ length: 150 }, (_, i) => (z * 37 + i * 13) % 2000);
      payloads.push(
        ...eventsFor(z, users, "view"),
        ...eventsFor(z, users.slice(0, 40), "purchase"),
      );
    }
    await consume(payloads);
  });

  it("before any rollup, answers a range from its days only (all of them touched)", async () => {
    const result = await count(["--site", site, "--from", dayLabel(from), "--to", dayLabel(to)]);
    expect(result.keys).toEqual(dayKeys(from, to));
    expect(result).toMatchObject({ site, event: null, from: dayLabel(from), to: dayLabel(to) });
    await expectExact(result);
  });

  it("rollup --local runs the state machine against REDIS_ENDPOINT: SUCCEEDED, exit 0", async () => {
    const result = await cli(["rollup", "--local"]);
    expect(result.code, result.stderr).toBe(0);
    const [arn, ...json] = result.stdout.split("\n");
    expect(arn).toMatch(/^arn:aws:states:.*:execution:/);
    const output = JSON.parse(json.join("\n"));
    expect(output).toMatchObject({ status: "succeeded", mode: "scheduled" });
    expect(output.periods).toContain(month);
    expect(output.periods).toContain(weekLabel);
    expect(await cardOfEveryGroup(redis, "touched")).toBe(0);
    expect(await rollupLeftovers(redis)).toEqual([]);
  });

  it("then uses the month and week keys, and still equals PFCOUNT of the range's days", async () => {
    const result = await count(["--site", site, "--from", dayLabel(from), "--to", dayLabel(to)]);
    expect(result.keys.length).toBeLessThan(20);
    expect(result.keys.some((k) => /-W\d\d$/.test(k) || k === key(month))).toBe(true);
    expect(result.keys).not.toContain(key(monday));
    await expectExact(result);
  });

  it("answers --month, --week and --day with their own key", async () => {
    const m = await count(["--site", site, "--month", month]);
    expect(m.keys).toEqual([key(month)]);
    await expectExact(m, monthStart, monthEnd);
    const w = await count(["--site", site, "--week", weekLabel]);
    expect(w.keys).toEqual([key(weekLabel)]);
    await expectExact(w, week, week + 6);
    const wednesday = at(weekDays, 2, "day of the week");
    const d = await count(["--site", site, "--day", wednesday, "--event", "purchase"]);
    expect(d.keys).toEqual([key(wednesday, "purchase")]);
    expect(d.estimate).toBe(await redis.pfcount(key(wednesday, "purchase")));
  });

  it("--metric events counts the ev: keys, and says the range's days are before events were first recorded", async () => {
    const range = ["--site", site, "--from", dayLabel(from), "--to", dayLabel(to)];
    const json = await cli(["count", ...range, "--metric", "events", "--json"]);
    expect(json.code, json.stderr).toBe(0);
    const result = parseCountResult(json.stdout);
    expect(result).toMatchObject({ site, event: null, metric: "events" });
    expect(result.keys.every((k) => k.startsWith(`ev:{site_id=${site}}:`))).toBe(true);
    // The rollup merged the ev: weeks and months too, and the cover uses them.
    expect(result.keys.some((k) => /-W\d\d$/.test(k))).toBe(true);
    expect(daysOfKeys(result.keys).sort()).toEqual(eventDayKeys(from, to).map((k) => k.slice(-10)));
    const union = await redis.pfcount(...eventDayKeys(from, to));
    expect(result.estimate, "PFCOUNT of the cover = PFCOUNT of the range's ev: days").toBe(union);
    const exact = (to - from + 1) * EVENTS_PER_DAY;
    expect(Math.abs(union - exact)).toBeLessThanOrEqual(Math.ceil(3 * 0.0081 * exact));
    // A fresh cluster: the consumer recorded events from the start (events-since 0).
    expect(result).toMatchObject({ complete: true, missing: [], notRecorded: [] });
    // As a deployment that gained the events metric at `now`: every day of the range (months
    // ago) is before that, so it is reported, not counted as complete.
    await redis.zadd(AS_OF_KEY, now, AS_OF_EVENTS_SINCE);
    const upgraded = await cli(["count", ...range, "--metric", "events", "--json"]);
    await redis.zadd(AS_OF_KEY, 0, AS_OF_EVENTS_SINCE);
    const days = eventDayKeys(from, to).map((k) => k.slice(-10));
    const partial = parseCountResult(upgraded.stdout);
    expect(partial.estimate).toBe(union);
    expect(partial.notRecorded).toEqual(days);
    expect(partial.missing).toEqual(days);
    expect(partial.complete).toBe(false);
    expect(upgraded.stderr).toBe(
      `warning: ${days.length} of the days counted (${dayLabel(from)} to ${dayLabel(to)}) are before events were first recorded (${dayLabel(todayZ)}, as of ${new Date(now).toISOString()}): their events are not recorded, so the estimate covers the other days only.\n`,
    );
    const text = await cli(["count", ...range, "--metric", "events"]);
    expect(text.stdout.split("\n").slice(0, 2)).toEqual([
      String(union),
      `  events (distinct event identities: each event's event_id, else its Kinesis record id; HyperLogLog estimate, standard error 0.81%) of site ${site}, all events, ${dayLabel(from)} to ${dayLabel(to)}`,
    ]);
    // Visitors are the default, and say so.
    const visitors = await cli(["count", ...range]);
    expect(visitors.stdout.split("\n")[1]).toMatch(/^ {2}unique visitors \(HyperLogLog estimate/);
    const bad = await cli(["count", ...range, "--metric", "pageviews"]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('count: --metric must be visitors or events, got "pageviews"');
  });

  it("falls back to a week's days when a late event touched one of them, until the next rollup", async () => {
    const late = week + 3;
    const newcomers = Array.from({ length: 300 }, (_, i) => 5000 + i);
    await consume(eventsFor(late, newcomers, "view"));
    expect(await redis.sismember(touchedKey(groupOfSite(site)), `${site}|${dayLabel(late)}`)).toBe(
      1,
    );

    const result = await count(["--site", site, "--from", dayLabel(from), "--to", dayLabel(to)]);
    for (const d of weekDays) expect(result.keys).toContain(key(d));
    expect(result.keys).not.toContain(key(weekLabel));
    expect(result.keys).not.toContain(key(month));
    // The other whole weeks of the month still answer for their days.
    for (const other of innerWeeks.filter((z) => z !== week)) {
      expect(result.keys).toContain(key(isoWeekLabel(other)));
    }
    await expectExact(result);
    // The stale week key alone would have missed the newcomers.
    expect(result.estimate).toBeGreaterThan(
      await redis.pfcount(
        ...result.keys.filter((k) => !weekDays.some((d) => k === key(d))),
        key(weekLabel),
      ),
    );

    // Only "view" events came late: the purchase count still uses the week, whose purchase key
    // did not change.
    const purchase = await count([
      "--site",
      site,
      "--event",
      "purchase",
      "--from",
      dayLabel(from),
      "--to",
      dayLabel(to),
    ]);
    expect(purchase.keys).not.toContain(key(monday, "purchase"));
    await expectExact(purchase, from, to, "purchase");

    expect((await cli(["rollup", "--local"])).code).toBe(0);
    const after = await count(["--site", site, "--from", dayLabel(from), "--to", dayLabel(to)]);
    expect(after.keys).not.toContain(key(monday));
    await expectExact(after);
    expect(after.estimate).toBe(result.estimate);
  });

  it.each([
    ["the pending set (a rollup in progress)", pendingKey(groupOfSite(site))],
    ["the legacy pending set (before the upgrade's first rollup)", LEGACY_PENDING_KEY],
    ["the legacy touched set (before the upgrade's first rollup)", LEGACY_TOUCHED_KEY],
  ])("treats a day in %s like a touched one", async (_, set) => {
    const member = `${site}|${weekDays[5]}|purchase`;
    await redis.sadd(set, member);
    try {
      const args = ["--site", site, "--from", dayLabel(from), "--to", dayLabel(to)];
      const purchase = await count([...args, "--event", "purchase"]);
      for (const d of weekDays) expect(purchase.keys).toContain(key(d, "purchase"));
      await expectExact(purchase, from, to, "purchase");
      // Pending for purchase only: the all-events week key is still good.
      const all = await count(args);
      expect(all.keys).not.toContain(key(monday));
    } finally {
      await redis.srem(set, member);
    }
  });

  it("does not use a week or month key that does not exist", async () => {
    const [savedWeek, savedMonth] = await Promise.all([
      redis.dumpBuffer(key(weekLabel)),
      redis.dumpBuffer(key(month)),
    ]);
    if (savedWeek === null || savedMonth === null) {
      throw new Error(`${key(weekLabel)} and ${key(month)} must exist before this test`);
    }
    await redis.del(key(weekLabel), key(month));
    try {
      const result = await count(["--site", site, "--month", month]);
      expect(result.keys).not.toContain(key(month));
      expect(result.keys).not.toContain(key(weekLabel));
      for (const d of weekDays) expect(result.keys).toContain(key(d));
      await expectExact(result, monthStart, monthEnd);
    } finally {
      await redis.restore(key(weekLabel), 0, savedWeek, "REPLACE");
      await redis.restore(key(month), 0, savedMonth, "REPLACE");
    }
  });

  it("prints a redis-cli command that gives the same number, and works as a child process", async () => {
    const { stdout, stderr } = await run(
      "node_modules/.bin/tsx",
      ["cli/main.ts", "count", "--site", site, "--from", dayLabel(from), "--to", dayLabel(to)],
      { timeout: 30_000, env: { ...env, PATH: process.env.PATH ?? "" } },
    );
    expect(stderr).toBe("");
    const estimate = Number(stdout.split("\n")[0]);
    const command = /^ {2}(redis-cli .*)$/m.exec(stdout)?.[1];
    assert.isDefined(command, `a redis-cli command in the output:\n${stdout}`);
    expect(command).toMatch(
      new RegExp(`^redis-cli -c -h 127\\.0\\.0\\.1 -p ${cluster.ports[0]} PFCOUNT '`),
    );
    const viaRedisCli = await run("sh", ["-c", command], { timeout: 10_000 });
    expect(Number(viaRedisCli.stdout.trim())).toBe(estimate);
    expect(estimate).toBe(await redis.pfcount(...dayKeys(from, to)));
  });

  it("as the reader ACL user, checks pending work and uses the month key like any user", async () => {
    const { out, io } = captureIo({
      ...env,
      REDIS_AUTH: "password",
      REDIS_USER: "reader",
      REDIS_PASSWORD: "reader-pw",
    });
    const code = await runCli(["count", "--site", site, "--month", month, "--json"], {
      ...io,
      now: () => now,
    });
    expect(code, out.stderr).toBe(0);
    expect(out.stderr).not.toContain("warning");
    const result = parseCountResult(out.stdout);
    expect(result.keys).toEqual([key(month)]);
    expect(result.redisCli).toContain("--user reader --askpass PFCOUNT");
    await expectExact(result, monthStart, monthEnd);
  });

  it("warns on stderr when days of the range are past their retention", async () => {
    const { out, io } = captureIo(env);
    const later = (to + 401) * DAY_MS;
    const code = await runCli(["count", "--site", site, "--day", dayLabel(to)], {
      ...io,
      now: () => later,
    });
    expect(code).toBe(0);
    expect(out.stderr).toContain(
      `warning: 1 of the days counted (${dayLabel(to)}) are past the 400-day retention`,
    );
  });

  it("fails with exit 1 and the cause when Redis cannot be reached", async () => {
    const { out, io } = captureIo({ ...env, REDIS_ENDPOINT: "127.0.0.1:1" });
    const code = await runCli(["count", "--site", site, "--day", dayLabel(from)], {
      ...io,
      timeoutMs: 3000,
    });
    expect(code).toBe(1);
    expect(out.stderr).toMatch(/^error: /);
    expect(out.stderr).toContain("127.0.0.1:1");
  });
});
