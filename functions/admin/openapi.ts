/**
 * The OpenAPI 3.1 document of the admin API, generated from its route definitions and valibot
 * schemas with the read API's converters (functions/api/openapi.ts).
 */

import { openApiFor } from "../api/openapi.js";
import { AdminErrorBody, type AdminRouteDefinition } from "./app.js";

type JsonSchema = Record<string, unknown>;

/** The admin API's document. */
export function adminOpenApiDocument(routes: readonly AdminRouteDefinition[]): JsonSchema {
  return openApiFor(
    {
      title: "sketchstream admin API",
      description:
        "Sets and removes per-site time zones in the zone registry, and deletes a site's data (offboarding, in resumable steps). In AWS, a Lambda function URL with AWS_IAM auth, separate from the read API's: sign requests with SigV4 for the service `lambda`, including the body's SHA-256 (x-amz-content-sha256).",
      errorBody: AdminErrorBody,
      errorResponses: {
        "400":
          "Bad input (a site id, a body that is not JSON, a zone name that is not accepted, a deletion without confirm={site} or with a cursor it did not give): the message says what was wrong, with a valid example",
        "404": "Unknown route",
        "405": "A known path asked with a method it does not take; Allow lists those it does",
        "503":
          "Redis did not answer within the deadline; retry after Retry-After seconds (PUT and DELETE are idempotent: repeat a deletion step with the same cursor)",
        "500": "The request failed inside the API; its log has the cause",
      },
    },
    routes,
  );
}
