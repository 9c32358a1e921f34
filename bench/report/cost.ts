/**
 * What the capacity planner (cli/capacity.ts, `npm run cli -- capacity`) says a month costs at
 * three reference loads, computed by calling its functions (no subprocess) with the constants
 * `npm run bench:scale` measured (bench/results/scale-constants.json by default) and the dated
 * prices of cli/capacity-prices.ts:
 *
 *   small   a small site network (COST_DEFAULT.small): the planner's own choice of deployment
 *           (`planCapacity` with its defaults).
 *   prod    the default prod config of stacks/config.ts as configured, at the load it is sized
 *           for (`deploymentBudget`: the most sites, at one event per second per site, whose
 *           keys and events its cluster takes); the planner's own choice for that same load is
 *           reported beside it.
 *   large   10^6 sites at 10^6 events/s: the planner's own choice.
 *
 * Pure arithmetic: nothing is measured here. The block says which constants file (and its own
 * date and machine) and which prices (date, region) the figures come from.
 */

import { dirname, isAbsolute, join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import {
  type CapacityInput,
  type CapacityPlan,
  type CostLine,
  deploymentBudget,
  ENGINE_CPU_TARGET,
  MEMORY_FILL,
  type MemoryDbOption,
  planCapacity,
  withDefaults,
} from "../../cli/capacity.js";
import {
  DEFAULT_CONSTANTS_PATH,
  loadScaleConstants,
  rollupSuccessPath,
  type ScaleConstants,
} from "../../cli/capacity-constants.js";
import {
  MEMORYDB_NODE_TYPES,
  PRICE_PAGES,
  PRICE_REGION,
  PRICES,
  PRICES_AS_OF,
  QUOTAS,
  VALKEY_FACTOR,
} from "../../cli/capacity-prices.js";
import { ENVIRONMENTS } from "../../stacks/config.js";
import type { Figure } from "./charts.js";
import { fmtInt } from "./stats.js";
import type { ExperimentContext, ExperimentOutput } from "./types.js";

export interface CostLoad {
  readonly sites: number;
  readonly eventsPerSecond: number;
}

export interface CostSizes {
  /** The small site network: the planner chooses its deployment. */
  readonly small: CostLoad;
  /** The large load: the planner chooses its deployment. */
  readonly large: CostLoad;
  /** The measured constants the planner reads (default: bench/results/scale-constants.json). */
  readonly constantsPath?: string;
}

/**
 * 50 sites sending 20 events/s in all (1.7 M events a day, about 35,000 per site-day): a small
 * network of busy sites; and the issue's million sites at a million events a second.
 */
export const COST_DEFAULT: CostSizes = {
  small: { sites: 50, eventsPerSecond: 20 },
  large: { sites: 1_000_000, eventsPerSecond: 1_000_000 },
};

/** Pure arithmetic: the same loads in `npm test`. */
export const COST_SMALL: CostSizes = COST_DEFAULT;

export type CostCaseId = "small" | "prod" | "large";

export interface CostCase {
  readonly id: CostCaseId;
  /** `50 sites at 20 events/s`. */
  readonly label: string;
  /** How the deployment was chosen. */
  readonly how: string;
  readonly input: CapacityInput;
  readonly plan: CapacityPlan;
}

export interface CostResult {
  readonly sizes: CostSizes;
  readonly cases: readonly CostCase[];
  /** The planner's own choice for the load the prod config is sized for. */
  readonly prodPlannerChoice: CapacityPlan;
  /** stacks/config.ts prod `budget.monthlyUsd`, and the planner's budget for that config. */
  readonly prodConfiguredBudgetUsd: number | undefined;
  readonly prodPlannedBudgetUsd: number;
  readonly constantsPath: string;
  readonly constants: ScaleConstants;
}

const PROJECT_ROOT = join(dirname(fileURLToPath(import.meta.url)), "..", "..");

/** A path inside the repository relative to its root, any other as given. */
function shownPath(path: string): string {
  const inside = relative(PROJECT_ROOT, path);
  return inside === "" || inside.startsWith("..") || isAbsolute(inside) ? path : inside;
}

/** `Kinesis (PROVISIONED)` → `Kinesis`: one colour per component whatever the mode. */
export function componentOf(item: string): string {
  return item.replace(/ \([^)]*\)$/, "");
}

