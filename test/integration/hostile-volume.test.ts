/**
 * Hostile volume through the real consumer handler, on a cluster of this file's own (it SCANs
 * every key): 100,000 records from fast-check arbitraries mixing valid events with random
 * bytes, truncated and deeply nested JSON, records of 1 MiB, numbers as strings, NaN and
 * Infinity, impossible and far dates, site ids with `{ } :`, spaces, newlines and unicode,
 * empty and huge ids. The handler never throws and never fails a batch (Redis is healthy),
 * writes no key outside the documented formats, counts every valid record and quarantines
 * every other one exactly once, and every quarantined record fits one SQS message.
 */

import { existsSync, readFileSync } from "node:fs";
import { Logger } from "@aws-lambda-powertools/logger";
import fc from "fast-check";
import { Cluster } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createConsumerHandler } from "../../functions/consumer/handler.js";
import { BOOKKEEPING_GROUP_TAGS } from "../../functions/domain/keys.js";
import { type RunningRedisCluster, startRedisCluster } from "../../local/redis-cluster.js";
import { DAY_MS, testNowMs, utcDay } from "../helpers/clock.js";
import { HLL_STANDARD_ERROR } from "../helpers/hll.js";
import { kinesisEvent } from "../helpers/kinesis.js";
import { parseQuarantinedRecord } from "../helpers/quarantine.js";

const TOTAL = 100_000;
const BATCH = 10_000;
const LARGE_RECORDS = 20;
const SQS_MESSAGE_LIMIT = 256 * 1024;
const now = testNowMs();
const today = utcDay(now);

let cluster: RunningRedisCluster;
let redis: Cluster;

beforeAll(async () => {
  cluster = await startRedisCluster({ primaries: 3 });
});

afterAll(async () => {
  redis?.disconnect();
  await cluster?.stop();
});

/** A generated record: its data (base64, as Kinesis delivers it) and whether it is valid. */
interface Generated {
  readonly data: string;
  readonly valid: boolean;
  /** For a valid record: its site and user, to check the counts. */
  readonly site?: string;
  readonly user?: string;
}

const b64 = (text: string | Uint8Array) => Buffer.from(text).toString("base64");
const VALID_SITES = ["715", "489", "shop-1", "A_b"];
const EVENTS = ["view", "cart", "purchase", "x-1"];

const validEvent = fc
  .record({
    user: fc.oneof(fc.string({ minLength: 1, maxLength: 40 }), fc.integer({ min: 0, max: 1e9 })),
    site: fc.constantFrom(...VALID_SITES),
    numericSite: fc.boolean(),
    event: fc.constantFrom(...EVENTS),
    // Within the window: the last 30 days, to the second.
    offsetS: fc.integer({ min: 0, max: 30 * 86_400 }),
    iso: fc.boolean(),
    eventId: fc.option(fc.string({ minLength: 1, maxLength: 128 }), { nil: undefined }),
  })
  .map(({ user, site, numericSite, event, offsetS, iso, eventId }): Generated => {
    const t = new Date(now - offsetS * 1000);
    const time = iso ? t.toISOString() : t.toISOString().slice(0, 19).replace("T", " ");
    const siteValue = numericSite && /^\d+$/.test(site) ? Number(site) : site;
    const payload = {
      user_id: user,
      site_id: siteValue,
      event,
      event_time: time,
      ...(eventId === undefined ? {} : { event_id: eventId }),
      sku: "sku-1",
      amount: "3",
    };
    return { data: b64(JSON.stringify(payload)), valid: true, site, user: String(user) };
  });

const base = (overrides: Record<string, unknown>) =>
  JSON.stringify({
    user_id: "u",
    site_id: 715,
    event: "view",
    event_time: `${today} 08:00:00`,
    ...overrides,
  });

const invalid = (text: string | Uint8Array): Generated => ({ data: b64(text), valid: false });

