import fc from "fast-check";
import { assert, describe, expect, it } from "vitest";
import { ACL_RULES, consumerAclRules } from "../../functions/domain/acl.js";
import {
  ConfigError,
  DEFAULT_RETENTION,
  type Env,
  loadConsumerRuntimeConfig,
  loadRuntimeConfig,
  REPLICA_WAIT,
  toEnv,
} from "../../functions/domain/runtime-env.js";

const RUNS = { numRuns: 200 };

const ENDPOINT = "clustercfg.sketch.abc123.memorydb.eu-west-1.amazonaws.com:6379";
const BASE: Env = { REDIS_ENDPOINT: ENDPOINT };
const IAM: Env = {
  ...BASE,
  REDIS_AUTH: "iam",
  REDIS_USER: "consumer",
  MEMORYDB_CLUSTER_NAME: "sketch",
  AWS_REGION: "eu-west-1",
};
const QUEUE = "https://sqs.eu-west-1.amazonaws.com/123456789012/sketch-quarantine";

/** The ConfigError thrown by `load`, failing the test when it does not throw one. */
function configError(load: () => unknown): ConfigError {
  try {
    load();
  } catch (err) {
    assert.instanceOf(err, ConfigError);
    return err;
  }
  throw new Error("expected a ConfigError, but the configuration loaded");
}

function problemsOf(env: Env): readonly string[] {
  return configError(() => loadRuntimeConfig(env)).problems;
}

describe("loadRuntimeConfig: defaults", () => {
  it("needs only REDIS_ENDPOINT and defaults the rest", () => {
    expect(loadRuntimeConfig(BASE)).toStrictEqual({
      redis: {
        host: "clustercfg.sketch.abc123.memorydb.eu-west-1.amazonaws.com",
        port: 6379,
        cluster: true,
        tls: true,
        auth: { mode: "none" },
      },
      retention: { days: 62, weeks: 104, months: 36 },
    });
  });

  it("does not need a quarantine sink", () => {
    expect(() => loadRuntimeConfig(BASE)).not.toThrow();
  });

  it("treats empty and blank values as unset and trims values", () => {
    const config = loadRuntimeConfig({
      REDIS_ENDPOINT: `  ${ENDPOINT}\n`,
      REDIS_CLUSTER: "",
      REDIS_TLS: "   ",
      REDIS_AUTH: "",
      RETENTION_DAYS: " 30 ",
    });
    expect(config.redis.port).toBe(6379);
    expect(config.redis.cluster).toBe(true);
    expect(config.redis.tls).toBe(true);
    expect(config.redis.auth).toEqual({ mode: "none" });
    expect(config.retention.days).toBe(30);
  });
});

describe("loadRuntimeConfig: REDIS_ENDPOINT", () => {
  it("is required", () => {
    for (const env of [{}, { REDIS_ENDPOINT: "" }, { REDIS_ENDPOINT: "  " }]) {
      const problems = problemsOf(env);
      expect(problems).toHaveLength(1);
      expect(problems[0]).toMatch(/^REDIS_ENDPOINT is not set: expected host:port/);
    }
  });

  it("accepts host names, IPv4 and bracketed IPv6", () => {
    expect(loadRuntimeConfig({ REDIS_ENDPOINT: "127.0.0.1:7000" }).redis).toMatchObject({
      host: "127.0.0.1",
      port: 7000,
    });
    expect(loadRuntimeConfig({ REDIS_ENDPOINT: "[::1]:7001" }).redis).toMatchObject({
      host: "::1",
      port: 7001,
    });
    expect(loadRuntimeConfig({ REDIS_ENDPOINT: "localhost:1" }).redis.port).toBe(1);
    expect(loadRuntimeConfig({ REDIS_ENDPOINT: "localhost:65535" }).redis.port).toBe(65535);
  });

  it.each([
    "localhost",
    "localhost:",
    ":6379",
    "localhost:0",
    "localhost:65536",
    "localhost:99999",
    "localhost:port",
    "redis://localhost:6379",
    "local host:6379",
    "::1:6379",
    "localhost:6379/0",
  ])("rejects %j naming REDIS_ENDPOINT and the expected form", (endpoint) => {
    const problems = problemsOf({ REDIS_ENDPOINT: endpoint });
    expect(problems).toEqual([
      `REDIS_ENDPOINT="${endpoint}" is invalid: expected host:port with a port from 1 to 65535`,
    ]);
  });

  it("accepts every port from 1 to 65535 and no other", () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 99_999 }), (port) => {
        const env = { REDIS_ENDPOINT: `redis.local:${port}` };
        if (port >= 1 && port <= 65535) {
          expect(loadRuntimeConfig(env).redis).toMatchObject({ host: "redis.local", port });
        } else {
          expect(problemsOf(env)[0]).toMatch(/^REDIS_ENDPOINT=/);
        }
      }),
      RUNS,
    );
  });
});

