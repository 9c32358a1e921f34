/**
 * Starts one real Redis Cluster (3 primaries, redis-server from the system, loopback, free
 * ports) for the whole test run and stops it afterwards. Tests read its endpoint with
 * `inject("redisEndpoint")`.
 */

import type { TestProject } from "vitest/node";
import { startRedisCluster } from "../../local/redis-cluster.js";
import { testNowMs } from "../helpers/clock.js";

declare module "vitest" {
  export interface ProvidedContext {
    redisEndpoint: string;
    redisPorts: number[];
    redisPids: number[];
  }
}

export default async function setup(project: TestProject) {
  // A bad or too-early TEST_NOW fails the whole run here, once, with its reason.
  console.log(`test clock: ${new Date(testNowMs()).toISOString()} (TEST_NOW)`);
  const cluster = await startRedisCluster({ primaries: 3 });
  project.provide("redisEndpoint", cluster.endpoint);
  project.provide("redisPorts", [...cluster.ports]);
  project.provide("redisPids", [...cluster.pids]);
  return async () => {
    await cluster.stop();
  };
}
