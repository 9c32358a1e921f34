/**
 * The numeric limits of the stack's configuration (stacks/config-schema.ts builds its schema from
 * them) that the capacity planner (cli/capacity.ts) checks a load against: one home, which both
 * the stack and the CLI may import.
 */
export const STACK_LIMITS = {
  memorydbShards: 500,
  memorydbReplicasPerShard: 5,
  streamShardCount: 500,
  consumerBatchSize: 10_000,
  consumerParallelizationFactor: 10,
  consumerReservedConcurrency: 1000,
  rollupMapMaxConcurrency: 40,
  rollupTimeoutSeconds: 900,
  budgetMonthlyUsd: 10_000_000,
} as const;
