/**
 * The benchmarks report (bench/report) at small sizes, so it cannot rot: a real redis-server,
 * the real experiments, real vega-lite rendering, into a temporary docs directory. Checks that
 * the report has its marked blocks stamped with command, date and machine, that the charts are
 * well-formed SVG documents with their titles and stamps, that a second write replaces only its
 * own blocks, and that the register decoder behind "merged = fed everything" can tell HLLs apart.
 */

import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { README_CAPACITY_BLOCK } from "../../bench/report/cost.js";
import { hllEncoding, sameRegisters } from "../../bench/report/hll-registers.js";
import { machineText, type Stamp } from "../../bench/report/machine.js";
import { parseBlocks, updateReport } from "../../bench/report/markdown.js";
import { type RunningRedisServer, startRedisServer } from "../../bench/report/redis-server.js";
import {
  type ExperimentName,
  README_BENCHMARKS_BLOCK,
  runReport,
  SMALL_SIZES,
  type WrittenReport,
} from "../../bench/report/run.js";
import { testNowMs, utcDay } from "../helpers/clock.js";
import { checkSvg } from "../helpers/svg.js";

const COMMAND = "npm run bench:report -- --small";
const RUN: ExperimentName[] = ["accuracy", "memory", "cost"];
const HAND_WRITTEN = "Prose around the block, kept as written.";
const placed = (id: string) =>
  `<!-- generated: ${id}; command: -; date: -; machine: - -->\nold figures\n<!-- /generated: ${id} -->`;
const README_FIXTURE = `# A README\n\n${HAND_WRITTEN}\n\n${placed(README_BENCHMARKS_BLOCK)}\n\nMore prose.\n\n${placed(README_CAPACITY_BLOCK)}\n`;
const DATE = utcDay(testNowMs());

describe("the SVG check", () => {
  const good =
    '<?xml version="1.0" encoding="UTF-8"?>\n<svg xmlns="http://www.w3.org/2000/svg" width="10" height="20"><g><text x="1">a &amp; b</text></g><path d="M0,0"/></svg>\n';

  it("accepts a well-formed document and reads its size and text", () => {
    expect(checkSvg(good)).toEqual({ width: 10, height: 20, text: "a &amp; b" });
  });

  it.each([
    ["a truncated document", good.slice(0, -12)],
    ["crossed tags", good.replace("</text></g>", "</g></text>")],
    ["a stray ampersand", good.replace("&amp;", "&")],
    ["an unquoted attribute", good.replace('x="1"', "x=1")],
    ["no size", good.replace(' width="10"', "")],
    ["a second root", good.replace("</svg>\n", "</svg><svg></svg>")],
  ])("rejects %s", (_, svg) => {
    expect(() => checkSvg(svg)).toThrow();
  });
});

