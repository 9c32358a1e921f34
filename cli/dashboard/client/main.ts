/// <reference lib="dom" />
/// <reference lib="dom.iterable" />
/**
 * The dashboard page: a site picker over /v1/sites, the query controls, and for the chosen
 * site the range's total (count route), its points (series route) as a chart and a table, its
 * events per visitor (the count route's events estimate over its visitors estimate), and when
 * the data was last brought up to date. Every failure is shown in the banner; a
 * newer request aborts an older one, so a slow answer never overwrites a newer choice.
 *
 * Dates are the site's local dates: until the operator picks a range, it is the last 30 days
 * ending on today in the chosen site's time zone (by the server's clock when it served the
 * page), and the zone is shown under the range.
 */

import {
  ApiFailure,
  type CountBody,
  createApi,
  type EventsBody,
  type Metric,
  type Query,
  type SeriesBody,
  type SeriesPoint,
  type SitesBody,
  sitePath,
  type TimeZoneBody,
} from "./api.js";
import { createChart } from "./chart.js";
import type { DashboardConfig } from "./config.js";

function byId<T extends HTMLElement>(id: string): T {
  const found = document.getElementById(id);
  if (found === null) throw new Error(`the dashboard page has no #${id}`);
  return found as T;
}

const config = JSON.parse(byId("dashboard-config").textContent ?? "") as DashboardConfig;
const api = createApi(config);
const numbers = new Intl.NumberFormat("en-US");
const format = (n: number) => numbers.format(Math.round(n));
/** Events per visitor: two decimals, as the README and the tests read it. */
const ratios = new Intl.NumberFormat("en-US", {
  minimumFractionDigits: 2,
  maximumFractionDigits: 2,
});

const ui = {
  source: byId("source"),
  siteForm: byId<HTMLFormElement>("site-form"),
  search: byId<HTMLInputElement>("site-search"),
  list: byId<HTMLSelectElement>("site-list"),
  more: byId<HTMLButtonElement>("more-sites"),
  from: byId<HTMLInputElement>("from"),
  to: byId<HTMLInputElement>("to"),
  metric: byId<HTMLSelectElement>("metric"),
  event: byId<HTMLSelectElement>("event"),
  granularity: byId<HTMLSelectElement>("granularity"),
  timeZone: byId("time-zone"),
  banner: byId("banner"),
  status: byId("status"),
  results: byId("results"),
  title: byId("results-title"),
  empty: byId("empty"),
  report: byId("report"),
  totalLabel: byId("total-label"),
  total: byId<HTMLOutputElement>("total"),
  totalNote: byId("total-note"),
  totalIncomplete: byId("total-incomplete"),
  eventsPerVisitor: byId<HTMLOutputElement>("events-per-visitor"),
  ratioNote: byId("ratio-note"),
  asOf: byId("as-of"),
  chart: byId("chart"),
  chartCaption: byId("chart-caption"),
  pointsCaption: byId("points-caption"),
  points: byId<HTMLTableElement>("points"),
};

const chart = createChart(ui.chart);
const SITES_PAGE = 50;

let site: string | undefined;
let sitesCursor: string | null = null;
let sitesPrefix = "";
let sitesRequest: AbortController | undefined;
let loadRequest: AbortController | undefined;
/** Whether the operator has picked the range; until then it follows the site's today. */
let rangeEdited = false;
/** The zone each site's last answer was in: the API's word on which zone it counts in. */
const answeredZones = new Map<string, string>();

const isAbort = (err: unknown) => err instanceof DOMException && err.name === "AbortError";

function showError(err: unknown): void {
  ui.banner.textContent =
    err instanceof ApiFailure
      ? err.message
      : `The page failed: ${err instanceof Error ? err.message : String(err)}`;
  ui.banner.hidden = false;
}

function clearError(): void {
  ui.banner.hidden = true;
  ui.banner.textContent = "";
}

function busy(on: boolean, text = ""): void {
  ui.results.setAttribute("aria-busy", String(on));
  ui.status.textContent = text;
}

function showEmpty(message: string): void {
  ui.report.hidden = true;
  ui.empty.textContent = message;
  ui.empty.hidden = false;
}

