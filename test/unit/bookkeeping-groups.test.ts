/**
 * The bookkeeping's slot groups without Redis: the consumer's SADDs per group (planBatch) and
 * where a rollup page's items are (pageSegments). Groups are written out by hand from
 * FNV-1a 32 (test/unit/keys.test.ts pins them): "715" is group 0, "foobar" 8, "a" and "1" 12.
 */

import { describe, expect, it } from "vitest";
import { planBatch, type StreamRecord } from "../../functions/consumer/ingest.js";
import { DEFAULT_RETENTION } from "../../functions/domain/runtime-env.js";
import { pageSegments } from "../../functions/rollup/rollup.js";
import { testNowMs, utcDay } from "../helpers/clock.js";

const now = testNowMs();
const day = utcDay(now);

function record(i: number, payload: object | string): StreamRecord {
  const text =
    typeof payload === "string"
      ? payload
      : JSON.stringify({ ...payload, event_time: `${day} 08:00:00` });
  return {
    sequenceNumber: `${100 + i}`,
    partitionKey: "p",
    data: Buffer.from(text).toString("base64"),
    eventId: `shardId-000000000001:${100 + i}`,
  };
}

describe("planBatch: bookkeeping by slot group", () => {
  const records = [
    record(0, { user_id: "u0", site_id: "a", event: "view" }),
    record(1, { user_id: "u1", site_id: "715", event: "view" }),
    record(2, "not json"),
    record(3, { user_id: "u3", site_id: "1", event: "cart" }),
    record(4, { user_id: "u4", site_id: "foobar", event: "view" }),
    record(5, { user_id: "u5", site_id: "a", event: "cart" }),
    record(6, { user_id: "u6", site_id: "715", event: "view" }),
  ];
  const plan = planBatch(records, { nowMs: now, retention: DEFAULT_RETENTION });
  const sadds = plan.commands.flatMap((c) =>
    c.name === "sadd" && c.key.startsWith("sketchstream:{rollup-")
      ? [[c.key, [...c.args], c.dependsFrom]]
      : [],
  );

  it("sends one SADD of touched members and one of site-index members per group the batch touched, each from the first record of its sites", () => {
    expect(sadds).toEqual([
      // Group 12: "a" (records 0 and 5) and "1" (record 3), in first-seen order.
      [
        "sketchstream:{rollup-12-15880}:touched",
        [`a|${day}`, `a|${day}|view`, `1|${day}`, `1|${day}|cart`, `a|${day}|cart`],
        0,
      ],
      ["sketchstream:{rollup-12-15880}:sites", ["a", "a|view", "a|cart", "1", "1|cart"], 0],
      // Group 0: "715" from record 1, not from the batch's first record.
      ["sketchstream:{rollup-0-29572}:touched", [`715|${day}`, `715|${day}|view`], 1],
      ["sketchstream:{rollup-0-29572}:sites", ["715", "715|view"], 1],
      // Group 8: "foobar" from record 4.
      ["sketchstream:{rollup-8-50482}:touched", [`foobar|${day}`, `foobar|${day}|view`], 4],
      ["sketchstream:{rollup-8-50482}:sites", ["foobar", "foobar|view"], 4],
    ]);
  });

  it("keeps the single-slot keys of older versions out of the plan, and as-of on its one key", () => {
    const keys = plan.commands.map((c) => c.key);
    expect(keys.filter((k) => k.startsWith("sketchstream:{rollup}:"))).toEqual([
      "sketchstream:{rollup}:as-of",
      "sketchstream:{rollup}:as-of",
    ]);
    expect(plan.commands.filter((c) => c.name === "asOf").map((c) => c.dependsFrom)).toEqual([
      0, 0,
    ]);
  });
});

describe("pageSegments: a page is a rank range of the groups' work sets in group order", () => {
  const work = (group: number, tag: string) => `sketchstream:{rollup-${group}-${tag}}:work`;
  // 16 groups: 0 has 5 items, 1 none, 2 has 3, 3 has 12, the rest none.
  const groupItems = [5, 0, 3, 12, ...Array<number>(12).fill(0)];

  it("cuts across groups for pages larger than a group, skipping empty groups", () => {
    const plan = { pageSize: 7, groupItems };
    expect(pageSegments(plan, 0)).toEqual([
      { key: work(0, "29572"), start: 0, stop: 4 },
      { key: work(2, "3962"), start: 0, stop: 1 },
    ]);
    expect(pageSegments(plan, 1)).toEqual([
      { key: work(2, "3962"), start: 2, stop: 2 },
      { key: work(3, "11217"), start: 0, stop: 5 },
    ]);
    expect(pageSegments(plan, 2)).toEqual([{ key: work(3, "11217"), start: 6, stop: 11 }]);
  });

  it("takes every item exactly once over the plan's pages", () => {
    for (const pageSize of [1, 2, 3, 5, 7, 12, 20, 2000]) {
      const plan = { pageSize, groupItems };
      const total = groupItems.reduce((a, b) => a + b, 0);
      const taken = new Map<string, number>();
      for (let page = 0; page < Math.ceil(total / pageSize); page++) {
        const segments = pageSegments(plan, page);
        expect(segments.reduce((n, s) => n + s.stop - s.start + 1, 0)).toBeLessThanOrEqual(
          pageSize,
        );
        for (const s of segments) {
          for (let rank = s.start; rank <= s.stop; rank++) {
            const id = `${s.key}#${rank}`;
            taken.set(id, (taken.get(id) ?? 0) + 1);
          }
        }
      }
      expect(taken.size, `page size ${pageSize}`).toBe(total);
      expect([...taken.values()].every((n) => n === 1)).toBe(true);
    }
  });

  it("refuses a page beyond the plan, naming the state machine", () => {
    expect(() => pageSegments({ pageSize: 7, groupItems }, 3)).toThrow(
      /page 3 is not one of the plan's 3 pages: the Map and the plan disagree/,
    );
  });

  it("reads the single legacy work set for a plan of the version before the groups", () => {
    expect(pageSegments({ pageSize: 100 }, 2)).toEqual([
      { key: "sketchstream:{rollup}:work", start: 200, stop: 299 },
    ]);
  });
});
