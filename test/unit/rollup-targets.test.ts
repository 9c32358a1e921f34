/**
 * mergeTargets: the PFMERGEs a page of rollup work items becomes. Each item gives one merge per
 * HLL family (`uv:` visitors, `ev:` events) with the same period, days and deadline. Expected
 * keys and deadlines are written out from the key contract and the retention rule, not built
 * with the modules under test.
 */

import { describe, expect, it } from "vitest";
import { mergeTargets } from "../../functions/rollup/rollup.js";

const RETENTION = { days: 62, weeks: 104, months: 36 };
// Week 2024-W10 ends Monday 2024-03-11; + 104 weeks. March 2024 ends 1 April; + 36 months.
const WEEK_DEADLINE = Date.UTC(2024, 2, 11) / 1000 + 104 * 7 * 86_400;
const MONTH_DEADLINE = Date.UTC(2027, 3, 1) / 1000;

describe("mergeTargets", () => {
  it("merges a touched day into its period key in both families, visitors first", () => {
    expect(mergeTargets(["715|2024-W10|purchase|2024-03-09"], RETENTION)).toEqual([
      {
        metric: "visitors",
        key: "uv:{site_id=715}:event=purchase:2024-W10",
        days: ["uv:{site_id=715}:event=purchase:2024-03-09"],
        expireAt: WEEK_DEADLINE,
      },
      {
        metric: "events",
        key: "ev:{site_id=715}:event=purchase:2024-W10",
        days: ["ev:{site_id=715}:event=purchase:2024-03-09"],
        expireAt: WEEK_DEADLINE,
      },
    ]);
  });

  it("rebuilds a period from all of its days in both families (backfill items)", () => {
    const [visitors, events, ...rest] = mergeTargets(["715|2024-03||"], RETENTION);
    expect(rest).toEqual([]);
    const march = Array.from({ length: 31 }, (_, i) => `2024-03-${String(i + 1).padStart(2, "0")}`);
    expect(visitors).toEqual({
      metric: "visitors",
      key: "uv:{site_id=715}:2024-03",
      days: march.map((d) => `uv:{site_id=715}:${d}`),
      expireAt: MONTH_DEADLINE,
    });
    expect(events).toEqual({
      metric: "events",
      key: "ev:{site_id=715}:2024-03",
      days: march.map((d) => `ev:{site_id=715}:${d}`),
      expireAt: MONTH_DEADLINE,
    });
  });

  it("keeps item order, two targets per item", () => {
    const items = ["1|2024-03||2024-03-09", "1|2024-W10||2024-03-09", "2|2024-03|view|2024-03-10"];
    const targets = mergeTargets(items, RETENTION);
    expect(targets.map((t) => t.key)).toEqual([
      "uv:{site_id=1}:2024-03",
      "ev:{site_id=1}:2024-03",
      "uv:{site_id=1}:2024-W10",
      "ev:{site_id=1}:2024-W10",
      "uv:{site_id=2}:event=view:2024-03",
      "ev:{site_id=2}:event=view:2024-03",
    ]);
    expect(mergeTargets([], RETENTION)).toEqual([]);
  });
});
