/**
 * The benchmarks report: runs the report's experiments (bench/report/run.ts EXPERIMENTS: each
 * starts what it measures on free loopback ports and stops it) and regenerates their blocks of
 * docs/benchmarks.md, its summary of targets, their charts in docs/charts/ and the README's
 * generated blocks, each stamped with this command, the date and the machine. It is a measurement, not a test: a MISS is reported, the exit code
 * stays 0 (a failure to measure exits 1).
 *
 * Usage: npm run bench:report -- [--small] [--only LIST] [--docs-dir DIR] [--readme FILE]
 */

import { resolve } from "node:path";
import { parseBenchArgs, progress, runWithCleanup } from "./lib.js";
import { utcDate } from "./report/machine.js";
import {
  DEFAULT_SIZES,
  EXPERIMENTS,
  type ExperimentName,
  runReport,
  SMALL_SIZES,
} from "./report/run.js";
import { targetText } from "./report/types.js";

const USAGE = `usage: npm run bench:report -- [options]
  --small            tiny sizes (seconds; what npm test runs), not for publishing
  --only LIST        comma-separated experiments to run: ${EXPERIMENTS.join(", ")} (default: all)
  --docs-dir DIR     where benchmarks.md and charts/ are written (default: docs)
  --readme FILE      the README whose generated blocks are rewritten too (default: README.md;
                     --readme "" for none; --small never writes it)`;

function parseOnly(text: string | undefined): ExperimentName[] | undefined {
  if (text === undefined) return undefined;
  const names = text.split(",").map((s) => s.trim());
  for (const name of names) {
    if (!(EXPERIMENTS as readonly string[]).includes(name)) {
      throw new RangeError(`--only: unknown experiment "${name}"\n${USAGE}`);
    }
  }
  return names as ExperimentName[];
}

const argv = process.argv.slice(2);
const { values } = parseBenchArgs(
  argv,
  {
    small: { type: "boolean", default: false },
    only: { type: "string" },
    "docs-dir": { type: "string", default: "docs" },
    readme: { type: "string", default: "README.md" },
  },
  USAGE,
);

await runWithCleanup(async (closers) => {
  const started = performance.now();
  const only = parseOnly(values.only);
  const report = await runReport({
    sizes: values.small ? SMALL_SIZES : DEFAULT_SIZES,
    docsDir: resolve(values["docs-dir"]),
    command: `npm run bench:report${argv.length > 0 ? ` -- ${argv.join(" ")}` : ""}`,
    date: utcDate(Date.now()),
    ...(only ? { only } : {}),
    ...(values.readme && !values.small ? { readmePath: resolve(values.readme) } : {}),
    progress,
    closers,
  });
  progress("");
  console.log(`wrote ${report.reportPath}`);
  for (const path of report.chartPaths) console.log(`wrote ${path}`);
  for (const output of report.outputs) {
    for (const target of output.targets) console.log(targetText(target));
  }
  console.log(`wall time: ${((performance.now() - started) / 1000).toFixed(1)} s`);
});
