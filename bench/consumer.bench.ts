/**
 * The consumer benchmark's command line: the handler against the naive per-record baseline and
 * the practical limit, on a local Redis Cluster. What is measured and how: bench/consumer.ts.
 *
 * Usage: npm run bench:consumer -- [--batches N] [--batch-size N] [--users N] [--seed N]
 *                                  [--warmup N] [--naive-batches N]
 * It is a measurement, not a test: a missed target is reported, the exit code stays 0.
 */

import { runConsumerBench } from "./consumer.js";
import { parseOptions, progress, runWithCleanup } from "./lib.js";

await runWithCleanup(async (closers) => {
  console.log(await runConsumerBench(parseOptions(process.argv.slice(2)), closers, progress));
});
