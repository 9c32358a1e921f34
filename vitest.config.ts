import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    globalSetup: ["test/setup/redis-cluster.global.ts"],
    // Integration tests share one real cluster; each uses its own site ids, so files may run
    // in parallel. Large-set tests push a million ids through the handler.
    testTimeout: 120_000,
    hookTimeout: 60_000,
    env: {
      POWERTOOLS_LOG_LEVEL: "CRITICAL",
      POWERTOOLS_METRICS_DISABLED: "true",
    },
  },
});
