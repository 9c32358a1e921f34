/**
 * The runtime contract: the environment variables every function reads, with their defaults
 * and limits, how they are parsed (`loadRuntimeConfig`, `loadConsumerRuntimeConfig`), and how
 * typed settings become them (`toEnv`). The stack, the local runtime, the CLI's `cli_env`
 * output, the tests and the README all take names, defaults and limits from here; a test checks
 * that the README's tables say the same.
 *
 * Every problem is reported with the variable's name and the expected form, all at once.
 */

import * as v from "valibot";
import type { RetentionSettings } from "./periods.js";

export type Env = Readonly<Record<string, string | undefined>>;

/** One variable of the contract, as the README's table shows it. */
export interface VariableSpec {
  readonly name: string;
  /** The default as documented: a value, `required`, `none` or `set by Lambda`. */
  readonly defaultText: string;
  readonly meaning: string;
}

/** How long keys live after their period ends, with the limits the config accepts. */
export const RETENTION_LIMITS = {
  days: { variable: "RETENTION_DAYS", min: 1, max: 3660, default: 62, unit: "days" },
  weeks: { variable: "RETENTION_WEEKS", min: 1, max: 520, default: 104, unit: "weeks" },
  months: { variable: "RETENTION_MONTHS", min: 1, max: 120, default: 36, unit: "months" },
} as const;

/** Retention defaults: days 62 (a month can always be rebuilt from its days), weeks 104, months 36. */
export const DEFAULT_RETENTION: RetentionSettings = {
  days: RETENTION_LIMITS.days.default,
  weeks: RETENTION_LIMITS.weeks.default,
  months: RETENTION_LIMITS.months.default,
};

/** The read API's own setting: how long one request may wait for Redis before a 503. */
export const API_DEADLINE = {
  variable: "API_REDIS_DEADLINE_MS",
  default: 3000,
  min: 100,
  max: 60_000,
} as const;

/** API_REDIS_DEADLINE_MS, or its default; a ConfigError naming the variable when invalid. */
export function loadApiDeadlineMs(env: Env): number {
  const text = env[API_DEADLINE.variable];
  if (text === undefined || text === "") return API_DEADLINE.default;
  const ms = Number(text);
  if (!/^\d+$/.test(text) || ms < API_DEADLINE.min || ms > API_DEADLINE.max) {
    throw new ConfigError([
      `${API_DEADLINE.variable} must be a whole number of milliseconds from ${API_DEADLINE.min} to ${API_DEADLINE.max}, got "${text}"`,
    ]);
  }
  return ms;
}

/**
 * The consumer's optional wait for replicas: with `REDIS_WAIT_REPLICAS=1`, a batch is
 * acknowledged only once one replica of every primary it wrote to has its writes (`WAIT 1
 * <REDIS_WAIT_TIMEOUT_MS>` on each of those primaries' connections). For self-managed Redis,
 * whose replication is asynchronous: a primary that dies right after acknowledging a write can
 * take it with it, and the batch, already checkpointed, would never be retried. Off by default
 * and in AWS: MemoryDB commits every write to its multi-AZ transaction log before acknowledging
 * it, so acknowledged writes survive a failover without waiting. Waiting trades availability
 * for durability: a primary left with no replica fails every batch that writes to it until a
 * replica is back (the shard's iterator age grows meanwhile).
 */
export const REPLICA_WAIT = {
  replicasVariable: "REDIS_WAIT_REPLICAS",
  timeoutVariable: "REDIS_WAIT_TIMEOUT_MS",
  /** WAIT's numreplicas: 0 (do not wait) or 1. */
  maxReplicas: 1,
  defaultTimeoutMs: 1000,
  minTimeoutMs: 1,
  maxTimeoutMs: 60_000,
} as const;

