/**
 * The app as `cdktf synth` runs it (tsx main.ts), timed, and the rule that keeps it fast:
 * provider resources are imported deeply, never from the package root (the barrel costs
 * ~10 s and ~700 MB per synth).
 */

import { execFile } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { PROJECT_ROOT } from "../../stacks/sketchstream-stack.js";
import { removeSynthOutputs, synth } from "./synth.js";

afterAll(removeSynthOutputs);

describe("synth time", () => {
  // Times are reported, not asserted: a wall-clock bound in a test fails on a busy machine and
  // proves nothing on an idle one. What keeps synth fast is the deep-import rule below.
  it("tsx main.ts synthesizes both stacks (time reported)", { timeout: 120_000 }, async () => {
    const outdir = mkdtempSync(join(tmpdir(), "sketchstream-synth-"));
    const started = performance.now();
    await new Promise<void>((resolve, reject) => {
      execFile(
        join(PROJECT_ROOT, "node_modules/.bin/tsx"),
        ["main.ts"],
        { cwd: PROJECT_ROOT, env: { ...process.env, CDKTF_OUTDIR: outdir } },
        (error, _stdout, stderr) =>
          error ? reject(new Error(`${error.message}\n${stderr}`)) : resolve(),
      );
    });
    const ms = performance.now() - started;
    console.log(`synth: tsx main.ts (2 stacks, process start included) took ${Math.round(ms)} ms`);
    const manifest = JSON.parse(readFileSync(join(outdir, "manifest.json"), "utf8"));
    expect(Object.keys(manifest.stacks).sort()).toEqual(["sketchstream-dev", "sketchstream-prod"]);
    rmSync(outdir, { recursive: true, force: true });
  });

  it("in process, one stack synthesizes once bundled (time reported)", () => {
    const { synthMs, tf } = synth("prod");
    console.log(`synth: one stack in process took ${Math.round(synthMs)} ms`);
    expect(Object.keys(tf.resource ?? {}).length).toBeGreaterThan(10);
  });

  it("imports provider resources deeply, never the package root", () => {
    const files = [
      "main.ts",
      ...readdirSync(join(PROJECT_ROOT, "stacks")).map((f) => `stacks/${f}`),
      ...readdirSync(join(PROJECT_ROOT, "test/infra")).map((f) => `test/infra/${f}`),
    ].filter((f) => f.endsWith(".ts"));
    const barrel = /from\s+["']@cdktf\/provider-aws(\/lib(\/index(\.js)?)?)?["']/;
    const offenders = files.filter((f) => barrel.test(readFileSync(join(PROJECT_ROOT, f), "utf8")));
    expect(offenders).toEqual([]);
    const deep = readFileSync(join(PROJECT_ROOT, "stacks/memorydb.ts"), "utf8");
    expect(deep).toMatch(/from "@cdktf\/provider-aws\/lib\/memorydb-cluster\/index\.js"/);
  });
});
