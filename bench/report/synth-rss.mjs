/**
 * Preload of the synth experiment (bench/report/synth.ts), given to node with `--import`: at exit
 * it appends one JSON line to the file named by SYNTH_RSS_FILE with this process's peak RSS
 * (`process.resourceUsage().maxRSS`, KiB), its lifetime and how many modules of
 * @cdktf/provider-aws it loaded. It measures only; it loads nothing. Without SYNTH_RSS_FILE it
 * does nothing.
 */

import { appendFileSync } from "node:fs";
import { createRequire } from "node:module";

const file = process.env.SYNTH_RSS_FILE;
if (file) {
  const require = createRequire(import.meta.url);
  process.on("exit", (code) => {
    const modules = Object.keys(require.cache);
    const record = {
      pid: process.pid,
      argv1: process.argv[1] ?? "",
      code,
      maxRssKiB: process.resourceUsage().maxRSS,
      seconds: process.uptime(),
      providerModules: modules.filter((m) => m.includes("/@cdktf/provider-aws/lib/")).length,
    };
    appendFileSync(file, `${JSON.stringify(record)}\n`);
  });
}
