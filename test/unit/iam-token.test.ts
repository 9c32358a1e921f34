/**
 * MemoryDB IAM auth tokens: a SigV4-presigned `connect` request for service `memorydb`. The
 * signature is recomputed here from the SigV4 specification with node:crypto, independently
 * of the signer the code uses.
 */

import { createHash, createHmac } from "node:crypto";
import { describe, expect, it } from "vitest";
import { createMemoryDbIamToken, IAM_TOKEN_LIFETIME_S } from "../../functions/adapters/redis.js";

const credentials = {
  accessKeyId: "AKIDEXAMPLE",
  secretAccessKey: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
  sessionToken: "session/token+value=",
};

function hmac(key: Buffer | string, data: string): Buffer {
  return createHmac("sha256", key).update(data).digest();
}

function rfc3986(s: string): string {
  return encodeURIComponent(s).replace(
    /[!'()*]/g,
    (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`,
  );
}

function expectedSignature(
  host: string,
  query: Map<string, string>,
  date: string,
  region: string,
): string {
  const canonicalQuery = [...query.entries()]
    .filter(([k]) => k !== "X-Amz-Signature")
    .sort(([a], [b]) => (a < b ? -1 : 1))
    .map(([k, v]) => `${rfc3986(k)}=${rfc3986(v)}`)
    .join("&");
  const emptyHash = createHash("sha256").update("").digest("hex");
  const canonicalRequest = ["GET", "/", canonicalQuery, `host:${host}\n`, "host", emptyHash].join(
    "\n",
  );
  const scope = `${date.slice(0, 8)}/${region}/memorydb/aws4_request`;
  const stringToSign = [
    "AWS4-HMAC-SHA256",
    date,
    scope,
    createHash("sha256").update(canonicalRequest).digest("hex"),
  ].join("\n");
  let key = hmac(`AWS4${credentials.secretAccessKey}`, date.slice(0, 8));
  for (const part of [region, "memorydb", "aws4_request"]) key = hmac(key, part);
  return createHmac("sha256", key).update(stringToSign).digest("hex");
}

describe("MemoryDB IAM auth token", () => {
  it("is a SigV4 presigned connect request for the user, valid 15 minutes, without a scheme", async () => {
    const token = await createMemoryDbIamToken({
      clusterName: "sketchstream-dev",
      user: "consumer",
      region: "eu-west-1",
      credentials,
      signingDate: new Date("2024-03-09T14:02:11Z"),
    });
    expect(token.startsWith("sketchstream-dev/?")).toBe(true);
    const query = new Map(new URLSearchParams(token.slice(token.indexOf("?") + 1)).entries());
    expect(Object.fromEntries(query)).toMatchObject({
      Action: "connect",
      User: "consumer",
      "X-Amz-Algorithm": "AWS4-HMAC-SHA256",
      "X-Amz-Credential": "AKIDEXAMPLE/20240309/eu-west-1/memorydb/aws4_request",
      "X-Amz-Date": "20240309T140211Z",
      "X-Amz-Expires": String(IAM_TOKEN_LIFETIME_S),
      "X-Amz-SignedHeaders": "host",
      "X-Amz-Security-Token": credentials.sessionToken,
    });
    expect(IAM_TOKEN_LIFETIME_S).toBe(900);
    expect(query.get("X-Amz-Signature")).toBe(
      expectedSignature("sketchstream-dev", query, "20240309T140211Z", "eu-west-1"),
    );
  });

  it("changes with the signing time, so a refreshed token is a new one", async () => {
    const make = (iso: string) =>
      createMemoryDbIamToken({
        clusterName: "c",
        user: "reader",
        region: "us-east-1",
        credentials,
        signingDate: new Date(iso),
      });
    expect(await make("2024-03-09T14:00:00Z")).not.toBe(await make("2024-03-09T14:10:00Z"));
  });
});
