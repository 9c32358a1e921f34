/** Lambda function URL events as AWS sends them (API Gateway payload 2.0), with AWS_IAM auth. */

import { testNowMs } from "./clock.js";

export interface FunctionUrlRequest {
  readonly method: string;
  readonly path: string;
  readonly query?: string;
  /** A JSON body; absent for none. */
  readonly body?: string;
}

export function functionUrlEvent(request: FunctionUrlRequest) {
  const query = request.query ?? "";
  return {
    version: "2.0",
    routeKey: "$default",
    rawPath: request.path,
    rawQueryString: query,
    headers: {
      host: "abc123.lambda-url.eu-west-1.on.aws",
      "x-forwarded-proto": "https",
      ...(request.body === undefined ? {} : { "content-type": "application/json" }),
    },
    ...(query === ""
      ? {}
      : { queryStringParameters: Object.fromEntries(new URLSearchParams(query)) }),
    requestContext: {
      accountId: "123456789012",
      apiId: "abc123",
      // AWS_IAM auth: the caller, as the function URL reports it.
      authentication: null,
      authorizer: {
        iam: {
          accessKey: "AKIAEXAMPLE",
          accountId: "123456789012",
          callerId: "AIDAEXAMPLE",
          userArn: "arn:aws:iam::123456789012:user/operator",
          userId: "AIDAEXAMPLE",
          cognitoIdentity: null,
          principalOrgId: null,
        },
      },
      domainName: "abc123.lambda-url.eu-west-1.on.aws",
      domainPrefix: "abc123",
      http: {
        method: request.method,
        path: request.path,
        protocol: "HTTP/1.1",
        sourceIp: "203.0.113.7",
        userAgent: "test",
      },
      requestId: "req-1",
      routeKey: "$default",
      stage: "$default",
      time: "15/Jun/2031:10:00:00 +0000",
      timeEpoch: testNowMs(),
    },
    body: request.body ?? null,
    isBase64Encoded: false,
  };
}
