/**
 * Synthesizes a stack once per (environment, overrides) per test file and shares the result:
 * the synthesized JSON (as text for cdktf's Testing matchers and parsed for direct checks) and
 * the output directory with the assets, for terraform. Bundles come from the bundler's disk
 * cache after the first file, so esbuild runs once per change of the function sources.
 */

import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type App, Testing } from "cdktf";
import { first } from "../../functions/domain/arrays.js";
import {
  type ConfigOverrides,
  type EnvironmentName,
  loadConfig,
  type SketchstreamConfig,
} from "../../stacks/config.js";
import { SketchstreamStack, type StackSources } from "../../stacks/sketchstream-stack.js";

export type TfResource = Record<string, unknown>;

export interface TfJson {
  readonly terraform: Record<string, unknown>;
  readonly provider: Record<string, Record<string, unknown>[]>;
  readonly resource: Record<string, Record<string, TfResource>>;
  readonly data?: Record<string, Record<string, TfResource>>;
  readonly output: Record<string, { value: string; description?: string }>;
}

export interface Synthesized {
  readonly config: SketchstreamConfig;
  readonly stackName: string;
  /** Directory holding cdk.tf.json and assets/. */
  readonly stackDir: string;
  /** cdk.tf.json as text, for Testing.toHaveResourceWithProperties and friends. */
  readonly json: string;
  readonly tf: TfJson;
  /** Wall time of construct + synth in this process, ms (bundles excluded when cached). */
  readonly synthMs: number;
}

const cache = new Map<string, Synthesized>();
const outdirs: string[] = [];

/** Removes the synthesized directories (with their Lambda zips); for each file's afterAll. */
export function removeSynthOutputs(): void {
  for (const dir of outdirs.splice(0)) rmSync(dir, { recursive: true, force: true });
  cache.clear();
}

/** A cdktf Testing app in a scratch directory that removeSynthOutputs deletes. */
export function testApp(): App {
  const outdir = mkdtempSync(join(tmpdir(), "sketchstream-synth-"));
  outdirs.push(outdir);
  return Testing.app({ outdir });
}

export function synth(
  env: EnvironmentName,
  overrides: ConfigOverrides = {},
  sources: Partial<StackSources> = {},
): Synthesized {
  const key = JSON.stringify([env, overrides, sources]);
  const hit = cache.get(key);
  if (hit) return hit;
  const started = performance.now();
  const config = loadConfig(env, overrides);
  const app = testApp();
  new SketchstreamStack(app, config.namePrefix, { config, sources });
  app.synth();
  const outdir = app.outdir;
  const synthMs = performance.now() - started;
  const stackDir = join(outdir, "stacks", config.namePrefix);
  const json = readFileSync(join(stackDir, "cdk.tf.json"), "utf8");
  const result: Synthesized = {
    config,
    stackName: config.namePrefix,
    stackDir,
    json,
    tf: tfJson(JSON.parse(json)),
    synthMs,
  };
  cache.set(key, result);
  return result;
}

/** Every resource as [address, type, body], address = "<type>.<name>" as Terraform shows it. */
export function resources(tf: TfJson): [string, string, TfResource][] {
  return Object.entries(tf.resource).flatMap(([type, byName]) =>
    Object.entries(byName).map(([name, body]): [string, string, TfResource] => [
      `${type}.${name}`,
      type,
      body,
    ]),
  );
}

export function resourcesOfType(tf: TfJson, type: string): [string, TfResource][] {
  return Object.entries(tf.resource[type] ?? {}).map(([name, body]) => [`${type}.${name}`, body]);
}

/** [address, body] of the single resource of a type whose address contains `fragment`. */
function single(tf: TfJson, type: string, fragment: string): [string, TfResource] {
  const found = resourcesOfType(tf, type).filter(([address]) => address.includes(fragment));
  if (found.length !== 1) {
    throw new Error(
      `expected one ${type} matching "${fragment}", found ${found.map(([a]) => a).join(", ") || "none"}`,
    );
  }
  return first(found, `${type} matching "${fragment}"`);
}

/** The single resource of a type whose address contains `fragment`; fails if not exactly one. */
export function one(tf: TfJson, type: string, fragment = ""): TfResource {
  return single(tf, type, fragment)[1];
}

/** The address ("<type>.<name>") of the single resource of a type matching `fragment`. */
export function address(tf: TfJson, type: string, fragment: string): string {
  return single(tf, type, fragment)[0];
}

/** "${aws_x.name.attr}" reference to a resource, as the synthesized JSON writes it. */
export function ref(tf: TfJson, type: string, fragment: string, attribute: string): string {
  return `\${${address(tf, type, fragment)}.${attribute}}`;
}

export const ENVIRONMENTS: readonly EnvironmentName[] = ["dev", "prod"];

/** How the synthesized JSON refers to the account id read by aws_caller_identity. */
// biome-ignore lint/suspicious/noTemplateCurlyInString: a Terraform reference, not a JS template
export const ACCOUNT_REF = "${data.aws_caller_identity.current.account_id}";

