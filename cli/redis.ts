/**
 * The CLI's Redis connection: made with the functions' own factory (connectRedis, with the AWS
 * edge for IAM tokens and Secrets Manager), bounded in time so that a wrong endpoint or an
 * unreachable cluster fails with a message instead of hanging, and always closed.
 */

import { awsRedisDeps } from "../functions/adapters/aws.js";
import { connectRedis, type RedisConnection } from "../functions/adapters/redis.js";
import { messageOf } from "../functions/domain/errors.js";
import type { RedisSettings } from "../functions/domain/runtime-env.js";
import { CliError } from "./io.js";

export type ConnectRedis = (settings: RedisSettings) => RedisConnection;

export const defaultConnect: ConnectRedis = (settings) =>
  connectRedis(settings, awsRedisDeps(settings), { connectTimeoutMs: 5000 });

export async function withRedis<T>(
  settings: RedisSettings,
  options: { readonly connect?: ConnectRedis; readonly timeoutMs: number },
  use: (connection: RedisConnection) => Promise<T>,
): Promise<T> {
  const connection = (options.connect ?? defaultConnect)(settings);
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      reject(
        new CliError(
          `no answer from Redis at ${settings.host}:${settings.port} within ${options.timeoutMs / 1000} s: check REDIS_ENDPOINT, REDIS_CLUSTER (${settings.cluster}), REDIS_TLS (${settings.tls}) and that this machine can reach it. MemoryDB answers only inside its VPC: in AWS, read counts with redis-cli on the operator instance (README, "The operator session")`,
        ),
      );
    }, options.timeoutMs);
  });
  try {
    return await Promise.race([use(connection), timeout]);
  } catch (err) {
    if (err instanceof CliError) throw err;
    throw new CliError(
      `Redis at ${settings.host}:${settings.port} (${settings.cluster ? "cluster" : "single node"}, ${settings.tls ? "TLS" : "no TLS"}): ${messageOf(err)}`,
    );
  } finally {
    clearTimeout(timer);
    connection.close();
  }
}
