// The host's side of one protocol connection, independent of the transport (a Unix socket
// the worker listens on, or a TCP connection to `reactor functions host`): hello, load,
// invoke (many attempts at once), ack/nack routing, cancel.

import { createHash } from "node:crypto";
import { existsSync, rmSync } from "node:fs";
import { join, sep } from "node:path";
import { Attempt, type Handler, type Invoke } from "./attempt.ts";
import type { Message } from "./frames.ts";
import { unpackBundle } from "./tar.ts";

export const PROTOCOL = 1;
const ENTRY_POINTS = ["code/index.ts", "code/index.js", "code/index.mjs"];
const SAFE_KEY = /^[A-Za-z0-9_-][A-Za-z0-9._-]{0,99}$/;

/** A bidirectional message stream: what a transport gives a session. */
export interface Connection {
  send(message: Message): void;
  close(): void;
}

interface Loaded {
  handler: Handler;
  root: string; // the unpacked bundle folder: traceback paths are made relative to it
}

export class Session {
  readonly #functions = new Map<string, Loaded>();
  readonly #attempts = new Map<string, Attempt>();
  readonly #loading = new Map<string, Promise<void>>();

  constructor(
    private readonly conn: Connection,
    private readonly workDir: string,
    private readonly hostDir: string,
  ) {}

  hello(token: string): void {
    this.conn.send({ t: "hello", protocol: PROTOCOL, runtime: "bun", token, pid: process.pid });
  }

  /** One message from the worker. */
  async receive(message: Message): Promise<void> {
    switch (message.t) {
      case "welcome":
        return;
      case "load": {
        const loading = this.#load(message);
        this.#loading.set(String(message.fn), loading);
        return loading;
      }
      case "invoke":
        return this.#invoke(message as unknown as Invoke & Message);
      case "ack":
      case "nack":
        this.#attempts.get(message.id)?.answer(message);
        return;
      case "cancel":
        this.#attempts.get(message.id)?.cancel();
        return;
      default:
        throw new Error(`unknown message ${JSON.stringify(message.t)}`);
    }
  }

  async #load(message: Message): Promise<void> {
    const fn = String(message.fn);
    if (this.#functions.has(fn)) {
      this.conn.send({ t: "loaded", fn });
      return;
    }
    try {
      this.#functions.set(fn, await this.#import(message));
      this.conn.send({ t: "loaded", fn });
    } catch (err) {
      const error = err instanceof Error ? err : new Error(String(err));
      this.conn.send({
        t: "load_failed",
        fn,
        error: { type: error.name || "Error", message: error.message },
      });
    }
  }

  async #import(message: Message): Promise<Loaded> {
    const archive = Buffer.from(String(message.archive ?? ""), "base64");
    const digest = createHash("sha256").update(archive).digest("hex");
    if (digest !== message.sha256) {
      throw new LoadError(`the bundle's sha256 is ${digest}, the load says ${message.sha256}`);
    }
    const fn = String(message.fn);
    const folder = SAFE_KEY.test(fn) ? fn : createHash("sha256").update(fn).digest("hex");
    const root = join(this.workDir, folder);
    rmSync(root, { recursive: true, force: true });
    unpackBundle(archive, root);
    const entry = ENTRY_POINTS.map((p) => join(root, p)).find((p) => existsSync(p));
    if (entry === undefined) throw new LoadError(`the bundle has no ${ENTRY_POINTS.join(", ")}`);
    const module = await import(entry);
    const handler = module.default;
    if (typeof handler?.fetch !== "function") {
      throw new LoadError(
        `${entry.slice(root.length + 1)} must \`export default { fetch(request, env, ctx) }\``,
      );
    }
    return { handler, root };
  }

  async #invoke(invoke: Invoke): Promise<void> {
    await this.#loading.get(invoke.fn); // an invoke sent right behind its load waits for it
    const loaded = this.#functions.get(invoke.fn);
    const attempt = new Attempt(
      invoke,
      (m) => this.conn.send(m),
      (stack) => userFrames(stack, this.hostDir, loaded?.root),
      (id) => this.#attempts.delete(id),
    );
    this.#attempts.set(invoke.id, attempt);
    if (loaded === undefined) {
      attempt.finish({
        outcome: "failed",
        error: { type: "BundleError", message: "the function is not loaded", retryable: false },
      });
      return;
    }
    await attempt.run(loaded.handler, invoke);
  }
}

export class LoadError extends Error {
  override name = "LoadError";
}

/** The stack's user frames: the host's own frames dropped, bundle paths made relative. */
export function userFrames(stack: string, hostDir: string, root: string | undefined): string {
  const lines = stack.split("\n");
  const kept = lines.filter((line, i) => i === 0 || !isHostFrame(line, hostDir));
  const text = kept.join("\n");
  return root ? text.split(root + sep).join("") : text;
}

function isHostFrame(line: string, hostDir: string): boolean {
  const trimmed = line.trim();
  if (!trimmed.startsWith("at ")) return false;
  return trimmed.includes(hostDir + sep) || /\((node|bun|native):|\(native\)$/.test(trimmed);
}
