/**
 * Starts a real Redis Cluster of `redis-server` processes on loopback, on free ports, for tests
 * and for `npm run local`. Optionally with TLS (throwaway certificates made with openssl) and
 * extra ACL users. `stop()` ends every process it started and removes its directory.
 */

import { type ChildProcess, execFile, spawn } from "node:child_process";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { at } from "../functions/domain/arrays.js";
import {
  DEFAULT_RETENTION,
  type QuarantineTarget,
  toEnv,
} from "../functions/domain/runtime-env.js";

const run = promisify(execFile);

export interface AclUser {
  readonly name: string;
  readonly password: string;
  /** ACL rules after `on >password`, e.g. `~uv:* +pfadd`. */
  readonly rules: string;
}

export interface RedisClusterOptions {
  /** Primaries (at least 3 for a real cluster). Default 3. */
  readonly primaries?: number;
  /** Replicas per primary. Default 0. */
  readonly replicasPerPrimary?: number;
  /** Serve TLS only (plain port disabled), with a throwaway CA. Default false. */
  readonly tls?: boolean;
  readonly users?: readonly AclUser[];
  /** Directory for configs, logs and certificates. Default: a new temporary directory. */
  readonly dir?: string;
  /**
   * cluster-node-timeout: how long a node may be unreachable before the others mark it failed.
   * Default 5000. Fault-injection tests that pause a node raise it so the cluster stays up.
   */
  readonly nodeTimeoutMs?: number;
  /** Give up if the cluster is not healthy after this many ms. Default 30000. */
  readonly readyTimeoutMs?: number;
}

export interface RunningRedisCluster {
  readonly host: "127.0.0.1";
  /** Client ports of every node, primaries first. */
  readonly ports: readonly number[];
  /** Client port of the first node (the one REDIS_ENDPOINT names). */
  readonly port: number;
  readonly dir: string;
  readonly tls: boolean;
  /** PEM file of the CA that signed the nodes' certificates (TLS only). */
  readonly caFile?: string;
  /** `host:port` of the first node, the form of REDIS_ENDPOINT. */
  readonly endpoint: string;
  readonly pids: readonly number[];
  stop(): Promise<void>;
  /** Leaves the servers running after this process exits (for `--keep`). */
  detach(): void;
}

/**
 * The runtime contract's variables for a cluster started here: plain TCP, no auth, the default
 * retention (and a quarantine target, for a consumer).
 */
export function localClusterEnv(
  endpoint: string,
  quarantine?: QuarantineTarget,
): Record<string, string> {
  return toEnv({
    endpoint,
    cluster: true,
    tls: false,
    auth: { mode: "none" },
    retention: DEFAULT_RETENTION,
    ...(quarantine ? { quarantine } : {}),
  });
}

export class RedisServerMissingError extends Error {
  constructor() {
    super(
      "redis-server was not found on PATH. Install it: Debian/Ubuntu `sudo apt-get install -y redis-server`, macOS `brew install redis`.",
    );
  }
}

/** Ports that are free now on 127.0.0.1, reserved by the OS's ephemeral allocation. */
export async function freePorts(count: number): Promise<number[]> {
  const servers = await Promise.all(
    Array.from(
      { length: count },
      () =>
        new Promise<ReturnType<typeof createServer>>((resolve, reject) => {
          const s = createServer();
          s.once("error", reject);
          s.listen(0, "127.0.0.1", () => resolve(s));
        }),
    ),
  );
  const ports = servers.map((s) => {
    const address = s.address();
    if (address === null || typeof address === "string") throw new Error("no port assigned");
    return address.port;
  });
  await Promise.all(servers.map((s) => new Promise((resolve) => s.close(resolve))));
  return ports;
}

async function commandExists(name: string): Promise<boolean> {
  try {
    await run("sh", ["-c", `command -v ${name}`]);
    return true;
  } catch {
    return false;
  }
}

interface Certificates {
  readonly ca: string;
  readonly cert: string;
  readonly key: string;
}

async function makeCertificates(dir: string): Promise<Certificates> {
  const ca = join(dir, "ca.crt");
  const caKey = join(dir, "ca.key");
  const cert = join(dir, "redis.crt");
  const key = join(dir, "redis.key");
  const csr = join(dir, "redis.csr");
  const ext = join(dir, "san.ext");
  await run(
    "openssl",
    ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2"].concat([
      "-keyout",
      caKey,
      "-out",
      ca,
      "-subj",
      "/CN=sketchstream-test-ca",
    ]),
  );
  await run(
    "openssl",
    ["req", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", csr].concat([
      "-subj",
      "/CN=127.0.0.1",
    ]),
  );
  await writeFile(ext, "subjectAltName=IP:127.0.0.1,DNS:localhost\n");
  await run(
    "openssl",
    ["x509", "-req", "-in", csr, "-CA", ca, "-CAkey", caKey, "-CAcreateserial"].concat([
      "-out",
      cert,
      "-days",
      "2",
      "-extfile",
      ext,
    ]),
  );
  return { ca, cert, key };
}

