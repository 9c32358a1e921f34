import { describe, expect, it } from "vitest";
import {
  availabilityZones,
  type ConfigOverrides,
  ENVIRONMENT_NAMES,
  ENVIRONMENTS,
  LOG_RETENTION_DAYS,
  loadConfig,
  parameterGroupFamily,
  StackConfigError,
  type StateMachineLogLevel,
  validateConfig,
} from "../../stacks/config.js";
import { subnetCidrs } from "../../stacks/network.js";

function problemsOf(fn: () => unknown): string[] {
  try {
    fn();
  } catch (e) {
    if (e instanceof StackConfigError) return [...e.problems];
    throw e;
  }
  return [];
}

describe("stack config", () => {
  it.each(ENVIRONMENT_NAMES)("%s is valid as shipped", (name) => {
    expect(validateConfig(ENVIRONMENTS[name])).toEqual([]);
    expect(loadConfig(name).namePrefix).toBe(`sketchstream-${name}`);
  });

  it("dev is cheap, prod is durable", () => {
    const dev = loadConfig("dev");
    const prod = loadConfig("prod");
    expect(dev.memorydb).toMatchObject({
      replicasPerShard: 0,
      preventDestroy: false,
      finalSnapshot: false,
    });
    expect(prod.memorydb).toMatchObject({
      replicasPerShard: 1,
      preventDestroy: true,
      finalSnapshot: true,
    });
    expect(availabilityZones(prod)).toEqual(["eu-west-1a", "eu-west-1b", "eu-west-1c"]);
    expect(availabilityZones(dev)).toEqual(["eu-west-1a", "eu-west-1b"]);
    expect(prod.stream.retentionHours).toBeGreaterThan(dev.stream.retentionHours);
  });

  it("overrides merge one level deep and are validated", () => {
    const c = loadConfig("dev", { memorydb: { shards: 3 }, tags: { Team: "data" } });
    expect(c.memorydb.shards).toBe(3);
    expect(c.memorydb.nodeType).toBe("db.t4g.small");
    expect(c.tags).toEqual({ Team: "data" });
  });

  it("an unknown environment names the allowed ones", () => {
    expect(() => loadConfig("staging")).toThrow(
      'environment "staging" is unknown; allowed: dev, prod',
    );
  });

  it("the error names the environment, the file, the field and the allowed values", () => {
    // A value outside the engine type on purpose: the cast is what lets the test pass it.
    expect(() => loadConfig("dev", { memorydb: { engine: "redis6" as "redis" } })).toThrow(
      /invalid stack configuration for "dev" \(stacks\/config\.ts\):\n {2}- memorydb\.engine: "redis6" is not allowed; allowed: valkey, redis/,
    );
  });

  it("reports every problem at once", () => {
    const problems = problemsOf(() =>
      loadConfig("dev", {
        region: "cn-north-1",
        network: { azCount: 4, vpcCidr: "10.0.0.1/16" },
        logRetentionDays: 10,
        consumer: { maximumRetryAttempts: -1 },
      }),
    );
    expect(problems).toEqual([
      'region: "cn-north-1" is not allowed; allowed: a commercial AWS region such as eu-west-1 or us-east-1 (the stack assumes the aws partition)',
      'network.vpcCidr: "10.0.0.1/16" is not allowed; allowed: an IPv4 network CIDR from /16 to /24, e.g. 10.40.0.0/16',
      "network.azCount: 4 is not allowed; allowed: a whole number from 1 to 3",
      "consumer.maximumRetryAttempts: -1 is not allowed; allowed: a whole number from 0 to 10000",
      `logRetentionDays: 10 is not allowed; allowed: ${LOG_RETENTION_DAYS.join(", ")}`,
    ]);
  });

  it.each<[ConfigOverrides, RegExp]>([
    [
      { memorydb: { engine: "redis", engineVersion: "6.2" } },
      /memorydb\.engineVersion: "6\.2" is not allowed; allowed: redis 7\.0 or later/,
    ],
    [
      { memorydb: { engineVersion: "7.1" } },
      /memorydb\.engineVersion: "7\.1" is not allowed; allowed: valkey 7\.2 or later/,
    ],
    [{ memorydb: { nodeType: "cache.t4g.small" } }, /memorydb\.nodeType: "cache\.t4g\.small"/],
    [
      { memorydb: { snapshotWindow: "05:30-06:30" } },
      /memorydb\.snapshotWindow: "05:30-06:30" is not allowed; allowed: a window that does not overlap memorydb\.maintenanceWindow/,
    ],
    [{ memorydb: { snapshotWindow: "03:00-03:30" } }, /at least 60 minutes/],
    [
      { stream: { mode: "PROVISIONED" } },
      /stream\.shardCount: undefined is not allowed; allowed: a whole number from 1 to 500/,
    ],
    [
      { stream: { shardCount: 2 } },
      /stream\.shardCount: 2 is not allowed; allowed: unset when stream\.mode is ON_DEMAND/,
    ],
    [
      { consumer: { maximumRecordAgeSeconds: 86400 } },
      /consumer\.maximumRecordAgeSeconds: 86400 is not allowed; allowed: less than stream\.retentionHours x 3600 \(86400\)/,
    ],
    [{ consumer: { batchSize: 20000 } }, /consumer\.batchSize: 20000/],
    [
      { consumer: { reservedConcurrency: 1, provisionedConcurrency: 2 } },
      /at most consumer\.reservedConcurrency \(1\)/,
    ],
    [
      { rollup: { scheduleExpression: "every hour" } },
      /rollup\.scheduleExpression: "every hour" is not allowed; allowed: rate\(N minutes\|hours\|days\)/,
    ],
    [
      // Outside the log level type on purpose: the cast is what lets the test pass it.
      { rollup: { logLevel: "DEBUG" as StateMachineLogLevel } },
      /rollup\.logLevel: "DEBUG" is not allowed; allowed: ALL, ERROR, FATAL, OFF/,
    ],
    [
      { access: { instanceType: "t3.micro" } },
      /access\.architecture: "arm64" is not allowed; allowed: x86_64 for instance type t3\.micro/,
    ],
    [{ alarms: { email: "not-an-email" } }, /alarms\.email: "not-an-email"/],
    [{ namePrefix: "Sketch_Stream" }, /namePrefix: "Sketch_Stream" is not allowed/],
    [
      { network: { availabilityZones: ["us-east-1a", "us-east-1b"] } },
      /network\.availabilityZones: .* is not allowed; allowed: network\.azCount \(2\) distinct AZ names of eu-west-1 \(e\.g\. eu-west-1a\) or AZ IDs/,
    ],
    [
      { api: { redisDeadlineMs: 6000 } },
      /api\.redisDeadlineMs: 6000 is not allowed; allowed: at most half of api\.timeoutSeconds x 1000 \(5000\), so a request that gives up on Redis answers 503 before Lambda stops it/,
    ],
    [
      { api: { timeoutSeconds: 1 } },
      /api\.timeoutSeconds: 1 is not allowed; allowed: a whole number from 3 to 900/,
    ],
    [
      { retention: { days: 0 } },
      /retention\.days: 0 is not allowed; allowed: a whole number from 1 to 3660/,
    ],
  ])("refuses %j", (overrides, message) => {
    expect(() => loadConfig("dev", overrides)).toThrow(message);
  });

  it("requires explicit zones outside eu-west-1, as names or AZ IDs", () => {
    expect(problemsOf(() => loadConfig("dev", { region: "us-east-1" }))).toEqual([
      "network.availabilityZones: undefined is not allowed; allowed: 2 AZ names or IDs, required outside eu-west-1: which zone a letter such as us-east-1a means differs per account, and some zones cannot host these subnets. List yours with `aws ec2 describe-availability-zones --region us-east-1`",
    ]);
    const byName = loadConfig("dev", {
      region: "us-east-1",
      network: { availabilityZones: ["us-east-1b", "us-east-1d"] },
    });
    expect(availabilityZones(byName)).toEqual(["us-east-1b", "us-east-1d"]);
    const byId = loadConfig("prod", {
      region: "us-east-1",
      network: { availabilityZones: ["use1-az1", "use1-az2", "use1-az4"] },
    });
    expect(availabilityZones(byId)).toEqual(["use1-az1", "use1-az2", "use1-az4"]);
    expect(
      problemsOf(() =>
        loadConfig("dev", { network: { availabilityZones: ["eu-west-1a", "eu-west-1a"] } }),
      ),
    ).toHaveLength(1);
  });

  it("prod always keeps a final snapshot; prevent_destroy may be lifted for a teardown", () => {
    const problems = problemsOf(() =>
      loadConfig("prod", {
        memorydb: { preventDestroy: false, finalSnapshot: false, snapshotRetentionDays: 0 },
      }),
    );
    expect(problems).toEqual([
      "memorydb.finalSnapshot: false is not allowed; allowed: true in prod",
      "memorydb.snapshotRetentionDays: 0 is not allowed; allowed: 1 to 35 in prod",
    ]);
    const lifted = loadConfig("prod", { memorydb: { preventDestroy: false } });
    expect(lifted.memorydb.preventDestroy).toBe(false);
  });

  it("derives the parameter group family and the subnets", () => {
    expect(parameterGroupFamily("valkey", "7.2")).toBe("memorydb_valkey7");
    expect(parameterGroupFamily("redis", "7.1")).toBe("memorydb_redis7");
    expect(subnetCidrs("10.40.0.0/16", 3)).toEqual([
      "10.40.0.0/18",
      "10.40.64.0/18",
      "10.40.128.0/18",
    ]);
    expect(subnetCidrs("192.168.5.0/24", 2)).toEqual(["192.168.5.0/26", "192.168.5.64/26"]);
  });
});
