/**
 * The README and docs/contract.md say what the code does: their tables are compared with the
 * modules that own the facts (the runtime contract, the stack config, the reject reasons), so
 * a change to one without the other fails here.
 */

import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { REJECT_REASONS } from "../../functions/domain/events.js";
import {
  CLI_VARIABLES,
  RETENTION_LIMITS,
  RUNTIME_VARIABLES,
} from "../../functions/domain/runtime-env.js";
import { ENVIRONMENTS } from "../../stacks/config.js";

const ROOT = join(import.meta.dirname, "..", "..");
const README = readFileSync(join(ROOT, "README.md"), "utf8");
const CONTRACT = readFileSync(join(ROOT, "docs", "contract.md"), "utf8");

/** The rows of the first Markdown table after `heading`, as trimmed cells (header excluded). */
function tableAfter(text: string, heading: string): string[][] {
  const start = text.indexOf(heading);
  expect(start, `"${heading}" is in the document`).toBeGreaterThanOrEqual(0);
  const lines = text.slice(start).split("\n");
  const first = lines.findIndex((line) => line.startsWith("|"));
  const rows: string[][] = [];
  for (const line of lines.slice(first + 2)) {
    if (!line.startsWith("|")) break;
    // Split on pipes that are not escaped (`\|` inside a cell).
    const cells = line
      .slice(1, -1)
      .split(/(?<!\\)\|/)
      .map((cell) => cell.trim().replaceAll("\\|", "|"));
    rows.push(cells);
  }
  return rows;
}

const unquote = (cell: string) => cell.replaceAll("`", "").trim();

describe("README: the runtime contract", () => {
  it("lists every variable of the functions with its default and meaning, in order", () => {
    const rows = tableAfter(README, "### Runtime environment of every function");
    expect(rows).toEqual(RUNTIME_VARIABLES.map((v) => [`\`${v.name}\``, v.defaultText, v.meaning]));
  });

  it("lists the CLI's own variables", () => {
    const rows = tableAfter(README, "## Operate: the CLI");
    expect(rows).toEqual(CLI_VARIABLES.map((v) => [`\`${v.name}\``, v.defaultText, v.meaning]));
  });
});

describe("README: the stack configuration table", () => {
  const rows = tableAfter(README, "### The stack (`stacks/config.ts`)");
  const dev = ENVIRONMENTS.dev;
  const prod = ENVIRONMENTS.prod;

  /** Every leaf field of a config, as dotted paths (arrays and tags are leaves). */
  function leaves(value: unknown, path = ""): string[] {
    if (typeof value !== "object" || value === null || Array.isArray(value) || path === "tags") {
      return [path];
    }
    return Object.entries(value).flatMap(([key, inner]) =>
      leaves(inner, path === "" ? key : `${path}.${key}`),
    );
  }

  /** The fields a row documents: `a.b` / `c` means a.b and a.c. */
  function fieldsOf(cell: string): string[] {
    const names = [...cell.matchAll(/`([^`]+)`/g)].map((m) => m[1] ?? "");
    const [head = "", ...rest] = names;
    const parent = head.includes(".") ? head.slice(0, head.lastIndexOf(".") + 1) : "";
    return [head, ...rest.map((name) => `${parent}${name}`)];
  }

  function valueAt(config: unknown, path: string): unknown {
    let value: unknown = config;
    for (const key of path.split(".")) {
      if (typeof value !== "object" || value === null) return undefined;
      value = new Map(Object.entries(value)).get(key);
    }
    return value;
  }

  it("has a row for every field of the config", () => {
    const documented = new Set(rows.flatMap(([field = ""]) => fieldsOf(field)));
    const fields = leaves(dev).concat(["accountId", "alarms.email", "stream.shardCount"]);
    const missing = fields.filter((f) => !documented.has(f));
    expect(missing).toEqual([]);
  });

  it("shows each single field's dev and prod values as the configs have them", () => {
    let compared = 0;
    for (const [field = "", devCell = "", prodCell = ""] of rows) {
      const fields = fieldsOf(field);
      if (fields.length !== 1) continue;
      const [path = ""] = fields;
      const devValue = valueAt(dev, path);
      // Tags and the zones (a default derived from the region) are described in words.
      if (typeof devValue === "object" || path === "network.availabilityZones") continue;
      const prodValue = valueAt(prod, path);
      const shown = (value: unknown) => (value === undefined ? "unset" : String(value));
      expect(unquote(devCell), `${path} (dev)`).toBe(shown(devValue));
      const prodShown = prodCell === "same" ? unquote(devCell) : unquote(prodCell);
      expect(prodShown, `${path} (prod)`).toBe(shown(prodValue));
      compared++;
    }
    expect(compared).toBeGreaterThan(30);
  });

  it("gives the retention defaults and limits of the runtime contract", () => {
    const row = rows.find(([field]) => field?.startsWith("`retention.days`"));
    const { days, weeks, months } = RETENTION_LIMITS;
    expect(row?.[1]).toBe(`${days.default} / ${weeks.default} / ${months.default}`);
    expect(row?.[3]).toContain(
      `${days.min}–${days.max} / ${weeks.min}–${weeks.max} / ${months.min}–${months.max}`,
    );
  });
});

describe("docs/contract.md", () => {
  it("lists exactly the reject reasons of the consumer, in order", () => {
    const block = /<!-- reject-reasons -->([\s\S]*?)<!-- \/reject-reasons -->/.exec(CONTRACT);
    const listed = [...(block?.[1] ?? "").matchAll(/`([a-z0-9_]+)`/g)].map((m) => m[1]);
    expect(listed).toEqual([...REJECT_REASONS]);
  });

  it("is where the code points for the key formats", () => {
    const keys = readFileSync(join(ROOT, "functions", "domain", "keys.ts"), "utf8");
    expect(keys).toContain("docs/contract.md");
    for (const key of [
      "uv:{site_id=715}:2024-03-09",
      "uv:{site_id=715}:2024-W10",
      "uv:{site_id=715}:2024-03",
      "uv:{site_id=715}:event=purchase:2024-03-09",
    ]) {
      expect(CONTRACT).toContain(`\`${key}\``);
    }
  });
});
