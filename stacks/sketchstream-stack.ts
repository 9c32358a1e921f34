/**
 * The sketchstream TerraformStack. For now it holds only the AWS provider: the network,
 * MemoryDB, Kinesis, consumer, rollup, access and observability constructs arrive with the
 * infrastructure issue, one construct per concern, each with a typed props interface.
 */

import { AwsProvider } from "@cdktf/provider-aws/lib/provider/index.js";
import { TerraformStack } from "cdktf";
import type { Construct } from "constructs";

export interface SketchstreamStackProps {
  /** AWS region to deploy to, e.g. eu-west-1. */
  readonly region: string;
  /** Prefix of every resource name, e.g. sketchstream-dev. */
  readonly namePrefix: string;
  /** Tags on every resource that supports them. */
  readonly tags?: Readonly<Record<string, string>>;
}

export class SketchstreamStack extends TerraformStack {
  constructor(scope: Construct, id: string, props: SketchstreamStackProps) {
    super(scope, id);
    new AwsProvider(this, "aws", {
      region: props.region,
      defaultTags: [{ tags: { Project: "sketchstream", Name: props.namePrefix, ...props.tags } }],
    });
  }
}
