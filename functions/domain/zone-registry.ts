/**
 * A warm process's copy of the zone registry (DESIGN.md, "Per-site time zones"): which zone
 * each site of a batch is in, read from `sketchstream:{config}:time-zones` at most once a
 * minute per site, with one HMGET for all the sites of a batch that need it.
 *
 * Loading never fails: when the registry cannot be read (an error, no answer in time) or an
 * entry is not a valid zone name, the site keeps its last good zone (UTC when it never had
 * one) and the load says why, so the caller can log it and count a metric. Counting goes on
 * in the zone it had; a day label off by the zone's offset is a smaller harm than a stalled
 * stream.
 */

import { messageOf } from "./errors.js";
import { timeZoneProblem } from "./time-zones.js";
import { withTimeout } from "./timeouts.js";

/** The zone of a site without an entry in the registry. */
export const DEFAULT_TIME_ZONE = "UTC";
/** How long a site's zone is used before it is read again (DESIGN.md: at most every 60 s). */
export const ZONE_REGISTRY_MAX_AGE_MS = 60_000;

/** Reads the registry entries of these sites, in order (HMGET): null where a site has none. */
export type ReadZoneEntries = (sites: readonly string[]) => Promise<readonly (string | null)[]>;

export interface ZoneRegistryOptions {
  readonly read: ReadZoneEntries;
  /** How long a site's zone stays fresh, ms. Default ZONE_REGISTRY_MAX_AGE_MS (60 000). */
  readonly maxAgeMs?: number;
  /**
   * After a failed read, how long the sites keep the zone they had before the registry is
   * asked again, ms: a registry that cannot answer is not asked by every batch. Default 10 000.
   */
  readonly retryAfterFailureMs?: number;
  /** How long a read may take before it counts as failed, ms. Default 1 000. */
  readonly timeoutMs?: number;
  /** Sites remembered; past this the copy starts over (each site is read again). Default 100 000. */
  readonly maxSites?: number;
}

/** An entry of the registry that is not a zone the registry accepts (written by hand). */
export interface InvalidZoneEntry {
  readonly site: string;
  readonly entry: string;
  readonly problem: string;
}

export interface ZoneLoad {
  /** Whether the registry was asked (one HMGET) during this load. */
  readonly read: boolean;
  /** Why the registry could not be read, when it could not: the sites kept their zones. */
  readonly failure?: string;
  /** Entries that are not valid zones: those sites kept their zones. */
  readonly invalid: readonly InvalidZoneEntry[];
}

interface Entry {
  zone: string;
  /** When the zone is to be read again, epoch ms. */
  refreshAtMs: number;
}

export class ZoneRegistryCache {
  readonly #entries = new Map<string, Entry>();
  readonly #read: ReadZoneEntries;
  readonly #maxAgeMs: number;
  readonly #retryAfterFailureMs: number;
  readonly #timeoutMs: number;
  readonly #maxSites: number;

  constructor(options: ZoneRegistryOptions) {
    this.#read = options.read;
    this.#maxAgeMs = options.maxAgeMs ?? ZONE_REGISTRY_MAX_AGE_MS;
    this.#retryAfterFailureMs = options.retryAfterFailureMs ?? 10_000;
    this.#timeoutMs = options.timeoutMs ?? 1_000;
    this.#maxSites = options.maxSites ?? 100_000;
  }

  /** The zone a site is in, as last loaded: UTC for a site never loaded or without an entry. */
  zoneOf(site: string): string {
    return this.#entries.get(site)?.zone ?? DEFAULT_TIME_ZONE;
  }

  /**
   * Makes every one of `sites` fresh: those never read, or read more than maxAgeMs ago, are
   * read with one command. Never throws; see ZoneLoad for what went wrong.
   */
  async load(sites: Iterable<string>, nowMs: number): Promise<ZoneLoad> {
    const due: string[] = [];
    for (const site of sites) {
      const entry = this.#entries.get(site);
      if (entry === undefined || entry.refreshAtMs <= nowMs) due.push(site);
    }
    if (due.length === 0) return { read: false, invalid: [] };
    if (this.#entries.size + due.length > this.#maxSites) this.#forgetFreshOnes(due);

    let values: readonly (string | null)[];
    try {
      values = await withTimeout(this.#read(due), this.#timeoutMs, "HMGET of the zone registry");
      if (values.length !== due.length) {
        throw new Error(`asked for ${due.length} entries, got ${values.length}`);
      }
    } catch (err) {
      for (const site of due) this.#keep(site, nowMs + this.#retryAfterFailureMs);
      return {
        read: true,
        failure: `the zone registry could not be read (${messageOf(err)}); ${due.length} site(s) keep their last zone (UTC if none) and are asked again in ${this.#retryAfterFailureMs / 1000} s`,
        invalid: [],
      };
    }
    const invalid: InvalidZoneEntry[] = [];
    due.forEach((site, i) => {
      const value = values[i] ?? null;
      const problem = value === null ? undefined : timeZoneProblem(value);
      if (value !== null && problem !== undefined) {
        invalid.push({ site, entry: value, problem });
        this.#keep(site, nowMs + this.#maxAgeMs);
        return;
      }
      this.#entries.set(site, {
        zone: value ?? DEFAULT_TIME_ZONE,
        refreshAtMs: nowMs + this.#maxAgeMs,
      });
    });
    return { read: true, invalid };
  }

  /** The site keeps the zone it had (UTC when none) until `refreshAtMs`. */
  #keep(site: string, refreshAtMs: number): void {
    const entry = this.#entries.get(site);
    if (entry) entry.refreshAtMs = refreshAtMs;
    else this.#entries.set(site, { zone: DEFAULT_TIME_ZONE, refreshAtMs });
  }

  /** Makes room: the sites about to be read keep their entries (their last good zones). */
  #forgetFreshOnes(due: readonly string[]): void {
    const keep = new Map<string, Entry>();
    for (const site of due) {
      const entry = this.#entries.get(site);
      if (entry) keep.set(site, entry);
    }
    this.#entries.clear();
    for (const [site, entry] of keep) this.#entries.set(site, entry);
  }
}
