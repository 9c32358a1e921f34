/**
 * Soak: millions of events through the local pipeline, watching the consumer's memory.
 *
 * This process runs only what Lambda would run: the event-source poller and the real consumer
 * handler against a local Redis Cluster (3 primaries, its own processes). The local Kinesis
 * (kinesalite, LevelDB on disk) and the producer run in a child process (bench/soak-stream.ts),
 * so the resident set size measured here is the consumer's own. It prints the throughput of
 * each interval, the RSS at the start (after a warm-up of 10% of the events), the middle and
 * the end, and PASS/MISS for: RSS growth after warm-up under 20%, every event consumed and none
 * quarantined, the final counts within HyperLogLog error of the producer's exact truth, and no
 * process left behind once it stops.
 *
 * Usage: npm run bench:soak -- [--total N] [--shards N] [--batch-size N] [--users N]
 *                               [--days N] [--seed N] [--interval-s N]
 * A measurement, not a test: a missed target is reported, the exit code stays 0.
 */

import { fork } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Cluster } from "ioredis";
import { GENERATOR_SITES } from "../cli/generator.js";
import { eventsKey, uniqueVisitorsKey } from "../functions/domain/keys.js";
import { addDays, dayOf } from "../functions/domain/periods.js";
import { EventSourcePoller } from "../local/event-source-poller.js";
import { localClusterEnv, startRedisCluster } from "../local/redis-cluster.js";
import { localKinesisClient } from "../local/runtime.js";
import { fmtInt, parseBenchArgs, silencePowertools, table } from "./lib.js";
import type { FromStream, SoakStreamSettings, SoakTruth, ToStream } from "./soak-stream.js";

const USAGE = `usage: npm run bench:soak -- [options]
  --total N       events to stream (default 5000000)
  --shards N      shards of the local stream (default 4)
  --batch-size N  records per consumer invocation (default 1000, the stack's default)
  --users N       user population of the generator (default 100000)
  --days N        days the events span, ending today (default 7)
  --seed N        PRNG seed (default 7)
  --interval-s N  seconds between throughput lines (default 30)`;

const TARGET_RSS_GROWTH = 0.2;
/** Three standard errors of Redis's HLL (1.04/sqrt(16384) = 0.81%). */
const HLL_TOLERANCE = 3 * 0.0081;
const WARMUP_SHARE = 0.1;

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

const mb = (bytes: number) => `${(bytes / 1024 / 1024).toFixed(0)} MB`;
const pct = (x: number) => `${x >= 0 ? "+" : ""}${(x * 100).toFixed(2)}%`;
const verdict = (ok: boolean) => (ok ? "PASS" : "MISS");

