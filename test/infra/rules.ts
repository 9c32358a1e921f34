/**
 * Policy-as-code rules over a synthesized stack. Each rule returns its violations as
 * "<resource address>: <what is wrong>", so a failing test names the resource to fix.
 * The rules read the synthesized JSON only; policies are JSON strings whose `${…}` references
 * sit inside string values (stacks/policy.ts), so they parse without evaluating Terraform.
 */

import { LOG_RETENTION_DAYS } from "../../stacks/config.js";
import { UNSCOPABLE_ACTIONS } from "../../stacks/policy.js";
import { objs, peek, policyDocument, resources, strs, type TfJson } from "./synth.js";

type Violation = string;

const OPEN_CIDRS = ["0.0.0.0/0", "::/0"];

function list(value: unknown): unknown[] {
  if (value === undefined || value === null) return [];
  return Array.isArray(value) ? value : [value];
}

function isOpenCidr(cidr: unknown): boolean {
  return typeof cidr === "string" && OPEN_CIDRS.includes(cidr);
}

/** Rule: no ingress from the internet, in any of the ways the provider can express one. */
export function noOpenIngress(tf: TfJson): Violation[] {
  const out: Violation[] = [];
  for (const [address, type, body] of resources(tf)) {
    if (type === "aws_vpc_security_group_ingress_rule") {
      for (const field of ["cidr_ipv4", "cidr_ipv6"]) {
        if (isOpenCidr(body[field])) out.push(`${address}: ${field} ${body[field]}`);
      }
    }
    if (type === "aws_security_group_rule" && body.type === "ingress") {
      for (const cidr of [...list(body.cidr_blocks), ...list(body.ipv6_cidr_blocks)]) {
        if (isOpenCidr(cidr)) out.push(`${address}: ingress from ${cidr}`);
      }
    }
    if (type === "aws_security_group" || type === "aws_default_security_group") {
      for (const rule of objs(list(body.ingress), `${address} ingress`)) {
        for (const cidr of [...list(rule.cidr_blocks), ...list(rule.ipv6_cidr_blocks)]) {
          if (isOpenCidr(cidr)) out.push(`${address}: inline ingress from ${cidr}`);
        }
      }
    }
  }
  return out;
}

/** Rule (stricter): every ingress rule admits a security group, never an address range. */
export function ingressOnlyFromSecurityGroups(tf: TfJson): Violation[] {
  return resources(tf)
    .filter(([, type]) => type === "aws_vpc_security_group_ingress_rule")
    .filter(([, , body]) => typeof body.referenced_security_group_id !== "string")
    .map(([address]) => `${address}: ingress not restricted to a security group`);
}

export interface PolicyDoc {
  readonly address: string;
  /** Which attribute held it, e.g. "policy" or "assume_role_policy". */
  readonly field: string;
  readonly kind: "identity" | "resource" | "trust" | "key";
  readonly statements: Record<string, unknown>[];
}

const POLICY_FIELDS: Record<string, { field: string; kind: PolicyDoc["kind"] }[]> = {
  aws_iam_role: [{ field: "assume_role_policy", kind: "trust" }],
  aws_iam_role_policy: [{ field: "policy", kind: "identity" }],
  aws_iam_policy: [{ field: "policy", kind: "identity" }],
  aws_kms_key: [{ field: "policy", kind: "key" }],
  aws_sqs_queue_policy: [{ field: "policy", kind: "resource" }],
  aws_sqs_queue: [{ field: "policy", kind: "resource" }],
  aws_sns_topic_policy: [{ field: "policy", kind: "resource" }],
  aws_sns_topic: [{ field: "policy", kind: "resource" }],
  aws_vpc_endpoint: [{ field: "policy", kind: "resource" }],
};

/** Every policy document of the stack; one that is not JSON is itself reported as a problem. */
export function policyDocuments(tf: TfJson): { docs: PolicyDoc[]; problems: Violation[] } {
  const docs: PolicyDoc[] = [];
  const problems: Violation[] = [];
  for (const [address, type, body] of resources(tf)) {
    for (const { field, kind } of POLICY_FIELDS[type] ?? []) {
      const text = body[field];
      if (text === undefined) continue;
      try {
        // One statement or a list of them, each an object.
        const { Statement } = policyDocument(text, `${address} ${field}`);
        const statements = objs(list(Statement), `${address} ${field} Statement`);
        docs.push({ address, field, kind, statements });
      } catch {
        problems.push(`${address}: ${field} is not a JSON policy document`);
      }
    }
    // Policies attached as managed-policy ARNs would escape these checks.
    if (
      type === "aws_iam_role_policy_attachment" ||
      (type === "aws_iam_role" && body.managed_policy_arns)
    ) {
      problems.push(`${address}: attaches a managed policy the rules cannot inspect`);
    }
  }
  return { docs, problems };
}

