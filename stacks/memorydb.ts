/**
 * MemoryDB: the cluster (TLS, KMS at rest, snapshots, maintenance window), its subnet and
 * parameter groups, and the ACL with one user per role. Every user authenticates with IAM
 * (a SigV4 token signed for the cluster and the user, valid 15 minutes), so no password exists
 * in code, config or Terraform state. The access strings come from functions/domain/acl.ts,
 * the same rules the integration tests run the real handlers under.
 */

import { MemorydbAcl } from "@cdktf/provider-aws/lib/memorydb-acl/index.js";
import { MemorydbCluster } from "@cdktf/provider-aws/lib/memorydb-cluster/index.js";
import { MemorydbParameterGroup } from "@cdktf/provider-aws/lib/memorydb-parameter-group/index.js";
import { MemorydbSubnetGroup } from "@cdktf/provider-aws/lib/memorydb-subnet-group/index.js";
import { MemorydbUser } from "@cdktf/provider-aws/lib/memorydb-user/index.js";
import { Fn } from "cdktf";
import { Construct } from "constructs";
import { ACL_RULES } from "../functions/domain/acl.js";
import { recordOf } from "../functions/domain/arrays.js";
import { parameterGroupFamily, type SketchstreamConfig } from "./config.js";

/**
 * One MemoryDB user per role of functions/domain/acl.ts: the consumer, the rollup, the reader
 * (people with redis-cli and the read API) and the registry writer (the admin API, which may
 * write the zone registry and nothing else).
 */
export const REDIS_ROLES = [
  "consumer",
  "rollup",
  "reader",
  "registryWriter",
] as const satisfies readonly (keyof typeof ACL_RULES)[];
export type RedisRole = (typeof REDIS_ROLES)[number];

/** A role as it appears in user names and construct ids: registryWriter is registry-writer. */
export function roleSlug(role: RedisRole): string {
  return role.replace(/[A-Z]/g, (upper) => `-${upper.toLowerCase()}`);
}

/**
 * The MemoryDB user name of a role, e.g. `sketchstream-dev-registry-writer`. User names are
 * unique per account and region, so they carry the name prefix: dev and prod can share an
 * account.
 */
export function redisUserName(namePrefix: string, role: RedisRole): string {
  return `${namePrefix}-${roleSlug(role)}`;
}

/** "on" enables the user: MemoryDB creates users "off" unless the access string says "on". */
export function accessString(role: RedisRole): string {
  return `on ${ACL_RULES[role]}`;
}

/**
 * `<prefix>-final-<UTC creation time, YYYYMMDDhhmmss>`: evaluated when the cluster is created
 * and kept from then on. Snapshot names allow only lower-case letters, digits and hyphens.
 */
export function finalSnapshotName(namePrefix: string): string {
  return `${namePrefix}-final-${Fn.formatdate("YYYYMMDDhhmmss", Fn.timestamp())}`;
}

export interface MemoryDbProps {
  readonly config: SketchstreamConfig;
  readonly subnetIds: readonly string[];
  readonly securityGroupIds: readonly string[];
  readonly kmsKeyArn: string;
}

export class MemoryDb extends Construct {
  readonly cluster: MemorydbCluster;
  readonly clusterName: string;
  /** Address of the cluster configuration endpoint. */
  readonly endpointAddress: string;
  readonly port: number;
  /** host:port, the form of REDIS_ENDPOINT. */
  readonly endpoint: string;
  readonly users: Readonly<Record<RedisRole, MemorydbUser>>;

  constructor(scope: Construct, id: string, props: MemoryDbProps) {
    super(scope, id);
    const { config } = props;
    const m = config.memorydb;
    const prefix = config.namePrefix;

    const subnetGroup = new MemorydbSubnetGroup(this, "subnets", {
      name: prefix,
      subnetIds: [...props.subnetIds],
    });
    const family = parameterGroupFamily(m.engine, m.engineVersion);
    const parameters = new MemorydbParameterGroup(this, "params", {
      // The family is in the name, so an engine upgrade creates the new group before the
      // cluster moves to it and the old one is deleted.
      name: `${prefix}-${family.replace(/_/g, "-")}`,
      family,
      // Counts must never be evicted to make room: a full cluster should refuse writes (the
      // consumer then retries and the memory alarm fires) rather than silently lose HLLs.
      parameter: [{ name: "maxmemory-policy", value: "noeviction" }],
      lifecycle: { createBeforeDestroy: true },
    });

    const users = recordOf(
      REDIS_ROLES,
      (role) =>
        new MemorydbUser(this, `user-${roleSlug(role)}`, {
          userName: redisUserName(prefix, role),
          accessString: accessString(role),
          authenticationMode: { type: "iam" },
        }),
    );
    this.users = users;
    const acl = new MemorydbAcl(this, "acl", {
      name: prefix,
      userNames: REDIS_ROLES.map((r) => users[r].userName),
    });

    this.clusterName = prefix;
    this.port = m.port;
    this.cluster = new MemorydbCluster(this, "cluster", {
      name: prefix,
      description: `${prefix}: unique-visitor HyperLogLogs`,
      engine: m.engine,
      engineVersion: m.engineVersion,
      nodeType: m.nodeType,
      numShards: m.shards,
      numReplicasPerShard: m.replicasPerShard,
      // r6gd nodes tier data to SSD and need the flag; other families refuse it.
      ...(/^db\.r6gd\./.test(m.nodeType) ? { dataTiering: true } : {}),
      port: m.port,
      aclName: acl.name,
      subnetGroupName: subnetGroup.name,
      parameterGroupName: parameters.name,
      securityGroupIds: [...props.securityGroupIds],
      tlsEnabled: true,
      kmsKeyArn: props.kmsKeyArn,
      snapshotRetentionLimit: m.snapshotRetentionDays,
      snapshotWindow: m.snapshotWindow,
      maintenanceWindow: m.maintenanceWindow,
      autoMinorVersionUpgrade: m.autoMinorVersionUpgrade,
      ...(m.finalSnapshot ? { finalSnapshotName: finalSnapshotName(prefix) } : {}),
      // The cluster resource has no deletion-protection argument: prevent_destroy makes any
      // plan that would destroy it fail. The final snapshot's name is fixed when the cluster is
      // created (ignore_changes), so each cluster leaves its own snapshot: a second teardown
      // never collides with the snapshot an earlier one left.
      lifecycle: {
        preventDestroy: m.preventDestroy,
        ...(m.finalSnapshot ? { ignoreChanges: ["final_snapshot_name"] } : {}),
      },
      timeouts: { create: "120m", update: "120m", delete: "120m" },
    });
    this.endpointAddress = this.cluster.clusterEndpoint.get(0).address;
    this.endpoint = `${this.endpointAddress}:${m.port}`;
  }
}