/** Days as short runs: "2031-04-01 to 2031-04-09 (9 days), 2031-04-12". */
function describeDays(days: readonly string[]): string {
  const dayNumber = (d: string) => Date.parse(`${d}T00:00:00Z`) / 86_400_000;
  const runs: string[][] = [];
  for (const day of days) {
    const run = runs.at(-1);
    const last = run?.at(-1);
    if (run && last !== undefined && dayNumber(day) === dayNumber(last) + 1) run.push(day);
    else runs.push([day]);
  }
  return runs
    .map((run) => (run.length === 1 ? run[0] : `${run[0]} to ${run.at(-1)} (${run.length} days)`))
    .join(", ");
}

/** "per …" for each granularity. */
const PER: Record<string, string> = { day: "day", week: "ISO week", month: "month" };

const plural = (n: number, word: string) => `${n} ${word}${n === 1 ? "" : "s"}`;

/** The day `n` days after `day` (YYYY-MM-DD; date arithmetic, whatever the zone). */
function addDaysTo(day: string, n: number): string {
  return new Date(Date.parse(`${day}T00:00:00Z`) + n * 86_400_000).toISOString().slice(0, 10);
}

/** The day after `day`. */
function nextDay(day: string): string {
  return addDaysTo(day, 1);
}

/** The date (YYYY-MM-DD) at instant `ms` in `zone`; undefined when this browser lacks the zone. */
function dateIn(zone: string, ms: number): string | undefined {
  try {
    const parts = new Intl.DateTimeFormat("en-US", {
      timeZone: zone,
      year: "numeric",
      month: "2-digit",
      day: "2-digit",
    }).formatToParts(ms);
    const part = (type: string) => parts.find((p) => p.type === type)?.value ?? "";
    const date = `${part("year")}-${part("month")}-${part("day")}`;
    return /^\d{4}-\d{2}-\d{2}$/.test(date) ? date : undefined;
  } catch {
    return undefined;
  }
}

/** A site's zone for the page: the one its dates are in, and today there. */
interface PageZone {
  readonly name: string;
  readonly today: string;
  /** What the page says about it, under the range. */
  readonly note: string;
}

/**
 * The zone of `shown`: the one the API last answered in for it, else the registry's entry. An
 * entry the browser cannot use is UTC, as the API reads it (an entry the API finds invalid is
 * caught by its first answer, whose zone then wins).
 */
function zoneOf(shown: string, entry: TimeZoneBody): PageZone {
  const wanted = answeredZones.get(shown) ?? entry.timeZone;
  const today = dateIn(wanted, config.nowMs);
  const name = today === undefined ? "UTC" : wanted;
  const localToday = today ?? config.today;
  let note: string;
  if (name !== "UTC") {
    note = `Dates are local to ${name}, site ${shown}'s time zone (today there: ${localToday}).`;
  } else if (entry.source === "default") {
    note = `Dates are UTC dates: site ${shown} has no time zone set.`;
  } else if (entry.timeZone !== "UTC") {
    note = `Dates are UTC dates: site ${shown}'s time-zone entry "${entry.timeZone}" is not a valid zone (set one with: npm run cli -- site --site ${shown} --time-zone ZONE).`;
  } else {
    note = `Dates are UTC dates, site ${shown}'s time zone.`;
  }
  return { name, today: localToday, note };
}

/** The default range, ending on the site's today, unless the operator picked one. */
function followToday(zone: PageZone): void {
  if (rangeEdited) return;
  ui.to.value = zone.today;
  ui.from.value = addDaysTo(zone.today, -(config.rangeDays - 1));
}

/** Days from `from` to `to`, both included. */
function daysIn(from: string, to: string): number {
  return (Date.parse(`${to}T00:00:00Z`) - Date.parse(`${from}T00:00:00Z`)) / 86_400_000 + 1;
}

/**
 * Why the days of an answer are not counted, each reason with its days: past the retention of
 * their daily keys, or before events were first recorded ("not recorded yet").
 */
function whyMissing(missing: readonly string[], notRecorded: readonly string[]): string {
  const before = new Set(notRecorded);
  const expired = missing.filter((day) => !before.has(day));
  const parts: string[] = [];
  if (notRecorded.length > 0) {
    parts.push(
      `not recorded yet (before events were first recorded): ${describeDays(notRecorded)}`,
    );
  }
  if (expired.length > 0) parts.push(`past the retention: ${describeDays(expired)}`);
  return `${plural(missing.length, "day")} not counted, ${parts.join("; ")}`;
}

function instant(iso: string | null): string {
  return iso === null ? "never" : `${iso.slice(0, 10)} ${iso.slice(11, 19)} UTC`;
}