const hostile = fc.oneof(
  // Random bytes.
  fc
    .uint8Array({ minLength: 0, maxLength: 300 })
    .map((bytes) => invalid(bytes)),
  // A valid event's JSON cut short.
  fc
    .tuple(validEvent, fc.double({ min: 0, max: 0.999, noNaN: true }))
    .map(([event, cut]) => {
      const text = Buffer.from(event.data, "base64").toString("utf8");
      return invalid(text.slice(0, Math.floor(text.length * cut)));
    }),
  // Deeply nested JSON, as the whole record or as a field.
  fc
    .integer({ min: 1, max: 3_000 })
    .map((depth) => invalid(`${"[".repeat(depth)}${"]".repeat(depth)}`)),
  fc.integer({ min: 100, max: 3_000 }).map((depth) =>
    invalid(
      // Built as text: JSON.stringify itself recurses, and would overflow the stack here.
      `{"user_id":${"[".repeat(depth)}1${"]".repeat(depth)},"site_id":715,"event":"view","event_time":"${today} 08:00:00"}`,
    ),
  ),
  // Wrong types, numbers as strings where a number is not allowed, NaN/Infinity (not JSON).
  fc.constantFrom(
    invalid(base({ event_time: 1718438400 })),
    invalid(base({ user_id: null })),
    invalid(base({ user_id: true })),
    invalid(base({ site_id: 715.5 })),
    invalid(base({ site_id: 1e21 })),
    invalid(base({ event: 7 })),
    invalid(`{"user_id":"u","site_id":NaN,"event":"view","event_time":"${today} 08:00:00"}`),
    invalid(`{"user_id":Infinity,"site_id":715,"event":"view","event_time":"${today} 08:00:00"}`),
    invalid(base({ user_id: "" })),
    invalid(base({ user_id: "x".repeat(257) })),
    invalid(base({ event_id: "" })),
    invalid(base({ event_id: "e".repeat(129) })),
    invalid(base({ event_id: 42 })),
    invalid("null"),
    invalid("[]"),
    invalid('"a string"'),
    invalid("{}"),
  ),
  // Impossible and far dates.
  fc
    .constantFrom(
      "2031-02-30 10:00:00",
      "2031-13-01 10:00:00",
      "2031-06-15 24:00:00",
      "0001-01-01 00:00:00",
      "9999-12-31 23:59:59",
      "1970-01-01T00:00:00Z",
      "2031-06-15T10:00:00+25:00",
      "yesterday",
      "",
    )
    .map((time) => invalid(base({ event_time: time }))),
  // Site ids and event types outside the key formats.
  fc
    .oneof(
      fc.constantFrom("{715}", "7:15", "a b", "a\nb", "sité", "😀", "", "s".repeat(65), "a}b{c"),
      fc.string({ minLength: 1, maxLength: 30 }).filter((s) => !/^[A-Za-z0-9_-]{1,64}$/.test(s)),
    )
    .map((site) => invalid(base({ site_id: site }))),
  fc
    .constantFrom("View", "a:b", "{x}", "", "e".repeat(33), "é")
    .map((event) => invalid(base({ event }))),
);

/** Every record, valid ones about a third, shuffled deterministically by fast-check's seed. */
function generate(): Generated[] {
  const records = fc.sample(
    fc.oneof({ arbitrary: validEvent, weight: 1 }, { arbitrary: hostile, weight: 2 }),
    { numRuns: TOTAL - LARGE_RECORDS, seed: 20_311_215 },
  );
  // Records of 1 MiB (Kinesis's largest): JSON with a huge user id, and bytes that are not JSON.
  const mib = 1024 * 1024 - 256;
  for (let i = 0; i < LARGE_RECORDS; i++) {
    const filler = String.fromCharCode(97 + (i % 26)).repeat(mib - 120);
    records.splice(
      (i * 4999) % records.length,
      0,
      i % 2 === 0 ? invalid(base({ user_id: filler })) : invalid(Buffer.alloc(mib, i)),
    );
  }
  return records;
}

