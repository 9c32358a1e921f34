/**
 * IAM policy documents as typed TypeScript, rendered with JSON.stringify. Token strings (ARNs
 * of other resources) stay inside JSON strings, so the synthesized policy is a Terraform string
 * template that is plain JSON once its `${…}` references are resolved: the policy tests read it
 * as JSON without a Terraform evaluation, and no aws_iam_policy_document data source is needed.
 */

import { IamRole } from "@cdktf/provider-aws/lib/iam-role/index.js";
import { IamRolePolicy } from "@cdktf/provider-aws/lib/iam-role-policy/index.js";
import { Construct } from "constructs";

export interface Statement {
  readonly Sid?: string;
  readonly Effect: "Allow" | "Deny";
  readonly Principal?:
    | "*"
    | { readonly Service?: string | string[]; readonly AWS?: string | string[] };
  readonly Action: string | readonly string[];
  readonly Resource: string | readonly string[];
  readonly Condition?: Readonly<
    Record<string, Readonly<Record<string, string | readonly string[]>>>
  >;
}

export function policyDocument(statements: readonly Statement[]): string {
  return JSON.stringify({ Version: "2012-10-17", Statement: statements });
}

/** Partition-wide constants: the stack supports the commercial "aws" partition (config.ts). */
export const PARTITION = "aws";

export function arn(service: string, region: string, account: string, resource: string): string {
  return `arn:${PARTITION}:${service}:${region}:${account}:${resource}`;
}

/** Actions that only accept Resource "*": IAM has no resource type for them. */
export const UNSCOPABLE_ACTIONS: Readonly<Record<string, string>> = {
  "ec2:DescribeNetworkInterfaces": "Describe* calls have no resource type",
  "ec2:DescribeSubnets": "Describe* calls have no resource type",
  "ec2:DescribeInstances": "Describe* calls have no resource type",
  "ec2:DescribeInstanceConnectEndpoints": "Describe* calls have no resource type",
  // Lambda checks these on the execution role when it attaches a function to the VPC, before
  // any network interface (the only scopable resource) exists.
  "ec2:CreateNetworkInterface": "checked by Lambda before the interface exists",
  "ec2:DeleteNetworkInterface": "checked by Lambda before the interface exists",
  "ec2:AssignPrivateIpAddresses": "checked by Lambda before the interface exists",
  "ec2:UnassignPrivateIpAddresses": "checked by Lambda before the interface exists",
  "kinesis:ListStreams": "account-level list",
  "xray:PutTraceSegments": "X-Ray has no resource types for these",
  "xray:PutTelemetryRecords": "X-Ray has no resource types for these",
  "xray:GetSamplingRules": "X-Ray has no resource types for these",
  "xray:GetSamplingTargets": "X-Ray has no resource types for these",
  "logs:CreateLogDelivery": "vended-log delivery actions have no resource type",
  "logs:GetLogDelivery": "vended-log delivery actions have no resource type",
  "logs:UpdateLogDelivery": "vended-log delivery actions have no resource type",
  "logs:DeleteLogDelivery": "vended-log delivery actions have no resource type",
  "logs:ListLogDeliveries": "vended-log delivery actions have no resource type",
  "logs:PutResourcePolicy": "vended-log delivery actions have no resource type",
  "logs:DescribeResourcePolicies": "vended-log delivery actions have no resource type",
  "logs:DescribeLogGroups": "vended-log delivery actions have no resource type",
};

/** What every function in the VPC needs to get its network interfaces. */
export const LAMBDA_VPC_STATEMENT: Statement = {
  Sid: "VpcNetworkInterfaces",
  Effect: "Allow",
  Action: [
    "ec2:CreateNetworkInterface",
    "ec2:DescribeNetworkInterfaces",
    "ec2:DescribeSubnets",
    "ec2:DeleteNetworkInterface",
    "ec2:AssignPrivateIpAddresses",
    "ec2:UnassignPrivateIpAddresses",
  ],
  Resource: "*",
};

export const XRAY_STATEMENT: Statement = {
  Sid: "XRay",
  Effect: "Allow",
  Action: [
    "xray:PutTraceSegments",
    "xray:PutTelemetryRecords",
    "xray:GetSamplingRules",
    "xray:GetSamplingTargets",
  ],
  Resource: "*",
};

/** Log writes scoped to the given log groups (their ARNs, without the trailing ":*"). */
export function logWriteStatement(logGroupArns: readonly string[]): Statement {
  return {
    Sid: "WriteOwnLogs",
    Effect: "Allow",
    Action: ["logs:CreateLogStream", "logs:PutLogEvents"],
    // ":*" covers the group (CreateLogStream) and its streams (PutLogEvents).
    Resource: logGroupArns.map((a) => `${a}:*`),
  };
}

export function memorydbConnectStatement(clusterArn: string, userArn: string): Statement {
  // IAM authentication: the token is signed for the cluster and the user; both must be allowed.
  return {
    Sid: "MemoryDbConnect",
    Effect: "Allow",
    Action: "memorydb:Connect",
    Resource: [clusterArn, userArn],
  };
}

/** Denies any request that does not use TLS, for resource policies (SQS, SNS). */
export function denyInsecureTransport(actionPrefix: string, resource: string): Statement {
  return {
    Sid: "DenyInsecureTransport",
    Effect: "Deny",
    Principal: "*",
    Action: `${actionPrefix}:*`,
    Resource: resource,
    Condition: { Bool: { "aws:SecureTransport": "false" } },
  };
}

export interface ServiceRoleProps {
  readonly name: string;
  /** Service principal that assumes the role, e.g. lambda.amazonaws.com. */
  readonly service: string;
  readonly statements: readonly Statement[];
  /** Restricts the trust to calls made for this account (confused-deputy guard). */
  readonly sourceAccount?: string;
}

/** A role for one AWS service with one inline, least-privilege policy. */
export class ServiceRole extends Construct {
  readonly role: IamRole;
  readonly policy: IamRolePolicy;

  constructor(scope: Construct, id: string, props: ServiceRoleProps) {
    super(scope, id);
    const trust: Statement = {
      Effect: "Allow",
      Principal: { Service: props.service },
      Action: "sts:AssumeRole",
      Resource: "*",
      ...(props.sourceAccount
        ? { Condition: { StringEquals: { "aws:SourceAccount": props.sourceAccount } } }
        : {}),
    };
    // A trust policy has no Resource element; drop it from the shared Statement shape.
    const { Resource: _resource, ...trustStatement } = trust;
    this.role = new IamRole(this, "role", {
      name: props.name,
      assumeRolePolicy: JSON.stringify({ Version: "2012-10-17", Statement: [trustStatement] }),
    });
    this.policy = new IamRolePolicy(this, "policy", {
      name: props.name,
      role: this.role.id,
      policy: policyDocument(props.statements),
    });
  }
}
