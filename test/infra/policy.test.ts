/**
 * Policy as code: every rule over every synthesized resource of every environment. A failure
 * lists "<resource address>: <problem>". The last block feeds each rule a deliberately bad
 * resource, so a rule that silently passes everything would be caught.
 */

import { afterAll, describe, expect, it } from "vitest";
import {
  encryptedAtRest,
  functionUrlsRequireIam,
  ingressOnlyFromSecurityGroups,
  leastPrivilege,
  logRetention,
  noOpenIngress,
  noPlaintextSecrets,
  policyDocuments,
  RULES,
  tlsRequired,
} from "./rules.js";
import { ENVIRONMENTS, removeSynthOutputs, synth, type TfJson } from "./synth.js";

afterAll(removeSynthOutputs);

describe.each(ENVIRONMENTS)("policy rules, %s", (env) => {
  const s = synth(env);

  for (const [name, rule] of Object.entries(RULES)) {
    it(name, () => {
      expect(rule(s.tf)).toEqual([]);
    });
  }

  it("no plaintext secret in the synthesized JSON", () => {
    expect(noPlaintextSecrets(s.tf, s.json)).toEqual([]);
  });

  it("finds the policies it checks (the rules are not vacuous)", () => {
    const { docs, problems } = policyDocuments(s.tf);
    expect(problems).toEqual([]);
    const kinds = docs.map((d) => `${d.address.split(".")[0]}:${d.kind}`);
    // 6 roles (consumer, rollup functions, state machine, scheduler, read API, admin API),
    // their policies, the operator and admin policies, the key, 2 queue policies, the topic
    // policy, 2 endpoint policies.
    expect(kinds.filter((k) => k === "aws_iam_role:trust")).toHaveLength(6);
    expect(kinds.filter((k) => k === "aws_iam_role_policy:identity")).toHaveLength(6);
    expect(kinds.filter((k) => k === "aws_iam_policy:identity")).toHaveLength(2);
    expect(kinds).toContain("aws_kms_key:key");
    expect(kinds.filter((k) => k === "aws_sqs_queue_policy:resource")).toHaveLength(2);
    expect(kinds).toContain("aws_sns_topic_policy:resource");
    expect(kinds.filter((k) => k === "aws_vpc_endpoint:resource")).toHaveLength(2);
  });

  it("the function-URL rule sees both URLs, the read API's and the admin API's", () => {
    const urls = Object.keys(s.tf.resource.aws_lambda_function_url ?? {});
    expect(urls.map((name) => name.split("_")[0]).sort()).toEqual(["admin-api", "read-api"]);
    // Each URL, opened to anyone in a copy of the stack, is reported by its address.
    for (const name of urls) {
      const opened: TfJson = structuredClone(s.tf);
      const url = opened.resource.aws_lambda_function_url?.[name];
      if (!url) throw new Error(`no function URL ${name}`);
      url.authorization_type = "NONE";
      expect(functionUrlsRequireIam(opened)).toEqual([
        `aws_lambda_function_url.${name}: authorization_type NONE (not AWS_IAM: anyone who finds the URL can call it)`,
      ]);
    }
  });
});

