/**
 * Alarms and where they go: an SNS topic encrypted with the stack's customer-managed key
 * (whose policy lets CloudWatch use it; see kms.ts), a topic policy that lets only this
 * account's alarms (and, with a budget, its Budgets) publish and refuses non-TLS requests, an
 * optional email subscription, and
 * one alarm per way the pipeline can go wrong:
 *
 * - consumer errors (invocations that threw: bad config, Redis unreachable);
 * - consumer iterator age (the stream is falling behind);
 * - quarantine depth (producers send malformed events);
 * - failure-queue depth (a batch was given up after its retries or record age: replay it);
 * - failed, timed-out or aborted rollup executions;
 * - MemoryDB memory usage, the highest of any node (noeviction: a full node refuses writes);
 * - time zones not loaded by the consumer or the rollup (sites counted in their last zone).
 */

import { CloudwatchMetricAlarm } from "@cdktf/provider-aws/lib/cloudwatch-metric-alarm/index.js";
import { SnsTopic } from "@cdktf/provider-aws/lib/sns-topic/index.js";
import { SnsTopicPolicy } from "@cdktf/provider-aws/lib/sns-topic-policy/index.js";
import { SnsTopicSubscription } from "@cdktf/provider-aws/lib/sns-topic-subscription/index.js";
import { Construct } from "constructs";
import { hasBudget } from "./budget.js";
import type { SketchstreamConfig } from "./config.js";
import { arn, denyInsecureTransport, PARTITION, policyDocument, type Statement } from "./policy.js";

/**
 * The highest memory use of any node of the cluster, as a CloudWatch Metrics Insights query.
 * MemoryDB computes DatabaseMemoryUsagePercentage per node (AWS/MemoryDB, dimensions ClusterName
 * and NodeName): an alarm on the ClusterName dimension alone could find no data and never fire.
 * FROM the namespace (not a SCHEMA with a fixed dimension set) matches every series of the
 * cluster, whatever other dimensions it has.
 */
export function memoryUsageQuery(clusterName: string): string {
  return `SELECT MAX(DatabaseMemoryUsagePercentage) FROM "AWS/MemoryDB" WHERE ClusterName = '${clusterName}'`;
}

export interface ObservabilityProps {
  readonly config: SketchstreamConfig;
  readonly accountId: string;
  readonly kmsKeyArn: string;
  readonly consumerFunctionName: string;
  readonly quarantineQueueName: string;
  readonly failureQueueName: string;
  readonly stateMachineArn: string;
  readonly clusterName: string;
}

export class Observability extends Construct {
  readonly topic: SnsTopic;
  readonly alarms: CloudwatchMetricAlarm[] = [];