describe("loadRuntimeConfig: booleans", () => {
  it.each(["REDIS_CLUSTER", "REDIS_TLS"] as const)("%s takes true or false", (name) => {
    const key = name === "REDIS_CLUSTER" ? "cluster" : "tls";
    expect(loadRuntimeConfig({ ...BASE, [name]: "false" }).redis[key]).toBe(false);
    expect(loadRuntimeConfig({ ...BASE, [name]: "true" }).redis[key]).toBe(true);
    for (const bad of ["yes", "TRUE", "False", "1", "0", "on"]) {
      expect(problemsOf({ ...BASE, [name]: bad })).toEqual([
        `${name}="${bad}" is invalid: expected true or false`,
      ]);
    }
  });

  it("passes REDIS_TLS_CA_FILE through when set", () => {
    expect(loadRuntimeConfig({ ...BASE, REDIS_TLS_CA_FILE: "/tmp/ca.pem" }).redis.tlsCaFile).toBe(
      "/tmp/ca.pem",
    );
    expect(loadRuntimeConfig(BASE).redis).not.toHaveProperty("tlsCaFile");
  });
});

describe("loadRuntimeConfig: retention", () => {
  const limits = [
    ["RETENTION_DAYS", "days", 3660],
    ["RETENTION_WEEKS", "weeks", 520],
    ["RETENTION_MONTHS", "months", 120],
  ] as const;

  it.each(limits)("%s accepts 1 and its maximum", (name, key, max) => {
    expect(loadRuntimeConfig({ ...BASE, [name]: "1" }).retention[key]).toBe(1);
    expect(loadRuntimeConfig({ ...BASE, [name]: String(max) }).retention[key]).toBe(max);
  });

  it.each(limits)("%s rejects bad values naming the variable and the range", (name, unit, max) => {
    for (const bad of ["0", String(max + 1), "-1", "1.5", "abc", "62d", "1e2", "0x10"]) {
      expect(problemsOf({ ...BASE, [name]: bad })).toEqual([
        `${name}="${bad}" is invalid: expected a whole number of ${unit} from 1 to ${max}`,
      ]);
    }
  });

  it("accepts exactly the integers in range, for each setting", () => {
    fc.assert(
      fc.property(
        fc.constantFrom(...limits),
        fc.integer({ min: -10, max: 4000 }),
        ([name, key, max], n) => {
          const env = { ...BASE, [name]: String(n) };
          if (n >= 1 && n <= max) {
            const { retention } = loadRuntimeConfig(env);
            expect(retention[key]).toBe(n);
            const defaults = { days: 62, weeks: 104, months: 36 };
            expect(retention).toEqual({ ...defaults, [key]: n });
          } else {
            const problems = problemsOf(env);
            expect(problems).toHaveLength(1);
            expect(problems[0]).toContain(`${name}="${n}"`);
          }
        },
      ),
      RUNS,
    );
  });
});

