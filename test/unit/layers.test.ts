/**
 * The layout has one direction of dependency, lowest first:
 *   functions/domain     pure domain: events, keys, periods, cover, ACL rules, runtime contract
 *   functions/adapters   I/O: Redis client, AWS edge, quarantine sinks
 *   functions/<handler>  Lambda handlers and their domain modules
 *   state-machines       the ASL, its renderer and its local runner
 *   stacks, cli          the AWS stack; the operator CLI and its libraries
 *   local                the local runtime (kinesalite, poller, Redis launcher), npm run local
 * A module may import its own layer and the layers below it, never one above.
 */

import { readdirSync, readFileSync, statSync } from "node:fs";
import { dirname, join, normalize, relative } from "node:path";
import { describe, expect, it } from "vitest";

const ROOT = join(import.meta.dirname, "..", "..");

type Layer = "domain" | "adapters" | "handlers" | "state-machines" | "stacks" | "cli" | "local";

const ALLOWED: Record<Layer, readonly Layer[]> = {
  domain: ["domain"],
  adapters: ["domain", "adapters"],
  handlers: ["domain", "adapters", "handlers"],
  "state-machines": ["domain", "adapters", "handlers", "state-machines"],
  stacks: ["domain", "state-machines", "stacks"],
  cli: ["domain", "adapters", "handlers", "state-machines", "cli"],
  local: ["domain", "adapters", "handlers", "state-machines", "cli", "local"],
};

function layerOf(file: string): Layer | undefined {
  const [top, second] = file.split("/");
  if (top === "functions") {
    if (second === "domain") return "domain";
    if (second === "adapters") return "adapters";
    return "handlers";
  }
  if (top === "state-machines" || top === "stacks" || top === "cli" || top === "local") return top;
  if (file === "main.ts") return "stacks";
  return undefined;
}

function sourceFiles(dir: string): string[] {
  return readdirSync(join(ROOT, dir)).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(join(ROOT, path)).isDirectory()) return sourceFiles(path);
    return path.endsWith(".ts") ? [path] : [];
  });
}

const IMPORT_RE = /(?:from|import)\s*\(?\s*["'](\.{1,2}\/[^"']+)["']/g;

describe("layering", () => {
  const files = ["functions", "state-machines", "stacks", "cli", "local"]
    .flatMap(sourceFiles)
    .concat("main.ts");

  it("finds the modules of every layer", () => {
    const layers = new Set(files.map(layerOf));
    expect([...layers].sort()).toEqual(Object.keys(ALLOWED).sort());
  });

  it("has no import from a layer above the importer's", () => {
    const violations: string[] = [];
    for (const file of files) {
      const from = layerOf(file);
      if (from === undefined) continue;
      for (const match of readFileSync(join(ROOT, file), "utf8").matchAll(IMPORT_RE)) {
        const target = relative(ROOT, normalize(join(ROOT, dirname(file), match[1] ?? "")));
        const to = layerOf(target);
        if (to !== undefined && !ALLOWED[from].includes(to)) {
          violations.push(`${file} (${from}) imports ${target} (${to})`);
        }
      }
    }
    expect(violations).toEqual([]);
  });
});
