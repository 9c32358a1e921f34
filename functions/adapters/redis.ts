/**
 * ioredis client factory for MemoryDB (cluster mode, TLS, ACL users, IAM auth) and for the
 * plain Redis servers used locally. Dependencies that reach AWS are passed in. Every
 * connection, first or re-made, authenticates with a credential fetched for it.
 */

import { readFileSync } from "node:fs";
import type { ConnectionOptions } from "node:tls";
import { Sha256 } from "@aws-crypto/sha256-js";
import { HttpRequest } from "@smithy/protocol-http";
import { SignatureV4 } from "@smithy/signature-v4";
import type { AwsCredentialIdentity, AwsCredentialIdentityProvider } from "@smithy/types";
import { Cluster, type ClusterOptions, Redis, type RedisOptions } from "ioredis";
import type { RedisSettings } from "../domain/runtime-env.js";
import { authenticatingConnector, type CredentialSource } from "./redis-auth.js";

export type RedisClient = Redis | Cluster;

const AUTO_PIPELINING_IGNORED = ["eval", "evalsha"];

/**
 * MemoryDB IAM tokens are valid for 15 minutes, for new connections only: each connection gets
 * a token signed when it connects (redis-auth.ts), so none is ever presented stale.
 */
export const IAM_TOKEN_LIFETIME_S = 900;

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
  /** Drops every connection at once; pending commands are rejected, none is left queued. */
  close(): void;
}

/** Connection tunables; defaults suit a Lambda in the same VPC as MemoryDB. */
export interface RedisTunables {
  /** ms to connect, get a credential and authenticate. Default 2000. */
  readonly connectTimeoutMs?: number;
  /** ms before one command is abandoned; the caller's deadline applies as well. Default none. */
  readonly commandTimeoutMs?: number;
}

/**
 * Where each new connection's password comes from: asked again for every (re)connection, so
 * an IAM token is always freshly signed and a rotated secret is read again.
 */
function credentialSource(
  settings: RedisSettings,
  deps: RedisClientDeps,
): { readonly user: string; readonly credential: CredentialSource } | undefined {
  const { auth } = settings;
  switch (auth.mode) {
    case "none":
      return undefined;
    case "password": {
      const { password } = auth;
      if ("value" in password) return { user: auth.user, credential: async () => password.value };
      const { resolveSecret } = deps;
      if (!resolveSecret) {
        throw new Error("REDIS_PASSWORD_SECRET_ARN is set but no secret resolver was provided");
      }
      return { user: auth.user, credential: () => resolveSecret(password.secretArn) };
    }
    case "iam": {
      const { credentials } = deps;
      if (!credentials) throw new Error("REDIS_AUTH=iam needs AWS credentials; none were provided");
      const now = deps.now ?? Date.now;
      return {
        user: auth.user,
        credential: () =>
          createMemoryDbIamToken({
            clusterName: auth.clusterName,
            user: auth.user,
            region: auth.region,
            credentials,
            signingDate: new Date(now()),
          }),
      };
    }
  }
}

export function connectRedis(
  settings: RedisSettings,
  deps: RedisClientDeps = {},
  tunables: RedisTunables = {},
): RedisConnection {
  const connectTimeout = tunables.connectTimeoutMs ?? 2000;
  const auth = credentialSource(settings, deps);
  const tls: ConnectionOptions | undefined = settings.tls
    ? settings.tlsCaFile
      ? { ca: readFileSync(settings.tlsCaFile) }
      : {}
    : undefined;
  const nodeOptions: RedisOptions = {
    connectTimeout,
    ...(tunables.commandTimeoutMs ? { commandTimeout: tunables.commandTimeoutMs } : {}),
    ...(tls ? { tls } : {}),
    // No username or password for ioredis: the connector authenticates every connection with
    // a credential fetched for it (redis-auth.ts); every Cluster node inherits the connector.
    ...(auth
      ? { Connector: authenticatingConnector(auth.user, auth.credential, connectTimeout) }
      : {}),
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
    close() {
      client.disconnect();
    },
  };
}

/** A connection made on first use and kept, which `reset` drops (a request that timed out). */
export interface OnDemandConnection {
  get(): RedisClient;
  reset(): void;
}

/**
 * For request handlers (the read and admin APIs): the connection is made by the first request
 * and reused while the execution environment stays warm; after a missed deadline the caller
 * resets it, so nothing stays queued behind an unreachable node.
 */
export function onDemandConnection(
  settings: RedisSettings,
  deps: RedisClientDeps,
  tunables: RedisTunables = {},
): OnDemandConnection {
  let connection: RedisConnection | undefined;
  return {
    get() {
      connection ??= connectRedis(settings, deps, tunables);
      return connection.client;
    },
    reset() {
      connection?.close();
      connection = undefined;
    },
  };
}
