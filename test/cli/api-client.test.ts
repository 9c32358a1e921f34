/**
 * The read API client: SigV4 for a Lambda function URL with AWS_IAM auth. The Authorization
 * header is checked against a signature computed here from the specification with node:crypto
 * (test/cli/sigv4.ts), and the fetch that the client is given is the AWS edge whose request is
 * inspected. Also: where the region and the URL come from, and what a missing one says.
 */

import { describe, expect, it } from "vitest";
import { apiUrl, readApiFromEnv, regionOfFunctionUrl, signedGet } from "../../cli/api-client.js";
import { CliError } from "../../cli/io.js";
import { EMPTY_SHA256, sigV4Signature } from "./sigv4.js";

const credentials = {
  accessKeyId: "AKIDEXAMPLE",
  secretAccessKey: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
  sessionToken: "session/token+value=",
};
const signingDate = new Date("2024-03-09T14:02:11Z");
const FUNCTION_URL = "https://abcdefghijklmnopqrstuvwxyz012345.lambda-url.eu-west-1.on.aws";

interface Sent {
  readonly url: string;
  readonly method: string | undefined;
  readonly headers: Record<string, string>;
}

/** A fetch that records what it was asked and answers 200 `{}`. */
function recordingFetch(sent: Sent[]): typeof fetch {
  return async (input, init) => {
    const headers: Record<string, string> = {};
    new Headers(init?.headers).forEach((value, name) => {
      headers[name] = value;
    });
    sent.push({ url: String(input), method: init?.method, headers });
    return new Response("{}", { status: 200 });
  };
}

describe("signedGet", () => {
  it("signs method, host, path, query and the x-amz headers as a function URL expects, and sends exactly those", async () => {
    const sent: Sent[] = [];
    // Query parameters out of order, one repeated, one with characters SigV4 must encode.
    const url = new URL(
      `${FUNCTION_URL}/v1/sites/715/series?to=2024-03-31&from=2024-03-01&granularity=week&event=purchase&note=a%20b%2Fc*&note=0`,
    );
    const response = await signedGet(url, {
      region: "eu-west-1",
      credentials,
      fetch: recordingFetch(sent),
      now: () => signingDate,
    });
    expect(response.status).toBe(200);
    expect(sent).toHaveLength(1);
    const [request] = sent;
    expect(request?.url).toBe(url.href);
    expect(request?.method).toBe("GET");
    const signedHeaders = ["host", "x-amz-content-sha256", "x-amz-date", "x-amz-security-token"];
    const expectedSignature = sigV4Signature(
      {
        method: "GET",
        url,
        headers: {
          host: url.host,
          "x-amz-content-sha256": EMPTY_SHA256,
          "x-amz-date": "20240309T140211Z",
          "x-amz-security-token": credentials.sessionToken,
        },
      },
      signedHeaders,
      {
        secretAccessKey: credentials.secretAccessKey,
        region: "eu-west-1",
        service: "lambda",
        amzDate: "20240309T140211Z",
      },
    );
    expect(request?.headers).toEqual({
      authorization: `AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20240309/eu-west-1/lambda/aws4_request, SignedHeaders=${signedHeaders.join(";")}, Signature=${expectedSignature}`,
      host: url.host,
      "x-amz-content-sha256": EMPTY_SHA256,
      "x-amz-date": "20240309T140211Z",
      "x-amz-security-token": credentials.sessionToken,
    });
  });

  it("takes credentials from a provider, signs without a token when there is none, and with another date another signature", async () => {
    const sent: Sent[] = [];
    const url = new URL("http://127.0.0.1:8787/v1/sites?limit=5");
    const { sessionToken: _, ...longTerm } = credentials;
    for (const iso of ["2031-06-15T10:00:00Z", "2031-06-15T10:00:01Z"]) {
      await signedGet(url, {
        region: "us-east-1",
        credentials: async () => longTerm,
        fetch: recordingFetch(sent),
        now: () => new Date(iso),
      });
    }
    const [first, second] = sent;
    expect(Object.keys(first?.headers ?? {}).sort()).toEqual([
      "authorization",
      "host",
      "x-amz-content-sha256",
      "x-amz-date",
    ]);
    expect(first?.headers.host).toBe("127.0.0.1:8787");
    const signature = sigV4Signature(
      { method: "GET", url, headers: first?.headers ?? {} },
      ["host", "x-amz-content-sha256", "x-amz-date"],
      {
        secretAccessKey: credentials.secretAccessKey,
        region: "us-east-1",
        service: "lambda",
        amzDate: "20310615T100000Z",
      },
    );
    expect(first?.headers.authorization).toBe(
      `AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20310615/us-east-1/lambda/aws4_request, SignedHeaders=host;x-amz-content-sha256;x-amz-date, Signature=${signature}`,
    );
    expect(second?.headers.authorization).not.toBe(first?.headers.authorization);
  });
});

