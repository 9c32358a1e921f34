/**
 * The streaming consumer: the Lambda (functions/consumer/handler.ts, export `handler`), its
 * Kinesis event source mapping, the quarantine queue for malformed records and the
 * on-failure queue of the mapping.
 *
 * The mapping starts at TRIM_HORIZON (a deploy never skips what is already in the stream),
 * reports partial batch failures (the handler returns the first unstored record), bisects a
 * failing batch to isolate a poison record, and gives up after bounded retries or record age,
 * sending the batch's shard and sequence range to the failure queue so it can be replayed while
 * the stream still holds it.
 */

import { LambdaAlias } from "@cdktf/provider-aws/lib/lambda-alias/index.js";
import { LambdaEventSourceMapping } from "@cdktf/provider-aws/lib/lambda-event-source-mapping/index.js";
import { LambdaProvisionedConcurrencyConfig } from "@cdktf/provider-aws/lib/lambda-provisioned-concurrency-config/index.js";
import { SqsQueue } from "@cdktf/provider-aws/lib/sqs-queue/index.js";
import { SqsQueuePolicy } from "@cdktf/provider-aws/lib/sqs-queue-policy/index.js";
import type { ITerraformDependable } from "cdktf";
import { Construct } from "constructs";
import { type FunctionConstructProps, runtimeEnvironment, VpcFunction } from "./function.js";
import {
  arn,
  denyInsecureTransport,
  LAMBDA_VPC_STATEMENT,
  logWriteStatement,
  memorydbConnectStatement,
  policyDocument,
  ServiceRole,
  type Statement,
  XRAY_STATEMENT,
} from "./policy.js";

export interface ConsumerProps extends FunctionConstructProps {
  readonly streamArn: string;
  /**
   * What a batch needs before the mapping may invoke the function (it starts as soon as it
   * exists): the network rules to MemoryDB and the SQS endpoint for quarantined records.
   */
  readonly networkReady: readonly ITerraformDependable[];
}

/** Name of the quarantine queue, known before the queue exists (the SQS endpoint's policy). */
export function quarantineQueueName(namePrefix: string): string {
  return `${namePrefix}-quarantine`;
}

export class Consumer extends Construct {
  readonly function: VpcFunction;
  readonly functionName: string;
  readonly quarantineQueue: SqsQueue;
  readonly failureQueue: SqsQueue;
  readonly eventSourceMapping: LambdaEventSourceMapping;

