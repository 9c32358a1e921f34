/**
 * Runtime settings of every function, read once from the environment the stack (or the local
 * runtime) sets. Every problem is reported with the variable's name and the expected form.
 *
 * | variable                   | default | form                                             |
 * |----------------------------|---------|--------------------------------------------------|
 * | REDIS_ENDPOINT             | (none)  | host:port of the cluster configuration endpoint   |
 * | REDIS_CLUSTER              | true    | true or false                                    |
 * | REDIS_TLS                  | true    | true or false                                    |
 * | REDIS_TLS_CA_FILE          | (none)  | path of a PEM CA bundle (self-signed local TLS)   |
 * | REDIS_AUTH                 | none    | none, password or iam                            |
 * | REDIS_USER                 | (none)  | ACL user name; required for password and iam     |
 * | REDIS_PASSWORD             | (none)  | local only; or REDIS_PASSWORD_SECRET_ARN          |
 * | REDIS_PASSWORD_SECRET_ARN  | (none)  | Secrets Manager ARN holding the password          |
 * | MEMORYDB_CLUSTER_NAME      | (none)  | required for iam                                  |
 * | AWS_REGION                 | (none)  | required for iam (Lambda sets it)                 |
 * | RETENTION_DAYS             | 62      | whole days, 1-3660                                |
 * | RETENTION_WEEKS            | 104     | whole weeks, 1-520                                |
 * | RETENTION_MONTHS           | 36      | whole months, 1-120                               |
 * | QUARANTINE_QUEUE_URL       | (none)  | SQS queue URL (consumer, AWS)                     |
 * | QUARANTINE_FILE            | (none)  | JSON-lines file path (consumer, local)            |
 */

import * as v from "valibot";
import type { RetentionSettings } from "./periods.js";

export type Env = Readonly<Record<string, string | undefined>>;

export type RedisAuth =
  | { readonly mode: "none" }
  | {
      readonly mode: "password";
      readonly user: string;
      readonly password: { readonly value: string } | { readonly secretArn: string };
    }
  | {
      readonly mode: "iam";
      readonly user: string;
      readonly clusterName: string;
      readonly region: string;
    };

export interface RedisSettings {
  readonly host: string;
  readonly port: number;
  readonly cluster: boolean;
  readonly tls: boolean;
  readonly tlsCaFile?: string;
  readonly auth: RedisAuth;
}

export interface RuntimeConfig {
  readonly redis: RedisSettings;
  readonly retention: RetentionSettings;
}

export type QuarantineTarget = { readonly queueUrl: string } | { readonly file: string };

export interface ConsumerConfig extends RuntimeConfig {
  readonly quarantine: QuarantineTarget;
}

export class ConfigError extends Error {
  override name = "ConfigError";
  constructor(readonly problems: readonly string[]) {
    super(`invalid configuration:\n  - ${problems.join("\n  - ")}`);
  }
}

const ENDPOINT_RE = /^(\[[0-9a-fA-F:]+\]|[A-Za-z0-9.-]+):(\d{1,5})$/;

/** Collects problems instead of stopping at the first, so one deploy fixes them all. */
class EnvReader {
  readonly problems: string[] = [];
  constructor(private readonly env: Env) {}

  raw(name: string): string | undefined {
    const value = this.env[name]?.trim();
    return value === undefined || value === "" ? undefined : value;
  }

  required(name: string, form: string): string {
    const value = this.raw(name);
    if (value === undefined) this.problems.push(`${name} is not set: expected ${form}`);
    return value ?? "";
  }

  parse<T>(name: string, schema: v.GenericSchema<string, T>, form: string, fallback: T): T {
    const value = this.raw(name);
    if (value === undefined) return fallback;
    const result = v.safeParse(schema, value);
    if (result.success) return result.output;
    this.problems.push(`${name}="${value}" is invalid: expected ${form}`);
    return fallback;
  }

  boolean(name: string, fallback: boolean): boolean {
    return this.parse(
      name,
      v.pipe(
        v.picklist(["true", "false"]),
        v.transform((s) => s === "true"),
      ),
      "true or false",
      fallback,
    );
  }

  integer(name: string, min: number, max: number, fallback: number, unit: string): number {
    return this.parse(
      name,
      v.pipe(v.string(), v.regex(/^\d+$/), v.transform(Number), v.minValue(min), v.maxValue(max)),
      `a whole number of ${unit} from ${min} to ${max}`,
      fallback,
    );
  }
}

