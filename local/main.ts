/**
 * `npm run local`: sketchstream on this machine, no AWS account needed.
 *
 * Today it runs the parts that exist: a real Redis Cluster (3 primaries + 3 replicas) on
 * loopback, a reproducible click stream from the generator, and the real consumer handler fed
 * with Kinesis-shaped batches; then it prints HLL estimates against exact distinct counts.
 * The local Kinesis, its event-source poller and the rollup state machine are still to come
 * (see the README's "What exists today").
 */

import { mkdir, mkdtemp } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { Cluster } from "ioredis";
import { createConsumerHandler } from "../functions/consumer/handler.js";
import { uniqueVisitorsKey } from "../functions/shared/keys.js";
import { generateEvents } from "./generator.js";
import { kinesisEvent } from "./kinesis-event.js";
import {
  RedisServerMissingError,
  type RunningRedisCluster,
  startRedisCluster,
} from "./redis-cluster.js";

const USAGE = `usage: npm run local -- [--total N] [--days N] [--users N] [--seed N] [--batch N] [--data-dir DIR] [--keep]
  --total N      events to send (default 200000)
  --days N       days the events span, ending today (default 45)
  --users N      distinct users to draw from (default 50000)
  --seed N       generator seed; the same seed gives the same run (default 1)
  --batch N      records per consumer invocation, as a Kinesis batch (default 10000)
  --data-dir DIR where Redis and the quarantine file live (default: a new temporary directory)
  --keep         leave the Redis Cluster running for redis-cli; stop it with the printed command`;

function positiveInt(name: string, text: string | undefined, fallback: number): number {
  if (text === undefined) return fallback;
  if (!/^\d+$/.test(text) || Number(text) < 1) {
    console.error(`--${name} must be a whole number of at least 1, got "${text}"\n\n${USAGE}`);
    process.exit(2);
  }
  return Number(text);
}

function pct(estimate: number, exact: number): string {
  return exact === 0 ? "-" : `${(((estimate - exact) / exact) * 100).toFixed(2)}%`;
}

