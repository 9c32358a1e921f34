/**
 * The sketchstream TerraformStack: composes one construct per concern from a validated
 * config. Only the hashicorp/aws provider is used. Plan reads AWS three times, all read-only:
 * aws_caller_identity (skipped when config.accountId is set), the provider's on-demand stream
 * quota check (kinesis:DescribeLimits) and Step Functions' ValidateStateMachineDefinition on
 * the rollup definition, which is fully known at plan time (see rollup.ts).
 */

import { join } from "node:path";
import { DataAwsCallerIdentity } from "@cdktf/provider-aws/lib/data-aws-caller-identity/index.js";
import type { IamPolicy } from "@cdktf/provider-aws/lib/iam-policy/index.js";
import { AwsProvider } from "@cdktf/provider-aws/lib/provider/index.js";
import { TerraformOutput, TerraformStack } from "cdktf";
import type { Construct } from "constructs";
import { Access } from "./access.js";
import {
  adminApiFunctionName,
  apiEnvironment,
  FunctionUrlApi,
  readApiFunctionName,
} from "./api.js";
import { MonthlyBudget } from "./budget.js";
import { bundleEntry, projectRootFrom } from "./bundle.js";
import type { SketchstreamConfig } from "./config.js";
import { Consumer, quarantineQueueName } from "./consumer.js";
import { bundleAsset, memorydbEnvironment } from "./function.js";
import { DataKey } from "./kms.js";
import { MemoryDb, type RedisRole, redisUserName } from "./memorydb.js";
import { Network } from "./network.js";
import { Observability } from "./observability.js";
import { arn } from "./policy.js";
import { ROLLUP_HANDLERS, Rollup } from "./rollup.js";
import { Stream } from "./stream.js";

export const PROJECT_ROOT = projectRootFrom(import.meta.url);

/** Source files the stack builds from; tests may point them at fixtures. */
export interface StackSources {
  readonly consumerEntry: string;
  readonly rollupEntry: string;
  readonly rollupAsl: string;
  readonly apiEntry: string;
  readonly adminEntry: string;
}

export const DEFAULT_SOURCES: StackSources = {
  consumerEntry: join(PROJECT_ROOT, "functions/consumer/handler.ts"),
  rollupEntry: join(PROJECT_ROOT, "functions/rollup/handler.ts"),
  rollupAsl: join(PROJECT_ROOT, "state-machines/rollup.asl.json"),
  apiEntry: join(PROJECT_ROOT, "functions/api/handler.ts"),
  adminEntry: join(PROJECT_ROOT, "functions/admin/handler.ts"),
};

export interface SketchstreamStackProps {
  readonly config: SketchstreamConfig;
  readonly sources?: Partial<StackSources>;
}

/** A site and day for the example command in the outputs. */
const EXAMPLE_KEY = "'uv:{site_id=715}:2024-03-09'";

export class SketchstreamStack extends TerraformStack {
  readonly network: Network;
  readonly memorydb: MemoryDb;
  readonly stream: Stream;
  readonly consumer: Consumer;
  readonly rollup: Rollup;
  readonly readApi: FunctionUrlApi;
  readonly adminApi: FunctionUrlApi;
  /** The admin API's callers' policy: admins get it beside the operator policy. */
  readonly adminPolicy: IamPolicy;
  readonly access: Access;
  readonly observability: Observability;

