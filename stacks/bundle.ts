/**
 * Bundles a Lambda entry point with esbuild at synth time into a deterministic zip.
 *
 * - One ESM bundle per entry (`index.mjs` + source map): a file with several exported handlers
 *   (the rollup's plan/merge/finish) is bundled once and used by several functions.
 * - The zip (written with fflate) is byte-for-byte reproducible: fixed timestamps, modes and
 *   compression settings, entries sorted by name. Its SHA-256 is the Lambda's source_code_hash,
 *   so the code is redeployed when, and only when, the bundle changes (cdktf's archiver would
 *   record file mtimes, and a new hash on every build would redeploy every function every time).
 * - Bundles are cached per process and on disk (node_modules/.cache), keyed by the bundler
 *   options and package-lock.json and checked against the content of every local input file,
 *   so synthesizing several stacks, or several test files, bundles each entry once.
 */

import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { buildSync } from "esbuild";
import { type ZipOptions, zipSync } from "fflate";
import * as v from "valibot";

export interface Bundle {
  /** Absolute path of the zip. */
  readonly zipPath: string;
  /** base64 SHA-256 of the zip, the form Lambda reports as CodeSha256. */
  readonly sha256: string;
  /** Names the entry exports (the possible handler names). */
  readonly exports: readonly string[];
}

export class BundleError extends Error {
  override name = "BundleError";
}

/** Node 22 runtime; CommonJS dependencies (ioredis, the AWS SDK) need `require` inside ESM. */
const BUILD_OPTIONS = {
  bundle: true,
  platform: "node",
  target: "node22",
  format: "esm",
  minify: true,
  sourcemap: "external",
  legalComments: "none",
  banner: {
    js: "import{createRequire as __cr}from'node:module';const require=__cr(import.meta.url);",
  },
} as const;
const CACHE_VERSION = "2";

const memo = new Map<string, Bundle>();

/**
 * Bundles `entry` (absolute path) and checks that it exports every name in `handlers`.
 * Fails with a message naming the file when it is missing or lacks a handler.
 */
export function bundleEntry(
  entry: string,
  handlers: readonly string[],
  projectRoot: string,
): Bundle {
  if (!existsSync(entry)) {
    throw new BundleError(
      `Lambda entry ${relative(projectRoot, entry)} does not exist: it must export ${handlers.join(", ")}. Synth needs it to bundle the function.`,
    );
  }
  let bundle = memo.get(entry);
  if (!bundle) {
    bundle = cachedOrBuilt(entry, projectRoot);
    memo.set(entry, bundle);
  }
  const missing = handlers.filter((h) => !bundle.exports.includes(h));
  if (missing.length > 0) {
    throw new BundleError(
      `${relative(projectRoot, entry)} does not export ${missing.join(", ")} (it exports ${bundle.exports.join(", ") || "nothing"}); the stack uses it as the handler.`,
    );
  }
  return bundle;
}

/** What the cache keeps beside a zip; a manifest of any other shape is rebuilt. */
const CacheManifestSchema = v.object({
  inputs: v.record(v.string(), v.string()),
  exports: v.array(v.string()),
  sha256: v.string(),
});
type CacheManifest = v.InferOutput<typeof CacheManifestSchema>;

function sha256(data: Buffer | string, encoding: "hex" | "base64" = "hex"): string {
  return createHash("sha256").update(data).digest(encoding);
}

