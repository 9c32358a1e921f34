/**
 * Figures as vega-lite specs, rendered to SVG in Node by vega (no canvas needed for SVG: text
 * widths are estimated). Every figure gets the same look and a stamp line under its title with
 * the machine and the date, so a chart copied anywhere still says where it came from.
 */

import type { TopLevelSpec } from "vega-lite";
import { type Stamp, stampText } from "./machine.js";

/** A chart of the report: its file name under docs/charts, its title, and its vega-lite spec. */
export interface Figure {
  /** File name, e.g. `accuracy.svg`. */
  readonly file: string;
  readonly title: string;
  /** Lines under the title (what was measured, how), before the stamp line. */
  readonly subtitle?: readonly string[];
  /** The chart without title or config (they are added here). */
  readonly spec: TopLevelSpec;
}

const FONT = "Helvetica, Arial, sans-serif";

/** The full vega-lite spec of a figure: its chart with the title, the stamp and the look. */
export function stampedSpec(figure: Figure, stamp: Stamp): TopLevelSpec {
  return {
    ...figure.spec,
    $schema: "https://vega.github.io/schema/vega-lite/v6.json",
    background: "white",
    padding: 12,
    title: {
      text: figure.title,
      subtitle: [...(figure.subtitle ?? []), stampText(stamp)],
      anchor: "start",
      fontSize: 15,
      subtitleFontSize: 11,
      subtitleColor: "#555",
      offset: 12,
    },
    config: {
      font: FONT,
      axis: { labelFontSize: 11, titleFontSize: 12, gridColor: "#e6e6e6" },
      legend: { labelFontSize: 11, titleFontSize: 11, orient: "bottom", direction: "horizontal" },
      header: { labelFontSize: 12, titleFontSize: 12 },
      view: { stroke: "#ccc" },
    },
  } as TopLevelSpec;
}

/** Renders a figure to a standalone SVG document. */
export async function renderFigure(figure: Figure, stamp: Stamp): Promise<string> {
  // Loaded on first use, after the experiments: the libraries are large, and a heap holding
  // them makes every garbage collection of the measured code slower.
  const [vega, { compile }] = await Promise.all([import("vega"), import("vega-lite")]);
  const compiled = compile(stampedSpec(figure, stamp)).spec;
  const view = new vega.View(vega.parse(compiled), { renderer: "none", logLevel: vega.Warn });
  try {
    const svg = await view.toSVG();
    return `<?xml version="1.0" encoding="UTF-8"?>\n${svg}\n`;
  } finally {
    view.finalize();
  }
}
