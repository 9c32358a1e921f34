/**
 * Offline Terraform on the synthesized stacks: init from the machine's provider mirror,
 * validate, and plan with fake credentials against a loopback stub of the two APIs plan calls
 * (STS for the account id, Step Functions' ValidateStateMachineDefinition answered with
 * asl-validator's verdict). Asserts the exact planned resource count and key attributes.
 * Runs whenever terraform is on PATH; skips, saying why, only when it is not.
 */

import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type AwsStub, STUB_ACCOUNT, startAwsStub } from "./aws-stub.js";
import { ENVIRONMENTS, removeSynthOutputs, synth } from "./synth.js";
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

/** Resources each environment plans to create (prod has a third AZ: subnet + association). */
const PLANNED_COUNT: Record<string, number> = { dev: 69, prod: 71 };

interface PlannedResource {
  address: string;
  type: string;
  change: { actions: string[]; after: Record<string, unknown> };
}

interface Pipeline {
  validated: Promise<string>;
  planned: Promise<PlannedResource[]>;
}

const version = terraformVersion();
if (!version) {
  console.log("test/infra/terraform.test.ts skipped: terraform is not on PATH");
}

describe.skipIf(!version)(`offline terraform (${version})`, () => {
  let stub: AwsStub;
  let mirror: string;
  const pipelines: Record<string, Pipeline> = {};

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
      const planned = validated.then(async () => {
        offlineProvider(w.dir, stub.url);
        await terraformOk(w, [
          "plan",
          "-input=false",
          "-no-color",
          "-refresh=false",
          "-lock=false",
          "-out=plan.bin",
        ]);
        const show = JSON.parse(await terraformOk(w, ["show", "-json", "plan.bin"]));
        return show.resource_changes as PlannedResource[];
      });
      // Failures surface in the tests that await them, not as unhandled rejections.
      validated.catch(() => {});
      planned.catch(() => {});
      pipelines[env] = { validated, planned };
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
        expect(await pipelines[env]?.validated).toMatch(/Success! The configuration is valid/);
      },
    );

    it(
      `plans exactly ${PLANNED_COUNT[env]} resources to create, with the key settings`,
      { timeout: 180_000 },
      async () => {
        const changes = (await pipelines[env]?.planned) as PlannedResource[];
        expect(changes.length).toBe(PLANNED_COUNT[env]);
        expect(new Set(changes.map((c) => c.change.actions.join("+")))).toEqual(
          new Set(["create"]),
        );
        const planned = (type: string, fragment = "") => {
          const found = changes.filter((c) => c.type === type && c.address.includes(fragment));
          expect(found, `${type} ${fragment}`).toHaveLength(1);
          return (found[0] as PlannedResource).change.after;
        };
        const prefix = `sketchstream-${env}`;
        expect(planned("aws_memorydb_cluster")).toMatchObject({
          name: prefix,
          tls_enabled: true,
          engine: "valkey",
          engine_version: "7.2",
        });
        for (const role of ["consumer", "rollup", "reader"]) {
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
        expect(planned("aws_scheduler_schedule")).toMatchObject({
          schedule_expression: "rate(1 hour)",
          state: "ENABLED",
        });
        // The definition is fully known at plan: the ARNs carry the account the data source read.
        const definition = JSON.parse(planned("aws_sfn_state_machine").definition as string);
        expect(definition.States.Plan.Resource).toBe(
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
