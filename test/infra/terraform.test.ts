/**
 * Offline Terraform on the synthesized stacks: init from the machine's provider mirror,
 * validate, and plan with fake credentials against a loopback stub of the two APIs plan calls
 * (STS for the account id, Step Functions' ValidateStateMachineDefinition answered with
 * asl-validator's verdict). Asserts the exact planned resource count and key attributes.
 * Runs whenever terraform is on PATH; skips, saying why, only when it is not.
 */

import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { first } from "../../functions/domain/arrays.js";
import { type AwsStub, STUB_ACCOUNT, startAwsStub } from "./aws-stub.js";
import {
  dig,
  ENVIRONMENTS,
  obj,
  objs,
  parseJson,
  removeSynthOutputs,
  str,
  strs,
  synth,
} from "./synth.js";
import {
  editConfig,
  findProviderMirror,
  offlineProvider,
  prepareWorkdir,
  removeWorkdirs,
  terraform,
  terraformOk,
  terraformVersion,
} from "./terraform.js";

afterAll(removeSynthOutputs);

/** The resources each environment plans to create, by type: what the design asks for. */
function plannedTypes(azs: number): Record<string, number> {
  return {
    // Network: VPC, one private subnet per AZ on one route table without internet route, the
    // emptied default group; groups for functions, MemoryDB, endpoints, operator, EICE; rules
    // by group reference; the SQS interface and S3 gateway endpoints.
    aws_vpc: 1,
    aws_subnet: azs,
    aws_route_table: 1,
    aws_route_table_association: azs,
    aws_default_security_group: 1,
    aws_security_group: 5,
    aws_vpc_security_group_egress_rule: 5,
    aws_vpc_security_group_ingress_rule: 4,
    aws_vpc_endpoint: 2,
    // MemoryDB: cluster, subnet and parameter groups, ACL with consumer, rollup, reader and
    // registry writer.
    aws_memorydb_cluster: 1,
    aws_memorydb_subnet_group: 1,
    aws_memorydb_parameter_group: 1,
    aws_memorydb_acl: 1,
    aws_memorydb_user: 4,
    // Encryption at rest: one key and its alias.
    aws_kms_key: 1,
    aws_kms_alias: 1,
    // Stream and consumer: its mapping, the quarantine and failure queues with TLS-only policies.
    aws_kinesis_stream: 1,
    aws_lambda_event_source_mapping: 1,
    aws_sqs_queue: 2,
    aws_sqs_queue_policy: 2,
    // Functions: consumer + plan, merge, finish + read API + admin API; a log group each plus
    // the state machine's; the two APIs' AWS_IAM function URLs.
    aws_lambda_function: 6,
    aws_cloudwatch_log_group: 7,
    aws_lambda_function_url: 2,
    // Roles: consumer, rollup functions, state machine, scheduler, read API, admin API; one
    // inline policy each.
    aws_iam_role: 6,
    aws_iam_role_policy: 6,
    aws_sfn_state_machine: 1,
    aws_scheduler_schedule: 1,
    // Operator access: endpoint, instance from a launch template, the operator policy; the
    // admin policy (the admin API only).
    aws_ec2_instance_connect_endpoint: 1,
    aws_launch_template: 1,
    aws_instance: 1,
    aws_iam_policy: 2,
    // Alarms to an encrypted topic that only this account's alarms may publish to: seven for
    // the pipeline (time zones not loaded among them), two for each API (errors, p99 duration).
    aws_cloudwatch_metric_alarm: 11,
    aws_sns_topic: 1,
    aws_sns_topic_policy: 1,
    // The monthly cost budget (budget.monthlyUsd), notifying that topic.
    aws_budgets_budget: 1,
  };
}
const PLANNED: Record<string, Record<string, number>> = {
  dev: plannedTypes(2),
  prod: plannedTypes(3),
};
const PLANNED_COUNT: Record<string, number> = Object.fromEntries(
  Object.entries(PLANNED).map(([env, types]) => [
    env,
    Object.values(types).reduce((a, b) => a + b, 0),
  ]),
);

