/**
 * The stack's customer-managed KMS key: encryption at rest for MemoryDB, Kinesis, the SQS
 * queues, the SNS alarm topic and every log group. One key per stack keeps the cost at $1 a
 * month; its policy names the two service principals that cannot use IAM policies:
 * CloudWatch Logs (encrypted log groups) and CloudWatch alarms (publishing to the encrypted
 * topic — with the AWS-managed SNS key, which CloudWatch may not use, notifications are
 * silently dropped); with a budget, AWS Budgets too (the same topic). Everything else is granted by IAM policies on the roles, scoped with
 * kms:ViaService.
 */

import { KmsAlias } from "@cdktf/provider-aws/lib/kms-alias/index.js";
import { KmsKey } from "@cdktf/provider-aws/lib/kms-key/index.js";
import { Construct } from "constructs";
import { hasBudget } from "./budget.js";
import type { SketchstreamConfig } from "./config.js";
import { arn, PARTITION, policyDocument, type Statement } from "./policy.js";

export interface DataKeyProps {
  readonly config: SketchstreamConfig;
  readonly accountId: string;
  /** Log group name prefixes whose groups may use the key, e.g. /aws/lambda/sketchstream-dev-. */
  readonly logGroupPrefixes: readonly string[];
}

export class DataKey extends Construct {
  readonly key: KmsKey;
  readonly arn: string;

  constructor(scope: Construct, id: string, props: DataKeyProps) {
    super(scope, id);
    const { config, accountId } = props;
    const region = config.region;
    this.key = new KmsKey(this, "key", {
      description: `${config.namePrefix}: data at rest (MemoryDB, Kinesis, SQS, SNS, logs)`,
      enableKeyRotation: true,
      // A deleted key makes every snapshot and log it encrypted unreadable: wait longer in prod.
      deletionWindowInDays: config.environment === "prod" ? 30 : 7,
      // Guarded like the cluster: its snapshots, the final one included, need this key.
      lifecycle: { preventDestroy: config.memorydb.preventDestroy },
      // In a key policy, Resource "*" means "this key".
      policy: policyDocument([
        {
          Sid: "AccountAdministersKeyThroughIam",
          Effect: "Allow",
          Principal: { AWS: `arn:${PARTITION}:iam::${accountId}:root` },
          Action: "kms:*",
          Resource: "*",
        },
        {
          Sid: "CloudWatchLogsEncryptsOwnLogGroups",
          Effect: "Allow",
          Principal: { Service: `logs.${region}.amazonaws.com` },
          Action: [
            "kms:Encrypt*",
            "kms:Decrypt*",
            "kms:ReEncrypt*",
            "kms:GenerateDataKey*",
            "kms:Describe*",
          ],
          Resource: "*",
          Condition: {
            ArnLike: {
              "kms:EncryptionContext:aws:logs:arn": props.logGroupPrefixes.map((p) =>
                arn("logs", region, accountId, `log-group:${p}*`),
              ),
            },
          },
        },
        {
          Sid: "CloudWatchAlarmsPublishToEncryptedTopic",
          Effect: "Allow",
          Principal: { Service: "cloudwatch.amazonaws.com" },
          Action: ["kms:Decrypt", "kms:GenerateDataKey*"],
          Resource: "*",
        },
        // The monthly budget (budget.ts) publishes to the same encrypted topic: like CloudWatch,
        // Budgets needs the key, and a key policy is the only place to grant a service it.
        ...(hasBudget(config)
          ? ([
              {
                Sid: "BudgetsPublishToEncryptedTopic",
                Effect: "Allow",
                Principal: { Service: "budgets.amazonaws.com" },
                Action: ["kms:Decrypt", "kms:GenerateDataKey*"],
                Resource: "*",
              },
            ] satisfies Statement[])
          : []),
      ]),
    });
    new KmsAlias(this, "alias", {
      name: `alias/${config.namePrefix}`,
      targetKeyId: this.key.keyId,
    });
    this.arn = this.key.arn;
  }
}
