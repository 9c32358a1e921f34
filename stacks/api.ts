/**
 * The read API in AWS: the Hono app of functions/api/handler.ts (export `handler`) as a Lambda
 * function in the private subnets, reachable only through a function URL with AWS_IAM auth,
 * and its two alarms.
 *
 * It reads MemoryDB as the read-only `reader` ACL user, the same user people use with
 * redis-cli: an IAM token signed locally from the role's credentials is its only use of AWS, so
 * it needs no VPC endpoint. A caller needs both lambda:InvokeFunctionUrl and
 * lambda:InvokeFunction on the function (function URLs created since October 2025 check both);
 * the operator policy (access.ts) grants them on this function only. No CORS: the dashboard
 * talks to it through its local proxy, which signs the requests, never from a browser page.
 */

import { CloudwatchMetricAlarm } from "@cdktf/provider-aws/lib/cloudwatch-metric-alarm/index.js";
import { LambdaFunctionUrl } from "@cdktf/provider-aws/lib/lambda-function-url/index.js";
import type { ITerraformDependable } from "cdktf";
import { Construct } from "constructs";
import { API_DEADLINE } from "../functions/domain/runtime-env.js";
import type { SketchstreamConfig } from "./config.js";
import {
  type FunctionConstructProps,
  type MemorydbUserAccess,
  runtimeEnvironment,
  VpcFunction,
} from "./function.js";
import {
  arn,
  LAMBDA_VPC_STATEMENT,
  logWriteStatement,
  memorydbConnectStatement,
  ServiceRole,
} from "./policy.js";

/** The function URL's auth type: IAM-signed requests only, never NONE (public). */
export const READ_API_AUTH_TYPE = "AWS_IAM";

/** The p99 duration, as a share of the timeout, above which requests are about to time out. */
export const READ_API_P99_ALARM_SHARE = 0.8;

/** The read function's name, known before the function exists. */
export function readApiFunctionName(namePrefix: string): string {
  return `${namePrefix}-read-api`;
}

/** The variables the read API reads beside the runtime contract. */
export function readApiEnvironment(config: SketchstreamConfig): Record<string, string> {
  return { [API_DEADLINE.variable]: String(config.api.redisDeadlineMs) };
}

export interface ReadApiProps extends FunctionConstructProps {
  /** The SNS topic the alarms notify. */
  readonly alarmTopicArn: string;
  /** What a request needs before the URL may be called: the network rules to MemoryDB. */
  readonly networkReady: readonly ITerraformDependable[];
  /** The read-only MemoryDB user: the API never writes. */
  readonly redis: MemorydbUserAccess;
}

export class ReadApi extends Construct {
  readonly function: VpcFunction;
  readonly functionName: string;
  readonly url: LambdaFunctionUrl;
  readonly alarms: readonly CloudwatchMetricAlarm[];

  constructor(scope: Construct, id: string, props: ReadApiProps) {
    super(scope, id);
    const { config } = props;
    const a = config.api;
    const prefix = config.namePrefix;
    this.functionName = readApiFunctionName(prefix);

    const role = new ServiceRole(this, "role", {
      name: this.functionName,
      service: "lambda.amazonaws.com",
      statements: [
        logWriteStatement([
          arn("logs", config.region, props.accountId, `log-group:/aws/lambda/${this.functionName}`),
        ]),
        LAMBDA_VPC_STATEMENT,
        memorydbConnectStatement(props.redis.clusterArn, props.redis.userArn),
      ],
    });

    this.function = new VpcFunction(this, "function", {
      config,
      functionName: this.functionName,
      description: "Read API (function URL, AWS_IAM): counts and series from MemoryDB, read-only",
      asset: props.asset,
      bundle: props.bundle,
      handlerExport: "handler",
      roleArn: role.role.arn,
      memoryMb: a.memoryMb,
      timeoutSeconds: a.timeoutSeconds,
      architecture: a.architecture,
      subnetIds: props.subnetIds,
      securityGroupIds: props.securityGroupIds,
      environment: {
        ...runtimeEnvironment(config, {
          endpoint: props.redis.endpoint,
          clusterName: props.redis.clusterName,
          user: props.redis.userName,
        }),
        ...readApiEnvironment(config),
      },
      kmsKeyArn: props.kmsKeyArn,
      tracing: false,
      dependsOn: [role.policy],
    });

    // The URL is what callers use: it appears once the function can reach MemoryDB, so the
    // first request does not wait out the Redis deadline against a missing rule.
    this.url = new LambdaFunctionUrl(this, "url", {
      functionName: this.function.fn.functionName,
      authorizationType: READ_API_AUTH_TYPE,
      dependsOn: [...props.networkReady],
    });

    const common = {
      namespace: "AWS/Lambda",
      dimensions: { FunctionName: this.functionName },
      alarmActions: [props.alarmTopicArn],
      okActions: [props.alarmTopicArn],
      // No data means no requests, not a failure.
      treatMissingData: "notBreaching",
    };
    const p99ThresholdMs = Math.round(a.timeoutSeconds * 1000 * READ_API_P99_ALARM_SHARE);
    this.alarms = [
      new CloudwatchMetricAlarm(this, "errors", {
        // The topic policy admits alarms named `<prefix>-*` (observability.ts).
        alarmName: `${this.functionName}-errors`,
        alarmDescription:
          "The read API Lambda failed (an exception, a timeout or bad configuration): callers got 502. A 503 for Redis beyond the deadline is not an error. Check its log group.",
        ...common,
        metricName: "Errors",
        statistic: "Sum",
        period: 300,
        evaluationPeriods: 1,
        threshold: 0,
        comparisonOperator: "GreaterThanThreshold",
      }),
      new CloudwatchMetricAlarm(this, "p99-duration", {
        alarmName: `${this.functionName}-p99-duration`,
        alarmDescription: `The read API's p99 duration is above ${p99ThresholdMs} ms, ${READ_API_P99_ALARM_SHARE * 100}% of its ${a.timeoutSeconds} s timeout: requests are about to time out. Check MemoryDB latency and the function's cold starts.`,
        ...common,
        metricName: "Duration",
        extendedStatistic: "p99",
        period: 300,
        evaluationPeriods: 3,
        datapointsToAlarm: 2,
        threshold: p99ThresholdMs,
        comparisonOperator: "GreaterThanThreshold",
      }),
    ];
  }
}