describe("regionOfFunctionUrl", () => {
  it("reads the region of <id>.lambda-url.<region>.on.aws and nothing else", () => {
    expect(regionOfFunctionUrl(new URL(`${FUNCTION_URL}/`))).toBe("eu-west-1");
    expect(
      regionOfFunctionUrl(new URL("https://abc123.lambda-url.us-gov-west-1.on.aws/v1/sites")),
    ).toBe("us-gov-west-1");
    expect(regionOfFunctionUrl(new URL("http://127.0.0.1:8787/"))).toBeUndefined();
    expect(regionOfFunctionUrl(new URL("https://example.com/"))).toBeUndefined();
    expect(
      regionOfFunctionUrl(new URL("https://abc.lambda-url.eu-west-1.on.aws.example.com/")),
    ).toBeUndefined();
  });
});

describe("readApiFromEnv", () => {
  it("is undefined without API_URL: the CLI then reads Redis", () => {
    expect(readApiFromEnv({})).toBeUndefined();
    expect(readApiFromEnv({ API_URL: " " })).toBeUndefined();
  });

  it("takes the region from the function URL, even when AWS_REGION names another", () => {
    const api = readApiFromEnv(
      { API_URL: `${FUNCTION_URL}/`, AWS_REGION: "us-east-1" },
      { apiCredentials: credentials },
    );
    expect(api?.options.region).toBe("eu-west-1");
    expect(api?.options.credentials).toBe(credentials);
    expect(
      api && apiUrl(api, "v1/sites/715/count", { from: "2024-03-01", event: undefined }).href,
    ).toBe(`${FUNCTION_URL}/v1/sites/715/count?from=2024-03-01`);
  });

  it("takes AWS_REGION for a URL that does not name its region, and keeps a base path", () => {
    const api = readApiFromEnv(
      { API_URL: "http://127.0.0.1:8787/prefix", AWS_REGION: "ap-southeast-2" },
      { apiCredentials: credentials },
    );
    expect(api?.options.region).toBe("ap-southeast-2");
    expect(api && apiUrl(api, "/v1/sites").href).toBe("http://127.0.0.1:8787/prefix/v1/sites");
  });

  it("uses the caller's standard credential chain when none is given", () => {
    const api = readApiFromEnv({ API_URL: `${FUNCTION_URL}/` });
    expect(typeof api?.options.credentials).toBe("function");
  });

  it("fails clearly for a URL without a region and no AWS_REGION, and for a malformed URL", () => {
    const noRegion = () => readApiFromEnv({ API_URL: "http://127.0.0.1:8787/" });
    expect(noRegion).toThrow(CliError);
    expect(noRegion).toThrow(
      /does not name its AWS region .* AWS_REGION is not set: set AWS_REGION/,
    );
    expect(() => readApiFromEnv({ API_URL: "lambda-url" })).toThrow(
      /API_URL="lambda-url" is not a URL/,
    );
    expect(() => readApiFromEnv({ API_URL: `${FUNCTION_URL}/?x=1` })).toThrow(
      /without a query or fragment/,
    );
  });
});
