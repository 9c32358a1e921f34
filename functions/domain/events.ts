/**
 * Click-stream events: decoding and validation of one Kinesis record. Pure: the caller passes
 * the processing clock and the retention that defines the accepted time window.
 *
 * Accepted shape (the original Python generator's, plus ISO-8601 times with an offset and an
 * optional `event_id`, the producer's own identity of the event):
 *   {"user_id":"u-123-45","site_id":715,"event":"view","sku":"…","amount":3,
 *    "event_time":"2024-03-09 14:02:11","event_id":"7f3c…"}
 */

import { isUtf8 } from "node:buffer";
import { Ajv, type ErrorObject, type ValidateFunction } from "ajv";
import { messageOf } from "./errors.js";
import { EVENT_TYPE_RE, SITE_ID_RE } from "./keys.js";
import { DAY_MS, dayExpiresAtMs, dayLabel, dayOf } from "./periods.js";
import type { ZoneCalendar } from "./time-zones.js";

/** Machine-readable reasons a record is rejected. Stable: metrics and dashboards use them. */
export const REJECT_REASONS = [
  "bad_base64",
  "bad_utf8",
  "bad_json",
  "not_an_object",
  "missing_field",
  "wrong_type",
  "invalid_site_id",
  "invalid_event",
  "user_id_empty",
  "user_id_too_long",
  "invalid_event_time",
  "event_time_too_old",
  "event_time_in_future",
  "invalid_event_id",
] as const;

export type RejectReason = (typeof REJECT_REASONS)[number];

/** A valid event before it is placed on its site's calendar (EventParser.place). */
export interface TimedEvent {
  readonly userId: string;
  readonly siteId: string;
  readonly event: string;
  /** Milliseconds since the epoch, UTC. */
  readonly eventTimeMs: number;
  /**
   * What the events metric (`ev:` keys) counts: the record's `event_id` when it has one, else
   * the id of the Kinesis record that carried it (`shardId:sequenceNumber`). Either is the same
   * every time the same event is delivered again, so a replay or a retry adds nothing.
   */
  readonly identity: string;
}

export interface ClickEvent extends TimedEvent {
  /** The site's local day of `eventTimeMs`, `YYYY-MM-DD` (the UTC day for a UTC site). */
  readonly day: string;
}

export interface Rejection {
  readonly reason: RejectReason;
  /** The offending field, when one is to blame. */
  readonly field?: string;
  readonly detail: string;
}

/** What parsing one record gives: the event, or why the record was rejected. */
export type Parsed = ClickEvent | Rejection;
/** What the first step of parsing gives (decodeTimed, checkTimed): no day yet. */
export type ParsedTimed = TimedEvent | Rejection;

export function isRejection(parsed: Parsed | ParsedTimed): parsed is Rejection {
  return "reason" in parsed;
}

export interface ParseContext {
  /** The processing clock, ms since the epoch. */
  readonly nowMs: number;
  /** Daily retention in days: events whose day key would already have expired are refused. */
  readonly retentionDays: number;
  /**
   * The calendar of a site's zone, for `decode` and `check`; undefined (or no function) for a
   * UTC site. The consumer does not use it: it learns the zones of a batch's sites after the
   * first step (decodeTimed) and passes each calendar to `place`.
   */
  readonly calendarOf?: (siteId: string) => ZoneCalendar | undefined;
}

export const MAX_USER_ID_LENGTH = 256;
/** Longest `event_id`, in characters (Unicode code points, as for `user_id`). */
export const MAX_EVENT_ID_LENGTH = 128;
/** How far ahead of the processing clock an event may be: clocks of producers drift. */
const FUTURE_TOLERANCE_MS = DAY_MS;

/**
 * The record's shape as a JSON Schema, compiled once by ajv. The per-record validator runs on
 * the consumer's hot path: compiled, it costs about 40 ns a record where valibot's safeParse
 * cost about 270 ns (bench/consumer.bench.ts, 10,000-record batches), which kept the handler
 * from its target. Config, read once per cold start, keeps valibot's clearer schemas.
 */
export const EVENT_JSON_SCHEMA = {
  type: "object",
  required: ["user_id", "site_id", "event", "event_time"],
  properties: {
    user_id: { type: ["string", "number"], minLength: 1, maxLength: MAX_USER_ID_LENGTH },
    site_id: { type: ["number", "string"] },
    event: { type: "string" },
    event_time: { type: "string" },
    // Optional. Last, so a record's other fields are judged first, in the order above.
    event_id: { type: "string", minLength: 1, maxLength: MAX_EVENT_ID_LENGTH },
  },
} as const;

