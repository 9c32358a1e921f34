/**
 * Operator access to redis-cli with no port open to the internet:
 *
 *   workstation --(AWS API, IAM)--> EC2 Instance Connect Endpoint --22/tcp--> operator
 *   instance (private subnet, no public IP) --6379/tcp TLS--> MemoryDB
 *
 * The instance (Amazon Linux 2023, IMDSv2 only, encrypted root volume, no instance profile: it
 * needs no AWS permission) installs redis-cli with TLS from the Amazon Linux repositories,
 * which live in S3 and are reached through an S3 gateway endpoint whose policy allows only
 * those buckets — no NAT gateway. Its AMI is resolved by EC2 at launch from the public SSM
 * parameter, so plan makes no AMI look-up.
 *
 * The operator policy (attach it to the people or roles that operate the stack) allows
 * exactly the operator's actions: connect through this endpoint to this instance, get a
 * MemoryDB token for the read-only `reader` user, send test events, start and watch rollups.
 */

import { Ec2InstanceConnectEndpoint } from "@cdktf/provider-aws/lib/ec2-instance-connect-endpoint/index.js";
import { IamPolicy } from "@cdktf/provider-aws/lib/iam-policy/index.js";
import { Instance } from "@cdktf/provider-aws/lib/instance/index.js";
import { LaunchTemplate } from "@cdktf/provider-aws/lib/launch-template/index.js";
import { SecurityGroup } from "@cdktf/provider-aws/lib/security-group/index.js";
import { VpcEndpoint } from "@cdktf/provider-aws/lib/vpc-endpoint/index.js";
import { VpcSecurityGroupEgressRule } from "@cdktf/provider-aws/lib/vpc-security-group-egress-rule/index.js";
import { VpcSecurityGroupIngressRule } from "@cdktf/provider-aws/lib/vpc-security-group-ingress-rule/index.js";
import { Fn } from "cdktf";
import { Construct } from "constructs";
import type { SketchstreamConfig } from "./config.js";
import { arn, memorydbConnectStatement, policyDocument, type Statement } from "./policy.js";

/** Bucket of the Amazon Linux 2023 package repositories of a region (AL2023 user guide). */
export function al2023RepoBucket(region: string): string {
  return `al2023-repos-${region}-de612dc2`;
}

/** Installs a TLS-capable redis-cli: valkey-cli where the repository has it, else redis6-cli. */
export const USER_DATA = `#!/bin/bash
set -euo pipefail
if dnf install -y valkey; then
  ln -sf /usr/bin/valkey-cli /usr/local/bin/redis-cli
else
  dnf install -y redis6
  ln -sf /usr/bin/redis6-cli /usr/local/bin/redis-cli
fi
redis-cli --version > /etc/motd.d/30-redis-cli 2>&1 || true
`;

export interface AccessProps {
  readonly config: SketchstreamConfig;
  readonly accountId: string;
  readonly vpcId: string;
  readonly subnetId: string;
  readonly routeTableIds: readonly string[];
  readonly memorydbSecurityGroupId: string;
  readonly redis: { readonly clusterArn: string; readonly readerUserArn: string };
  readonly streamArn: string;
  readonly kmsKeyArn: string;
  readonly stateMachineArn: string;
  readonly stateMachineName: string;
}

export class Access extends Construct {
  readonly instance?: Instance;
  readonly endpoint?: Ec2InstanceConnectEndpoint;
  readonly operatorPolicy: IamPolicy;