describe("loadRuntimeConfig: REDIS_AUTH", () => {
  it("rejects an unknown mode naming REDIS_AUTH and the choices", () => {
    expect(problemsOf({ ...BASE, REDIS_AUTH: "token" })).toEqual([
      'REDIS_AUTH="token" is invalid: expected none, password or iam',
    ]);
    expect(problemsOf({ ...BASE, REDIS_AUTH: "IAM" })[0]).toContain("REDIS_AUTH");
  });

  it("password mode with a local password", () => {
    expect(
      loadRuntimeConfig({
        ...BASE,
        REDIS_AUTH: "password",
        REDIS_USER: "app",
        REDIS_PASSWORD: "s3cret",
      }).redis.auth,
    ).toStrictEqual({ mode: "password", user: "app", password: { value: "s3cret" } });
  });

  it("password mode with a Secrets Manager ARN", () => {
    const arn = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:redis-AbCdEf";
    expect(
      loadRuntimeConfig({
        ...BASE,
        REDIS_AUTH: "password",
        REDIS_USER: "app",
        REDIS_PASSWORD_SECRET_ARN: arn,
      }).redis.auth,
    ).toStrictEqual({ mode: "password", user: "app", password: { secretArn: arn } });
  });

  it("password mode names REDIS_USER and the password variables when missing", () => {
    const problems = problemsOf({ ...BASE, REDIS_AUTH: "password" });
    expect(problems).toHaveLength(2);
    expect(problems[0]).toMatch(/^REDIS_USER is not set/);
    expect(problems[1]).toContain("REDIS_PASSWORD");
    expect(problems[1]).toContain("REDIS_PASSWORD_SECRET_ARN");
  });

  it("iam mode reads user, cluster name and region", () => {
    expect(loadRuntimeConfig(IAM).redis).toStrictEqual({
      host: "clustercfg.sketch.abc123.memorydb.eu-west-1.amazonaws.com",
      port: 6379,
      cluster: true,
      tls: true,
      auth: { mode: "iam", user: "consumer", clusterName: "sketch", region: "eu-west-1" },
    });
  });

  it.each([
    "REDIS_USER",
    "MEMORYDB_CLUSTER_NAME",
    "AWS_REGION",
  ])("iam mode names %s when it is missing", (name) => {
    const problems = problemsOf({ ...IAM, [name]: undefined });
    expect(problems).toHaveLength(1);
    expect(problems[0]).toMatch(new RegExp(`^${name} is not set: expected .*REDIS_AUTH=iam`));
  });

  it("iam mode names all three when all are missing", () => {
    const problems = problemsOf({ ...BASE, REDIS_AUTH: "iam" });
    expect(problems.map((p) => p.split(" ")[0])).toEqual([
      "REDIS_USER",
      "MEMORYDB_CLUSTER_NAME",
      "AWS_REGION",
    ]);
  });

  it("iam mode requires TLS", () => {
    const problems = problemsOf({ ...IAM, REDIS_TLS: "false" });
    expect(problems).toHaveLength(1);
    expect(problems[0]).toContain("REDIS_TLS=true");
    expect(problems[0]).toContain("REDIS_AUTH=iam");
  });

  it("none mode ignores the credential variables", () => {
    expect(
      loadRuntimeConfig({ ...BASE, REDIS_AUTH: "none", REDIS_USER: "x", REDIS_PASSWORD: "y" }).redis
        .auth,
    ).toStrictEqual({ mode: "none" });
  });
});

describe("ConfigError", () => {
  it("collects every problem into one error that names each variable", () => {
    const err = configError(() =>
      loadRuntimeConfig({
        REDIS_CLUSTER: "maybe",
        REDIS_AUTH: "iam",
        REDIS_TLS: "false",
        RETENTION_DAYS: "0",
        RETENTION_WEEKS: "x",
        RETENTION_MONTHS: "121",
      }),
    );
    expect(err).toBeInstanceOf(Error);
    expect(err.name).toBe("ConfigError");
    for (const name of [
      "REDIS_ENDPOINT",
      "REDIS_CLUSTER",
      "REDIS_USER",
      "MEMORYDB_CLUSTER_NAME",
      "AWS_REGION",
      "REDIS_TLS",
      "RETENTION_DAYS",
      "RETENTION_WEEKS",
      "RETENTION_MONTHS",
    ]) {
      expect(err.message).toContain(name);
      expect(err.problems.some((p) => p.includes(name))).toBe(true);
    }
    expect(err.problems).toHaveLength(9);
    expect(err.message).toBe(`invalid configuration:\n  - ${err.problems.join("\n  - ")}`);
  });
});

