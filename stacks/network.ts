/**
 * The VPC: one private subnet per configured AZ for the Lambdas, MemoryDB and the operator
 * instance, one route table without any route to the internet (no internet gateway, no NAT
 * gateway: nothing here needs the internet), and the security groups of the data path.
 *
 * Traffic allowed, all by security-group reference (never by CIDR):
 *   functions  --6379/tcp TLS-->  MemoryDB
 *   functions  --443/tcp-->       interface endpoints (SQS)
 * The operator path (access.ts) adds its own rules. The default security group is emptied so
 * nothing attached to it by mistake can talk to anything.
 */

import { DefaultSecurityGroup } from "@cdktf/provider-aws/lib/default-security-group/index.js";
import { RouteTable } from "@cdktf/provider-aws/lib/route-table/index.js";
import { RouteTableAssociation } from "@cdktf/provider-aws/lib/route-table-association/index.js";
import { SecurityGroup } from "@cdktf/provider-aws/lib/security-group/index.js";
import { Subnet } from "@cdktf/provider-aws/lib/subnet/index.js";
import { Vpc } from "@cdktf/provider-aws/lib/vpc/index.js";
import { VpcEndpoint } from "@cdktf/provider-aws/lib/vpc-endpoint/index.js";
import { VpcSecurityGroupEgressRule } from "@cdktf/provider-aws/lib/vpc-security-group-egress-rule/index.js";
import { VpcSecurityGroupIngressRule } from "@cdktf/provider-aws/lib/vpc-security-group-ingress-rule/index.js";
import type { ITerraformDependable } from "cdktf";
import { Construct } from "constructs";
import { at } from "../functions/domain/arrays.js";
import { availabilityZones, type SketchstreamConfig } from "./config.js";
import { AZ_ID_RE } from "./config-schema.js";
import { policyDocument, type Statement } from "./policy.js";

export interface NetworkProps {
  readonly config: SketchstreamConfig;
}

/**
 * Splits a CIDR into 4 equal subnets (2 more prefix bits) and returns the first `count`:
 * a /16 gives /18s, a /24 gives /26s (59 usable addresses, still room for Lambda's ENIs).
 */
export function subnetCidrs(vpcCidr: string, count: number): string[] {
  const [address = "", prefixText = ""] = vpcCidr.split("/");
  const prefix = Number(prefixText);
  const base = address.split(".").reduce((acc, o) => acc * 256 + Number(o), 0);
  const size = 2 ** (32 - prefix - 2);
  return Array.from({ length: count }, (_, i) => {
    const n = base + i * size;
    const octets = [24, 16, 8, 0].map((shift) => Math.floor(n / 2 ** shift) % 256);
    return `${octets.join(".")}/${prefix + 2}`;
  });
}

export class Network extends Construct {
  readonly vpc: Vpc;
  readonly subnets: Subnet[];
  readonly subnetIds: string[];
  /** Each subnet's association with the route table, in the order of `subnets`. */
  readonly routeTableAssociations: RouteTableAssociation[];
  /** The security-group rules of the data path: what a function needs before it is invoked. */
  readonly functionRules: readonly ITerraformDependable[];
  readonly routeTable: RouteTable;
  /** Attached to every Lambda function. */
  readonly functionsSg: SecurityGroup;
  /** Attached to the MemoryDB cluster. */
  readonly memorydbSg: SecurityGroup;
  /** Attached to the interface endpoints. */
  readonly endpointsSg: SecurityGroup;
  private readonly config: SketchstreamConfig;

