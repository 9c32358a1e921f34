/**
 * Usage errors: every bad invocation prints what was wrong and the usage text on stderr and
 * exits 2, before reading any configuration or reaching Redis or AWS. One set runs the real
 * CLI as a child process (`tsx cli/main.ts`), the rest call runCli in-process.
 */

import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";
import { runCli } from "../../cli/app.js";
import { USAGE } from "../../cli/io.js";
import { at, first } from "../../functions/domain/arrays.js";
import { exitFailure } from "../helpers/exec.js";
import { captureIo } from "./capture.js";

const run = promisify(execFile);

async function cli(args: readonly string[], env: Record<string, string> = {}) {
  try {
    const { stdout, stderr } = await run("node_modules/.bin/tsx", ["cli/main.ts", ...args], {
      timeout: 30_000,
      env: { PATH: process.env.PATH ?? "", HOME: process.env.HOME ?? "/tmp", ...env },
    });
    return { code: 0, stdout, stderr };
  } catch (err) {
    return exitFailure(err);
  }
}

describe("the CLI as a child process", () => {
  it("exits 2 with the usage text when the arguments are wrong", async () => {
    for (const args of [
      [],
      ["frobnicate"],
      ["rollup", "--from", "2024-03-01"],
      ["count", "--site", "715"],
    ]) {
      const result = await cli(args);
      expect(result.code, args.join(" ")).toBe(2);
      expect(result.stderr).toContain("Usage: npm run cli -- <command> [flags]");
      expect(result.stderr).toMatch(/^error: /);
      expect(result.stdout).toBe("");
    }
  });

  it("prints the usage on stdout for help, exit 0", async () => {
    const result = await cli(["help"]);
    expect(result.code).toBe(0);
    expect(result.stdout).toBe(USAGE);
  });

  it("exits 1 naming STATE_MACHINE_ARN when it is missing", async () => {
    const result = await cli(["rollup"]);
    expect(result.code).toBe(1);
    expect(result.stderr).toContain("STATE_MACHINE_ARN is not set");
    expect(result.stderr).not.toContain("Usage:");
  });
});

describe("usage errors in-process", () => {
  const cases: [string[], RegExp][] = [
    [["rollup", "--to", "2024-03-01"], /--to needs --from/],
    [
      ["rollup", "--from", "2024-02-30", "--to", "2024-03-01"],
      /--from: "2024-02-30" is not a calendar date/,
    ],
    [
      ["rollup", "--from", "2024-03-02", "--to", "2024-03-01"],
      /--to 2024-03-01 is before --from 2024-03-02/,
    ],
    [["rollup", "--from", "03/01/2024", "--to", "2024-03-01"], /expected YYYY-MM-DD/],
    [["rollup", "--wait", "now"], /Unexpected argument 'now'/],
    [["rollup", "--bogus"], /Unknown option '--bogus'/],
    [["count", "--day", "2024-03-01"], /--site is required/],
    [["count", "--site", "a{b}", "--day", "2024-03-01"], /site id "a\{b\}" is not allowed/],
    [
      ["count", "--site", "715", "--event", "Buy!", "--day", "2024-03-01"],
      /event type "Buy!" is not allowed/,
    ],
    [["count", "--site", "715"], /one of --day, --week, --month, or --from with --to/],
    [["count", "--site", "715", "--day", "2024-03-01", "--week", "2024-W10"], /exactly one of/],
    [["count", "--site", "715", "--from", "2024-03-01"], /--from needs --to/],
    [["count", "--site", "715", "--to", "2024-03-01"], /exactly one of|--to needs --from/],
    [["count", "--site", "715", "--week", "2021-W53"], /ISO year 2021 has no week 53/],
    [["count", "--site", "715", "--month", "2024-13"], /"2024-13" is not a month/],
    [["count", "--site", "715", "--day", "2024-3-1"], /expected YYYY-MM-DD/],
    [["count", "--site", "715", "--from", "2000-01-01", "--to", "2024-01-01"], /at most 3660 days/],
    [["token", "--user", "a b"], /not an ACL user name/],
    [["token", "extra"], /Unexpected argument 'extra'/],
  ];
  it.each(cases)("%j", async (argv, message) => {
    const { out, io } = captureIo();
    expect(await runCli(argv, io)).toBe(2);
    expect(out.stderr).toMatch(message);
    expect(out.stderr).toContain(USAGE);
    expect(out.stdout).toBe("");
  });

  it("reports configuration problems as runtime failures (exit 1) naming the variable", async () => {
    const { out, io } = captureIo();
    expect(await runCli(["count", "--site", "715", "--day", "2024-03-01"], io)).toBe(1);
    expect(out.stderr).toContain("REDIS_ENDPOINT is not set");
  });
});