/** The synthesized definition with the account id a plan would read; no reference may remain. */
export function plannedDefinition(definition: string, account = "123456789012"): unknown {
  const text = definition.split(ACCOUNT_REF).join(account);
  if (text.includes("${")) throw new Error(`unresolved reference left in the definition: ${text}`);
  return JSON.parse(text);
}

/*
 * Checked readers of untyped JSON (the synthesized config, policies, definitions, plans). Each
 * returns the value with the type it was checked for, or throws a TypeError naming what was
 * read (`what`), what was expected and what was found: a malformed synth fails with that message
 * where a cast would have let it through.
 */

/** A short description of a value for an error message: its kind and a bit of its JSON. */
function shown(value: unknown): string {
  if (value === undefined) return "undefined";
  if (Array.isArray(value)) return `an array of ${value.length}: ${clip(value)}`;
  if (value === null) return "null";
  return `${typeof value} ${clip(value)}`;
}

function clip(value: unknown): string {
  const text = JSON.stringify(value) ?? String(value);
  return text.length > 80 ? `${text.slice(0, 80)}…` : text;
}

function mismatch(what: string, expected: string, value: unknown): TypeError {
  return new TypeError(`${what}: expected ${expected}, got ${shown(value)}`);
}

/** Whether a value is a JSON object (not null, not an array). */
export function isObj(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

export function str(value: unknown, what: string): string {
  if (typeof value !== "string") throw mismatch(what, "a string", value);
  return value;
}

export function obj(value: unknown, what: string): Record<string, unknown> {
  if (!isObj(value)) throw mismatch(what, "an object", value);
  return value;
}

export function arr(value: unknown, what: string): unknown[] {
  if (!Array.isArray(value)) throw mismatch(what, "an array", value);
  return value;
}

/** An array whose every element is an object. */
export function objs(value: unknown, what: string): Record<string, unknown>[] {
  return arr(value, what).map((item, i) => obj(item, `${what}[${i}]`));
}

/** An array whose every element is a string. */
export function strs(value: unknown, what: string): string[] {
  return arr(value, what).map((item, i) => str(item, `${what}[${i}]`));
}

/** An object whose every value is read by `read`, e.g. `record(vars, "variables", str)`. */
export function record<T>(
  value: unknown,
  what: string,
  read: (item: unknown, what: string) => T,
): Record<string, T> {
  return Object.fromEntries(
    Object.entries(obj(value, what)).map(([key, item]) => [key, read(item, `${what}.${key}`)]),
  );
}

/** JSON text parsed, failing with `what` when the value is not a string or not JSON. */
export function parseJson(text: unknown, what: string): unknown {
  const source = str(text, what);
  try {
    return JSON.parse(source);
  } catch (e) {
    throw new TypeError(`${what}: expected JSON, got ${clip(source)} (${String(e)})`);
  }
}

/**
 * The value at a dotted path of objects, e.g. `dig(definition, "States.Plan.Resource", …)`;
 * throws naming the first step that is not an object. A missing last key gives undefined.
 */
export function dig(value: unknown, path: string, what: string): unknown {
  let current = value;
  let where = what;
  for (const key of path.split(".")) {
    current = obj(current, where)[key];
    where = `${where}.${key}`;
  }
  return current;
}

/** Like `dig`, but undefined, not an error, as soon as a step is not an object. */
export function peek(value: unknown, path: string): unknown {
  let current = value;
  for (const key of path.split(".")) {
    if (!isObj(current)) return undefined;
    current = current[key];
  }
  return current;
}

/** A value that must be there, e.g. what `find` returned: throws naming what was missing. */
export function defined<T>(value: T | undefined, what: string): T {
  if (value === undefined) throw new TypeError(`${what}: expected a value, got undefined`);
  return value;
}

/** A policy document (a JSON string in the synthesized config) as an object. */
export function policyDocument(text: unknown, what: string): Record<string, unknown> {
  return obj(parseJson(text, what), what);
}

/** The Statement list of a policy document, each statement an object. */
export function policyStatements(text: unknown, what: string): Record<string, unknown>[] {
  return objs(policyDocument(text, what).Statement, `${what} Statement`);
}

/** Resources (or data sources) by type, then by name. */
function blocks(value: unknown, what: string): Record<string, Record<string, TfResource>> {
  return record(value, what, (byName, where) => record(byName, where, obj));
}

/** cdk.tf.json, checked against the parts of TfJson the tests read. */
function tfJson(value: unknown): TfJson {
  const root = obj(value, "cdk.tf.json");
  return {
    ...root,
    terraform: obj(root.terraform, "terraform"),
    provider: record(root.provider, "provider", objs),
    resource: blocks(root.resource, "resource"),
    ...(root.data === undefined ? {} : { data: blocks(root.data, "data") }),
    output: record(root.output, "output", (item, what) => {
      const output = obj(item, what);
      return {
        ...output,
        value: str(output.value, `${what}.value`),
        ...(output.description === undefined
          ? {}
          : { description: str(output.description, `${what}.description`) }),
      };
    }),
  };
}
