/// <reference lib="dom" />
/**
 * The page's only network access: GETs of the dashboard's own /v1/* with this run's token.
 * A failed answer becomes an ApiFailure carrying the API's own message, for the banner.
 */

import type { DashboardConfig } from "./config.js";

export interface AsOf {
  readonly consumer: string | null;
  readonly rollup: string | null;
  /** The first time the consumer stored events; null when it never did. */
  readonly eventsSince: string | null;
}

/** What a count or series counts: unique visitors or events. */
export type Metric = "visitors" | "events";

export interface SitesBody {
  readonly sites: string[];
  readonly cursor: string | null;
}

export interface EventsBody {
  readonly site: string;
  readonly events: string[];
}

/** A site's time zone as the registry has it (GET /v1/sites/{site}/time-zone). */
export interface TimeZoneBody {
  readonly site: string;
  readonly timeZone: string;
  /** `default`: no entry, so UTC. */
  readonly source: "registry" | "default";
}

export interface CountBody {
  readonly site: string;
  readonly metric: Metric;
  readonly from: string;
  readonly to: string;
  /** The zone the dates are in (absent from a read API older than per-site time zones). */
  readonly timeZone?: string;
  readonly estimate: number;
  readonly complete: boolean;
  /** Days not counted: past the retention, or not recorded (those are also in notRecorded). */
  readonly missing: string[];
  /** Days before the metric was first recorded (events only). */
  readonly notRecorded: string[];
  readonly asOf: AsOf;
}

export interface SeriesPoint {
  readonly period: string;
  readonly from: string;
  readonly to: string;
  readonly estimate: number;
  readonly complete: boolean;
  readonly missing: string[];
  readonly notRecorded: string[];
}

export interface SeriesBody {
  readonly site: string;
  readonly metric: Metric;
  readonly granularity: string;
  readonly from: string;
  readonly to: string;
  readonly timeZone?: string;
  readonly points: SeriesPoint[];
  readonly asOf: AsOf;
}

/** A non-2xx answer (or no answer): the status and what the API (or the proxy) said. */
export class ApiFailure extends Error {
  override name = "ApiFailure";
  constructor(
    readonly status: number,
    readonly kind: string,
    message: string,
  ) {
    super(message);
  }
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null;
}

/** The message of an error body: the API's {"error","message"}, or a function URL's {"Message"}. */
function failureOf(status: number, statusText: string, text: string): ApiFailure {
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    body = undefined;
  }
  const kind = isRecord(body) && typeof body.error === "string" ? body.error : "http_error";
  const said =
    isRecord(body) && typeof body.message === "string"
      ? body.message
      : isRecord(body) && typeof body.Message === "string"
        ? body.Message
        : text.trim().slice(0, 300);
  const head = `HTTP ${status}${statusText ? ` ${statusText}` : ""}`;
  // A function URL's own refusal (not the dashboard's): IAM said no to the signed request.
  const hint =
    status === 403 && kind === "http_error"
      ? " (the read API refused the signed request: check which AWS credentials the dashboard runs with, and that the stack's operator policy is attached to them)"
      : "";
  return new ApiFailure(status, kind, `${head}${said ? `: ${said}` : ""}${hint}`);
}

export type Query = Readonly<Record<string, string | undefined>>;

export function createApi(config: DashboardConfig) {
  return {
    async get<T>(path: string, query: Query = {}, signal?: AbortSignal): Promise<T> {
      const params = new URLSearchParams();
      for (const [name, value] of Object.entries(query)) {
        if (value !== undefined && value !== "") params.set(name, value);
      }
      const search = params.toString();
      let response: Response;
      try {
        response = await fetch(`${path}${search ? `?${search}` : ""}`, {
          headers: { [config.tokenHeader]: config.token, accept: "application/json" },
          credentials: "omit",
          cache: "no-store",
          ...(signal ? { signal } : {}),
        });
      } catch (err) {
        if (err instanceof DOMException && err.name === "AbortError") throw err;
        throw new ApiFailure(
          0,
          "no_answer",
          `the dashboard did not answer (${err instanceof Error ? err.message : String(err)}): is the dashboard command still running?`,
        );
      }
      const text = await response.text();
      if (!response.ok) throw failureOf(response.status, response.statusText, text);
      try {
        return JSON.parse(text) as T;
      } catch {
        throw new ApiFailure(
          response.status,
          "not_json",
          `${path} answered something that is not JSON`,
        );
      }
    },
  };
}

export type Api = ReturnType<typeof createApi>;

/** A site's path segment, encoded (site ids are [A-Za-z0-9_-], but a typed one may not be). */
export function sitePath(site: string, rest: string): string {
  return `/v1/sites/${encodeURIComponent(site)}/${rest}`;
}
