/**
 * The optional monthly budget (stacks/budget.ts): an AWS Budgets cost budget of
 * config.budget.monthlyUsd that notifies the alarm topic, the topic and key policies that let
 * Budgets publish to that encrypted topic, nothing of it when the budget is unset, and default
 * amounts that agree with the capacity planner's estimate for each environment's config.
 */

import { BudgetsBudget } from "@cdktf/provider-aws/lib/budgets-budget/index.js";
import { Testing } from "cdktf";
import { afterAll, describe, expect, it } from "vitest";
import { deploymentBudget } from "../../cli/capacity.js";
import { loadScaleConstants } from "../../cli/capacity-constants.js";
import { BUDGET_NOTIFICATIONS } from "../../stacks/budget.js";
import { ENVIRONMENTS, loadConfig, StackConfigError } from "../../stacks/config.js";
import {
  ACCOUNT_REF,
  ENVIRONMENTS as ENV_NAMES,
  objs,
  one,
  peek,
  policyStatements,
  ref,
  removeSynthOutputs,
  resourcesOfType,
  synth,
} from "./synth.js";

afterAll(removeSynthOutputs);

// One environment's synth is enough for the resources (each synth costs seconds); the amounts of
// both are checked against the planner below.
describe("prod: the monthly budget", () => {
  const s = synth("prod");
  const { tf, config } = s;
  const amount = config.budget.monthlyUsd;

  it("is a monthly cost budget of config.budget.monthlyUsd", () => {
    expect(amount).toBeGreaterThan(0);
    expect(
      Testing.toHaveResourceWithProperties(s.json, BudgetsBudget.tfResourceType, {
        name: `${config.namePrefix}-monthly`,
        budget_type: "COST",
        time_unit: "MONTHLY",
        limit_amount: amount?.toFixed(2),
        limit_unit: "USD",
      }),
    ).toBe(true);
  });

  it("tells the alarm topic at 80% and 100% of actual spend and at 100% forecast", () => {
    const notifications = objs(one(tf, "aws_budgets_budget").notification, "notification");
    expect(notifications.map((n) => [n.notification_type, n.threshold, n.threshold_type])).toEqual([
      ["ACTUAL", 80, "PERCENTAGE"],
      ["ACTUAL", 100, "PERCENTAGE"],
      ["FORECASTED", 100, "PERCENTAGE"],
    ]);
    expect(notifications).toHaveLength(BUDGET_NOTIFICATIONS.length);
    for (const n of notifications) {
      expect(n.comparison_operator).toBe("GREATER_THAN");
      expect(n.subscriber_sns_topic_arns).toEqual([ref(tf, "aws_sns_topic", "alarms", "arn")]);
    }
  });

  it("may publish to the topic: this account's Budgets only, over TLS", () => {
    const statements = policyStatements(one(tf, "aws_sns_topic_policy").policy, "topic policy");
    const budgets = statements.filter(
      (st) => peek(st, "Principal.Service") === "budgets.amazonaws.com",
    );
    expect(budgets).toEqual([
      {
        Sid: "BudgetsOfThisAccount",
        Effect: "Allow",
        Principal: { Service: "budgets.amazonaws.com" },
        Action: "sns:Publish",
        Resource: ref(tf, "aws_sns_topic", "alarms", "arn"),
        Condition: {
          ArnLike: { "aws:SourceArn": `arn:aws:budgets::${ACCOUNT_REF}:*` },
          StringEquals: { "aws:SourceAccount": ACCOUNT_REF },
        },
      },
    ]);
    // The alarms' statement stays first and the TLS refusal last.
    expect(peek(statements[0], "Principal.Service")).toBe("cloudwatch.amazonaws.com");
    expect(statements.at(-1)?.Effect).toBe("Deny");
  });

  it("may use the key that encrypts the topic", () => {
    const key = policyStatements(one(tf, "aws_kms_key").policy, "key policy");
    const budgets = key.find((st) => peek(st, "Principal.Service") === "budgets.amazonaws.com");
    expect(budgets?.Action).toEqual(["kms:Decrypt", "kms:GenerateDataKey*"]);
    expect(budgets?.Effect).toBe("Allow");
  });
});

describe("without a budget", () => {
  const { tf } = synth("dev", { budget: { monthlyUsd: undefined } });

  it("makes no budget, and lets no Budgets statement into the topic or key policy", () => {
    expect(resourcesOfType(tf, "aws_budgets_budget")).toEqual([]);
    for (const [type, what] of [
      ["aws_sns_topic_policy", "topic policy"],
      ["aws_kms_key", "key policy"],
    ] as const) {
      const statements = policyStatements(one(tf, type).policy, what);
      expect(statements.map((st) => peek(st, "Principal.Service"))).not.toContain(
        "budgets.amazonaws.com",
      );
    }
  });
});

describe("config.budget", () => {
  it.each([0, 1.5, -10, 10_000_001])("refuses monthlyUsd %s, naming the field", (monthlyUsd) => {
    expect(() => loadConfig("prod", { budget: { monthlyUsd } })).toThrow(StackConfigError);
    expect(() => loadConfig("prod", { budget: { monthlyUsd } })).toThrow(
      /budget\.monthlyUsd: .* is not allowed; allowed: a whole number from 1 to 10000000/,
    );
  });

  it.each(
    ENV_NAMES,
  )("%s: defaults to the capacity planner's estimate for the config at the load it is sized for", (env) => {
    // The constants drift a little between bench runs; the budget need not follow each cent.
    const planned = deploymentBudget(ENVIRONMENTS[env], loadScaleConstants());
    const configured = ENVIRONMENTS[env].budget.monthlyUsd ?? 0;
    const tolerance = Math.max(10, planned.monthlyUsd * 0.05);
    expect(
      Math.abs(configured - planned.monthlyUsd),
      `stacks/config.ts ${env} budget.monthlyUsd is ${configured}; the planner now says ${planned.monthlyUsd} (${planned.load.sites} sites at ${planned.load.eventsPerSecond} events/s): set it`,
    ).toBeLessThanOrEqual(tolerance);
  });
});
