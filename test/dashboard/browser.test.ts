/**
 * The dashboard page in a real browser (Debian's chromium through playwright-core, headless,
 * no network beyond loopback), against a real Redis Cluster loaded by the real consumer and
 * rollup. What the page shows is checked against the read app's own answers, fetched here
 * directly: the table's points equal the series route's, the total equals the count route's
 * estimate, for the site, range, metric and granularity chosen in the page, and events per
 * visitor is the ratio of the two count routes' estimates. Without /usr/bin/chromium
 * (or CHROMIUM_PATH) the file is skipped with the reason printed; CI installs it.
 */

import { existsSync } from "node:fs";
import { mkdir, mkdtemp } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { type Browser, chromium, type Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type RunningDashboard, startDashboard } from "../../cli/dashboard.js";
import { type ApiRuntime, createApiRuntime } from "../../functions/api/handler.js";
import { CountBody, SeriesBody } from "../../functions/api/schemas.js";
import { AS_OF_EVENTS_SINCE, AS_OF_KEY, TIME_ZONES_KEY } from "../../functions/domain/keys.js";
import { DAY_MS, daysAgo, utcDay } from "../helpers/clock.js";
import { type ReadFixture, siteEvent, startReadFixture } from "../helpers/read-fixture.js";
import { checked } from "../helpers/schema.js";

const CHROMIUM = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";
const hasChromium = existsSync(CHROMIUM);
if (!hasChromium) {
  console.warn(
    `test/dashboard/browser.test.ts skipped: no chromium at ${CHROMIUM} (apt-get install chromium, or set CHROMIUM_PATH)`,
  );
}

/** The README's screenshot, rewritten only with UPDATE_SCREENSHOT=1. */
const DOCS_SCREENSHOT = fileURLToPath(new URL("../../docs/dashboard.png", import.meta.url));

let fixture: ReadFixture;
let app: ApiRuntime;
let dashboard: RunningDashboard;
let browser: Browser;
let page: Page;
let shots: string;
const consoleErrors: string[] = [];

beforeAll(async () => {
  if (!hasChromium) return;
  [fixture, browser, shots] = await Promise.all([
    startReadFixture({ sites: 3, days: 60 }),
    chromium.launch({
      executablePath: CHROMIUM,
      headless: true,
      args: [
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--no-first-run",
        "--disable-sync",
      ],
    }),
    mkdtemp(join(tmpdir(), "sketchstream-dashboard-")),
  ]);
  app = createApiRuntime(fixture.readerEnv, { now: () => fixture.nowMs });
  dashboard = await startDashboard({ env: fixture.readerEnv, port: 0, now: () => fixture.nowMs });
  page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
  page.on("console", (message) => {
    if (message.type() === "error") consoleErrors.push(`console: ${message.text()}`);
  });
  page.on("pageerror", (err) => consoleErrors.push(`pageerror: ${err.message}`));
  // Anything but the dashboard itself would be a CDN or a leak: fail it loudly.
  page.on("request", (request) => {
    if (!request.url().startsWith(`http://127.0.0.1:${dashboard.port}/`)) {
      consoleErrors.push(`request to another origin: ${request.url()}`);
    }
  });
}, 60_000);

afterAll(async () => {
  await browser?.close();
  await dashboard?.close();
  app?.close();
  await fixture?.stop();
});

/** The read app's own answer to a path, checked against the route's schema. */
async function fromApp<S extends typeof CountBody | typeof SeriesBody>(schema: S, path: string) {
  const response = await app.app.request(path);
  expect(response.status, path).toBe(200);
  return checked(schema, await response.json(), path);
}

/** The text of the first element `selector` matches ("" when none does). */
async function textOf(selector: string): Promise<string> {
  return (await page.locator(selector).first().textContent()) ?? "";
}

/** Waits for the page to finish the load a control change started. */
async function settled(): Promise<void> {
  await page.waitForSelector('#results[aria-busy="false"]');
}

