/**
 * Click-stream events: decoding and validation of one Kinesis record. Pure: the caller passes
 * the processing clock and the retention that defines the accepted time window.
 *
 * Accepted shape (the original Python generator's, plus ISO-8601 times with an offset):
 *   {"user_id":"u-123-45","site_id":715,"event":"view","sku":"…","amount":3,
 *    "event_time":"2024-03-09 14:02:11"}
 */

import { isUtf8 } from "node:buffer";
import * as v from "valibot";
import { EVENT_TYPE_RE, SITE_ID_RE } from "./keys.js";
import { dayOf, expiresAtSeconds } from "./periods.js";

/** Machine-readable reasons a record is rejected. Stable: metrics and dashboards use them. */
export type RejectReason =
  | "bad_base64"
  | "bad_utf8"
  | "bad_json"
  | "not_an_object"
  | "missing_field"
  | "wrong_type"
  | "invalid_site_id"
  | "invalid_event"
  | "user_id_empty"
  | "user_id_too_long"
  | "invalid_event_time"
  | "event_time_too_old"
  | "event_time_in_future";

export const REJECT_REASONS: readonly RejectReason[] = [
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
];

export interface ClickEvent {
  readonly userId: string;
  readonly siteId: string;
  readonly event: string;
  /** Milliseconds since the epoch, UTC. */
  readonly eventTimeMs: number;
  /** UTC day of `eventTimeMs`, `YYYY-MM-DD`. */
  readonly day: string;
}

export interface Rejection {
  readonly reason: RejectReason;
  /** The offending field, when one is to blame. */
  readonly field?: string;
  readonly detail: string;
}

export type ParseResult =
  | { readonly ok: true; readonly event: ClickEvent }
  | { readonly ok: false; readonly rejection: Rejection };

export interface ParseContext {
  /** The processing clock, ms since the epoch. */
  readonly nowMs: number;
  /** Daily retention in days: events whose day key would already have expired are refused. */
  readonly retentionDays: number;
}

export const MAX_USER_ID_LENGTH = 256;
const FUTURE_TOLERANCE_MS = 86_400_000;

// The schema's messages are the reject reasons, so an issue maps straight to a reason.
const eventSchema = v.object({
  user_id: v.union(
    [
      v.pipe(
        v.string(),
        v.minLength(1, "user_id_empty"),
        v.maxLength(MAX_USER_ID_LENGTH, "user_id_too_long"),
      ),
      v.pipe(v.number(), v.finite("wrong_type")),
    ],
    "wrong_type",
  ),
  site_id: v.union(
    [
      v.pipe(
        v.number(),
        v.finite("wrong_type"),
        v.transform((n) => String(n)),
      ),
      v.string(),
    ],
    "wrong_type",
  ),
  event: v.string("wrong_type"),
  event_time: v.string("wrong_type"),
});

const BASE64_RE = /^[A-Za-z0-9+/]*={0,2}$/;
const TIME_RE =
  /^(\d{4})-(\d{2})-(\d{2})[ T](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(Z|[+-]\d{2}:?\d{2})?$/;

function reject(reason: RejectReason, detail: string, field?: string): ParseResult {
  return {
    ok: false,
    rejection: field === undefined ? { reason, detail } : { reason, field, detail },
  };
}

/**
 * Parses `YYYY-MM-DD HH:MM:SS` (UTC, the generator's format) or ISO-8601 with `T`, optional
 * fraction and optional `Z`/`±HH:MM` offset. Returns ms since the epoch, or undefined when the
 * text is not such a time or names a date or time that does not exist.
 */
export function parseEventTime(text: string): number | undefined {
  const m = TIME_RE.exec(text);
  if (!m) return undefined;
  const [y, mo, d, h, mi, s] = [m[1], m[2], m[3], m[4], m[5], m[6]].map(Number) as [
    number,
    number,
    number,
    number,
    number,
    number,
  ];
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

/** Validates an already-decoded JSON value as an event. */
export function validateEvent(value: unknown, ctx: ParseContext): ParseResult {
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    return reject("not_an_object", "the record's JSON is not an object");
  }
  const parsed = v.safeParse(eventSchema, value, { abortEarly: true });
  if (!parsed.success) {
    const issue = parsed.issues[0];
    const field = String(issue.path?.[0]?.key ?? "");
    if (issue.type === "object") {
      return reject("missing_field", `field "${field}" is missing`, field);
    }
    const reason = issue.message as RejectReason;
    return reject(reason, `field "${field}": ${reasonText(reason)}`, field);
  }
  const { user_id, site_id, event, event_time } = parsed.output;
  if (!SITE_ID_RE.test(site_id)) {
    return reject(
      "invalid_site_id",
      "site_id must be a number or 1-64 characters of A-Z, a-z, 0-9, _ or -",
      "site_id",
    );
  }
  if (!EVENT_TYPE_RE.test(event)) {
    return reject("invalid_event", "event must be 1-32 characters of a-z, 0-9, _ or -", "event");
  }
  const eventTimeMs = parseEventTime(event_time);
  if (eventTimeMs === undefined) {
    return reject(
      "invalid_event_time",
      'event_time must be "YYYY-MM-DD HH:MM:SS" (UTC) or ISO-8601 with an offset',
      "event_time",
    );
  }
  if (eventTimeMs > ctx.nowMs + FUTURE_TOLERANCE_MS) {
    return reject(
      "event_time_in_future",
      "event_time is more than a day ahead of now",
      "event_time",
    );
  }
  const day = dayOf(eventTimeMs);
  const dayExpiresAt = expiresAtSeconds(
    { kind: "day", label: day },
    { days: ctx.retentionDays, weeks: 0, months: 0 },
  );
  if (dayExpiresAt * 1000 <= ctx.nowMs) {
    return reject(
      "event_time_too_old",
      `event_time is older than the ${ctx.retentionDays}-day retention of daily counts`,
      "event_time",
    );
  }
  const userId = typeof user_id === "number" ? String(user_id) : user_id;
  return { ok: true, event: { userId, siteId: site_id, event, eventTimeMs, day } };
}

/** Decodes one Kinesis record's base64 `data` and validates it. Never throws. */
export function parseRecordData(base64: string, ctx: ParseContext): ParseResult {
  if (base64.length % 4 !== 0 || !BASE64_RE.test(base64)) {
    return reject("bad_base64", "the record's data is not valid base64");
  }
  const bytes = Buffer.from(base64, "base64");
  if (!isUtf8(bytes)) return reject("bad_utf8", "the record's data is not UTF-8 text");
  let value: unknown;
  try {
    value = JSON.parse(bytes.toString("utf8"));
  } catch (err) {
    return reject("bad_json", `the record's data is not JSON: ${(err as Error).message}`);
  }
  return validateEvent(value, ctx);
}

function reasonText(reason: RejectReason): string {
  switch (reason) {
    case "wrong_type":
      return "wrong type (user_id: string or number; site_id: number or string; event, event_time: string)";
    case "user_id_empty":
      return "user_id is empty";
    case "user_id_too_long":
      return `user_id is longer than ${MAX_USER_ID_LENGTH} characters`;
    default:
      return reason;
  }
}
