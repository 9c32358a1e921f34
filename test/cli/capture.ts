/** Streams that collect what a command writes, for calling runCli in-process. */

import type { Env } from "../../functions/domain/runtime-env.js";

export interface Captured {
  stdout: string;
  stderr: string;
}

export function captureIo(env: Env = {}) {
  const out: Captured = { stdout: "", stderr: "" };
  return {
    out,
    io: {
      env,
      stdout: {
        write: (s: string) => {
          out.stdout += s;
        },
      },
      stderr: {
        write: (s: string) => {
          out.stderr += s;
        },
      },
    },
  };
}
