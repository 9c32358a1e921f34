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
 * MemoryDB token for the read-only `reader` user, call the read API's function URL, send test
 * events, start and watch rollups, and redrive (`npm run cli -- redrive`: read and delete the
 * consumer's failure and quarantine queues, read the stream back, invoke the consumer with
 * the original records). It grants nothing on the admin API: that function has its own policy
 * (api.ts), attached only to the people who may change a site's settings.
 */

import { Ec2InstanceConnectEndpoint } from "@cdktf/provider-aws/lib/ec2-instance-connect-endpoint/index.js";
import { IamPolicy } from "@cdktf/provider-aws/lib/iam-policy/index.js";
import { Instance } from "@cdktf/provider-aws/lib/instance/index.js";
import { LaunchTemplate } from "@cdktf/provider-aws/lib/launch-template/index.js";
import { SecurityGroup } from "@cdktf/provider-aws/lib/security-group/index.js";
import { VpcEndpoint } from "@cdktf/provider-aws/lib/vpc-endpoint/index.js";
import { VpcSecurityGroupEgressRule } from "@cdktf/provider-aws/lib/vpc-security-group-egress-rule/index.js";
import { VpcSecurityGroupIngressRule } from "@cdktf/provider-aws/lib/vpc-security-group-ingress-rule/index.js";
import { Fn, type ITerraformDependable } from "cdktf";
import { Construct } from "constructs";
import { urlCallerStatements } from "./api.js";
import type { SketchstreamConfig } from "./config.js";
import { arn, memorydbConnectStatement, policyDocument, type Statement } from "./policy.js";

/** Bucket of the Amazon Linux 2023 package repositories of a region (AL2023 user guide). */
export function al2023RepoBucket(region: string): string {
  return `al2023-repos-${region}-de612dc2`;
}

/** Attempts to install redis-cli at first boot before giving up, 20 s more apart each time. */
export const INSTALL_ATTEMPTS = 6;

/**
 * First-boot script: a TLS-capable redis-cli (valkey-cli where the repository has it, else
 * redis6-cli). dnf can be killed for memory on small instances, so a 1 GiB swap file comes
 * first; the repositories may not answer at once, so the install is retried. The outcome is in
 * the login banner and in /var/log/cloud-init-output.log (`cloud-init status --wait` exits
 * non-zero when it failed). Every file is written through a command (tee, ln), never a shell
 * redirection, so a test can run the script against stand-ins of those commands.
 */
export const USER_DATA = `#!/bin/bash
set -uo pipefail
if [ -z "$(swapon --show=NAME --noheadings)" ]; then
  dd if=/dev/zero of=/swapfile bs=1M count=1024 status=none &&
    chmod 600 /swapfile && mkswap /swapfile && swapon /swapfile &&
    echo '/swapfile none swap sw 0 0' | tee -a /etc/fstab
fi
install_redis_cli() {
  if dnf install -y valkey; then
    ln -sf /usr/bin/valkey-cli /usr/local/bin/redis-cli
  else
    dnf install -y redis6 && ln -sf /usr/bin/redis6-cli /usr/local/bin/redis-cli
  fi
}
for attempt in $(seq 1 ${INSTALL_ATTEMPTS}); do
  if install_redis_cli; then
    redis-cli --version | tee /etc/motd.d/30-redis-cli
    exit 0
  fi
  echo "redis-cli install attempt $attempt of ${INSTALL_ATTEMPTS} failed; retrying in $((attempt * 20)) s"
  dnf clean metadata
  sleep $((attempt * 20))
done
echo "redis-cli is not installed: see /var/log/cloud-init-output.log" | tee /etc/motd.d/30-redis-cli
exit 1
`;

export interface AccessProps {
  readonly config: SketchstreamConfig;
  readonly accountId: string;
  readonly vpcId: string;
  readonly subnetId: string;
  /** The subnet's route-table association: the S3 route must be in place at first boot. */
  readonly subnetRouting: ITerraformDependable;
  readonly routeTableIds: readonly string[];
  readonly memorydbSecurityGroupId: string;
  readonly redis: { readonly clusterArn: string; readonly readerUserArn: string };
  readonly streamArn: string;
  readonly kmsKeyArn: string;
  readonly stateMachineArn: string;
  readonly stateMachineName: string;
  /**
   * The read API's function (api.ts): operators may call its AWS_IAM function URL. The admin
   * API is deliberately not here.
   */
  readonly readApiFunctionArn: string;
  /** `redrive`: the consumer function (invoked with the original records) and its queues. */
  readonly redrive: {
    readonly consumerFunctionArn: string;
    readonly failureQueueArn: string;
    readonly quarantineQueueArn: string;
  };
}