/** Every variable a function reads. */
export const RUNTIME_VARIABLES: readonly VariableSpec[] = [
  {
    name: "REDIS_ENDPOINT",
    defaultText: "required",
    meaning: "`host:port` of the cluster configuration endpoint (or of a single node)",
  },
  {
    name: "REDIS_CLUSTER",
    defaultText: "`true`",
    meaning: "`true` for cluster mode, `false` for a single node",
  },
  {
    name: "REDIS_TLS",
    defaultText: "`true`",
    meaning: "`true` to connect with TLS (MemoryDB requires it)",
  },
  {
    name: "REDIS_TLS_CA_FILE",
    defaultText: "none",
    meaning: "PEM CA bundle, for self-signed local TLS; AWS needs none",
  },
  { name: "REDIS_AUTH", defaultText: "`none`", meaning: "`none`, `password` or `iam`" },
  {
    name: "REDIS_USER",
    defaultText: "none",
    meaning: "ACL user; required for `password` and `iam`",
  },
  {
    name: "REDIS_PASSWORD",
    defaultText: "none",
    meaning: "local only; in AWS use `iam` (or `REDIS_PASSWORD_SECRET_ARN`)",
  },
  {
    name: "REDIS_PASSWORD_SECRET_ARN",
    defaultText: "none",
    meaning: "Secrets Manager secret holding the password (read again for every new connection)",
  },
  {
    name: "MEMORYDB_CLUSTER_NAME",
    defaultText: "none",
    meaning: "required for `iam` (the token is signed for it)",
  },
  { name: "AWS_REGION", defaultText: "set by Lambda", meaning: "required for `iam`" },
  ...Object.values(RETENTION_LIMITS).map((r) => ({
    name: r.variable,
    defaultText: `\`${r.default}\``,
    meaning: `whole ${r.unit}, ${r.min}-${r.max}: how long a ${r.unit.slice(0, -1)}'s key lives after its ${r.unit.slice(0, -1)}`,
  })),
  {
    name: "QUARANTINE_QUEUE_URL",
    defaultText: "none",
    meaning: "consumer, AWS: SQS queue for rejected records",
  },
  {
    name: "QUARANTINE_FILE",
    defaultText: "none",
    meaning: "consumer, local: JSON-lines file for rejected records",
  },
  {
    name: REPLICA_WAIT.replicasVariable,
    defaultText: "`0`",
    meaning:
      "consumer only: `1` acknowledges a batch only once a replica of each primary it wrote to has its writes (`WAIT 1`), for self-managed Redis, which replicates asynchronously; `0` in AWS, where MemoryDB's multi-AZ transaction log makes acknowledged writes durable",
  },
  {
    name: REPLICA_WAIT.timeoutVariable,
    defaultText: `\`${REPLICA_WAIT.defaultTimeoutMs}\``,
    meaning: `consumer, with \`${REPLICA_WAIT.replicasVariable}=1\`: ms, ${REPLICA_WAIT.minTimeoutMs}-${REPLICA_WAIT.maxTimeoutMs}, a primary's replica may take to confirm; otherwise the batch fails from its first record on that primary and is retried`,
  },
  {
    name: API_DEADLINE.variable,
    defaultText: `\`${API_DEADLINE.default}\``,
    meaning: `read and admin APIs only: ms, ${API_DEADLINE.min}-${API_DEADLINE.max}, a request waits for Redis before answering 503`,
  },
];

/** What the operator CLI reads besides the functions' variables. */
export const CLI_VARIABLES: readonly VariableSpec[] = [
  {
    name: "API_URL",
    defaultText: "none",
    meaning:
      "`count`, `series`, `dashboard`: read through the read API (the stack's `api_url`), SigV4-signed with your AWS credentials",
  },
  {
    name: "ADMIN_API_URL",
    defaultText: "none",
    meaning:
      "`site`: read and set time zones, and delete sites, through the admin API (the stack's `admin_api_url`), SigV4-signed with your AWS credentials",
  },
  {
    name: "STREAM_NAME",
    defaultText: "none",
    meaning: "`send`, `redrive`: the Kinesis stream's name or ARN",
  },
  {
    name: "KINESIS_ENDPOINT",
    defaultText: "none",
    meaning: "`send`, `redrive`, local only: a local Kinesis URL, e.g. `http://127.0.0.1:4567`",
  },
  {
    name: "STATE_MACHINE_ARN",
    defaultText: "none",
    meaning: "`rollup`: the rollup state machine's ARN",
  },
  {
    name: "SFN_ENDPOINT",
    defaultText: "none",
    meaning: "`rollup`: another Step Functions endpoint (tests, local emulators)",
  },
  {
    name: "FAILURE_QUEUE_URL",
    defaultText: "none",
    meaning: "`redrive`: the consumer's on-failure queue (the stack's `failure_queue_url`)",
  },
  {
    name: "CONSUMER_FUNCTION_NAME",
    defaultText: "none",
    meaning:
      "`redrive`: the consumer function invoked with the records read back (its name or ARN; in `cli_env`)",
  },
  {
    name: "ON_FAILURE_FILE",
    defaultText: "none",
    meaning:
      "`redrive --local`: the local poller's on-failure file (`on-failure.jsonl` in the local runtime's data directory)",
  },
];

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