  constructor(scope: Construct, id: string, props: SketchstreamStackProps) {
    super(scope, id);
    const { config } = props;
    const sources = { ...DEFAULT_SOURCES, ...props.sources };
    const prefix = config.namePrefix;

    new AwsProvider(this, "aws", {
      region: config.region,
      ...(config.accountId ? { allowedAccountIds: [config.accountId] } : {}),
      defaultTags: [
        {
          tags: {
            Project: "sketchstream",
            Stack: prefix,
            ManagedBy: "cdktf",
            ...config.tags,
          },
        },
      ],
    });
    const accountId = config.accountId ?? new DataAwsCallerIdentity(this, "current", {}).accountId;

    // Bundled before any resource, so a missing or incomplete handler file fails synth first.
    const consumerBundle = bundleEntry(sources.consumerEntry, ["handler"], PROJECT_ROOT);
    const rollupBundle = bundleEntry(sources.rollupEntry, ROLLUP_HANDLERS, PROJECT_ROOT);
    const apiBundle = bundleEntry(sources.apiEntry, ["handler"], PROJECT_ROOT);
    const adminBundle = bundleEntry(sources.adminEntry, ["handler"], PROJECT_ROOT);

    const key = new DataKey(this, "kms", {
      config,
      accountId,
      logGroupPrefixes: [`/aws/lambda/${prefix}-`, `/aws/vendedlogs/states/${prefix}-`],
    });
    this.network = new Network(this, "network", { config });
    this.memorydb = new MemoryDb(this, "memorydb", {
      config,
      subnetIds: this.network.subnetIds,
      securityGroupIds: [this.network.memorydbSg.id],
      kmsKeyArn: key.arn,
    });
    this.stream = new Stream(this, "stream", { config, kmsKeyArn: key.arn });

    const redisFor = (role: RedisRole) => ({
      endpoint: this.memorydb.endpoint,
      clusterName: this.memorydb.clusterName,
      clusterArn: this.memorydb.cluster.arn,
      userName: this.memorydb.users[role].userName,
      userArn: this.memorydb.users[role].arn,
    });
    // The consumer's only AWS API call from inside the VPC: quarantining a record.
    const sqsEndpoint = this.network.addInterfaceEndpoint("sqs-endpoint", "sqs", [
      {
        Sid: "OwnQueuesOnly",
        Effect: "Allow",
        Principal: "*",
        Action: "sqs:SendMessage",
        // By name: the endpoint comes first, the consumer's mapping waits for it.
        Resource: [arn("sqs", config.region, accountId, quarantineQueueName(prefix))],
      },
    ]);
    this.consumer = new Consumer(this, "consumer", {
      config,
      accountId,
      asset: bundleAsset(this, "consumer-code", consumerBundle),
      bundle: consumerBundle,
      subnetIds: this.network.subnetIds,
      securityGroupIds: [this.network.functionsSg.id],
      kmsKeyArn: key.arn,
      streamArn: this.stream.stream.arn,
      networkReady: [...this.network.functionRules, sqsEndpoint],
      redis: redisFor("consumer"),
    });

    this.rollup = new Rollup(this, "rollup", {
      config,
      accountId,
      asset: bundleAsset(this, "rollup-code", rollupBundle),
      bundle: rollupBundle,
      aslPath: sources.rollupAsl,
      projectRoot: PROJECT_ROOT,
      subnetIds: this.network.subnetIds,
      securityGroupIds: [this.network.functionsSg.id],
      kmsKeyArn: key.arn,
      networkReady: this.network.functionRules,
      redis: redisFor("rollup"),
    });

    this.observability = new Observability(this, "observability", {
      config,
      accountId,
      kmsKeyArn: key.arn,
      consumerFunctionName: this.consumer.functionName,
      quarantineQueueName: this.consumer.quarantineQueue.name,
      failureQueueName: this.consumer.failureQueue.name,
      stateMachineArn: this.rollup.stateMachine.arn,
      clusterName: this.memorydb.clusterName,
    });
    new MonthlyBudget(this, "budget", { config, topicArn: this.observability.topic.arn });

    // Two HTTP apps behind AWS_IAM function URLs. Neither calls an AWS API (their MemoryDB
    // tokens are signed locally), so neither needs an endpoint. IAM cannot tell one URL's
    // routes apart, so reading and administering are two functions, two MemoryDB users and two
    // callers' policies.
    const urlApi = {
      config,
      accountId,
      subnetIds: this.network.subnetIds,
      securityGroupIds: [this.network.functionsSg.id],
      kmsKeyArn: key.arn,
      alarmTopicArn: this.observability.topic.arn,
      networkReady: this.network.functionRules,
      handlerExport: "handler",
      sizing: config.api,
      environment: apiEnvironment(config),
    };
    // The read API reads as the reader, the read-only user people use with redis-cli; the
    // operator policy lets operators call it.
    this.readApi = new FunctionUrlApi(this, "read-api", {
      ...urlApi,
      functionName: readApiFunctionName(prefix),
      statementName: "ReadApi",
      title: "read API",
      description: "Read API (function URL, AWS_IAM): counts and series from MemoryDB, read-only",
      asset: bundleAsset(this, "api-code", apiBundle),
      bundle: apiBundle,
      redis: redisFor("reader"),
    });
    // The admin API writes the zone registry as the registry writer, a user that can write
    // nothing else; only the admin policy lets anyone call it.
    this.adminApi = new FunctionUrlApi(this, "admin-api", {
      ...urlApi,
      functionName: adminApiFunctionName(prefix),
      statementName: "AdminApi",
      title: "admin API",
      description:
        "Admin API (function URL, AWS_IAM): sets sites' time zones in MemoryDB as the registry writer",
      asset: bundleAsset(this, "admin-code", adminBundle),
      bundle: adminBundle,
      redis: redisFor("registryWriter"),
      callerPolicy: {
        name: `${prefix}-admin`,
        description: `${prefix}: call the admin API (set a site's time zone); nothing else`,
      },
    });
    if (!this.adminApi.callerPolicy) throw new Error("the admin API was made without its policy");
    this.adminPolicy = this.adminApi.callerPolicy;

    const [operatorSubnet] = this.network.subnets;
    const [operatorRouting] = this.network.routeTableAssociations;
    if (!operatorSubnet || !operatorRouting) throw new Error("the network has no subnet");
    this.access = new Access(this, "access", {
      config,
      accountId,
      vpcId: this.network.vpc.id,
      subnetId: operatorSubnet.id,
      subnetRouting: operatorRouting,
      routeTableIds: [this.network.routeTable.id],
      memorydbSecurityGroupId: this.network.memorydbSg.id,
      redis: {
        clusterArn: this.memorydb.cluster.arn,
        readerUserArn: this.memorydb.users.reader.arn,
      },
      streamArn: this.stream.stream.arn,
      kmsKeyArn: key.arn,
      stateMachineArn: this.rollup.stateMachine.arn,
      stateMachineName: this.rollup.stateMachineName,
      readApiFunctionArn: this.readApi.function.fn.arn,
      redrive: {
        consumerFunctionArn: this.consumer.function.fn.arn,
        failureQueueArn: this.consumer.failureQueue.arn,
        quarantineQueueArn: this.consumer.quarantineQueue.arn,
      },
    });

    this.outputs(config);
  }