export class Access extends Construct {
  readonly instance?: Instance;
  readonly endpoint?: Ec2InstanceConnectEndpoint;
  readonly operatorPolicy: IamPolicy;

  constructor(scope: Construct, id: string, props: AccessProps) {
    super(scope, id);
    const { config } = props;
    const statements = operatorStatements(props);
    if (config.access.enabled) {
      const repositories = this.repositoriesEndpoint(props);
      const groups = this.securityGroups(props, repositories);
      this.endpoint = new Ec2InstanceConnectEndpoint(this, "eice", {
        subnetId: props.subnetId,
        securityGroupIds: [groups.endpoint.id],
        preserveClientIp: false,
        tags: { Name: `${config.namePrefix}-eice` },
      });
      this.instance = this.operatorInstance(props, groups.instance, [
        // The user data installs redis-cli at first boot: the subnet's route to S3 and the
        // egress rule to it must exist by then.
        props.subnetRouting,
        repositories,
        groups.toRepositories,
      ]);
      statements.push(...connectStatements(props, this.endpoint, this.instance));
    }
    this.operatorPolicy = new IamPolicy(this, "operator-policy", {
      name: `${config.namePrefix}-operator`,
      description: `${config.namePrefix}: read counts with redis-cli (reader) and the read API, send test events, run rollups`,
      policy: policyDocument(statements),
    });
  }

  /** The S3 gateway endpoint, limited to the Amazon Linux repositories. */
  private repositoriesEndpoint(props: AccessProps): VpcEndpoint {
    const region = props.config.region;
    return new VpcEndpoint(this, "s3", {
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
      tags: { Name: `${props.config.namePrefix}-s3` },
    });
  }

  /** SSH only from the endpoint, Redis over TLS and HTTPS to the repositories out. */
  private securityGroups(props: AccessProps, repositories: VpcEndpoint) {
    const prefix = props.config.namePrefix;
    const instance = new SecurityGroup(this, "instance-sg", {
      name: `${prefix}-operator`,
      description: `${prefix}: operator instance (SSH from the Instance Connect Endpoint only)`,
      vpcId: props.vpcId,
      tags: { Name: `${prefix}-operator` },
    });
    const endpoint = new SecurityGroup(this, "eice-sg", {
      name: `${prefix}-eice`,
      description: `${prefix}: EC2 Instance Connect Endpoint (SSH to the operator instance)`,
      vpcId: props.vpcId,
      tags: { Name: `${prefix}-eice` },
    });
    const port = props.config.memorydb.port;
    const tcp = (
      ruleId: string,
      from: SecurityGroup | string,
      to: string,
      p: number,
      why: string,
    ) =>
      new VpcSecurityGroupIngressRule(this, ruleId, {
        securityGroupId: to,
        referencedSecurityGroupId: typeof from === "string" ? from : from.id,
        ipProtocol: "tcp",
        fromPort: p,
        toPort: p,
        description: why,
      });
    const out = (ruleId: string, from: SecurityGroup, to: string, p: number, why: string) =>
      new VpcSecurityGroupEgressRule(this, ruleId, {
        securityGroupId: from.id,
        referencedSecurityGroupId: to,
        ipProtocol: "tcp",
        fromPort: p,
        toPort: p,
        description: why,
      });
    tcp(
      "instance-from-eice",
      endpoint,
      instance.id,
      22,
      "SSH from the EC2 Instance Connect Endpoint",
    );
    out("eice-to-instance", endpoint, instance.id, 22, "SSH to the operator instance");
    out(
      "instance-to-memorydb",
      instance,
      props.memorydbSecurityGroupId,
      port,
      "redis-cli over TLS to MemoryDB",
    );
    tcp(
      "memorydb-from-instance",
      instance,
      props.memorydbSecurityGroupId,
      port,
      "redis-cli over TLS from the operator instance",
    );
    const toRepositories = new VpcSecurityGroupEgressRule(this, "instance-to-s3", {
      securityGroupId: instance.id,
      prefixListId: repositories.prefixListId,
      ipProtocol: "tcp",
      fromPort: 443,
      toPort: 443,
      description: "HTTPS to S3 (Amazon Linux package repositories) via the gateway endpoint",
    });
    return { instance, endpoint, toRepositories };
  }