const KEY_FORMATS = [
  /^(uv|ev):\{site_id=[A-Za-z0-9_-]{1,64}\}:(event=[a-z0-9_-]{1,32}:)?\d{4}-\d{2}-\d{2}$/,
  /^sketchstream:\{rollup\}:as-of$/,
  // The consumer's bookkeeping: each group's touched set and site index (keys.ts).
  new RegExp(`^sketchstream:\\{(${BOOKKEEPING_GROUP_TAGS.join("|")})\\}:(touched|sites)$`),
  /^sketchstream:\{site_id=[A-Za-z0-9_-]{1,64}\}:event-types$/,
];

async function allKeys(): Promise<string[]> {
  const keys: string[] = [];
  for (const node of redis.nodes("master")) {
    let cursor = "0";
    do {
      const [next, page] = await node.scan(cursor, "COUNT", 1000);
      keys.push(...page);
      cursor = next;
    } while (cursor !== "0");
  }
  return keys;
}

describe("hostile volume through the consumer handler", () => {
  it("never throws, writes only documented keys, counts every valid record and quarantines every other one once, in messages SQS accepts", async () => {
    const records = generate();
    expect(records).toHaveLength(TOTAL);
    const quarantineFile = `${cluster.dir}/quarantine.jsonl`;
    const handler = createConsumerHandler(
      { REDIS_ENDPOINT: cluster.endpoint, REDIS_TLS: "false", QUARANTINE_FILE: quarantineFile },
      { now: () => now, logger: new Logger({ logLevel: "CRITICAL" }) },
    );
    try {
      for (let start = 0; start < TOTAL; start += BATCH) {
        const batch = records.slice(start, start + BATCH).map((r) => r.data);
        const result = await handler(kinesisEvent(batch, { raw: true }));
        expect(result.batchItemFailures, `batch from record ${start}`).toEqual([]);
      }
    } finally {
      handler.close();
    }
    // Connected only now: generating the records blocks the event loop for seconds, longer
    // than a client waits for its slot map.
    redis = new Cluster([{ host: "127.0.0.1", port: cluster.port }]);
    await new Promise((resolve) => redis.once("ready", resolve));

    const valid = records.filter((r) => r.valid);
    const quarantined = existsSync(quarantineFile)
      ? readFileSync(quarantineFile, "utf8")
          .split("\n")
          .filter((line) => line !== "")
      : [];
    // valid + quarantined = total, exactly: the invalid ones are the quarantined ones.
    expect(quarantined.length).toBe(TOTAL - valid.length);
    expect(valid.length).toBeGreaterThan(TOTAL / 5);
    const sequenceNumbers = new Set<string>();
    for (const line of quarantined) {
      // The body SQS would receive is the same JSON (the sink escapes only U+FFFE/U+FFFF).
      expect(Buffer.byteLength(line)).toBeLessThan(SQS_MESSAGE_LIMIT);
      const record = parseQuarantinedRecord(line);
      sequenceNumbers.add(record.sequenceNumber);
      if (record.dataSha256 !== undefined) expect(record.dataLength).toBeGreaterThan(0);
    }
    expect(sequenceNumbers.size).toBe(quarantined.length);

    const keys = await allKeys();
    const strays = keys.filter((key) => !KEY_FORMATS.some((format) => format.test(key)));
    expect(strays).toEqual([]);
    expect(keys.some((key) => key.startsWith("uv:"))).toBe(true);

    // Each valid site's users over the 31 days, within HLL error of the exact number.
    for (const site of VALID_SITES) {
      const users = new Set(valid.filter((r) => r.site === site).map((r) => r.user));
      const days = Array.from({ length: 31 }, (_, i) => utcDay(now - i * DAY_MS));
      const estimate = await redis.pfcount(...days.map((d) => `uv:{site_id=${site}}:${d}`));
      expect(Math.abs(estimate - users.size)).toBeLessThanOrEqual(
        Math.ceil(users.size * 4 * HLL_STANDARD_ERROR) + 2,
      );
    }
  }, 120_000);
});
