/**
 * The soak's stream side, in a child process of its own (bench/soak.bench.ts forks it), so the
 * parent's memory is the consumer's alone: a local Kinesis (kinesalite, records in LevelDB
 * on disk) and the producer that puts the generator's events into it, counting the exact
 * truth (distinct users and events per site) as it goes.
 *
 * Messages from the parent: `start` (settings) → answers `ready` (the endpoint and stream);
 * `put` → answers `progress` now and then and `done` with the truth; `stop` → closes and exits.
 */

import { CreateStreamCommand, DescribeStreamSummaryCommand } from "@aws-sdk/client-kinesis";
import kinesalite from "kinesalite";
import { generateEvents } from "../cli/generator.js";
import { putAll } from "../cli/producer.js";
import { localKinesisClient } from "../local/runtime.js";

export interface SoakStreamSettings {
  readonly dir: string;
  readonly shards: number;
  readonly total: number;
  readonly days: number;
  readonly users: number;
  readonly seed: number;
  readonly endMs: number;
}

export type ToStream =
  | { readonly type: "start"; readonly settings: SoakStreamSettings }
  | { readonly type: "put" }
  | { readonly type: "stop" };

/** Per site: distinct users and events (each record is one event: no event_id). */
export type SoakTruth = Record<string, { readonly users: number; readonly events: number }>;

export type FromStream =
  | {
      readonly type: "ready";
      readonly endpoint: string;
      readonly streamName: string;
      readonly streamArn: string;
    }
  | { readonly type: "progress"; readonly put: number }
  | { readonly type: "done"; readonly put: number; readonly truth: SoakTruth }
  | { readonly type: "error"; readonly message: string };

const STREAM = "sketchstream-soak";
let settings: SoakStreamSettings | undefined;
let server: ReturnType<typeof kinesalite> | undefined;
let endpoint = "";

function send(message: FromStream): void {
  process.send?.(message);
}

async function start(s: SoakStreamSettings): Promise<void> {
  settings = s;
  const kinesis = kinesalite({
    createStreamMs: 0,
    deleteStreamMs: 0,
    updateStreamMs: 0,
    shardLimit: 50,
    path: s.dir,
  });
  server = kinesis;
  await new Promise<void>((resolve) => kinesis.listen(0, "127.0.0.1", () => resolve()));
  const address = kinesis.address();
  if (address === null || typeof address === "string") throw new Error("kinesalite has no port");
  endpoint = `http://127.0.0.1:${address.port}`;
  const client = localKinesisClient(endpoint);
  await client.send(new CreateStreamCommand({ StreamName: STREAM, ShardCount: s.shards }));
  for (let i = 0; i < 200; i++) {
    const out = await client.send(new DescribeStreamSummaryCommand({ StreamName: STREAM }));
    const summary = out.StreamDescriptionSummary;
    if (summary?.StreamStatus === "ACTIVE" && summary.StreamARN) {
      client.destroy();
      send({ type: "ready", endpoint, streamName: STREAM, streamArn: summary.StreamARN });
      return;
    }
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error("the soak stream did not become ACTIVE");
}

async function put(): Promise<void> {
  if (!settings) throw new Error("put before start");
  const s = settings;
  const users = new Map<number, Set<string>>();
  const events = new Map<number, number>();
  const generator = generateEvents({
    seed: s.seed,
    users: s.users,
    days: s.days,
    endMs: s.endMs,
  });
  function* records() {
    for (let i = 0; i < s.total; i++) {
      const event = generator.next().value;
      let siteUsers = users.get(event.site_id);
      if (!siteUsers) {
        siteUsers = new Set();
        users.set(event.site_id, siteUsers);
      }
      siteUsers.add(event.user_id);
      events.set(event.site_id, (events.get(event.site_id) ?? 0) + 1);
      yield {
        partitionKey: `part-${String(i % 100_000).padStart(5, "0")}`,
        data: Buffer.from(JSON.stringify(event)),
      };
    }
  }
  const client = localKinesisClient(endpoint);
  let reported = 0;
  const result = await putAll(records(), {
    kinesis: client,
    stream: STREAM,
    onProgress: ({ sent }) => {
      if (sent - reported >= 100_000) {
        reported = sent;
        send({ type: "progress", put: sent });
      }
    },
  });
  client.destroy();
  const truth: SoakTruth = {};
  for (const [site, set] of users) truth[site] = { users: set.size, events: events.get(site) ?? 0 };
  send({ type: "done", put: result.sent, truth });
}

process.on("message", (message: ToStream) => {
  const run = async () => {
    switch (message.type) {
      case "start":
        await start(message.settings);
        break;
      case "put":
        await put();
        break;
      case "stop":
        await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
        process.exit(0);
    }
  };
  run().catch((err: unknown) => {
    send({ type: "error", message: err instanceof Error ? err.message : String(err) });
  });
});