  private operatorInstance(
    props: AccessProps,
    group: SecurityGroup,
    bootNeeds: readonly ITerraformDependable[],
  ): Instance {
    const { config } = props;
    const amiArch = config.access.architecture === "arm64" ? "arm64" : "x86_64";
    const template = new LaunchTemplate(this, "template", {
      name: `${config.namePrefix}-operator`,
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
          ebs: { encrypted: "true", volumeSize: 8, volumeType: "gp3", deleteOnTermination: "true" },
        },
      ],
      userData: Fn.base64encode(Fn.rawString(USER_DATA)),
      updateDefaultVersion: true,
    });
    return new Instance(this, "instance", {
      launchTemplate: { id: template.id, version: `${template.latestVersion}` },
      subnetId: props.subnetId,
      vpcSecurityGroupIds: [group.id],
      associatePublicIpAddress: false,
      tags: { Name: `${config.namePrefix}-operator` },
      dependsOn: [...bootNeeds],
    });
  }
}

/** What every operator may do: a reader token, the read API, test events, rollups. */
function operatorStatements(props: AccessProps): Statement[] {
  const region = props.config.region;
  return [
    memorydbConnectStatement(props.redis.clusterArn, props.redis.readerUserArn),
    // CallReadApiUrl, InvokeReadApi.
    ...urlCallerStatements("ReadApi", props.readApiFunctionArn),
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
    ...redriveStatements(props),
  ];
}

/**
 * `redrive`: the on-failure and quarantine messages are read and deleted (and, when left in
 * place, made visible again), the records read back from the stream by sequence number, and
 * the consumer invoked with them, keeping their identities. Invoke on the consumer itself
 * only (unqualified: the code the mapping runs), never `lambda:*` or another function.
 */
function redriveStatements(props: AccessProps): Statement[] {
  const region = props.config.region;
  const { consumerFunctionArn, failureQueueArn, quarantineQueueArn } = props.redrive;
  return [
    {
      Sid: "InvokeConsumerForRedrive",
      Effect: "Allow",
      Action: "lambda:InvokeFunction",
      Resource: consumerFunctionArn,
    },
    {
      Sid: "RedriveFromQueues",
      Effect: "Allow",
      Action: ["sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:ChangeMessageVisibility"],
      Resource: [failureQueueArn, quarantineQueueArn],
    },
    {
      Sid: "ReadStreamForRedrive",
      Effect: "Allow",
      Action: ["kinesis:GetShardIterator", "kinesis:GetRecords"],
      Resource: props.streamArn,
    },
    {
      // The queues and the stream are encrypted with the stack's key.
      Sid: "DecryptForRedrive",
      Effect: "Allow",
      Action: "kms:Decrypt",
      Resource: props.kmsKeyArn,
      Condition: {
        StringEquals: {
          "kms:ViaService": [`kinesis.${region}.amazonaws.com`, `sqs.${region}.amazonaws.com`],
        },
      },
    },
  ];
}

/** SSH to this instance through this endpoint, as ec2-user. */
function connectStatements(
  props: AccessProps,
  endpoint: Ec2InstanceConnectEndpoint,
  instance: Instance,
): Statement[] {
  return [
    {
      Sid: "TunnelThroughEndpoint",
      Effect: "Allow",
      Action: "ec2-instance-connect:OpenTunnel",
      Resource: endpoint.arn,
      Condition: { NumericEquals: { "ec2-instance-connect:remotePort": "22" } },
    },
    {
      Sid: "PushSshKeyToOperatorInstance",
      Effect: "Allow",
      Action: "ec2-instance-connect:SendSSHPublicKey",
      Resource: arn("ec2", props.config.region, props.accountId, `instance/${instance.id}`),
      Condition: { StringEquals: { "ec2:osuser": "ec2-user" } },
    },
    {
      Sid: "FindInstanceAndEndpoint",
      Effect: "Allow",
      Action: ["ec2:DescribeInstances", "ec2:DescribeInstanceConnectEndpoints"],
      Resource: "*",
    },
  ];
}
