import { readFileSync } from "node:fs";
import aslValidator from "asl-validator";
import { describe, expect, it } from "vitest";
import {
  declaredPlaceholders,
  ROLLUP_ASL_PATH,
  renderAsl,
  renderRollupAsl,
} from "../../state-machines/render.js";

const VALUES = {
  PlanFunctionArn: "arn:aws:lambda:eu-west-1:123456789012:function:sketchstream-dev-rollup-plan",
  MergeFunctionArn: "arn:aws:lambda:eu-west-1:123456789012:function:sketchstream-dev-rollup-merge",
  FinishFunctionArn:
    "arn:aws:lambda:eu-west-1:123456789012:function:sketchstream-dev-rollup-finish",
  MapMaxConcurrency: 4,
};

describe("rollup state machine definition", () => {
  it("declares exactly the placeholders the stack and the local runner fill", () => {
    expect(declaredPlaceholders(readFileSync(ROLLUP_ASL_PATH, "utf8"))).toEqual(
      Object.keys(VALUES).sort(),
    );
  });

  it("renders to a definition that asl-validator accepts", () => {
    const definition = JSON.parse(renderRollupAsl(VALUES));
    const result = aslValidator(definition);
    expect(result.errors).toEqual([]);
    expect(result.isValid).toBe(true);
    expect(definition.States.MergePages.MaxConcurrency).toBe(4);
    expect(definition.States.Plan.Resource).toBe(VALUES.PlanFunctionArn);
    // Dates come from the execution, not from a Lambda's clock.
    expect(definition.States.Plan.Parameters["startTime.$"]).toBe("$$.Execution.StartTime");
  });

  it("is rejected by asl-validator when a placeholder is left as text", () => {
    const broken = JSON.parse(readFileSync(ROLLUP_ASL_PATH, "utf8"));
    expect(aslValidator(broken).isValid).toBe(false);
  });

  it("fails with the names of missing and unknown placeholders", () => {
    const { MapMaxConcurrency: _, ...missing } = VALUES;
    expect(() => renderRollupAsl(missing)).toThrow(
      /missing value\(s\) for \$\{MapMaxConcurrency\}/,
    );
    expect(() => renderRollupAsl({ ...VALUES, Extra: "x" })).toThrow(/no placeholder for Extra/);
  });

  it("escapes string values so they cannot break the JSON", () => {
    // biome-ignore lint/suspicious/noTemplateCurlyInString: an ASL template, not a JS template
    const out = renderAsl('{"a":"${X}","n":"${N}"}', { X: 'quote " and \\ backslash', N: 3 });
    expect(JSON.parse(out)).toEqual({ a: 'quote " and \\ backslash', n: 3 });
  });
});
