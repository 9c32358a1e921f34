/**
 * The rollup workflow: three Lambdas from one bundle of functions/rollup/handler.ts (exports
 * plan, merge, finish), the Step Functions state machine rendered from
 * state-machines/rollup.asl.json, its logs and X-Ray tracing, and the EventBridge Scheduler
 * schedule (with its own role) that starts it with input {}.
 *
 * The definition gets the functions' ARNs built from region, account and name rather than
 * references to the function resources: the definition is then fully known at plan time, so
 * the provider validates it with Step Functions' ValidateStateMachineDefinition during
 * `terraform plan`, before anything is created. An explicit depends_on keeps the order.
 */

import { existsSync, readFileSync } from "node:fs";
import { relative } from "node:path";
import { CloudwatchLogGroup } from "@cdktf/provider-aws/lib/cloudwatch-log-group/index.js";
import { SchedulerSchedule } from "@cdktf/provider-aws/lib/scheduler-schedule/index.js";
import { SfnStateMachine } from "@cdktf/provider-aws/lib/sfn-state-machine/index.js";
import type { ITerraformDependable } from "cdktf";
import { Construct } from "constructs";
import { recordOf } from "../functions/domain/arrays.js";
import { type AslValues, renderAsl } from "../state-machines/render.js";
import { type FunctionConstructProps, runtimeEnvironment, VpcFunction } from "./function.js";
import {
  arn,
  LAMBDA_VPC_STATEMENT,
  logWriteStatement,
  memorydbConnectStatement,
  ServiceRole,
  UNSCOPABLE_ACTIONS,
  XRAY_STATEMENT,
} from "./policy.js";

export const ROLLUP_HANDLERS = ["plan", "merge", "finish"] as const;
export type RollupHandler = (typeof ROLLUP_HANDLERS)[number];

/**
 * Reads an ASL template and fills its `${Name}` placeholders: every placeholder the file
 * declares must be given and nothing else may be (state-machines/render.ts enforces both and
 * names the offenders), so a renamed placeholder fails synth instead of reaching AWS.
 */
export function renderStateMachine(templatePath: string, values: AslValues, root: string): string {
  const shown = relative(root, templatePath);
  if (!existsSync(templatePath)) {
    throw new Error(
      `state machine template ${shown} does not exist: the rollup stack renders it with ${Object.keys(values).join(", ")}`,
    );
  }
  return renderAsl(readFileSync(templatePath, "utf8"), values, shown);
}

export interface RollupProps extends FunctionConstructProps {
  readonly aslPath: string;
  readonly projectRoot: string;
  /** What a merge needs before the schedule may start executions: the network rules. */
  readonly networkReady: readonly ITerraformDependable[];
}

export class Rollup extends Construct {
  readonly functions: Readonly<Record<RollupHandler, VpcFunction>>;
  readonly stateMachine: SfnStateMachine;
  readonly stateMachineName: string;
  readonly logGroup: CloudwatchLogGroup;
  readonly schedule: SchedulerSchedule;
  /** The rendered definition, as synthesized (account id may be a Terraform reference). */
  readonly definition: string;

