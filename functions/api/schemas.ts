/**
 * The read API's inputs and outputs as valibot schemas: the routes validate with them and the
 * OpenAPI document is generated from them, so the two cannot drift apart.
 */

import * as v from "valibot";
import { MAX_RANGE_DAYS } from "../domain/cover.js";
import { EVENT_TYPE_RE, METRICS, SITE_ID_RE } from "../domain/keys.js";
import { dayCount, isDay, type PeriodKind, periodsInRange } from "../domain/periods.js";
import { isSitesCursor } from "../read/catalog.js";

/** Most points one series may have. */
export const MAX_SERIES_POINTS = 1000;
/** Most sites one page may have. */
export const MAX_SITES_PAGE = 1000;
export const GRANULARITIES = ["day", "week", "month"] as const satisfies readonly PeriodKind[];

const SiteId = v.pipe(
  v.string(),
  v.regex(
    SITE_ID_RE,
    (issue) =>
      `site "${issue.input}" is not a site id: use 1-64 characters of A-Z, a-z, 0-9, "_" or "-"`,
  ),
  v.description("Site id, as in the events' site_id"),
);

export const SiteParams = v.strictObject({ site: SiteId });

const Day = v.pipe(
  v.string(),
  v.check(
    isDay,
    (issue) => `"${issue.input}" is not a calendar date: use YYYY-MM-DD, e.g. 2024-03-09`,
  ),
  v.description("A date, YYYY-MM-DD (the site's calendar)"),
);

const EventType = v.pipe(
  v.string(),
  v.regex(
    EVENT_TYPE_RE,
    (issue) =>
      `event type "${issue.input}" is not allowed: use 1-32 characters of a-z, 0-9, "_" or "-"`,
  ),
  v.description("Count only events of this type (e.g. purchase)"),
);

const Metric = v.optional(
  v.pipe(
    v.picklist(METRICS, (issue) => `unknown metric "${issue.input}": use ${METRICS.join(" or ")}`),
    v.description(
      "What to count: visitors (unique user ids, the default) or events (distinct event identities: event_id, else the Kinesis record id)",
    ),
  ),
  "visitors",
);

const RANGE_FIELDS = {
  from: Day,
  to: Day,
  event: v.optional(EventType),
  metric: Metric,
};

type RangeInput = { from: string; to: string };

/**
 * Whether both ends are dates and in order. Checks across fields run even when a field failed
 * its own check, so they must not trust the fields before this.
 */
function isRange(q: RangeInput): boolean {
  return isDay(q.from) && isDay(q.to) && q.from <= q.to;
}

/** `from` not after `to`. */
function rangeOrdered<T extends RangeInput>() {
  return v.check<T, (issue: v.CheckIssue<T>) => string>(
    (q) => !isDay(q.from) || !isDay(q.to) || q.from <= q.to,
    (issue) => `"to" (${issue.input.to}) is before "from" (${issue.input.from})`,
  );
}

/** At most MAX_RANGE_DAYS days from `from` to `to`. */
function rangeBounded<T extends RangeInput>() {
  return v.check<T, string>(
    (q) => !isRange(q) || dayCount(q.from, q.to) <= MAX_RANGE_DAYS,
    `a range may span at most ${MAX_RANGE_DAYS} days: ask for a shorter one`,
  );
}

export const CountQuery = v.pipe(v.strictObject(RANGE_FIELDS), rangeOrdered(), rangeBounded());

export const SeriesQuery = v.pipe(
  v.strictObject({
    ...RANGE_FIELDS,
    granularity: v.pipe(
      v.picklist(
        GRANULARITIES,
        (issue) => `unknown granularity "${issue.input}": use day, week or month`,
      ),
      v.description("One point per day, ISO week or month"),
    ),
  }),
  rangeOrdered(),
  rangeBounded(),
  v.check(
    (q) =>
      !isRange(q) ||
      dayCount(q.from, q.to) > MAX_RANGE_DAYS ||
      periodsInRange(q.from, q.to, q.granularity).length <= MAX_SERIES_POINTS,
    `a series may have at most ${MAX_SERIES_POINTS} points: use a shorter range or a coarser granularity`,
  ),
);

