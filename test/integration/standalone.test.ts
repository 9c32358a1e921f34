/**
 * REDIS_CLUSTER=false: the consumer against a single redis-server (as for a small self-hosted
 * setup), and reuse of the connection across warm invocations.
 */

import { type ChildProcess, spawn } from "node:child_process";
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createConsumerHandler } from "../../functions/consumer/handler.js";
import { first } from "../../functions/domain/arrays.js";
import { freePorts } from "../../local/redis-cluster.js";
import { testNowMs, utcDay } from "../helpers/clock.js";
import { kinesisEvent } from "../helpers/kinesis.js";

let server: ChildProcess;
let port: number;
let redis: Redis;

beforeAll(async () => {
  port = first(await freePorts(1), "free port");
  server = spawn(
    "redis-server",
    ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
    {
      stdio: "ignore",
    },
  );
  redis = new Redis({ port, host: "127.0.0.1", lazyConnect: true });
  // Refused connections are expected until the server is up; each attempt below reports its own.
  redis.on("error", () => {});
  for (let i = 0; i < 50; i++) {
    try {
      await redis.connect();
      break;
    } catch {
      await new Promise((r) => setTimeout(r, 100));
    }
  }
});

afterAll(async () => {
  redis?.disconnect();
  server?.kill("SIGTERM");
});

async function connectionsReceived(): Promise<number> {
  const info = await redis.info("stats");
  return Number(/total_connections_received:(\d+)/.exec(info)?.[1]);
}

describe("consumer against a single Redis node", () => {
  it("counts, and reuses one connection across warm invocations", async () => {
    const now = testNowMs();
    const day = utcDay(now);
    const handler = createConsumerHandler(
      {
        REDIS_ENDPOINT: `127.0.0.1:${port}`,
        REDIS_CLUSTER: "false",
        REDIS_TLS: "false",
        QUARANTINE_FILE: "/dev/null",
      },
      { now: () => now },
    );
    try {
      const batch = (from: number) =>
        kinesisEvent(
          Array.from({ length: 300 }, (_, i) => ({
            user_id: `u-${from + i}`,
            site_id: 715,
            event: "like",
            event_time: `${day} 07:00:00`,
          })),
        );
      expect((await handler(batch(0))).batchItemFailures).toEqual([]);
      const afterFirst = await connectionsReceived();
      expect((await handler(batch(300))).batchItemFailures).toEqual([]);
      expect((await handler(batch(600))).batchItemFailures).toEqual([]);
      expect(await connectionsReceived()).toBe(afterFirst);
      const estimate = await redis.pfcount(`uv:{site_id=715}:${day}`);
      expect(estimate).toBeGreaterThan(0);
      expect(Math.abs(estimate - 900)).toBeLessThanOrEqual(Math.ceil(900 * 3 * 0.0081));
    } finally {
      handler.close();
    }
  });
});
