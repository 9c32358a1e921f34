/**
 * SigV4 header signatures computed from the specification with node:crypto, independently of
 * the signer the code uses (@smithy/signature-v4): the canonical request, the string to sign,
 * the signing key. The tests check the client's Authorization header against it, and the test
 * servers use it to refuse a request the way a function URL with AWS_IAM auth would.
 */

import { createHash, createHmac } from "node:crypto";

export const EMPTY_SHA256 = createHash("sha256").update("").digest("hex");

function hmac(key: Buffer | string, data: string): Buffer {
  return createHmac("sha256", key).update(data).digest();
}

/** RFC 3986 percent-encoding, as SigV4 wants it (only A-Z a-z 0-9 - _ . ~ left as they are). */
export function rfc3986(s: string): string {
  return encodeURIComponent(s).replace(
    /[!'()*]/g,
    (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`,
  );
}

export interface SignedRequest {
  readonly method: string;
  /** The request URL as sent (path still percent-encoded once, raw query). */
  readonly url: URL;
  /** Header names in lower case. */
  readonly headers: Readonly<Record<string, string>>;
}

export interface SigningScope {
  readonly secretAccessKey: string;
  readonly region: string;
  readonly service: string;
  /** `YYYYMMDDTHHMMSSZ` */
  readonly amzDate: string;
}

/** The canonical request of a body-less request over `signedHeaders` (lower case, sorted). */
export function canonicalRequest(request: SignedRequest, signedHeaders: readonly string[]): string {
  // Every service but S3 encodes each path segment again: once in the URL, once here.
  const canonicalUri = request.url.pathname
    .split("/")
    .map((segment) => rfc3986(segment))
    .join("/");
  const canonicalQuery = [...request.url.searchParams.entries()]
    .map(([k, v]) => [rfc3986(k), rfc3986(v)] as const)
    .sort(([a, x], [b, y]) => (a === b ? (x < y ? -1 : 1) : a < b ? -1 : 1))
    .map(([k, v]) => `${k}=${v}`)
    .join("&");
  const canonicalHeaders = signedHeaders
    .map((name) => `${name}:${(request.headers[name] ?? "").trim().replace(/\s+/g, " ")}\n`)
    .join("");
  return [
    request.method,
    canonicalUri,
    canonicalQuery,
    canonicalHeaders,
    signedHeaders.join(";"),
    request.headers["x-amz-content-sha256"] ?? EMPTY_SHA256,
  ].join("\n");
}

/** The hex signature of the request for the scope. */
export function sigV4Signature(
  request: SignedRequest,
  signedHeaders: readonly string[],
  scope: SigningScope,
): string {
  const day = scope.amzDate.slice(0, 8);
  const credentialScope = `${day}/${scope.region}/${scope.service}/aws4_request`;
  const stringToSign = [
    "AWS4-HMAC-SHA256",
    scope.amzDate,
    credentialScope,
    createHash("sha256").update(canonicalRequest(request, signedHeaders)).digest("hex"),
  ].join("\n");
  let key = hmac(`AWS4${scope.secretAccessKey}`, day);
  for (const part of [scope.region, scope.service, "aws4_request"]) key = hmac(key, part);
  return createHmac("sha256", key).update(stringToSign).digest("hex");
}

export interface Authorization {
  readonly accessKeyId: string;
  readonly day: string;
  readonly region: string;
  readonly service: string;
  readonly signedHeaders: readonly string[];
  readonly signature: string;
}

const AUTHORIZATION_RE =
  /^AWS4-HMAC-SHA256 Credential=([^/]+)\/(\d{8})\/([^/]+)\/([^/]+)\/aws4_request, SignedHeaders=([a-z0-9;-]+), Signature=([0-9a-f]{64})$/;

/** The parts of a SigV4 Authorization header, or undefined when it is not one. */
export function parseAuthorization(header: string | null | undefined): Authorization | undefined {
  const m = AUTHORIZATION_RE.exec(header ?? "");
  if (!m) return undefined;
  const [, accessKeyId = "", day = "", region = "", service = "", names = "", signature = ""] = m;
  return { accessKeyId, day, region, service, signedHeaders: names.split(";"), signature };
}

/**
 * What a function URL with AWS_IAM auth checks, for one known key: the Authorization header
 * parses, names the key, the `lambda` service and the expected region, signs host and
 * x-amz-date, and its signature is the one the request deserves. Undefined when all hold;
 * else the reason.
 */
export function verifySigV4(
  request: SignedRequest,
  expected: { accessKeyId: string; secretAccessKey: string; region: string },
): string | undefined {
  const auth = parseAuthorization(request.headers.authorization);
  if (!auth) return `no SigV4 Authorization header: ${request.headers.authorization}`;
  if (auth.accessKeyId !== expected.accessKeyId) return `unknown key ${auth.accessKeyId}`;
  if (auth.service !== "lambda" || auth.region !== expected.region) {
    return `signed for ${auth.region}/${auth.service}, not ${expected.region}/lambda`;
  }
  if (!auth.signedHeaders.includes("host") || !auth.signedHeaders.includes("x-amz-date")) {
    return `host and x-amz-date must be signed, got ${auth.signedHeaders.join(";")}`;
  }
  const amzDate = request.headers["x-amz-date"] ?? "";
  if (amzDate.slice(0, 8) !== auth.day) return `x-amz-date ${amzDate} is not of ${auth.day}`;
  const signature = sigV4Signature(request, auth.signedHeaders, {
    secretAccessKey: expected.secretAccessKey,
    region: expected.region,
    service: "lambda",
    amzDate,
  });
  return signature === auth.signature ? undefined : "the signature does not match";
}