interface Shown {
  readonly title: string;
  readonly total: number;
  readonly rows: {
    period: string;
    from: string;
    to: string;
    estimate: number;
    incomplete: boolean;
  }[];
}

async function shown(): Promise<Shown> {
  return page.evaluate(() => {
    const text = (selector: string) => document.querySelector(selector)?.textContent ?? "";
    const rows = [...document.querySelectorAll("#points tbody tr")].map((row) => {
      const cells = [...row.children].map((cell) => cell.textContent ?? "");
      return {
        period: cells[0] ?? "",
        from: cells[1] ?? "",
        to: cells[2] ?? "",
        estimate: Number((cells[3] ?? "").replaceAll(",", "")),
        incomplete: row.classList.contains("incomplete"),
      };
    });
    return {
      title: text("#results-title"),
      total: Number(text("#total").replaceAll(",", "")),
      rows,
    };
  });
}

/** What the page should show for a site, range and granularity: the app's own answers. */
async function expected(
  site: string,
  from: string,
  to: string,
  granularity: string,
  metric = "visitors",
) {
  const query = `from=${from}&to=${to}&metric=${metric}`;
  const [count, series] = await Promise.all([
    fromApp(CountBody, `/v1/sites/${site}/count?${query}`),
    fromApp(SeriesBody, `/v1/sites/${site}/series?${query}&granularity=${granularity}`),
  ]);
  return {
    total: count.estimate,
    rows: series.points.map((p) => ({
      period: p.period,
      from: p.from,
      to: p.to,
      estimate: p.estimate,
      incomplete: !p.complete,
    })),
  };
}

