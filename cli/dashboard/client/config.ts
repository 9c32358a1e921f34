/** What the server tells the page, in its JSON data block (#dashboard-config). */
export interface DashboardConfig {
  /** This run's token, sent with every API call in the x-dashboard-token header. */
  readonly token: string;
  /** The header to send it in. */
  readonly tokenHeader: string;
  /**
   * The server's clock when it served the page (epoch ms): the default range ends on today by
   * this clock in the chosen site's time zone.
   */
  readonly nowMs: number;
  /** Days in the default range: today and the days before it. */
  readonly rangeDays: number;
  /** Today by the server's clock as a UTC date: the range shown before a site is chosen. */
  readonly today: string;
  /** The first day of that range. */
  readonly defaultFrom: string;
  /** Where /v1/* goes, for the page's header: "local" (REDIS_ENDPOINT) or "api" (API_URL). */
  readonly mode: "local" | "api";
  /** The Redis endpoint or the API's origin, as printed by the command. */
  readonly source: string;
}