function loadLabel(input: Pick<CapacityInput, "sites" | "eventsPerSecond">): string {
  const n = (x: number) =>
    x >= 1e6 && Number.isInteger(Math.log10(x)) ? `10^${Math.log10(x)}` : fmtInt(x);
  return `${n(input.sites)} sites at ${n(input.eventsPerSecond)} events/s`;
}

export function measureCost(
  sizes: CostSizes,
  progress: (text: string) => void = () => {},
): CostResult {
  const constantsPath = sizes.constantsPath ?? DEFAULT_CONSTANTS_PATH;
  const constants = loadScaleConstants(constantsPath);
  const path = rollupSuccessPath();
  progress("cost: the small site network");
  const smallInput = withDefaults(sizes.small);
  const small = planCapacity(smallInput, constants, undefined, {}, path);
  progress("cost: the prod config at the load it is sized for");
  const prodConfig = ENVIRONMENTS.prod;
  const prod = deploymentBudget(prodConfig, constants, path);
  const prodPlannerChoice = planCapacity(prod.load, constants, undefined, {}, path);
  progress("cost: 10^6 sites");
  const largeInput = withDefaults(sizes.large);
  const large = planCapacity(largeInput, constants, undefined, {}, path);
  const m = prodConfig.memorydb;
  return {
    sizes,
    cases: [
      {
        id: "small",
        label: loadLabel(smallInput),
        how: "the planner's choice",
        input: smallInput,
        plan: small,
      },
      {
        id: "prod",
        label: loadLabel(prod.load),
        how: `the prod config as configured (${m.shards} × ${m.nodeType}, ${m.replicasPerShard} replica${m.replicasPerShard === 1 ? "" : "s"}; Kinesis ${prodConfig.stream.mode}, ${prodConfig.stream.retentionHours} h)`,
        input: prod.load,
        plan: prod.plan,
      },
      {
        id: "large",
        label: loadLabel(largeInput),
        how: "the planner's choice",
        input: largeInput,
        plan: large,
      },
    ],
    prodPlannerChoice,
    prodConfiguredBudgetUsd: prodConfig.budget.monthlyUsd,
    prodPlannedBudgetUsd: prod.monthlyUsd,
    constantsPath,
    constants,
  };
}

// ---------------------------------------------------------------------------------------------
// Formatting.

/** `$162`, `$11.69`, `$383,410`. */
export function usd(n: number): string {
  if (!Number.isFinite(n)) return "n/a";
  return n >= 100 ? `$${fmtInt(n)}` : `$${n.toFixed(2)}`;
}

function gib(bytes: number): string {
  const g = bytes / 2 ** 30;
  return g >= 1024
    ? `${(g / 1024).toFixed(1)} TiB`
    : g >= 1
      ? `${g.toFixed(1)} GiB`
      : `${(bytes / 2 ** 20).toFixed(1)} MiB`;
}

function seconds(s: number): string {
  return s >= 10 ? `${fmtInt(s)} s` : `${s.toFixed(1)} s`;
}

function optionText(o: MemoryDbOption): string {
  return `${fmtInt(o.shards)} × ${o.nodeType}${o.dataTiering ? " (data tiering)" : ""}, ${o.replicasPerShard} replica${o.replicasPerShard === 1 ? "" : "s"} each: ${fmtInt(o.nodes)} nodes`;
}

/** A price as written in cli/capacity-prices.ts (no rounding of small unit prices). */
function priceNumber(n: number): string {
  return n.toLocaleString("en-US", { maximumSignificantDigits: 6 });
}

