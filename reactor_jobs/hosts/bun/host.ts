// The bun function host (docs/host-protocol.md). Started by a worker with
// REACTOR_HOST_SOCKET and REACTOR_HOST_TOKEN: removes both from its environment, connects,
// says hello and serves loads and invokes until the worker closes the stream.
//
//   bun --no-install reactor_jobs/hosts/bun/host.ts
//
// `--listen HOST:PORT` serves workers over TCP instead (the remote host service); each
// connection must open with a hello whose token is REACTOR_HOST_TOKEN.

import { mkdirSync, rmSync, symlinkSync } from "node:fs";
import { createConnection, createServer, type Socket } from "node:net";
import { join } from "node:path";
import { format } from "node:util";
import { current } from "./attempt.ts";
import { FrameDecoder, encodeFrame, type Message } from "./frames.ts";
import { Session, type Connection } from "./session.ts";

const HOST_DIR = import.meta.dir;
const original = { ...console };

function main(): void {
  const token = process.env.REACTOR_HOST_TOKEN ?? "";
  const socketPath = process.env.REACTOR_HOST_SOCKET;
  for (const name of Object.keys(process.env)) {
    if (name.startsWith("REACTOR_HOST_")) delete process.env[name];
  }
  const bundles = join(process.cwd(), "bundles");
  linkSdk(bundles);
  captureConsole();
  process.on("unhandledRejection", (reason) => original.error("unhandled rejection:", reason));
  process.on("uncaughtException", (err) => original.error("uncaught exception:", err));
  const listen = process.argv.indexOf("--listen");
  if (listen >= 0) {
    listenTcp(process.argv[listen + 1] ?? "127.0.0.1:8004", token, bundles);
  } else if (socketPath) {
    connectUnix(socketPath, token, bundles);
  } else {
    original.error("REACTOR_HOST_SOCKET is not set: this program is started by a Reactor worker");
    process.exit(2);
  }
}

/** Bundles import `@reactor/jobs-sdk`: resolve it to this host's SDK, from every bundle
 * unpacked under `dir`, without the user installing anything. `dir` is made here, after
 * start: bun's resolver caches the folders it has read, so a node_modules created in a
 * folder read at startup (the working directory) would not be seen. */
function linkSdk(dir: string): void {
  const scope = join(dir, "node_modules", "@reactor");
  mkdirSync(scope, { recursive: true });
  const link = join(scope, "jobs-sdk");
  rmSync(link, { recursive: true, force: true });
  symlinkSync(join(HOST_DIR, "sdk"), link, "dir");
}

/** console.* inside an attempt becomes log lines of that attempt; elsewhere, stderr. */
function captureConsole(): void {
  const levels = { debug: "debug", log: "info", info: "info", warn: "warning", error: "error" };
  for (const [method, level] of Object.entries(levels)) {
    (console as any)[method] = (...args: unknown[]) => {
      const attempt = current.getStore()?.attempt;
      if (attempt !== undefined && !attempt.over) {
        attempt.log(level as any, format(...args), null);
      } else {
        original.error(...args);
      }
    };
  }
}

/** Serve one stream: frames in, session messages out; the process ends with it. */
function serve(
  socket: Socket,
  bundles: string,
  onHello: (session: Session) => void,
  expect?: string,
): void {
  const decoder = new FrameDecoder();
  const conn: Connection = {
    send: (message: Message) => {
      if (!socket.destroyed) socket.write(encodeFrame(message));
    },
    close: () => socket.destroy(),
  };
  const session = new Session(conn, bundles, HOST_DIR);
  let greeted = expect === undefined;
  socket.on("data", (chunk: Buffer) => {
    let messages: Message[];
    try {
      messages = decoder.feed(chunk);
    } catch (err) {
      original.error(`closing the connection: ${(err as Error).message}`);
      socket.destroy();
      return;
    }
    for (const message of messages) {
      if (!greeted) {
        greeted = message.t === "hello" && message.token === expect;
        if (!greeted) return void socket.destroy();
        conn.send({ t: "welcome", protocol: 1 });
        continue;
      }
      session.receive(message).catch((err) => {
        original.error(`closing the connection: ${(err as Error).message}`);
        socket.destroy();
      });
    }
  });
  onHello(session);
}

export function connectUnix(path: string, token: string, bundles: string): void {
  const socket = createConnection({ path });
  socket.on("connect", () => serve(socket, bundles, (session) => session.hello(token)));
  socket.on("close", () => process.exit(0));
  socket.on("error", (err) => {
    original.error(`cannot talk to the worker at ${path}: ${err.message}`);
    process.exit(1);
  });
}

export function listenTcp(address: string, token: string, bundles: string): void {
  const cut = address.lastIndexOf(":");
  const host = address.slice(0, cut) || "127.0.0.1";
  const port = Number(address.slice(cut + 1));
  const server = createServer((socket) => serve(socket, bundles, () => {}, token));
  server.listen(port, host, () => {
    const bound = server.address();
    const at = typeof bound === "object" && bound !== null ? bound.port : port;
    original.error(`function host listening on ${host}:${at}`);
  });
}

if (import.meta.main) main();
