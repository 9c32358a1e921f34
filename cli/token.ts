/**
 * `token`: a MemoryDB IAM auth token for an ACL user, to paste as redis-cli's password on the
 * operator instance. It is made on a workstation (which has AWS credentials and Node) and used
 * on the instance (which has a network path to MemoryDB and redis-cli, but neither of the
 * others). Only the token goes to stdout; how to use it goes to stderr.
 */

import type { AwsCredentialIdentityProvider } from "@smithy/types";
import { createMemoryDbIamToken, IAM_TOKEN_LIFETIME_S } from "../functions/adapters/redis.js";
import { messageOf } from "../functions/domain/errors.js";
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
      `cannot sign a token: ${messageOf(err)}. Configure AWS credentials (AWS_PROFILE, aws sso login, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)`,
    );
  }
  deps.stdout.write(`${token}\n`);
  const endpoint = /^(.+):(\d+)$/.exec(deps.env.REDIS_ENDPOINT?.trim() ?? "");
  const [host, port] = endpoint ? [endpoint[1], endpoint[2]] : ["<cluster endpoint>", "6379"];
  deps.stderr.write(
    [
      `token for user ${user} of MemoryDB cluster ${clusterName} (${region}): it opens connections for ${IAM_TOKEN_LIFETIME_S / 60} minutes.`,
      "MemoryDB answers only inside its VPC: copy the token, open a shell on the operator instance",
      "(the stack output operator_connect_command) and use it there as the password:",
      `  export REDISCLI_AUTH='<token>'`,
      `  redis-cli -c --tls -h ${host} -p ${port} --user ${user} PFCOUNT 'uv:{site_id=715}:2024-03-09'`,
      "",
    ].join("\n"),
  );
  return EXIT_OK;
}
