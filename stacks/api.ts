/**
 * An HTTP app in AWS behind IAM: a Lambda function in the private subnets, reachable only
 * through a function URL with AWS_IAM auth, running as one MemoryDB user, with its two alarms
 * and, optionally, a managed policy for its callers. The stack makes two of them:
 *
 * - the read API (functions/api/handler.ts), reading as the read-only `reader` ACL user, the
 *   same user people use with redis-cli; the operator policy (access.ts) lets callers in;
 * - the admin API (functions/admin/handler.ts), the only writer of the zone registry, running as
 *   the `registry-writer` user, with its own callers' policy (the admin policy).
 *
 * IAM cannot tell one URL's routes apart, so the boundary between reading and administering is
 * the function: a caller allowed to invoke the read API can never reach a write route.
 *
 * An IAM token signed locally from the role's credentials is each function's only use of AWS,
 * so neither needs a VPC endpoint. A caller needs both lambda:InvokeFunctionUrl and
 * lambda:InvokeFunction on the function (function URLs created since October 2025 check both):
 * `urlCallerStatements` grants exactly these. No CORS: the dashboard talks to the read API
 * through its local proxy, which signs the requests, never from a browser page.
 */

import { CloudwatchMetricAlarm } from "@cdktf/provider-aws/lib/cloudwatch-metric-alarm/index.js";
import { IamPolicy } from "@cdktf/provider-aws/lib/iam-policy/index.js";
import { LambdaFunctionUrl } from "@cdktf/provider-aws/lib/lambda-function-url/index.js";
import { Construct } from "constructs";
import { API_DEADLINE } from "../functions/domain/runtime-env.js";
import type { ApiFunctionConfig, SketchstreamConfig } from "./config.js";
import { type FunctionConstructProps, runtimeEnvironment, VpcFunction } from "./function.js";
import {
  arn,
  LAMBDA_VPC_STATEMENT,
  logWriteStatement,
  memorydbConnectStatement,
  policyDocument,
  ServiceRole,
  type Statement,
} from "./policy.js";

/** The function URLs' auth type: IAM-signed requests only, never NONE (public). */
export const FUNCTION_URL_AUTH_TYPE = "AWS_IAM";

/** The p99 duration, as a share of the timeout, above which requests are about to time out. */
export const API_P99_ALARM_SHARE = 0.8;

/** The read function's name, known before the function exists. */
export function readApiFunctionName(namePrefix: string): string {
  return `${namePrefix}-read-api`;
}

/** The admin function's name, known before the function exists. */
export function adminApiFunctionName(namePrefix: string): string {
  return `${namePrefix}-admin-api`;
}

/** The variables both HTTP apps read beside the runtime contract. */
export function apiEnvironment(config: SketchstreamConfig): Record<string, string> {
  return { [API_DEADLINE.variable]: String(config.api.redisDeadlineMs) };
}

/**
 * What a caller of a function URL needs on the function, and nothing more: the URL call while
 * the URL requires IAM auth, and InvokeFunction, which function URLs created since October 2025
 * also check. `name` makes the statement ids, e.g. "ReadApi": CallReadApiUrl, InvokeReadApi.
 */
export function urlCallerStatements(name: string, functionArn: string): Statement[] {
  return [
    {
      // Through its URL, and only while the URL requires IAM auth.
      Sid: `Call${name}Url`,
      Effect: "Allow",
      Action: "lambda:InvokeFunctionUrl",
      Resource: functionArn,
      Condition: { StringEquals: { "lambda:FunctionUrlAuthType": FUNCTION_URL_AUTH_TYPE } },
    },
    {
      // Function URLs created since October 2025 also check InvokeFunction on the function.
      Sid: `Invoke${name}`,
      Effect: "Allow",
      Action: "lambda:InvokeFunction",
      Resource: functionArn,
    },
  ];
}

/** A managed policy that lets whoever it is attached to call this API and nothing else. */
export interface CallerPolicyProps {
  readonly name: string;
  readonly description: string;
}

