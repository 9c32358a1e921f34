/**
 * End to end on this machine: events put into the local Kinesis, the poller invoking the real
 * consumer, the rollup state machine from the real ASL, counts checked against exact truth.
 * Then `npm run local` itself, run as a newcomer would, with its output read back.
 *
 * One site counts in Pacific/Kiritimati (UTC+14), as `npm run local`'s demo does: its keys must
 * carry its local dates, found here from the zone's published rule (test/helpers/zone-facts.ts),
 * not from Intl, which the code under test uses.
 */

import { execFile, spawn } from "node:child_process";
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { Cluster } from "ioredis";
import { describe, expect, it } from "vitest";
import { generateEvents } from "../../cli/generator.js";
import { putAll } from "../../cli/producer.js";
import { at } from "../../functions/domain/arrays.js";
import { parseKey, TIME_ZONES_KEY } from "../../functions/domain/keys.js";
import { expiresAtSeconds, isoWeekOf, monthOf } from "../../functions/domain/periods.js";
import { DEFAULT_RETENTION } from "../../functions/domain/runtime-env.js";
import { startLocalRuntime } from "../../local/runtime.js";
import { runRollupLocally } from "../../state-machines/local-runner.js";
import { DAY_MS, testNowMs, utcDay } from "../helpers/clock.js";
import { exitFailure } from "../helpers/exec.js";
import { HLL_STANDARD_ERROR, hllSame } from "../helpers/hll.js";
import { portOpen } from "../helpers/net.js";
import { dayPlus, factDayOf } from "../helpers/zone-facts.js";
import { dayNumber, isoWeekLabel } from "../unit/calendar.js";

const run = promisify(execFile);

/** The generator site that counts in a zone far from UTC, here and in `npm run local`'s demo. */
const ZONED_SITE = 283;
const ZONE = "Pacific/Kiritimati";
/** Kiritimati is UTC+14 all year: its midnights, so its keys' deadlines, come 14 h before UTC's. */
const ZONE_LEAD_SECONDS = 14 * 3600;

/** A generator `event_time` ("YYYY-MM-DD HH:MM:SS", UTC) as an instant. */
function instantOf(eventTime: string): number {
  return Date.parse(`${eventTime.replace(" ", "T")}Z`);
}