async function main(): Promise<void> {
  const { values, int } = parseBenchArgs(
    process.argv.slice(2),
    {
      total: { type: "string", default: "5000000" },
      shards: { type: "string", default: "4" },
      "batch-size": { type: "string", default: "1000" },
      users: { type: "string", default: "100000" },
      days: { type: "string", default: "7" },
      seed: { type: "string", default: "7" },
      "interval-s": { type: "string", default: "30" },
    },
    USAGE,
  );
  const total = int("total", values.total, 1);
  const intervalMs = int("interval-s", values["interval-s"], 1) * 1000;
  silencePowertools();
  const { createConsumerHandler } = await import("../functions/consumer/handler.js");

  const dir = await mkdtemp(join(tmpdir(), "sketchstream-soak-"));
  const startedAt = Date.now();
  const settings: SoakStreamSettings = {
    dir: join(dir, "kinesis"),
    shards: int("shards", values.shards, 1),
    total,
    days: int("days", values.days, 1),
    users: int("users", values.users, 1),
    seed: int("seed", values.seed, 0),
    endMs: startedAt,
  };
  const redis = await startRedisCluster({ primaries: 3, dir: join(dir, "redis") });
  const child = fork(new URL("./soak-stream.ts", import.meta.url), {
    execArgv: ["--import", "tsx"],
    stdio: ["ignore", "inherit", "inherit", "ipc"],
  });
  const childPid = child.pid ?? -1;
  const messages: FromStream[] = [];
  let wake: (() => void) | undefined;
  child.on("message", (m: FromStream) => {
    messages.push(m);
    wake?.();
  });
  const next = async <T extends FromStream["type"]>(
    type: T,
  ): Promise<Extract<FromStream, { type: T }>> => {
    for (;;) {
      const i = messages.findIndex((m) => m.type === type || m.type === "error");
      if (i >= 0) {
        const [m] = messages.splice(i, 1);
        if (m?.type === "error") throw new Error(`soak stream: ${m.message}`);
        return m as Extract<FromStream, { type: T }>;
      }
      await new Promise<void>((resolve) => {
        wake = resolve;
      });
    }
  };
  const tell = (m: ToStream) => child.send(m);

  const quarantineFile = join(dir, "quarantine.jsonl");
  const consumer = createConsumerHandler({
    ...localClusterEnv(redis.endpoint),
    QUARANTINE_FILE: quarantineFile,
  });
  let poller: EventSourcePoller | undefined;
  const closeAll = async () => {
    await poller?.stop();
    consumer.close();
    if (child.connected) tell({ type: "stop" });
    await new Promise<void>((resolve) => {
      if (child.exitCode !== null || child.signalCode !== null) resolve();
      else child.once("exit", () => resolve());
    });
    await redis.stop();
  };

  try {
    tell({ type: "start", settings });
    const ready = await next("ready");
    const kinesis = localKinesisClient(ready.endpoint);
    poller = new EventSourcePoller({
      kinesis,
      streamName: ready.streamName,
      streamArn: ready.streamArn,
      handler: (event, context) => consumer(event, context),
      onFailureFile: join(dir, "on-failure.jsonl"),
      batchSize: int("batch-size", values["batch-size"], 1),
    });
    await poller.start();
    const stats = poller.stats;
    console.log("sketchstream soak");
    console.log(
      `  node ${process.version}; redis cluster of 3 primaries; kinesalite (LevelDB) with ${settings.shards} shards in a child process (pid ${childPid}); this process (pid ${process.pid}): the poller and the consumer handler only`,
    );
    console.log(
      `  ${fmtInt(total)} generator events over ${settings.days} days, ${fmtInt(settings.users)} users, seed ${settings.seed}; consumer batches of up to ${values["batch-size"]} records`,
    );
    console.log("");

    tell({ type: "put" });
    const t0 = Date.now();
    const rows: string[][] = [];
    const rss: { at: string; bytes: number }[] = [];
    let lastCount = 0;
    let lastAt = t0;
    let truth: SoakTruth | undefined;
    let put = 0;
    const milestones = [
      { share: WARMUP_SHARE, at: "start (after 10% warm-up)" },
      { share: 0.5, at: "middle (50%)" },
      { share: 1, at: "end (100%)" },
    ];
    for (;;) {
      await new Promise((resolve) => setTimeout(resolve, 1000));
      for (const m of messages.splice(0)) {
        if (m.type === "progress") put = m.put;
        if (m.type === "done") {
          put = m.put;
          truth = m.truth;
        }
        if (m.type === "error") throw new Error(`soak stream: ${m.message}`);
      }
      const consumed = stats.recordsCheckpointed;
      const next = milestones[0];
      if (next && consumed >= next.share * total) {
        milestones.shift();
        rss.push({ at: next.at, bytes: process.memoryUsage().rss });
      }
      const now = Date.now();
      if (now - lastAt >= intervalMs || consumed >= total) {
        rows.push([
          `${((now - t0) / 1000).toFixed(0)} s`,
          fmtInt(put),
          fmtInt(consumed),
          fmtInt(((consumed - lastCount) / (now - lastAt)) * 1000),
          mb(process.memoryUsage().rss),
        ]);
        console.log(`  ${rows.at(-1)?.join("  ")}`);
        lastAt = now;
        lastCount = consumed;
      }
      if (consumed >= total && truth) break;
    }
    const seconds = (Date.now() - t0) / 1000;
    console.log("");
    console.log(
      table(["elapsed", "put", "consumed", "consumed/s (interval)", "consumer RSS"], rows),
    );
    console.log("");
    console.log(
      table(
        ["when", "consumer RSS"],
        rss.map((r) => [r.at, mb(r.bytes)]),
      ),
    );
    const first = rss[0]?.bytes ?? Number.NaN;
    const last = rss.at(-1)?.bytes ?? Number.NaN;
    const growth = last / first - 1;

    // Final counts against the truth: each site's whole range, one PFCOUNT per family.
    const client = new Cluster([{ host: "127.0.0.1", port: redis.port }]);
    const lastDay = dayOf(settings.endMs);
    const days = Array.from({ length: settings.days }, (_, i) => addDays(lastDay, -i));
    const countRows: string[][] = [];
    let worst = 0;
    for (const site of GENERATOR_SITES) {
      const exact = truth?.[site];
      if (!exact) continue;
      const users = await client.pfcount(...days.map((d) => uniqueVisitorsKey(String(site), d)));
      const events = await client.pfcount(...days.map((d) => eventsKey(String(site), d)));
      const uErr = users / exact.users - 1;
      const eErr = events / exact.events - 1;
      worst = Math.max(worst, Math.abs(uErr), Math.abs(eErr));
      countRows.push([
        String(site),
        `${fmtInt(users)} / ${fmtInt(exact.users)} (${pct(uErr)})`,
        `${fmtInt(events)} / ${fmtInt(exact.events)} (${pct(eErr)})`,
      ]);
    }
    client.disconnect();
    console.log("");
    console.log(
      table(["site", "unique users: estimate / exact", "events: estimate / exact"], countRows),
    );

    const quarantined = existsSync(quarantineFile)
      ? readFileSync(quarantineFile, "utf8")
          .split("\n")
          .filter((l) => l !== "").length
      : 0;
    const pids = [childPid, ...redis.pids];
    await closeAll();
    await rm(dir, { recursive: true, force: true });
    const left = pids.filter(isAlive);
    console.log("");
    console.log(
      `${fmtInt(stats.recordsCheckpointed)} events consumed in ${seconds.toFixed(0)} s (${fmtInt(stats.recordsCheckpointed / seconds)} events/s), ${stats.invocations} invocations, ${stats.partialFailures} partial failures, ${stats.batchesDiscarded} batches discarded`,
    );
    console.log("targets:");
    console.log(
      `  consumer RSS growth after warm-up < ${TARGET_RSS_GROWTH * 100}%: ${pct(growth)}  ${verdict(growth < TARGET_RSS_GROWTH)}`,
    );
    console.log(
      `  every event consumed, none discarded or quarantined: ${fmtInt(stats.recordsCheckpointed)} of ${fmtInt(total)}, ${quarantined} quarantined  ${verdict(stats.recordsCheckpointed === total && stats.batchesDiscarded === 0 && quarantined === 0)}`,
    );
    console.log(
      `  counts within 3 HLL standard errors (${(HLL_TOLERANCE * 100).toFixed(2)}%) of the truth: worst ${(worst * 100).toFixed(2)}%  ${verdict(worst <= HLL_TOLERANCE)}`,
    );
    console.log(
      `  no process left: ${left.length === 0 ? "none" : left.join(", ")}  ${verdict(left.length === 0)}`,
    );
  } catch (err) {
    await closeAll().catch(() => {});
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
}

await main();
