import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { inflateRawSync } from "node:zlib";
import { afterAll, describe, expect, it } from "vitest";
import { bundleEntry, deterministicZip } from "../../stacks/bundle.js";
import { loadConfig } from "../../stacks/config.js";
import { PROJECT_ROOT, SketchstreamStack } from "../../stacks/sketchstream-stack.js";
import { removeSynthOutputs, testApp } from "./synth.js";

afterAll(removeSynthOutputs);

const FIXTURES = join(import.meta.dirname, "fixtures");

describe("Lambda bundles", () => {
  it("a zip is the same bytes for the same files, and different for different ones", () => {
    const files = [
      { name: "index.mjs", data: Buffer.from("export const handler = 1;\n") },
      { name: "index.mjs.map", data: Buffer.from("{}") },
    ];
    const a = deterministicZip(files);
    const b = deterministicZip(files.map((f) => ({ ...f, data: Buffer.from(f.data) })));
    expect(a.equals(b)).toBe(true);
    const c = deterministicZip([
      { ...files[0], data: Buffer.from("export const handler = 2;\n") },
    ] as typeof files);
    expect(a.equals(c)).toBe(false);
    // A readable zip: the first entry's name and content come back.
    const nameLen = a.readUInt16LE(26);
    expect(a.subarray(30, 30 + nameLen).toString()).toBe("index.mjs");
    const size = a.readUInt32LE(18);
    expect(inflateRawSync(a.subarray(30 + nameLen, 30 + nameLen + size)).toString()).toBe(
      "export const handler = 1;\n",
    );
  });

  it("bundles the real entry points with the handlers the stack uses, reproducibly", () => {
    const consumer = bundleEntry(
      join(PROJECT_ROOT, "functions/consumer/handler.ts"),
      ["handler"],
      PROJECT_ROOT,
    );
    const rollup = bundleEntry(
      join(PROJECT_ROOT, "functions/rollup/handler.ts"),
      ["plan", "merge", "finish"],
      PROJECT_ROOT,
    );
    expect(consumer.exports).toContain("handler");
    expect(rollup.exports).toEqual(expect.arrayContaining(["plan", "merge", "finish"]));
    expect(consumer.sha256).toMatch(/^[A-Za-z0-9+/]{43}=$/);
    expect(consumer.sha256).not.toBe(rollup.sha256);
    expect(createHash("sha256").update(readFileSync(consumer.zipPath)).digest("base64")).toBe(
      consumer.sha256,
    );
  });

  it("synth fails naming a missing entry file and what it must export", () => {
    const config = loadConfig("dev");
    expect(
      () =>
        new SketchstreamStack(testApp(), "t", {
          config,
          sources: { rollupEntry: join(FIXTURES, "absent.ts") },
        }),
    ).toThrow(
      "Lambda entry test/infra/fixtures/absent.ts does not exist: it must export plan, merge, finish",
    );
  });

  it("synth fails naming the handlers an entry does not export", () => {
    const config = loadConfig("dev");
    expect(
      () =>
        new SketchstreamStack(testApp(), "t", {
          config,
          sources: { rollupEntry: join(FIXTURES, "only-plan.ts") },
        }),
    ).toThrow("test/infra/fixtures/only-plan.ts does not export merge, finish (it exports plan)");
  });
});