/** What each entry of PRICES is, and its unit; an entry not listed here is shown by its path. */
const PRICE_LABELS: Readonly<Record<string, string>> = {
  "memorydb.redisOssDataWrittenUsdPerGb": "MemoryDB data written, Redis OSS: USD per GB",
  "memorydb.valkeyFreeDataWrittenGbPerMonth": "MemoryDB data written, Valkey: GB a month free",
  "memorydb.valkeyDataWrittenUsdPerGb":
    "MemoryDB data written, Valkey, beyond the free GB: USD per GB",
  "kinesis.onDemandStreamHourUsd": "Kinesis on-demand: USD per stream-hour",
  "kinesis.onDemandIngestUsdPerGb":
    "Kinesis on-demand, data in (each record rounded up to 1 KB): USD per GB",
  "kinesis.onDemandRetrievalUsdPerGb": "Kinesis on-demand, data out: USD per GB",
  "kinesis.onDemandExtendedRetentionUsdPerGbMonth":
    "Kinesis on-demand, retention beyond 24 h: USD per GB-month",
  "kinesis.provisionedShardHourUsd": "Kinesis provisioned: USD per shard-hour",
  "kinesis.provisionedPutUnitUsdPerMillion":
    "Kinesis provisioned: USD per million PUT payload units (25 KB each)",
  "kinesis.provisionedExtendedRetentionShardHourUsd":
    "Kinesis provisioned, retention beyond 24 h: USD per shard-hour",
  "lambda.arm64UsdPerGbSecond": "Lambda arm64: USD per GB-second",
  "lambda.x86UsdPerGbSecond": "Lambda x86_64: USD per GB-second",
  "lambda.requestUsdPerMillion": "Lambda: USD per million requests",
  "stepFunctions.standardUsdPerThousandTransitions":
    "Step Functions standard: USD per 1,000 state transitions",
  vpcEndpointUsdPerAzHour: "SQS interface endpoint: USD per AZ-hour",
  kmsKeyUsdPerMonth: "KMS key: USD per key-month",
  cloudwatchAlarmMetricUsdPerMonth: "CloudWatch alarm: USD per alarm metric-month",
  operatorInstanceUsdPerMonth: "Operator instance (t4g.micro + 8 GB gp3): USD per month",
};

/** Every entry of PRICES, flattened: `[path, value]`. */
export function priceEntries(): [string, number][] {
  const out: [string, number][] = [];
  const walk = (prefix: string, value: unknown) => {
    if (typeof value === "number") out.push([prefix, value]);
    else if (typeof value === "object" && value !== null) {
      for (const [k, v] of Object.entries(value)) walk(prefix ? `${prefix}.${k}` : k, v);
    }
  };
  walk("", PRICES);
  return out;
}

/** The cost lines that cost the same, and something, at every load. */
export function fixedItems(result: CostResult): CostLine[] {
  const [first, ...rest] = result.cases;
  return (first?.plan.cost.lines ?? []).filter(
    (l) =>
      l.monthlyUsd > 0 &&
      rest.every((c) =>
        c.plan.cost.lines.some((x) => x.item === l.item && x.monthlyUsd === l.monthlyUsd),
      ),
  );
}

// ---------------------------------------------------------------------------------------------
// Figures.

