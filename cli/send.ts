/**
 * `send`: put generator-style click events into the stream, like the original Python
 * generator (sites 489, 715, 283, 190, 875; view/like/cart/purchase; `u-###-##` users), with
 * PutRecords in batches of up to 500 records / 5 MiB; only failed records are retried, with
 * backoff and jitter, and any still unwritten at the end are reported (exit code 1).
 * STREAM_NAME is a stream name or ARN; KINESIS_ENDPOINT points at a local Kinesis.
 * A progress bar (records/s, ETA) on a terminal, plain lines otherwise.
 */

import { WriteStream } from "node:tty";
import { KinesisClient } from "@aws-sdk/client-kinesis";
import { NodeHttpHandler } from "@smithy/node-http-handler";
import { SingleBar } from "cli-progress";
import { messageOf } from "../functions/domain/errors.js";
import { parseFlags, wholeNumberArg } from "./args.js";
import { generateEvents } from "./generator.js";
import { CliError, type CliIo, EXIT_FAILURE, EXIT_OK } from "./io.js";
import { type ProducerOptions, type ProducerResult, putAll } from "./producer.js";

export interface SendRequest {
  readonly total: number;
  readonly days: number;
  readonly users: number;
  readonly seed: number;
  readonly rate?: number;
}

export interface SendProgress {
  update(sent: number): void;
  stop(): void;
}

export interface SendDeps extends CliIo {
  /** The Kinesis edge; made from the environment when not given. */
  readonly kinesis?: ProducerOptions["kinesis"];
  readonly progress?: (total: number) => SendProgress;
  readonly now?: () => number;
  /** The producer's pause between attempts (tests pass one that does not wait). */
  readonly sleep?: (ms: number) => Promise<void>;
}

export function parseSendArgs(args: readonly string[]): SendRequest {
  const flags = parseFlags("send", args, {
    total: { type: "string" },
    days: { type: "string" },
    users: { type: "string" },
    seed: { type: "string" },
    rate: { type: "string" },
  });
  const rate =
    flags.rate === undefined ? undefined : wholeNumberArg("rate", flags.rate, 0, 1, 10_000_000);
  return {
    total: wholeNumberArg("total", flags.total, 10_000, 1, 100_000_000),
    // Older events would be past the default 62-day daily retention and be quarantined.
    days: wholeNumberArg("days", flags.days, 7, 1, 62),
    users: wholeNumberArg("users", flags.users, 10_000, 1, 100_000_000),
    seed: wholeNumberArg("seed", flags.seed, 1, 0, 2 ** 32 - 1),
    ...(rate === undefined ? {} : { rate }),
  };
}

/** A Kinesis client for STREAM_NAME: AWS by default, a local endpoint with KINESIS_ENDPOINT. */
export function kinesisFromEnv(env: CliIo["env"]): { kinesis: KinesisClient; stream: string } {
  const stream = env.STREAM_NAME?.trim();
  if (!stream) {
    throw new CliError(
      "STREAM_NAME is not set: expected the Kinesis stream's name or ARN (the stack output stream_name)",
    );
  }
  const endpoint = env.KINESIS_ENDPOINT?.trim();
  const arnRegion = /^arn:aws[a-z-]*:kinesis:([a-z0-9-]+):/.exec(stream)?.[1];
  const region =
    arnRegion ?? env.AWS_REGION ?? env.AWS_DEFAULT_REGION ?? (endpoint ? "us-east-1" : undefined);
  if (!region)
    throw new CliError("AWS_REGION is not set: expected the stream's region, e.g. eu-west-1");
  if (!endpoint) return { kinesis: new KinesisClient({ region }), stream };
  if (!/^https?:\/\/[^\s/]+/.test(endpoint)) {
    throw new CliError(
      `KINESIS_ENDPOINT="${endpoint}" is invalid: expected a URL such as http://127.0.0.1:4567`,
    );
  }
  // A local Kinesis (kinesalite) checks no signature: any credentials do, when none are set.
  const credentials =
    env.AWS_ACCESS_KEY_ID && env.AWS_SECRET_ACCESS_KEY
      ? undefined
      : { accessKeyId: "local", secretAccessKey: "local" };
  return {
    kinesis: new KinesisClient({
      region,
      endpoint,
      requestHandler: new NodeHttpHandler(),
      ...(credentials ? { credentials } : {}),
    }),
    stream,
  };
}

function defaultProgress(io: CliIo): (total: number) => SendProgress {
  return (total) => {
    if (io.stderr instanceof WriteStream) {
      const bar = new SingleBar({
        format:
          "sending [{bar}] {percentage}% | {value}/{total} records | {speed} records/s | ETA {eta_formatted}",
        stream: io.stderr,
        hideCursor: true,
      });
      const started = Date.now();
      bar.start(total, 0, { speed: 0 });
      return {
        update: (sent) =>
          bar.update(sent, {
            speed: Math.round(sent / Math.max(0.001, (Date.now() - started) / 1000)),
          }),
        stop: () => bar.stop(),
      };
    }
    let reported = 0;
    return {
      update(sent) {
        // A plain line at every tenth, for logs and pipes.
        if (sent === total || sent - reported >= total / 10) {
          reported = sent;
          io.stderr.write(`sent ${sent} of ${total} records\n`);
        }
      },
      stop() {},
    };
  };
}

export async function runSend(args: readonly string[], deps: SendDeps): Promise<number> {
  const request = parseSendArgs(args);
  const now = deps.now ?? Date.now;
  const fromEnv = deps.kinesis ? undefined : kinesisFromEnv(deps.env);
  const kinesis = deps.kinesis ?? fromEnv?.kinesis;
  const stream = fromEnv?.stream ?? deps.env.STREAM_NAME ?? "";
  if (!kinesis) throw new CliError("no Kinesis client");
  const started = now();
  const events = generateEvents({
    seed: request.seed,
    users: request.users,
    days: request.days,
    endMs: started,
  });
  function* records() {
    for (let i = 0; i < request.total; i++) {
      yield {
        // The generator's partition keys: part-00000 … part-99999.
        partitionKey: `part-${String(i % 100_000).padStart(5, "0")}`,
        data: Buffer.from(JSON.stringify(events.next().value)),
      };
    }
  }
  const progress = (deps.progress ?? defaultProgress(deps))(request.total);
  let result: ProducerResult;
  try {
    result = await putAll(records(), {
      kinesis,
      stream,
      ...(request.rate ? { rate: request.rate } : {}),
      onProgress: ({ sent }) => progress.update(sent),
      continueAfterFailures: true,
      ...(deps.sleep ? { sleep: deps.sleep } : {}),
    });
  } catch (err) {
    throw new CliError(`sending to ${stream} failed: ${messageOf(err)}`);
  } finally {
    progress.stop();
    if (fromEnv) fromEnv.kinesis.destroy();
  }
  const seconds = Math.max(0.001, (now() - started) / 1000);
  deps.stdout.write(
    `sent ${result.sent} records to ${stream} in ${seconds.toFixed(1)} s (${Math.round(result.sent / seconds)} records/s, ${result.requests} PutRecords requests, ${result.retried} records retried)\n`,
  );
  if (result.failed > 0) {
    const codes = Object.entries(result.failedByCode)
      .map(([code, n]) => `${code} ×${n}`)
      .join(", ");
    deps.stderr.write(
      `${result.failed} of ${request.total} records could not be written after every retry (${codes}); first partition keys: ${result.failedPartitionKeys.join(", ")}. They are not in the stream: lower --rate, add shards (or use on-demand), then send them again.\n`,
    );
    return EXIT_FAILURE;
  }
  return EXIT_OK;
}
