/**
 * `series` against a real Redis Cluster loaded by the real consumer and rollup
 * (test/helpers/read-fixture.ts): read directly it prints the same JSON as the read API's
 * series route (the real app), its CSV and table carry the same numbers, the table marks the
 * points the API calls incomplete, and through API_URL (the real app served on loopback) the
 * output is the same again. Bad flags are usage errors.
 */

import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type ApiServer, startApiServer } from "../../cli/api.js";
import { runCli } from "../../cli/app.js";
import { INCOMPLETE_MARK, type Series } from "../../cli/series.js";
import { createApiRuntime } from "../../functions/api/handler.js";
import { SeriesBody } from "../../functions/api/schemas.js";
import { AS_OF_EVENTS_SINCE, AS_OF_KEY } from "../../functions/domain/keys.js";
import { DAY_MS, daysAgo, utcDay } from "../helpers/clock.js";
import { type ReadFixture, startReadFixture } from "../helpers/read-fixture.js";
import { checked } from "../helpers/schema.js";
import { captureIo } from "./capture.js";

let fixture: ReadFixture;
let site: string;
let app: ReturnType<typeof createApiRuntime>;

beforeAll(async () => {
  fixture = await startReadFixture({ sites: 1, usersPerDay: 100 });
  site = fixture.sites[0] ?? "";
  app = createApiRuntime(fixture.readerEnv, { now: () => fixture.nowMs });
}, 60_000);

afterAll(async () => {
  app?.close();
  await fixture?.stop();
});

async function cli(argv: string[], env: Record<string, string> = fixture.readerEnv) {
  const { out, io } = captureIo(env);
  const code = await runCli(argv, {
    ...io,
    now: () => fixture.nowMs,
    apiCredentials: { accessKeyId: "AKIDTEST", secretAccessKey: "test-secret" },
  });
  return { code, ...out };
}

async function apiSeries(query: Record<string, string>): Promise<Series> {
  const response = await app.app.request(
    `/v1/sites/${site}/series?${new URLSearchParams(query).toString()}`,
  );
  expect(response.status).toBe(200);
  return checked(SeriesBody, await response.json(), "the API's series");
}

/** The days from `a` to `b`, both included. */
function daysBetween(a: string, b: string): string[] {
  const out: string[] = [];
  for (let t = Date.parse(`${a}T00:00:00Z`); t <= Date.parse(`${b}T00:00:00Z`); t += DAY_MS) {
    out.push(utcDay(t));
  }
  return out;
}

/** CSV rows as objects keyed by the header. */
function parseCsv(text: string): Record<string, string>[] {
  const [header = "", ...rows] = text.trimEnd().split("\n");
  const names = header.split(",");
  return rows.map((row) => Object.fromEntries(row.split(",").map((cell, i) => [names[i], cell])));
}

const from = () => daysAgo(45, fixture.nowMs);
const to = () => daysAgo(0, fixture.nowMs);