  constructor(scope: Construct, id: string, props: AccessProps) {
    super(scope, id);
    const { config } = props;
    const prefix = config.namePrefix;
    const region = config.region;

    const statements: Statement[] = [
      memorydbConnectStatement(props.redis.clusterArn, props.redis.readerUserArn),
      {
        Sid: "SendTestEvents",
        Effect: "Allow",
        Action: ["kinesis:PutRecord", "kinesis:PutRecords", "kinesis:DescribeStreamSummary"],
        Resource: props.streamArn,
      },
      {
        Sid: "EncryptTestEvents",
        Effect: "Allow",
        Action: "kms:GenerateDataKey",
        Resource: props.kmsKeyArn,
        Condition: { StringEquals: { "kms:ViaService": `kinesis.${region}.amazonaws.com` } },
      },
      {
        Sid: "StartRollups",
        Effect: "Allow",
        Action: "states:StartExecution",
        Resource: props.stateMachineArn,
      },
      {
        Sid: "WatchRollups",
        Effect: "Allow",
        Action: ["states:DescribeExecution", "states:GetExecutionHistory", "states:StopExecution"],
        Resource: arn("states", region, props.accountId, `execution:${props.stateMachineName}:*`),
      },
    ];

    if (config.access.enabled) {
      const s3 = new VpcEndpoint(this, "s3", {
        vpcId: props.vpcId,
        serviceName: `com.amazonaws.${region}.s3`,
        vpcEndpointType: "Gateway",
        routeTableIds: [...props.routeTableIds],
        policy: policyDocument([
          {
            Sid: "AmazonLinuxRepositoriesOnly",
            Effect: "Allow",
            Principal: "*",
            Action: "s3:GetObject",
            Resource: `arn:aws:s3:::${al2023RepoBucket(region)}/*`,
          },
        ]),
        tags: { Name: `${prefix}-s3` },
      });

      const instanceSg = new SecurityGroup(this, "instance-sg", {
        name: `${prefix}-operator`,
        description: `${prefix}: operator instance (SSH from the Instance Connect Endpoint only)`,
        vpcId: props.vpcId,
        tags: { Name: `${prefix}-operator` },
      });
      const endpointSg = new SecurityGroup(this, "eice-sg", {
        name: `${prefix}-eice`,
        description: `${prefix}: EC2 Instance Connect Endpoint (SSH to the operator instance)`,
        vpcId: props.vpcId,
        tags: { Name: `${prefix}-eice` },
      });
      const port = config.memorydb.port;
      new VpcSecurityGroupIngressRule(this, "instance-from-eice", {
        securityGroupId: instanceSg.id,
        referencedSecurityGroupId: endpointSg.id,
        ipProtocol: "tcp",
        fromPort: 22,
        toPort: 22,
        description: "SSH from the EC2 Instance Connect Endpoint",
      });
      new VpcSecurityGroupEgressRule(this, "eice-to-instance", {
        securityGroupId: endpointSg.id,
        referencedSecurityGroupId: instanceSg.id,
        ipProtocol: "tcp",
        fromPort: 22,
        toPort: 22,
        description: "SSH to the operator instance",
      });
      new VpcSecurityGroupEgressRule(this, "instance-to-memorydb", {
        securityGroupId: instanceSg.id,
        referencedSecurityGroupId: props.memorydbSecurityGroupId,
        ipProtocol: "tcp",
        fromPort: port,
        toPort: port,
        description: "redis-cli over TLS to MemoryDB",
      });
      new VpcSecurityGroupIngressRule(this, "memorydb-from-instance", {
        securityGroupId: props.memorydbSecurityGroupId,
        referencedSecurityGroupId: instanceSg.id,
        ipProtocol: "tcp",
        fromPort: port,
        toPort: port,
        description: "redis-cli over TLS from the operator instance",
      });
      const toS3 = new VpcSecurityGroupEgressRule(this, "instance-to-s3", {
        securityGroupId: instanceSg.id,
        prefixListId: s3.prefixListId,
        ipProtocol: "tcp",
        fromPort: 443,
        toPort: 443,
        description: "HTTPS to S3 (Amazon Linux package repositories) via the gateway endpoint",
      });

      this.endpoint = new Ec2InstanceConnectEndpoint(this, "eice", {
        subnetId: props.subnetId,
        securityGroupIds: [endpointSg.id],
        preserveClientIp: false,
        tags: { Name: `${prefix}-eice` },
      });

      const amiArch = config.access.architecture === "arm64" ? "arm64" : "x86_64";
      const template = new LaunchTemplate(this, "template", {
        name: `${prefix}-operator`,
        // EC2 resolves the parameter at launch: the current AL2023 AMI, with no plan-time call.
        imageId: `resolve:ssm:/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-${amiArch}`,
        instanceType: config.access.instanceType,
        metadataOptions: {
          httpEndpoint: "enabled",
          httpTokens: "required",
          httpPutResponseHopLimit: 1,
        },
        blockDeviceMappings: [
          {
            deviceName: "/dev/xvda",
            ebs: {
              encrypted: "true",
              volumeSize: 8,
              volumeType: "gp3",
              deleteOnTermination: "true",
            },
          },
        ],
        userData: Fn.base64encode(USER_DATA),
        updateDefaultVersion: true,
      });
      this.instance = new Instance(this, "instance", {
        launchTemplate: { id: template.id, version: `${template.latestVersion}` },
        subnetId: props.subnetId,
        vpcSecurityGroupIds: [instanceSg.id],
        associatePublicIpAddress: false,
        tags: { Name: `${prefix}-operator` },
        // The user data installs redis-cli once, at first boot: the S3 route and the egress
        // rule to it must exist by then.
        dependsOn: [s3, toS3],
      });

      statements.push(
        {
          Sid: "TunnelThroughEndpoint",
          Effect: "Allow",
          Action: "ec2-instance-connect:OpenTunnel",
          Resource: this.endpoint.arn,
          Condition: { NumericEquals: { "ec2-instance-connect:remotePort": "22" } },
        },
        {
          Sid: "PushSshKeyToOperatorInstance",
          Effect: "Allow",
          Action: "ec2-instance-connect:SendSSHPublicKey",
          Resource: arn("ec2", region, props.accountId, `instance/${this.instance.id}`),
          Condition: { StringEquals: { "ec2:osuser": "ec2-user" } },
        },
        {
          Sid: "FindInstanceAndEndpoint",
          Effect: "Allow",
          Action: ["ec2:DescribeInstances", "ec2:DescribeInstanceConnectEndpoints"],
          Resource: "*",
        },
      );
    }

    this.operatorPolicy = new IamPolicy(this, "operator-policy", {
      name: `${prefix}-operator`,
      description: `${prefix}: read counts with redis-cli (reader), send test events, run rollups`,
      policy: policyDocument(statements),
    });
  }
}
