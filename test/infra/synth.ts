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
    tf: JSON.parse(json) as TfJson,
    synthMs,
  };
  cache.set(key, result);
  return result;
}

/** Every resource as [address, type, body], address = "<type>.<name>" as Terraform shows it. */
export function resources(tf: TfJson): [string, string, TfResource][] {
  return Object.entries(tf.resource).flatMap(([type, byName]) =>
    Object.entries(byName).map(
      ([name, body]) => [`${type}.${name}`, type, body] as [string, string, TfResource],
    ),
  );
}

export function resourcesOfType(tf: TfJson, type: string): [string, TfResource][] {
  return Object.entries(tf.resource[type] ?? {}).map(([name, body]) => [`${type}.${name}`, body]);
}

/** The single resource of a type whose address contains `fragment`; fails if not exactly one. */
export function one(tf: TfJson, type: string, fragment = ""): TfResource {
  const found = resourcesOfType(tf, type).filter(([address]) => address.includes(fragment));
  if (found.length !== 1) {
    throw new Error(
      `expected one ${type} matching "${fragment}", found ${found.map(([a]) => a).join(", ") || "none"}`,
    );
  }
  return (found[0] as [string, TfResource])[1];
}

/** The address ("<type>.<name>") of the single resource of a type matching `fragment`. */
export function address(tf: TfJson, type: string, fragment: string): string {
  const found = resourcesOfType(tf, type).filter(([a]) => a.includes(fragment));
  if (found.length !== 1) throw new Error(`expected one ${type} matching "${fragment}"`);
  return (found[0] as [string, TfResource])[0];
}

/** "${aws_x.name.attr}" reference to a resource, as the synthesized JSON writes it. */
export function ref(tf: TfJson, type: string, fragment: string, attribute: string): string {
  const found = resourcesOfType(tf, type).filter(([address]) => address.includes(fragment));
  if (found.length !== 1) throw new Error(`expected one ${type} matching "${fragment}"`);
  return `\${${(found[0] as [string, TfResource])[0]}.${attribute}}`;
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