  constructor(scope: Construct, id: string, props: ObservabilityProps) {
    super(scope, id);
    const { config } = props;
    const prefix = config.namePrefix;
    this.topic = new SnsTopic(this, "alarms", {
      name: `${prefix}-alarms`,
      kmsMasterKeyId: props.kmsKeyArn,
    });
    new SnsTopicPolicy(this, "alarms-policy", {
      arn: this.topic.arn,
      policy: policyDocument([
        {
          Sid: "CloudWatchAlarmsOfThisAccount",
          Effect: "Allow",
          Principal: { Service: "cloudwatch.amazonaws.com" },
          Action: "sns:Publish",
          Resource: this.topic.arn,
          Condition: {
            ArnLike: {
              "aws:SourceArn": arn(
                "cloudwatch",
                config.region,
                props.accountId,
                `alarm:${prefix}-*`,
              ),
            },
            StringEquals: { "aws:SourceAccount": props.accountId },
          },
        },
        // The monthly budget (budget.ts) notifies this topic: Budgets of this account only.
        ...(hasBudget(config)
          ? ([
              {
                Sid: "BudgetsOfThisAccount",
                Effect: "Allow",
                Principal: { Service: "budgets.amazonaws.com" },
                Action: "sns:Publish",
                Resource: this.topic.arn,
                Condition: {
                  ArnLike: { "aws:SourceArn": `arn:${PARTITION}:budgets::${props.accountId}:*` },
                  StringEquals: { "aws:SourceAccount": props.accountId },
                },
              },
            ] satisfies Statement[])
          : []),
        denyInsecureTransport("sns", this.topic.arn),
      ]),
    });
    if (config.alarms.email !== undefined) {
      new SnsTopicSubscription(this, "email", {
        topicArn: this.topic.arn,
        protocol: "email",
        endpoint: config.alarms.email,
      });
    }

    const common = {
      alarmActions: [this.topic.arn],
      okActions: [this.topic.arn],
      // No data means no traffic, not a failure.
      treatMissingData: "notBreaching",
    };
    const alarm = (
      alarmId: string,
      settings: Omit<ConstructorParameters<typeof CloudwatchMetricAlarm>[2], "alarmName">,
    ) => {
      const a = new CloudwatchMetricAlarm(this, alarmId, {
        alarmName: `${prefix}-${alarmId}`,
        ...common,
        ...settings,
      });
      this.alarms.push(a);
      return a;
    };

    alarm("consumer-errors", {
      alarmDescription:
        "The consumer Lambda threw (configuration, Redis or quarantine failure): records are being retried. Check its log group.",
      namespace: "AWS/Lambda",
      metricName: "Errors",
      dimensions: { FunctionName: props.consumerFunctionName },
      statistic: "Sum",
      period: 300,
      evaluationPeriods: 1,
      threshold: 0,
      comparisonOperator: "GreaterThanThreshold",
    });
    alarm("consumer-iterator-age", {
      alarmDescription: `The consumer is more than ${config.alarms.iteratorAgeMs / 1000} s behind the stream; past consumer.maximumRecordAgeSeconds records go to the failure queue.`,
      namespace: "AWS/Lambda",
      metricName: "IteratorAge",
      dimensions: { FunctionName: props.consumerFunctionName },
      statistic: "Maximum",
      period: 60,
      evaluationPeriods: 5,
      datapointsToAlarm: 3,
      threshold: config.alarms.iteratorAgeMs,
      comparisonOperator: "GreaterThanThreshold",
    });
    alarm("quarantine-depth", {
      alarmDescription:
        "Malformed events are arriving: read the quarantine queue for each record's reason.",
      namespace: "AWS/SQS",
      metricName: "ApproximateNumberOfMessagesVisible",
      dimensions: { QueueName: props.quarantineQueueName },
      statistic: "Maximum",
      period: 300,
      evaluationPeriods: 1,
      threshold: config.alarms.quarantineDepth,
      comparisonOperator: "GreaterThanOrEqualToThreshold",
    });
    alarm("failure-queue-depth", {
      alarmDescription:
        "The consumer gave up on a batch (retries or record age exhausted): the message names the shard and sequence range to replay.",
      namespace: "AWS/SQS",
      metricName: "ApproximateNumberOfMessagesVisible",
      dimensions: { QueueName: props.failureQueueName },
      statistic: "Maximum",
      period: 300,
      evaluationPeriods: 1,
      threshold: 0,
      comparisonOperator: "GreaterThanThreshold",
    });
    const sfnMetric = (metricId: string, metricName: string) => ({
      id: metricId,
      metric: {
        namespace: "AWS/States",
        metricName,
        dimensions: { StateMachineArn: props.stateMachineArn },
        stat: "Sum",
        period: 300,
      },
    });
    alarm("rollup-failed", {
      alarmDescription:
        "A rollup execution failed, timed out or was aborted; pending work stays for the next run. See the execution's history.",
      metricQuery: [
        sfnMetric("failed", "ExecutionsFailed"),
        sfnMetric("timedout", "ExecutionsTimedOut"),
        sfnMetric("aborted", "ExecutionsAborted"),
        {
          id: "total",
          expression: "FILL(failed, 0) + FILL(timedout, 0) + FILL(aborted, 0)",
          label: "Rollup executions that did not succeed",
          returnData: true,
        },
      ],
      evaluationPeriods: 1,
      threshold: 0,
      comparisonOperator: "GreaterThanThreshold",
    });
    // Powertools publishes the functions' own metrics in the `sketchstream` namespace with a
    // `service` dimension (consumer, rollup).
    const zoneFailures = (metricId: string, service: string) => ({
      id: metricId,
      metric: {
        namespace: "sketchstream",
        metricName: "TimeZoneLoadFailures",
        dimensions: { service },
        stat: "Sum",
        period: 300,
      },
    });
    alarm("time-zone-load-failures", {
      alarmDescription:
        "The consumer or the rollup could not read the zone registry, or found an entry that is not a time zone: those sites are counted in their last zone (UTC if none) until it loads. Check the function's log for the site and the entry, and fix it with `npm run cli -- site --site S --time-zone Z`.",
      metricQuery: [
        zoneFailures("consumer", "consumer"),
        zoneFailures("rollup", "rollup"),
        {
          id: "total",
          expression: "FILL(consumer, 0) + FILL(rollup, 0)",
          label: "Zone registry loads that failed",
          returnData: true,
        },
      ],
      evaluationPeriods: 1,
      threshold: 0,
      comparisonOperator: "GreaterThanThreshold",
    });
    alarm("memorydb-memory", {
      alarmDescription: `MemoryDB memory above ${config.alarms.memoryUsagePercent}% on some node: with noeviction, a full node refuses writes and the consumer's batches fail. Add shards or a larger node type (README, runbook).`,
      metricQuery: [
        {
          id: "memory",
          expression: memoryUsageQuery(props.clusterName),
          label: "Highest DatabaseMemoryUsagePercentage of the cluster's nodes",
          // Metrics Insights alarms evaluate at most 3 hours: 60 s x 10 periods.
          period: 60,
          returnData: true,
        },
      ],
      evaluationPeriods: 10,
      datapointsToAlarm: 5,
      threshold: config.alarms.memoryUsagePercent,
      comparisonOperator: "GreaterThanThreshold",
    });
  }
}
