/**
 * `npm run bench:rollup`: the rollup's scheduled run (the real state machine and handlers)
 * against the same merges sent by a bare client (as single commands and as the rollup's script
 * calls) and a naive full recompute, on a local Redis Cluster. What is measured and how:
 * bench/rollup.ts. `-- --help` for the options.
 *
 * It is a measurement, not a test: a missed target is reported, the exit code stays 0.
 */

import { progress, runWithCleanup } from "./lib.js";
import { measureRollup, parseRollupOptions, printRollupReport } from "./rollup.js";

await runWithCleanup(async (closers) => {
  const result = await measureRollup(parseRollupOptions(process.argv.slice(2)), closers, progress);
  printRollupReport(result);
});