function cachedOrBuilt(entry: string, projectRoot: string): Bundle {
  const lock = join(projectRoot, "package-lock.json");
  const key = sha256(
    JSON.stringify({
      CACHE_VERSION,
      BUILD_OPTIONS,
      entry: relative(projectRoot, entry),
      lock: existsSync(lock) ? sha256(readFileSync(lock)) : "",
    }),
  );
  const dir = join(projectRoot, "node_modules", ".cache", "sketchstream-bundles", key);
  const manifestPath = join(dir, "manifest.json");
  const zipPath = join(dir, "bundle.zip");
  if (existsSync(manifestPath) && existsSync(zipPath)) {
    try {
      const manifest = v.parse(CacheManifestSchema, JSON.parse(readFileSync(manifestPath, "utf8")));
      const fresh = Object.entries(manifest.inputs).every(([file, hash]) => {
        const abs = resolve(projectRoot, file);
        return existsSync(abs) && sha256(readFileSync(abs)) === hash;
      });
      if (fresh && sha256(readFileSync(zipPath), "base64") === manifest.sha256) {
        return { zipPath, sha256: manifest.sha256, exports: manifest.exports };
      }
    } catch {
      // A corrupt cache entry is rebuilt below.
    }
  }

  const result = buildSync({
    ...BUILD_OPTIONS,
    entryPoints: [entry],
    outfile: join(dir, "index.mjs"),
    write: false,
    metafile: true,
    logLevel: "silent",
    absWorkingDir: projectRoot,
  });
  const zip = deterministicZip(
    result.outputFiles.map((f) => ({ name: relative(dir, f.path), data: f.contents })),
  );
  const output = Object.values(result.metafile.outputs).find((o) => o.entryPoint !== undefined);
  const exports = [...(output?.exports ?? [])].sort();
  // Local inputs (not node_modules, which the lockfile covers) decide whether the cache is fresh.
  const inputs: Record<string, string> = {};
  for (const file of Object.keys(result.metafile.inputs)) {
    if (file.includes("node_modules/")) continue;
    inputs[file] = sha256(readFileSync(resolve(projectRoot, file)));
  }
  const manifest: CacheManifest = { inputs, exports, sha256: sha256(zip, "base64") };
  // Written under temporary names and renamed, so concurrent synths never see half a file.
  mkdirSync(dir, { recursive: true });
  const tmp = `.${process.pid}.${Date.now()}`;
  writeFileSync(zipPath + tmp, zip);
  renameSync(zipPath + tmp, zipPath);
  writeFileSync(manifestPath + tmp, JSON.stringify(manifest));
  renameSync(manifestPath + tmp, manifestPath);
  return { zipPath, sha256: manifest.sha256, exports };
}

/**
 * fflate's zip settings, fixed so the bytes depend only on the files.
 * - `mtime`: DOS time 1980-01-01 00:00, the earliest a zip can hold. fflate reads it with the
 *   local-time getters (getFullYear, getHours...), so it is built from local components: a UTC
 *   instant such as `Date.UTC(1980, 0, 1)` would give a different timestamp in every time zone.
 * - `os: 3` (Unix) and `attrs`: a regular file with mode 0644 (`-rw-r--r--`), the st_mode in the
 *   high 16 bits of the external attributes, which fflate writes as given.
 * - `level` and `mem`: fflate otherwise picks the memory level from the input size.
 */
const ZIP_OPTIONS = {
  mtime: new Date(1980, 0, 1),
  os: 3,
  attrs: (0o100644 << 16) >>> 0,
  level: 9,
  mem: 8,
} as const satisfies ZipOptions;

/**
 * A deflated zip of `files`, entries sorted by name (UTF-16 code units, not the locale), every
 * entry with the same timestamp and mode: the same files always give the same bytes, in any
 * time zone or locale. Names are flat paths ("a/b.js"); no directory entries are written.
 */
export function deterministicZip(files: readonly { name: string; data: Uint8Array }[]): Buffer {
  const sorted = [...files].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  for (let i = 1; i < sorted.length; i++) {
    if (sorted[i]?.name === sorted[i - 1]?.name) {
      throw new BundleError(`two zip entries are named ${sorted[i]?.name}`);
    }
  }
  // fflate writes the entries in the object's key order, which is insertion order for names
  // that are not array indices ("0", "1"...: those would come first, still deterministically).
  const zip = zipSync(
    Object.fromEntries(sorted.map(({ name, data }) => [name, data])),
    ZIP_OPTIONS,
  );
  return Buffer.from(zip.buffer, zip.byteOffset, zip.byteLength);
}

/** The directory of this project (the one holding package.json), from this file's location. */
export function projectRootFrom(moduleUrl: string): string {
  let dir = dirname(fileURLToPath(moduleUrl));
  while (!existsSync(join(dir, "package.json"))) {
    const parent = dirname(dir);
    if (parent === dir) throw new BundleError(`no package.json above ${moduleUrl}`);
    dir = parent;
  }
  return dir;
}