/**
 * Rule: no Action "*" anywhere; no Allow with Resource "*" unless every action is one IAM
 * cannot scope (stacks/policy.ts UNSCOPABLE_ACTIONS). Key policies are exempt from the
 * Resource rule only: there "*" means the key itself. Trust policies have no Resource.
 */
export function leastPrivilege(tf: TfJson): Violation[] {
  const { docs, problems } = policyDocuments(tf);
  const out = [...problems];
  for (const doc of docs) {
    doc.statements.forEach((s, i) => {
      const where = `${doc.address}: ${doc.field} statement ${s.Sid ?? i}`;
      const actions = strs(list(s.Action), `${where}: Action`);
      if (actions.includes("*") || list(s.NotAction).length > 0) {
        out.push(`${where}: Action "*" or NotAction`);
      }
      if (s.Effect !== "Allow" || doc.kind === "key" || doc.kind === "trust") return;
      if (list(s.Resource).includes("*")) {
        const scopable = actions.filter((a) => !(a in UNSCOPABLE_ACTIONS));
        if (scopable.length > 0) out.push(`${where}: Resource "*" for ${scopable.join(", ")}`);
      }
      if (list(s.NotResource).length > 0) out.push(`${where}: NotResource`);
    });
  }
  return out;
}

/** Rule: encryption at rest with a customer-managed key wherever the resource supports it. */
export function encryptedAtRest(tf: TfJson): Violation[] {
  const out: Violation[] = [];
  const cmk = (value: unknown) => typeof value === "string" && value.startsWith("${aws_kms_key.");
  for (const [address, type, body] of resources(tf)) {
    switch (type) {
      case "aws_memorydb_cluster":
        if (!cmk(body.kms_key_arn)) out.push(`${address}: kms_key_arn is not the stack's key`);
        break;
      case "aws_kinesis_stream":
        if (body.encryption_type !== "KMS" || !cmk(body.kms_key_id)) {
          out.push(`${address}: not KMS-encrypted with the stack's key`);
        }
        break;
      case "aws_sqs_queue":
        if (!cmk(body.kms_master_key_id))
          out.push(`${address}: kms_master_key_id is not the stack's key`);
        break;
      case "aws_sns_topic":
        // The AWS-managed alias/aws/sns key cannot be used by CloudWatch: alarms would be lost.
        if (!cmk(body.kms_master_key_id))
          out.push(`${address}: kms_master_key_id is not the stack's key`);
        break;
      case "aws_cloudwatch_log_group":
        if (!cmk(body.kms_key_id)) out.push(`${address}: kms_key_id is not the stack's key`);
        break;
      case "aws_launch_template":
        for (const bdm of objs(
          list(body.block_device_mappings),
          `${address} block_device_mappings`,
        )) {
          const [ebs] = list(bdm.ebs);
          if (String(peek(ebs, "encrypted")) !== "true")
            out.push(`${address}: EBS volume not encrypted`);
        }
        break;
      case "aws_instance":
        if (body.launch_template === undefined) {
          out.push(`${address}: instance without the launch template that encrypts its volume`);
        }
        break;
      case "aws_kms_key":
        if (body.enable_key_rotation !== true) out.push(`${address}: key rotation off`);
        break;
    }
  }
  return out;
}

/** Rule: TLS required on every data path: MemoryDB, every function's client, SQS and SNS. */
export function tlsRequired(tf: TfJson): Violation[] {
  const out: Violation[] = [];
  const denied = new Map<string, unknown[]>();
  const { docs } = policyDocuments(tf);
  for (const doc of docs) {
    for (const s of doc.statements) {
      if (s.Effect === "Deny" && peek(s.Condition, "Bool.aws:SecureTransport") === "false") {
        denied.set(doc.address, list(s.Resource));
      }
    }
  }
  for (const [address, type, body] of resources(tf)) {
    if (type === "aws_memorydb_cluster" && body.tls_enabled !== true) {
      out.push(`${address}: tls_enabled is not true`);
    }
    if (type === "aws_lambda_function") {
      const vars = peek(body, "environment.variables");
      if (peek(vars, "REDIS_ENDPOINT") !== undefined && peek(vars, "REDIS_TLS") !== "true") {
        out.push(`${address}: REDIS_TLS is not "true"`);
      }
    }
    if (type === "aws_sqs_queue" || type === "aws_sns_topic") {
      // A queue or topic is covered when some policy denies non-TLS requests on its ARN.
      const name = address.slice(type.length + 1);
      const covered = [...denied.values()].some((res) =>
        res.some((r) => r === `\${${type}.${name}.arn}`),
      );
      if (!covered)
        out.push(`${address}: no policy denies requests without TLS (aws:SecureTransport)`);
    }
  }
  return out;
}