export function costFigures(result: CostResult): Figure[] {
  const components = [
    ...new Set(result.cases.flatMap((c) => c.plan.cost.lines.map((l) => componentOf(l.item)))),
  ];
  const rows = result.cases.flatMap((c) =>
    c.plan.cost.lines.map((l) => ({
      load: c.label,
      component: componentOf(l.item),
      usd: l.monthlyUsd,
      share: l.monthlyUsd / c.plan.cost.totalMonthlyUsd,
      componentOrder: components.indexOf(componentOf(l.item)),
    })),
  );
  const totals = result.cases.map((c) => ({
    load: c.label,
    x: 1,
    text: `${usd(c.plan.cost.totalMonthlyUsd)}/month`,
  }));
  const loads = result.cases.map((c) => c.label);
  const shares: Figure = {
    file: "cost.svg",
    title: "Monthly cost by component at three loads (capacity planner)",
    subtitle: [
      `Share of each load's bill; right: its total. Prices ${PRICE_REGION} as of ${PRICES_AS_OF} (cli/capacity-prices.ts, not fetched).`,
      `Constants: npm run bench:scale of ${result.constants.measuredAt} (${fmtInt(result.constants.inputs.sites)} sites). Prod: the prod config at the load it is sized for.`,
    ],
    spec: {
      width: 480,
      height: 150,
      layer: [
        {
          data: { values: rows },
          mark: { type: "bar", stroke: "white", strokeWidth: 0.5 },
          encoding: {
            y: {
              field: "load",
              type: "nominal",
              sort: loads,
              axis: { title: null, labelLimit: 260 },
            },
            x: {
              field: "share",
              type: "quantitative",
              stack: "zero",
              scale: { domain: [0, 1] },
              axis: { title: "share of the monthly cost", format: "%" },
            },
            color: {
              field: "component",
              type: "nominal",
              title: null,
              sort: components,
              scale: { scheme: "tableau10" },
              legend: { columns: 4, labelLimit: 200 },
            },
            order: { field: "componentOrder", type: "quantitative" },
            tooltip: [
              { field: "load", type: "nominal" },
              { field: "component", type: "nominal" },
              { field: "usd", type: "quantitative", format: ",.2f" },
            ],
          },
        },
        {
          data: { values: totals },
          mark: { type: "text", align: "left", dx: 6, fontSize: 11, fontWeight: "bold" },
          encoding: {
            y: { field: "load", type: "nominal", sort: loads },
            x: { field: "x", type: "quantitative" },
            text: { field: "text" },
          },
        },
      ],
    } as Figure["spec"],
  };
  const positive = rows.filter((r) => r.usd > 0);
  const lo = Math.floor(Math.log10(Math.min(...positive.map((r) => r.usd))));
  const hi = Math.ceil(Math.log10(Math.max(...positive.map((r) => r.usd))));
  const decades = Array.from({ length: hi - lo + 1 }, (_, i) => 10 ** (lo + i));
  const byLarge = [...components].sort((a, b) => {
    const large = (name: string) =>
      rows.filter((r) => r.component === name).reduce((n, r) => Math.max(n, r.usd), 0);
    return large(b) - large(a);
  });
  const absolute: Figure = {
    file: "cost-components.svg",
    title: "Monthly cost of each component, by load (log scale)",
    subtitle: [
      "USD a month; an item the planner prices at $0 (e.g. MemoryDB data written within Valkey's free 10 TB) is not drawn.",
      `The same at every load: ${fixedItems(result)
        .map((l) => componentOf(l.item))
        .join(", ")}.`,
    ],
    spec: {
      width: 560,
      height: 260,
      data: { values: positive },
      mark: { type: "bar" },
      encoding: {
        x: {
          field: "component",
          type: "nominal",
          sort: byLarge,
          axis: { title: null, labelAngle: -30, labelLimit: 300 },
        },
        xOffset: { field: "load", type: "nominal", sort: loads },
        y: {
          field: "usd",
          type: "quantitative",
          stack: null,
          scale: { type: "log" },
          axis: {
            title: "USD a month (log scale)",
            values: decades,
            labelExpr:
              "datum.value >= 1 ? '$' + format(datum.value, ',') : '$' + format(datum.value, '~g')",
          },
        },
        color: {
          field: "load",
          type: "nominal",
          sort: loads,
          title: null,
          scale: { range: ["#9ecae9", "#4c78a8", "#1f3d5c"] },
          legend: { labelLimit: 300 },
        },
      },
    } as Figure["spec"],
  };
  return [shares, absolute];
}

// ---------------------------------------------------------------------------------------------
// Markdown.

function needsRows(result: CostResult): string[] {
  const cell = (f: (c: CostCase) => string) => result.cases.map(f).join(" | ");
  const row = (what: string, f: (c: CostCase) => string) => `| ${what} | ${cell(f)} |`;
  return [
    row("chosen by", (c) => c.how),
    row(
      "per site-day",
      (c) =>
        `${fmtInt(c.plan.derived.eventsPerSiteDay)} events, ${fmtInt(c.input.usersPerSiteDay)} users, ${c.input.eventTypes} event types`,
    ),
    row(
      "keys, memory sized for",
      (c) => `${fmtInt(c.plan.memory.keys)} keys, ${gib(c.plan.memory.totalBytes)}`,
    ),
    row("MemoryDB", (c) => optionText(c.plan.memorydb.choice)),
    row(
      "MemoryDB shards needed",
      (c) =>
        `${fmtInt(c.plan.memorydb.choice.memoryShards)} for memory, ${fmtInt(c.plan.memorydb.choice.cpuShards)} for CPU`,
    ),
    row(
      "Kinesis",
      (c) =>
        `${c.plan.kinesis.mode}, ${fmtInt(c.plan.kinesis.shards)} shard${c.plan.kinesis.shards === 1 ? "" : "s"} (provisioned ${usd(c.plan.kinesis.provisionedMonthlyUsd)}, on-demand ${usd(c.plan.kinesis.onDemandMonthlyUsd)})`,
    ),
    row(
      "consumer",
      (c) =>
        `factor ${c.plan.consumer.parallelizationFactor}, concurrency ${fmtInt(c.plan.consumer.concurrency)}, batch ${fmtInt(c.plan.consumer.batchSize)}`,
    ),
    row(
      "rollup (hourly)",
      (c) =>
        `${fmtInt(c.plan.rollup.itemsPerRun)} items in ${fmtInt(c.plan.rollup.pages)} page${c.plan.rollup.pages === 1 ? "" : "s"}, Map concurrency ${c.plan.rollup.mapMaxConcurrency}, about ${seconds(c.plan.rollup.runSeconds)} a run`,
    ),
    row("Step Functions", (c) => `${fmtInt(c.plan.rollup.transitionsPerRun)} transitions a run`),
    row("budget (rounded up to $10)", (c) => usd(Number(c.plan.config["budget.monthlyUsd"]))),
  ];
}

