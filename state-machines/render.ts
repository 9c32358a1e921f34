/**
 * Fills the `${Name}` placeholders of an ASL JSON file, templatefile-style. The file stays
 * valid JSON: a placeholder is always inside a JSON string; a number value given for a string
 * that is exactly `"${Name}"` replaces the whole string (e.g. "MaxConcurrency"). Every
 * placeholder the file declares must be given, and nothing else may be: either mistake fails
 * with the names, before a broken definition can reach Step Functions.
 */

import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

export type AslValues = Readonly<Record<string, string | number>>;

const PLACEHOLDER = /\$\{([A-Za-z][A-Za-z0-9]*)\}/g;

export const ROLLUP_ASL_PATH = join(dirname(fileURLToPath(import.meta.url)), "rollup.asl.json");

export function declaredPlaceholders(template: string): string[] {
  return [...new Set([...template.matchAll(PLACEHOLDER)].map(([, name = ""]) => name))].sort();
}

export function renderAsl(
  template: string,
  values: AslValues,
  source = "the ASL template",
): string {
  const declared = declaredPlaceholders(template);
  const missing = declared.filter((name) => !(name in values));
  const unknown = Object.keys(values).filter((name) => !declared.includes(name));
  if (missing.length > 0 || unknown.length > 0) {
    const parts = [
      missing.length > 0 ? `missing value(s) for ${missing.map((n) => `\${${n}}`).join(", ")}` : "",
      unknown.length > 0 ? `no placeholder for ${unknown.join(", ")}` : "",
    ].filter(Boolean);
    throw new Error(
      `cannot render ${source}: ${parts.join("; ")}. Declared: ${declared.join(", ") || "none"}`,
    );
  }
  const wholeString = /"\$\{([A-Za-z][A-Za-z0-9]*)\}"/g;
  const rendered = template
    .replace(wholeString, (match, name: string) => {
      const value = values[name];
      return typeof value === "number" ? String(value) : match;
    })
    .replace(PLACEHOLDER, (_, name: string) => JSON.stringify(String(values[name])).slice(1, -1));
  JSON.parse(rendered); // a value that broke the JSON fails here, not in Step Functions
  return rendered;
}

export function renderRollupAsl(values: AslValues): string {
  return renderAsl(readFileSync(ROLLUP_ASL_PATH, "utf8"), values, ROLLUP_ASL_PATH);
}
