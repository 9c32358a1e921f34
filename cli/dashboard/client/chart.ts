/// <reference lib="dom" />
/**
 * The time-series chart: uPlot over the points in order (x is the point's index, labelled
 * with its period, so days, ISO weeks and months all read naturally). Incomplete points get a
 * second series drawn as large hollow markers only, so they stand out on the line.
 */

import uPlot from "uplot";
import type { SeriesPoint } from "./api.js";

const HEIGHT = 300;
const LINE = "#2563eb";
const WARN = "#b45309";
/** Horizontal room one x label needs, in CSS pixels. */
const LABEL_SPACE_PX = 90;

export interface Chart {
  show(points: readonly SeriesPoint[], label: string, format: (n: number) => string): void;
}

/** A chart living in `container`, redrawn on show() and resized with the container. */
export function createChart(container: HTMLElement): Chart {
  let plot: uPlot | undefined;
  const width = () => Math.max(320, container.clientWidth);
  new ResizeObserver(() => plot?.setSize({ width: width(), height: HEIGHT })).observe(container);

  return {
    show(points, label, format) {
      plot?.destroy();
      const count = points.length;
      const periods = points.map((p) => p.period);
      const xs = points.map((_, i) => i);
      const estimates = points.map((p) => p.estimate);
      const incomplete = points.map((p) => (p.complete ? null : p.estimate));
      const top = Math.max(1, ...estimates);
      const options: uPlot.Options = {
        width: width(),
        height: HEIGHT,
        scales: {
          x: { time: false, range: () => [-0.5, Math.max(count - 0.5, 0.5)] },
          y: { range: () => [0, top * 1.1] },
        },
        axes: [
          {
            // One label every `step` points, as many as fit.
            splits: (u) => {
              const fit = Math.max(1, Math.floor(u.bbox.width / devicePixelRatio / LABEL_SPACE_PX));
              const step = Math.max(1, Math.ceil(count / fit));
              return xs.filter((i) => i % step === 0);
            },
            values: (_u, splits) => splits.map((i) => periods[i] ?? ""),
            grid: { show: false },
          },
          {
            values: (_u, splits) => splits.map((n) => format(n)),
            size: 70,
          },
        ],
        series: [
          { label: "Period", value: (_u, i) => (i === null ? "" : (periods[i] ?? "")) },
          {
            label,
            stroke: LINE,
            width: 2,
            fill: "rgba(37, 99, 235, 0.08)",
            points: { show: count <= 62, size: 5 },
            value: (_u, n) => (n === null ? "–" : format(n)),
          },
          {
            label: "Incomplete (days not counted)",
            stroke: WARN,
            width: 0,
            paths: () => null,
            points: { show: true, size: 11, width: 2, stroke: WARN, fill: "#fff7ed" },
            value: (_u, n) => (n === null ? "–" : format(n)),
          },
        ],
        // The legend names the series; the table below has the values.
        legend: { live: false },
        cursor: { drag: { x: false, y: false } },
      };
      plot = new uPlot(options, [xs, estimates, incomplete], container);
    },
  };
}
