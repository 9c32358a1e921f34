/**
 * Synth tests: every resource of the stack exists with the settings the design asks for, for
 * the dev and prod configs (and a few overrides), read from the synthesized Terraform JSON.
 */

import { createHash } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { CloudwatchLogGroup } from "@cdktf/provider-aws/lib/cloudwatch-log-group/index.js";
import { KinesisStream } from "@cdktf/provider-aws/lib/kinesis-stream/index.js";
import { LambdaEventSourceMapping } from "@cdktf/provider-aws/lib/lambda-event-source-mapping/index.js";
import { MemorydbCluster } from "@cdktf/provider-aws/lib/memorydb-cluster/index.js";
import { SchedulerSchedule } from "@cdktf/provider-aws/lib/scheduler-schedule/index.js";
import { SfnStateMachine } from "@cdktf/provider-aws/lib/sfn-state-machine/index.js";
import { SnsTopic } from "@cdktf/provider-aws/lib/sns-topic/index.js";
import { Testing } from "cdktf";
import { unzipSync } from "fflate";
import { afterAll, describe, expect, it } from "vitest";
import { ACL_RULES, consumerAclRules } from "../../functions/domain/acl.js";
import { first } from "../../functions/domain/arrays.js";
import {
  loadConsumerRuntimeConfig,
  loadRuntimeConfig,
} from "../../functions/domain/runtime-env.js";
import { bundleEntry } from "../../stacks/bundle.js";
import { availabilityZones } from "../../stacks/config.js";
import { subnetCidrs } from "../../stacks/network.js";
import { DEFAULT_SOURCES, PROJECT_ROOT } from "../../stacks/sketchstream-stack.js";
import { policyDocuments } from "./rules.js";
import {
  ACCOUNT_REF,
  address,
  defined,
  dig,
  ENVIRONMENTS,
  objs,
  one,
  parseJson,
  peek,
  policyStatements,
  record,
  ref,
  removeSynthOutputs,
  resourcesOfType,
  str,
  strs,
  synth,
  type TfJson,
  type TfResource,
} from "./synth.js";

afterAll(removeSynthOutputs);

/** Replaces every Terraform reference by a plausible value, as after apply. */
function resolved(vars: Record<string, string>, prefix: string): Record<string, string> {
  return Object.fromEntries(
    Object.entries(vars).map(([k, v]) => [
      k,
      v
        .replace(
          /\$\{aws_memorydb_cluster\.[^}]+\.address\}/g,
          "clustercfg.x.memorydb.eu-west-1.amazonaws.com",
        )
        .replace(/\$\{aws_memorydb_user\.[^}]+user-([a-z-]+)_[^}]*\}/g, `${prefix}-$1`)
        .replace(
          /\$\{aws_sqs_queue\.[^}]+\.url\}/g,
          "https://sqs.eu-west-1.amazonaws.com/123456789012/q",
        ),
    ]),
  );
}

/** A function's environment variables, each a string. */
function variables(fn: TfResource, what: string): Record<string, string> {
  return record(dig(fn, "environment.variables", what), `${what} variables`, str);
}

/** Policy statements by Sid, as Object.fromEntries keys them ("undefined" for none). */
function bySid(statements: readonly TfResource[]): Record<string, TfResource> {
  return Object.fromEntries(statements.map((st) => [String(st.Sid), st]));
}

/** A literal string as a regular expression (for IAM wildcard patterns). */
function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

/** The ACL rules of functions/domain/acl.ts by the role's part of a MemoryDB user name. */
const ACL_BY_USER_ROLE: Readonly<Record<string, string>> = {
  consumer: ACL_RULES.consumer,
  rollup: ACL_RULES.rollup,
  reader: ACL_RULES.reader,
  "registry-writer": ACL_RULES.registryWriter,
};

/**
 * Every Allow, in every policy of the stack, that could invoke the function named `name`:
 * actions that match lambda:InvokeFunction or lambda:InvokeFunctionUrl (wildcards included) on
 * a resource that could be it (its ARN reference, a qualified ARN, the ARN built from its name,
 * wildcards). Each as "<resource type> <policy name> <Sid>", sorted.
 */
function invokeGrants(tf: TfJson, region: string, name: string, fnArn: string): string[] {
  const builtArn = `arn:aws:lambda:${region}:${ACCOUNT_REF}:function:${name}`;
  const matches = wildcardMatches;
  return policyDocuments(tf)
    .docs.flatMap((doc) =>
      doc.statements
        .filter((st) => st.Effect === "Allow")
        .filter((st) =>
          strs([st.Action].flat(), `${doc.address} Action`).some((a) =>
            ["lambda:InvokeFunction", "lambda:InvokeFunctionUrl"].some((x) => matches(a, x)),
          ),
        )
        .filter((st) =>
          [st.Resource ?? []].flat().some((r) => {
            const pattern = str(r, `${doc.address} Resource`);
            return [fnArn, `${fnArn}:live`, builtArn].some((x) => matches(pattern, x));
          }),
        )
        .map((st) => `${policyOwner(tf, doc.address)} ${String(st.Sid)}`),
    )
    .sort();
}

/** Whether an IAM pattern (with `*` wildcards) matches a value. */
function wildcardMatches(pattern: string, value: string): boolean {
  return new RegExp(`^${pattern.split("*").map(escapeRegExp).join(".*")}$`).test(value);
}

/** A policy's resource type and name attribute, e.g. "aws_iam_policy sketchstream-dev-admin". */
function policyOwner(tf: TfJson, docAddress: string): string {
  const [type = "", ...rest] = docAddress.split(".");
  return `${type} ${String(tf.resource[type]?.[rest.join(".")]?.name)}`;
}

function zipEntries(zip: Buffer): Map<string, Buffer> {
  return new Map(Object.entries(unzipSync(zip)).map(([name, data]) => [name, Buffer.from(data)]));
}