describe("series read directly from Redis", () => {
  it("--json is the read API's series for day, week and month, an event type included", async () => {
    for (const [granularity, event] of [
      ["day", undefined],
      ["week", undefined],
      ["week", "purchase"],
      ["month", undefined],
    ] as const) {
      const args = ["--site", site, "--from", from(), "--to", to(), "--granularity", granularity];
      const result = await cli(["series", ...args, ...(event ? ["--event", event] : []), "--json"]);
      expect(result.code, result.stderr).toBe(0);
      const expected = await apiSeries({
        from: from(),
        to: to(),
        granularity,
        ...(event ? { event } : {}),
      });
      expect(JSON.parse(result.stdout)).toEqual(expected);
      expect(expected.timeZone).toBe("UTC");
      // Not an empty answer: every point has visitors, and the edges are clipped to the range.
      expect(expected.points.every((p) => p.estimate > 0 && p.complete)).toBe(true);
      expect(expected.points[0]?.from).toBe(from());
      expect(expected.points.at(-1)?.to).toBe(to());
    }
    const days = (await apiSeries({ from: from(), to: to(), granularity: "day" })).points;
    expect(days).toHaveLength(46);
  });

  it("--csv has a header and the API's numbers, for day and week", async () => {
    for (const granularity of ["day", "week"]) {
      const args = ["--site", site, "--from", from(), "--to", to(), "--granularity", granularity];
      const result = await cli(["series", ...args, "--csv"]);
      expect(result.code, result.stderr).toBe(0);
      expect(result.stdout.split("\n")[0]).toBe(
        "period,from,to,estimate,complete,missing_days,not_recorded_days",
      );
      const expected = await apiSeries({ from: from(), to: to(), granularity });
      expect(parseCsv(result.stdout)).toEqual(
        expected.points.map((p) => ({
          period: p.period,
          from: p.from,
          to: p.to,
          estimate: String(p.estimate),
          complete: String(p.complete),
          missing_days: String(p.missing.length),
          not_recorded_days: String(p.notRecorded.length),
        })),
      );
    }
  });

  it("prints an aligned table that marks exactly the API's incomplete points and explains the mark", async () => {
    // 75 to 50 days ago: the oldest days are past the 62-day retention of daily keys.
    const [a, b] = [daysAgo(75, fixture.nowMs), daysAgo(50, fixture.nowMs)];
    const result = await cli([
      "series",
      "--site",
      site,
      "--from",
      a,
      "--to",
      b,
      "--granularity",
      "week",
    ]);
    expect(result.code, result.stderr).toBe(0);
    const expected = await apiSeries({ from: a, to: b, granularity: "week" });
    const incomplete = expected.points.filter((p) => !p.complete);
    expect(incomplete.length).toBeGreaterThan(0);
    expect(incomplete.length).toBeLessThan(expected.points.length);

    const lines = result.stdout.split("\n");
    expect(lines[0]).toBe(
      `unique visitors (HyperLogLog estimates, standard error 0.81%) of site ${site}, all events, ${a} to ${b}, by week`,
    );
    expect(lines[1]).toMatch(/^ {2}period\s+from\s+to\s+estimate$/);
    const rows = lines.slice(2, 2 + expected.points.length);
    const estimateEnd = (lines[1] ?? "").length;
    expected.points.forEach((p, i) => {
      const row = rows[i] ?? "";
      expect(row.startsWith(`  ${p.period}`), row).toBe(true);
      expect(row).toContain(`${p.from}  ${p.to}`);
      // Right-aligned under "estimate", then the mark for an incomplete point only.
      expect(row.slice(0, estimateEnd).trimEnd().endsWith(` ${p.estimate}`), row).toBe(true);
      expect(row.slice(0, estimateEnd)).toHaveLength(estimateEnd);
      expect(row.slice(estimateEnd).trim()).toBe(p.complete ? "" : INCOMPLETE_MARK);
    });
    const missing = incomplete.flatMap((p) => p.missing).sort();
    // The test's own calendar: the days of the range at least 63 days old are gone.
    const expectedMissing: string[] = [];
    for (let n = 75; n >= 63; n--) expectedMissing.push(daysAgo(n, fixture.nowMs));
    expect(missing).toEqual(expectedMissing);
    expect(result.stdout).toContain(
      `${INCOMPLETE_MARK} incomplete: days past the retention of their daily keys are no longer counted (13 days: ${expectedMissing[0]} to ${expectedMissing.at(-1)})`,
    );
    expect(result.stdout).toContain("the points do not add up to the range's unique visitors");
    expect(result.stdout).toContain(`npm run cli -- count --site ${site} --from ${a} --to ${b}`);
    expect(result.stdout).toMatch(/as of: consumer \d{4}-\d\d-\d\dT[\d:.]+Z, rollup \d{4}-/);
  });

  it("is right that the points do not add up: their sum exceeds the range's unique count", async () => {
    const series = await cli(["series", "--site", site, "--from", from(), "--to", to(), "--json"]);
    const points = checked(SeriesBody, JSON.parse(series.stdout), "series --json").points;
    const count = await cli(["count", "--site", site, "--from", from(), "--to", to(), "--json"]);
    expect(count.code, count.stderr).toBe(0);
    const total = JSON.parse(count.stdout).estimate as number;
    expect(points.reduce((sum, p) => sum + p.estimate, 0)).toBeGreaterThan(total * 1.5);
  });
});

