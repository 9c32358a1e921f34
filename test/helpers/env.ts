import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { inject } from "vitest";
import { DEFAULT_RETENTION, toEnv } from "../../functions/domain/runtime-env.js";

/** A fresh, unique prefix for site ids, so test files never share keys on the shared cluster. */
export function uniqueSitePrefix(): string {
  return `t${process.pid}${Math.random().toString(36).slice(2, 8)}`;
}

/** Consumer environment pointing at the test cluster, with a fresh quarantine file. */
export function consumerEnv(extra: Record<string, string> = {}): Record<string, string> {
  const dir = mkdtempSync(join(tmpdir(), "sketchstream-q-"));
  return {
    ...toEnv({
      endpoint: inject("redisEndpoint"),
      cluster: true,
      tls: false,
      auth: { mode: "none" },
      retention: DEFAULT_RETENTION,
      quarantine: { file: join(dir, "quarantine.jsonl") },
    }),
    ...extra,
  };
}
