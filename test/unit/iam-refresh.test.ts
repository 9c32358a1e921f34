import { Cluster } from "ioredis";
import { describe, expect, it } from "vitest";
import { connectRedis, IAM_TOKEN_REFRESH_MS } from "../../functions/adapters/redis.js";

describe("IAM token refresh", () => {
  it("renews the password that (re)connects authenticate with, before the 15-minute expiry", async () => {
    let clock = Date.parse("2024-03-09T14:00:00Z");
    const connection = await connectRedis(
      {
        // Nothing listens here: the test inspects what a reconnect would authenticate with.
        host: "127.0.0.1",
        port: 1,
        cluster: true,
        tls: true,
        auth: {
          mode: "iam",
          user: "consumer",
          clusterName: "sketchstream-dev",
          region: "eu-west-1",
        },
      },
      {
        credentials: async () => ({ accessKeyId: "AKID", secretAccessKey: "secret" }),
        now: () => clock,
      },
    );
    try {
      const client = connection.client as Cluster;
      expect(client).toBeInstanceOf(Cluster);
      const first = client.options.redisOptions?.password;
      expect(first).toMatch(/^sketchstream-dev\/\?Action=connect&User=consumer&/);
      expect(client.options.redisOptions?.username).toBe("consumer");
      expect(IAM_TOKEN_REFRESH_MS).toBeLessThan(15 * 60_000);

      clock += IAM_TOKEN_REFRESH_MS - 1000;
      await connection.refreshAuth();
      expect(client.options.redisOptions?.password).toBe(first);

      clock += 2000;
      await connection.refreshAuth();
      const second = client.options.redisOptions?.password;
      expect(second).toMatch(/^sketchstream-dev\/\?Action=connect&User=consumer&/);
      expect(second).not.toBe(first);
    } finally {
      connection.close();
    }
  });
});