// --- Site picker ------------------------------------------------------------------------

/** Lists the sites starting with `prefix` (the next page of them with `more`). */
async function listSites(prefix: string, more: boolean): Promise<string[]> {
  sitesRequest?.abort();
  const request = new AbortController();
  sitesRequest = request;
  const found: string[] = [];
  try {
    let cursor = more ? sitesCursor : null;
    // SSCAN may return a short or empty page before the end: read on until a site shows up.
    for (let pages = 0; pages < 5; pages++) {
      const page = await api.get<SitesBody>(
        "/v1/sites",
        { prefix, limit: String(SITES_PAGE), cursor: cursor ?? undefined },
        request.signal,
      );
      found.push(...page.sites);
      cursor = page.cursor;
      if (found.length > 0 || cursor === null) break;
    }
    if (!more) ui.list.replaceChildren();
    ui.list.querySelector("option[disabled]")?.remove();
    for (const id of found) ui.list.append(new Option(id, id, false, id === site));
    if (ui.list.options.length === 0) {
      const none = new Option(prefix ? `No match for "${prefix}"` : "No sites yet", "");
      none.disabled = true;
      ui.list.append(none);
    }
    sitesCursor = cursor;
    sitesPrefix = prefix;
    ui.more.hidden = cursor === null;
    return found;
  } catch (err) {
    if (!isAbort(err)) showError(err);
    return [];
  }
}

function chooseSite(next: string): void {
  site = next;
  ui.list.value = next;
  void load();
}

// --- Report -----------------------------------------------------------------------------

function fillEvents(events: readonly string[]): void {
  const chosen = ui.event.value;
  ui.event.replaceChildren(new Option("All events", ""), ...events.map((e) => new Option(e, e)));
  ui.event.value = events.includes(chosen) ? chosen : "";
}

function tableRow(point: SeriesPoint): HTMLTableRowElement {
  const row = document.createElement("tr");
  const cells = [point.period, point.from, point.to, format(point.estimate)];
  cells.forEach((text, i) => {
    const cell = document.createElement(i === 0 ? "th" : "td");
    if (i === 0) cell.setAttribute("scope", "row");
    if (i === 3) cell.className = "num";
    cell.textContent = text;
    row.append(cell);
  });
  const complete = document.createElement("td");
  complete.className = "complete";
  if (point.complete) {
    complete.textContent = "yes";
  } else {
    row.className = "incomplete";
    complete.textContent = `incomplete: ${whyMissing(point.missing, point.notRecorded)}`;
  }
  row.append(complete);
  return row;
}

/** Events per visitor over the range, or over the part of it where events are recorded. */
interface EventsPerVisitor {
  readonly value: string;
  readonly note: string;
  /** False when no day of the range has events recorded: the value is words, not a number. */
  readonly recorded: boolean;
}

function ratioOf(events: CountBody, visitors: CountBody): string {
  return visitors.estimate === 0 ? "–" : ratios.format(events.estimate / visitors.estimate);
}

function ratioNote(events: CountBody, visitors: CountBody): string {
  return `${format(events.estimate)} events ÷ ${format(visitors.estimate)} unique visitors (count estimates, standard error 0.81% each).`;
}

/**
 * The ratio of the count route's events and visitors estimates over the range. Days before
 * events were first recorded would lower it without reason: when some are in the range, the
 * ratio is over the rest of the range (two more counts), and when all are, there is none.
 */
async function eventsPerVisitor(
  shown: string,
  query: Query & { readonly from: string; readonly to: string },
  visitors: CountBody,
  events: CountBody,
  signal: AbortSignal,
): Promise<EventsPerVisitor> {
  const notRecorded = events.notRecorded;
  const lastNotRecorded = notRecorded.at(-1);
  if (lastNotRecorded === undefined) {
    return { value: ratioOf(events, visitors), note: ratioNote(events, visitors), recorded: true };
  }
  const since = events.asOf.eventsSince;
  if (notRecorded.length >= daysIn(query.from, query.to)) {
    return {
      value: "not recorded yet",
      recorded: false,
      note:
        since === null
          ? "Events have not been recorded yet: the consumer has stored none since the events metric was added."
          : `Events are recorded from ${since.slice(0, 10)}: pick a range that reaches that day.`,
    };
  }
  const recorded = { ...query, from: nextDay(lastNotRecorded) };
  const path = sitePath(shown, "count");
  const [partVisitors, partEvents] = await Promise.all([
    api.get<CountBody>(path, { ...recorded, metric: "visitors" }, signal),
    api.get<CountBody>(path, { ...recorded, metric: "events" }, signal),
  ]);
  return {
    value: ratioOf(partEvents, partVisitors),
    recorded: true,
    note: `Over ${recorded.from} to ${recorded.to} only: events are not recorded before ${recorded.from} (${plural(notRecorded.length, "day")} of the range). ${ratioNote(partEvents, partVisitors)}`,
  };
}