describe("loadConsumerRuntimeConfig: quarantine", () => {
  it("uses QUARANTINE_FILE locally", () => {
    const config = loadConsumerRuntimeConfig({ ...BASE, QUARANTINE_FILE: "/tmp/q.jsonl" });
    expect(config.quarantine).toStrictEqual({ file: "/tmp/q.jsonl" });
    expect(config.redis).toStrictEqual(loadRuntimeConfig(BASE).redis);
    expect(config.retention).toStrictEqual({ days: 62, weeks: 104, months: 36 });
  });

  it("uses QUARANTINE_QUEUE_URL in AWS", () => {
    expect(
      loadConsumerRuntimeConfig({ ...IAM, QUARANTINE_QUEUE_URL: QUEUE }).quarantine,
    ).toStrictEqual({
      queueUrl: QUEUE,
    });
  });

  it("refuses both sinks at once, naming both", () => {
    const err = configError(() =>
      loadConsumerRuntimeConfig({
        ...BASE,
        QUARANTINE_QUEUE_URL: QUEUE,
        QUARANTINE_FILE: "/tmp/q.jsonl",
      }),
    );
    expect(err.problems).toHaveLength(1);
    expect(err.problems[0]).toContain("QUARANTINE_QUEUE_URL");
    expect(err.problems[0]).toContain("QUARANTINE_FILE");
  });

  it("refuses no sink, naming both", () => {
    for (const env of [BASE, { ...BASE, QUARANTINE_QUEUE_URL: " ", QUARANTINE_FILE: "" }]) {
      const err = configError(() => loadConsumerRuntimeConfig(env));
      expect(err.problems).toHaveLength(1);
      expect(err.problems[0]).toContain("QUARANTINE_QUEUE_URL");
      expect(err.problems[0]).toContain("QUARANTINE_FILE");
    }
  });

  it.each([
    "sqs-queue",
    "ftp://example.com/q",
    "https://",
    "https://sqs example",
  ])("rejects queue URL %j naming QUARANTINE_QUEUE_URL", (url) => {
    const err = configError(() =>
      loadConsumerRuntimeConfig({ ...BASE, QUARANTINE_QUEUE_URL: url }),
    );
    expect(err.problems).toEqual([
      `QUARANTINE_QUEUE_URL="${url}" is invalid: expected an SQS queue URL`,
    ]);
  });

  it("reports Redis, retention and quarantine problems together", () => {
    const err = configError(() => loadConsumerRuntimeConfig({ RETENTION_WEEKS: "0" }));
    expect(err.problems).toHaveLength(3);
    expect(err.problems[0]).toMatch(/^REDIS_ENDPOINT/);
    expect(err.problems[1]).toMatch(/^RETENTION_WEEKS/);
    expect(err.problems[2]).toContain("QUARANTINE_FILE");
  });

  it("accepts a sink exactly when one of the two is set", () => {
    fc.assert(
      fc.property(fc.boolean(), fc.boolean(), (withQueue, withFile) => {
        const env = {
          ...BASE,
          ...(withQueue ? { QUARANTINE_QUEUE_URL: QUEUE } : {}),
          ...(withFile ? { QUARANTINE_FILE: "/tmp/q.jsonl" } : {}),
        };
        if (withQueue !== withFile) {
          expect(loadConsumerRuntimeConfig(env).quarantine).toStrictEqual(
            withQueue ? { queueUrl: QUEUE } : { file: "/tmp/q.jsonl" },
          );
        } else {
          expect(() => loadConsumerRuntimeConfig(env)).toThrow(ConfigError);
        }
      }),
      { numRuns: 20 },
    );
  });
});

