/**
 * The operator instance's first-boot script, run for real by bash against stand-ins of the
 * commands it calls (dnf, swap tools, tee, ln, sleep): swap comes before dnf, a failing
 * install is retried, and the outcome is written where the README says to look.
 */

import { execFile } from "node:child_process";
import { chmodSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";
import { INSTALL_ATTEMPTS, USER_DATA } from "../../stacks/access.js";

const run = promisify(execFile);

interface Scenario {
  /** dnf install calls that fail before every later one succeeds (Infinity: all fail). */
  readonly dnfFailures: number;
  /** Whether swap is already on (swapon --show prints a device). */
  readonly swapOn?: boolean;
  /** Whether the valkey package exists in the repository. */
  readonly valkey?: boolean;
}

/** Runs USER_DATA with every command that writes a file replaced by one that logs its call. */
async function boot(scenario: Scenario): Promise<{ code: number; calls: string[]; out: string }> {
  const dir = mkdtempSync(join(tmpdir(), "sketchstream-userdata-"));
  const log = join(dir, "calls.log");
  const counter = join(dir, "dnf-installs");
  writeFileSync(counter, "0");
  const stub = (name: string, body = "") => {
    const path = join(dir, name);
    writeFileSync(path, `#!/bin/bash\necho "${name} $*" >> ${log}\n${body}\n`);
    chmodSync(path, 0o755);
  };
  stub("swapon", scenario.swapOn ? 'if [ "$1" = "--show=NAME" ]; then echo /dev/zram0; fi' : "");
  for (const name of ["dd", "chmod", "mkswap", "ln", "sleep"]) stub(name);
  stub("tee", "cat > /dev/null");
  stub("redis-cli", 'echo "redis-cli 7.2.5"');
  const failures = Number.isFinite(scenario.dnfFailures) ? scenario.dnfFailures : 1_000_000;
  stub(
    "dnf",
    [
      '[ "$1" = "install" ] || exit 0',
      scenario.valkey ? "" : '[ "$3" = "valkey" ] && exit 1',
      `n=$(( $(cat ${counter}) + 1 )); echo $n > ${counter}`,
      `[ $n -le ${failures} ] && exit 1`,
      "exit 0",
    ].join("\n"),
  );
  const script = join(dir, "user-data.sh");
  writeFileSync(script, USER_DATA);
  const result = await run("bash", [script], {
    env: { PATH: `${dir}:/usr/bin:/bin` },
    timeout: 30_000,
  }).then(
    ({ stdout }) => ({ code: 0, out: stdout }),
    (err: { code: number; stdout: string }) => ({ code: err.code, out: err.stdout }),
  );
  const calls = readFileSync(log, "utf8").trim().split("\n");
  return { ...result, calls };
}

describe("operator instance user data", () => {
  it("is valid bash", async () => {
    const dir = mkdtempSync(join(tmpdir(), "sketchstream-userdata-"));
    writeFileSync(join(dir, "u.sh"), USER_DATA);
    await expect(run("bash", ["-n", join(dir, "u.sh")])).resolves.toBeDefined();
  });

  it("makes swap before dnf, retries a failing install, links redis-cli and reports it", async () => {
    const { code, calls } = await boot({ dnfFailures: 2 });
    expect(code).toBe(0);
    const firstDnf = calls.findIndex((c) => c.startsWith("dnf install"));
    expect(calls.findIndex((c) => c.startsWith("swapon /swapfile"))).toBeLessThan(firstDnf);
    expect(calls).toContain("tee -a /etc/fstab");
    // valkey is missing, redis6 fails twice: three rounds, 20 s then 40 s apart.
    expect(calls.filter((c) => c === "dnf install -y redis6")).toHaveLength(3);
    expect(calls.filter((c) => c.startsWith("sleep"))).toEqual(["sleep 20", "sleep 40"]);
    expect(calls).toContain("ln -sf /usr/bin/redis6-cli /usr/local/bin/redis-cli");
    // The banner is the last thing written (redis-cli --version runs beside it in a pipe).
    expect(calls.slice(-2)).toContain("tee /etc/motd.d/30-redis-cli");
  });

  it("prefers valkey-cli and leaves existing swap alone", async () => {
    const { code, calls } = await boot({ dnfFailures: 0, swapOn: true, valkey: true });
    expect(code).toBe(0);
    expect(calls.some((c) => c.startsWith("dd "))).toBe(false);
    expect(calls).toContain("ln -sf /usr/bin/valkey-cli /usr/local/bin/redis-cli");
    expect(calls).not.toContain("dnf install -y redis6");
  });

  it(`gives up after ${INSTALL_ATTEMPTS} attempts with a non-zero exit and a login banner`, async () => {
    const { code, calls, out } = await boot({ dnfFailures: Number.POSITIVE_INFINITY });
    expect(code).toBe(1);
    expect(calls.filter((c) => c === "dnf install -y redis6")).toHaveLength(INSTALL_ATTEMPTS);
    expect(calls.filter((c) => c.startsWith("ln "))).toEqual([]);
    expect(out).toContain(
      `redis-cli install attempt ${INSTALL_ATTEMPTS} of ${INSTALL_ATTEMPTS} failed`,
    );
    expect(calls.at(-1)).toBe("tee /etc/motd.d/30-redis-cli");
  });
});