describe("token", () => {
  it("signs a MemoryDB connect token from the environment's credentials (child process)", async () => {
    const result = await cli(["token", "--user", "reader"], {
      AWS_ACCESS_KEY_ID: "AKIDEXAMPLE",
      AWS_SECRET_ACCESS_KEY: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
      AWS_REGION: "eu-west-1",
      MEMORYDB_CLUSTER_NAME: "sketchstream-dev",
    });
    expect(result.code, result.stderr).toBe(0);
    const token = result.stdout.trim();
    expect(result.stdout.split("\n")).toHaveLength(2);
    const parts = token.split("/?");
    const host = first(parts, "host of the token");
    const query = at(parts, 1, "query of the token");
    expect(host).toBe("sketchstream-dev");
    const params = new URLSearchParams(query);
    expect(params.get("Action")).toBe("connect");
    expect(params.get("User")).toBe("reader");
    expect(params.get("X-Amz-Algorithm")).toBe("AWS4-HMAC-SHA256");
    expect(params.get("X-Amz-Credential")).toMatch(
      /^AKIDEXAMPLE\/\d{8}\/eu-west-1\/memorydb\/aws4_request$/,
    );
    expect(params.get("X-Amz-Expires")).toBe("900");
    expect(params.get("X-Amz-Signature")).toMatch(/^[0-9a-f]{64}$/);
    // The hint is for the operator instance, where redis-cli and the network path are (and
    // neither Node nor AWS credentials): paste the token, never run this CLI there.
    expect(result.stderr).toContain("operator_connect_command");
    expect(result.stderr).toContain("export REDISCLI_AUTH='<token>'");
    expect(result.stderr).toMatch(/redis-cli -c --tls -h .* --user reader PFCOUNT/);
    expect(result.stderr).not.toContain("npm run");
  });

  it("signs for REDIS_USER when --user is not given, and asks for a user when neither is", async () => {
    const env = {
      MEMORYDB_CLUSTER_NAME: "sketchstream-dev",
      AWS_REGION: "eu-west-1",
      REDIS_USER: "sketchstream-dev-reader",
    };
    const { out, io } = captureIo(env);
    const code = await runCli(["token"], {
      ...io,
      credentials: async () => ({ accessKeyId: "AKIDTEST", secretAccessKey: "secret" }),
    });
    expect(code, out.stderr).toBe(0);
    expect(out.stdout).toContain("User=sketchstream-dev-reader&");
    const none = captureIo({ MEMORYDB_CLUSTER_NAME: "c", AWS_REGION: "eu-west-1" });
    expect(await runCli(["token"], none.io)).toBe(2);
    expect(none.out.stderr).toContain("pass --user <ACL user>, or set REDIS_USER");
  });

  it("names MEMORYDB_CLUSTER_NAME and AWS_REGION when they are missing (exit 1)", async () => {
    const { out, io } = captureIo({ REDIS_USER: "sketchstream-dev-reader" });
    expect(await runCli(["token"], io)).toBe(1);
    expect(out.stderr).toContain("MEMORYDB_CLUSTER_NAME is not set");
    expect(out.stderr).toContain("AWS_REGION is not set");
  });
});
