/**
 * ioredis client factory for MemoryDB (cluster mode, TLS, ACL users, IAM auth) and for the
 * plain Redis servers used locally. Dependencies that reach AWS are passed in.
 */

import { readFileSync } from "node:fs";
import type { ConnectionOptions } from "node:tls";
import { Sha256 } from "@aws-crypto/sha256-js";
import { HttpRequest } from "@smithy/protocol-http";
import { SignatureV4 } from "@smithy/signature-v4";
import type { AwsCredentialIdentity, AwsCredentialIdentityProvider } from "@smithy/types";
import { Cluster, type ClusterOptions, Redis, type RedisOptions } from "ioredis";
import type { RedisSettings } from "../domain/runtime-env.js";

export type RedisClient = Redis | Cluster;

const AUTO_PIPELINING_IGNORED = ["eval", "evalsha"];

/** MemoryDB IAM tokens are valid for 15 minutes; a fresh one is made well before that. */
export const IAM_TOKEN_LIFETIME_S = 900;
export const IAM_TOKEN_REFRESH_MS = 10 * 60_000;

/**
 * A MemoryDB IAM auth token: a SigV4-presigned `connect` request for the user, signed for the
 * service `memorydb`, without its scheme. Used as the password of the ACL user.
 */
export async function createMemoryDbIamToken(opts: {
  readonly clusterName: string;
  readonly user: string;
  readonly region: string;
  readonly credentials: AwsCredentialIdentity | AwsCredentialIdentityProvider;
  readonly signingDate?: Date;
}): Promise<string> {
  const signer = new SignatureV4({
    service: "memorydb",
    region: opts.region,
    credentials: opts.credentials,
    sha256: Sha256,
  });
  const request = new HttpRequest({
    method: "GET",
    protocol: "http:",
    hostname: opts.clusterName,
    path: "/",
    query: { Action: "connect", User: opts.user },
    headers: { host: opts.clusterName },
  });
  const signed = await signer.presign(request, {
    expiresIn: IAM_TOKEN_LIFETIME_S,
    ...(opts.signingDate ? { signingDate: opts.signingDate } : {}),
  });
  const query = Object.entries(signed.query ?? {})
    .flatMap(([k, value]) =>
      (Array.isArray(value) ? value : [value]).map(
        (item) => `${encodeURIComponent(k)}=${encodeURIComponent(String(item ?? ""))}`,
      ),
    )
    .join("&");
  return `${opts.clusterName}/?${query}`;
}

export interface RedisClientDeps {
  /** AWS credentials for IAM auth tokens (e.g. defaultProvider() of @aws-sdk/credential-provider-node). */
  readonly credentials?: AwsCredentialIdentityProvider;
  /** Resolves REDIS_PASSWORD_SECRET_ARN to the password (Secrets Manager in AWS). */
  readonly resolveSecret?: (arn: string) => Promise<string>;
  readonly now?: () => number;
}

export interface RedisConnection {
  readonly client: RedisClient;
  /** Renews the IAM token when it is close to expiry, so that reconnects can authenticate. */
  refreshAuth(): Promise<void>;
  /** Drops every connection at once; pending commands are rejected, none is left queued. */
  close(): void;
}

/** Connection tunables; defaults suit a Lambda in the same VPC as MemoryDB. */
export interface RedisTunables {
  /** ms to establish a TCP/TLS connection. Default 2000. */
  readonly connectTimeoutMs?: number;
  /** ms before one command is abandoned; the caller's deadline applies as well. Default none. */
  readonly commandTimeoutMs?: number;
}

async function resolvePassword(
  settings: RedisSettings,
  deps: RedisClientDeps,
): Promise<string | undefined> {
  const { auth } = settings;
  switch (auth.mode) {
    case "none":
      return undefined;
    case "password":
      if ("value" in auth.password) return auth.password.value;
      if (!deps.resolveSecret) {
        throw new Error("REDIS_PASSWORD_SECRET_ARN is set but no secret resolver was provided");
      }
      return deps.resolveSecret(auth.password.secretArn);
    case "iam":
      if (!deps.credentials)
        throw new Error("REDIS_AUTH=iam needs AWS credentials; none were provided");
      return createMemoryDbIamToken({
        clusterName: auth.clusterName,
        user: auth.user,
        region: auth.region,
        credentials: deps.credentials,
        signingDate: new Date((deps.now ?? Date.now)()),
      });
  }
}

export async function connectRedis(
  settings: RedisSettings,
  deps: RedisClientDeps = {},
  tunables: RedisTunables = {},
): Promise<RedisConnection> {
  const now = deps.now ?? Date.now;
  const username = settings.auth.mode === "none" ? undefined : settings.auth.user;
  let password = await resolvePassword(settings, deps);
  let passwordMadeAt = now();
  const tls: ConnectionOptions | undefined = settings.tls
    ? settings.tlsCaFile
      ? { ca: readFileSync(settings.tlsCaFile) }
      : {}
    : undefined;
  const nodeOptions: RedisOptions = {
    connectTimeout: tunables.connectTimeoutMs ?? 2000,
    ...(tunables.commandTimeoutMs ? { commandTimeout: tunables.commandTimeoutMs } : {}),
    ...(tls ? { tls } : {}),
    ...(username ? { username } : {}),
    ...(password ? { password } : {}),
    // One retry of a command after a reconnect; the caller's deadline bounds the rest.
    maxRetriesPerRequest: 1,
  };
  let client: RedisClient;
  if (settings.cluster) {
    const clusterOptions: ClusterOptions = {
      // MemoryDB's TLS certificates name the endpoints, not their IPs: keep host names as given.
      dnsLookup: (address, callback) => callback(null, address),
      redisOptions: nodeOptions,
      enableAutoPipelining: true,
      // An auto-pipelined EVAL that shares a batch with keys of other slots is refused
      // ("All keys in the pipeline should belong to the same slots allocation group").
      autoPipeliningIgnoredCommands: AUTO_PIPELINING_IGNORED,
      slotsRefreshTimeout: 2000,
      clusterRetryStrategy: (times) => Math.min(100 * 2 ** times, 2000),
    };
    client = new Cluster([{ host: settings.host, port: settings.port }], clusterOptions);
  } else {
    client = new Redis({
      ...nodeOptions,
      host: settings.host,
      port: settings.port,
      enableAutoPipelining: true,
      autoPipeliningIgnoredCommands: AUTO_PIPELINING_IGNORED,
    });
  }
  // ioredis logs unhandled 'error' events to stderr; the callers see failures through commands.
  client.on("error", () => {});

  return {
    client,
    async refreshAuth() {
      if (settings.auth.mode !== "iam" || now() - passwordMadeAt < IAM_TOKEN_REFRESH_MS) return;
      password = await resolvePassword(settings, deps);
      passwordMadeAt = now();
      // ioredis reads the password from its options at every (re)connect and AUTH.
      if (client instanceof Cluster) {
        if (client.options.redisOptions) client.options.redisOptions.password = password;
        for (const node of client.nodes("all")) node.options.password = password;
      } else {
        client.options.password = password;
      }
    },
    close() {
      client.disconnect();
    },
  };
}