interface PlannedResource {
  address: string;
  type: string;
  change: { actions: string[]; after: Record<string, unknown> };
}

/** The resource_changes of `terraform show -json`, checked for the fields the tests read. */
function plannedResources(show: unknown): PlannedResource[] {
  return objs(obj(show, "plan").resource_changes, "plan resource_changes").map((c, i) => {
    const what = `resource_changes[${i}]`;
    const change = obj(c.change, `${what}.change`);
    return {
      address: str(c.address, `${what}.address`),
      type: str(c.type, `${what}.type`),
      change: {
        actions: strs(change.actions, `${what}.change.actions`),
        after: obj(change.after, `${what}.change.after`),
      },
    };
  });
}

interface Pipeline {
  validated: Promise<string>;
  /** `terraform graph`: the dependency edges Terraform orders the apply by. */
  graph: Promise<string>;
  planned: Promise<PlannedResource[]>;
}

/**
 * Whether, in `terraform graph`'s DOT output, a resource waits for another: a path of edges
 * from the first to the second (Terraform may draw only the transitive reduction). Resources
 * are found by type and a fragment of their address.
 */
function dependsOn(graph: string, from: [string, string], to: [string, string]): boolean {
  const edges = new Map<string, string[]>();
  for (const m of graph.matchAll(/"([^"]+)" -> "([^"]+)"/g)) {
    const [, a = "", b = ""] = m;
    edges.set(a, [...(edges.get(a) ?? []), b]);
  }
  const matches = (node: string, [type, fragment]: [string, string]) =>
    node.startsWith(`${type}.`) && node.includes(fragment);
  const start = [...edges.keys()].filter((node) => matches(node, from));
  expect(start, `${from.join(" ")} is in the graph`).toHaveLength(1);
  const seen = new Set<string>();
  const queue = [...start];
  for (let node = queue.shift(); node !== undefined; node = queue.shift()) {
    if (node !== start[0] && matches(node, to)) return true;
    for (const next of edges.get(node) ?? []) {
      if (!seen.has(next)) {
        seen.add(next);
        queue.push(next);
      }
    }
  }
  return false;
}

const version = terraformVersion();
if (!version) {
  console.log("test/infra/terraform.test.ts skipped: terraform is not on PATH");
}

