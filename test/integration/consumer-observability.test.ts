/**
 * Powertools for AWS Lambda used fully: every log line of an invocation carries its request id
 * and cold-start flag (Logger context injection), and a cold start is counted once (the
 * ColdStart metric, EMF on stdout). Output is read where Lambda takes it: stdout and stderr.
 */

import { Logger } from "@aws-lambda-powertools/logger";
import { Metrics } from "@aws-lambda-powertools/metrics";
import { afterEach, describe, expect, it, vi } from "vitest";
import { createConsumerHandler } from "../../functions/consumer/handler.js";
import { lambdaContext } from "../../local/lambda-context.js";
import { testNowMs, utcDay } from "../helpers/clock.js";
import { consumerEnv, uniqueSitePrefix } from "../helpers/env.js";
import { kinesisEvent } from "../helpers/kinesis.js";

afterEach(() => {
  vi.restoreAllMocks();
  vi.unstubAllEnvs();
});

/** Every JSON line written to stdout or stderr (warnings) while `run` runs. */
async function outputJson(run: () => Promise<unknown>): Promise<Record<string, unknown>[]> {
  const lines: string[] = [];
  const capture = (chunk: unknown) => {
    lines.push(...String(chunk).split("\n"));
    return true;
  };
  vi.spyOn(process.stdout, "write").mockImplementation(capture);
  vi.spyOn(process.stderr, "write").mockImplementation(capture);
  try {
    await run();
  } finally {
    vi.restoreAllMocks();
  }
  return lines.filter((l) => l.startsWith("{")).map((l) => JSON.parse(l));
}

describe("consumer logs and metrics", () => {
  it("logs with the request id and cold-start flag, and counts one cold start", async () => {
    vi.stubEnv("POWERTOOLS_METRICS_DISABLED", "false");
    // What Lambda sets for on-demand execution environments (Powertools reads it for cold starts).
    vi.stubEnv("AWS_LAMBDA_INITIALIZATION_TYPE", "on-demand");
    const now = testNowMs();
    const site = `${uniqueSitePrefix()}obs`;
    const logger = new Logger({ serviceName: "sketchstream-consumer", logLevel: "WARN" });
    const metrics = new Metrics({ namespace: "sketchstream", serviceName: "consumer" });
    const handler = createConsumerHandler(consumerEnv(), { now: () => now, logger, metrics });
    const batch = () =>
      kinesisEvent([
        { user_id: "u-1", site_id: site, event: "view", event_time: `${utcDay(now)} 08:00:00` },
        "not json",
      ]);
    try {
      const first = lambdaContext({ functionName: "sketchstream-dev-consumer" });
      const cold = await outputJson(() => handler(batch(), first));
      const second = lambdaContext({ functionName: "sketchstream-dev-consumer" });
      const warm = await outputJson(() => handler(batch(), second));

      const quarantinedLog = (lines: Record<string, unknown>[]) =>
        lines.find((l) => l.message === "record quarantined");
      expect(quarantinedLog(cold)).toMatchObject({
        function_request_id: first.awsRequestId,
        function_name: "sketchstream-dev-consumer",
        cold_start: true,
        reason: "bad_json",
      });
      expect(quarantinedLog(warm)).toMatchObject({
        function_request_id: second.awsRequestId,
        cold_start: false,
      });
      const coldStarts = (lines: Record<string, unknown>[]) =>
        lines.filter((l) => "ColdStart" in l).map((l) => l.ColdStart);
      expect(coldStarts(cold)).toEqual([1]);
      expect(coldStarts(warm)).toEqual([]);
      // The batch's own metrics are published as EMF too.
      expect(warm.some((l) => l.RecordsQuarantined === 1 && l.RecordsReceived === 2)).toBe(true);
    } finally {
      handler.close();
    }
  });
});
