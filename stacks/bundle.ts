/**
 * Bundles a Lambda entry point with esbuild at synth time into a deterministic zip.
 *
 * - One ESM bundle per entry (`index.mjs` + source map): a file with several exported handlers
 *   (the rollup's plan/merge/finish) is bundled once and used by several functions.
 * - The zip is byte-for-byte reproducible (fixed timestamps and order), so its SHA-256 is the
 *   Lambda's source_code_hash: the code is redeployed when, and only when, the bundle changes.
 * - Bundles are cached per process and on disk (node_modules/.cache), keyed by the bundler
 *   options and package-lock.json and checked against the content of every local input file,
 *   so synthesizing several stacks, or several test files, bundles each entry once.
 */

import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { crc32, deflateRawSync } from "node:zlib";
import { buildSync } from "esbuild";

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
const CACHE_VERSION = "1";

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

interface CacheManifest {
  readonly inputs: Record<string, string>;
  readonly exports: readonly string[];
  readonly sha256: string;
}

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
      const manifest = JSON.parse(readFileSync(manifestPath, "utf8")) as CacheManifest;
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
  const files = result.outputFiles
    .map((f) => ({ name: relative(dir, f.path), data: Buffer.from(f.contents) }))
    .sort((a, b) => a.name.localeCompare(b.name));
  const zip = deterministicZip(files);
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
 * A zip with stored DOS time 1980-01-01 00:00 for every entry and entries in the given order:
 * the same files always give the same bytes (cdktf's archiver would record file mtimes).
 */
export function deterministicZip(files: readonly { name: string; data: Buffer }[]): Buffer {
  const locals: Buffer[] = [];
  const centrals: Buffer[] = [];
  let offset = 0;
  const DOS_TIME = 0;
  const DOS_DATE = (0 << 9) | (1 << 5) | 1; // 1980-01-01
  for (const { name, data } of files) {
    const nameBuf = Buffer.from(name, "utf8");
    const compressed = deflateRawSync(data, { level: 9 });
    const crc = crc32(data);
    const local = Buffer.alloc(30);
    local.writeUInt32LE(0x04034b50, 0);
    local.writeUInt16LE(20, 4); // version needed
    local.writeUInt16LE(0x0800, 6); // UTF-8 names
    local.writeUInt16LE(8, 8); // deflate
    local.writeUInt16LE(DOS_TIME, 10);
    local.writeUInt16LE(DOS_DATE, 12);
    local.writeUInt32LE(crc, 14);
    local.writeUInt32LE(compressed.length, 18);
    local.writeUInt32LE(data.length, 22);
    local.writeUInt16LE(nameBuf.length, 26);
    local.writeUInt16LE(0, 28);
    const central = Buffer.alloc(46);
    central.writeUInt32LE(0x02014b50, 0);
    central.writeUInt16LE((3 << 8) | 20, 4); // made by: unix
    central.writeUInt16LE(20, 6);
    central.writeUInt16LE(0x0800, 8);
    central.writeUInt16LE(8, 10);
    central.writeUInt16LE(DOS_TIME, 12);
    central.writeUInt16LE(DOS_DATE, 14);
    central.writeUInt32LE(crc, 16);
    central.writeUInt32LE(compressed.length, 20);
    central.writeUInt32LE(data.length, 24);
    central.writeUInt16LE(nameBuf.length, 28);
    central.writeUInt16LE(0, 30); // extra
    central.writeUInt16LE(0, 32); // comment
    central.writeUInt16LE(0, 34); // disk
    central.writeUInt16LE(0, 36); // internal attributes
    central.writeUInt32LE((0o100644 << 16) >>> 0, 38); // -rw-r--r--
    central.writeUInt32LE(offset, 42);
    locals.push(local, nameBuf, compressed);
    centrals.push(central, nameBuf);
    offset += local.length + nameBuf.length + compressed.length;
  }
  const centralSize = centrals.reduce((n, b) => n + b.length, 0);
  const end = Buffer.alloc(22);
  end.writeUInt32LE(0x06054b50, 0);
  end.writeUInt16LE(files.length, 8);
  end.writeUInt16LE(files.length, 10);
  end.writeUInt32LE(centralSize, 12);
  end.writeUInt32LE(offset, 16);
  return Buffer.concat([...locals, ...centrals, end]);
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
