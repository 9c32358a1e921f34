/**
 * `npm run cli -- <command> [flags]`: the operator CLI. Reads the same environment as the
 * functions (see cli/io.ts USAGE); everything else is in cli/app.ts and one module per command.
 */

import { runCli } from "./app.js";

const code = await runCli(process.argv.slice(2), {
  env: process.env,
  stdout: process.stdout,
  stderr: process.stderr,
});
process.exitCode = code;
// Nothing left open (an SDK keep-alive socket, a credential probe) may keep the CLI running.
setTimeout(() => process.exit(code), 2000).unref();