function readRedis(r: EnvReader): RedisSettings {
  const endpoint = r.required(
    "REDIS_ENDPOINT",
    "host:port, e.g. clustercfg.example.memorydb.amazonaws.com:6379",
  );
  const match = ENDPOINT_RE.exec(endpoint);
  const port = match ? Number(match[2]) : 0;
  if (endpoint !== "" && (!match || port < 1 || port > 65535)) {
    r.problems.push(
      `REDIS_ENDPOINT="${endpoint}" is invalid: expected host:port with a port from 1 to 65535`,
    );
  }
  const host = (match?.[1] ?? "").replace(/^\[|\]$/g, "");
  const cluster = r.boolean("REDIS_CLUSTER", true);
  const tls = r.boolean("REDIS_TLS", true);
  const tlsCaFile = r.raw("REDIS_TLS_CA_FILE");
  const mode = r.parse(
    "REDIS_AUTH",
    v.picklist(["none", "password", "iam"]),
    "none, password or iam",
    "none" as "none" | "password" | "iam",
  );
  let auth: RedisAuth = { mode: "none" };
  if (mode === "password") {
    const user = r.required("REDIS_USER", "the ACL user name when REDIS_AUTH=password");
    const value = r.raw("REDIS_PASSWORD");
    const secretArn = r.raw("REDIS_PASSWORD_SECRET_ARN");
    if (value === undefined && secretArn === undefined) {
      r.problems.push(
        "REDIS_AUTH=password needs REDIS_PASSWORD (local) or REDIS_PASSWORD_SECRET_ARN",
      );
    }
    auth = {
      mode,
      user,
      password: value !== undefined ? { value } : { secretArn: secretArn ?? "" },
    };
  } else if (mode === "iam") {
    const user = r.required("REDIS_USER", "the MemoryDB ACL user name when REDIS_AUTH=iam");
    const clusterName = r.required(
      "MEMORYDB_CLUSTER_NAME",
      "the MemoryDB cluster name when REDIS_AUTH=iam",
    );
    const region = r.required("AWS_REGION", "the AWS region, e.g. eu-west-1, when REDIS_AUTH=iam");
    if (!tls)
      r.problems.push(
        "REDIS_AUTH=iam needs REDIS_TLS=true: MemoryDB accepts IAM tokens only over TLS",
      );
    auth = { mode, user, clusterName, region };
  }
  return tlsCaFile === undefined
    ? { host, port, cluster, tls, auth }
    : { host, port, cluster, tls, tlsCaFile, auth };
}

/** Retention defaults: days 62 (a month can always be rebuilt from its days), weeks 104, months 36. */
export const DEFAULT_RETENTION: RetentionSettings = { days: 62, weeks: 104, months: 36 };

function readRetention(r: EnvReader): RetentionSettings {
  return {
    days: r.integer("RETENTION_DAYS", 1, 3660, DEFAULT_RETENTION.days, "days"),
    weeks: r.integer("RETENTION_WEEKS", 1, 520, DEFAULT_RETENTION.weeks, "weeks"),
    months: r.integer("RETENTION_MONTHS", 1, 120, DEFAULT_RETENTION.months, "months"),
  };
}

export function loadRuntimeConfig(env: Env): RuntimeConfig {
  const r = new EnvReader(env);
  const config = { redis: readRedis(r), retention: readRetention(r) };
  if (r.problems.length > 0) throw new ConfigError(r.problems);
  return config;
}

export function loadConsumerConfig(env: Env): ConsumerConfig {
  const r = new EnvReader(env);
  const redis = readRedis(r);
  const retention = readRetention(r);
  const queueUrl = r.raw("QUARANTINE_QUEUE_URL");
  const file = r.raw("QUARANTINE_FILE");
  let quarantine: QuarantineTarget = { file: "" };
  if (queueUrl !== undefined && file !== undefined) {
    r.problems.push("set only one of QUARANTINE_QUEUE_URL (AWS) and QUARANTINE_FILE (local)");
  } else if (queueUrl !== undefined) {
    if (!/^https?:\/\/\S+$/.test(queueUrl)) {
      r.problems.push(`QUARANTINE_QUEUE_URL="${queueUrl}" is invalid: expected an SQS queue URL`);
    }
    quarantine = { queueUrl };
  } else if (file !== undefined) {
    quarantine = { file };
  } else {
    r.problems.push(
      "no quarantine sink: set QUARANTINE_QUEUE_URL (SQS, AWS) or QUARANTINE_FILE (JSON lines, local)",
    );
  }
  if (r.problems.length > 0) throw new ConfigError(r.problems);
  return { redis, retention, quarantine };
}
