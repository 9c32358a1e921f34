/** What the server tells the page, in its JSON data block (#dashboard-config). */
export interface DashboardConfig {
  /** This run's token, sent with every API call in the x-dashboard-token header. */
  readonly token: string;
  /** The header to send it in. */
  readonly tokenHeader: string;
  /** Today by the server's clock (UTC date): the default range ends on it. */
  readonly today: string;
  /** The default range's first day (today and the 29 days before it). */
  readonly defaultFrom: string;
  /** Where /v1/* goes, for the page's header: "local" (REDIS_ENDPOINT) or "api" (API_URL). */
  readonly mode: "local" | "api";
  /** The Redis endpoint or the API's origin, as printed by the command. */
  readonly source: string;
}
