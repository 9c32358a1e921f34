/**
 * What every sketchstream Lambda shares: Node.js 22, the bundled code of its entry point as a
 * TerraformAsset with the zip's SHA-256 as source_code_hash (code changes, and only they,
 * redeploy), the private subnets and the functions' security group, the runtime contract
 * (functions/domain/runtime-env.ts) for its MemoryDB user, and a log group with
 * retention and KMS encryption that exists before the function can log.
 */

import { CloudwatchLogGroup } from "@cdktf/provider-aws/lib/cloudwatch-log-group/index.js";
import { LambdaFunction } from "@cdktf/provider-aws/lib/lambda-function/index.js";
import { AssetType, type ITerraformDependable, TerraformAsset } from "cdktf";
import { Construct } from "constructs";
import { type RuntimeEnvInput, toEnv } from "../functions/domain/runtime-env.js";
import type { Bundle } from "./bundle.js";
import type { Architecture, SketchstreamConfig } from "./config.js";

/**
 * What every function construct of the stack takes: its config, its code, where it runs (the
 * private subnets and the functions' security group), the KMS key of its logs, its MemoryDB
 * user, and the network rules it needs before anything may invoke it.
 */
export interface FunctionConstructProps {
  readonly config: SketchstreamConfig;
  readonly accountId: string;
  readonly asset: TerraformAsset;
  readonly bundle: Bundle;
  readonly subnetIds: readonly string[];
  readonly securityGroupIds: readonly string[];
  readonly kmsKeyArn: string;
  readonly networkReady: readonly ITerraformDependable[];
  readonly redis: MemorydbUserAccess;
}

/** The MemoryDB user a function connects as, and the ARNs its IAM policy names. */
export interface MemorydbUserAccess {
  readonly endpoint: string;
  readonly clusterName: string;
  readonly clusterArn: string;
  readonly userName: string;
  readonly userArn: string;
}

/** Where a function's MemoryDB user connects (values may be Terraform references). */
export interface RedisEnvironment {
  readonly endpoint: string;
  readonly clusterName: string;
  readonly user: string;
}

/**
 * The runtime contract's variables (functions/domain/runtime-env.ts) for a MemoryDB user of this
 * stack, over TLS with IAM auth: what the functions and the CLI's `cli_env` output share.
 */
export function memorydbEnvironment(
  config: SketchstreamConfig,
  redis: RedisEnvironment,
  extra: Pick<RuntimeEnvInput, "quarantine" | "region"> = {},
): Record<string, string> {
  return toEnv({
    endpoint: redis.endpoint,
    cluster: true,
    tls: true,
    auth: { mode: "iam", user: redis.user, clusterName: redis.clusterName },
    retention: config.retention,
    ...extra,
  });
}

/** A function's environment: the contract for its MemoryDB user, and what Node.js reads. */
export function runtimeEnvironment(
  config: SketchstreamConfig,
  redis: RedisEnvironment,
  extra: Pick<RuntimeEnvInput, "quarantine"> = {},
): Record<string, string> {
  return {
    ...memorydbEnvironment(config, redis, extra),
    // The bundle ships its source map: stack traces point at the TypeScript sources.
    NODE_OPTIONS: "--enable-source-maps",
  };
}

/** One asset per bundle per stack; several functions may share it. */
export function bundleAsset(scope: Construct, id: string, bundle: Bundle): TerraformAsset {
  return new TerraformAsset(scope, id, { path: bundle.zipPath, type: AssetType.FILE });
}

export interface VpcFunctionProps {
  readonly config: SketchstreamConfig;
  readonly functionName: string;
  readonly description: string;
  readonly asset: TerraformAsset;
  readonly bundle: Bundle;
  /** Export of the bundle to run, e.g. "handler" or "plan". */
  readonly handlerExport: string;
  readonly roleArn: string;
  readonly memoryMb: number;
  readonly timeoutSeconds: number;
  readonly architecture: Architecture;
  readonly subnetIds: readonly string[];
  readonly securityGroupIds: readonly string[];
  readonly environment: Record<string, string>;
  readonly kmsKeyArn: string;
  readonly tracing: boolean;
  readonly reservedConcurrency?: number;
  readonly publish?: boolean;
  /** Resources the function must wait for (its role's policy, so the first start can work). */
  readonly dependsOn?: readonly ITerraformDependable[];
}

export class VpcFunction extends Construct {
  readonly fn: LambdaFunction;
  readonly logGroup: CloudwatchLogGroup;

  constructor(scope: Construct, id: string, props: VpcFunctionProps) {
    super(scope, id);
    const { config } = props;
    this.logGroup = new CloudwatchLogGroup(this, "logs", {
      // Lambda's default group name: created here first, with retention and encryption,
      // instead of implicitly by Lambda without either.
      name: `/aws/lambda/${props.functionName}`,
      retentionInDays: config.logRetentionDays,
      kmsKeyId: props.kmsKeyArn,
    });
    this.fn = new LambdaFunction(this, "fn", {
      functionName: props.functionName,
      description: props.description,
      runtime: "nodejs22.x",
      handler: `index.${props.handlerExport}`,
      architectures: [props.architecture],
      filename: props.asset.path,
      sourceCodeHash: props.bundle.sha256,
      role: props.roleArn,
      memorySize: props.memoryMb,
      timeout: props.timeoutSeconds,
      environment: { variables: props.environment },
      vpcConfig: {
        subnetIds: [...props.subnetIds],
        securityGroupIds: [...props.securityGroupIds],
      },
      loggingConfig: { logFormat: "Text", logGroup: this.logGroup.name },
      tracingConfig: { mode: props.tracing ? "Active" : "PassThrough" },
      ...(props.reservedConcurrency !== undefined
        ? { reservedConcurrentExecutions: props.reservedConcurrency }
        : {}),
      ...(props.publish ? { publish: true } : {}),
      dependsOn: [this.logGroup, ...(props.dependsOn ?? [])],
    });
  }
}