async function waitFor(
  what: string,
  timeoutMs: number,
  check: () => Promise<boolean>,
): Promise<void> {
  const until = Date.now() + timeoutMs;
  let lastError: unknown;
  while (Date.now() < until) {
    try {
      if (await check()) return;
    } catch (err) {
      lastError = err;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`timed out waiting for ${what}${lastError ? `: ${String(lastError)}` : ""}`);
}

/** The redis.conf of one cluster node. */
function nodeConfig(
  node: { readonly port: number; readonly busPort: number; readonly dir: string },
  options: RedisClusterOptions,
  certs: Certificates | undefined,
): string {
  const lines = [
    "bind 127.0.0.1",
    "protected-mode yes",
    `dir ${node.dir}`,
    "cluster-enabled yes",
    "cluster-config-file nodes.conf",
    `cluster-node-timeout ${options.nodeTimeoutMs ?? 5000}`,
    `cluster-port ${node.busPort}`,
    'save ""',
    "appendonly no",
    `logfile ${join(node.dir, "redis.log")}`,
  ];
  if (certs) {
    lines.push(
      "port 0",
      `tls-port ${node.port}`,
      `tls-cert-file ${certs.cert}`,
      `tls-key-file ${certs.key}`,
      `tls-ca-cert-file ${certs.ca}`,
      "tls-auth-clients no",
      "tls-cluster yes",
      "tls-replication yes",
    );
  } else {
    lines.push(`port ${node.port}`);
  }
  for (const user of options.users ?? []) {
    lines.push(`user ${user.name} on >${user.password} ${user.rules}`);
  }
  return `${lines.join("\n")}\n`;
}

/** Runs redis-cli against one node (over TLS when the cluster has certificates). */
async function redisCli(port: number, certs: Certificates | undefined, args: string[]) {
  const tls = certs ? ["--tls", "--cacert", certs.ca] : [];
  const { stdout } = await run("redis-cli", [
    ...tls,
    "-h",
    "127.0.0.1",
    "-p",
    String(port),
    ...args,
  ]);
  return stdout;
}

/** Joins the nodes into a cluster and waits until every node sees all of them and is ok. */
async function formCluster(
  ports: readonly number[],
  replicas: number,
  certs: Certificates | undefined,
  readyTimeoutMs: number,
): Promise<void> {
  for (const port of ports) {
    await waitFor(`redis-server on port ${port}`, readyTimeoutMs, async () => {
      return (await redisCli(port, certs, ["PING"])).trim() === "PONG";
    });
  }
  const tls = certs ? ["--tls", "--cacert", certs.ca] : [];
  await run(
    "redis-cli",
    [...tls, "--cluster", "create", ...ports.map((p) => `127.0.0.1:${p}`)].concat([
      "--cluster-replicas",
      String(replicas),
      "--cluster-yes",
    ]),
    { timeout: readyTimeoutMs },
  );
  for (const port of ports) {
    await waitFor(`cluster state ok on port ${port}`, readyTimeoutMs, async () => {
      const info = await redisCli(port, certs, ["CLUSTER", "INFO"]);
      return (
        info.includes("cluster_state:ok") && info.includes(`cluster_known_nodes:${ports.length}`)
      );
    });
  }
}

/** Stops processes: SIGTERM, then SIGKILL after 5 s. */
async function stopProcesses(children: readonly ChildProcess[]): Promise<void> {
  await Promise.all(
    children.map(
      (child) =>
        new Promise<void>((resolve) => {
          if (child.exitCode !== null || child.signalCode !== null) return resolve();
          const killer = setTimeout(() => child.kill("SIGKILL"), 5000);
          child.once("exit", () => {
            clearTimeout(killer);
            resolve();
          });
          child.kill("SIGTERM");
        }),
    ),
  );
}

export async function startRedisCluster(
  options: RedisClusterOptions = {},
): Promise<RunningRedisCluster> {
  if (!(await commandExists("redis-server")) || !(await commandExists("redis-cli"))) {
    throw new RedisServerMissingError();
  }
  const primaries = options.primaries ?? 3;
  const replicas = options.replicasPerPrimary ?? 0;
  const total = primaries * (1 + replicas);
  const tls = options.tls ?? false;
  const dir = options.dir ?? (await mkdtemp(join(tmpdir(), "sketchstream-redis-")));
  const certs = tls ? await makeCertificates(dir) : undefined;
  const allPorts = await freePorts(total * 2);
  const ports = allPorts.slice(0, total);
  const [firstPort] = ports;
  if (firstPort === undefined) throw new RangeError("a cluster needs at least one node");
  const children: ChildProcess[] = [];
  const stop = async () => {
    await stopProcesses(children);
    if (!options.dir) await rm(dir, { recursive: true, force: true });
  };
  const killOnExit = () => {
    for (const child of children) child.kill("SIGKILL");
  };
  process.once("exit", killOnExit);

  try {
    for (const [i, port] of ports.entries()) {
      const node = {
        port,
        busPort: at(allPorts, total + i, "bus port"),
        dir: join(dir, `node-${port}`),
      };
      await mkdir(node.dir, { recursive: true });
      const conf = join(node.dir, "redis.conf");
      await writeFile(conf, nodeConfig(node, options, certs));
      children.push(spawn("redis-server", [conf], { stdio: "ignore" }));
    }
    await formCluster(ports, replicas, certs, options.readyTimeoutMs ?? 30_000);
  } catch (err) {
    await stop();
    throw err;
  }

  return {
    host: "127.0.0.1",
    ports,
    port: firstPort,
    dir,
    tls,
    ...(certs ? { caFile: certs.ca } : {}),
    endpoint: `127.0.0.1:${firstPort}`,
    pids: children.map((c) => c.pid ?? -1),
    async stop() {
      process.removeListener("exit", killOnExit);
      await stop();
    },
    detach() {
      process.removeListener("exit", killOnExit);
      for (const child of children) child.unref();
    },
  };
}