const SECRET_PATTERNS: [RegExp, string][] = [
  [/AKIA[0-9A-Z]{16}/, "an AWS access key id"],
  [/-----BEGIN [A-Z ]*PRIVATE KEY-----/, "a private key"],
  [
    /"(password|passwords|secret_key|secret_string|auth_token)"\s*:/i,
    "a password or secret argument",
  ],
  [/REDIS_PASSWORD"\s*:/, "a Redis password in a function's environment"],
];

/** Rule: no plaintext secret anywhere in the synthesized JSON, and no resource that holds one. */
export function noPlaintextSecrets(tf: TfJson, json: string): Violation[] {
  const out: Violation[] = [];
  for (const [re, what] of SECRET_PATTERNS) {
    const m = re.exec(json);
    if (m) out.push(`cdk.tf.json: contains ${what} (${m[0].slice(0, 24)}…)`);
  }
  for (const [address, type, body] of resources(tf)) {
    if (
      ["aws_secretsmanager_secret_version", "random_password", "aws_ssm_parameter"].includes(type)
    ) {
      out.push(`${address}: stores a secret value in Terraform state`);
    }
    if (type === "aws_memorydb_user") {
      const [mode] = list(body.authentication_mode);
      if (peek(mode, "type") !== "iam") out.push(`${address}: authentication_mode is not iam`);
    }
    if (type === "aws_lambda_function") {
      const vars = peek(body, "environment.variables");
      if (peek(vars, "REDIS_ENDPOINT") !== undefined && peek(vars, "REDIS_AUTH") !== "iam") {
        out.push(`${address}: REDIS_AUTH is not iam`);
      }
    }
  }
  for (const type of Object.keys(tf.data ?? {})) {
    if (/password|secret/.test(type)) out.push(`data.${type}: reads a secret during plan`);
  }
  return out;
}

/** Rule: every log group has an allowed retention, and every log writer has its own group. */
export function logRetention(tf: TfJson): Violation[] {
  const out: Violation[] = [];
  const groups = new Set<string>();
  for (const [address, type, body] of resources(tf)) {
    if (type !== "aws_cloudwatch_log_group") continue;
    groups.add(address);
    const days = body.retention_in_days;
    if (!LOG_RETENTION_DAYS.some((allowed) => allowed === days)) {
      out.push(`${address}: retention_in_days ${String(days)} (never expires or invalid)`);
    }
  }
  const refersToGroup = (value: unknown) =>
    typeof value === "string" && [...groups].some((g) => value.startsWith(`\${${g}.`));
  for (const [address, type, body] of resources(tf)) {
    if (type === "aws_lambda_function") {
      if (!refersToGroup(peek(body, "logging_config.log_group"))) {
        out.push(
          `${address}: logs to a group the stack does not declare (Lambda would create one without retention)`,
        );
      }
    }
    if (type === "aws_sfn_state_machine") {
      if (!refersToGroup(peek(body, "logging_configuration.log_destination"))) {
        out.push(`${address}: no logging to a declared log group`);
      }
    }
  }
  return out;
}

/**
 * Rule: every Lambda function URL requires IAM auth (SigV4-signed requests of principals a
 * policy allows), and no resource-based permission opens one to unauthenticated callers.
 * A URL with authorization_type NONE is a public endpoint to the data.
 */
export function functionUrlsRequireIam(tf: TfJson): Violation[] {
  const out: Violation[] = [];
  for (const [address, type, body] of resources(tf)) {
    if (type === "aws_lambda_function_url" && body.authorization_type !== "AWS_IAM") {
      out.push(
        `${address}: authorization_type ${String(body.authorization_type)} (not AWS_IAM: anyone who finds the URL can call it)`,
      );
    }
    if (type === "aws_lambda_permission" && body.function_url_auth_type === "NONE") {
      out.push(`${address}: grants invocation through a function URL without IAM auth`);
    }
  }
  return out;
}

export const RULES = {
  "no security-group ingress from 0.0.0.0/0 or ::/0": (tf: TfJson) => noOpenIngress(tf),
  "ingress only from security groups": (tf: TfJson) => ingressOnlyFromSecurityGroups(tf),
  'no IAM Action "*", no Resource "*" where the service can scope': (tf: TfJson) =>
    leastPrivilege(tf),
  "encryption at rest with the stack's KMS key": (tf: TfJson) => encryptedAtRest(tf),
  "TLS required": (tf: TfJson) => tlsRequired(tf),
  "every log group has retention": (tf: TfJson) => logRetention(tf),
  "no function URL without IAM auth": (tf: TfJson) => functionUrlsRequireIam(tf),
} as const;
