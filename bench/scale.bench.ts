/**
 * `npm run bench:scale`: a million sites (one active day each, Zipf-like users per site) through
 * the real consumer, then a scheduled rollup through the real rollup handlers, on a local Redis
 * Cluster of 3 primaries; prints memory by key family and period, bookkeeping per primary, server
 * CPU per event and per merge, plan and merge times and Step Functions transitions, and writes
 * the planner's constants (bench/results/scale-constants.json). See bench/scale.ts for what is
 * measured and how; `-- --help` for the options (`--sites 20000` for a quick run).
 *
 * It is a measurement, not a test: it exits 0 whatever it finds, 1 only when it fails to run.
 */

import { runWithCleanup } from "./lib.js";
import { parseScaleArgs, runScaleBench } from "./scale.js";

await runWithCleanup(async (closers) => {
  await runScaleBench(parseScaleArgs(process.argv.slice(2), Date.now()), closers);
});
