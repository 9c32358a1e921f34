/**
 * The embedded local runtime behind `npm run local` and the end-to-end tests: a real Redis
 * Cluster, a local Kinesis (kinesalite, in this process, on 127.0.0.1), and the event-source
 * poller feeding the real consumer handler. Everything listens on loopback, on free ports, and
 * `stop()` ends all of it.
 */

import { join } from "node:path";
import {
  CreateStreamCommand,
  DescribeStreamSummaryCommand,
  KinesisClient,
} from "@aws-sdk/client-kinesis";
import { NodeHttpHandler } from "@smithy/node-http-handler";
import kinesalite from "kinesalite";
import { type ConsumerHandler, createConsumerHandler } from "../functions/consumer/handler.js";
import { messageOf } from "../functions/domain/errors.js";
import { type EventSourceMappingSettings, EventSourcePoller } from "./event-source-poller.js";
import { localClusterEnv, type RunningRedisCluster, startRedisCluster } from "./redis-cluster.js";

export interface LocalRuntimeOptions {
  readonly dataDir: string;
  /** Shards of the local stream. Default 4. */
  readonly shards?: number;
  /** Redis replicas per primary (3 primaries). Default 1. */
  readonly replicasPerPrimary?: number;
  readonly mapping?: EventSourceMappingSettings;
  /** Extra consumer environment (e.g. RETENTION_DAYS). */
  readonly consumerEnv?: Readonly<Record<string, string>>;
  /** The consumer's clock; the real one by default. */
  readonly now?: () => number;
  /** Where notes about the runtime go (e.g. a fallback it took). Default: nowhere. */
  readonly log?: (message: string) => void;
}

export interface LocalRuntime {
  readonly redis: RunningRedisCluster;
  readonly kinesis: KinesisClient;
  readonly kinesisEndpoint: string;
  readonly streamName: string;
  readonly streamArn: string;
  /** The runtime environment the functions and the CLI use against this runtime. */
  readonly env: Readonly<Record<string, string>>;
  readonly quarantineFile: string;
  readonly onFailureFile: string;
  readonly poller: EventSourcePoller;
  readonly consumer: ConsumerHandler;
  stop(options?: { keepRedis?: boolean }): Promise<void>;
}

export const LOCAL_REGION = "us-east-1";

/**
 * kinesalite storing records in LevelDB under `path`: for 200,000 generator records the
 * process grew by 88 MB this way against 208 MB with its default in-memory store, and puts were
 * no slower (measured on this project's 2-core machine). LevelDB (leveldown) is an optional,
 * native dependency of kinesalite: where it could not be installed, records stay in memory.
 */
function startKinesalite(
  path: string,
  log: (message: string) => void,
): ReturnType<typeof kinesalite> {
  const settings = { createStreamMs: 0, deleteStreamMs: 0, updateStreamMs: 0, shardLimit: 50 };
  try {
    return kinesalite({ ...settings, path });
  } catch (err) {
    log(`local Kinesis keeps records in memory: LevelDB is unavailable (${messageOf(err)})`);
    return kinesalite(settings);
  }
}
const LOCAL_CREDENTIALS = { accessKeyId: "local", secretAccessKey: "local" };

/** A Kinesis client for kinesalite: plain HTTP/1.1 on loopback, dummy credentials. */
export function localKinesisClient(endpoint: string): KinesisClient {
  return new KinesisClient({
    endpoint,
    region: LOCAL_REGION,
    credentials: LOCAL_CREDENTIALS,
    requestHandler: new NodeHttpHandler(),
    maxAttempts: 3,
  });
}

export async function startLocalRuntime(options: LocalRuntimeOptions): Promise<LocalRuntime> {
  const streamName = "sketchstream-local";
  const stops: (() => Promise<void>)[] = [];
  const stopAll = async () => {
    for (const stop of stops.reverse()) await stop().catch(() => {});
  };
  try {
    const redis = await startRedisCluster({
      primaries: 3,
      replicasPerPrimary: options.replicasPerPrimary ?? 1,
      dir: join(options.dataDir, "redis"),
    });
    stops.push(() => redis.stop());

    const server = startKinesalite(join(options.dataDir, "kinesis"), options.log ?? (() => {}));
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(0, "127.0.0.1", () => resolve());
    });
    stops.push(() => new Promise<void>((resolve) => server.close(() => resolve())));
    const address = server.address();
    if (address === null || typeof address === "string") throw new Error("kinesalite has no port");
    const kinesisEndpoint = `http://127.0.0.1:${address.port}`;
    const kinesis = localKinesisClient(kinesisEndpoint);
    stops.push(async () => kinesis.destroy());

    await kinesis.send(
      new CreateStreamCommand({ StreamName: streamName, ShardCount: options.shards ?? 4 }),
    );
    let streamArn = "";
    for (let i = 0; i < 100 && !streamArn; i++) {
      const out = await kinesis.send(new DescribeStreamSummaryCommand({ StreamName: streamName }));
      if (out.StreamDescriptionSummary?.StreamStatus === "ACTIVE")
        streamArn = out.StreamDescriptionSummary.StreamARN ?? "";
      else await new Promise((r) => setTimeout(r, 20));
    }
    if (!streamArn) throw new Error("the local Kinesis stream did not become ACTIVE");

    const quarantineFile = join(options.dataDir, "quarantine.jsonl");
    const onFailureFile = join(options.dataDir, "on-failure.jsonl");
    const env = {
      ...localClusterEnv(redis.endpoint),
      AWS_REGION: LOCAL_REGION,
      STREAM_NAME: streamName,
      KINESIS_ENDPOINT: kinesisEndpoint,
      ...options.consumerEnv,
    };
    const consumer = createConsumerHandler(
      { ...env, QUARANTINE_FILE: quarantineFile },
      options.now ? { now: options.now } : {},
    );
    stops.push(async () => consumer.close());
    const poller = new EventSourcePoller({
      kinesis,
      streamName,
      streamArn,
      region: LOCAL_REGION,
      handler: (event, context) => consumer(event, context),
      onFailureFile,
      ...options.mapping,
    });
    await poller.start();
    stops.push(() => poller.stop());

    return {
      redis,
      kinesis,
      kinesisEndpoint,
      streamName,
      streamArn,
      env,
      quarantineFile,
      onFailureFile,
      poller,
      consumer,
      async stop(stopOptions = {}) {
        if (stopOptions.keepRedis) {
          stops.shift();
          redis.detach();
        }
        await stopAll();
      },
    };
  } catch (err) {
    await stopAll();
    throw err;
  }
}
