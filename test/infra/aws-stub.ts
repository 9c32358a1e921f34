/**
 * A loopback stand-in for the only AWS APIs `terraform plan` calls for this stack:
 *
 * - STS GetCallerIdentity (the aws_caller_identity data source): answers a fixed account;
 * - Kinesis DescribeLimits (the provider checks the on-demand stream quota of a new stream):
 *   answers a quota with room;
 * - Step Functions ValidateStateMachineDefinition (the provider validates a definition that
 *   is fully known at plan time): answers what asl-validator says about the definition it
 *   receives, in the API's result/diagnostics form, so a broken definition fails the plan.
 *
 * Anything else is answered with an error and recorded, so a test can assert that the plan
 * made no other call.
 */

import { createServer, type IncomingMessage, type Server } from "node:http";
import aslValidator from "asl-validator";
import { obj, str } from "./synth.js";

export const STUB_ACCOUNT = "123456789012";

export interface StubCall {
  readonly operation: string;
  readonly body: string;
}

export interface AwsStub {
  readonly url: string;
  readonly calls: StubCall[];
  /** Definitions received by ValidateStateMachineDefinition, with the result given. */
  readonly validations: { definition: string; result: "OK" | "FAIL" }[];
  readonly unexpected: StubCall[];
  close(): Promise<void>;
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => resolve(Buffer.concat(chunks).toString("utf8")));
    req.on("error", reject);
  });
}

export function validateDefinition(definition: string): {
  result: "OK" | "FAIL";
  diagnostics: { severity: string; code: string; message: string }[];
} {
  let parsed: unknown;
  try {
    parsed = JSON.parse(definition);
  } catch (e) {
    return {
      result: "FAIL",
      diagnostics: [{ severity: "ERROR", code: "INVALID_JSON_DESCRIPTION", message: String(e) }],
    };
  }
  const { isValid, errors } = aslValidator(parsed);
  return {
    result: isValid ? "OK" : "FAIL",
    diagnostics: errors.map((e) => ({
      severity: "ERROR",
      code: e["Error code"],
      message: e.Message,
    })),
  };
}

export async function startAwsStub(): Promise<AwsStub> {
  const calls: StubCall[] = [];
  const unexpected: StubCall[] = [];
  const validations: AwsStub["validations"] = [];
  const server: Server = createServer((req, res) => {
    readBody(req)
      .then((body) => {
        const target = req.headers["x-amz-target"];
        const action = new URLSearchParams(body).get("Action");
        const operation =
          typeof target === "string" ? target : (action ?? `${req.method} ${req.url}`);
        calls.push({ operation, body });
        if (operation === "AWSStepFunctions.ValidateStateMachineDefinition") {
          const definition = str(
            obj(JSON.parse(body), "ValidateStateMachineDefinition request").definition,
            "ValidateStateMachineDefinition definition",
          );
          const answer = validateDefinition(definition);
          validations.push({ definition, result: answer.result });
          res.writeHead(200, { "content-type": "application/x-amz-json-1.0" });
          res.end(JSON.stringify({ ...answer, truncated: false }));
          return;
        }
        if (operation === "Kinesis_20131202.DescribeLimits") {
          res.writeHead(200, { "content-type": "application/x-amz-json-1.1" });
          res.end(
            JSON.stringify({
              ShardLimit: 500,
              OpenShardCount: 0,
              OnDemandStreamCount: 0,
              OnDemandStreamCountLimit: 50,
            }),
          );
          return;
        }
        if (operation === "GetCallerIdentity") {
          res.writeHead(200, { "content-type": "text/xml" });
          res.end(
            `<GetCallerIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><GetCallerIdentityResult><Arn>arn:aws:iam::${STUB_ACCOUNT}:user/plan</Arn><UserId>AIDAPLANSTUB</UserId><Account>${STUB_ACCOUNT}</Account></GetCallerIdentityResult><ResponseMetadata><RequestId>00000000-0000-0000-0000-000000000000</RequestId></ResponseMetadata></GetCallerIdentityResponse>`,
          );
          return;
        }
        unexpected.push({ operation, body });
        res.writeHead(400, { "content-type": "application/x-amz-json-1.0" });
        res.end(
          JSON.stringify({
            __type: "UnknownOperationException",
            message: `the test stub does not answer ${operation}`,
          }),
        );
      })
      // An unreadable body, or a request the stub cannot read: a 500 naming why, not a hang.
      .catch((error: unknown) => {
        res.writeHead(500, { "content-type": "application/x-amz-json-1.0" });
        res.end(JSON.stringify({ __type: "InternalFailure", message: String(error) }));
      });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address();
  if (address === null || typeof address === "string") {
    throw new Error(`the stub listens on a TCP port, not ${address}`);
  }
  const { port } = address;
  return {
    url: `http://127.0.0.1:${port}`,
    calls,
    validations,
    unexpected,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