function week(day: string): string {
  return isoWeekLabel(dayNumber(day));
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe("the local pipeline", () => {
  it("counts within HLL error, rolls up with the right TTLs, quarantines exactly the bad records, leaves nothing behind", async () => {
    const dataDir = mkdtempSync(join(tmpdir(), "sketchstream-e2e-"));
    const now = testNowMs();
    const runtime = await startLocalRuntime({
      dataDir,
      shards: 3,
      replicasPerPrimary: 0,
      mapping: { batchSize: 500, batchingWindowMs: 50 },
      now: () => now,
    });
    const ports = [...runtime.redis.ports, Number(new URL(runtime.kinesisEndpoint).port)];
    const pids = [...runtime.redis.pids];
    const redis = new Cluster([{ host: "127.0.0.1", port: runtime.redis.port }]);
    try {
      // Before the first event: the consumer reads a site's zone when it first sees the site.
      await redis.hset(TIME_ZONES_KEY, String(ZONED_SITE), ZONE);
      const dayOfEvent = (site: number, eventTime: string) =>
        site === ZONED_SITE ? factDayOf(ZONE, instantOf(eventTime)) : eventTime.slice(0, 10);
      const truth = new Map<string, Set<string>>();
      const count = (site: number, eventTime: string, user: string) => {
        const day = dayOfEvent(site, eventTime);
        for (const label of [day, isoWeekOf(day), monthOf(day)]) {
          const key = `uv:{site_id=${site}}:${label}`;
          const set = truth.get(key) ?? new Set();
          set.add(user);
          truth.set(key, set);
        }
      };
      const events = generateEvents({ seed: 3, users: 5000, days: 20, endMs: now });
      const bad = [
        "{not json",
        JSON.stringify({
          user_id: "u-1",
          site_id: "a b",
          event: "view",
          event_time: "2024-03-09 10:00:00",
        }),
        JSON.stringify({ site_id: 715, event: "view", event_time: "2024-03-09 10:00:00" }),
      ];
      const records = [];
      for (let i = 0; i < 20_000; i++) {
        const next = events.next();
        if (next.done) throw new Error(`the generator ended after ${i} events`);
        const e = next.value;
        count(e.site_id, e.event_time, e.user_id);
        records.push({ partitionKey: `part-${i}`, data: Buffer.from(JSON.stringify(e)) });
        if (i % 7000 === 3)
          records.push({
            partitionKey: `bad-${i}`,
            data: Buffer.from(at(bad, records.length % 3, "bad record")),
          });
      }
      // 23:00 UTC today (less than a day ahead of the clock, so accepted) is already tomorrow
      // in Kiritimati: a date no UTC site has, whatever the hour of TEST_NOW.
      const today = utcDay(now);
      const tomorrow = dayPlus(today, 1);
      const late = { user_id: "u-late", site_id: ZONED_SITE, event: "view" };
      const lateTime = `${today} 23:00:00`;
      count(late.site_id, lateTime, late.user_id);
      records.push({
        partitionKey: "late",
        data: Buffer.from(JSON.stringify({ ...late, event_time: lateTime })),
      });
      const injected = records.filter((r) => r.partitionKey.startsWith("bad-"));
      await putAll(records, { kinesis: runtime.kinesis, stream: runtime.streamName });
      await runtime.poller.drain(60_000);
      expect(runtime.poller.stats.recordsCheckpointed).toBe(records.length);

      const rollup = await runRollupLocally({
        env: runtime.env,
        input: {},
        startTime: new Date(now),
      });
      expect(rollup.status, rollup.cause).toBe("SUCCEEDED");

      let weeks = 0;
      let months = 0;
      for (const [key, users] of truth) {
        expect(users.size, key).toBeGreaterThan(0);
        const estimate = await redis.pfcount(key);
        const tolerance = Math.max(2, Math.ceil(3 * HLL_STANDARD_ERROR * users.size));
        expect(
          Math.abs(estimate - users.size),
          `${key}: ${estimate} vs ${users.size}`,
        ).toBeLessThanOrEqual(tolerance);
        const { siteId, period } = parseKey(key);
        const zoned = siteId === String(ZONED_SITE);
        const expiry =
          expiresAtSeconds(period, DEFAULT_RETENTION) - (zoned ? ZONE_LEAD_SECONDS : 0);
        expect(await redis.call("EXPIRETIME", key), `${key} expiry`).toBe(expiry);
        if (period.kind === "day") {
          // The zoned site's days hold exactly the users of its local dates: the same
          // registers as the HLL of those users (a reference in the key's own slot).
          if (zoned) {
            const reference = `${key}:reference`;
            await redis.pfadd(reference, ...users);
            const same = hllSame(await redis.getBuffer(key), await redis.getBuffer(reference));
            await redis.del(reference);
            expect(same, `${key} holds exactly the users of its local date`).toBe(true);
          }
          continue;
        }
        if (period.kind === "week") weeks++;
        else months++;
      }
      // Tomorrow in Kiritimati holds the late event (and, when TEST_NOW is past 10:00Z, the
      // events generated since: already tomorrow there too).
      expect(truth.get(`uv:{site_id=${ZONED_SITE}}:${tomorrow}`)?.has("u-late")).toBe(true);
      for (const site of ["489", "715", "190", "875"]) {
        expect(await redis.exists(`uv:{site_id=${site}}:${tomorrow}`), `${site} in UTC`).toBe(0);
      }
      // Every site has a key for every ISO week and month its 20 days touch (the tests' own
      // calendar): 3 or 4 weeks and 1 or 2 months, depending on the day TEST_NOW falls on. The
      // zoned site's dates go on to tomorrow.
      const spanned = Array.from({ length: 20 }, (_, i) => utcDay(now - i * DAY_MS));
      const labels = (days: readonly string[], label: (day: string) => string) =>
        new Set(days.map(label)).size;
      const zonedSpan = [...spanned, tomorrow];
      expect(weeks).toBe(4 * labels(spanned, week) + labels(zonedSpan, week));
      expect(months).toBe(
        4 * labels(spanned, (d) => d.slice(0, 7)) + labels(zonedSpan, (d) => d.slice(0, 7)),
      );

      const quarantined = readFileSync(runtime.quarantineFile, "utf8")
        .trim()
        .split("\n")
        .map((l) => JSON.parse(l));
      expect(quarantined.map((q) => q.partitionKey).sort()).toEqual(
        injected.map((r) => r.partitionKey).sort(),
      );
      expect(quarantined.map((q) => Buffer.from(q.data, "base64").toString()).sort()).toEqual(
        injected.map((r) => r.data.toString()).sort(),
      );
    } finally {
      redis.disconnect();
      await runtime.stop();
    }
    for (const pid of pids) expect(pidAlive(pid), `redis-server ${pid} stopped`).toBe(false);
    for (const port of ports) expect(await portOpen(port), `port ${port} closed`).toBe(false);
  });

  it("works as the README says: `npm run local` prints a readable table and leaves nothing running", async () => {
    const dataDir = mkdtempSync(join(tmpdir(), "sketchstream-newcomer-"));
    // As a newcomer's shell would have it: without the test run's Powertools settings.
    const env = { ...process.env };
    delete env.POWERTOOLS_METRICS_DISABLED;
    delete env.POWERTOOLS_LOG_LEVEL;
    // TEST_NOW's date at 22:00 UTC, which is 12:00 the next day in Kiritimati: every site's
    // today holds events, and the zoned site's today is a date the UTC sites have not reached.
    const today = utcDay(testNowMs());
    const zonedToday = dayPlus(today, 1);
    const { stdout, stderr } = await run(
      "npm",
      [
        "run",
        "--silent",
        "local",
        "--",
        ...["--total", "20000", "--days", "10", "--data-dir", dataDir],
        ...["--now", `${today}T22:00:00Z`],
      ],
      {
        cwd: process.cwd(),
        timeout: 110_000,
        env,
      },
    );
    expect(stderr.replace(/npm warn.*\n?/g, "")).toBe("");
    expect(stdout).toContain(`sketchstream local: data in ${dataDir}`);
    expect(stdout).toContain(
      `site ${ZONED_SITE} counts in ${ZONE} (UTC+14): its days are its own (HSET ${TIME_ZONES_KEY} ${ZONED_SITE} ${ZONE})`,
    );
    expect(stdout).toMatch(/consumer done: 20,003 records in \d+ invocations/);
    expect(stdout).toContain("3 quarantined");
    expect(stdout).toMatch(/rollup: \d+ week and month keys written for 5 sites/);
    // Each zone's today, week and month, and the dates of the 10 days' events (one more in
    // Kiritimati: its first date starts 14 h before UTC's, its last is UTC's tomorrow).
    const first = dayPlus(today, -9);
    const dates = (day: string) =>
      `today ${day}, week ${week(day)}, month ${day.slice(0, 7)}; all 10 days: its dates ${first} to ${day}`;
    expect(stdout).toMatch(new RegExp(`\n  UTC +${dates(today)}\n`));
    expect(stdout).toMatch(new RegExp(`\n  ${ZONE} \\(UTC\\+14\\) +${dates(zonedToday)}\n`));
    expect(stdout).toMatch(/\n {2}site {2}zone +today +week +month +all 10 days\n/);
    // Two tables: unique users, then events; each has a row per site, with its zone.
    const [usersPart = "", eventsPart = ""] = stdout.split("\nevents: ");
    const siteRows = (text: string) =>
      text.split("\n").filter((l) => /^\s+(489|715|283|190|875)\s/.test(l));
    const zoneOf = (site: string) => (site === String(ZONED_SITE) ? ZONE : "UTC");
    const withinHll = (estimate: number, exact: number, row: string) => {
      const tolerance = Math.max(2, Math.ceil(3 * HLL_STANDARD_ERROR * exact));
      expect(Math.abs(estimate - exact), row).toBeLessThanOrEqual(tolerance);
    };
    const rows = siteRows(usersPart);
    expect(rows).toHaveLength(5);
    const visitorsBySite = new Map<string, { estimate: number; exact: number }>();
    for (const row of rows) {
      const [site = "", zone] = row.trim().split(/\s+/);
      expect(zone, row).toBe(zoneOf(site));
      // Four cells "estimate / exact (error)": today, week, month and the 10 days, each holding
      // events at 22:00 UTC (a site counted on the wrong dates would be off by far more than
      // HLL error: the zoned site's today would have no key at all).
      const cells = [...row.matchAll(/(\d+) \/ (\d+) \(([+-]\d+\.\d{2}%)\)/g)].map(
        ([, estimate, exact]) => ({ estimate: Number(estimate), exact: Number(exact) }),
      );
      expect(cells, row).toHaveLength(4);
      for (const { estimate, exact } of cells) {
        expect(exact, row).toBeGreaterThan(0);
        withinHll(estimate, exact, row);
      }
      visitorsBySite.set(site, at(cells, -1, "range cell"));
    }
    expect(eventsPart).toMatch(/^HyperLogLog estimate \/ exact count of distinct event identities/);
    expect(eventsPart).toMatch(/site {2}zone +events, all 10 days\s+events per visitor/);
    const eventRows = siteRows(eventsPart);
    expect(eventRows).toHaveLength(5);
    let exactEvents = 0;
    for (const row of eventRows) {
      // The zone, "estimate / exact (error)" of the events, then the same per visitor.
      const m =
        /^\s+(\d+)\s+(\S+)\s+(\d+) \/ (\d+) \([+-]\d+\.\d{2}%\)\s+(\d+\.\d{3}) \/ (\d+\.\d{3}) \([+-]\d+\.\d{2}%\)$/.exec(
          row,
        );
      expect(m, row).not.toBeNull();
      const [, site = "", zone, estimate, exact, ratio, exactRatio] = m ?? [];
      expect(zone, row).toBe(zoneOf(site));
      withinHll(Number(estimate), Number(exact), row);
      exactEvents += Number(exact);
      const visitors = visitorsBySite.get(site);
      expect(visitors, row).toBeDefined();
      // Each ratio is the row's own numbers divided (to the 3 decimals printed)...
      expect(Number(ratio)).toBeCloseTo(Number(estimate) / (visitors?.estimate ?? 0), 2);
      expect(Number(exactRatio)).toBeCloseTo(Number(exact) / (visitors?.exact ?? 0), 2);
      // ...and the estimate is within both counts' HLL error of the exact one.
      expect(Math.abs(Number(ratio) / Number(exactRatio) - 1), row).toBeLessThanOrEqual(
        6 * HLL_STANDARD_ERROR + 0.001,
      );
    }
    // Every valid record sent is one distinct event (no event_id: its record id).
    expect(exactEvents).toBe(20_000);
    expect(stdout).toMatch(/done in \d+\.\d+s/);
    expect(stdout).toContain("redis-cli -c -p");
    expect(stdout).toContain(
      `site ${ZONED_SITE}'s zone, and its today (${zonedToday} in ${ZONE}):`,
    );
    expect(stdout).toMatch(
      new RegExp(`redis-cli -c -p \\d+ PFCOUNT 'uv:\\{site_id=${ZONED_SITE}\\}:${zonedToday}'\n`),
    );
    expect(stdout).not.toContain("No application metrics");
    const ports = [...stdout.matchAll(/Redis on ports ([\d, ]+);/g)].flatMap((m) =>
      at(m, 1, "port list").split(", ").map(Number),
    );
    expect(ports).toHaveLength(6);
    for (const port of ports) expect(await portOpen(port), `port ${port} closed`).toBe(false);
  });

  it("with --keep serves the read API until stopped, then leaves only Redis running", async () => {
    const dataDir = mkdtempSync(join(tmpdir(), "sketchstream-keep-"));
    const now = testNowMs();
    const child = spawn(
      join("node_modules", ".bin", "tsx"),
      [
        ...["local/main.ts", "--keep", "--total", "3000", "--days", "3", "--data-dir", dataDir],
        ...["--now", new Date(now).toISOString()],
      ],
      { cwd: process.cwd(), stdio: ["ignore", "pipe", "pipe"] },
    );
    let stdout = "";
    child.stdout.on("data", (chunk: Buffer) => {
      stdout += chunk.toString();
    });
    const exited = new Promise<number | null>((resolve) => child.once("exit", resolve));
    let redisPids: number[] = [];
    try {
      const apiUrl = await new Promise<string>((resolve, reject) => {
        const timer = setTimeout(
          () => reject(new Error(`no read API after 90 s:\n${stdout}`)),
          90_000,
        );
        const check = () => {
          const m = /the read API serves the local cluster on (http:\/\/127\.0\.0\.1:\d+)/.exec(
            stdout,
          );
          if (m?.[1]) {
            clearTimeout(timer);
            resolve(m[1]);
          }
        };
        child.stdout.on("data", check);
        void exited.then(() => reject(new Error(`local exited before serving:\n${stdout}`)));
      });
      await new Promise((resolve) => setTimeout(resolve, 200));
      redisPids = (/stop it with: kill ([\d ]+)/.exec(stdout)?.[1] ?? "").split(" ").map(Number);
      expect(redisPids).toHaveLength(6);
      expect(stdout).toMatch(
        /REDIS_ENDPOINT=127\.0\.0\.1:\d+ REDIS_TLS=false npm run cli -- dashboard/,
      );
      const sites = (await (await fetch(`${apiUrl}/v1/sites`)).json()) as { sites: string[] };
      expect(sites.sites.sort()).toEqual(["190", "283", "489", "715", "875"]);
      const range = `from=${utcDay(now - 2 * DAY_MS)}&to=${utcDay(now)}`;
      const count = (await (await fetch(`${apiUrl}/v1/sites/715/count?${range}`)).json()) as {
        estimate: number;
      };
      expect(count.estimate).toBeGreaterThan(0);
      expect(stdout).toContain(`curl '${apiUrl}/v1/sites/${ZONED_SITE}/time-zone'`);
      const zone = await (await fetch(`${apiUrl}/v1/sites/${ZONED_SITE}/time-zone`)).json();
      expect(zone).toEqual({ site: String(ZONED_SITE), timeZone: ZONE, source: "registry" });
      const port = Number(new URL(apiUrl).port);
      child.kill("SIGTERM");
      await exited;
      expect(await portOpen(port), "the read API stopped").toBe(false);
      expect(stdout).toContain("read API stopped (SIGTERM). Redis is still running");
      for (const pid of redisPids) expect(pidAlive(pid), `redis-server ${pid} kept`).toBe(true);
    } finally {
      if (child.exitCode === null) child.kill("SIGKILL");
      for (const pid of redisPids) if (pid > 0 && pidAlive(pid)) process.kill(pid, "SIGTERM");
    }
  });

  it("stops with a usage message and exit code 2 on a bad flag", async () => {
    const failure = await run("npm", ["run", "--silent", "local", "--", "--total", "lots"], {
      timeout: 30_000,
    }).then(() => undefined, exitFailure);
    expect(failure?.code).toBe(2);
    expect(failure?.stderr).toContain("--total must be a whole number from 1 to");
    expect(failure?.stderr).toContain("usage: npm run local");
  });
});
