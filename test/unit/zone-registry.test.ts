/**
 * The consumer's copy of the zone registry: one read per batch at most, only for sites not read
 * in the last minute; a registry that cannot be read, or an entry that is not a zone, leaves
 * each site in its last good zone (UTC when none) and says why.
 */

import { describe, expect, it } from "vitest";
import { ZoneRegistryCache } from "../../functions/domain/zone-registry.js";

const T0 = Date.UTC(2031, 5, 15, 10);

/** A registry in memory whose reads are recorded, and can be made to fail or hang. */
function fakeRegistry(entries: Record<string, string> = {}) {
  const reads: string[][] = [];
  const state = { fail: false, hang: false };
  const read = (sites: readonly string[]) => {
    reads.push([...sites]);
    if (state.fail) return Promise.reject(new Error("ECONNREFUSED 10.0.0.1:6379"));
    if (state.hang) return new Promise<(string | null)[]>(() => {});
    return Promise.resolve(sites.map((s) => entries[s] ?? null));
  };
  return { entries, reads, state, read };
}

describe("ZoneRegistryCache", () => {
  it("reads each site at most once a minute, all due sites of a batch in one read", async () => {
    const registry = fakeRegistry({ paris: "Europe/Paris" });
    const cache = new ZoneRegistryCache({ read: registry.read });
    expect(await cache.load(["paris", "plain"], T0)).toEqual({ read: true, invalid: [] });
    expect(cache.zoneOf("paris")).toBe("Europe/Paris");
    expect(cache.zoneOf("plain")).toBe("UTC");
    expect(cache.zoneOf("never-seen")).toBe("UTC");

    // Within the minute: nothing to read; a new site alone is read.
    expect((await cache.load(["paris", "plain"], T0 + 59_999)).read).toBe(false);
    await cache.load(["paris", "newcomer"], T0 + 30_000);
    // A minute after its read, a site is read again, with every other due site of the batch.
    registry.entries.paris = "Asia/Kathmandu";
    await cache.load(["paris", "plain", "newcomer"], T0 + 60_000);
    expect(registry.reads).toEqual([["paris", "plain"], ["newcomer"], ["paris", "plain"]]);
    expect(cache.zoneOf("paris")).toBe("Asia/Kathmandu");
  });

  it("keeps the last good zone (UTC when none) when the registry cannot be read, and asks again later", async () => {
    const registry = fakeRegistry({ paris: "Europe/Paris", tokyo: "Asia/Tokyo" });
    const cache = new ZoneRegistryCache({ read: registry.read, retryAfterFailureMs: 10_000 });
    await cache.load(["paris"], T0);
    registry.state.fail = true;
    const failed = await cache.load(["paris", "tokyo"], T0 + 60_000);
    expect(failed.failure).toMatch(
      /zone registry could not be read \(ECONNREFUSED 10\.0\.0\.1:6379\); 2 site\(s\) keep their last zone \(UTC if none\) and are asked again in 10 s/,
    );
    expect(cache.zoneOf("paris")).toBe("Europe/Paris");
    expect(cache.zoneOf("tokyo")).toBe("UTC");
    // Not asked again by every batch while it cannot answer.
    expect((await cache.load(["paris", "tokyo"], T0 + 69_999)).read).toBe(false);
    registry.state.fail = false;
    expect(await cache.load(["paris", "tokyo"], T0 + 70_000)).toEqual({ read: true, invalid: [] });
    expect(cache.zoneOf("tokyo")).toBe("Asia/Tokyo");
  });

  it("counts a read that does not answer in time as failed", async () => {
    const registry = fakeRegistry();
    registry.state.hang = true;
    const cache = new ZoneRegistryCache({ read: registry.read, timeoutMs: 20 });
    const load = await cache.load(["slow"], T0);
    expect(load.failure).toMatch(/no answer within 20 ms/);
    expect(cache.zoneOf("slow")).toBe("UTC");
  });

  it("keeps the last good zone for an entry that is not a zone, naming the problem", async () => {
    const registry = fakeRegistry({ paris: "Europe/Paris" });
    const cache = new ZoneRegistryCache({ read: registry.read });
    await cache.load(["paris", "fresh"], T0);
    registry.entries.paris = "europe/paris";
    registry.entries.fresh = "+05:30";
    const load = await cache.load(["paris", "fresh"], T0 + 60_000);
    expect(load.invalid).toEqual([
      {
        site: "paris",
        entry: "europe/paris",
        problem: expect.stringMatching(/write Europe\/Paris/),
      },
      { site: "fresh", entry: "+05:30", problem: expect.stringMatching(/UTC offset/) },
    ]);
    expect(cache.zoneOf("paris")).toBe("Europe/Paris");
    expect(cache.zoneOf("fresh")).toBe("UTC");
    // Read again a minute later, like any other site (not by every batch).
    expect((await cache.load(["paris", "fresh"], T0 + 119_999)).read).toBe(false);
  });

  it("starts over when it would remember too many sites, keeping the zones of those it reads", async () => {
    const registry = fakeRegistry({ a: "Europe/Paris", b: "Asia/Tokyo", c: "Asia/Kathmandu" });
    const cache = new ZoneRegistryCache({ read: registry.read, maxSites: 2 });
    await cache.load(["a", "b"], T0);
    registry.state.fail = true;
    await cache.load(["c", "a"], T0 + 60_000);
    // Forgotten: b (fresh, not in this batch). Kept: a's last good zone through the failure.
    expect(cache.zoneOf("a")).toBe("Europe/Paris");
    expect(cache.zoneOf("b")).toBe("UTC");
  });
});
