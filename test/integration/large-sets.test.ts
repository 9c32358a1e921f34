import { Cluster } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createConsumerHandler } from "../../functions/consumer/handler.js";
import { testNowMs, utcDay } from "../helpers/clock.js";
import { consumerEnv, redisSeed, uniqueSitePrefix } from "../helpers/env.js";
import { HLL_STANDARD_ERROR } from "../helpers/hll.js";
import { kinesisEvent } from "../helpers/kinesis.js";

let redis: Cluster;
beforeAll(() => {
  redis = new Cluster([redisSeed()]);
});
afterAll(async () => {
  await redis.quit();
});

describe("large sets through the real handler", () => {
  const now = testNowMs();
  const day = utcDay(now);
  const handler = createConsumerHandler(consumerEnv(), { now: () => now });
  afterAll(() => handler.close());

  for (const distinct of [100_000, 1_000_000]) {
    it(`estimates ${distinct.toLocaleString("en")} distinct users within 3 × 0.81%`, async () => {
      const site = `${uniqueSitePrefix()}big`;
      const batchSize = 10_000;
      for (let start = 0; start < distinct; start += batchSize) {
        const payloads = [];
        for (let i = start; i < Math.min(distinct, start + batchSize); i++) {
          payloads.push({
            user_id: `user-${i}`,
            site_id: site,
            event: "view",
            event_time: `${day} 12:00:00`,
          });
        }
        const result = await handler(kinesisEvent(payloads));
        expect(result.batchItemFailures).toEqual([]);
      }
      const estimate = await redis.pfcount(`uv:{site_id=${site}}:${day}`);
      expect(estimate).toBeGreaterThan(0);
      const relativeError = Math.abs(estimate - distinct) / distinct;
      expect(relativeError, `estimate ${estimate} for ${distinct}`).toBeLessThanOrEqual(
        3 * HLL_STANDARD_ERROR,
      );
      // The per-event key holds the same ids.
      expect(await redis.pfcount(`uv:{site_id=${site}}:event=view:${day}`)).toBe(estimate);
    });
  }
});
