/**
 * The dashboard's one page: the client (cli/dashboard/client/, TypeScript) and uPlot bundled
 * with esbuild when the command starts, inlined into index.html with uPlot's stylesheet and
 * ours. Nothing is fetched from elsewhere; the Content-Security-Policy allows exactly the
 * inlined script and style (by hash) and requests to the page's own origin.
 */

import { createHash } from "node:crypto";
import { readFile } from "node:fs/promises";
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";
import type { DashboardConfig } from "./client/config.js";
import type { DashboardPage } from "./server.js";

export interface ClientBundle {
  readonly script: string;
  readonly style: string;
}

const here = (file: string) => fileURLToPath(new URL(file, import.meta.url));

/** Bundles the client with uPlot (esbuild, minified) and reads the stylesheets. */
export async function bundleClient(): Promise<ClientBundle> {
  // Loaded here, not at the top: the other commands should not pay for esbuild.
  const esbuild = await import("esbuild");
  const built = await esbuild.build({
    entryPoints: [here("./client/main.ts")],
    bundle: true,
    write: false,
    format: "iife",
    platform: "browser",
    target: "es2020",
    minify: true,
    legalComments: "eof",
    logLevel: "silent",
  });
  const [output] = built.outputFiles;
  if (output === undefined) throw new Error("esbuild produced no bundle for the dashboard client");
  const uplotCss = createRequire(import.meta.url).resolve("uplot/dist/uPlot.min.css");
  const [uplotStyle, ownStyle] = await Promise.all([
    readFile(uplotCss, "utf8"),
    readFile(here("./dashboard.css"), "utf8"),
  ]);
  return { script: output.text, style: `${uplotStyle}\n${ownStyle}` };
}

const sha256 = (text: string) => createHash("sha256").update(text, "utf8").digest("base64");

/** Text that cannot end the element it is inlined in, nor open a comment there. */
function inlineSafe(text: string, element: "script" | "style"): string {
  return text
    .replace(new RegExp(`</${element}`, "gi"), `<\\/${element}`)
    .replace(/<!--/g, "<\\!--");
}

const CONFIG_ELEMENT = '<script type="application/json" id="dashboard-config"></script>';

/** The template with each empty element replaced once; a missing one is a broken template. */
function fill(template: string, parts: readonly (readonly [string, string])[]): string {
  let html = template;
  for (const [empty, filled] of parts) {
    const at = html.indexOf(empty);
    if (at < 0) throw new Error(`cli/dashboard/index.html has no ${empty} to fill`);
    // Spliced, not String.replace: the bundle's "$&" and the like must stay as they are.
    html = `${html.slice(0, at)}${filled}${html.slice(at + empty.length)}`;
  }
  return html;
}

/** The page for one run: the bundle and this run's settings (token, today, mode). */
export async function renderPage(
  bundle: ClientBundle,
  config: DashboardConfig,
): Promise<DashboardPage> {
  const template = await readFile(here("./index.html"), "utf8");
  const script = inlineSafe(bundle.script, "script");
  const style = bundle.style.replace(/<\/style/gi, "<\\/style");
  // A JSON data block: "<" escaped so no string in it can close the element.
  const configJson = JSON.stringify(config).replace(/</g, "\\u003c");
  const html = fill(template, [
    ["<style></style>", `<style>${style}</style>`],
    [CONFIG_ELEMENT, CONFIG_ELEMENT.replace("></", `>${configJson}</`)],
    ["<script></script>", `<script>${script}</script>`],
  ]);
  const contentSecurityPolicy = [
    "default-src 'none'",
    `script-src 'sha256-${sha256(script)}'`,
    `style-src 'sha256-${sha256(style)}'`,
    "connect-src 'self'",
    "img-src data:",
    "base-uri 'none'",
    "form-action 'none'",
    "frame-ancestors 'none'",
  ].join("; ");
  return { html, contentSecurityPolicy };
}