  constructor(scope: Construct, id: string, props: ConsumerProps) {
    super(scope, id);
    const { config } = props;
    const k = config.consumer;
    const prefix = config.namePrefix;
    this.functionName = `${prefix}-consumer`;

    const queue = (queueId: string, name: string) => {
      const q = new SqsQueue(this, queueId, {
        name,
        kmsMasterKeyId: props.kmsKeyArn,
        // One data key per 5 minutes instead of a KMS call per message.
        kmsDataKeyReusePeriodSeconds: 300,
        // The longest SQS allows: two weeks to look at what went wrong.
        messageRetentionSeconds: 1_209_600,
      });
      new SqsQueuePolicy(this, `${queueId}-policy`, {
        queueUrl: q.url,
        policy: policyDocument([denyInsecureTransport("sqs", q.arn)]),
      });
      return q;
    };
    this.quarantineQueue = queue("quarantine", quarantineQueueName(prefix));
    this.failureQueue = queue("failures", `${prefix}-consumer-failures`);

    const logGroupArn = arn(
      "logs",
      config.region,
      props.accountId,
      `log-group:/aws/lambda/${this.functionName}`,
    );
    const statements: Statement[] = [
      logWriteStatement([logGroupArn]),
      LAMBDA_VPC_STATEMENT,
      {
        Sid: "ReadStream",
        Effect: "Allow",
        Action: [
          "kinesis:DescribeStream",
          "kinesis:DescribeStreamSummary",
          "kinesis:GetRecords",
          "kinesis:GetShardIterator",
          "kinesis:ListShards",
          "kinesis:SubscribeToShard",
        ],
        Resource: props.streamArn,
      },
      { Sid: "ListStreams", Effect: "Allow", Action: "kinesis:ListStreams", Resource: "*" },
      {
        // Quarantined records, and the mapping's failure records (sent with this role).
        Sid: "SendToOwnQueues",
        Effect: "Allow",
        Action: "sqs:SendMessage",
        Resource: [this.quarantineQueue.arn, this.failureQueue.arn],
      },
      {
        Sid: "UseDataKeyThroughKinesisAndSqs",
        Effect: "Allow",
        Action: ["kms:Decrypt", "kms:GenerateDataKey"],
        Resource: props.kmsKeyArn,
        Condition: {
          StringEquals: {
            "kms:ViaService": [
              `kinesis.${config.region}.amazonaws.com`,
              `sqs.${config.region}.amazonaws.com`,
            ],
          },
        },
      },
      memorydbConnectStatement(props.redis.clusterArn, props.redis.userArn),
      ...(k.tracing ? [XRAY_STATEMENT] : []),
    ];
    const role = new ServiceRole(this, "role", {
      name: this.functionName,
      service: "lambda.amazonaws.com",
      statements,
    });

    this.function = new VpcFunction(this, "function", {
      config,
      functionName: this.functionName,
      description: "Kinesis consumer: adds user ids to daily HyperLogLogs in MemoryDB",
      asset: props.asset,
      bundle: props.bundle,
      handlerExport: "handler",
      roleArn: role.role.arn,
      memoryMb: k.memoryMb,
      timeoutSeconds: k.timeoutSeconds,
      architecture: k.architecture,
      subnetIds: props.subnetIds,
      securityGroupIds: props.securityGroupIds,
      environment: runtimeEnvironment(
        config,
        {
          endpoint: props.redis.endpoint,
          clusterName: props.redis.clusterName,
          user: props.redis.userName,
        },
        { quarantine: { queueUrl: this.quarantineQueue.url } },
      ),
      kmsKeyArn: props.kmsKeyArn,
      tracing: k.tracing,
      ...(k.reservedConcurrency !== undefined
        ? { reservedConcurrency: k.reservedConcurrency }
        : {}),
      publish: k.provisionedConcurrency !== undefined,
      dependsOn: [role.policy],
    });

    // With provisioned concurrency the mapping invokes an alias of a published version, the
    // only thing provisioned concurrency can be attached to.
    let target = this.function.fn.arn;
    if (k.provisionedConcurrency !== undefined) {
      const alias = new LambdaAlias(this, "live", {
        name: "live",
        functionName: this.function.fn.functionName,
        functionVersion: this.function.fn.version,
      });
      new LambdaProvisionedConcurrencyConfig(this, "provisioned", {
        functionName: this.function.fn.functionName,
        qualifier: alias.name,
        provisionedConcurrentExecutions: k.provisionedConcurrency,
      });
      target = alias.arn;
    }

    this.eventSourceMapping = new LambdaEventSourceMapping(this, "stream-mapping", {
      functionName: target,
      eventSourceArn: props.streamArn,
      startingPosition: "TRIM_HORIZON",
      batchSize: k.batchSize,
      maximumBatchingWindowInSeconds: k.batchingWindowSeconds,
      parallelizationFactor: k.parallelizationFactor,
      functionResponseTypes: ["ReportBatchItemFailures"],
      bisectBatchOnFunctionError: true,
      maximumRetryAttempts: k.maximumRetryAttempts,
      maximumRecordAgeInSeconds: k.maximumRecordAgeSeconds,
      destinationConfig: { onFailure: { destinationArn: this.failureQueue.arn } },
      dependsOn: [role.policy, ...props.networkReady],
    });
  }
}
