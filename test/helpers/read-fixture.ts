/**
 * A real local Redis Cluster loaded the way production is: events through the real consumer
 * handler (several sites, 60 days ending on the test clock's today, two event types), then
 * a scheduled rollup through the real state machine. The read API, the CLI's series and the
 * dashboard are tested against it. The cluster is the caller's own (the rollup's bookkeeping
 * is global), with the stack's reader ACL user.
 *
 * The cluster is new, so the consumer records `events-since` as 0: events recorded from the
 * start (kept in `consumerEventsSinceMs`). The fixture then sets it to the start of its first
 * day, as for a system that gained the events metric that day, so the tests have a boundary to
 * look at; tests of other boundaries set it themselves and put it back.
 */

import { Cluster } from "ioredis";
import { createConsumerHandler } from "../../functions/consumer/handler.js";
import { ACL_RULES } from "../../functions/domain/acl.js";
import { AS_OF_EVENTS_SINCE, AS_OF_KEY } from "../../functions/domain/keys.js";
import { type RunningRedisCluster, startRedisCluster } from "../../local/redis-cluster.js";
import { runRollupLocally } from "../../state-machines/local-runner.js";
import { DAY_MS, testNowMs, utcDay } from "./clock.js";
import { uniqueSitePrefix } from "./env.js";
import { generatorTime, kinesisEvent } from "./kinesis.js";

export const READER_PASSWORD = "reader-pw";

export interface ReadFixture {
  readonly cluster: RunningRedisCluster;
  /** The default user: for checks the reader may not make. */
  readonly admin: Cluster;
  /** Runtime environment of the default user (consumer, rollup). */
  readonly env: Record<string, string>;
  /** Runtime environment of the reader ACL user (the read API's user in AWS). */
  readonly readerEnv: Record<string, string>;
  readonly sites: readonly string[];
  /** The loaded days, oldest first; the last is today. */
  readonly days: readonly string[];
  readonly nowMs: number;
  /** `events-since` as the consumer wrote it (epoch ms), before the fixture moved it. */
  readonly consumerEventsSinceMs: number | null;
  /** `events-since` as the fixture left it: the start of its first day. */
  readonly eventsSinceMs: number;
  /** Sends events through the real consumer handler, on the fixture's clock. */
  consume(events: readonly object[]): Promise<void>;
  stop(): Promise<void>;
}

export interface ReadFixtureOptions {
  readonly sites?: number;
  readonly days?: number;
  /** Users with an event on each site and day (out of a pool of 20 times as many). */
  readonly usersPerDay?: number;
}

/** A generator-style event of `site` on day number `z` (days since the epoch). */
export function siteEvent(site: string, z: number, user: number, event: string): object {
  return {
    user_id: `u-${user}`,
    site_id: site,
    event,
    sku: "sku-1",
    amount: 1,
    event_time: generatorTime(z * DAY_MS + ((user * 7919) % DAY_MS)),
  };
}

export async function startReadFixture(options: ReadFixtureOptions = {}): Promise<ReadFixture> {
  const siteCount = options.sites ?? 3;
  const dayCount = options.days ?? 60;
  const usersPerDay = options.usersPerDay ?? 120;
  const nowMs = testNowMs();
  const cluster = await startRedisCluster({
    primaries: 3,
    users: [{ name: "reader", password: READER_PASSWORD, rules: ACL_RULES.reader }],
  });
  const env = {
    REDIS_ENDPOINT: cluster.endpoint,
    REDIS_CLUSTER: "true",
    REDIS_TLS: "false",
    REDIS_AUTH: "none",
    QUARANTINE_FILE: `${cluster.dir}/quarantine.jsonl`,
    POWERTOOLS_LOG_LEVEL: "CRITICAL",
  };
  const readerEnv = {
    ...env,
    REDIS_AUTH: "password",
    REDIS_USER: "reader",
    REDIS_PASSWORD: READER_PASSWORD,
  };
  const admin = new Cluster([{ host: "127.0.0.1", port: cluster.port }]);
  const consume = async (events: readonly object[]) => {
    const handler = createConsumerHandler(env, { now: () => nowMs });
    try {
      for (let i = 0; i < events.length; i += 5000) {
        const result = await handler(kinesisEvent(events.slice(i, i + 5000)));
        if (result.batchItemFailures.length > 0) {
          throw new Error(
            `the consumer failed records: ${JSON.stringify(result.batchItemFailures)}`,
          );
        }
      }
    } finally {
      handler.close();
    }
  };
  const prefix = uniqueSitePrefix();
  const sites = Array.from({ length: siteCount }, (_, i) => `${prefix}site${i}`);
  const today = Math.floor(nowMs / DAY_MS);
  const dayNumbers = Array.from({ length: dayCount }, (_, i) => today - dayCount + 1 + i);
  const events: object[] = [];
  sites.forEach((site, s) => {
    // Sites of different sizes, so a mix-up between them shows in the numbers.
    const perDay = usersPerDay * (s + 1);
    for (const z of dayNumbers) {
      for (let i = 0; i < perDay; i++) {
        const user = (z * 37 + i * 13) % (perDay * 20);
        events.push(siteEvent(site, z, user, "view"));
        if (i % 4 === 0) events.push(siteEvent(site, z, user, "purchase"));
      }
    }
  });
  const eventsSinceMs = (today - dayCount + 1) * DAY_MS;
  let consumerEventsSinceMs: number | null;
  try {
    await consume(events);
    const [written] = await admin.zmscore(AS_OF_KEY, AS_OF_EVENTS_SINCE);
    consumerEventsSinceMs = written === null || written === undefined ? null : Number(written);
    await admin.zadd(AS_OF_KEY, eventsSinceMs, AS_OF_EVENTS_SINCE);
    const rollup = await runRollupLocally({
      env,
      startTime: new Date(nowMs),
      fastTimers: true,
    });
    if (rollup.status !== "SUCCEEDED") {
      throw new Error(`the fixture's rollup failed: ${rollup.error} ${rollup.cause}`);
    }
  } catch (err) {
    admin.disconnect();
    await cluster.stop();
    throw err;
  }
  return {
    cluster,
    admin,
    env,
    readerEnv,
    sites,
    days: dayNumbers.map((z) => utcDay(z * DAY_MS)),
    nowMs,
    consumerEventsSinceMs,
    eventsSinceMs,
    consume,
    async stop() {
      admin.disconnect();
      await cluster.stop();
    },
  };
}
