/**
 * `token`: a MemoryDB IAM auth token for an ACL user, to paste as redis-cli's password.
 * Only the token goes to stdout, so `--pass "$(npm run -s cli -- token)"` works; how to use it
 * goes to stderr.
 */

import type { AwsCredentialIdentityProvider } from "@smithy/types";
import { createMemoryDbIamToken, IAM_TOKEN_LIFETIME_S } from "../functions/adapters/redis.js";
import { parseFlags } from "./args.js";
import { CliError, type CliIo, EXIT_OK, UsageError } from "./io.js";

export interface TokenDeps extends CliIo {
  /** Default: defaultProvider() of @aws-sdk/credential-provider-node. */
  readonly credentials?: AwsCredentialIdentityProvider;
  readonly now?: () => number;
}

const USER_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;

/** --user, else REDIS_USER (the stack's cli_env sets it to the reader, e.g. sketchstream-dev-reader). */
export function parseTokenArgs(args: readonly string[], defaultUser?: string): { user: string } {
  const flags = parseFlags("token", args, { user: { type: "string" } });
  const user = flags.user ?? defaultUser;
  if (user === undefined) {
    throw new UsageError(
      "token: no user: pass --user <ACL user>, or set REDIS_USER (the stack output cli_env does)",
    );
  }
  if (!USER_RE.test(user)) {
    throw new UsageError(
      `token: --user "${user}" is not an ACL user name: use letters, digits, "_", "." or "-"`,
    );
  }
  return { user };
}

export async function runToken(args: readonly string[], deps: TokenDeps): Promise<number> {
  const { user } = parseTokenArgs(args, deps.env.REDIS_USER?.trim() || undefined);
  const clusterName = deps.env.MEMORYDB_CLUSTER_NAME?.trim();
  const region = deps.env.AWS_REGION?.trim();
  const missing = [
    ...(clusterName
      ? []
      : ["MEMORYDB_CLUSTER_NAME is not set: expected the MemoryDB cluster name"]),
    ...(region ? [] : ["AWS_REGION is not set: expected the cluster's region, e.g. eu-west-1"]),
  ];
  if (!clusterName || !region) {
    throw new CliError(`cannot make a token:\n  - ${missing.join("\n  - ")}`);
  }
  const credentials: AwsCredentialIdentityProvider =
    deps.credentials ?? (await import("@aws-sdk/credential-provider-node")).defaultProvider();
  let token: string;
  try {
    token = await createMemoryDbIamToken({
      clusterName,
      user,
      region,
      credentials,
      signingDate: new Date((deps.now ?? Date.now)()),
    });
  } catch (err) {
    throw new CliError(
      `cannot sign a token: ${(err as Error).message}. Configure AWS credentials (AWS_PROFILE, aws sso login, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)`,
    );
  }
  deps.stdout.write(`${token}\n`);
  const endpoint = deps.env.REDIS_ENDPOINT?.trim() ?? "";
  const [host, port] = endpoint.includes(":")
    ? [endpoint.slice(0, endpoint.lastIndexOf(":")), endpoint.slice(endpoint.lastIndexOf(":") + 1)]
    : ["<cluster endpoint>", "6379"];
  deps.stderr.write(
    `token for user ${user} of MemoryDB cluster ${clusterName} (${region}), valid ${IAM_TOKEN_LIFETIME_S / 60} minutes. Use it as the password:\n  redis-cli -c --tls -h ${host} -p ${port} --user ${user} --pass "$(npm run -s cli -- token --user ${user})"\n`,
  );
  return EXIT_OK;
}