describe("the benchmarks report at small sizes", () => {
  let dir: string;
  let report: WrittenReport;
  let markdown: string;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "sketchstream-report-test-"));
    // The runner with the experiments that need no cluster of their own (each experiment that
    // starts one has its own test file: report-<name>.test.ts), into a temporary docs
    // directory and a README copy with its placed block.
    await writeFile(join(dir, "README.md"), README_FIXTURE);
    report = await runReport({
      sizes: SMALL_SIZES,
      only: RUN,
      docsDir: dir,
      readmePath: join(dir, "README.md"),
      command: COMMAND,
      date: DATE,
    });
    markdown = await readFile(join(dir, "benchmarks.md"), "utf8");
  }, 120_000);

  afterAll(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it("writes one marked block per experiment, each stamped with command, date and machine", () => {
    const blocks = parseBlocks(markdown);
    expect(blocks.map((b) => b.id)).toEqual(["summary", ...RUN]);
    for (const block of blocks) {
      expect(block.command).toBe(COMMAND);
      expect(block.date).toBe(DATE);
      expect(block.machine).toBe(machineText(report.stamp.machine));
      expect(block.machine).toMatch(/^\d+ cores?, .+, Node v\d+\.\d+\.\d+, redis-server \d+\.\d+/);
      expect(block.body).toContain(`on ${DATE} (${block.machine})`);
      const judged =
        block.id === "summary" ||
        report.outputs.some((o) => o.id === block.id && o.targets.length > 0);
      if (judged) expect(block.body).toMatch(/^- \*\*(PASS|MISS)\*\* /m);
      for (const [, file] of block.body.matchAll(/\]\(charts\/([^)]+)\)/g)) {
        expect(report.chartPaths).toContain(join(dir, "charts", file ?? ""));
      }
    }
    // Every target the experiments judged is in the report, as measured, and in the summary
    // with the block it comes from.
    const summary = blocks[0]?.body ?? "";
    const targets = report.outputs.flatMap((o) => o.targets.map((t) => ({ id: o.id, ...t })));
    expect(targets.length).toBeGreaterThanOrEqual(3);
    for (const target of targets) {
      const line = `- **${target.pass ? "PASS" : "MISS"}** ${target.name}: ${target.text}`;
      expect(markdown).toContain(line);
      expect(summary).toContain(`${line} _(${target.id}, ${DATE})_`);
    }
    const passed = targets.filter((t) => t.pass).length;
    expect(summary).toContain(`${passed} of ${targets.length} targets met.`);
  });

  it("rewrites the README's placed block: the summary of targets and the two charts, stamped", async () => {
    const readme = await readFile(join(dir, "README.md"), "utf8");
    expect(readme.startsWith(`# A README\n\n${HAND_WRITTEN}\n\n`)).toBe(true);
    expect(readme).toContain("\n\nMore prose.\n\n");
    const [block, capacity, ...others] = parseBlocks(readme);
    expect(others).toEqual([]);
    // The cost experiment's own README block: the planner's answers, stamped the same way.
    expect(capacity?.id).toBe(README_CAPACITY_BLOCK);
    expect(capacity?.command).toBe(COMMAND);
    expect(capacity?.body).not.toContain("old figures");
    expect(capacity?.body).toContain("| load | MemoryDB | Kinesis | total a month |");
    expect(block?.id).toBe(README_BENCHMARKS_BLOCK);
    expect(block?.command).toBe(COMMAND);
    expect(block?.date).toBe(DATE);
    expect(block?.body).not.toContain("old figures");
    const targets = report.outputs.flatMap((o) => o.targets);
    for (const t of targets) {
      expect(block?.body).toContain(`- **${t.pass ? "PASS" : "MISS"}** ${t.name}: ${t.text}`);
    }
    expect(block?.body).toContain("(benchmarks.md)");
    expect(block?.body).toContain("](charts/accuracy.svg)");
    expect(block?.body).toContain("](charts/memory.svg)");
  });

  it("refuses a README without the block's markers instead of appending to it", async () => {
    const path = join(dir, "README-without.md");
    await writeFile(path, "# A README\n\nNo markers here.\n");
    await expect(
      runReport({
        sizes: SMALL_SIZES,
        only: ["cost"],
        docsDir: dir,
        readmePath: path,
        command: COMMAND,
        date: DATE,
      }),
    ).rejects.toThrow(`has no generated block "${README_BENCHMARKS_BLOCK}"`);
    expect(await readFile(path, "utf8")).toBe("# A README\n\nNo markers here.\n");
  });

  it("renders every chart as a well-formed SVG with its title and the stamp", async () => {
    const figures = report.outputs.flatMap((o) => o.figures);
    expect(figures.map((f) => f.file).sort()).toEqual([
      "accuracy-rms.svg",
      "accuracy.svg",
      "cost-components.svg",
      "cost.svg",
      "memory-transition.svg",
      "memory.svg",
    ]);
    for (const figure of figures) {
      const svg = await readFile(join(dir, "charts", figure.file), "utf8");
      const { width, height, text } = checkSvg(svg);
      expect(width, figure.file).toBeGreaterThan(300);
      expect(height, figure.file).toBeGreaterThan(200);
      const unescaped = text.replaceAll("&amp;", "&").replaceAll("&apos;", "'");
      expect(unescaped, figure.file).toContain(figure.title);
      expect(unescaped, figure.file).toContain(
        `redis-server ${report.stamp.machine.redis}; ${DATE}`,
      );
    }
  });

  it("finds every merged key identical to a single HLL fed all of its ids", () => {
    const merged = report.outputs
      .flatMap((o) => o.targets)
      .find((t) => t.name.startsWith("merged"));
    expect(merged?.pass).toBe(true);
  });

  it("replaces only its own blocks on the next write, keeping text written by hand", async () => {
    const path = join(dir, "benchmarks.md");
    const handWritten = "A note written by hand between the blocks.";
    const edited = markdown.replace(
      "<!-- generated: memory;",
      `${handWritten}\n\n<!-- generated: memory;`,
    );
    await writeFile(path, edited);
    const later: Stamp = { ...report.stamp, date: "2099-01-01" };
    const next = updateReport(
      edited,
      [
        { id: "memory", markdown: "## Memory\n\nnew figures" },
        { id: "appendix", markdown: "## Appendix\n\na new block" },
      ],
      later,
    );
    const blocks = parseBlocks(next);
    expect(blocks.map((b) => [b.id, b.date])).toEqual([
      ["summary", DATE],
      ["accuracy", DATE],
      ["memory", "2099-01-01"],
      ...RUN.slice(2).map((id) => [id, DATE]),
      ["appendix", "2099-01-01"],
    ]);
    expect(next).toContain(handWritten);
    expect(next.split(handWritten)[0]).toContain("<!-- /generated: accuracy -->");
    expect(blocks[2]?.body).toContain("new figures");
    expect(next).not.toContain("## Memory\n\n![");
    // Unchanged input, same stamp: the document is a fixed point.
    expect(
      updateReport(next, [{ id: "appendix", markdown: "## Appendix\n\na new block" }], later),
    ).toBe(next);
  });
});

describe("HLL registers across encodings", () => {
  let server: RunningRedisServer;
  beforeAll(async () => {
    server = await startRedisServer();
  });
  afterAll(async () => {
    await server?.stop();
  });

  it("equal for a sparse and a dense HLL of the same ids, different with one id more", async () => {
    const ids = Array.from({ length: 300 }, (_, i) => `u-${i}`);
    await server.client.pfadd("sparse", ...ids);
    // A sparse limit of 0 makes the next HLL dense from its first PFADD.
    await server.client.config("SET", "hll-sparse-max-bytes", "0");
    await server.client.pfadd("dense", ...ids);
    await server.client.pfadd("dense-plus", ...ids, "one-more", "and-another");
    await server.client.config("SET", "hll-sparse-max-bytes", "3000");
    const [sparse, dense, densePlus] = await Promise.all(
      ["sparse", "dense", "dense-plus"].map(async (k) => {
        const v = await server.client.getBuffer(k);
        if (v === null) throw new Error(`${k} is missing`);
        return v;
      }),
    );
    if (!sparse || !dense || !densePlus) throw new Error("missing HLL");
    expect([hllEncoding(sparse), hllEncoding(dense)]).toEqual(["sparse", "dense"]);
    expect(sameRegisters(sparse, dense)).toBe(true);
    expect(sameRegisters(sparse, densePlus)).toBe(false);
    expect(sameRegisters(dense, densePlus)).toBe(false);
  });
});