/** REDIS_WAIT_REPLICAS and REDIS_WAIT_TIMEOUT_MS, when the consumer waits for replicas. */
export interface ReplicaWaitSettings {
  /** Replicas that must confirm each primary's writes (WAIT's numreplicas): 1. */
  readonly replicas: number;
  readonly timeoutMs: number;
}

export interface ConsumerRuntimeConfig extends RuntimeConfig {
  readonly quarantine: QuarantineTarget;
  /** Absent: batches are acknowledged without waiting for replicas (the default). */
  readonly replicaWait?: ReplicaWaitSettings;
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

  integer(limits: (typeof RETENTION_LIMITS)[keyof typeof RETENTION_LIMITS]): number {
    const { variable, min, max, unit } = limits;
    return this.parse(
      variable,
      v.pipe(v.string(), v.regex(/^\d+$/), v.transform(Number), v.minValue(min), v.maxValue(max)),
      `a whole number of ${unit} from ${min} to ${max}`,
      limits.default,
    );
  }
}

function readAuth(r: EnvReader, tls: boolean): RedisAuth {
  const mode = r.parse(
    "REDIS_AUTH",
    v.picklist(["none", "password", "iam"]),
    "none, password or iam",
    "none",
  );
  if (mode === "password") {
    const user = r.required("REDIS_USER", "the ACL user name when REDIS_AUTH=password");
    const value = r.raw("REDIS_PASSWORD");
    const secretArn = r.raw("REDIS_PASSWORD_SECRET_ARN");
    if (value === undefined && secretArn === undefined) {
      r.problems.push(
        "REDIS_AUTH=password needs REDIS_PASSWORD (local) or REDIS_PASSWORD_SECRET_ARN",
      );
    }
    return {
      mode,
      user,
      password: value !== undefined ? { value } : { secretArn: secretArn ?? "" },
    };
  }
  if (mode === "iam") {
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
    return { mode, user, clusterName, region };
  }
  return { mode: "none" };
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
  const auth = readAuth(r, tls);
  return tlsCaFile === undefined
    ? { host, port, cluster, tls, auth }
    : { host, port, cluster, tls, tlsCaFile, auth };
}

function readRetention(r: EnvReader): RetentionSettings {
  return {
    days: r.integer(RETENTION_LIMITS.days),
    weeks: r.integer(RETENTION_LIMITS.weeks),
    months: r.integer(RETENTION_LIMITS.months),
  };
}

function readQuarantine(r: EnvReader): QuarantineTarget {
  const queueUrl = r.raw("QUARANTINE_QUEUE_URL");
  const file = r.raw("QUARANTINE_FILE");
  if (queueUrl !== undefined && file !== undefined) {
    r.problems.push("set only one of QUARANTINE_QUEUE_URL (AWS) and QUARANTINE_FILE (local)");
    return { file };
  }
  if (queueUrl !== undefined) {
    if (!/^https?:\/\/\S+$/.test(queueUrl)) {
      r.problems.push(`QUARANTINE_QUEUE_URL="${queueUrl}" is invalid: expected an SQS queue URL`);
    }
    return { queueUrl };
  }
  if (file !== undefined) return { file };
  r.problems.push(
    "no quarantine sink: set QUARANTINE_QUEUE_URL (SQS, AWS) or QUARANTINE_FILE (JSON lines, local)",
  );
  return { file: "" };
}

function readReplicaWait(r: EnvReader): ReplicaWaitSettings | undefined {
  const { replicasVariable, timeoutVariable, maxReplicas, minTimeoutMs, maxTimeoutMs } =
    REPLICA_WAIT;
  const problemsBefore = r.problems.length;
  const replicas = r.parse(
    replicasVariable,
    v.pipe(v.picklist(["0", "1"]), v.transform(Number)),
    `0 (acknowledge batches without waiting; the default) or ${maxReplicas} (wait until one replica of each primary written to has the batch's writes)`,
    0,
  );
  const replicasValid = r.problems.length === problemsBefore;
  const timeoutText = r.raw(timeoutVariable);
  const timeoutMs = r.parse(
    timeoutVariable,
    v.pipe(
      v.string(),
      v.regex(/^\d+$/),
      v.transform(Number),
      v.minValue(minTimeoutMs),
      v.maxValue(maxTimeoutMs),
    ),
    `a whole number of milliseconds from ${minTimeoutMs} to ${maxTimeoutMs}`,
    REPLICA_WAIT.defaultTimeoutMs,
  );
  if (replicas === 0) {
    // A timeout without the wait would silently do nothing: say so rather than ignore it.
    if (timeoutText !== undefined && replicasValid) {
      r.problems.push(
        `${timeoutVariable}=${timeoutText} has no effect while ${replicasVariable} is 0 (the default): set ${replicasVariable}=1 to wait for a replica, or remove ${timeoutVariable}`,
      );
    }
    return undefined;
  }
  return { replicas, timeoutMs };
}

