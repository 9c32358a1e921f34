import { execFile } from "node:child_process";
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { unzipSync } from "fflate";
import { afterAll, describe, expect, it } from "vitest";
import { bundleEntry, deterministicZip } from "../../stacks/bundle.js";
import { loadConfig } from "../../stacks/config.js";
import { PROJECT_ROOT, SketchstreamStack } from "../../stacks/sketchstream-stack.js";
import { removeSynthOutputs, testApp } from "./synth.js";

afterAll(removeSynthOutputs);

const FIXTURES = join(import.meta.dirname, "fixtures");

describe("Lambda bundles", () => {
  const index = { name: "index.mjs", data: Buffer.from("export const handler = 1;\n") };
  const files = [index, { name: "index.mjs.map", data: Buffer.from("{}") }];

  it("a zip is the same bytes for the same files, and different for different ones", () => {
    const a = deterministicZip(files);
    const b = deterministicZip(files.map((f) => ({ ...f, data: Buffer.from(f.data) })).reverse());
    expect(a.equals(b)).toBe(true);
    const c = deterministicZip([{ ...index, data: Buffer.from("export const handler = 2;\n") }]);
    expect(a.equals(c)).toBe(false);
    // A readable zip: the entries come back, sorted by name, with their content.
    const entries = unzipSync(a);
    expect(Object.keys(entries)).toEqual(["index.mjs", "index.mjs.map"]);
    expect(Buffer.from(entries["index.mjs"] ?? []).toString()).toBe("export const handler = 1;\n");
    // The fixed fields of the first local header and central directory entry.
    expect(a.readUInt32LE(0)).toBe(0x04034b50);
    expect(a.readUInt16LE(10)).toBe(0); // DOS time 00:00:00
    expect(a.readUInt16LE(12)).toBe((0 << 9) | (1 << 5) | 1); // DOS date 1980-01-01
    const central = a.readUInt32LE(a.length - 22 + 16);
    expect(a.readUInt32LE(central)).toBe(0x02014b50);
    expect(a.readUInt8(central + 5)).toBe(3); // made by Unix
    expect(a.readUInt16LE(central + 12)).toBe(0);
    expect(a.readUInt16LE(central + 14)).toBe((0 << 9) | (1 << 5) | 1);
    expect(a.readUInt32LE(central + 38)).toBe((0o100644 << 16) >>> 0); // -rw-r--r--
  });

  it("refuses two entries with the same name", () => {
    expect(() => deterministicZip([index, index])).toThrow("two zip entries are named index.mjs");
  });

  it("a zip is the same bytes in every time zone", { timeout: 60_000 }, async () => {
    // fflate writes the DOS timestamp from local-time getters: built in two processes in zones
    // with different offsets (on 1980-01-01, Kiritimati was UTC-10 and Los Angeles UTC-8; today
    // UTC+14 and UTC-8), the zips must still be identical.
    const bundleUrl = pathToFileURL(join(PROJECT_ROOT, "stacks/bundle.ts")).href;
    const script = `
      const { createHash } = await import("node:crypto");
      const { deterministicZip } = await import(${JSON.stringify(bundleUrl)});
      const files = ${JSON.stringify(files.map((f) => ({ name: f.name, data: f.data.toString() })))};
      const zip = deterministicZip(files.map((f) => ({ name: f.name, data: Buffer.from(f.data) })));
      console.log(JSON.stringify({
        offset: new Date(1980, 0, 1).getTimezoneOffset(),
        sha256: createHash("sha256").update(zip).digest("hex"),
      }));
    `;
    const inZone = (TZ: string) =>
      new Promise<{ offset: number; sha256: string }>((resolve, reject) => {
        execFile(
          join(PROJECT_ROOT, "node_modules/.bin/tsx"),
          ["-e", `(async () => {${script}})()`],
          { cwd: PROJECT_ROOT, env: { ...process.env, TZ } },
          (error, stdout, stderr) =>
            error ? reject(new Error(`${error.message}\n${stderr}`)) : resolve(JSON.parse(stdout)),
        );
      });
    const [kiritimati, losAngeles] = await Promise.all([
      inZone("Pacific/Kiritimati"),
      inZone("America/Los_Angeles"),
    ]);
    // The child processes really ran in different zones (else the test would prove nothing).
    expect(kiritimati.offset).not.toBe(losAngeles.offset);
    expect(kiritimati.sha256).toBe(losAngeles.sha256);
    expect(kiritimati.sha256).toBe(
      createHash("sha256").update(deterministicZip(files)).digest("hex"),
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
    const api = bundleEntry(
      join(PROJECT_ROOT, "functions/api/handler.ts"),
      ["handler"],
      PROJECT_ROOT,
    );
    const admin = bundleEntry(
      join(PROJECT_ROOT, "functions/admin/handler.ts"),
      ["handler"],
      PROJECT_ROOT,
    );
    expect(consumer.exports).toContain("handler");
    expect(rollup.exports).toEqual(expect.arrayContaining(["plan", "merge", "finish"]));
    expect(api.exports).toContain("handler");
    expect(admin.exports).toContain("handler");
    expect(consumer.sha256).toMatch(/^[A-Za-z0-9+/]{43}=$/);
    expect(new Set([consumer.sha256, rollup.sha256, api.sha256, admin.sha256]).size).toBe(4);
    const zip = readFileSync(consumer.zipPath);
    expect(createHash("sha256").update(zip).digest("base64")).toBe(consumer.sha256);
    // Zipping the bundle's files again, in any order, gives the same bytes: two builds of the
    // same code give the same source_code_hash.
    const rezipped = deterministicZip(
      Object.entries(unzipSync(zip))
        .map(([name, data]) => ({ name, data }))
        .reverse(),
    );
    expect(rezipped.equals(zip)).toBe(true);
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