describe.skipIf(!version)(`offline terraform (${version})`, () => {
  let stub: AwsStub;
  let mirror: string;
  const pipelines: Record<string, Pipeline> = {};
  const pipeline = (env: string): Pipeline => {
    const p = pipelines[env];
    if (!p) throw new Error(`no terraform pipeline for ${env}: beforeAll did not start it`);
    return p;
  };

  beforeAll(async () => {
    const found = findProviderMirror();
    if (!found) {
      throw new Error(
        "terraform is on PATH but no filesystem mirror of registry.terraform.io/hashicorp/aws was found (looked in /opt/tf-plugins, ~/.terraform.d/plugins, /usr/share/terraform/plugins, then find / -maxdepth 4); set TF_PROVIDER_MIRROR to its root",
      );
    }
    mirror = found;
    stub = await startAwsStub();
    // Both environments run concurrently; each test awaits the step it checks.
    for (const env of ENVIRONMENTS) {
      const s = synth(env);
      const w = prepareWorkdir(s.stackDir, mirror, env);
      const validated = (async () => {
        await terraformOk(w, ["init", "-input=false", "-no-color"]);
        return terraformOk(w, ["validate", "-no-color"]);
      })();
      const graph = validated.then(() => terraformOk(w, ["graph"]));
      const planned = graph.then(async () => {
        offlineProvider(w.dir, stub.url);
        await terraformOk(w, [
          "plan",
          "-input=false",
          "-no-color",
          "-refresh=false",
          "-lock=false",
          "-out=plan.bin",
        ]);
        return plannedResources(JSON.parse(await terraformOk(w, ["show", "-json", "plan.bin"])));
      });
      // Failures surface in the tests that await them, not as unhandled rejections.
      validated.catch(() => {});
      graph.catch(() => {});
      planned.catch(() => {});
      pipelines[env] = { validated, graph, planned };
    }
  });

  afterAll(async () => {
    await stub?.close();
    // Plans still running (a failed test) would write into removed directories: wait first.
    await Promise.allSettled(Object.values(pipelines).map((p) => p.planned));
    removeWorkdirs();
  });

  describe.each(ENVIRONMENTS)("%s", (env) => {
    it(
      "terraform init (provider from the mirror) and validate succeed",
      { timeout: 180_000 },
      async () => {
        expect(await pipeline(env).validated).toMatch(/Success! The configuration is valid/);
      },
    );

    it(
      "orders the first apply: the instance after its subnet's routing, the mapping and the API URLs after their network",
      { timeout: 180_000 },
      async () => {
        const graph = await pipeline(env).graph;
        const instance: [string, string] = ["aws_instance", "access_instance"];
        expect(dependsOn(graph, instance, ["aws_route_table_association", "private-0-rt"])).toBe(
          true,
        );
        expect(dependsOn(graph, instance, ["aws_vpc_endpoint", "access_s3"])).toBe(true);
        const mapping: [string, string] = ["aws_lambda_event_source_mapping", "stream-mapping"];
        const rules: [string, string][] = [
          ["aws_vpc_security_group_egress_rule", "functions-to-memorydb"],
          ["aws_vpc_security_group_ingress_rule", "memorydb-from-functions"],
          ["aws_vpc_security_group_egress_rule", "functions-to-endpoints"],
          ["aws_vpc_security_group_ingress_rule", "endpoints-from-functions"],
          ["aws_vpc_endpoint", "sqs-endpoint"],
        ];
        for (const rule of rules) {
          expect(dependsOn(graph, mapping, rule), rule.join(" ")).toBe(true);
        }
        // Each API's URL appears once its function can reach MemoryDB; neither calls an AWS
        // API, so neither waits for the SQS endpoint.
        for (const api of ["read-api", "admin-api"]) {
          const url: [string, string] = ["aws_lambda_function_url", api];
          for (const rule of rules.slice(0, 4)) {
            expect(dependsOn(graph, url, rule), `${api} URL after ${rule.join(" ")}`).toBe(true);
          }
          expect(dependsOn(graph, url, ["aws_vpc_endpoint", "sqs-endpoint"])).toBe(false);
        }
        // The search is not trivially true: the association does not wait for the instance.
        const association: [string, string] = ["aws_route_table_association", "private-0-rt"];
        expect(dependsOn(graph, association, instance)).toBe(false);
      },
    );

    it(
      `plans exactly the ${PLANNED_COUNT[env]} resources of the design, with the key settings`,
      { timeout: 180_000 },
      async () => {
        const changes = await pipeline(env).planned;
        const byType: Record<string, number> = {};
        for (const c of changes) byType[c.type] = (byType[c.type] ?? 0) + 1;
        expect(byType).toEqual(PLANNED[env]);
        expect(changes.length).toBe(PLANNED_COUNT[env]);
        expect(new Set(changes.map((c) => c.change.actions.join("+")))).toEqual(
          new Set(["create"]),
        );
        const planned = (type: string, fragment = "") => {
          const found = changes.filter((c) => c.type === type && c.address.includes(fragment));
          expect(found, `${type} ${fragment}`).toHaveLength(1);
          return first(found, `${type} ${fragment}`).change.after;
        };
        const prefix = `sketchstream-${env}`;
        expect(planned("aws_memorydb_cluster")).toMatchObject({
          name: prefix,
          tls_enabled: true,
          engine: "valkey",
          engine_version: "7.2",
        });
        for (const role of ["consumer", "rollup", "reader", "registry-writer"]) {
          expect(planned("aws_memorydb_user", `user-${role}`)).toMatchObject({
            user_name: `${prefix}-${role}`,
            authentication_mode: [{ type: "iam" }],
          });
        }
        expect(planned("aws_kinesis_stream")).toMatchObject({
          encryption_type: "KMS",
          stream_mode_details: [{ stream_mode: "ON_DEMAND" }],
        });
        expect(planned("aws_lambda_event_source_mapping")).toMatchObject({
          starting_position: "TRIM_HORIZON",
          bisect_batch_on_function_error: true,
          function_response_types: ["ReportBatchItemFailures"],
          maximum_retry_attempts: 10,
        });
        expect(planned("aws_lambda_function", "consumer")).toMatchObject({
          runtime: "nodejs22.x",
          handler: "index.handler",
        });
        expect(planned("aws_lambda_function", "read-api")).toMatchObject({
          function_name: `${prefix}-read-api`,
          runtime: "nodejs22.x",
          handler: "index.handler",
          timeout: 10,
          memory_size: 256,
        });
        expect(planned("aws_lambda_function", "admin-api")).toMatchObject({
          function_name: `${prefix}-admin-api`,
          runtime: "nodejs22.x",
          handler: "index.handler",
        });
        for (const api of ["read-api", "admin-api"]) {
          expect(planned("aws_lambda_function_url", api)).toMatchObject({
            authorization_type: "AWS_IAM",
          });
          expect(planned("aws_cloudwatch_metric_alarm", `${api}_p99`)).toMatchObject({
            extended_statistic: "p99",
            threshold: 8000,
          });
        }
        expect(planned("aws_iam_policy", "admin-api")).toMatchObject({ name: `${prefix}-admin` });
        expect(planned("aws_scheduler_schedule")).toMatchObject({
          schedule_expression: "rate(1 hour)",
          state: "ENABLED",
        });
        // The definition is fully known at plan: the ARNs carry the account the data source read.
        const definition = parseJson(
          planned("aws_sfn_state_machine").definition,
          "planned aws_sfn_state_machine definition",
        );
        expect(dig(definition, "States.Plan.Resource", "definition")).toBe(
          `arn:aws:lambda:eu-west-1:${STUB_ACCOUNT}:function:${prefix}-rollup-plan`,
        );
        for (const c of changes.filter((x) => x.type === "aws_cloudwatch_log_group")) {
          expect(c.change.after.retention_in_days, c.address).toBe(env === "prod" ? 90 : 14);
        }
        // Plan validated the definition with Step Functions (the stub), and called nothing else.
        const validation = stub.validations.find((v) =>
          v.definition.includes(`${prefix}-rollup-plan`),
        );
        expect(validation?.result).toBe("OK");
        expect(stub.unexpected).toEqual([]);
        expect([...new Set(stub.calls.map((c) => c.operation))].sort()).toEqual([
          "AWSStepFunctions.ValidateStateMachineDefinition",
          "GetCallerIdentity",
          "Kinesis_20131202.DescribeLimits",
        ]);
      },
    );
  });

  it(
    "a definition Step Functions would refuse fails the plan with its diagnostics",
    { timeout: 180_000 },
    async () => {
      const w = prepareWorkdir(synth("dev").stackDir, mirror, "broken");
      editConfig(w.dir, (tf) => {
        // Only the provider and one state machine, whose Choice state lacks its Choices.
        tf.resource = {
          aws_sfn_state_machine: {
            broken: {
              name: "broken",
              role_arn: `arn:aws:iam::${STUB_ACCOUNT}:role/broken`,
              definition: JSON.stringify({
                StartAt: "Pick",
                States: { Pick: { Type: "Choice", Default: "Done" }, Done: { Type: "Succeed" } },
              }),
            },
          },
        };
        delete tf.data;
        delete tf.output;
      });
      offlineProvider(w.dir, stub.url);
      await terraformOk(w, ["init", "-input=false", "-no-color"]);
      const r = await terraform(w, [
        "plan",
        "-input=false",
        "-no-color",
        "-refresh=false",
        "-lock=false",
      ]);
      expect(r.code).not.toBe(0);
      // The provider reports the stub's diagnostics, i.e. asl-validator's verdict on the state.
      expect(r.stderr).toMatch(
        /invalid Step Functions State Machine definition: ERROR \(SCHEMA_VALIDATION_FAILED\): \/States\/Pick is invalid/,
      );
    },
  );
});
