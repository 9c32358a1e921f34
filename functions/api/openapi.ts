/**
 * The OpenAPI 3.1 document of the read API, generated from the route definitions and their
 * valibot schemas (functions/api/schemas.ts), so what is documented is what is validated.
 */

import { toJsonSchema } from "@valibot/to-json-schema";
import type * as v from "valibot";
import type { RouteDefinition } from "./app.js";
import { ErrorBody } from "./schemas.js";

type JsonSchema = Record<string, unknown>;

/** A valibot schema as JSON Schema (draft 2020-12, OpenAPI 3.1's dialect). */
export function jsonSchema(schema: v.GenericSchema): JsonSchema {
  // Checks across fields (from <= to, range length) have no JSON Schema form: they are
  // described in the route's summary and enforced by the app.
  const { $schema: _, ...rest } = toJsonSchema(schema, {
    target: "draft-2020-12",
    errorMode: "ignore",
  }) as JsonSchema;
  return rest;
}

/** Path and query parameters of a route, from the properties of its object schemas. */
export function parameters(route: Pick<RouteDefinition, "params" | "query">): JsonSchema[] {
  const out: JsonSchema[] = [];
  for (const [where, schema] of [
    ["path", route.params],
    ["query", route.query],
  ] as const) {
    if (!schema) continue;
    const object = jsonSchema(schema);
    const properties = (object.properties ?? {}) as Record<string, JsonSchema>;
    const required = new Set((object.required ?? []) as string[]);
    for (const [name, property] of Object.entries(properties)) {
      const { description, ...rest } = property;
      out.push({
        name,
        in: where,
        required: where === "path" || required.has(name),
        ...(description === undefined ? {} : { description }),
        schema: rest,
      });
    }
  }
  return out;
}

const ERROR_RESPONSES = {
  "400": "Bad input: the message says which parameter and what to do",
  "404": "Unknown route, or a site with no counted event",
  "503": "Redis did not answer within the deadline; retry after Retry-After seconds",
  "500": "The request failed inside the API; its log has the cause",
} as const;

export function openApiDocument(routes: readonly RouteDefinition[]): JsonSchema {
  const error = {
    content: { "application/json": { schema: { $ref: "#/components/schemas/Error" } } },
  };
  const paths: Record<string, JsonSchema> = {};
  for (const route of routes) {
    paths[route.path] = {
      get: {
        operationId: route.operationId,
        summary: route.summary,
        parameters: parameters(route),
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
      },
    };
  }
  return {
    openapi: "3.1.0",
    info: {
      title: "sketchstream read API",
      version: "1",
      description:
        "Unique-visitor and event counts from HyperLogLogs in MemoryDB (metric=visitors|events). In AWS, a Lambda function URL with AWS_IAM auth: sign requests with SigV4 for the service `lambda`.",
    },
    paths,
    components: { schemas: { Error: jsonSchema(ErrorBody) } },
  };
}
