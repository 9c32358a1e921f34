/**
 * The OpenAPI 3.1 document of the admin API, generated from its route definitions and valibot
 * schemas with the read API's converters (functions/api/openapi.ts).
 */

import { jsonSchema, parameters } from "../api/openapi.js";
import { AdminErrorBody, type AdminRouteDefinition } from "./app.js";

type JsonSchema = Record<string, unknown>;

const ERROR_RESPONSES = {
  "400":
    "Bad input (a site id, a body that is not JSON, a zone name that is not accepted): the message says what was wrong, with a valid example",
  "404": "Unknown route",
  "405": "A known path asked with a method it does not take; Allow lists those it does",
  "503":
    "Redis did not answer within the deadline; retry after Retry-After seconds (PUT and DELETE are idempotent)",
  "500": "The request failed inside the API; its log has the cause",
} as const;

export function adminOpenApiDocument(routes: readonly AdminRouteDefinition[]): JsonSchema {
  const error = {
    content: { "application/json": { schema: { $ref: "#/components/schemas/Error" } } },
  };
  const paths: Record<string, Record<string, JsonSchema>> = {};
  for (const route of routes) {
    const operations = paths[route.path] ?? {};
    operations[route.method.toLowerCase()] = {
      operationId: route.operationId,
      summary: route.summary,
      parameters: parameters(route),
      ...(route.body
        ? {
            requestBody: {
              required: true,
              content: { "application/json": { schema: jsonSchema(route.body) } },
            },
          }
        : {}),
      responses: {
        "200": {
          description: "OK",
          content: { "application/json": { schema: jsonSchema(route.response) } },
        },
        ...Object.fromEntries(
          Object.entries(ERROR_RESPONSES).map(([status, description]) => [
            status,
            { description, ...error },
          ]),
        ),
      },
    };
    paths[route.path] = operations;
  }
  return {
    openapi: "3.1.0",
    info: {
      title: "sketchstream admin API",
      version: "1",
      description:
        "Sets and removes per-site time zones in the zone registry. In AWS, a Lambda function URL with AWS_IAM auth, separate from the read API's: sign requests with SigV4 for the service `lambda`, including the body's SHA-256 (x-amz-content-sha256).",
    },
    paths,
    components: { schemas: { Error: jsonSchema(AdminErrorBody) } },
  };
}
