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
function jsonSchema(schema: v.GenericSchema): JsonSchema {
  // Checks across fields (from <= to, range length) have no JSON Schema form: they are
  // described in the route's summary and enforced by the app.
  const { $schema: _, ...rest } = toJsonSchema(schema, {
    target: "draft-2020-12",
    errorMode: "ignore",
  }) as JsonSchema;
  return rest;
}

/** Path and query parameters of a route, from the properties of its object schemas. */
function parameters(route: Pick<DocumentedRoute, "params" | "query">): JsonSchema[] {
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

/** What a document says of one route: the fields the read and admin routes share. */
export interface DocumentedRoute {
  readonly operationId: string;
  readonly path: string;
  readonly summary: string;
  /** HTTP method; GET when absent (every read route). */
  readonly method?: string;
  readonly params?: v.GenericSchema | undefined;
  readonly query?: v.GenericSchema | undefined;
  /** A JSON request body. */
  readonly body?: v.GenericSchema | undefined;
  readonly response: v.GenericSchema;
}

/** What differs between the documents of the read and admin APIs. */
export interface DocumentInfo {
  readonly title: string;
  readonly description: string;
  /** The `{"error","message"}` body of every error answer. */
  readonly errorBody: v.GenericSchema;
  /** Status -> what it means, for every error answer the routes may give. */
  readonly errorResponses: Readonly<Record<string, string>>;
}

/** An OpenAPI 3.1 document of `routes`. */
export function openApiFor(info: DocumentInfo, routes: readonly DocumentedRoute[]): JsonSchema {
  const error = {
    content: { "application/json": { schema: { $ref: "#/components/schemas/Error" } } },
  };
  const errors = Object.fromEntries(
    Object.entries(info.errorResponses).map(([status, description]) => [
      status,
      { description, ...error },
    ]),
  );
  const paths: Record<string, Record<string, JsonSchema>> = {};
  for (const route of routes) {
    const operations = paths[route.path] ?? {};
    operations[(route.method ?? "GET").toLowerCase()] = {
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
        ...errors,
      },
    };
    paths[route.path] = operations;
  }
  return {
    openapi: "3.1.0",
    info: { title: info.title, version: "1", description: info.description },
    paths,
    components: { schemas: { Error: jsonSchema(info.errorBody) } },
  };
}

/** The read API's document. */
export function openApiDocument(routes: readonly RouteDefinition[]): JsonSchema {
  return openApiFor(
    {
      title: "sketchstream read API",
      description:
        "Unique-visitor and event counts from HyperLogLogs in MemoryDB (metric=visitors|events). Dates are the site's local dates, in its time zone (GET /v1/sites/{site}/time-zone; UTC without one), which counts and series name in `timeZone`; today, retention and caching follow that zone. In AWS, a Lambda function URL with AWS_IAM auth: sign requests with SigV4 for the service `lambda`.",
      errorBody: ErrorBody,
      errorResponses: {
        "400": "Bad input: the message says which parameter and what to do",
        "404": "Unknown route, or a site with no counted event",
        "503": "Redis did not answer within the deadline; retry after Retry-After seconds",
        "500": "The request failed inside the API; its log has the cause",
      },
    },
    routes,
  );
}