const METRIC_NAMES: Record<Metric, string> = { visitors: "Unique visitors", events: "Events" };

const TOTAL_NOTES: Record<Metric, string> = {
  visitors:
    "The range's true total: a visitor seen on several days counts once here but once in each day's (or week's) number, so the points do not add up to it.",
  events:
    "Distinct event identities (each event's event_id, else its Kinesis record id), so a retried or replayed record counts once. Each event belongs to one day, so the points add up to this total within their error.",
};

function showReport(
  shown: string,
  count: CountBody,
  series: SeriesBody,
  event: string,
  ratio: EventsPerVisitor,
): void {
  const metric = METRIC_NAMES[count.metric];
  const per = PER[series.granularity] ?? series.granularity;
  const events = event ? `event ${event}` : "all event types";
  ui.title.textContent = `Site ${shown}: ${metric.toLowerCase()}, ${events}, ${count.from} to ${count.to}`;
  ui.totalLabel.textContent = `${metric}, ${count.from} to ${count.to} (${events})`;
  ui.total.value = format(count.estimate);
  ui.totalNote.textContent = TOTAL_NOTES[count.metric];
  ui.totalIncomplete.hidden = count.complete;
  ui.totalIncomplete.textContent = count.complete
    ? ""
    : `Incomplete: ${whyMissing(count.missing, count.notRecorded)}.`;
  ui.eventsPerVisitor.value = ratio.value;
  ui.eventsPerVisitor.classList.toggle("not-recorded", !ratio.recorded);
  ui.ratioNote.textContent = ratio.note;
  const since = count.asOf.eventsSince;
  ui.asOf.textContent = `As of: events stored ${instant(count.asOf.consumer)}; rollup ${instant(count.asOf.rollup)}; events recorded since ${since === null ? "never (not recorded yet)" : instant(since)}`;
  const incomplete = series.points.filter((p) => !p.complete).length;
  ui.chartCaption.textContent = `${metric} per ${per}.${incomplete > 0 ? ` Hollow orange markers: ${incomplete} incomplete point${incomplete === 1 ? "" : "s"} (days not counted; see the table).` : ""} The table below lists the same points.`;
  ui.chart.setAttribute("role", "img");
  ui.chart.setAttribute("aria-label", `Chart of ${metric.toLowerCase()} per ${per}`);
  ui.pointsCaption.textContent = `${metric} per ${per} (${series.points.length} point${series.points.length === 1 ? "" : "s"})`;
  const body = ui.points.tBodies[0] ?? ui.points.createTBody();
  body.replaceChildren(...series.points.map(tableRow));
  ui.empty.hidden = true;
  ui.report.hidden = false;
  // Drawn once visible, so uPlot measures the real width.
  chart.show(series.points, metric, format);
}

