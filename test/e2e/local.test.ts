/**
 * End to end on this machine: events put into the local Kinesis, the poller invoking the real
 * consumer, the rollup state machine from the real ASL, counts checked against exact truth.
 * Then `npm run local` itself, run as a newcomer would, with its output read back.
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
import { parseKey } from "../../functions/domain/keys.js";
import { expiresAtSeconds, isoWeekOf, monthOf } from "../../functions/domain/periods.js";
import { DEFAULT_RETENTION } from "../../functions/domain/runtime-env.js";
import { startLocalRuntime } from "../../local/runtime.js";
import { runRollupLocally } from "../../state-machines/local-runner.js";
import { DAY_MS, testNowMs, utcDay } from "../helpers/clock.js";
import { exitFailure } from "../helpers/exec.js";
import { HLL_STANDARD_ERROR } from "../helpers/hll.js";
import { portOpen } from "../helpers/net.js";
import { dayNumber, isoWeekLabel } from "../unit/calendar.js";

const run = promisify(execFile);

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
    try {
      const truth = new Map<string, Set<string>>();
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
        const day = e.event_time.slice(0, 10);
        for (const label of [day, isoWeekOf(day), monthOf(day)]) {
          const key = `uv:{site_id=${e.site_id}}:${label}`;
          const set = truth.get(key) ?? new Set();
          set.add(e.user_id);
          truth.set(key, set);
        }
        records.push({ partitionKey: `part-${i}`, data: Buffer.from(JSON.stringify(e)) });
        if (i % 7000 === 3)
          records.push({
            partitionKey: `bad-${i}`,
            data: Buffer.from(at(bad, records.length % 3, "bad record")),
          });
      }
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

      const redis = new Cluster([{ host: "127.0.0.1", port: runtime.redis.port }]);
      try {
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
          const { period } = parseKey(key);
          if (period.kind === "day") continue;
          if (period.kind === "week") weeks++;
          else months++;
          const expiry = expiresAtSeconds(period, DEFAULT_RETENTION);
          expect(await redis.call("EXPIRETIME", key), `${key} expiry`).toBe(expiry);
        }
        // Every site has a key for every ISO week and month the 20 days touch (the tests' own
        // calendar): 3 or 4 weeks and 1 or 2 months, depending on the day TEST_NOW falls on.
        const spanned = Array.from({ length: 20 }, (_, i) => utcDay(now - i * DAY_MS));
        const weekLabels = new Set(spanned.map((d) => isoWeekLabel(dayNumber(d))));
        const monthLabels = new Set(spanned.map((d) => d.slice(0, 7)));
        expect(weeks).toBe(5 * weekLabels.size);
        expect(months).toBe(5 * monthLabels.size);
      } finally {
        redis.disconnect();
      }

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
    const { stdout, stderr } = await run(
      "npm",
      [
        "run",
        "--silent",
        "local",
        "--",
        ...["--total", "20000", "--days", "10", "--data-dir", dataDir],
        ...["--now", new Date(testNowMs()).toISOString()],
      ],
      {
        cwd: process.cwd(),
        timeout: 110_000,
        env,
      },
    );
    expect(stderr.replace(/npm warn.*\n?/g, "")).toBe("");
    expect(stdout).toContain(`sketchstream local: data in ${dataDir}`);
    expect(stdout).toMatch(/consumer done: 20,003 records in \d+ invocations/);
    expect(stdout).toContain("3 quarantined");
    expect(stdout).toMatch(/rollup: \d+ week and month keys written for 5 sites/);
    const header = stdout.split("\n").find((l) => l.includes("site") && l.includes("today"));
    const today = utcDay(testNowMs());
    expect(header).toMatch(
      new RegExp(
        `site\\s+today ${today}\\s+week ${isoWeekLabel(dayNumber(today))}\\s+month ${today.slice(0, 7)}\\s+all 10 days`,
      ),
    );
    // Two tables: unique users, then events; each has a row per site.
    const [usersPart = "", eventsPart = ""] = stdout.split("\nevents: ");
    const siteRows = (text: string) =>
      text.split("\n").filter((l) => /^\s+(489|715|283|190|875)\s/.test(l));
    const withinHll = (estimate: number, exact: number, row: string) => {
      if (exact === 0) expect(estimate, row).toBe(0);
      else {
        const tolerance = Math.max(2, Math.ceil(3 * HLL_STANDARD_ERROR * exact));
        expect(Math.abs(estimate - exact), row).toBeLessThanOrEqual(tolerance);
      }
    };
    const rows = siteRows(usersPart);
    expect(rows).toHaveLength(5);
    const visitorsBySite = new Map<string, { estimate: number; exact: number }>();
    for (const row of rows) {
      // Four cells "estimate / exact (error)". Today, this week or this month may hold no
      // event of a site when TEST_NOW is just after midnight (0 / 0 (-)); the 10 days never do.
      const cells = [...row.matchAll(/(\d+) \/ (\d+) \(([+-]\d+\.\d{2}%|-)\)/g)].map(
        ([, estimate, exact]) => ({ estimate: Number(estimate), exact: Number(exact) }),
      );
      expect(cells, row).toHaveLength(4);
      for (const { estimate, exact } of cells) withinHll(estimate, exact, row);
      const range = at(cells, -1, "range cell");
      expect(range.exact, row).toBeGreaterThan(0);
      visitorsBySite.set(row.trim().split(/\s+/)[0] ?? "", range);
    }
    expect(eventsPart).toMatch(/^HyperLogLog estimate \/ exact count of distinct event identities/);
    expect(eventsPart).toMatch(/site\s+events, all 10 days\s+events per visitor/);
    const eventRows = siteRows(eventsPart);
    expect(eventRows).toHaveLength(5);
    let exactEvents = 0;
    for (const row of eventRows) {
      // "estimate / exact (error)" of the events, then "estimate / exact (error)" per visitor.
      const m =
        /^\s+(\d+)\s+(\d+) \/ (\d+) \([+-]\d+\.\d{2}%\)\s+(\d+\.\d{3}) \/ (\d+\.\d{3}) \([+-]\d+\.\d{2}%\)$/.exec(
          row,
        );
      expect(m, row).not.toBeNull();
      const [, site = "", estimate, exact, ratio, exactRatio] = m ?? [];
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