describe.each(ENVIRONMENTS)("stack %s", (env) => {
  const s = synth(env);
  const { tf, config } = s;
  const prefix = config.namePrefix;

  it("uses only the hashicorp/aws provider, pinned to the mirrored 5.100.0", () => {
    expect(Object.keys(tf.provider)).toEqual(["aws"]);
    expect(tf.terraform.required_providers).toEqual({ aws: { source: "aws", version: "5.100.0" } });
    const provider = first(tf.provider.aws ?? [], "aws provider");
    expect(provider.region).toBe(config.region);
    expect(provider.default_tags).toEqual([
      {
        tags: {
          Project: "sketchstream",
          Stack: prefix,
          ManagedBy: "cdktf",
          Environment: env,
        },
      },
    ]);
    // The only data source, and it is skipped when config.accountId is set (see below).
    expect(Object.keys(tf.data ?? {})).toEqual(["aws_caller_identity"]);
  });

  describe("network", () => {
    it("has one private subnet per configured AZ, carved from the VPC CIDR", () => {
      expect(one(tf, "aws_vpc").cidr_block).toBe(config.network.vpcCidr);
      expect(one(tf, "aws_vpc").enable_dns_hostnames).toBe(true);
      const subnets = resourcesOfType(tf, "aws_subnet").map(([, b]) => b);
      const azs = availabilityZones(config);
      expect(subnets.map((b) => b.availability_zone)).toEqual(azs);
      expect(subnets.map((b) => b.cidr_block)).toEqual(
        subnetCidrs(config.network.vpcCidr, azs.length),
      );
      expect(subnets.every((b) => b.map_public_ip_on_launch === false)).toBe(true);
      expect(resourcesOfType(tf, "aws_route_table_association")).toHaveLength(azs.length);
    });

    it("has no NAT gateway, internet gateway, public IP or route to the internet", () => {
      for (const type of ["aws_nat_gateway", "aws_internet_gateway", "aws_eip", "aws_route"]) {
        expect(resourcesOfType(tf, type), type).toEqual([]);
      }
      expect(one(tf, "aws_route_table").route).toBeUndefined();
      expect(one(tf, "aws_instance").associate_public_ip_address).toBe(false);
    });

    it("has endpoints only for what is called from inside: SQS (consumer) and S3 (dnf)", () => {
      const endpoints = resourcesOfType(tf, "aws_vpc_endpoint").map(([, b]) => b);
      expect(endpoints.map((e) => [e.service_name, e.vpc_endpoint_type]).sort()).toEqual([
        [`com.amazonaws.${config.region}.s3`, "Gateway"],
        [`com.amazonaws.${config.region}.sqs`, "Interface"],
      ]);
      const sqs = one(tf, "aws_vpc_endpoint", "sqs");
      expect(sqs.private_dns_enabled).toBe(true);
      expect(sqs.subnet_ids).toHaveLength(config.network.azCount);
      const s3 = policyStatements(one(tf, "aws_vpc_endpoint", "s3").policy, "s3 endpoint policy");
      expect(s3).toEqual([
        expect.objectContaining({
          Action: "s3:GetObject",
          Resource: `arn:aws:s3:::al2023-repos-${config.region}-de612dc2/*`,
        }),
      ]);
    });

    it("lets only the functions and the operator instance reach Redis, on its port", () => {
      const memorydbSg = ref(tf, "aws_security_group", "network_memorydb", "id");
      const ingress = resourcesOfType(tf, "aws_vpc_security_group_ingress_rule")
        .map(([, b]) => b)
        .filter((b) => b.security_group_id === memorydbSg);
      expect(ingress.map((b) => b.referenced_security_group_id).sort()).toEqual(
        [
          ref(tf, "aws_security_group", "network_functions", "id"),
          ref(tf, "aws_security_group", "access_instance-sg", "id"),
        ].sort(),
      );
      for (const rule of ingress) {
        expect([rule.from_port, rule.to_port, rule.ip_protocol]).toEqual([6379, 6379, "tcp"]);
      }
      // The default security group is emptied: no inline rules at all.
      const def = one(tf, "aws_default_security_group");
      expect(def.ingress).toBeUndefined();
      expect(def.egress).toBeUndefined();
    });
  });

  describe("MemoryDB", () => {
    const m = config.memorydb;
    it("cluster: TLS, KMS, engine, size, snapshots, maintenance window", () => {
      expect(
        Testing.toHaveResourceWithProperties(s.json, MemorydbCluster.tfResourceType, {
          name: prefix,
          tls_enabled: true,
          kms_key_arn: ref(tf, "aws_kms_key", "kms", "arn"),
          engine: m.engine,
          engine_version: m.engineVersion,
          node_type: m.nodeType,
          num_shards: m.shards,
          num_replicas_per_shard: m.replicasPerShard,
          snapshot_retention_limit: m.snapshotRetentionDays,
          snapshot_window: m.snapshotWindow,
          maintenance_window: m.maintenanceWindow,
          acl_name: ref(tf, "aws_memorydb_acl", "acl", "name"),
          subnet_group_name: ref(tf, "aws_memorydb_subnet_group", "subnets", "name"),
          parameter_group_name: ref(tf, "aws_memorydb_parameter_group", "params", "name"),
          security_group_ids: [ref(tf, "aws_security_group", "network_memorydb", "id")],
        }),
      ).toBe(true);
      expect(["valkey", "redis"]).toContain(m.engine);
    });

    it("prod keeps a final snapshot and refuses to be destroyed; dev does neither", () => {
      const cluster = one(tf, "aws_memorydb_cluster");
      if (env === "prod") {
        // Named at creation and kept: a second teardown leaves a second snapshot, no clash.
        expect(cluster.final_snapshot_name).toBe(
          `${prefix}-final-\${formatdate("YYYYMMDDhhmmss", timestamp())}`,
        );
        expect(cluster.lifecycle).toEqual({
          prevent_destroy: true,
          ignore_changes: ["final_snapshot_name"],
        });
        // Snapshots are encrypted with the stack's key: it is guarded the same way.
        expect(one(tf, "aws_kms_key").lifecycle).toEqual({ prevent_destroy: true });
      } else {
        expect(cluster.final_snapshot_name).toBeUndefined();
        expect(cluster.lifecycle).toEqual({ prevent_destroy: false });
      }
    });

    it("parameter group of the engine's family, with noeviction", () => {
      const params = one(tf, "aws_memorydb_parameter_group");
      expect(params.family).toBe("memorydb_valkey7");
      expect(params.parameter).toEqual([{ name: "maxmemory-policy", value: "noeviction" }]);
    });

    it("one IAM-authenticated user per role with the ACL rules of functions/domain/acl.ts", () => {
      const users = resourcesOfType(tf, "aws_memorydb_user").map(([, b]) => b);
      expect(users.map((u) => u.user_name).sort()).toEqual(
        ["consumer", "reader", "registry-writer", "rollup"].map((r) => `${prefix}-${r}`),
      );
      for (const u of users) {
        const role = str(u.user_name, "memorydb user_name").slice(prefix.length + 1);
        expect(u.authentication_mode).toEqual({ type: "iam" });
        expect(u.access_string).toBe(`on ${defined(ACL_BY_USER_ROLE[role], `ACL of ${role}`)}`);
      }
      // The registry writer's rules are exactly the ones the admin handler is tested under.
      expect(one(tf, "aws_memorydb_user", "user-registry-writer").access_string).toBe(
        `on ${ACL_RULES.registryWriter}`,
      );
      // The reader may only read: no write command in its access string.
      const reader = defined(
        users.find((u) => u.user_name === `${prefix}-reader`),
        `memorydb user ${prefix}-reader`,
      );
      expect(reader.access_string).not.toMatch(
        /\+(pfadd|pfmerge|set|del|sadd|hset|hdel|expireat|eval|@write|@all)\b/,
      );
      // Every user is in the cluster's ACL, or its token would be refused.
      expect(one(tf, "aws_memorydb_acl").user_names).toEqual(
        ["consumer", "rollup", "reader", "registry-writer"].map((r) =>
          ref(tf, "aws_memorydb_user", `user-${r}_`, "user_name"),
        ),
      );
    });

    it("memorydb:Connect: each principal as its one user; only the admin API as the registry writer", () => {
      const userOf = new Map(
        resourcesOfType(tf, "aws_memorydb_user").map(([a, b]) => [
          `\${${a}.arn}`,
          str(b.user_name, `${a} user_name`).slice(prefix.length + 1),
        ]),
      );
      const cluster = ref(tf, "aws_memorydb_cluster", "cluster", "arn");
      // Every Allow whose actions match memorydb:Connect (wildcards included), by policy: the
      // users it names (any other resource, e.g. a built or wildcard ARN, as it is written).
      const connects: Record<string, string[]> = {};
      for (const doc of policyDocuments(tf).docs) {
        for (const st of doc.statements.filter((x) => x.Effect === "Allow")) {
          const actions = strs([st.Action].flat(), `${doc.address} Action`);
          if (!actions.some((a) => wildcardMatches(a, "memorydb:Connect"))) continue;
          const owner = policyOwner(tf, doc.address);
          for (const r of strs([st.Resource ?? []].flat(), `${doc.address} Resource`)) {
            if (r !== cluster) connects[owner] = [...(connects[owner] ?? []), userOf.get(r) ?? r];
          }
        }
      }
      expect(connects).toEqual({
        [`aws_iam_role_policy ${prefix}-consumer`]: ["consumer"],
        [`aws_iam_role_policy ${prefix}-rollup`]: ["rollup"],
        [`aws_iam_role_policy ${prefix}-read-api`]: ["reader"],
        [`aws_iam_role_policy ${prefix}-admin-api`]: ["registry-writer"],
        [`aws_iam_policy ${prefix}-operator`]: ["reader"],
      });
    });
  });

  it("Kinesis: on-demand, KMS-encrypted, retention from config", () => {
    expect(
      Testing.toHaveResourceWithProperties(s.json, KinesisStream.tfResourceType, {
        name: `${prefix}-events`,
        stream_mode_details: { stream_mode: "ON_DEMAND" },
        encryption_type: "KMS",
        kms_key_id: ref(tf, "aws_kms_key", "kms", "arn"),
        retention_period: config.stream.retentionHours,
      }),
    ).toBe(true);
    expect(one(tf, "aws_kinesis_stream").shard_count).toBeUndefined();
  });

  describe("consumer", () => {
    const fn = one(tf, "aws_lambda_function", "consumer");
    it("Lambda: Node.js 22, bundled asset with its hash, in the VPC", () => {
      expect(fn.function_name).toBe(`${prefix}-consumer`);
      expect(fn.runtime).toBe("nodejs22.x");
      expect(fn.handler).toBe("index.handler");
      expect(fn.architectures).toEqual([config.consumer.architecture]);
      expect(fn.timeout).toBe(config.consumer.timeoutSeconds);
      expect(fn.vpc_config).toEqual({
        subnet_ids: resourcesOfType(tf, "aws_subnet").map(([a]) => `\${${a}.id}`),
        security_group_ids: [ref(tf, "aws_security_group", "network_functions", "id")],
      });
      const zip = readFileSync(join(s.stackDir, str(fn.filename, "consumer filename")));
      expect(fn.source_code_hash).toBe(createHash("sha256").update(zip).digest("base64"));
      const entries = zipEntries(zip);
      expect([...entries.keys()]).toEqual(["index.mjs", "index.mjs.map"]);
      expect(entries.get("index.mjs")?.toString("utf8")).toMatch(/createRequire/);
    });

    it("environment: the runtime contract, accepted by the functions' own config loader", () => {
      const vars = variables(fn, "consumer environment");
      expect(Object.keys(vars).sort()).toEqual(
        [
          "MEMORYDB_CLUSTER_NAME",
          "NODE_OPTIONS",
          "QUARANTINE_QUEUE_URL",
          "REDIS_AUTH",
          "REDIS_CLUSTER",
          "REDIS_ENDPOINT",
          "REDIS_TLS",
          "REDIS_USER",
          "RETENTION_DAYS",
          "RETENTION_MONTHS",
          "RETENTION_WEEKS",
        ].sort(),
      );
      expect(vars.REDIS_ENDPOINT).toBe(
        `\${${resourcesOfType(tf, "aws_memorydb_cluster")[0]?.[0]}.cluster_endpoint[0].address}:6379`,
      );
      expect(vars.REDIS_USER).toBe(ref(tf, "aws_memorydb_user", "user-consumer", "user_name"));
      expect(vars.QUARANTINE_QUEUE_URL).toBe(ref(tf, "aws_sqs_queue", "quarantine", "url"));
      const loaded = loadConsumerRuntimeConfig({
        ...resolved(vars, prefix),
        AWS_REGION: config.region,
      });
      expect(loaded.redis).toMatchObject({
        port: 6379,
        cluster: true,
        tls: true,
        auth: { mode: "iam", user: `${prefix}-consumer`, clusterName: prefix },
      });
      expect(loaded.retention).toEqual(config.retention);
      expect(loaded.quarantine).toEqual({ queueUrl: expect.stringMatching(/^https:\/\/sqs\./) });
    });

    it("does not wait for replicas, so its MemoryDB user has no +wait", () => {
      // MemoryDB commits each write to its multi-AZ transaction log before acknowledging it:
      // the WAIT that self-managed Redis needs (REDIS_WAIT_REPLICAS=1) adds nothing here.
      const vars = variables(fn, "consumer environment");
      expect(vars.REDIS_WAIT_REPLICAS).toBeUndefined();
      const loaded = loadConsumerRuntimeConfig({
        ...resolved(vars, prefix),
        AWS_REGION: config.region,
      });
      expect(loaded.replicaWait).toBeUndefined();
      const user = one(tf, "aws_memorydb_user", "user-consumer");
      expect(user.access_string).toBe(`on ${consumerAclRules({ waitForReplicas: false })}`);
      expect(user.access_string).not.toMatch(/\+wait\b|\+@all\b|\+@connection\b/);
    });

    it("the mapping and the schedule wait for the network rules (and the SQS endpoint)", () => {
      const rules = [
        address(tf, "aws_vpc_security_group_egress_rule", "functions-to-memorydb"),
        address(tf, "aws_vpc_security_group_ingress_rule", "memorydb-from-functions"),
        address(tf, "aws_vpc_security_group_egress_rule", "functions-to-endpoints"),
        address(tf, "aws_vpc_security_group_ingress_rule", "endpoints-from-functions"),
      ];
      const mapping = one(tf, "aws_lambda_event_source_mapping");
      expect(mapping.depends_on).toEqual(
        expect.arrayContaining([...rules, address(tf, "aws_vpc_endpoint", "sqs-endpoint")]),
      );
      expect(one(tf, "aws_scheduler_schedule").depends_on).toEqual(expect.arrayContaining(rules));
    });

    it("event source mapping: TRIM_HORIZON, partial failures, bisect, bounded retries, failure queue", () => {
      expect(
        Testing.toHaveResourceWithProperties(s.json, LambdaEventSourceMapping.tfResourceType, {
          function_name: ref(tf, "aws_lambda_function", "consumer", "arn"),
          event_source_arn: ref(tf, "aws_kinesis_stream", "stream", "arn"),
          starting_position: "TRIM_HORIZON",
          function_response_types: ["ReportBatchItemFailures"],
          bisect_batch_on_function_error: true,
          maximum_retry_attempts: config.consumer.maximumRetryAttempts,
          maximum_record_age_in_seconds: config.consumer.maximumRecordAgeSeconds,
          batch_size: config.consumer.batchSize,
          maximum_batching_window_in_seconds: config.consumer.batchingWindowSeconds,
          parallelization_factor: config.consumer.parallelizationFactor,
          destination_config: {
            on_failure: { destination_arn: ref(tf, "aws_sqs_queue", "failures", "arn") },
          },
        }),
      ).toBe(true);
    });

    it("quarantine and failure queues: KMS, two weeks of retention", () => {
      for (const name of ["quarantine", "failures"]) {
        const q = one(tf, "aws_sqs_queue", name);
        expect(q.kms_master_key_id).toBe(ref(tf, "aws_kms_key", "kms", "arn"));
        expect(q.message_retention_seconds).toBe(1_209_600);
      }
    });

    it("IAM: reads its stream, sends to its queues, connects as its MemoryDB user only", () => {
      const statements = bySid(
        policyStatements(one(tf, "aws_iam_role_policy", "consumer").policy, "consumer policy"),
      );
      expect(statements.ReadStream?.Resource).toBe(ref(tf, "aws_kinesis_stream", "stream", "arn"));
      expect(statements.SendToOwnQueues?.Resource).toEqual([
        ref(tf, "aws_sqs_queue", "quarantine", "arn"),
        ref(tf, "aws_sqs_queue", "failures", "arn"),
      ]);
      expect(statements.MemoryDbConnect).toEqual({
        Sid: "MemoryDbConnect",
        Effect: "Allow",
        Action: "memorydb:Connect",
        Resource: [
          ref(tf, "aws_memorydb_cluster", "cluster", "arn"),
          ref(tf, "aws_memorydb_user", "user-consumer", "arn"),
        ],
      });
    });

    it("operator policy: redrive invokes exactly this function, and nothing else grants it", () => {
      const fnArn = ref(tf, "aws_lambda_function", "consumer", "arn");
      const operator = bySid(
        policyStatements(one(tf, "aws_iam_policy", "operator").policy, "operator policy"),
      );
      expect(operator.InvokeConsumerForRedrive).toEqual({
        Sid: "InvokeConsumerForRedrive",
        Effect: "Allow",
        Action: "lambda:InvokeFunction",
        Resource: fnArn,
      });
      // Every Allow in every policy of the stack that could invoke the consumer: only that one
      // (the event source mapping invokes it as the Lambda service, with no policy here).
      expect(invokeGrants(tf, config.region, `${prefix}-consumer`, fnArn)).toEqual([
        `aws_iam_policy ${prefix}-operator InvokeConsumerForRedrive`,
      ]);
      // What else redrive needs: its two queues, the stream read back, their key to decrypt.
      expect(operator.RedriveFromQueues).toMatchObject({
        Action: ["sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:ChangeMessageVisibility"],
        Resource: [
          ref(tf, "aws_sqs_queue", "failures", "arn"),
          ref(tf, "aws_sqs_queue", "quarantine", "arn"),
        ],
      });
      expect(operator.ReadStreamForRedrive).toMatchObject({
        Action: ["kinesis:GetShardIterator", "kinesis:GetRecords"],
        Resource: ref(tf, "aws_kinesis_stream", "stream", "arn"),
      });
      expect(operator.DecryptForRedrive).toMatchObject({
        Action: "kms:Decrypt",
        Resource: ref(tf, "aws_kms_key", "kms", "arn"),
        Condition: {
          StringEquals: {
            "kms:ViaService": [
              `kinesis.${config.region}.amazonaws.com`,
              `sqs.${config.region}.amazonaws.com`,
            ],
          },
        },
      });
    });
  });

  describe("rollup", () => {
    const fns = ["plan", "merge", "finish"].map((h) =>
      one(tf, "aws_lambda_function", `rollup_${h}`),
    );

    it("three functions from one bundle, one handler export each", () => {
      expect(fns.map((f) => f.handler)).toEqual(["index.plan", "index.merge", "index.finish"]);
      expect(fns.map((f) => f.function_name)).toEqual(
        ["plan", "merge", "finish"].map((h) => `${prefix}-rollup-${h}`),
      );
      expect(new Set(fns.map((f) => f.filename)).size).toBe(1);
      expect(new Set(fns.map((f) => f.source_code_hash)).size).toBe(1);
      expect(fns[0]?.filename).not.toBe(one(tf, "aws_lambda_function", "consumer").filename);
      const filename = str(first(fns, "rollup function").filename, "rollup filename");
      expect(existsSync(join(s.stackDir, filename))).toBe(true);
      for (const f of fns) {
        expect(f.runtime).toBe("nodejs22.x");
        expect(f.tracing_config).toEqual({ mode: "Active" });
        expect(f.timeout).toBe(config.rollup.timeoutSeconds);
        const vars = variables(f, `${f.function_name} environment`);
        expect(vars.QUARANTINE_QUEUE_URL).toBeUndefined();
        expect(vars.REDIS_USER).toBe(ref(tf, "aws_memorydb_user", "user-rollup", "user_name"));
        const loaded = loadRuntimeConfig({ ...resolved(vars, prefix), AWS_REGION: config.region });
        expect(loaded.redis.auth).toMatchObject({ mode: "iam", user: `${prefix}-rollup` });
      }
    });

    it("state machine: the rendered ASL, logging, X-Ray", () => {
      expect(
        Testing.toHaveResourceWithProperties(s.json, SfnStateMachine.tfResourceType, {
          name: `${prefix}-rollup`,
          type: "STANDARD",
          tracing_configuration: { enabled: true },
          logging_configuration: {
            level: config.rollup.logLevel,
            include_execution_data: config.rollup.includeExecutionData,
            log_destination: `${ref(tf, "aws_cloudwatch_log_group", "rollup_logs", "arn")}:*`,
          },
        }),
      ).toBe(true);
      const sm = one(tf, "aws_sfn_state_machine");
      const def = parseJson(sm.definition, "state machine definition");
      const account = ACCOUNT_REF;
      const arnOf = (h: string) =>
        `arn:aws:lambda:${config.region}:${account}:function:${prefix}-rollup-${h}`;
      const state = (path: string) => dig(def, path, "definition");
      expect(state("States.Plan.Resource")).toBe(arnOf("plan"));
      expect(state("States.MergePages.ItemProcessor.States.MergePage.Resource")).toBe(
        arnOf("merge"),
      );
      expect(state("States.Finish.Resource")).toBe(arnOf("finish"));
      expect(state("States.MergePages.MaxConcurrency")).toBe(config.rollup.mapMaxConcurrency);
      // The ARNs are built, not referenced: depends_on keeps the functions first.
      expect(sm.depends_on).toEqual(
        expect.arrayContaining(
          ["plan", "merge", "finish"].map((h) => {
            const [address] = defined(
              resourcesOfType(tf, "aws_lambda_function").find(([a]) => a.includes(`rollup_${h}`)),
              `rollup_${h} function`,
            );
            return address;
          }),
        ),
      );
      // The state machine may invoke exactly the three functions.
      const policy = policyStatements(
        one(tf, "aws_iam_role_policy", "state-machine").policy,
        "state machine policy",
      );
      expect(first(policy, "state machine policy statement").Resource).toEqual(
        ["plan", "merge", "finish"].flatMap((h) => [arnOf(h), `${arnOf(h)}:*`]),
      );
    });

    it("EventBridge Scheduler starts it with {} on the configured schedule, with its own role", () => {
      expect(
        Testing.toHaveResourceWithProperties(s.json, SchedulerSchedule.tfResourceType, {
          schedule_expression: config.rollup.scheduleExpression,
          schedule_expression_timezone: "UTC",
          state: "ENABLED",
          flexible_time_window: { mode: "OFF" },
          target: {
            arn: ref(tf, "aws_sfn_state_machine", "state-machine", "arn"),
            role_arn: ref(tf, "aws_iam_role", "scheduler-role", "arn"),
            input: "{}",
          },
        }),
      ).toBe(true);
      const trust = policyStatements(
        one(tf, "aws_iam_role", "scheduler-role").assume_role_policy,
        "scheduler trust policy",
      );
      expect(first(trust, "scheduler trust statement").Principal).toEqual({
        Service: "scheduler.amazonaws.com",
      });
      const policy = policyStatements(
        one(tf, "aws_iam_role_policy", "scheduler-role").policy,
        "scheduler policy",
      );
      expect(policy).toEqual([
        {
          Sid: "StartRollup",
          Effect: "Allow",
          Action: "states:StartExecution",
          Resource: ref(tf, "aws_sfn_state_machine", "state-machine", "arn"),
        },
      ]);
    });
  });

  describe("read API", () => {
    const fn = one(tf, "aws_lambda_function", "read-api");
    const fnArn = ref(tf, "aws_lambda_function", "read-api", "arn");
    const name = `${prefix}-read-api`;

    it("Lambda: Node.js 22, its own bundle, in the VPC, timeout and memory from config", () => {
      expect(fn).toMatchObject({
        function_name: name,
        runtime: "nodejs22.x",
        handler: "index.handler",
        architectures: [config.api.architecture],
        timeout: config.api.timeoutSeconds,
        memory_size: config.api.memoryMb,
        role: ref(tf, "aws_iam_role", "read-api", "arn"),
      });
      expect(fn.vpc_config).toEqual({
        subnet_ids: resourcesOfType(tf, "aws_subnet").map(([a]) => `\${${a}.id}`),
        security_group_ids: [ref(tf, "aws_security_group", "network_functions", "id")],
      });
      const zip = readFileSync(join(s.stackDir, str(fn.filename, "read API filename")));
      expect(fn.source_code_hash).toBe(createHash("sha256").update(zip).digest("base64"));
      expect(fn.filename).not.toBe(one(tf, "aws_lambda_function", "consumer").filename);
      // The role's policy exists before the function (its ENIs), the log group before its logs.
      expect(fn.depends_on).toEqual([
        address(tf, "aws_cloudwatch_log_group", "read-api"),
        address(tf, "aws_iam_role_policy", "read-api"),
      ]);
    });

    it("function URL: AWS_IAM auth, created once the network rules to MemoryDB exist", () => {
      expect(one(tf, "aws_lambda_function_url", "read-api")).toMatchObject({
        function_name: ref(tf, "aws_lambda_function", "read-api", "function_name"),
        authorization_type: "AWS_IAM",
        depends_on: [
          address(tf, "aws_vpc_security_group_egress_rule", "functions-to-memorydb"),
          address(tf, "aws_vpc_security_group_ingress_rule", "memorydb-from-functions"),
          address(tf, "aws_vpc_security_group_egress_rule", "functions-to-endpoints"),
          address(tf, "aws_vpc_security_group_ingress_rule", "endpoints-from-functions"),
        ],
      });
      // No CORS (the dashboard signs through its local proxy) and no resource-based grant.
      expect(one(tf, "aws_lambda_function_url", "read-api").cors).toBeUndefined();
      expect(resourcesOfType(tf, "aws_lambda_permission")).toEqual([]);
    });

    it("environment: the runtime contract as the reader, and a Redis deadline below the timeout", () => {
      const vars = variables(fn, "read API environment");
      expect(Object.keys(vars).sort()).toEqual(
        [
          "API_REDIS_DEADLINE_MS",
          "MEMORYDB_CLUSTER_NAME",
          "NODE_OPTIONS",
          "REDIS_AUTH",
          "REDIS_CLUSTER",
          "REDIS_ENDPOINT",
          "REDIS_TLS",
          "REDIS_USER",
          "RETENTION_DAYS",
          "RETENTION_MONTHS",
          "RETENTION_WEEKS",
        ].sort(),
      );
      expect(vars.REDIS_USER).toBe(ref(tf, "aws_memorydb_user", "user-reader", "user_name"));
      const loaded = loadRuntimeConfig({ ...resolved(vars, prefix), AWS_REGION: config.region });
      expect(loaded.redis).toMatchObject({
        port: 6379,
        cluster: true,
        tls: true,
        auth: { mode: "iam", user: `${prefix}-reader`, clusterName: prefix },
      });
      expect(loaded.retention).toEqual(config.retention);
      expect(vars.API_REDIS_DEADLINE_MS).toBe(String(config.api.redisDeadlineMs));
      expect(Number(vars.API_REDIS_DEADLINE_MS)).toBeLessThan(config.api.timeoutSeconds * 1000);
    });

    it("IAM: its logs, its network interfaces, and MemoryDB as the reader only", () => {
      const statements = policyStatements(
        one(tf, "aws_iam_role_policy", "read-api").policy,
        "read API policy",
      );
      const sids = bySid(statements);
      expect(Object.keys(sids)).toEqual([
        "WriteOwnLogs",
        "VpcNetworkInterfaces",
        "MemoryDbConnect",
      ]);
      expect(sids.WriteOwnLogs?.Resource).toEqual([
        `arn:aws:logs:${config.region}:${ACCOUNT_REF}:log-group:/aws/lambda/${name}:*`,
      ]);
      expect(sids.MemoryDbConnect).toEqual({
        Sid: "MemoryDbConnect",
        Effect: "Allow",
        Action: "memorydb:Connect",
        Resource: [
          ref(tf, "aws_memorydb_cluster", "cluster", "arn"),
          ref(tf, "aws_memorydb_user", "user-reader", "arn"),
        ],
      });
      // No writer's user appears anywhere in the role's policy.
      const text = str(one(tf, "aws_iam_role_policy", "read-api").policy, "read API policy");
      for (const writer of ["consumer", "rollup", "registry-writer"]) {
        expect(text).not.toContain(ref(tf, "aws_memorydb_user", `user-${writer}`, "arn"));
      }
      const trust = policyStatements(
        one(tf, "aws_iam_role", "read-api").assume_role_policy,
        "read API trust policy",
      );
      expect(trust.map((st) => st.Principal)).toEqual([{ Service: "lambda.amazonaws.com" }]);
    });

    it("operator policy: both invoke actions on this function, and nothing else grants them", () => {
      const operator = bySid(
        policyStatements(one(tf, "aws_iam_policy", "operator").policy, "operator policy"),
      );
      expect(operator.CallReadApiUrl).toEqual({
        Sid: "CallReadApiUrl",
        Effect: "Allow",
        Action: "lambda:InvokeFunctionUrl",
        Resource: fnArn,
        Condition: { StringEquals: { "lambda:FunctionUrlAuthType": "AWS_IAM" } },
      });
      expect(operator.InvokeReadApi).toEqual({
        Sid: "InvokeReadApi",
        Effect: "Allow",
        Action: "lambda:InvokeFunction",
        Resource: fnArn,
      });
      // Every Allow in every policy of the stack that could invoke the read function: the
      // operator policy's two, and the admin policy grants nothing on it.
      expect(invokeGrants(tf, config.region, name, fnArn)).toEqual([
        `aws_iam_policy ${prefix}-operator CallReadApiUrl`,
        `aws_iam_policy ${prefix}-operator InvokeReadApi`,
      ]);
    });

    it("alarms: errors and p99 duration near the timeout, to the alarm topic", () => {
      const alarms = resourcesOfType(tf, "aws_cloudwatch_metric_alarm")
        .map(([, b]) => b)
        .filter((b) => String(b.alarm_name).startsWith(name));
      const topic = ref(tf, "aws_sns_topic", "alarms", "arn");
      expect(alarms).toEqual([
        expect.objectContaining({
          alarm_name: `${name}-errors`,
          namespace: "AWS/Lambda",
          metric_name: "Errors",
          dimensions: { FunctionName: name },
          statistic: "Sum",
          threshold: 0,
          comparison_operator: "GreaterThanThreshold",
          alarm_actions: [topic],
          ok_actions: [topic],
        }),
        expect.objectContaining({
          alarm_name: `${name}-p99-duration`,
          namespace: "AWS/Lambda",
          metric_name: "Duration",
          dimensions: { FunctionName: name },
          extended_statistic: "p99",
          threshold: config.api.timeoutSeconds * 1000 * 0.8,
          comparison_operator: "GreaterThanThreshold",
          alarm_actions: [topic],
          ok_actions: [topic],
        }),
      ]);
      // One statistic per alarm: the p99 alarm has no plain statistic beside it.
      expect(alarms[1]?.statistic).toBeUndefined();
    });
  });

  describe("admin API", () => {
    const fn = one(tf, "aws_lambda_function", "admin-api");
    const fnArn = ref(tf, "aws_lambda_function", "admin-api", "arn");
    const name = `${prefix}-admin-api`;

    it("Lambda: Node.js 22, the bundle of functions/admin/handler.ts, in the VPC, sized like the read API", () => {
      expect(fn).toMatchObject({
        function_name: name,
        runtime: "nodejs22.x",
        handler: "index.handler",
        architectures: [config.api.architecture],
        timeout: config.api.timeoutSeconds,
        memory_size: config.api.memoryMb,
        role: ref(tf, "aws_iam_role", "admin-api", "arn"),
      });
      expect(fn.vpc_config).toEqual({
        subnet_ids: resourcesOfType(tf, "aws_subnet").map(([a]) => `\${${a}.id}`),
        security_group_ids: [ref(tf, "aws_security_group", "network_functions", "id")],
      });
      const zip = readFileSync(join(s.stackDir, str(fn.filename, "admin API filename")));
      const hash = createHash("sha256").update(zip).digest("base64");
      expect(fn.source_code_hash).toBe(hash);
      // Its own code: the admin handler's bundle, not the read API's.
      const admin = bundleEntry(DEFAULT_SOURCES.adminEntry, ["handler"], PROJECT_ROOT);
      expect(hash).toBe(admin.sha256);
      expect(hash).not.toBe(one(tf, "aws_lambda_function", "read-api").source_code_hash);
      expect(fn.depends_on).toEqual([
        address(tf, "aws_cloudwatch_log_group", "admin-api"),
        address(tf, "aws_iam_role_policy", "admin-api"),
      ]);
    });

    it("its own function URL: AWS_IAM auth, no CORS, created once the network rules exist", () => {
      const url = one(tf, "aws_lambda_function_url", "admin-api");
      expect(url).toMatchObject({
        function_name: ref(tf, "aws_lambda_function", "admin-api", "function_name"),
        authorization_type: "AWS_IAM",
        depends_on: [
          address(tf, "aws_vpc_security_group_egress_rule", "functions-to-memorydb"),
          address(tf, "aws_vpc_security_group_ingress_rule", "memorydb-from-functions"),
          address(tf, "aws_vpc_security_group_egress_rule", "functions-to-endpoints"),
          address(tf, "aws_vpc_security_group_ingress_rule", "endpoints-from-functions"),
        ],
      });
      expect(url.cors).toBeUndefined();
      // Two URLs, two functions: the boundary between reading and administering.
      expect(
        resourcesOfType(tf, "aws_lambda_function_url")
          .map(([, b]) => String(b.function_name))
          .sort(),
      ).toEqual(
        [
          ref(tf, "aws_lambda_function", "admin-api", "function_name"),
          ref(tf, "aws_lambda_function", "read-api", "function_name"),
        ].sort(),
      );
    });

    it("environment: the runtime contract as the registry writer", () => {
      const vars = variables(fn, "admin API environment");
      expect(vars.REDIS_USER).toBe(
        ref(tf, "aws_memorydb_user", "user-registry-writer", "user_name"),
      );
      const loaded = loadRuntimeConfig({ ...resolved(vars, prefix), AWS_REGION: config.region });
      expect(loaded.redis).toMatchObject({
        port: 6379,
        cluster: true,
        tls: true,
        auth: { mode: "iam", user: `${prefix}-registry-writer`, clusterName: prefix },
      });
      expect(vars.API_REDIS_DEADLINE_MS).toBe(String(config.api.redisDeadlineMs));
    });

    it("IAM: its logs, its network interfaces, and MemoryDB as the registry writer only", () => {
      const policy = one(tf, "aws_iam_role_policy", "admin-api");
      const sids = bySid(policyStatements(policy.policy, "admin API policy"));
      expect(Object.keys(sids)).toEqual([
        "WriteOwnLogs",
        "VpcNetworkInterfaces",
        "MemoryDbConnect",
      ]);
      expect(sids.WriteOwnLogs?.Resource).toEqual([
        `arn:aws:logs:${config.region}:${ACCOUNT_REF}:log-group:/aws/lambda/${name}:*`,
      ]);
      expect(sids.MemoryDbConnect).toEqual({
        Sid: "MemoryDbConnect",
        Effect: "Allow",
        Action: "memorydb:Connect",
        Resource: [
          ref(tf, "aws_memorydb_cluster", "cluster", "arn"),
          ref(tf, "aws_memorydb_user", "user-registry-writer", "arn"),
        ],
      });
      const text = str(policy.policy, "admin API policy");
      for (const other of ["consumer", "rollup", "reader"]) {
        expect(text).not.toContain(ref(tf, "aws_memorydb_user", `user-${other}_`, "arn"));
      }
      expect(
        policyStatements(one(tf, "aws_iam_role", "admin-api").assume_role_policy, "trust").map(
          (st) => st.Principal,
        ),
      ).toEqual([{ Service: "lambda.amazonaws.com" }]);
    });

    it("admin policy: both invoke actions on this function only; no other policy grants them", () => {
      const policy = one(tf, "aws_iam_policy", "admin-api");
      expect(policy.name).toBe(`${prefix}-admin`);
      expect(policyStatements(policy.policy, "admin policy")).toEqual([
        {
          Sid: "CallAdminApiUrl",
          Effect: "Allow",
          Action: "lambda:InvokeFunctionUrl",
          Resource: fnArn,
          Condition: { StringEquals: { "lambda:FunctionUrlAuthType": "AWS_IAM" } },
        },
        {
          Sid: "InvokeAdminApi",
          Effect: "Allow",
          Action: "lambda:InvokeFunction",
          Resource: fnArn,
        },
      ]);
      // Every Allow anywhere that could invoke the admin function: the operator policy is not
      // among them, whatever wildcard it might use.
      expect(invokeGrants(tf, config.region, name, fnArn)).toEqual([
        `aws_iam_policy ${prefix}-admin CallAdminApiUrl`,
        `aws_iam_policy ${prefix}-admin InvokeAdminApi`,
      ]);
      const operator = str(one(tf, "aws_iam_policy", "operator").policy, "operator policy");
      expect(operator).not.toContain(address(tf, "aws_lambda_function", "admin-api"));
      expect(operator).not.toContain(name);
    });

    it("alarms: errors and p99 duration near the timeout, to the alarm topic", () => {
      const alarms = resourcesOfType(tf, "aws_cloudwatch_metric_alarm")
        .map(([, b]) => b)
        .filter((b) => String(b.alarm_name).startsWith(name));
      const topic = ref(tf, "aws_sns_topic", "alarms", "arn");
      expect(alarms).toEqual([
        expect.objectContaining({
          alarm_name: `${name}-errors`,
          alarm_description: expect.stringMatching(/^The admin API Lambda failed/),
          namespace: "AWS/Lambda",
          metric_name: "Errors",
          dimensions: { FunctionName: name },
          statistic: "Sum",
          threshold: 0,
          comparison_operator: "GreaterThanThreshold",
          alarm_actions: [topic],
          ok_actions: [topic],
        }),
        expect.objectContaining({
          alarm_name: `${name}-p99-duration`,
          alarm_description: expect.stringMatching(/^The admin API's p99 duration/),
          namespace: "AWS/Lambda",
          metric_name: "Duration",
          dimensions: { FunctionName: name },
          extended_statistic: "p99",
          threshold: config.api.timeoutSeconds * 1000 * 0.8,
          comparison_operator: "GreaterThanThreshold",
          alarm_actions: [topic],
          ok_actions: [topic],
        }),
      ]);
      expect(alarms[1]?.statistic).toBeUndefined();
    });
  });

  describe("operator access", () => {
    it("EC2 Instance Connect Endpoint to a private instance with IMDSv2 and redis-cli", () => {
      const eice = one(tf, "aws_ec2_instance_connect_endpoint");
      expect(eice.subnet_id).toBe(ref(tf, "aws_subnet", "private-0", "id"));
      expect(eice.security_group_ids).toEqual([ref(tf, "aws_security_group", "eice-sg", "id")]);
      const lt = one(tf, "aws_launch_template");
      expect(lt.image_id).toBe(
        "resolve:ssm:/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-arm64",
      );
      expect(lt.instance_type).toBe(config.access.instanceType);
      expect(lt.metadata_options).toMatchObject({ http_tokens: "required" });
      expect(lt.user_data).toMatch(/dnf install -y redis6/);
      expect(lt.user_data).toMatch(/redis6-cli \/usr\/local\/bin\/redis-cli/);
      const instance = one(tf, "aws_instance");
      expect(instance.iam_instance_profile).toBeUndefined();
      // First boot installs redis-cli from S3: the subnet's route table association, the S3
      // route and the egress rule come first.
      expect(instance.subnet_id).toBe(ref(tf, "aws_subnet", "private-0_", "id"));
      expect(instance.depends_on).toEqual([
        address(tf, "aws_route_table_association", "private-0-rt"),
        address(tf, "aws_vpc_endpoint", "s3"),
        address(tf, "aws_vpc_security_group_egress_rule", "instance-to-s3"),
      ]);
      // SSH reaches the instance only from the endpoint's security group.
      const sshIn = resourcesOfType(tf, "aws_vpc_security_group_ingress_rule")
        .map(([, b]) => b)
        .filter((b) => b.from_port === 22);
      expect(sshIn).toEqual([
        expect.objectContaining({
          security_group_id: ref(tf, "aws_security_group", "instance-sg", "id"),
          referenced_security_group_id: ref(tf, "aws_security_group", "eice-sg", "id"),
          to_port: 22,
        }),
      ]);
    });

    it("operator policy: reader token, tunnel to this endpoint, key to this instance", () => {
      const statements = bySid(
        policyStatements(one(tf, "aws_iam_policy", "operator").policy, "operator policy"),
      );
      expect(statements.MemoryDbConnect?.Resource).toEqual([
        ref(tf, "aws_memorydb_cluster", "cluster", "arn"),
        ref(tf, "aws_memorydb_user", "user-reader", "arn"),
      ]);
      expect(statements.TunnelThroughEndpoint?.Resource).toBe(
        ref(tf, "aws_ec2_instance_connect_endpoint", "eice", "arn"),
      );
      expect(statements.PushSshKeyToOperatorInstance?.Condition).toEqual({
        StringEquals: { "ec2:osuser": "ec2-user" },
      });
    });
  });

  describe("observability", () => {
    it("every log group has the configured retention and the stack's key", () => {
      const groups = resourcesOfType(tf, "aws_cloudwatch_log_group").map(([, b]) => b);
      expect(groups.map((g) => g.name).sort()).toEqual(
        [
          `/aws/lambda/${prefix}-admin-api`,
          `/aws/lambda/${prefix}-consumer`,
          `/aws/lambda/${prefix}-read-api`,
          `/aws/lambda/${prefix}-rollup-finish`,
          `/aws/lambda/${prefix}-rollup-merge`,
          `/aws/lambda/${prefix}-rollup-plan`,
          `/aws/vendedlogs/states/${prefix}-rollup`,
        ].sort(),
      );
      for (const g of groups) {
        expect(
          Testing.toHaveResourceWithProperties(s.json, CloudwatchLogGroup.tfResourceType, {
            name: g.name,
            retention_in_days: config.logRetentionDays,
            kms_key_id: ref(tf, "aws_kms_key", "kms", "arn"),
          }),
        ).toBe(true);
      }
    });

    it("alarm topic on the customer-managed key, which lets CloudWatch use it", () => {
      expect(
        Testing.toHaveResourceWithProperties(s.json, SnsTopic.tfResourceType, {
          name: `${prefix}-alarms`,
          kms_master_key_id: ref(tf, "aws_kms_key", "kms", "arn"),
        }),
      ).toBe(true);
      const keyPolicy = policyStatements(one(tf, "aws_kms_key").policy, "key policy");
      const cw = keyPolicy.find(
        (st) => peek(st, "Principal.Service") === "cloudwatch.amazonaws.com",
      );
      expect(cw?.Action).toEqual(["kms:Decrypt", "kms:GenerateDataKey*"]);
      const topicPolicy = policyStatements(one(tf, "aws_sns_topic_policy").policy, "topic policy");
      expect(first(topicPolicy, "topic policy statement")).toMatchObject({
        Principal: { Service: "cloudwatch.amazonaws.com" },
        Action: "sns:Publish",
      });
      expect(resourcesOfType(tf, "aws_sns_topic_subscription")).toEqual([]);
    });

    it("alarms: consumer errors, iterator age, quarantine, failure queue, rollups, memory, both APIs, time zones", () => {
      const alarms: Record<string, TfResource> = Object.fromEntries(
        resourcesOfType(tf, "aws_cloudwatch_metric_alarm").map(([, b]) => [
          str(b.alarm_name, "alarm_name"),
          b,
        ]),
      );
      expect(Object.keys(alarms).sort()).toEqual(
        [
          "admin-api-errors",
          "admin-api-p99-duration",
          "consumer-errors",
          "consumer-iterator-age",
          "failure-queue-depth",
          "memorydb-memory",
          "quarantine-depth",
          "read-api-errors",
          "read-api-p99-duration",
          "rollup-failed",
          "time-zone-load-failures",
        ].map((n) => `${prefix}-${n}`),
      );
      const topic = ref(tf, "aws_sns_topic", "alarms", "arn");
      for (const a of Object.values(alarms)) expect(a.alarm_actions).toEqual([topic]);
      expect(alarms[`${prefix}-consumer-errors`]).toMatchObject({
        namespace: "AWS/Lambda",
        metric_name: "Errors",
        dimensions: { FunctionName: `${prefix}-consumer` },
      });
      expect(alarms[`${prefix}-consumer-iterator-age`]).toMatchObject({
        metric_name: "IteratorAge",
        threshold: config.alarms.iteratorAgeMs,
      });
      expect(alarms[`${prefix}-quarantine-depth`]?.dimensions).toEqual({
        QueueName: ref(tf, "aws_sqs_queue", "quarantine", "name"),
      });
      expect(alarms[`${prefix}-failure-queue-depth`]?.dimensions).toEqual({
        QueueName: ref(tf, "aws_sqs_queue", "failures", "name"),
      });
      // Memory is per node: the highest of any node, not a ClusterName-only series.
      expect(alarms[`${prefix}-memorydb-memory`]).toMatchObject({
        metric_query: [
          {
            id: "memory",
            period: 60,
            return_data: true,
            expression: `SELECT MAX(DatabaseMemoryUsagePercentage) FROM "AWS/MemoryDB" WHERE ClusterName = '${prefix}'`,
          },
        ],
        threshold: config.alarms.memoryUsagePercent,
      });
      expect(alarms[`${prefix}-memorydb-memory`]?.dimensions).toBeUndefined();
      const rollup = objs(
        alarms[`${prefix}-rollup-failed`]?.metric_query,
        "rollup-failed metric_query",
      );
      expect(rollup.map((q) => peek(q, "metric.metric_name"))).toEqual([
        "ExecutionsFailed",
        "ExecutionsTimedOut",
        "ExecutionsAborted",
        undefined,
      ]);
      // The metric both functions count (functions/consumer/ingest.ts, functions/rollup), by
      // the `service` dimension Powertools gives each.
      const zones = objs(
        alarms[`${prefix}-time-zone-load-failures`]?.metric_query,
        "time-zone-load-failures metric_query",
      );
      expect(zones.map((q) => peek(q, "metric"))).toEqual([
        expect.objectContaining({
          namespace: "sketchstream",
          metric_name: "TimeZoneLoadFailures",
          dimensions: { service: "consumer" },
        }),
        expect.objectContaining({
          namespace: "sketchstream",
          metric_name: "TimeZoneLoadFailures",
          dimensions: { service: "rollup" },
        }),
        undefined,
      ]);
      expect(alarms[`${prefix}-time-zone-load-failures`]).toMatchObject({
        threshold: 0,
        comparison_operator: "GreaterThanThreshold",
      });
    });
  });

  it("outputs: endpoint, stream, state machine, queues, both API URLs, the admin policy and the exact redis-cli command", () => {
    const cluster = resourcesOfType(tf, "aws_memorydb_cluster")[0]?.[0];
    const host = `\${${cluster}.cluster_endpoint[0].address}`;
    expect(tf.output.redis_endpoint?.value).toBe(`${host}:6379`);
    expect(tf.output.stream_name?.value).toBe(ref(tf, "aws_kinesis_stream", "stream", "name"));
    expect(tf.output.stream_arn?.value).toBe(ref(tf, "aws_kinesis_stream", "stream", "arn"));
    expect(tf.output.state_machine_arn?.value).toBe(
      ref(tf, "aws_sfn_state_machine", "state", "arn"),
    );
    expect(tf.output.quarantine_queue_url?.value).toBe(
      ref(tf, "aws_sqs_queue", "quarantine", "url"),
    );
    expect(tf.output.failure_queue_url?.value).toBe(ref(tf, "aws_sqs_queue", "failures", "url"));
    expect(tf.output.redis_cli_command?.value).toBe(
      `redis-cli -c --tls -h ${host} -p 6379 --user ${prefix}-reader PFCOUNT 'uv:{site_id=715}:2024-03-09'`,
    );
    const apiUrl = ref(tf, "aws_lambda_function_url", "read-api", "function_url");
    const adminUrl = ref(tf, "aws_lambda_function_url", "admin-api", "function_url");
    expect(tf.output.api_url?.value).toBe(apiUrl);
    expect(tf.output.admin_api_url?.value).toBe(adminUrl);
    expect(tf.output.admin_policy_arn?.value).toBe(ref(tf, "aws_iam_policy", "admin-api", "arn"));
    expect(tf.output.operator_policy_arn?.value).toBe(ref(tf, "aws_iam_policy", "operator", "arn"));
    const cliEnv = str(tf.output.cli_env?.value, "cli_env").split("\n");
    expect(cliEnv).toContain(`API_URL=${apiUrl}`);
    expect(cliEnv).toContain(`ADMIN_API_URL=${adminUrl}`);
    // The CLI keeps reading as the reader: the admin API is reached only through its URL.
    expect(cliEnv).toContain(`REDIS_USER=${prefix}-reader`);
    // `redrive`: the queues it reads and the consumer function it invokes.
    expect(cliEnv).toContain(`FAILURE_QUEUE_URL=${ref(tf, "aws_sqs_queue", "failures", "url")}`);
    expect(cliEnv).toContain(
      `QUARANTINE_QUEUE_URL=${ref(tf, "aws_sqs_queue", "quarantine", "url")}`,
    );
    expect(cliEnv).toContain(
      `CONSUMER_FUNCTION_NAME=${ref(tf, "aws_lambda_function", "consumer", "function_name")}`,
    );
    expect(tf.output.operator_connect_command?.value).toBe(
      `aws ec2-instance-connect ssh --region ${config.region} --instance-id ${ref(tf, "aws_instance", "instance", "id")} --os-user ec2-user --connection-type eice`,
    );
  });
});

describe("stack with overrides", () => {
  it("another region: subnets in the zones given, by AZ ID where one is given", () => {
    const { tf } = synth("dev", {
      region: "us-east-1",
      network: { availabilityZones: ["use1-az4", "us-east-1b"] },
    });
    const subnets = resourcesOfType(tf, "aws_subnet").map(([, body]) => body);
    expect(subnets).toEqual([
      expect.objectContaining({ availability_zone_id: "use1-az4" }),
      expect.objectContaining({ availability_zone: "us-east-1b" }),
    ]);
    expect(subnets[0]?.availability_zone).toBeUndefined();
  });

  it("provisioned stream: shard count", () => {
    const { tf } = synth("dev", { stream: { mode: "PROVISIONED", shardCount: 3 } });
    expect(one(tf, "aws_kinesis_stream")).toMatchObject({
      stream_mode_details: { stream_mode: "PROVISIONED" },
      shard_count: 3,
    });
  });

  it("provisioned concurrency: the mapping invokes an alias that has it", () => {
    const { tf } = synth("dev", {
      consumer: { reservedConcurrency: 4, provisionedConcurrency: 2 },
    });
    expect(one(tf, "aws_lambda_function", "consumer")).toMatchObject({
      publish: true,
      reserved_concurrent_executions: 4,
    });
    expect(one(tf, "aws_lambda_event_source_mapping").function_name).toBe(
      ref(tf, "aws_lambda_alias", "live", "arn"),
    );
    expect(one(tf, "aws_lambda_provisioned_concurrency_config")).toMatchObject({
      provisioned_concurrent_executions: 2,
      qualifier: ref(tf, "aws_lambda_alias", "live", "name"),
    });
  });

  it("access disabled: no instance, endpoint or S3 route; the operator and admin policies stay", () => {
    const { tf } = synth("dev", { access: { enabled: false } });
    for (const type of [
      "aws_instance",
      "aws_ec2_instance_connect_endpoint",
      "aws_launch_template",
    ]) {
      expect(resourcesOfType(tf, type), type).toEqual([]);
    }
    expect(resourcesOfType(tf, "aws_vpc_endpoint").map(([a]) => a)).toEqual([
      expect.stringContaining("sqs"),
    ]);
    expect(
      resourcesOfType(tf, "aws_iam_policy")
        .map(([, b]) => String(b.name))
        .sort(),
    ).toEqual(["sketchstream-dev-admin", "sketchstream-dev-operator"]);
    expect(tf.output.operator_connect_command).toBeUndefined();
    // Without the instance, operators still read through the API (and with a token).
    const operator = policyStatements(one(tf, "aws_iam_policy", "operator").policy, "policy");
    expect(operator.map((st) => st.Sid)).toEqual(
      expect.arrayContaining(["MemoryDbConnect", "CallReadApiUrl", "InvokeReadApi"]),
    );
    expect(tf.output.api_url).toBeDefined();
    expect(tf.output.admin_api_url).toBeDefined();
    expect(tf.output.admin_policy_arn).toBeDefined();
  });

  it("both APIs sized by config: timeout, memory, Redis deadline and the p99 alarms follow", () => {
    const { tf } = synth("dev", {
      api: { timeoutSeconds: 30, memoryMb: 512, redisDeadlineMs: 5000, architecture: "x86_64" },
    });
    const fn = one(tf, "aws_lambda_function", "read-api");
    expect(fn).toMatchObject({ timeout: 30, memory_size: 512, architectures: ["x86_64"] });
    expect(variables(fn, "read API environment").API_REDIS_DEADLINE_MS).toBe("5000");
    expect(one(tf, "aws_cloudwatch_metric_alarm", "read-api_p99")).toMatchObject({
      extended_statistic: "p99",
      threshold: 24_000,
    });
    const admin = one(tf, "aws_lambda_function", "admin-api");
    expect(admin).toMatchObject({ timeout: 30, memory_size: 512, architectures: ["x86_64"] });
    expect(variables(admin, "admin API environment").API_REDIS_DEADLINE_MS).toBe("5000");
    expect(one(tf, "aws_cloudwatch_metric_alarm", "admin-api_p99")).toMatchObject({
      threshold: 24_000,
    });
  });

  it("account id given: no caller-identity look-up, and the provider refuses other accounts", () => {
    const { tf } = synth("dev", { accountId: "123456789012" });
    expect(tf.data).toBeUndefined();
    expect(tf.provider.aws?.[0]?.allowed_account_ids).toEqual(["123456789012"]);
    const definition = parseJson(one(tf, "aws_sfn_state_machine").definition, "definition");
    expect(dig(definition, "States.Plan.Resource", "definition")).toBe(
      "arn:aws:lambda:eu-west-1:123456789012:function:sketchstream-dev-rollup-plan",
    );
  });

  it("alarm email: an email subscription to the topic", () => {
    const { tf } = synth("dev", { alarms: { email: "ops@example.com" } });
    expect(one(tf, "aws_sns_topic_subscription")).toMatchObject({
      protocol: "email",
      endpoint: "ops@example.com",
      topic_arn: ref(tf, "aws_sns_topic", "alarms", "arn"),
    });
  });
});