  private outputs(config: SketchstreamConfig): void {
    const reader = redisUserName(config.namePrefix, "reader");
    const out = (id: string, value: string, description: string) =>
      new TerraformOutput(this, id, { value, description });
    out(
      "redis_endpoint",
      this.memorydb.endpoint,
      "MemoryDB cluster configuration endpoint (host:port)",
    );
    out(
      "memorydb_cluster_name",
      this.memorydb.clusterName,
      "MemoryDB cluster name (IAM tokens are signed for it)",
    );
    out("redis_reader_user", reader, "Read-only MemoryDB user for redis-cli (IAM auth)");
    out("stream_name", this.stream.stream.name, "Kinesis stream for events");
    out("stream_arn", this.stream.stream.arn, "Kinesis stream ARN");
    out("state_machine_arn", this.rollup.stateMachine.arn, "Rollup state machine ARN");
    out("quarantine_queue_url", this.consumer.quarantineQueue.url, "SQS queue of rejected records");
    out(
      "failure_queue_url",
      this.consumer.failureQueue.url,
      "SQS on-failure destination of the consumer's event source mapping",
    );
    out("alarm_topic_arn", this.observability.topic.arn, "SNS topic of the alarms");
    out("operator_policy_arn", this.access.operatorPolicy.arn, "IAM policy to attach to operators");
    out(
      "api_url",
      this.readApi.url.functionUrl,
      "Read API (function URL, AWS_IAM auth): requests are SigV4-signed for service lambda; the operator policy allows them",
    );
    out(
      "admin_api_url",
      this.adminApi.url.functionUrl,
      "Admin API (function URL, AWS_IAM auth): writes sites' settings; only the admin policy allows it",
    );
    out(
      "admin_policy_arn",
      this.adminPolicy.arn,
      "IAM policy to attach to admins: calling the admin API and nothing else (operators need operator_policy_arn too)",
    );
    out(
      "redis_cli_command",
      `redis-cli -c --tls -h ${this.memorydb.endpointAddress} -p ${this.memorydb.port} --user ${reader} PFCOUNT ${EXAMPLE_KEY}`,
      "Run on the operator instance after `export REDISCLI_AUTH='<token>'`, the token made on a workstation by `npm run cli -- token` (it opens connections for 15 minutes)",
    );
    const cliEnv = {
      ...memorydbEnvironment(
        config,
        { endpoint: this.memorydb.endpoint, clusterName: this.memorydb.clusterName, user: reader },
        { region: config.region },
      ),
      STREAM_NAME: this.stream.stream.name,
      STATE_MACHINE_ARN: this.rollup.stateMachine.arn,
      API_URL: this.readApi.url.functionUrl,
      ADMIN_API_URL: this.adminApi.url.functionUrl,
      // `redrive` (and `redrive --quarantine`): the queues it reads, the function it invokes.
      FAILURE_QUEUE_URL: this.consumer.failureQueue.url,
      QUARANTINE_QUEUE_URL: this.consumer.quarantineQueue.url,
      CONSUMER_FUNCTION_NAME: this.consumer.function.fn.functionName,
    };
    out(
      "cli_env",
      Object.entries(cliEnv)
        .map(([name, value]) => `${name}=${value}`)
        .join("\n"),
      "Environment for `npm run cli` against this stack (a .env-style file)",
    );
    if (this.access.instance && this.access.endpoint) {
      out("operator_instance_id", this.access.instance.id, "Operator instance with redis-cli");
      out(
        "operator_connect_command",
        `aws ec2-instance-connect ssh --region ${config.region} --instance-id ${this.access.instance.id} --os-user ec2-user --connection-type eice`,
        "Opens a shell on the operator instance through the EC2 Instance Connect Endpoint",
      );
    }
  }
}
