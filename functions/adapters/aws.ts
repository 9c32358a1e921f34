/**
 * The AWS edge of the Redis client: credentials for IAM auth tokens and the Secrets Manager
 * look-up for a password secret. Made only for the auth mode in use.
 */

import { GetSecretValueCommand, SecretsManagerClient } from "@aws-sdk/client-secrets-manager";
import { defaultProvider } from "@aws-sdk/credential-provider-node";
import type { RedisSettings } from "../domain/runtime-env.js";
import type { RedisClientDeps } from "./redis.js";

export function awsRedisDeps(settings: RedisSettings): RedisClientDeps {
  const { auth } = settings;
  if (auth.mode === "iam") return { credentials: defaultProvider() };
  if (auth.mode === "password" && "secretArn" in auth.password) {
    return {
      async resolveSecret(arn) {
        const out = await new SecretsManagerClient({}).send(
          new GetSecretValueCommand({ SecretId: arn }),
        );
        if (out.SecretString === undefined) {
          throw new Error(
            `secret ${arn} has no SecretString: store the Redis password as plain text`,
          );
        }
        return out.SecretString;
      },
    };
  }
  return {};
}