/** A stack with one of each mistake the rules exist to catch. */
const BAD: TfJson = {
  terraform: {},
  provider: {},
  output: {},
  resource: {
    aws_vpc_security_group_ingress_rule: {
      open: { security_group_id: "sg", cidr_ipv4: "0.0.0.0/0", from_port: 22, to_port: 22 },
    },
    aws_security_group: {
      inline: { ingress: [{ cidr_blocks: [], ipv6_cidr_blocks: ["::/0"] }] },
    },
    aws_iam_role_policy: {
      star: {
        policy: JSON.stringify({
          Statement: [
            { Effect: "Allow", Action: "*", Resource: "arn:aws:s3:::b" },
            { Sid: "Wide", Effect: "Allow", Action: ["sqs:SendMessage"], Resource: "*" },
            { Effect: "Allow", Action: ["xray:PutTraceSegments"], Resource: "*" },
          ],
        }),
      },
    },
    aws_memorydb_cluster: { plain: { tls_enabled: false } },
    aws_kinesis_stream: { plain: { encryption_type: "NONE" } },
    aws_sqs_queue: { plain: { name: "q" } },
    aws_sns_topic: { managed: { kms_master_key_id: "alias/aws/sns" } },
    aws_cloudwatch_log_group: { forever: { name: "/x" } },
    aws_memorydb_user: {
      pw: { authentication_mode: { type: "password", passwords: ["hunter2hunter2hunter2"] } },
    },
    aws_lambda_function: {
      f: {
        environment: {
          variables: { REDIS_ENDPOINT: "h:1", REDIS_TLS: "false", REDIS_AUTH: "password" },
        },
        logging_config: { log_group: "/aws/lambda/f" },
      },
    },
    aws_lambda_function_url: {
      public: { function_name: "f", authorization_type: "NONE" },
      signed: { function_name: "f", authorization_type: "AWS_IAM" },
    },
    aws_lambda_permission: {
      anyone: {
        function_name: "f",
        action: "lambda:InvokeFunctionUrl",
        principal: "*",
        function_url_auth_type: "NONE",
      },
    },
  },
};

describe("the rules report what they exist to catch, with the resource address", () => {
  it("open ingress", () => {
    expect(noOpenIngress(BAD)).toEqual([
      "aws_vpc_security_group_ingress_rule.open: cidr_ipv4 0.0.0.0/0",
      "aws_security_group.inline: inline ingress from ::/0",
    ]);
    expect(ingressOnlyFromSecurityGroups(BAD)).toEqual([
      "aws_vpc_security_group_ingress_rule.open: ingress not restricted to a security group",
    ]);
  });

  it("wildcard actions and resources, but not the unscopable X-Ray action", () => {
    expect(leastPrivilege(BAD)).toEqual([
      'aws_iam_role_policy.star: policy statement 0: Action "*" or NotAction',
      'aws_iam_role_policy.star: policy statement Wide: Resource "*" for sqs:SendMessage',
    ]);
  });

  it("missing encryption", () => {
    expect(encryptedAtRest(BAD)).toEqual([
      "aws_memorydb_cluster.plain: kms_key_arn is not the stack's key",
      "aws_kinesis_stream.plain: not KMS-encrypted with the stack's key",
      "aws_sqs_queue.plain: kms_master_key_id is not the stack's key",
      "aws_sns_topic.managed: kms_master_key_id is not the stack's key",
      "aws_cloudwatch_log_group.forever: kms_key_id is not the stack's key",
    ]);
  });

  it("TLS not required", () => {
    expect(tlsRequired(BAD)).toEqual([
      "aws_memorydb_cluster.plain: tls_enabled is not true",
      "aws_sqs_queue.plain: no policy denies requests without TLS (aws:SecureTransport)",
      "aws_sns_topic.managed: no policy denies requests without TLS (aws:SecureTransport)",
      'aws_lambda_function.f: REDIS_TLS is not "true"',
    ]);
  });

  it("secrets", () => {
    const json = JSON.stringify(BAD);
    expect(noPlaintextSecrets(BAD, json)).toEqual([
      'cdk.tf.json: contains a password or secret argument ("passwords":…)',
      "aws_memorydb_user.pw: authentication_mode is not iam",
      "aws_lambda_function.f: REDIS_AUTH is not iam",
    ]);
    expect(noPlaintextSecrets(BAD, '{"k":"AKIAABCDEFGHIJKLMNOP"}')[0]).toMatch(/access key id/);
  });

  it("function URLs open to anyone, but not the one that requires IAM", () => {
    expect(functionUrlsRequireIam(BAD)).toEqual([
      "aws_lambda_function_url.public: authorization_type NONE (not AWS_IAM: anyone who finds the URL can call it)",
      "aws_lambda_permission.anyone: grants invocation through a function URL without IAM auth",
    ]);
  });

  it("log groups without retention and functions without a declared group", () => {
    expect(logRetention(BAD)).toEqual([
      "aws_cloudwatch_log_group.forever: retention_in_days undefined (never expires or invalid)",
      "aws_lambda_function.f: logs to a group the stack does not declare (Lambda would create one without retention)",
    ]);
  });
});