  constructor(scope: Construct, id: string, props: RollupProps) {
    super(scope, id);
    const { config, accountId } = props;
    const r = config.rollup;
    const prefix = config.namePrefix;
    const region = config.region;
    const names = recordOf(ROLLUP_HANDLERS, (h) => `${prefix}-rollup-${h}`);
    const functionArns = recordOf(ROLLUP_HANDLERS, (h) =>
      arn("lambda", region, accountId, `function:${names[h]}`),
    );

    const role = new ServiceRole(this, "functions-role", {
      name: `${prefix}-rollup`,
      service: "lambda.amazonaws.com",
      statements: [
        logWriteStatement(
          ROLLUP_HANDLERS.map((h) =>
            arn("logs", region, accountId, `log-group:/aws/lambda/${names[h]}`),
          ),
        ),
        LAMBDA_VPC_STATEMENT,
        memorydbConnectStatement(props.redis.clusterArn, props.redis.userArn),
        XRAY_STATEMENT,
      ],
    });
    const environment = runtimeEnvironment(config, {
      endpoint: props.redis.endpoint,
      clusterName: props.redis.clusterName,
      user: props.redis.userName,
    });
    const functions = recordOf(
      ROLLUP_HANDLERS,
      (h) =>
        new VpcFunction(this, h, {
          config,
          functionName: names[h],
          description: `Rollup ${h}: merges daily HyperLogLogs into weeks and months`,
          asset: props.asset,
          bundle: props.bundle,
          handlerExport: h,
          roleArn: role.role.arn,
          memoryMb: r.memoryMb,
          timeoutSeconds: r.timeoutSeconds,
          architecture: r.architecture,
          subnetIds: props.subnetIds,
          securityGroupIds: props.securityGroupIds,
          environment,
          kmsKeyArn: props.kmsKeyArn,
          tracing: true,
          dependsOn: [role.policy],
        }),
    );
    this.functions = functions;

    this.stateMachineName = `${prefix}-rollup`;
    // Vended-log groups under /aws/vendedlogs/ keep the CloudWatch Logs resource policy that
    // Step Functions writes small.
    this.logGroup = new CloudwatchLogGroup(this, "logs", {
      name: `/aws/vendedlogs/states/${this.stateMachineName}`,
      retentionInDays: config.logRetentionDays,
      kmsKeyId: props.kmsKeyArn,
    });
    const sfnRole = new ServiceRole(this, "state-machine-role", {
      name: `${prefix}-rollup-sfn`,
      service: "states.amazonaws.com",
      sourceAccount: accountId,
      statements: [
        {
          Sid: "InvokeRollupFunctions",
          Effect: "Allow",
          Action: "lambda:InvokeFunction",
          Resource: ROLLUP_HANDLERS.flatMap((h) => [functionArns[h], `${functionArns[h]}:*`]),
        },
        {
          Sid: "DeliverLogs",
          Effect: "Allow",
          Action: Object.keys(UNSCOPABLE_ACTIONS).filter((a) => a.startsWith("logs:")),
          Resource: "*",
        },
        XRAY_STATEMENT,
      ],
    });

    this.definition = renderStateMachine(
      props.aslPath,
      {
        PlanFunctionArn: functionArns.plan,
        MergeFunctionArn: functionArns.merge,
        FinishFunctionArn: functionArns.finish,
        MapMaxConcurrency: r.mapMaxConcurrency,
      },
      props.projectRoot,
    );
    this.stateMachine = new SfnStateMachine(this, "state-machine", {
      name: this.stateMachineName,
      type: "STANDARD",
      roleArn: sfnRole.role.arn,
      definition: this.definition,
      loggingConfiguration: {
        logDestination: `${this.logGroup.arn}:*`,
        level: r.logLevel,
        includeExecutionData: r.includeExecutionData,
      },
      tracingConfiguration: { enabled: true },
      dependsOn: [sfnRole.policy, ...ROLLUP_HANDLERS.map((h) => functions[h].fn)],
    });

    const schedulerRole = new ServiceRole(this, "scheduler-role", {
      name: `${prefix}-rollup-scheduler`,
      service: "scheduler.amazonaws.com",
      sourceAccount: accountId,
      statements: [
        {
          Sid: "StartRollup",
          Effect: "Allow",
          Action: "states:StartExecution",
          Resource: this.stateMachine.arn,
        },
      ],
    });
    this.schedule = new SchedulerSchedule(this, "schedule", {
      name: this.stateMachineName,
      description: "Starts the scheduled, incremental rollup (input {})",
      scheduleExpression: r.scheduleExpression,
      scheduleExpressionTimezone: r.scheduleTimezone,
      state: r.scheduleEnabled ? "ENABLED" : "DISABLED",
      flexibleTimeWindow: { mode: "OFF" },
      target: {
        arn: this.stateMachine.arn,
        roleArn: schedulerRole.role.arn,
        input: "{}",
        // A run that cannot start is retried for an hour; the next run covers it anyway, since
        // the touched set keeps everything that is still to merge.
        retryPolicy: { maximumRetryAttempts: 10, maximumEventAgeInSeconds: 3600 },
      },
      dependsOn: [schedulerRole.policy, ...props.networkReady],
    });
  }
}
