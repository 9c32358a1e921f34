/**
 * The optional monthly cost budget (config.budget.monthlyUsd): an AWS Budgets budget that tells
 * the alarm topic when actual spend passes 80% and 100% of the amount, and when the month's
 * forecast passes 100%, so a cost surprise reaches the same people as a failed rollup. The
 * topic's policy lets Budgets publish (observability.ts) and its key lets Budgets encrypt what it
 * publishes (kms.ts). The default amounts are the capacity planner's estimates (config.ts).
 *
 * A budget sees the whole account's costs: filtering on the stack's tags would count nothing
 * until those tags are activated as cost allocation tags in Billing, and then never fire. In an
 * account shared with other workloads, raise the amount or leave it unset.
 */

import { BudgetsBudget } from "@cdktf/provider-aws/lib/budgets-budget/index.js";
import { Construct } from "constructs";
import type { SketchstreamConfig } from "./config.js";

/** When the topic hears of it: spend already made, or the month's forecast, over the amount. */
export const BUDGET_NOTIFICATIONS = [
  { notificationType: "ACTUAL", thresholdPercent: 80 },
  { notificationType: "ACTUAL", thresholdPercent: 100 },
  { notificationType: "FORECASTED", thresholdPercent: 100 },
] as const;

export interface MonthlyBudgetProps {
  readonly config: SketchstreamConfig;
  /** The alarm topic (observability.ts), which must let budgets.amazonaws.com publish. */
  readonly topicArn: string;
}

/** Creates nothing when config.budget.monthlyUsd is unset. */
export class MonthlyBudget extends Construct {
  readonly budget?: BudgetsBudget;

  constructor(scope: Construct, id: string, props: MonthlyBudgetProps) {
    super(scope, id);
    const { monthlyUsd } = props.config.budget;
    if (monthlyUsd === undefined) return;
    this.budget = new BudgetsBudget(this, "monthly", {
      name: `${props.config.namePrefix}-monthly`,
      budgetType: "COST",
      timeUnit: "MONTHLY",
      limitAmount: monthlyUsd.toFixed(2),
      limitUnit: "USD",
      notification: BUDGET_NOTIFICATIONS.map((n) => ({
        notificationType: n.notificationType,
        comparisonOperator: "GREATER_THAN",
        threshold: n.thresholdPercent,
        thresholdType: "PERCENTAGE",
        subscriberSnsTopicArns: [props.topicArn],
      })),
    });
  }
}

/** Whether a config has a budget, which the topic and key policies then let Budgets use. */
export function hasBudget(config: SketchstreamConfig): boolean {
  return config.budget.monthlyUsd !== undefined;
}
