/**
 * Every (re)connection authenticates with a credential made for it. MemoryDB drops IAM
 * connections after 12 hours and a token is valid for 15 minutes, so a client that reconnects
 * with the token it started with is refused. Here a real redis-server plays MemoryDB: the ACL
 * user's password is exactly the IAM token signed at a given instant (tokens are deterministic
 * for fixed credentials and signing date), and "rotating" it means setting the token of a later
 * instant. After CLIENT KILL, the client must reconnect with a token signed at the new instant.
 */

import { type ChildProcess, spawn } from "node:child_process";
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { connectRedis, createMemoryDbIamToken } from "../../functions/adapters/redis.js";
import { at } from "../../functions/domain/arrays.js";
import type { RedisSettings } from "../../functions/domain/runtime-env.js";
import { freePorts } from "../../local/redis-cluster.js";
import { testNowMs } from "../helpers/clock.js";

const CREDENTIALS = { accessKeyId: "AKIDEXAMPLE", secretAccessKey: "wJalrXUtnFEMI/K7MDENG" };
const USER = "consumer";
const CLUSTER = "sketchstream-dev";

let server: ChildProcess;
let admin: Redis;
let port: number;

function tokenAt(ms: number): Promise<string> {
  return createMemoryDbIamToken({
    clusterName: CLUSTER,
    user: USER,
    region: "eu-west-1",
    credentials: CREDENTIALS,
    signingDate: new Date(ms),
  });
}

async function setPassword(password: string): Promise<void> {
  await admin.call("ACL", "SETUSER", USER, "on", "resetpass", `>${password}`, "~*", "+@all");
}

beforeAll(async () => {
  port = at(await freePorts(1), 0, "free port");
  server = spawn(
    "redis-server",
    ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
    { stdio: "ignore" },
  );
  admin = new Redis({ port, host: "127.0.0.1", lazyConnect: true, maxRetriesPerRequest: 0 });
  admin.on("error", () => {});
  for (let i = 0; i < 50 && admin.status !== "ready"; i++) {
    await admin.connect().catch(() => new Promise((r) => setTimeout(r, 100)));
  }
});

afterAll(async () => {
  admin?.disconnect();
  server?.kill("SIGTERM");
});

describe("IAM auth on every (re)connection", () => {
  it("reconnects after CLIENT KILL with a token signed at reconnection, not the stale one", async () => {
    let clock = testNowMs();
    const first = await tokenAt(clock);
    await setPassword(first);
    const settings: RedisSettings = {
      host: "127.0.0.1",
      port,
      cluster: false,
      tls: false,
      auth: { mode: "iam", user: USER, clusterName: CLUSTER, region: "eu-west-1" },
    };
    let signed = 0;
    const connection = connectRedis(settings, {
      credentials: async () => {
        signed++;
        return CREDENTIALS;
      },
      now: () => clock,
    });
    try {
      await connection.client.set("k", "1");
      expect(await connection.client.call("ACL", "WHOAMI")).toBe(USER);
      const signedAtFirstConnection = signed;
      expect(signedAtFirstConnection).toBeGreaterThan(0);

      // 16 minutes later the first token has expired: only a newly signed one is accepted.
      clock += 16 * 60_000;
      const second = await tokenAt(clock);
      expect(second).not.toBe(first);
      await setPassword(second);
      expect(await admin.client("KILL", "USER", USER)).toBeGreaterThan(0);

      expect(await connection.client.incr("k")).toBe(2);
      expect(signed).toBeGreaterThan(signedAtFirstConnection);

      // The stale token is refused.
      const stale = new Redis({
        port,
        host: "127.0.0.1",
        lazyConnect: true,
        maxRetriesPerRequest: 0,
      });
      stale.on("error", () => {});
      await expect(stale.connect().then(() => stale.auth(USER, first))).rejects.toThrow(
        /WRONGPASS/,
      );
      stale.disconnect();
    } finally {
      connection.close();
    }
  });
});