export const SitesQuery = v.strictObject({
  prefix: v.optional(
    v.pipe(
      v.string(),
      v.regex(
        /^[A-Za-z0-9_-]{0,64}$/,
        (issue) => `prefix "${issue.input}" cannot start a site id: use A-Z, a-z, 0-9, "_" or "-"`,
      ),
      v.description("Only sites whose id starts with this"),
    ),
    "",
  ),
  cursor: v.optional(
    v.pipe(
      v.string(),
      v.check(isSitesCursor, "cursor is not one this API returned: start again without it"),
      v.description("The cursor of the previous page"),
    ),
  ),
  limit: v.optional(
    v.pipe(
      v.string(),
      v.regex(/^\d{1,4}$/, `limit must be a whole number from 1 to ${MAX_SITES_PAGE}`),
      v.transform(Number),
      v.minValue(1, `limit must be a whole number from 1 to ${MAX_SITES_PAGE}`),
      v.maxValue(MAX_SITES_PAGE, `limit must be a whole number from 1 to ${MAX_SITES_PAGE}`),
    ),
    "100",
  ),
});

const Instant = v.nullable(
  v.pipe(v.string(), v.isoTimestamp(), v.description("ISO-8601 instant; null when never")),
);

export const AsOfSchema = v.pipe(
  v.strictObject({
    consumer: Instant,
    rollup: Instant,
    eventsSince: v.pipe(
      Instant,
      v.description(
        "The first time the consumer stored events; days before its date in the site's time zone are not recorded for the events metric. Null when no event has been recorded yet",
      ),
    ),
  }),
  v.description(
    "When the data was last brought up to date: the last batch the consumer stored, the last rollup that succeeded; and since when events are recorded",
  ),
);

export const ErrorBody = v.strictObject({
  error: v.pipe(
    v.picklist(["invalid_request", "not_found", "unknown_site", "unavailable", "internal"]),
    v.description("Machine-readable kind"),
  ),
  message: v.pipe(v.string(), v.description("What was wrong and what to do")),
});

export const SitesBody = v.strictObject({
  sites: v.array(v.string()),
  cursor: v.pipe(v.nullable(v.string()), v.description("Next page's cursor; null at the end")),
});

export const EventsBody = v.strictObject({ site: v.string(), events: v.array(v.string()) });

export const TimeZoneBody = v.strictObject({
  site: v.string(),
  timeZone: v.string(),
  source: v.picklist(["registry", "default"]),
});

const Estimate = v.pipe(v.number(), v.integer(), v.minValue(0));
const Days = v.array(v.string());
const Missing = v.pipe(
  Days,
  v.description(
    "Days not counted: past the retention of their daily keys, or before the metric was first recorded (those are also in notRecorded)",
  ),
);
const NotRecorded = v.pipe(
  Days,
  v.description(
    "Days before the metric was first recorded (events: before the site's local date of asOf.eventsSince, or every day when it is null); always empty for visitors",
  ),
);
/**
 * Optional in the schema only so that a CLI or dashboard of this version still reads the
 * answers of a read API deployed before it: this API always sends it.
 */
const AnswerTimeZone = v.optional(
  v.pipe(
    v.string(),
    v.description(
      "The time zone the dates are in: the site's (GET /v1/sites/{site}/time-zone), or UTC when it has none or its entry is not a valid zone. Today, and so which days are past their retention, is reckoned in it",
    ),
  ),
);

export const CountBody = v.strictObject({
  site: v.string(),
  event: v.nullable(v.string()),
  metric: v.picklist(METRICS),
  from: v.string(),
  to: v.string(),
  timeZone: AnswerTimeZone,
  estimate: v.pipe(Estimate, v.description("HyperLogLog estimate, standard error 0.81%")),
  keys: v.pipe(v.array(v.string()), v.description("The keys one PFCOUNT counted")),
  complete: v.pipe(v.boolean(), v.description("Whether every day of the range is counted")),
  missing: Missing,
  notRecorded: NotRecorded,
  asOf: AsOfSchema,
});

export const SeriesBody = v.strictObject({
  site: v.string(),
  event: v.nullable(v.string()),
  metric: v.picklist(METRICS),
  granularity: v.picklist(GRANULARITIES),
  from: v.string(),
  to: v.string(),
  timeZone: AnswerTimeZone,
  points: v.array(
    v.strictObject({
      period: v.string(),
      from: v.string(),
      to: v.string(),
      estimate: Estimate,
      complete: v.boolean(),
      missing: Missing,
      notRecorded: NotRecorded,
    }),
  ),
  asOf: AsOfSchema,
});
