/**
 * One plain redis-server on a free loopback port in a temporary directory, for experiments
 * about single keys (accuracy, memory), where a cluster adds nothing but routing: the figures
 * are properties of one key, the same on any node. `stop()` ends the process it started and
 * removes its directory.
 */

import { type ChildProcess, execFile, spawn } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Redis } from "ioredis";
import { freePorts, RedisServerMissingError } from "../../local/redis-cluster.js";

export interface RunningRedisServer {
  readonly host: "127.0.0.1";
  readonly port: number;
  /** `redis_version` from `INFO server`. */
  readonly version: string;
  /** A client for reads and small commands (bulk adds go through `BulkAdder`). */
  readonly client: Redis;
  stop(): Promise<void>;
}

export async function startRedisServer(): Promise<RunningRedisServer> {
  const dir = await mkdtemp(join(tmpdir(), "sketchstream-report-"));
  const [port] = await freePorts(1);
  if (port === undefined) throw new Error("no free port on 127.0.0.1");
  const child = spawn(
    "redis-server",
    [
      "--port",
      String(port),
      "--bind",
      "127.0.0.1",
      "--dir",
      dir,
      "--save",
      "",
      "--appendonly",
      "no",
      "--logfile",
      join(dir, "redis.log"),
    ],
    { stdio: "ignore" },
  );
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  const spawnError = new Promise<never>((_, reject) =>
    child.once("error", (err: NodeJS.ErrnoException) =>
      reject(err.code === "ENOENT" ? new RedisServerMissingError() : err),
    ),
  );
  spawnError.catch(() => {}); // observed by the race below; later errors end in stop()
  const client = new Redis({ host: "127.0.0.1", port, lazyConnect: true, maxRetriesPerRequest: 0 });
  client.on("error", () => {});
  let stopped: Promise<void> | undefined;
  // Idempotent: the runner stops it after its experiments, and its cleanup registry again.
  const stop = () => {
    stopped ??= (async () => {
      client.disconnect();
      await killAndWait(child, exited);
      await rm(dir, { recursive: true, force: true });
    })();
    return stopped;
  };
  try {
    await Promise.race([waitForPing(client, port), spawnError]);
    const info = await client.info("server");
    const version = /^redis_version:(\S+)/m.exec(info)?.[1] ?? "unknown";
    return { host: "127.0.0.1", port, version, client, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}

/**
 * The version of the redis-server on PATH (`redis-server --version`: `… v=7.0.15 …`), for the
 * stamp of a report whose experiments started only clusters.
 */
export async function redisServerVersion(): Promise<string> {
  const out = await new Promise<string>((resolve, reject) =>
    execFile("redis-server", ["--version"], (err, stdout) =>
      err
        ? reject(
            (err as NodeJS.ErrnoException).code === "ENOENT" ? new RedisServerMissingError() : err,
          )
        : resolve(stdout),
    ),
  );
  const version = /\bv=(\d+\.\d+\.\d+)/.exec(out)?.[1];
  if (!version) throw new Error(`redis-server --version said "${out.trim()}": no v=X.Y.Z in it`);
  return version;
}

async function waitForPing(client: Redis, port: number): Promise<void> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    try {
      await client.connect();
      await client.ping();
      return;
    } catch (err) {
      client.disconnect();
      if (Date.now() > deadline) {
        throw new Error(`redis-server on 127.0.0.1:${port} did not answer PING within 10 s`, {
          cause: err,
        });
      }
      await new Promise((r) => setTimeout(r, 50));
    }
  }
}

async function killAndWait(child: ChildProcess, exited: Promise<void>): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null || child.pid === undefined) return;
  child.kill("SIGTERM");
  const timeout = new Promise<"timeout">((r) => setTimeout(() => r("timeout"), 5000).unref());
  if ((await Promise.race([exited, timeout])) === "timeout") {
    child.kill("SIGKILL");
    await exited;
  }
}
