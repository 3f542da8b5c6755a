// Unpack a bundle (a tar.gz as reactor_jobs/functions/bundle.py packs it: PAX format,
// regular files and folders only) under a folder, refusing any member that could escape it.
// Bun has no tar reader; the format is small.

import { gunzipSync } from "node:zlib";
import { chmodSync, mkdirSync, writeFileSync } from "node:fs";
import { join, posix } from "node:path";

const BLOCK = 512;
const MAX_UNPACKED = 256 * 1024 * 1024;

export class BundleError extends Error {
  override name = "BundleError";
}

export function unpackBundle(archive: Uint8Array, dest: string): void {
  let tar: Buffer;
  try {
    tar = gunzipSync(archive, { maxOutputLength: MAX_UNPACKED + 1024 * 1024 });
  } catch (err) {
    throw new BundleError(`the bundle is not a tar.gz archive (${(err as Error).message})`);
  }
  mkdirSync(dest, { recursive: true });
  let offset = 0;
  let paxPath: string | null = null;
  while (offset + BLOCK <= tar.length) {
    const header = tar.subarray(offset, offset + BLOCK);
    if (header.every((b) => b === 0)) break;
    const size = octal(header.subarray(124, 136));
    const type = String.fromCharCode(header[156]!);
    const body = tar.subarray(offset + BLOCK, offset + BLOCK + size);
    offset += BLOCK + Math.ceil(size / BLOCK) * BLOCK;
    if (type === "x") {
      paxPath = paxRecords(body).path ?? null;
      continue;
    }
    if (type === "g") continue;
    const name = paxPath ?? headerName(header);
    paxPath = null;
    const target = safeTarget(dest, name);
    if (type === "5") {
      mkdirSync(target, { recursive: true });
    } else if (type === "0" || type === "\0") {
      mkdirSync(join(target, ".."), { recursive: true });
      writeFileSync(target, body);
      chmodSync(target, octal(header.subarray(100, 108)) & 0o100 ? 0o755 : 0o644);
    } else {
      throw new BundleError(`${JSON.stringify(name)}: only files and directories are allowed in a bundle`);
    }
  }
}

function headerName(header: Buffer): string {
  const name = cString(header.subarray(0, 100));
  const prefix = cString(header.subarray(345, 500));
  return prefix ? `${prefix}/${name}` : name;
}

function cString(bytes: Buffer): string {
  const end = bytes.indexOf(0);
  return bytes.subarray(0, end < 0 ? bytes.length : end).toString("utf8");
}

function octal(bytes: Buffer): number {
  const text = cString(bytes).trim();
  return text ? parseInt(text, 8) : 0;
}

function paxRecords(body: Buffer): Record<string, string> {
  const records: Record<string, string> = {};
  let at = 0;
  while (at < body.length) {
    const space = body.indexOf(0x20, at);
    if (space < 0) break;
    const length = parseInt(body.subarray(at, space).toString("ascii"), 10);
    if (!(length > 0)) break;
    const record = body.subarray(space + 1, at + length - 1).toString("utf8");
    const eq = record.indexOf("=");
    if (eq > 0) records[record.slice(0, eq)] = record.slice(eq + 1);
    at += length;
  }
  return records;
}

function safeTarget(dest: string, name: string): string {
  const normal = posix.normalize(name);
  if (!name || name.startsWith("/") || name.includes("\\") || name.includes("\0")) {
    throw new BundleError(`${JSON.stringify(name)}: absolute or unsafe path in the bundle`);
  }
  if (normal === ".." || normal.startsWith("../") || name.split("/").includes("..")) {
    throw new BundleError(`${JSON.stringify(name)}: path escapes the bundle`);
  }
  return join(dest, ...normal.split("/").filter((p) => p && p !== "."));
}
