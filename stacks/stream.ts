/**
 * The Kinesis data stream: on-demand by default (no shard planning, pay per GB), or
 * provisioned with a shard count; encrypted at rest with the stack's KMS key.
 */

import { KinesisStream } from "@cdktf/provider-aws/lib/kinesis-stream/index.js";
import { Construct } from "constructs";
import type { SketchstreamConfig } from "./config.js";

export interface StreamProps {
  readonly config: SketchstreamConfig;
  readonly kmsKeyArn: string;
}

export class Stream extends Construct {
  readonly stream: KinesisStream;

  constructor(scope: Construct, id: string, props: StreamProps) {
    super(scope, id);
    const s = props.config.stream;
    this.stream = new KinesisStream(this, "stream", {
      name: `${props.config.namePrefix}-events`,
      retentionPeriod: s.retentionHours,
      streamModeDetails: { streamMode: s.mode },
      ...(s.mode === "PROVISIONED" ? { shardCount: s.shardCount } : {}),
      encryptionType: "KMS",
      kmsKeyId: props.kmsKeyArn,
    });
  }
}