describe.skipIf(!hasChromium)("the dashboard page in chromium", () => {
  it("shows the API's numbers, follows the controls, marks incomplete points, and shows empty and error states", async () => {
    const today = daysAgo(0, fixture.nowMs);
    const monthAgo = daysAgo(29, fixture.nowMs);

    await page.goto(dashboard.url);
    await page.waitForSelector("#points tbody tr");
    await settled();

    // The default: the first listed site, the last 30 days ending on its today (a UTC site: the
    // server's UTC date), by day; the zone is named beside the range.
    expect(await page.inputValue("#from")).toBe(monthAgo);
    expect(await page.inputValue("#to")).toBe(today);
    expect(await page.inputValue("#granularity")).toBe("day");
    const firstSite = await page.inputValue("#site-list");
    expect(fixture.sites).toContain(firstSite);
    expect(await textOf("#time-zone")).toBe(
      `Dates are UTC dates: site ${firstSite} has no time zone set.`,
    );
    const initial = await shown();
    expect(initial.title).toContain(`Site ${firstSite}`);
    const want = await expected(firstSite, monthAgo, today, "day");
    expect(initial.rows).toEqual(want.rows);
    expect(initial.rows).toHaveLength(30);
    expect(initial.total).toBe(want.total);
    // Uniques of days do not add up to the range's: the page must not show the sum.
    expect(initial.total).toBeLessThan(initial.rows.reduce((sum, row) => sum + row.estimate, 0));
    expect(await textOf(".note")).toContain("do not add up");
    expect(await textOf("#as-of")).toContain("As of: events stored 2031-");

    // The chart: uPlot's canvas, laid out and drawn on (some pixel is not blank).
    const canvas = page.locator("#chart .uplot canvas");
    const box = await canvas.boundingBox();
    expect(box?.width ?? 0).toBeGreaterThan(300);
    expect(box?.height ?? 0).toBeGreaterThan(100);
    const inked = await canvas.evaluate((element) => {
      const c = element as HTMLCanvasElement;
      const pixels = c.getContext("2d")?.getImageData(0, 0, c.width, c.height).data ?? [];
      let count = 0;
      for (let i = 3; i < pixels.length; i += 4) if ((pixels[i] ?? 0) > 0) count++;
      return count;
    });
    expect(inked).toBeGreaterThan(1000);

    await page.screenshot({ path: join(shots, "dashboard.png") });
    expect(consoleErrors).toEqual([]);

    // Another site from the picker, then weekly points: table and total follow.
    const otherSite = fixture.sites.find((s) => s !== firstSite) ?? "";
    await page.selectOption("#site-list", otherSite);
    await settled();
    const bySite = await shown();
    expect(bySite.title).toContain(`Site ${otherSite}`);
    const wantBySite = await expected(otherSite, monthAgo, today, "day");
    expect(bySite.rows).toEqual(wantBySite.rows);
    expect(bySite.total).toBe(wantBySite.total);
    expect(bySite.total).not.toBe(initial.total);

    await page.selectOption("#granularity", "week");
    await settled();
    const byWeek = await shown();
    const wantByWeek = await expected(otherSite, monthAgo, today, "week");
    expect(byWeek.rows).toEqual(wantByWeek.rows);
    expect(byWeek.rows.length).toBeGreaterThanOrEqual(5);
    expect(byWeek.rows[0]?.period).toMatch(/^\d{4}-W\d{2}$/);
    expect(byWeek.total).toBe(wantByWeek.total);

    // A range reaching past the retention: incomplete points marked, and the total says so.
    const longAgo = daysAgo(80, fixture.nowMs);
    await page.fill("#from", longAgo);
    await settled();
    const incomplete = await shown();
    const wantIncomplete = await expected(otherSite, longAgo, today, "week");
    expect(incomplete.rows).toEqual(wantIncomplete.rows);
    expect(incomplete.rows.filter((row) => row.incomplete).length).toBeGreaterThan(0);
    expect(incomplete.rows.filter((row) => !row.incomplete).length).toBeGreaterThan(0);
    expect(await textOf("tr.incomplete td.complete")).toContain("not counted");
    expect(await page.isVisible("#total-incomplete")).toBe(true);
    expect(await textOf("#chart-caption")).toContain("incomplete point");
    await page.screenshot({ path: join(shots, "incomplete.png"), fullPage: true });
    expect(consoleErrors).toEqual([]);

    // A reversed range: the API's 400 in the banner, on the page.
    await page.fill("#from", daysAgo(1, fixture.nowMs));
    await page.fill("#to", daysAgo(3, fixture.nowMs));
    await settled();
    expect(await page.isVisible("#banner")).toBe(true);
    expect(await textOf("#banner")).toContain("HTTP 400");
    expect(await textOf("#banner")).toContain("is before");
    await page.screenshot({ path: join(shots, "error.png") });
    await page.fill("#to", today);
    await settled();
    expect(await page.isVisible("#banner")).toBe(false);

    // A site that never had an event, typed into the picker: the empty state, not an error.
    await page.fill("#site-search", "no-such-site");
    await page.press("#site-search", "Enter");
    await settled();
    expect(await page.isVisible("#empty")).toBe(true);
    expect(await textOf("#empty")).toContain("No data for site no-such-site");
    expect(await page.isVisible("#report")).toBe(false);
    expect(await page.isVisible("#banner")).toBe(false);
    await page.waitForSelector("#site-list option[disabled]", { state: "attached" });
    expect(await textOf("#site-list")).toContain('No match for "no-such-site"');

    await page.screenshot({ path: join(shots, "empty.png") });
    console.log(`dashboard screenshots: ${shots}`);

    // The only console errors allowed: the browser's own log of the 400 and 404 answers.
    expect(
      consoleErrors.filter(
        (e) => !/Failed to load resource: the server responded with a status of 40[04]/.test(e),
      ),
    ).toEqual([]);
  });

  it("switches to events, and shows events per visitor as the ratio of the two counts, or not recorded yet", async () => {
    const today = daysAgo(0, fixture.nowMs);
    const monthAgo = daysAgo(29, fixture.nowMs);
    const site = fixture.sites[0] ?? "";
    await page.goto(dashboard.url);
    await page.waitForSelector("#points tbody tr");
    await settled();
    await page.selectOption("#site-list", site);
    await settled();
    const ratio = new Intl.NumberFormat("en-US", {
      minimumFractionDigits: 2,
      maximumFractionDigits: 2,
    });
    /** The count route's events estimate over its visitors estimate, formatted as the page does. */
    const ratioOf = async (from: string, to: string) => {
      const query = `/v1/sites/${site}/count?from=${from}&to=${to}`;
      const [visitors, events] = await Promise.all([
        fromApp(CountBody, `${query}&metric=visitors`),
        fromApp(CountBody, `${query}&metric=events`),
      ]);
      expect(events.estimate).toBeGreaterThan(visitors.estimate);
      return ratio.format(events.estimate / visitors.estimate);
    };
    const wholeRange = await ratioOf(monthAgo, today);
    expect(await textOf("#events-per-visitor")).toBe(wholeRange);

    await page.selectOption("#metric", "events");
    await settled();
    const events = await shown();
    const want = await expected(site, monthAgo, today, "day", "events");
    expect(events.rows).toEqual(want.rows);
    expect(events.total).toBe(want.total);
    expect(events.title).toContain(`Site ${site}: events`);
    expect(await textOf("#total-label")).toMatch(/^Events, /);
    expect(await textOf("#events-per-visitor")).toBe(wholeRange);
    expect(await textOf("#total-note")).toContain("Distinct event identities");

    // Events recorded only from ten days ago: the ratio is over the recorded part, and says so.
    const [saved] = await fixture.admin.zmscore(AS_OF_KEY, AS_OF_EVENTS_SINCE);
    const since = daysAgo(9, fixture.nowMs);
    await fixture.admin.zadd(AS_OF_KEY, Date.parse(`${since}T12:00:00Z`), AS_OF_EVENTS_SINCE);
    try {
      await page.selectOption("#granularity", "week");
      await settled();
      const partly = await shown();
      const wantPartly = await expected(site, monthAgo, today, "week", "events");
      expect(partly.rows).toEqual(wantPartly.rows);
      expect(partly.rows.some((row) => row.incomplete)).toBe(true);
      expect(await textOf("#events-per-visitor")).toBe(await ratioOf(since, today));
      expect(await textOf("#ratio-note")).toContain(
        `Over ${since} to ${today} only: events are not recorded before ${since} (20 days of the range)`,
      );
      expect(await textOf("#total-incomplete")).toContain("20 days not counted, not recorded yet");
      expect(await textOf("tr.incomplete td.complete")).toContain("not recorded yet");

      // A range wholly before: no ratio, and the events view says why instead of a zero.
      await page.fill("#to", daysAgo(12, fixture.nowMs));
      await settled();
      expect(await page.isVisible("#empty")).toBe(true);
      expect(await textOf("#empty")).toContain(
        `Events not recorded yet for site ${site} from ${monthAgo} to ${daysAgo(12, fixture.nowMs)}: events are recorded from ${since}`,
      );
      await page.selectOption("#metric", "visitors");
      await settled();
      expect(await page.isVisible("#report")).toBe(true);
      expect(await textOf("#events-per-visitor")).toBe("not recorded yet");
      expect(await textOf("#ratio-note")).toContain(`Events are recorded from ${since}`);
      await page.screenshot({ path: join(shots, "events.png"), fullPage: true });
    } finally {
      if (saved === null || saved === undefined) {
        await fixture.admin.zrem(AS_OF_KEY, AS_OF_EVENTS_SINCE);
      } else await fixture.admin.zadd(AS_OF_KEY, saved, AS_OF_EVENTS_SINCE);
    }
    expect(
      consoleErrors.filter(
        (e) => !/Failed to load resource: the server responded with a status of 40[04]/.test(e),
      ),
    ).toEqual([]);
  });

  it("ends the default range on today in the chosen site's time zone, and shows the zone beside the range", async () => {
    // Pacific/Kiritimati is UTC+14 all year: its date is the UTC date 14 hours later.
    const kiritimatiToday = utcDay(fixture.nowMs + 14 * 3600 * 1000);
    const kiritimatiFrom = utcDay(fixture.nowMs + 14 * 3600 * 1000 - 29 * DAY_MS);
    const site = fixture.sites[2] ?? "";
    const utcSite = fixture.sites[1] ?? "";
    await fixture.admin.hset(TIME_ZONES_KEY, site, "Pacific/Kiritimati");
    try {
      await page.goto(dashboard.url);
      await page.waitForSelector("#points tbody tr");
      await settled();
      await page.selectOption("#site-list", utcSite);
      await settled();
      expect(await page.inputValue("#to")).toBe(daysAgo(0, fixture.nowMs));
      expect(await textOf("#time-zone")).toBe(
        `Dates are UTC dates: site ${utcSite} has no time zone set.`,
      );

      await page.selectOption("#site-list", site);
      await settled();
      expect(await page.inputValue("#from")).toBe(kiritimatiFrom);
      expect(await page.inputValue("#to")).toBe(kiritimatiToday);
      expect(await textOf("#time-zone")).toBe(
        `Dates are local to Pacific/Kiritimati, site ${site}'s time zone (today there: ${kiritimatiToday}).`,
      );
      // The numbers are the API's for that range.
      const want = await expected(site, kiritimatiFrom, kiritimatiToday, "day");
      const got = await shown();
      expect(got.rows).toEqual(want.rows);
      expect(got.rows.at(-1)?.period).toBe(kiritimatiToday);
      expect(got.total).toBe(want.total);

      // Back to a UTC site: the range follows its today again.
      await page.selectOption("#site-list", utcSite);
      await settled();
      expect(await page.inputValue("#to")).toBe(daysAgo(0, fixture.nowMs));

      // A range the operator picked stays, whatever site is chosen next.
      const picked = daysAgo(10, fixture.nowMs);
      await page.fill("#to", picked);
      await settled();
      await page.selectOption("#site-list", site);
      await settled();
      expect(await page.inputValue("#to")).toBe(picked);
      expect(await page.inputValue("#from")).toBe(daysAgo(29, fixture.nowMs));
      expect(await textOf("#time-zone")).toContain("Pacific/Kiritimati");
    } finally {
      await fixture.admin.hdel(TIME_ZONES_KEY, site);
    }
    expect(
      consoleErrors.filter(
        (e) => !/Failed to load resource: the server responded with a status of 40[04]/.test(e),
      ),
    ).toEqual([]);
  });

  // The README's picture: a site with a weekly rhythm and a trend, as real traffic has.
  it.runIf(process.env.UPDATE_SCREENSHOT === "1")("writes docs/dashboard.png", async () => {
    const site = "715";
    const today = Math.floor(fixture.nowMs / DAY_MS);
    const events: object[] = [];
    for (let z = today - 59; z <= today; z++) {
      const perDay = Math.round(420 + 110 * Math.sin((2 * Math.PI * z) / 7) + 3 * (z - today));
      for (let i = 0; i < perDay; i++) {
        // 17 is prime to the pool's 3000, so a day's users are distinct.
        const user = (i * 17 + z * 131) % 3000;
        events.push(siteEvent(site, z, user, i % 5 === 0 ? "purchase" : "view"));
      }
    }
    await fixture.consume(events);
    await page.goto(dashboard.url);
    await page.waitForSelector("#points tbody tr");
    await page.fill("#site-search", site);
    await page.press("#site-search", "Enter");
    await settled();
    await page.waitForSelector(`#site-list option[value="${site}"]`, { state: "attached" });
    expect(await textOf("#results-title")).toContain(`Site ${site}`);
    await mkdir(dirname(DOCS_SCREENSHOT), { recursive: true });
    await page.screenshot({ path: DOCS_SCREENSHOT });
  });
});