  constructor(scope: Construct, id: string, props: NetworkProps) {
    super(scope, id);
    const { config } = props;
    this.config = config;
    const prefix = config.namePrefix;
    this.vpc = new Vpc(this, "vpc", {
      cidrBlock: config.network.vpcCidr,
      // Private DNS of interface endpoints needs both.
      enableDnsSupport: true,
      enableDnsHostnames: true,
      tags: { Name: prefix },
    });
    new DefaultSecurityGroup(this, "default-sg", { vpcId: this.vpc.id });

    this.routeTable = new RouteTable(this, "private-rt", {
      vpcId: this.vpc.id,
      tags: { Name: `${prefix}-private` },
    });
    const azs = availabilityZones(config);
    const cidrs = subnetCidrs(config.network.vpcCidr, azs.length);
    this.routeTableAssociations = [];
    this.subnets = azs.map((az, i) => {
      const subnet = new Subnet(this, `private-${i}`, {
        vpcId: this.vpc.id,
        // An AZ ID names the same physical zone in every account; a name is per account.
        ...(AZ_ID_RE.test(az) ? { availabilityZoneId: az } : { availabilityZone: az }),
        cidrBlock: at(cidrs, i, "subnet CIDR"),
        mapPublicIpOnLaunch: false,
        tags: { Name: `${prefix}-private-${az}` },
      });
      this.routeTableAssociations.push(
        new RouteTableAssociation(this, `private-${i}-rt`, {
          subnetId: subnet.id,
          routeTableId: this.routeTable.id,
        }),
      );
      return subnet;
    });
    this.subnetIds = this.subnets.map((s) => s.id);

    const sg = (sgId: string, what: string) =>
      new SecurityGroup(this, sgId, {
        name: `${prefix}-${sgId}`,
        description: `${prefix}: ${what}`,
        vpcId: this.vpc.id,
        // No inline rules: every rule is its own resource below, and Terraform drops the
        // default allow-all egress rule of a group declared without egress.
        tags: { Name: `${prefix}-${sgId}` },
      });
    this.functionsSg = sg("functions", "Lambda functions (egress to MemoryDB and endpoints only)");
    this.memorydbSg = sg("memorydb", "MemoryDB cluster (TLS from the functions and operators)");
    this.endpointsSg = sg("endpoints", "interface VPC endpoints (HTTPS from the functions)");

    const port = config.memorydb.port;
    const toMemorydb = new VpcSecurityGroupEgressRule(this, "functions-to-memorydb", {
      securityGroupId: this.functionsSg.id,
      referencedSecurityGroupId: this.memorydbSg.id,
      ipProtocol: "tcp",
      fromPort: port,
      toPort: port,
      description: "Redis over TLS to MemoryDB",
    });
    const fromFunctions = new VpcSecurityGroupIngressRule(this, "memorydb-from-functions", {
      securityGroupId: this.memorydbSg.id,
      referencedSecurityGroupId: this.functionsSg.id,
      ipProtocol: "tcp",
      fromPort: port,
      toPort: port,
      description: "Redis over TLS from the functions",
    });
    const toEndpoints = new VpcSecurityGroupEgressRule(this, "functions-to-endpoints", {
      securityGroupId: this.functionsSg.id,
      referencedSecurityGroupId: this.endpointsSg.id,
      ipProtocol: "tcp",
      fromPort: 443,
      toPort: 443,
      description: "HTTPS to the interface endpoints",
    });
    const endpointsIn = new VpcSecurityGroupIngressRule(this, "endpoints-from-functions", {
      securityGroupId: this.endpointsSg.id,
      referencedSecurityGroupId: this.functionsSg.id,
      ipProtocol: "tcp",
      fromPort: 443,
      toPort: 443,
      description: "HTTPS from the functions",
    });
    this.functionRules = [toMemorydb, fromFunctions, toEndpoints, endpointsIn];
  }

  /**
   * An interface endpoint in every private subnet with private DNS, so the SDK's default
   * regional endpoint resolves to it; its policy limits what can be reached through it.
   */
  addInterfaceEndpoint(id: string, service: string, statements: readonly Statement[]): VpcEndpoint {
    return new VpcEndpoint(this, id, {
      vpcId: this.vpc.id,
      serviceName: `com.amazonaws.${this.config.region}.${service}`,
      vpcEndpointType: "Interface",
      privateDnsEnabled: true,
      subnetIds: this.subnetIds,
      securityGroupIds: [this.endpointsSg.id],
      policy: policyDocument(statements),
      tags: { Name: `${this.config.namePrefix}-${service}` },
    });
  }
}