/** Loads the chosen site's events, total and points for the controls' values. */
async function load(): Promise<void> {
  const shown = site;
  if (shown === undefined) return;
  loadRequest?.abort();
  const request = new AbortController();
  loadRequest = request;
  const { signal } = request;
  clearError();
  busy(true, `Loading site ${shown}…`);
  ui.title.textContent = `Site ${shown}`;
  try {
    // Asked beside the event types: the range's default and its dates depend on the zone.
    const zoneEntry = api.get<TimeZoneBody>(sitePath(shown, "time-zone"), {}, signal);
    zoneEntry.catch(() => {});
    let events: EventsBody;
    try {
      events = await api.get<EventsBody>(sitePath(shown, "events"), {}, signal);
    } catch (err) {
      if (err instanceof ApiFailure && err.kind === "unknown_site") {
        fillEvents([]);
        ui.timeZone.textContent = "";
        showEmpty(
          `No data for site ${shown}: it has never had a counted event. Check the id, or pick a site from the list.`,
        );
        return;
      }
      throw err;
    }
    fillEvents(events.events);
    const entry = await zoneEntry;
    const zone = zoneOf(shown, entry);
    followToday(zone);
    ui.timeZone.textContent = zone.note;
    const from = ui.from.value;
    const to = ui.to.value;
    if (from === "" || to === "") {
      showError(new ApiFailure(0, "input", "Pick both dates of the range (From and To)."));
      return;
    }
    const event = ui.event.value;
    const metric: Metric = ui.metric.value === "events" ? "events" : "visitors";
    const query = { from, to, event };
    // Both metrics' counts: the chosen one is the total, and together they give events per visitor.
    const [visitorsCount, eventsCount, series] = await Promise.all([
      api.get<CountBody>(sitePath(shown, "count"), { ...query, metric: "visitors" }, signal),
      api.get<CountBody>(sitePath(shown, "count"), { ...query, metric: "events" }, signal),
      api.get<SeriesBody>(
        sitePath(shown, "series"),
        { ...query, metric, granularity: ui.granularity.value },
        signal,
      ),
    ]);
    const count = metric === "events" ? eventsCount : visitorsCount;
    if (count.timeZone !== undefined) {
      const before = answeredZones.get(shown);
      answeredZones.set(shown, count.timeZone);
      if (count.timeZone !== zone.name && count.timeZone !== before) {
        // The API counts in another zone than the page assumed (an entry only it finds
        // invalid, or one changed meanwhile): its zone wins, and the default range follows it
        // (once: a zone this browser lacks stays UTC here).
        if (!rangeEdited) {
          void load();
          return;
        }
        ui.timeZone.textContent = zoneOf(shown, entry).note;
      }
    }
    const what = event ? ` for event ${event}` : "";
    if (metric === "events" && count.notRecorded.length >= daysIn(from, to)) {
      const since = count.asOf.eventsSince;
      showEmpty(
        `Events not recorded yet for site ${shown} from ${from} to ${to}${what}: ${since === null ? "the consumer has stored none since the events metric was added" : `events are recorded from ${since.slice(0, 10)}; pick a range that reaches that day`}.`,
      );
      return;
    }
    if (count.estimate === 0 && series.points.every((p) => p.estimate === 0)) {
      showEmpty(
        `No data for site ${shown} from ${from} to ${to}${what}: try a wider range${event ? " or all events" : ""}. As of: events stored ${instant(count.asOf.consumer)}.`,
      );
      return;
    }
    const ratio = await eventsPerVisitor(shown, query, visitorsCount, eventsCount, signal);
    showReport(shown, count, series, event, ratio);
  } catch (err) {
    if (isAbort(err)) return;
    ui.report.hidden = true;
    ui.empty.hidden = true;
    showError(err);
  } finally {
    if (loadRequest === request) busy(false);
  }
}

// --- Wiring -----------------------------------------------------------------------------

function debounce(run: () => void, ms: number): () => void {
  let timer: ReturnType<typeof setTimeout> | undefined;
  return () => {
    clearTimeout(timer);
    timer = setTimeout(run, ms);
  };
}

ui.source.textContent =
  config.mode === "local"
    ? `Local read app, Redis at ${config.source}`
    : `Read API at ${config.source}, signed with your AWS credentials`;
ui.from.value = config.defaultFrom;
ui.to.value = config.today;

ui.search.addEventListener(
  "input",
  debounce(() => void listSites(ui.search.value.trim(), false), 200),
);
ui.siteForm.addEventListener("submit", (e) => {
  e.preventDefault();
  const typed = ui.search.value.trim();
  if (typed !== "") chooseSite(typed);
});
ui.list.addEventListener("change", () => {
  if (ui.list.value !== "") chooseSite(ui.list.value);
});
ui.more.addEventListener("click", () => void listSites(sitesPrefix, true));
for (const control of [ui.from, ui.to]) {
  // Programmatic changes fire no event: only the operator's own pick stops the range following
  // the site's today.
  control.addEventListener("change", () => {
    rangeEdited = true;
  });
}
for (const control of [ui.from, ui.to, ui.metric, ui.event, ui.granularity]) {
  control.addEventListener("change", () => void load());
}

// The first listed site, so the page shows something without a click.
void listSites("", false).then((first) => {
  if (first[0] !== undefined) chooseSite(first[0]);
  else if (ui.banner.hidden) {
    showEmpty("No site has counted events yet: send some (npm run cli -- send) and reload.");
  }
});