export interface FunctionUrlApiProps extends FunctionConstructProps {
  /** The function's name, e.g. readApiFunctionName(prefix). */
  readonly functionName: string;
  /** What it is, in statement ids (PascalCase): "ReadApi" gives CallReadApiUrl, InvokeReadApi. */
  readonly statementName: string;
  /** What it is, in alarm texts: "read API". */
  readonly title: string;
  /** The function's description in the Lambda console. */
  readonly description: string;
  /** Export of the bundle that handles the URL's requests. */
  readonly handlerExport: string;
  /** Memory, timeout and architecture; the p99 alarm follows the timeout. */
  readonly sizing: Pick<ApiFunctionConfig, "memoryMb" | "timeoutSeconds" | "architecture">;
  /** Variables beside the runtime contract for `redis` (e.g. apiEnvironment(config)). */
  readonly environment: Record<string, string>;
  /** The SNS topic the alarms notify. */
  readonly alarmTopicArn: string;
  /** A managed policy for the callers of this API alone; none when another policy grants it. */
  readonly callerPolicy?: CallerPolicyProps;
}

export class FunctionUrlApi extends Construct {
  readonly function: VpcFunction;
  readonly functionName: string;
  readonly url: LambdaFunctionUrl;
  readonly alarms: readonly CloudwatchMetricAlarm[];
  /** What a caller needs on this function (urlCallerStatements). */
  readonly callerStatements: readonly Statement[];
  readonly callerPolicy?: IamPolicy;

  constructor(scope: Construct, id: string, props: FunctionUrlApiProps) {
    super(scope, id);
    const { config, sizing, title } = props;
    this.functionName = props.functionName;

    // Its logs, its network interfaces, and a MemoryDB token for its own user only.
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
      description: props.description,
      asset: props.asset,
      bundle: props.bundle,
      handlerExport: props.handlerExport,
      roleArn: role.role.arn,
      memoryMb: sizing.memoryMb,
      timeoutSeconds: sizing.timeoutSeconds,
      architecture: sizing.architecture,
      subnetIds: props.subnetIds,
      securityGroupIds: props.securityGroupIds,
      environment: {
        ...runtimeEnvironment(config, {
          endpoint: props.redis.endpoint,
          clusterName: props.redis.clusterName,
          user: props.redis.userName,
        }),
        ...props.environment,
      },
      kmsKeyArn: props.kmsKeyArn,
      tracing: false,
      dependsOn: [role.policy],
    });

    // The URL is what callers use: it appears once the function can reach MemoryDB, so the
    // first request does not wait out the Redis deadline against a missing rule.
    this.url = new LambdaFunctionUrl(this, "url", {
      functionName: this.function.fn.functionName,
      authorizationType: FUNCTION_URL_AUTH_TYPE,
      dependsOn: [...props.networkReady],
    });

    this.callerStatements = urlCallerStatements(props.statementName, this.function.fn.arn);
    if (props.callerPolicy) {
      this.callerPolicy = new IamPolicy(this, "caller-policy", {
        name: props.callerPolicy.name,
        description: props.callerPolicy.description,
        policy: policyDocument(this.callerStatements),
      });
    }

    const common = {
      namespace: "AWS/Lambda",
      dimensions: { FunctionName: this.functionName },
      alarmActions: [props.alarmTopicArn],
      okActions: [props.alarmTopicArn],
      // No data means no requests, not a failure.
      treatMissingData: "notBreaching",
    };
    const p99ThresholdMs = Math.round(sizing.timeoutSeconds * 1000 * API_P99_ALARM_SHARE);
    this.alarms = [
      new CloudwatchMetricAlarm(this, "errors", {
        // The topic policy admits alarms named `<prefix>-*` (observability.ts).
        alarmName: `${this.functionName}-errors`,
        alarmDescription: `The ${title} Lambda failed (an exception, a timeout or bad configuration): callers got 502. A 503 for Redis beyond the deadline is not an error. Check its log group.`,
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
        alarmDescription: `The ${title}'s p99 duration is above ${p99ThresholdMs} ms, ${API_P99_ALARM_SHARE * 100}% of its ${sizing.timeoutSeconds} s timeout: requests are about to time out. Check MemoryDB latency and the function's cold starts.`,
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
