/**
 * What every command shares: the streams it writes to, the environment it reads, the usage
 * text and the two kinds of failure (a usage error exits 2 with the usage; anything else that
 * fails at run time exits 1 with its cause).
 */

import { MAX_SERIES_POINTS } from "../functions/api/schemas.js";
import { MAX_RANGE_DAYS } from "../functions/domain/cover.js";
import { CLI_VARIABLES, type Env, RUNTIME_VARIABLES } from "../functions/domain/runtime-env.js";

/**
 * A writable text stream; process.stdout and process.stderr are ones. Progress bars and
 * spinners appear only when it is a terminal (a tty.WriteStream).
 */
export interface Output {
  write(chunk: string): unknown;
}

export interface CliIo {
  readonly env: Env;
  readonly stdout: Output;
  readonly stderr: Output;
}

export const EXIT_OK = 0;
export const EXIT_FAILURE = 1;
export const EXIT_USAGE = 2;

/** Bad arguments: the command prints what was wrong and the usage text, and exits 2. */
export class UsageError extends Error {
  override name = "UsageError";
}

/** A failure at run time whose message already says what to do: printed as is, exit 1. */
export class CliError extends Error {
  override name = "CliError";
}

/** Words of `text` in lines of at most `width` characters, each starting with `indent`. */
function wrap(text: string, width: number, indent: string): string {
  const lines: string[] = [];
  let line = indent;
  for (const word of text.split(" ")) {
    if (line.length + word.length > width && line.trim() !== "") {
      lines.push(line.trimEnd());
      line = indent;
    }
    line += `${word} `;
  }
  lines.push(line.trimEnd());
  return lines.join("\n");
}