interface EventShape {
  readonly user_id: string | number;
  readonly site_id: number | string;
  readonly event: string;
  readonly event_time: string;
  readonly event_id?: string;
}

const ajv = new Ajv({ allErrors: false, allowUnionTypes: true });
/** Validates the record's shape; ajv's `number` type excludes NaN and ±Infinity. */
export const isEventShape: ValidateFunction<EventShape> =
  ajv.compile<EventShape>(EVENT_JSON_SCHEMA);

/** Maps ajv's first error to a reject reason and the field to blame. */
function shapeRejection(error: ErrorObject | undefined): Rejection {
  if (error?.keyword === "required") {
    // ajv's "required" error names the property in params.missingProperty.
    const field = String(error.params.missingProperty ?? "");
    return { reason: "missing_field", field, detail: `field "${field}" is missing` };
  }
  const field = (error?.instancePath ?? "").replace(/^\//, "");
  if (field === "event_id") {
    // Wrong type, empty or too long: one reason, since the producer's fix is the same.
    return { reason: "invalid_event_id", field, detail: reasonText("invalid_event_id") };
  }
  const reason: RejectReason =
    error?.keyword === "minLength"
      ? "user_id_empty"
      : error?.keyword === "maxLength"
        ? "user_id_too_long"
        : "wrong_type";
  return { reason, field, detail: `field "${field}": ${reasonText(reason)}` };
}

const TIME_RE =
  /^(\d{4})-(\d{2})-(\d{2})[ T](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(Z|[+-]\d{2}:?\d{2})?$/;

function rejection(reason: RejectReason, detail: string, field?: string): Rejection {
  return field === undefined ? { reason, detail } : { reason, field, detail };
}

/**
 * Parses `YYYY-MM-DD HH:MM:SS` (UTC, the generator's format) or ISO-8601 with `T`, optional
 * fraction and optional `Z`/`±HH:MM` offset. Returns ms since the epoch, or undefined when the
 * text is not such a time or names a date or time that does not exist.
 */
export function parseEventTime(text: string): number | undefined {
  const m = TIME_RE.exec(text);
  if (!m) return undefined;
  // Groups 1-6 are not optional in TIME_RE: each is two or four digits.
  const y = Number(m[1]);
  const mo = Number(m[2]);
  const d = Number(m[3]);
  const h = Number(m[4]);
  const mi = Number(m[5]);
  const s = Number(m[6]);
  // Date.UTC reads years 0-99 as 1900-1999; no click stream has events before year 1000.
  if (y < 1000 || mo < 1 || mo > 12 || d < 1 || h > 23 || mi > 59 || s > 59) return undefined;
  const base = Date.UTC(y, mo - 1, d, h, mi, s);
  if (new Date(base).getUTCDate() !== d) return undefined; // 2024-02-30 and friends
  const fraction = m[7] === undefined ? 0 : Math.floor(Number(`0.${m[7]}`) * 1000);
  let offsetMs = 0;
  const zone = m[8];
  if (zone !== undefined && zone !== "Z") {
    const sign = zone[0] === "-" ? -1 : 1;
    const digits = zone.slice(1).replace(":", "");
    const oh = Number(digits.slice(0, 2));
    const om = Number(digits.slice(2, 4));
    if (oh > 18 || om > 59) return undefined;
    offsetMs = sign * (oh * 60 + om) * 60_000;
  }
  return base + fraction - offsetMs;
}

/**
 * Decodes and validates records: the one way records are parsed, in production and in tests.
 * One parser serves one batch: it caches what depends only on the day (the day's start and
 * label), the site ids and the event types, which most records of a batch share. Over any
 * sequence of records it answers exactly what a fresh parser per record would (a property
 * test checks it).
 */
export class EventParser {
  private readonly dayStarts = new Map<string, number>();
  /** Day labels by the day's UTC start (UTC sites) and by day number (zoned sites). */
  private readonly dayLabels = new Map<number, string>();
  private readonly localDayLabels = new Map<number, string>();
  /** site_id as given -> its key form, or null when it is not allowed. */
  private readonly siteIds = new Map<string | number, string | null>();
  private readonly eventTypes = new Map<string, boolean>();
  private lastDatePart: string | undefined;
  private lastDayStart = Number.NaN;

  constructor(private readonly ctx: ParseContext) {}

  /**
   * Decodes one Kinesis record's base64 `data` and validates it, placing it on its site's
   * calendar (ParseContext.calendarOf): decodeTimed, then place. `recordId` is the record's
   * identity (`shardId:sequenceNumber`), which the event takes when it has no `event_id`.
   * Never throws.
   */
  decode(base64: string, recordId: string): Parsed {
    return this.placed(this.decodeTimed(base64, recordId));
  }

  /** Validates an already-decoded JSON value as an event (the second half of `decode`). */
  check(value: unknown, recordId: string): Parsed {
    return this.placed(this.checkTimed(value, recordId));
  }

  private placed(timed: ParsedTimed): Parsed {
    if (isRejection(timed)) return timed;
    return this.place(timed, this.ctx.calendarOf?.(timed.siteId));
  }

  /**
   * The first step of `decode`: everything that does not depend on the site's zone (the
   * record's shape, its fields, its time and whether that is too far ahead). Never throws.
   */
  decodeTimed(base64: string, recordId: string): ParsedTimed {
    const bytes = Buffer.from(base64, "base64");
    // Node's decoder skips characters outside the alphabet instead of failing, so a string
    // that is not base64 decodes to fewer bytes than its length promises; it also accepts the
    // base64url alphabet, which Kinesis never sends.
    if (
      base64.length % 4 !== 0 ||
      bytes.length !== decodedLength(base64) ||
      base64.includes("-") ||
      base64.includes("_")
    ) {
      return rejection("bad_base64", "the record's data is not valid base64");
    }
    const text = bytes.toString("utf8");
    // The decoder turns invalid UTF-8 into U+FFFD: only then is the full check worth its cost.
    if (text.includes("\uFFFD") && !isUtf8(bytes)) {
      return rejection("bad_utf8", "the record's data is not UTF-8 text");
    }
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch (err) {
      return rejection("bad_json", `the record's data is not JSON: ${messageOf(err)}`);
    }
    return this.checkTimed(value, recordId);
  }

  /** The first step of `check`: see decodeTimed. */
  checkTimed(value: unknown, recordId: string): ParsedTimed {
    if (typeof value !== "object" || value === null || Array.isArray(value)) {
      return rejection("not_an_object", "the record's JSON is not an object");
    }
    if (!isEventShape(value)) {
      const { reason, field, detail } = shapeRejection(isEventShape.errors?.[0]);
      return rejection(reason, detail, field);
    }
    const { user_id, event, event_time, event_id } = value;
    // A batch repeats a few sites and event types: each distinct one is checked once.
    let site_id = this.siteIds.get(value.site_id);
    if (site_id === undefined) {
      const text = typeof value.site_id === "number" ? String(value.site_id) : value.site_id;
      site_id = SITE_ID_RE.test(text) ? text : null;
      this.siteIds.set(value.site_id, site_id);
    }
    if (site_id === null) {
      return rejection(
        "invalid_site_id",
        "site_id must be a number or 1-64 characters of A-Z, a-z, 0-9, _ or -",
        "site_id",
      );
    }
    let eventValid = this.eventTypes.get(event);
    if (eventValid === undefined) {
      eventValid = EVENT_TYPE_RE.test(event);
      this.eventTypes.set(event, eventValid);
    }
    if (!eventValid) {
      return rejection(
        "invalid_event",
        "event must be 1-32 characters of a-z, 0-9, _ or -",
        "event",
      );
    }
    const eventTimeMs = this.generatorTime(event_time) ?? parseEventTime(event_time);
    if (eventTimeMs === undefined) {
      return rejection(
        "invalid_event_time",
        'event_time must be "YYYY-MM-DD HH:MM:SS" (UTC) or ISO-8601 with an offset',
        "event_time",
      );
    }
    if (eventTimeMs > this.ctx.nowMs + FUTURE_TOLERANCE_MS) {
      return rejection(
        "event_time_in_future",
        "event_time is more than a day ahead of now",
        "event_time",
      );
    }
    const userId = typeof user_id === "number" ? String(user_id) : user_id;
    // The schema has checked event_id when present: a string of 1-128 characters.
    const identity = event_id ?? recordId;
    return { userId, siteId: site_id, event, eventTimeMs, identity };
  }

  /**
   * The second step: the event's day on its site's calendar (`calendar`, undefined for UTC),
   * or `event_time_too_old` when that day's key would already have expired (DESIGN.md's rule
   * in the zone: day D expires at the first instant of day D + 1 + retention). A UTC site
   * needs only arithmetic; a zoned one a binary search in the calendar's precomputed offsets,
   * and no `Intl` call for any instant the calendar covers.
   */
  place(timed: TimedEvent, calendar: ZoneCalendar | undefined): Parsed {
    const { eventTimeMs } = timed;
    const { nowMs, retentionDays } = this.ctx;
    let day: string | undefined;
    if (calendar === undefined) {
      const dayStart = eventTimeMs - (((eventTimeMs % DAY_MS) + DAY_MS) % DAY_MS);
      if (dayExpiresAtMs(dayStart, retentionDays) <= nowMs) return tooOld(retentionDays);
      day = this.dayLabels.get(dayStart);
      if (day === undefined) {
        day = dayOf(dayStart);
        this.dayLabels.set(dayStart, day);
      }
    } else {
      // Whatever the zone (offsets stay within a day of UTC), the key of an event more than
      // retention + 3 days old has expired: decided without the calendar, which then only
      // sees instants it covers (a stream of ancient times costs no Intl call).
      if (eventTimeMs <= nowMs - (retentionDays + 3) * DAY_MS) return tooOld(retentionDays);
      const dayNumber = calendar.dayNumberOfAnyInstant(eventTimeMs);
      if (calendar.midnightMsOfDayNumber(dayNumber + 1 + retentionDays) <= nowMs) {
        return tooOld(retentionDays);
      }
      day = this.localDayLabels.get(dayNumber);
      if (day === undefined) {
        day = dayLabel(dayNumber);
        this.localDayLabels.set(dayNumber, day);
      }
    }
    return {
      userId: timed.userId,
      siteId: timed.siteId,
      event: timed.event,
      eventTimeMs,
      identity: timed.identity,
      day,
    };
  }

  /**
   * Fast path for the generator's `YYYY-MM-DD HH:MM:SS` (UTC): the date part is validated once
   * per day and cached. Returns undefined for anything else; the full parser then decides.
   */
  private generatorTime(text: string): number | undefined {
    if (text.length !== 19 || text.charCodeAt(10) !== 32) return undefined;
    // Most records of a batch share a day or two: compare with the last date seen before
    // slicing out a new one.
    let dayStart: number | undefined;
    let datePart = this.lastDatePart;
    if (datePart !== undefined && text.startsWith(datePart)) {
      dayStart = this.lastDayStart;
    } else {
      datePart = text.slice(0, 10);
      dayStart = this.dayStarts.get(datePart);
    }
    if (dayStart === undefined) {
      dayStart = parseEventTime(`${datePart} 00:00:00`) ?? Number.NaN;
      this.dayStarts.set(datePart, dayStart);
    }
    this.lastDatePart = datePart;
    this.lastDayStart = dayStart;
    if (Number.isNaN(dayStart)) return undefined;
    const h = twoDigits(text, 11);
    const mi = twoDigits(text, 14);
    const sec = twoDigits(text, 17);
    if (h > 23 || mi > 59 || sec > 59 || text.charCodeAt(13) !== 58 || text.charCodeAt(16) !== 58) {
      return undefined;
    }
    return dayStart + ((h * 60 + mi) * 60 + sec) * 1000;
  }
}

function tooOld(retentionDays: number): Rejection {
  return rejection(
    "event_time_too_old",
    `event_time is older than the ${retentionDays}-day retention of daily counts`,
    "event_time",
  );
}

/** Two ASCII digits at `at` as a number, or 99 (out of every range) when they are not digits. */
function twoDigits(text: string, at: number): number {
  const a = text.charCodeAt(at) - 48;
  const b = text.charCodeAt(at + 1) - 48;
  return a >= 0 && a <= 9 && b >= 0 && b <= 9 ? a * 10 + b : 99;
}

function decodedLength(base64: string): number {
  const padding = base64.endsWith("==") ? 2 : base64.endsWith("=") ? 1 : 0;
  return (base64.length / 4) * 3 - padding;
}

function reasonText(reason: RejectReason): string {
  switch (reason) {
    case "wrong_type":
      return "wrong type (user_id: string or number; site_id: number or string; event, event_time: string)";
    case "user_id_empty":
      return "user_id is empty";
    case "user_id_too_long":
      return `user_id is longer than ${MAX_USER_ID_LENGTH} characters`;
    case "invalid_event_id":
      return `event_id must be a string of 1-${MAX_EVENT_ID_LENGTH} characters; leave it out to count the event by its Kinesis record id`;
    default:
      return reason;
  }
}
