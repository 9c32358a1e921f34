/**
 * The state machine definition the stack deploys: rendered from state-machines/rollup.asl.json
 * by placeholder substitution, valid per asl-validator, wired to the rollup functions; and
 * synth fails, naming the placeholder, when the template and the stack disagree.
 */

import { join } from "node:path";
import aslValidator from "asl-validator";
import { afterAll, describe, expect, it } from "vitest";
import { loadConfig } from "../../stacks/config.js";
import { DEFAULT_SOURCES, SketchstreamStack } from "../../stacks/sketchstream-stack.js";
import { declaredPlaceholders } from "../../state-machines/render.js";
import {
  ACCOUNT_REF,
  dig,
  ENVIRONMENTS,
  one,
  parseJson,
  plannedDefinition,
  removeSynthOutputs,
  str,
  synth,
  testApp,
} from "./synth.js";

afterAll(removeSynthOutputs);

const FIXTURES = join(import.meta.dirname, "fixtures");

describe.each(ENVIRONMENTS)("rollup definition, %s", (env) => {
  const { tf, config } = synth(env);
  const definition = str(one(tf, "aws_sfn_state_machine").definition, "state machine definition");

  it("is valid Amazon States Language (asl-validator)", () => {
    const result = aslValidator(plannedDefinition(definition));
    expect(result.errors).toEqual([]);
    expect(result.isValid).toBe(true);
  });

  it("calls exactly the three rollup functions the stack creates, by their handler exports", () => {
    const functions = Object.fromEntries(
      Object.values(tf.resource.aws_lambda_function ?? {}).map((f) => [
        `arn:aws:lambda:${config.region}:123456789012:function:${f.function_name}`,
        f.handler,
      ]),
    );
    const text = JSON.stringify(plannedDefinition(definition));
    const called = [...new Set(text.match(/arn:aws:lambda:[^"]+/g))].sort();
    expect(called.map((a) => functions[a]).sort()).toEqual([
      "index.finish",
      "index.merge",
      "index.plan",
    ]);
  });

  it("fills every placeholder the template declares, the concurrency as a number", () => {
    expect(declaredPlaceholders(definition.split(ACCOUNT_REF).join(""))).toEqual([]);
    const def = plannedDefinition(definition);
    expect(dig(def, "States.MergePages.MaxConcurrency", "definition")).toBe(
      config.rollup.mapMaxConcurrency,
    );
  });
});

describe("synth fails when the template and the stack disagree", () => {
  const config = loadConfig("dev");
  const build = (rollupAsl: string) => () =>
    new SketchstreamStack(testApp(), "t", { config, sources: { rollupAsl } });

  it("works with a small template of the same placeholders", () => {
    const stack = build(join(FIXTURES, "small.asl.json"))();
    const def = parseJson(
      stack.rollup.definition.replace(/\$\{TfToken\[[^\]]+\]\}/g, "1"),
      "small definition",
    );
    expect(dig(def, "States.Merge.MaxConcurrency", "definition")).toBe(
      config.rollup.mapMaxConcurrency,
    );
  });

  it("names a placeholder the stack does not supply", () => {
    expect(build(join(FIXTURES, "extra-placeholder.asl.json"))).toThrow(
      /test\/infra\/fixtures\/extra-placeholder\.asl\.json: missing value\(s\) for \$\{AlarmTopicArn\}/,
    );
  });

  it("names a value the template has no placeholder for", () => {
    expect(build(join(FIXTURES, "no-concurrency.asl.json"))).toThrow(
      /no placeholder for MapMaxConcurrency/,
    );
  });

  it("names a missing template file", () => {
    expect(build(join(FIXTURES, "absent.asl.json"))).toThrow(
      "state machine template test/infra/fixtures/absent.asl.json does not exist",
    );
  });

  it("reads the real template by default", () => {
    expect(DEFAULT_SOURCES.rollupAsl).toMatch(/state-machines\/rollup\.asl\.json$/);
  });
});