async function main(): Promise<void> {
  let args: ReturnType<typeof parseArgs>["values"];
  try {
    ({ values: args } = parseArgs({
      options: {
        total: { type: "string" },
        days: { type: "string" },
        users: { type: "string" },
        seed: { type: "string" },
        batch: { type: "string" },
        "data-dir": { type: "string" },
        keep: { type: "boolean", default: false },
        help: { type: "boolean", short: "h", default: false },
      },
    }));
  } catch (err) {
    console.error(`${(err as Error).message}\n\n${USAGE}`);
    process.exit(2);
  }
  if (args.help) {
    console.log(USAGE);
    return;
  }
  const total = positiveInt("total", args.total as string | undefined, 200_000);
  const days = positiveInt("days", args.days as string | undefined, 45);
  const users = positiveInt("users", args.users as string | undefined, 50_000);
  const seed = positiveInt("seed", args.seed as string | undefined, 1);
  const batchSize = positiveInt("batch", args.batch as string | undefined, 10_000);
  if (days > 62) {
    console.error(
      "--days must be at most 62: older events are past the daily retention and would be quarantined",
    );
    process.exit(2);
  }
  const dataDir = args["data-dir"]
    ? resolve(args["data-dir"] as string)
    : await mkdtemp(join(tmpdir(), "sketchstream-local-"));
  await mkdir(dataDir, { recursive: true });
  console.log(`sketchstream local: data in ${dataDir}`);

  const started = Date.now();
  let cluster: RunningRedisCluster | undefined;
  const shutdown = async (code: number) => {
    if (cluster && !args.keep) await cluster.stop();
    process.exit(code);
  };
  process.once("SIGINT", () => {
    console.log("\ninterrupted: stopping Redis");
    void shutdown(130);
  });

  console.log("starting a Redis Cluster (3 primaries + 3 replicas) on 127.0.0.1 …");
  cluster = await startRedisCluster({
    primaries: 3,
    replicasPerPrimary: 1,
    dir: join(dataDir, "redis"),
  });
  console.log(`  ready on ports ${cluster.ports.join(", ")}`);

  // The demo prints its own summary; EMF metrics and per-record logs would drown it.
  process.env.POWERTOOLS_METRICS_DISABLED ??= "true";
  process.env.POWERTOOLS_LOG_LEVEL ??= "ERROR";
  const handler = createConsumerHandler({
    REDIS_ENDPOINT: cluster.endpoint,
    REDIS_CLUSTER: "true",
    REDIS_TLS: "false",
    REDIS_AUTH: "none",
    QUARANTINE_FILE: join(dataDir, "quarantine.jsonl"),
  });
  const now = Date.now();
  const truthByDay = new Map<string, Set<string>>();
  const truthBySite = new Map<number, Set<string>>();
  const events = generateEvents({ seed, users, days, endMs: now });
  console.log(
    `sending ${total.toLocaleString("en")} events over ${days} days through the consumer handler …`,
  );
  let sent = 0;
  const tty = process.stdout.isTTY;
  while (sent < total) {
    const batch = [];
    for (let i = 0; i < batchSize && sent + i < total; i++) {
      const event = events.next().value as ReturnType<typeof events.next>["value"] & object;
      batch.push(event);
      const day = event.event_time.slice(0, 10);
      const dayKey = `${event.site_id}|${day}`;
      (truthByDay.get(dayKey) ?? truthByDay.set(dayKey, new Set()).get(dayKey))?.add(event.user_id);
      (
        truthBySite.get(event.site_id) ??
        truthBySite.set(event.site_id, new Set()).get(event.site_id)
      )?.add(event.user_id);
    }
    const result = await handler(kinesisEvent(batch));
    if (result.batchItemFailures.length > 0) {
      throw new Error(
        `the consumer failed a batch from ${result.batchItemFailures[0]?.itemIdentifier}`,
      );
    }
    sent += batch.length;
    const line = `  ${sent.toLocaleString("en")} / ${total.toLocaleString("en")} events (${Math.round((sent / total) * 100)}%)`;
    if (tty) process.stdout.write(`\r${line}`);
    else if (
      sent === total ||
      Math.floor(((sent - batch.length) / total) * 4) !== Math.floor((sent / total) * 4)
    ) {
      console.log(line);
    }
  }
  if (tty) process.stdout.write("\n");
  handler.close();

  const redis = new Cluster([{ host: cluster.host, port: cluster.ports[0] as number }]);
  try {
    const lastDay = new Date(now).toISOString().slice(0, 10);
    console.log("\nunique users per site: HyperLogLog estimate vs exact count");
    const rows: string[][] = [
      ["site", "today est", "today exact", "err", `${days}-day est`, `${days}-day exact`, "err"],
    ];
    for (const [site, all] of [...truthBySite.entries()].sort(([a], [b]) => a - b)) {
      const siteDays = [...truthByDay.keys()]
        .filter((k) => k.startsWith(`${site}|`))
        .map((k) => k.slice(-10));
      const keys = siteDays.map((d) => uniqueVisitorsKey(String(site), d)) as [string, ...string[]];
      const rangeEstimate = await redis.pfcount(...keys);
      const today = truthByDay.get(`${site}|${lastDay}`)?.size ?? 0;
      const todayEstimate = await redis.pfcount(uniqueVisitorsKey(String(site), lastDay));
      rows.push([
        String(site),
        String(todayEstimate),
        String(today),
        pct(todayEstimate, today),
        String(rangeEstimate),
        String(all.size),
        pct(rangeEstimate, all.size),
      ]);
    }
    const widths = rows[0]?.map((_, c) => Math.max(...rows.map((r) => (r[c] ?? "").length))) ?? [];
    for (const row of rows)
      console.log(`  ${row.map((cell, c) => cell.padStart(widths[c] ?? 0)).join("  ")}`);
  } finally {
    redis.disconnect();
  }
  const port = cluster.ports[0];
  const today = new Date(now).toISOString().slice(0, 10);
  console.log(`\ndone in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  console.log(
    "weekly and monthly rollups arrive with the rollup workflow; the range above is PFCOUNT over the days.",
  );
  if (args.keep) {
    console.log("\nRedis is still running. Explore with:");
    console.log(`  redis-cli -c -p ${port} PFCOUNT 'uv:{site_id=715}:${today}'`);
    console.log(`  redis-cli -c -p ${port} EXPIRETIME 'uv:{site_id=715}:${today}'`);
    console.log(`  redis-cli -c -p ${port} SMEMBERS 'sketchstream:{rollup}:touched'`);
    console.log(`stop it with: kill ${cluster.pids.join(" ")}`);
    cluster.detach();
    process.exit(0);
  }
  await cluster.stop();
}

main().catch(async (err: unknown) => {
  if (err instanceof RedisServerMissingError) console.error(err.message);
  else
    console.error(`sketchstream local failed: ${err instanceof Error ? err.stack : String(err)}`);
  process.exit(1);
});
