// A function bundle folder as a deterministic tar.gz, the way reactor_jobs/functions/bundle.py
// packs it: entries sorted by name, regular files only (links refused), times and owners
// zeroed, mode 0755 for executables else 0644; __pycache__ folders and .pyc/.pyo skipped.

import { gzipSync } from "node:zlib";
import { lstatSync, readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";

export const MANIFEST_NAME = "function.json";
export const MAX_ARCHIVE_BYTES = 50 * 1024 * 1024;
const SKIPPED_DIRS = new Set(["__pycache__"]);
const SKIPPED_SUFFIXES = [".pyc", ".pyo"];
const BLOCK = 512;

export class BundleError extends Error {
  override name = "BundleError";
}

/** The folder as a bundle archive. */
export function packDir(root: string): Uint8Array {
  if (!statSync(join(root, MANIFEST_NAME), { throwIfNoEntry: false })?.isFile()) {
    throw new BundleError(`${root}: no ${MANIFEST_NAME} in the bundle folder`);
  }
  const blocks: Buffer[] = [];
  for (const [file, name] of bundleFiles(root)) {
    const data = readFileSync(file);
    const executable = (statSync(file).mode & 0o100) !== 0;
    blocks.push(...entry(name, data, executable));
  }
  blocks.push(Buffer.alloc(BLOCK * 2));
  const archive = gzipSync(Buffer.concat(blocks));
  if (archive.length > MAX_ARCHIVE_BYTES) {
    throw new BundleError(
      `the bundle is ${archive.length} bytes; the limit is ${MAX_ARCHIVE_BYTES} (50 MiB)`,
    );
  }
  return archive;
}

function bundleFiles(root: string): [string, string][] {
  const found: [string, string][] = [];
  const walk = (dir: string, prefix: string) => {
    for (const item of readdirSync(dir, { withFileTypes: true })) {
      const path = join(dir, item.name);
      const name = prefix ? `${prefix}/${item.name}` : item.name;
      if (item.isSymbolicLink() || lstatSync(path).isSymbolicLink()) {
        throw new BundleError(`${path}: links are not allowed in a bundle`);
      }
      if (item.isDirectory()) {
        if (!SKIPPED_DIRS.has(item.name)) walk(path, name);
      } else if (item.isFile()) {
        if (!SKIPPED_SUFFIXES.some((s) => item.name.endsWith(s))) found.push([path, name]);
      } else {
        throw new BundleError(`${path}: only regular files are allowed in a bundle`);
      }
    }
  };
  walk(root, "");
  return found.sort((a, b) => (a[1] < b[1] ? -1 : a[1] > b[1] ? 1 : 0));
}

function entry(name: string, data: Buffer, executable: boolean): Buffer[] {
  const out: Buffer[] = [];
  if (Buffer.byteLength(name) > 100) {
    out.push(...record(header("././@PaxHeader", paxBody(name).length, 0o644, "x"), paxBody(name)));
  }
  out.push(...record(header(name, data.length, executable ? 0o755 : 0o644, "0"), data));
  return out;
}

function record(head: Buffer, body: Buffer): Buffer[] {
  const padding = (BLOCK - (body.length % BLOCK)) % BLOCK;
  return [head, body, Buffer.alloc(padding)];
}

function paxBody(path: string): Buffer {
  const text = ` path=${path}\n`;
  let length = Buffer.byteLength(text);
  length += String(length).length;
  if (String(length).length !== String(length - String(length).length).length) length += 1;
  return Buffer.from(`${length}${text}`, "utf8");
}

function header(name: string, size: number, mode: number, type: string): Buffer {
  const head = Buffer.alloc(BLOCK);
  head.write(Buffer.from(name).subarray(0, 100).toString("latin1"), 0, "latin1");
  head.write(octal(mode, 8), 100, "ascii");
  head.write(octal(0, 8), 108, "ascii"); // uid
  head.write(octal(0, 8), 116, "ascii"); // gid
  head.write(octal(size, 12), 124, "ascii");
  head.write(octal(0, 12), 136, "ascii"); // mtime
  head.fill(0x20, 148, 156); // checksum placeholder: spaces
  head.write(type, 156, "ascii");
  head.write("ustar\u000000", 257, "latin1");
  let sum = 0;
  for (const byte of head) sum += byte;
  head.write(`${sum.toString(8).padStart(6, "0")}\u0000 `, 148, "latin1");
  return head;
}

function octal(value: number, width: number): string {
  return `${value.toString(8).padStart(width - 1, "0")}\u0000`;
}