export function loadRuntimeConfig(env: Env): RuntimeConfig {
  const r = new EnvReader(env);
  const config = { redis: readRedis(r), retention: readRetention(r) };
  if (r.problems.length > 0) throw new ConfigError(r.problems);
  return config;
}

export function loadConsumerRuntimeConfig(env: Env): ConsumerRuntimeConfig {
  const r = new EnvReader(env);
  const redis = readRedis(r);
  const retention = readRetention(r);
  const quarantine = readQuarantine(r);
  const replicaWait = readReplicaWait(r);
  if (r.problems.length > 0) throw new ConfigError(r.problems);
  return replicaWait === undefined
    ? { redis, retention, quarantine }
    : { redis, retention, quarantine, replicaWait };
}

/** How a function authenticates, as the environment says it (the region comes from Lambda). */
export type RedisAuthEnv =
  | { readonly mode: "none" }
  | { readonly mode: "password"; readonly user: string; readonly password: string }
  | { readonly mode: "password"; readonly user: string; readonly secretArn: string }
  | { readonly mode: "iam"; readonly user: string; readonly clusterName: string };

/** The typed settings `toEnv` writes as variables. Values may be Terraform references. */
export interface RuntimeEnvInput {
  /** `host:port` of the configuration endpoint (or of a single node). */
  readonly endpoint: string;
  readonly cluster: boolean;
  readonly tls: boolean;
  readonly tlsCaFile?: string;
  readonly auth: RedisAuthEnv;
  readonly retention: RetentionSettings;
  readonly quarantine?: QuarantineTarget;
  /** The consumer's wait for replicas; absent (the default) writes neither variable. */
  readonly replicaWait?: ReplicaWaitSettings;
  /** AWS_REGION: Lambda sets it (and reserves the name); the CLI's environment needs it. */
  readonly region?: string;
}

/** The variables of the contract for these settings; loadRuntimeConfig reads them back. */
export function toEnv(input: RuntimeEnvInput): Record<string, string> {
  const env: Record<string, string> = {
    REDIS_ENDPOINT: input.endpoint,
    REDIS_CLUSTER: String(input.cluster),
    REDIS_TLS: String(input.tls),
    REDIS_AUTH: input.auth.mode,
  };
  if (input.tlsCaFile !== undefined) env.REDIS_TLS_CA_FILE = input.tlsCaFile;
  const { auth } = input;
  if (auth.mode !== "none") env.REDIS_USER = auth.user;
  if (auth.mode === "iam") env.MEMORYDB_CLUSTER_NAME = auth.clusterName;
  if (auth.mode === "password" && "password" in auth) env.REDIS_PASSWORD = auth.password;
  if (auth.mode === "password" && "secretArn" in auth)
    env.REDIS_PASSWORD_SECRET_ARN = auth.secretArn;
  if (input.region !== undefined) env.AWS_REGION = input.region;
  env[RETENTION_LIMITS.days.variable] = String(input.retention.days);
  env[RETENTION_LIMITS.weeks.variable] = String(input.retention.weeks);
  env[RETENTION_LIMITS.months.variable] = String(input.retention.months);
  if (input.quarantine !== undefined) {
    if ("queueUrl" in input.quarantine) env.QUARANTINE_QUEUE_URL = input.quarantine.queueUrl;
    else env.QUARANTINE_FILE = input.quarantine.file;
  }
  if (input.replicaWait !== undefined) {
    env[REPLICA_WAIT.replicasVariable] = String(input.replicaWait.replicas);
    env[REPLICA_WAIT.timeoutVariable] = String(input.replicaWait.timeoutMs);
  }
  return env;
}
