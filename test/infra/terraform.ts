/**
 * Running terraform offline on a synthesized stack: locate terraform and the machine's
 * filesystem mirror of the aws provider, copy the stack into a scratch directory with a CLI
 * config that installs providers from that mirror only, and run init / validate / plan there.
 */

import { execFile, spawnSync } from "node:child_process";
import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { homedir, tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { obj, objs } from "./synth.js";

/** terraform's version line, or undefined when it is not on PATH. */
export function terraformVersion(): string | undefined {
  const r = spawnSync("terraform", ["version"], {
    encoding: "utf8",
    env: { ...process.env, CHECKPOINT_DISABLE: "1", TF_CLI_CONFIG_FILE: "/dev/null" },
  });
  if (r.error || r.status !== 0) return undefined;
  return r.stdout.split("\n")[0];
}

const PROVIDER = join("registry.terraform.io", "hashicorp", "aws");

/**
 * The root of a filesystem mirror holding hashicorp/aws: the folder that contains
 * registry.terraform.io. Usual places first, then a shallow search of the filesystem.
 */
export function findProviderMirror(): string | undefined {
  const candidates = [
    process.env.TF_PROVIDER_MIRROR,
    "/opt/tf-plugins",
    join(homedir(), ".terraform.d", "plugins"),
    join(homedir(), ".local", "share", "terraform", "plugins"),
    "/usr/local/share/terraform/plugins",
    "/usr/share/terraform/plugins",
  ].filter((c): c is string => c !== undefined && c !== "");
  for (const c of candidates) if (existsSync(join(c, PROVIDER))) return c;
  const found = spawnSync(
    "find",
    [
      "/",
      "-maxdepth",
      "4",
      "-type",
      "d",
      "-name",
      "registry.terraform.io",
      "-not",
      "-path",
      "/proc/*",
    ],
    { encoding: "utf8", timeout: 20_000 },
  );
  return (found.stdout ?? "")
    .split("\n")
    .filter(Boolean)
    .map((dir) => dirname(dir))
    .find((root) => existsSync(join(root, PROVIDER)));
}

const workdirs: string[] = [];

/** Removes every scratch directory made by prepareWorkdir. */
export function removeWorkdirs(): void {
  for (const dir of workdirs.splice(0)) rmSync(dir, { recursive: true, force: true });
}

export interface Workdir {
  readonly dir: string;
  readonly env: NodeJS.ProcessEnv;
}

/**
 * Copies a synthesized stack (cdk.tf.json and assets) to a scratch directory, with the state
 * kept there too (never the project's real state file), and writes a CLI config that installs
 * hashicorp/aws from the mirror and nothing from the network.
 */
export function prepareWorkdir(stackDir: string, mirror: string, label: string): Workdir {
  const dir = mkdtempSync(join(tmpdir(), `sketchstream-tf-${label}-`));
  workdirs.push(dir);
  cpSync(stackDir, dir, { recursive: true });
  editConfig(dir, (tf) => {
    const terraform = obj(tf.terraform, "cdk.tf.json terraform");
    terraform.backend = { local: { path: join(dir, "terraform.tfstate") } };
  });
  const cli = join(dir, "offline.tfrc");
  writeFileSync(
    cli,
    `provider_installation {
  filesystem_mirror {
    path    = ${JSON.stringify(mirror)}
    include = ["registry.terraform.io/hashicorp/aws"]
  }
  direct {
    exclude = ["registry.terraform.io/*/*"]
  }
}
`,
  );
  const env: NodeJS.ProcessEnv = {
    PATH: process.env.PATH,
    HOME: dir,
    TF_CLI_CONFIG_FILE: cli,
    TF_IN_AUTOMATION: "1",
    TF_INPUT: "0",
    CHECKPOINT_DISABLE: "1",
    // No real credentials, config or instance metadata can leak into the plan.
    AWS_CONFIG_FILE: "/dev/null",
    AWS_SHARED_CREDENTIALS_FILE: "/dev/null",
    AWS_EC2_METADATA_DISABLED: "true",
  };
  return { dir, env };
}

export function editConfig(dir: string, edit: (tf: Record<string, unknown>) => void): void {
  const file = join(dir, "cdk.tf.json");
  const tf = obj(JSON.parse(readFileSync(file, "utf8")), file);
  edit(tf);
  writeFileSync(file, JSON.stringify(tf, null, 2));
}

/**
 * Points the aws provider at fake credentials and the loopback stub for the APIs plan calls,
 * with the checks that would otherwise call AWS turned off.
 */
export function offlineProvider(dir: string, stubUrl: string): void {
  editConfig(dir, (tf) => {
    const providers = objs(obj(tf.provider, "cdk.tf.json provider").aws ?? [], "provider.aws");
    for (const p of providers) {
      Object.assign(p, {
        access_key: "AKIAOFFLINEPLANTEST0",
        secret_key: "offline-plan-test",
        skip_credentials_validation: true,
        skip_requesting_account_id: true,
        skip_metadata_api_check: "true",
        skip_region_validation: true,
        endpoints: [{ sts: stubUrl, sfn: stubUrl, kinesis: stubUrl }],
      });
    }
  });
}

export interface RunResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

export function terraform(w: Workdir, args: readonly string[]): Promise<RunResult> {
  return new Promise((resolve) => {
    execFile(
      "terraform",
      [...args],
      { cwd: w.dir, env: w.env, maxBuffer: 256 * 1024 * 1024, timeout: 170_000 },
      (error, stdout, stderr) => {
        const code = error ? (typeof error.code === "number" ? error.code : 1) : 0;
        resolve({ code, stdout, stderr });
      },
    );
  });
}

/** Runs terraform and fails with its output when it does not exit 0. */
export async function terraformOk(w: Workdir, args: readonly string[]): Promise<string> {
  const r = await terraform(w, args);
  if (r.code !== 0) {
    throw new Error(
      `terraform ${args.join(" ")} failed (${r.code}) in ${w.dir}:\n${r.stderr}\n${r.stdout}`,
    );
  }
  return r.stdout;
}