function costRows(result: CostResult): string[] {
  const items = [
    ...new Set(result.cases.flatMap((c) => c.plan.cost.lines.map((l) => componentOf(l.item)))),
  ];
  const rows = items.map((item) => {
    const cells = result.cases.map((c) => {
      const line = c.plan.cost.lines.find((l) => componentOf(l.item) === item);
      return line ? usd(line.monthlyUsd) : "–";
    });
    return `| ${item} | ${cells.join(" | ")} |`;
  });
  rows.push(
    `| **total** | ${result.cases.map((c) => `**${usd(c.plan.cost.totalMonthlyUsd)}**`).join(" | ")} |`,
  );
  return rows;
}

export function costMarkdown(result: CostResult): string {
  const { constants, cases } = result;
  const byId = (id: CostCaseId) => {
    const c = cases.find((x) => x.id === id);
    if (c === undefined) throw new Error(`no ${id} load`);
    return c;
  };
  const small = byId("small");
  const prod = byId("prod");
  const large = byId("large");
  const constantsFile = shownPath(result.constantsPath);
  // Fixed items: those that cost the same, and something, at every load.
  const fixedLines = small.plan.cost.lines.filter(
    (l) =>
      l.monthlyUsd > 0 &&
      cases.every((c) =>
        c.plan.cost.lines.some((x) => x.item === l.item && x.monthlyUsd === l.monthlyUsd),
      ),
  );
  const fixed = fixedLines.reduce((n, l) => n + l.monthlyUsd, 0);
  const share = (c: CostCase, item: string) =>
    (c.plan.cost.lines.find((l) => componentOf(l.item) === item)?.monthlyUsd ?? 0) /
    c.plan.cost.totalMonthlyUsd;
  const pct = (x: number) => `${Math.round(x * 100)}%`;
  // Warnings every load gets are listed once.
  const common = small.plan.warnings.filter((w) => cases.every((c) => c.plan.warnings.includes(w)));
  const warningRows = cases.map((c) => {
    const own = c.plan.warnings.filter((w) => !common.includes(w));
    return `- **${c.label}** (${c.id}): ${own.length === 0 ? "no quota increase, within every stacks/config.ts limit." : own.join(" ")}`;
  });
  const alt = result.prodPlannerChoice;
  const usedTypes = new Set(
    [...cases.map((c) => c.plan), alt].flatMap((p) => [
      p.memorydb.choice.nodeType,
      ...(p.memorydb.cheapestMemoryOnly ? [p.memorydb.cheapestMemoryOnly.nodeType] : []),
      ...(p.memorydb.cheapestDataTiering ? [p.memorydb.cheapestDataTiering.nodeType] : []),
    ]),
  );
  const nodeRows = MEMORYDB_NODE_TYPES.map(
    (t) =>
      `| ${usedTypes.has(t.name) ? `**${t.name}**` : t.name} | ${t.vcpus} | ${t.memoryGiB}${t.ssdGiB > 0 ? ` + ${t.ssdGiB} SSD` : ""} | ${priceNumber(t.redisOssHourlyUsd)} | ${priceNumber(t.redisOssHourlyUsd * VALKEY_FACTOR)} |`,
  );
  const priceLines = priceEntries().map(
    ([path, value]) => `- ${PRICE_LABELS[path] ?? `\`PRICES.${path}\``}: ${priceNumber(value)}`,
  );
  const quotaLines = Object.values(QUOTAS).map((q) => `- ${fmtInt(q.value)}: ${q.what}`);
  const assumptions = [...new Set(cases.flatMap((c) => c.plan.assumptions))];
  const largest = [...large.plan.cost.lines].sort((a, b) => b.monthlyUsd - a.monthlyUsd);
  const scale = large.plan.cost.totalMonthlyUsd / prod.plan.cost.totalMonthlyUsd;
  const loadScale = large.input.eventsPerSecond / prod.input.eventsPerSecond;
  const sentences = [
    `A small network pays mostly a floor: the items that cost the same at every load (${fixedLines.map((l) => componentOf(l.item)).join(", ")}: ${usd(fixed)} a month) and its MemoryDB nodes (${optionText(small.plan.memorydb.choice)}) are ${pct(share(small, "MemoryDB nodes") + fixed / small.plan.cost.totalMonthlyUsd)} of its ${usd(small.plan.cost.totalMonthlyUsd)}.`,
    `From the prod config up, MemoryDB nodes are the largest item (${pct(share(prod, "MemoryDB nodes"))} at prod, ${pct(share(large, "MemoryDB nodes"))} at ${large.label}), so retention and per-event-type keys, which set the memory, are the levers; at the large load the next items are ${largest
      .slice(1, 3)
      .map((l) => `${componentOf(l.item)} (${pct(l.monthlyUsd / large.plan.cost.totalMonthlyUsd)})`)
      .join(" and ")}.`,
    `${large.label} costs ${fmtInt(scale)}x the prod config for ${fmtInt(loadScale)}x its load (${usd(large.plan.cost.totalMonthlyUsd)} against ${usd(prod.plan.cost.totalMonthlyUsd)} a month).`,
  ];
  return `## Cost

What the capacity planner (\`npm run cli -- capacity\`, cli/capacity.ts) says a month costs at three reference loads, from its functions called directly: \`planCapacity\` for the loads where it chooses the deployment, \`deploymentBudget\` for the prod config. Every load has ${small.input.eventTypes} event types, every site active every day and half as many users as events (the planner's defaults). Nothing is measured in this run: the figures are the planner's arithmetic on

- the constants in \`${constantsFile}\`, written by \`npm run bench:scale\` on ${constants.measuredAt} (${constants.machine.cores} × ${constants.machine.cpuModel}, Node ${constants.versions.node}, ${constants.versions.redisServer.split(" sha=")[0]}; ${fmtInt(constants.inputs.sites)} sites, ${fmtInt(constants.wallMs / 1000)} s);
- the prices in cli/capacity-prices.ts: on-demand list prices for **${PRICE_REGION}** as of **${PRICES_AS_OF}**, entered by hand, not fetched from AWS (listed below; check ${PRICE_PAGES.map((p) => `<${p}>`).join(", ")}).

The loads: a small site network, **${small.label}** (the planner's choice of deployment); the default prod config of stacks/config.ts, ${prod.how}, at the load it is sized for, **${prod.label}** (the most sites, at one event per second per site, whose keys fit ${Math.round(MEMORY_FILL * 100)}% of its memory and whose events its engines take at ${Math.round(ENGINE_CPU_TARGET * 100)}% CPU); and **${large.label}** (the planner's choice).

![Monthly cost by component at three loads](charts/cost.svg)

| USD a month | ${cases.map((c) => `${c.label} (${c.id})`).join(" | ")} |
| --- | ${cases.map(() => "---").join(" | ")} |
${costRows(result).join("\n")}

![Monthly cost of each component by load, log scale](charts/cost-components.svg)

What each load needs:

| | ${cases.map((c) => c.label).join(" | ")} |
| --- | ${cases.map(() => "---").join(" | ")} |
${needsRows(result).join("\n")}

For the prod config's own load the planner would choose ${optionText(alt.memorydb.choice)} and Kinesis ${alt.kinesis.mode} with ${fmtInt(alt.kinesis.shards)} shard${alt.kinesis.shards === 1 ? "" : "s"}: ${usd(alt.cost.totalMonthlyUsd)} a month against the config's ${usd(prod.plan.cost.totalMonthlyUsd)}. The prod config's \`budget.monthlyUsd\` is ${result.prodConfiguredBudgetUsd === undefined ? "unset" : usd(result.prodConfiguredBudgetUsd)}; the planner's budget for it now is ${usd(result.prodPlannedBudgetUsd)}.

Quotas to raise and stacks/config.ts limits exceeded, as the planner flags them:

${warningRows.join("\n")}
${common.map((w) => `- every load: ${w}`).join("\n")}

${sentences.join(" ")}

<details><summary>Price assumptions (${PRICE_REGION}, as of ${PRICES_AS_OF}) and the planner's model</summary>

MemoryDB nodes, USD per node-hour (Valkey is ${Math.round(VALKEY_FACTOR * 100)}% of Redis OSS; bold: a type one of these plans chose or compared):

| node type | vCPUs | memory GiB | Redis OSS | Valkey |
| --- | --- | --- | --- | --- |
${nodeRows.join("\n")}

Other prices (cli/capacity-prices.ts \`PRICES\`, ${PRICE_REGION}, as of ${PRICES_AS_OF}):

${priceLines.join("\n")}

Default AWS quotas the loads are compared with:

${quotaLines.join("\n")}

The planner's assumptions, in its own words:

${assumptions.map((a) => `- ${a}`).join("\n")}

</details>`;
}

/** The README's block of the planner's answers ("The capacity planner"): prod and the large load. */
export const README_CAPACITY_BLOCK = "capacity";

/**
 * The planner's answers the README shows: for the prod config and the largest load, the total
 * and its main lines, what the deployment is, the quotas and limits flagged, and for the largest
 * load the stacks/config.ts values to set.
 */
export function costReadme(result: CostResult): string {
  const show = result.cases.filter((c) => c.id !== "small");
  const alt = result.prodPlannerChoice;
  const rows = show.map((c) => {
    const p = c.plan;
    const kinesis = p.cost.lines.find((l) => componentOf(l.item) === "Kinesis");
    const memorydb = p.cost.lines.find((l) => componentOf(l.item) === "MemoryDB nodes");
    return `| ${c.label} (${c.id === "prod" ? "the prod config as configured" : "the planner's choice"}) | ${optionText(p.memorydb.choice)}: ${usd(memorydb?.monthlyUsd ?? 0)} | ${kinesis ? `${kinesis.item}: ${usd(kinesis.monthlyUsd)}` : "none"} | ${usd(p.cost.totalMonthlyUsd)} |`;
  });
  const warnings = show.map((c) => {
    const own = c.plan.warnings.filter((w) => !/KPL/.test(w));
    return `- **${c.label}**: ${own.length === 0 ? "no quota increase; within every stacks/config.ts limit." : own.join(" ")}`;
  });
  const large = show.at(-1);
  const config = large
    ? Object.entries(large.plan.config)
        .map(
          ([field, value]) =>
            `\`${field}: ${typeof value === "string" ? JSON.stringify(value) : value}\``,
        )
        .join(", ")
    : "";
  return `| load | MemoryDB | Kinesis | total a month |
| --- | --- | --- | --- |
${rows.join("\n")}

For the prod config's own load the planner would choose ${optionText(alt.memorydb.choice)}: ${usd(alt.cost.totalMonthlyUsd)} a month; the prod config's \`budget.monthlyUsd\` is ${result.prodConfiguredBudgetUsd === undefined ? "unset" : usd(result.prodConfiguredBudgetUsd)} and the planner's budget for it ${usd(result.prodPlannedBudgetUsd)}. Prices: eu-west-1 list prices as of ${PRICES_AS_OF}, entered by hand (cli/capacity-prices.ts); constants: \`bench/results/scale-constants.json\` of ${result.constants.measuredAt}. Every line, the small load and the price list: [docs/benchmarks.md](docs/benchmarks.md#cost).

${warnings.join("\n")}
${large ? `\nSet in stacks/config.ts for ${large.label}: ${config}.` : ""}`;
}

export async function costExperiment(
  sizes: CostSizes,
  context: ExperimentContext,
): Promise<ExperimentOutput> {
  const result = measureCost(sizes, context.progress);
  return {
    id: "cost",
    markdown: costMarkdown(result),
    figures: costFigures(result),
    targets: [],
    readme: [{ id: README_CAPACITY_BLOCK, markdown: costReadme(result) }],
  };
}