describe("series --metric events", () => {
  it("--json is the API's events series; the table names events and marks the days before events were first recorded", async () => {
    const args = ["--site", site, "--from", from(), "--to", to(), "--granularity", "week"];
    const json = await cli(["series", ...args, "--metric", "events", "--json"]);
    expect(json.code, json.stderr).toBe(0);
    const expected = await apiSeries({
      from: from(),
      to: to(),
      granularity: "week",
      metric: "events",
    });
    expect(JSON.parse(json.stdout)).toEqual(expected);
    expect(expected.metric).toBe("events");
    const visitors = await apiSeries({ from: from(), to: to(), granularity: "week" });
    // Every visitor has at least one event: events outnumber visitors in every point.
    expected.points.forEach((p, i) => {
      expect(p.estimate).toBeGreaterThan(visitors.points[i]?.estimate ?? Infinity);
    });

    const [saved] = await fixture.admin.zmscore(AS_OF_KEY, AS_OF_EVENTS_SINCE);
    const since = daysAgo(40, fixture.nowMs);
    await fixture.admin.zadd(AS_OF_KEY, Date.parse(`${since}T06:00:00Z`), AS_OF_EVENTS_SINCE);
    try {
      const table = await cli(["series", ...args, "--metric", "events"]);
      expect(table.code, table.stderr).toBe(0);
      const lines = table.stdout.split("\n");
      expect(lines[0]).toBe(
        `events (distinct event identities: each event's event_id, else its Kinesis record id; HyperLogLog estimates, standard error 0.81%) of site ${site}, all events, ${from()} to ${to()}, by week`,
      );
      const notRecorded = daysBetween(from(), daysAgo(41, fixture.nowMs));
      expect(table.stdout).toContain(
        `${INCOMPLETE_MARK} not recorded: events are recorded from ${since} (as of ${since}T06:00:00.000Z); the days before are not counted (5 days: ${notRecorded[0]} to ${notRecorded.at(-1)}).`,
      );
      expect(notRecorded).toHaveLength(5);
      expect(table.stdout).toContain(
        `the range's own estimate: npm run cli -- count --site ${site} --from ${from()} --to ${to()} --metric events`,
      );
      expect(table.stdout).toContain(`events recorded since ${since}T06:00:00.000Z`);
      // Exactly the points holding those days are marked.
      const marked = lines.filter((l) => l.endsWith(` ${INCOMPLETE_MARK}`)).length;
      const points = await apiSeries({
        from: from(),
        to: to(),
        granularity: "week",
        metric: "events",
      });
      expect(marked).toBe(points.points.filter((p) => p.notRecorded.length > 0).length);
      expect(marked).toBeGreaterThan(0);
    } finally {
      if (saved === null || saved === undefined)
        await fixture.admin.zrem(AS_OF_KEY, AS_OF_EVENTS_SINCE);
      else await fixture.admin.zadd(AS_OF_KEY, saved, AS_OF_EVENTS_SINCE);
    }
  });

  it("rejects an unknown --metric as a usage error", async () => {
    const result = await cli([
      "series",
      "--site",
      site,
      "--from",
      from(),
      "--to",
      to(),
      "--metric",
      "bogus",
    ]);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('series: --metric must be visitors or events, got "bogus"');
  });
});

describe("series through the read API (API_URL)", () => {
  let server: ApiServer;
  beforeAll(async () => {
    server = await startApiServer(fixture.readerEnv, { port: 0, now: () => fixture.nowMs });
  });
  afterAll(async () => {
    await server?.close();
  });

  it("prints what the direct path prints, without any Redis setting", async () => {
    const apiEnv = { API_URL: server.url, AWS_REGION: "eu-west-1" };
    for (const format of [[], ["--json"], ["--csv"], ["--metric", "events"]]) {
      const args = [
        "series",
        "--site",
        site,
        "--from",
        from(),
        "--to",
        to(),
        "--granularity",
        "week",
        ...format,
      ];
      const direct = await cli(args);
      const viaApi = await cli(args, apiEnv);
      expect(viaApi.code, viaApi.stderr).toBe(0);
      expect(viaApi.stderr).toBe("");
      expect(viaApi.stdout).toBe(direct.stdout);
    }
  });
});

describe("series flags", () => {
  const usage = async (argv: string[], message: string | RegExp) => {
    const result = await cli(["series", ...argv]);
    expect(result.code, result.stderr).toBe(2);
    expect(result.stderr).toMatch(message);
    expect(result.stderr).toContain("Usage: npm run cli --");
    expect(result.stdout).toBe("");
  };
  const today = () => utcDay(fixture.nowMs);

  it("are usage errors (exit 2) when missing, malformed or too large", async () => {
    await usage(["--from", today(), "--to", today()], "series: --site is required");
    await usage(["--site", "a b", "--from", today(), "--to", today()], /series: .*site/);
    await usage(["--site", "715", "--from", today()], "--from needs --to as well");
    await usage(["--site", "715"], "series: say which days with --from and --to");
    await usage(
      ["--site", "715", "--from", today(), "--to", daysAgo(1, fixture.nowMs)],
      "is before --from",
    );
    await usage(
      ["--site", "715", "--from", today(), "--to", today(), "--granularity", "year"],
      'series: --granularity must be one of day, week, month, got "year"',
    );
    await usage(
      ["--site", "715", "--from", today(), "--to", today(), "--json", "--csv"],
      "series: give --json or --csv, not both",
    );
    await usage(
      ["--site", "715", "--from", utcDay(fixture.nowMs - 1000 * DAY_MS), "--to", today()],
      /is 1001 points, and a series may have at most 1000: use a shorter range or a coarser --granularity/,
    );
    await usage(
      [
        ...["--site", "715", "--granularity", "month"],
        ...["--from", utcDay(fixture.nowMs - 3660 * DAY_MS), "--to", today()],
      ],
      "series: a range may span at most 3660 days",
    );
  });

  it("accepts 1000 daily points", async () => {
    const result = await cli([
      ...["series", "--site", site, "--csv"],
      ...["--from", utcDay(fixture.nowMs - 999 * DAY_MS), "--to", today()],
    ]);
    expect(result.code, result.stderr).toBe(0);
    expect(parseCsv(result.stdout)).toHaveLength(1000);
  });
});