describe("loadConsumerRuntimeConfig: waiting for replicas", () => {
  const CONSUMER: Env = { ...BASE, QUARANTINE_FILE: "/tmp/q.jsonl" };

  it("is off by default, and 0 turns it off", () => {
    expect(loadConsumerRuntimeConfig(CONSUMER).replicaWait).toBeUndefined();
    expect(
      loadConsumerRuntimeConfig({ ...CONSUMER, REDIS_WAIT_REPLICAS: "0" }).replicaWait,
    ).toBeUndefined();
  });

  it("1 waits for one replica, for REDIS_WAIT_TIMEOUT_MS or 1000 ms", () => {
    expect(
      loadConsumerRuntimeConfig({ ...CONSUMER, REDIS_WAIT_REPLICAS: "1" }).replicaWait,
    ).toStrictEqual({ replicas: 1, timeoutMs: 1000 });
    expect(
      loadConsumerRuntimeConfig({
        ...CONSUMER,
        REDIS_WAIT_REPLICAS: " 1 ",
        REDIS_WAIT_TIMEOUT_MS: "250",
      }).replicaWait,
    ).toStrictEqual({ replicas: 1, timeoutMs: 250 });
  });

  it.each([
    "2",
    "-1",
    "yes",
    "true",
    "1.0",
  ])("rejects REDIS_WAIT_REPLICAS=%j, saying what it takes", (value) => {
    const err = configError(() =>
      loadConsumerRuntimeConfig({
        ...CONSUMER,
        REDIS_WAIT_REPLICAS: value,
        REDIS_WAIT_TIMEOUT_MS: "100",
      }),
    );
    // One problem: the timeout is not also reported as having no effect.
    expect(err.problems).toEqual([
      `REDIS_WAIT_REPLICAS="${value}" is invalid: expected 0 (acknowledge batches without waiting; the default) or 1 (wait until one replica of each primary written to has the batch's writes)`,
    ]);
  });

  it("accepts exactly the whole milliseconds from 1 to 60000 as the timeout", () => {
    fc.assert(
      fc.property(
        fc.oneof(
          fc.integer({ min: -10, max: 70_000 }).map(String),
          fc.constantFrom("0", "60001", "1e3", "100ms", "1.5", "0x10"),
        ),
        (text) => {
          const env = { ...CONSUMER, REDIS_WAIT_REPLICAS: "1", REDIS_WAIT_TIMEOUT_MS: text };
          const ms = Number(text);
          if (/^\d+$/.test(text) && ms >= 1 && ms <= 60_000) {
            expect(loadConsumerRuntimeConfig(env).replicaWait).toStrictEqual({
              replicas: 1,
              timeoutMs: ms,
            });
          } else {
            expect(configError(() => loadConsumerRuntimeConfig(env)).problems).toEqual([
              `REDIS_WAIT_TIMEOUT_MS="${text}" is invalid: expected a whole number of milliseconds from 1 to 60000`,
            ]);
          }
        },
      ),
      RUNS,
    );
  });

  it("refuses a timeout while the wait is off: it would do nothing", () => {
    for (const env of [
      { ...CONSUMER, REDIS_WAIT_TIMEOUT_MS: "500" },
      { ...CONSUMER, REDIS_WAIT_REPLICAS: "0", REDIS_WAIT_TIMEOUT_MS: "500" },
    ]) {
      expect(configError(() => loadConsumerRuntimeConfig(env)).problems).toEqual([
        "REDIS_WAIT_TIMEOUT_MS=500 has no effect while REDIS_WAIT_REPLICAS is 0 (the default): set REDIS_WAIT_REPLICAS=1 to wait for a replica, or remove REDIS_WAIT_TIMEOUT_MS",
      ]);
    }
  });

  it("is the consumer's alone: the other functions ignore both variables", () => {
    expect(
      loadRuntimeConfig({ ...BASE, REDIS_WAIT_REPLICAS: "7", REDIS_WAIT_TIMEOUT_MS: "x" }),
    ).toStrictEqual(loadRuntimeConfig(BASE));
  });

  it("round-trips through toEnv, which writes nothing when the wait is off", () => {
    const input = {
      endpoint: ENDPOINT,
      cluster: true,
      tls: true,
      auth: { mode: "none" } as const,
      retention: DEFAULT_RETENTION,
      quarantine: { file: "/tmp/q.jsonl" },
    };
    const off = toEnv(input);
    expect(Object.keys(off)).not.toContain(REPLICA_WAIT.replicasVariable);
    expect(Object.keys(off)).not.toContain(REPLICA_WAIT.timeoutVariable);
    expect(loadConsumerRuntimeConfig(off).replicaWait).toBeUndefined();
    const on = toEnv({ ...input, replicaWait: { replicas: 1, timeoutMs: 300 } });
    expect(on).toMatchObject({ REDIS_WAIT_REPLICAS: "1", REDIS_WAIT_TIMEOUT_MS: "300" });
    expect(loadConsumerRuntimeConfig(on).replicaWait).toStrictEqual({
      replicas: 1,
      timeoutMs: 300,
    });
  });

  it("adds +wait to the consumer's ACL rules only when it waits", () => {
    expect(consumerAclRules({ waitForReplicas: false })).toBe(ACL_RULES.consumer);
    expect(ACL_RULES.consumer).not.toMatch(/\+wait\b/);
    expect(consumerAclRules({ waitForReplicas: true })).toBe(`${ACL_RULES.consumer} +wait`);
  });
});
