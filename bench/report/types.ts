/** What every experiment of the report hands back, so the runner can write it the same way. */

import type { Closer } from "../lib.js";
import type { Figure } from "./charts.js";
import type { ReportBlock } from "./markdown.js";

/**
 * What the runner hands every experiment that needs more than a redis-server of its own: a
 * status line, and the cleanup registry where it registers what it starts (a cluster, clients,
 * temporary files) so that an interrupt or a failure stops them.
 */
export interface ExperimentContext {
  readonly progress: (text: string) => void;
  readonly closers: Closer[];
}

/** One target of issue 14, judged from this run's measurements. */
export interface TargetResult {
  /** Short name, e.g. `accuracy`. */
  readonly name: string;
  readonly pass: boolean;
  /** The measured figure against the target, e.g. `pooled RMS 0.80% (target <= 0.98%)`. */
  readonly text: string;
}

export interface ExperimentOutput {
  /** The block id in docs/benchmarks.md, e.g. `accuracy`. */
  readonly id: string;
  /** The block's Markdown; charts are referenced as `charts/<file>`. */
  readonly markdown: string;
  readonly figures: readonly Figure[];
  readonly targets: readonly TargetResult[];
  /**
   * Blocks for the README (ids of blocks placed there by hand), for figures the README shows
   * beside its prose: written with the same stamp when the runner is given the README's path.
   */
  readonly readme?: readonly ReportBlock[];
}

/** `- **PASS** accuracy: …` (Markdown) */
export function targetLine(t: TargetResult): string {
  return `- **${t.pass ? "PASS" : "MISS"}** ${t.name}: ${t.text}`;
}

/** `PASS accuracy: …` (console) */
export function targetText(t: TargetResult): string {
  return `${t.pass ? "PASS" : "MISS"} ${t.name}: ${t.text}`;
}
