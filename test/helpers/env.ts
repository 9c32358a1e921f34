import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { inject } from "vitest";
import { localClusterEnv } from "../../local/redis-cluster.js";

/** A fresh, unique prefix for site ids, so test files never share keys on the shared cluster. */
export function uniqueSitePrefix(): string {
  return `t${process.pid}${Math.random().toString(36).slice(2, 8)}`;
}

/** Host and port of the shared test cluster's first node (`inject("redisEndpoint")`). */
export function redisSeed(): { host: string; port: number } {
  const endpoint = inject("redisEndpoint");
  const [host, port, ...rest] = endpoint.split(":");
  if (!host || port === undefined || !/^\d+$/.test(port) || rest.length > 0) {
    throw new Error(`redisEndpoint "${endpoint}" is not host:port`);
  }
  return { host, port: Number(port) };
}

/** A consumer environment, whose quarantine file the tests read back. */
export type ConsumerTestEnv = Record<string, string> & { readonly QUARANTINE_FILE: string };

/** Consumer environment pointing at the test cluster, with a fresh quarantine file. */
export function consumerEnv(extra: Record<string, string> = {}): ConsumerTestEnv {
  const file = join(mkdtempSync(join(tmpdir(), "sketchstream-q-")), "quarantine.jsonl");
  const env = {
    ...localClusterEnv(inject("redisEndpoint"), { file }),
    ...extra,
  };
  return { ...env, QUARANTINE_FILE: env.QUARANTINE_FILE ?? file };
}
