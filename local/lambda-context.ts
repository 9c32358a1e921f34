/**
 * A Lambda invocation context for handlers run outside Lambda (the local poller, tests,
 * benchmarks): what the Lambda runtime passes, with a deadline that runs in real time.
 */

import { randomUUID } from "node:crypto";
import type { Context } from "aws-lambda";

export interface LambdaContextOptions {
  readonly functionName?: string;
  /** The invocation's time limit, ms from now. Default 60,000. */
  readonly timeoutMs?: number;
  readonly memoryMb?: number;
}

export function lambdaContext(options: LambdaContextOptions = {}): Context {
  const functionName = options.functionName ?? "sketchstream-local-consumer";
  const deadline = performance.now() + (options.timeoutMs ?? 60_000);
  const unsupported = () => {
    throw new Error("the callback API is not used by sketchstream's handlers");
  };
  return {
    callbackWaitsForEmptyEventLoop: false,
    functionName,
    functionVersion: "$LATEST",
    invokedFunctionArn: `arn:aws:lambda:us-east-1:000000000000:function:${functionName}`,
    memoryLimitInMB: String(options.memoryMb ?? 1024),
    awsRequestId: randomUUID(),
    logGroupName: `/aws/lambda/${functionName}`,
    logStreamName: "local",
    getRemainingTimeInMillis: () => Math.max(0, Math.round(deadline - performance.now())),
    done: unsupported,
    fail: unsupported,
    succeed: unsupported,
  };
}
