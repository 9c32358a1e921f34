/**
 * `npm run bench:api`: latency and throughput of the read API over real HTTP on 127.0.0.1,
 * against a real local Redis Cluster (3 primaries), compared side by side with a practical limit
 * (a bare server sending the very Redis commands the app sends). What is measured and how is
 * described in bench/api.ts, the library this entry runs; the benchmarks report
 * (bench/report/reads.ts) reuses it.
 *
 * Data: --sites sites with --days days of traffic ending today (the real date: Redis expires
 * keys by the real clock), through the real consumer handler, then a scheduled rollup through
 * the real state machine. Load: a child process (this file, run again with --load-client) keeps
 * --concurrency keep-alive requests in flight; per case and contender, an untimed warm-up, then
 * --requests timed requests in --rounds rounds, the order of app and limit alternating.
 *
 * Usage: npm run bench:api -- [--sites N] [--days N] [--users-per-day N] [--requests N] …
 *        (--profile DIR writes a CPU profile of the app per case and prints where time goes)
 * It is a measurement, not a test: a missed target is reported, the exit code stays 0.
 *
 * With --load-client this file is the load client: it serves load jobs sent over IPC, and
 * imports nothing else (the benchmark's modules are imported only when it is the benchmark).
 */

import { LOAD_CLIENT_FLAG, serveLoadJobs } from "./api-load.js";

if (process.argv.includes(LOAD_CLIENT_FLAG)) {
  serveLoadJobs();
} else {
  const { parseApiOptions, runApiBench } = await import("./api.js");
  const { runWithCleanup } = await import("./lib.js");
  await runWithCleanup((closers) => runApiBench(parseApiOptions(process.argv.slice(2)), closers));
}