export const USAGE = `Usage: npm run cli -- <command> [flags]

Commands:
  send [--total N] [--days N] [--users N] [--seed N] [--rate N]
      Put generator-style click events into STREAM_NAME (a name or ARN) with PutRecords, like
      the original generator: sites 489, 715, 283, 190, 875; view/like/cart/purchase; users
      u-###-## drawn from --users; event times over the last --days days (at most 62).
      Defaults: --total 10000 --days 7 --users 10000 --seed 1; --rate caps records/s.
      KINESIS_ENDPOINT sends to a local Kinesis instead of AWS.

  rollup [--from YYYY-MM-DD --to YYYY-MM-DD] [--wait] [--local]
      Start the rollup state machine: without --from/--to the scheduled, incremental run
      (merge every touched day into its week and month); with both, a backfill that recomputes
      every week and month overlapping the range. Uses StartExecution on STATE_MACHINE_ARN and
      prints the execution ARN; --wait polls until the execution ends and prints its output.
      --local runs state-machines/rollup.asl.json in-process against REDIS_ENDPOINT (always
      waits). Exit code 0 only when the execution SUCCEEDED.

  count --site S (--day YYYY-MM-DD|today|yesterday | --week YYYY-Www | --month YYYY-MM
                  | --from YYYY-MM-DD --to YYYY-MM-DD) [--event E] [--metric visitors|events]
                  [--json]
      Unique visitors of site S (of event type E only, with --event): the HyperLogLog estimate
      of one PFCOUNT over the fewest month, week and day keys that cover the days exactly, and
      the equivalent redis-cli command. --metric events counts events instead: distinct event
      identities (each event's event_id, else its Kinesis record id), so a replayed or retried
      record counts once; days before events were first recorded are reported on stderr, not
      counted. A week or month key is used only when it exists and none of its days has
      pending rollup work; otherwise its days are. Dates are the site's local dates (its zone
      in the registry, UTC by default): --day today is today there. --json prints {"site",
      "event","metric","from","to","timeZone","keys","estimate","complete","missing",
      "notRecorded","redisCli"}. With API_URL
      set, asks the read API instead of Redis (same output; the redis-cli command needs
      REDIS_ENDPOINT, else it is left out, and null in --json).

  series --site S --from YYYY-MM-DD --to YYYY-MM-DD [--granularity day|week|month] [--event E]
         [--metric visitors|events] [--json | --csv]
      Unique visitors (or events, with --metric events) of site S per day (default), ISO week or
      month of the range; the first and last week or month count only their days inside it.
      Prints a table (* marks a point some of whose days are past their retention, or before
      events were first recorded), the read API's JSON with --json, or CSV with --csv. Visitor
      points do not add up to the range's unique visitors: use count for that.
      At most ${MAX_SERIES_POINTS} points and ${MAX_RANGE_DAYS} days. Reads REDIS_ENDPOINT, or the read API when API_URL
      is set.

  site --site S [--time-zone ZONE | --utc | --delete --yes] [--json]
      Site S's time zone: the zone registry's entry, or UTC (the default) without one. With
      --time-zone, set it: UTC or an IANA Area/Location name in its canonical case, e.g.
      Europe/Paris (not +05:30, EST or europe/paris); --utc removes the entry (back to UTC). A
      change applies to events ingested from then on (the consumer re-reads the registry within
      60 s); keys already written keep their labels, never rewritten. --json prints
      {"site","timeZone","source"} (source registry or default), after a change with
      "previous" and "changed". --delete --yes deletes all of site S's data: every uv: and ev:
      key (all periods and event types), its event-type set, its members of the site index and
      of the rollup's touched and pending sets, and its time-zone entry; progress on stderr; it
      cannot be undone, and without --yes it only says what it would delete. --json then prints
      {"site","deleted":{"keys","siteIndex","touched","pending","timeZone"},"pages"}. Uses Redis
      at REDIS_ENDPOINT, or the admin API when ADMIN_API_URL is set (SigV4-signed with your AWS
      credentials; how it is done in AWS).

  api [--port N]
      Serve the read API (GET /v1/sites, /v1/sites/{site}/events|count|series|time-zone,
      /v1/openapi.json) on 127.0.0.1 only, without auth, against REDIS_ENDPOINT, until Ctrl-C
      (SIGINT) or SIGTERM. Default port 8787; --port 0 picks a free one. Prints its URL.

  dashboard [--port N]
      Serve a dashboard on 127.0.0.1 (default port 8788; 0 picks a free one): site picker,
      range, metric (unique visitors or events), event type, granularity, chart, table, the
      range's true total and its events per visitor. Reads the local read app against
      REDIS_ENDPOINT, or the read API at API_URL signed with your AWS credentials. Open the
      printed URL (it carries this run's token); Ctrl-C stops it.

  token [--user USER]
      Print a MemoryDB IAM auth token (valid 15 minutes) for the ACL user (default REDIS_USER,
      e.g. sketchstream-dev-reader), to use as redis-cli's password. Needs
      MEMORYDB_CLUSTER_NAME, AWS_REGION and AWS credentials.

  redrive [--quarantine] [--dry-run] [--max N] [--drop-expired] [--local] [--json]
      Have the records the consumer gave up on counted again, each keeping its original
      identity (eventID shardId:sequenceNumber), so a partly applied batch adds nothing twice.
      Reads the on-failure queue (FAILURE_QUEUE_URL), reads each batch's sequence range back
      from STREAM_NAME while the stream retains it, and invokes the consumer function
      (CONSUMER_FUNCTION_NAME) with the original records, at most 5 MB per invocation. A message
      is deleted only once all of its records were counted; records past the stream's
      retention are reported and their message kept (--drop-expired deletes it once the rest
      is counted). --quarantine submits quarantined records (QUARANTINE_QUEUE_URL) again after
      a fix, a truncated one read back from the stream; those still invalid are quarantined
      again. --dry-run reads and reports without invoking or deleting; --max handles at most N
      messages. --local uses ON_FAILURE_FILE (or QUARANTINE_FILE) and the consumer handler in
      this process against REDIS_ENDPOINT, with KINESIS_ENDPOINT. --json prints the summary as
      JSON. Exit code 0 only when every message handled was deleted (or would be).

  capacity --events-per-second N --sites N [--event-types N] [--active-sites-per-day N]
           [--users-per-site-day N] [--constants FILE] [--json]
      What a load needs and costs: keys and memory by family and period, MemoryDB node type,
      shards and replicas (data tiering where it is cheaper), Kinesis provisioned shards against
      on-demand, the consumer's batch size, parallelization factor and concurrency, the rollup's
      duration, Map concurrency and Step Functions transitions, the monthly cost with every price
      as a dated assumption, the AWS quotas to raise and the stacks/config.ts limits exceeded,
      and the stacks/config.ts values to set. Defaults: --event-types 4, --active-sites-per-day
      the --sites, --users-per-site-day half the events per site-day. Reads the constants
      \`npm run bench:scale\` measured (bench/results/scale-constants.json, or --constants).
      Needs neither AWS nor Redis. --json prints the whole plan.

  help
      Print this text.

Environment: the functions' variables (count, series, site, api, dashboard, rollup --local,
token; README "Runtime environment"):
${wrap(RUNTIME_VARIABLES.map((variable) => variable.name).join(", "), 92, "  ")}
and the CLI's own:
${CLI_VARIABLES.map((variable) => `  ${variable.name.padEnd(19)} ${wrap(variable.meaning.replaceAll("`", ""), 92, " ".repeat(22)).trimStart()}`).join("\n")}

Exit codes: 0 success, 1 runtime failure (the cause is printed), 2 usage error.
`;
