// @reactor/client against a real `reactor serve`. tests/acceptance/test_typescript_packages.py
// starts one and runs this file with REACTOR_URL, REACTOR_TEST_EMAIL, REACTOR_TEST_PASSWORD,
// REACTOR_TEST_ORG and REACTOR_TEST_BUNDLES (the repository's tests/bundles). Without them the
// server tests are skipped; the offline ones (SSE decoding, bundle packing) always run.

import { describe, expect, test } from "bun:test";
import { mkdtempSync, mkdirSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { gunzipSync } from "node:zlib";
import { ReactorError, SseDecoder, createClient, packDir, type Client, type Run } from "../index.ts";

const URL_ = process.env.REACTOR_URL;
const EMAIL = process.env.REACTOR_TEST_EMAIL ?? "";
const PASSWORD = process.env.REACTOR_TEST_PASSWORD ?? "";
const ORG = process.env.REACTOR_TEST_ORG ?? "";
const BUNDLES = process.env.REACTOR_TEST_BUNDLES ?? "";
const online = Boolean(URL_ && EMAIL && PASSWORD && ORG && BUNDLES);

async function signedIn(): Promise<Client> {
  const reactor = createClient({ url: URL_! });
  await reactor.auth.signInWithPassword({ email: EMAIL, password: PASSWORD });
  reactor.auth.setOrg(ORG);
  return reactor;
}

async function waitRun(reactor: Client, job: string, id: string, until: string[]): Promise<Run> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    const run = await reactor.jobs.runs.get(job, id);
    if (until.includes(run.status)) return run;
    if (Date.now() > deadline) throw new Error(`run ${id} is still ${run.status}`);
    await Bun.sleep(100);
  }
}

function failingBundle(): string {
  const dir = mkdtempSync(join(tmpdir(), "fail-fast-"));
  mkdirSync(join(dir, "code"));
  writeFileSync(join(dir, "function.json"), JSON.stringify({ name: "fail-fast", runtime: "python" }));
  writeFileSync(
    join(dir, "code", "index.py"),
    "from reactor_jobs.functions import NonRetryableError\n\n\n" +
      "async def fetch(request, env, ctx):\n    raise NonRetryableError('no such order')\n",
  );
  return dir;
}

describe("offline", () => {
  test("SSE decoding: events, ids, comments, CRLF split across chunks", () => {
    const decoder = new SseDecoder();
    expect(decoder.feed(": heartbeat\r")).toEqual([]);
    expect(decoder.feed("\nevent: run\r\ndata: {\"a\":1}\r\nid: 1-2-3\r")).toEqual([]);
    expect(decoder.feed("\n\r\n")).toEqual([{ event: "run", data: '{"a":1}', id: "1-2-3" }]);
    expect(decoder.feed("data: x\ndata: y\n\n")).toEqual([{ event: "message", data: "x\ny", id: "1-2-3" }]);
  });

  test("packDir: sorted members, zeroed times, executable bits, skips caches", () => {
    const dir = mkdtempSync(join(tmpdir(), "bundle-"));
    mkdirSync(join(dir, "code", "__pycache__"), { recursive: true });
    writeFileSync(join(dir, "function.json"), "{}");
    writeFileSync(join(dir, "code", "index.ts"), "export default {}");
    writeFileSync(join(dir, "code", "x.pyc"), "");
    writeFileSync(join(dir, "code", "__pycache__", "y.pyc"), "");
    writeFileSync(join(dir, "run.sh"), "#!/bin/sh\n", { mode: 0o755 });
    const tar = gunzipSync(packDir(dir));
    const names: string[] = [];
    for (let at = 0; at < tar.length && tar[at] !== 0; ) {
      names.push(tar.subarray(at, at + 100).toString("latin1").replace(/\0.*$/s, ""));
      const mode = tar.subarray(at + 100, at + 107).toString("ascii");
      expect(mode).toBe(names.at(-1) === "run.sh" ? "0000755" : "0000644");
      const size = parseInt(tar.subarray(at + 124, at + 135).toString("ascii"), 8);
      at += 512 + Math.ceil(size / 512) * 512;
    }
    expect(names).toEqual(["code/index.ts", "function.json", "run.sh"]);
    expect(Buffer.from(packDir(dir)).equals(Buffer.from(packDir(dir)))).toBe(true);
    expect(() => packDir(join(dir, "code"))).toThrow("no function.json");
  });
});

describe.skipIf(!online)("against reactor serve", () => {
  test("the spec's quickstart: functions, jobs, triggers, trigger, runs, events, logs", async () => {
    const reactor = await signedIn();
    expect((await reactor.auth.user()).email).toBe(EMAIL);

    await reactor.functions.create("process-order", { runtime: "python" });
    const version = await reactor.functions.deploy("process-order", join(BUNDLES, "process-order"));
    expect(version.version).toBe(1);
    expect(version.live).toBe(false);
    expect((await reactor.functions.promote("process-order")).live_version).toBe(1);
    expect((await reactor.functions.versions("process-order")).map((v) => v.live)).toEqual([true]);

    await reactor.jobs.create({ name: "process-order", functionName: "process-order" });
    const cron = await reactor.jobs.triggers.create("process-order", { kind: "cron", schedule: "0 * * * *" });
    expect(cron.kind).toBe("cron");
    expect(cron.catch_up).toBe("latest");
    const next = await reactor.jobs.triggers.next("process-order", { count: 2 });
    expect(next.triggers[0]!.fires).toHaveLength(2);
    expect((await reactor.jobs.triggers.list("process-order")).map((t) => t.id)).toContain(cron.id);

    const run = await reactor.jobs.trigger("process-order", { payload: { orderId: "ord_123" }, idempotencyKey: "k-1" });
    expect(run.id).toStartWith("run_");
    expect(run.status).toBe("queued");
    const again = await reactor.jobs.trigger("process-order", { payload: { orderId: "ord_123" }, idempotencyKey: "k-1" });
    expect(again.id).toBe(run.id);

    const done = await waitRun(reactor, "process-order", run.id, ["completed", "failed"]);
    expect(done.status).toBe("completed");
    expect(done.output).toEqual({ success: true, orderId: "ord_123" });
    const runs = await reactor.jobs.runs.list("process-order", { status: "completed" });
    expect(runs.map((r) => r.id)).toEqual([run.id]);
    expect(runs.nextCursor).toBeNull();
    const events = await reactor.events.list({ topic: "order.processed" });
    expect(events.map((e) => [e.run_id, e.payload])).toEqual([[run.id, { orderId: "ord_123" }]]);
    expect((await reactor.jobs.runs.journal("process-order", run.id))[0]!.type).toBe("Triggered");

    // The log stream from the start of the job's history, then resumed after its first event.
    const seen: string[] = [];
    let firstId: string | null = null;
    for await (const event of reactor.jobs.logs("process-order", { lastEventId: "0-0-0" })) {
      firstId ??= event.id;
      if (event.kind === "run") seen.push(event.type);
      if (event.kind === "run" && event.type === "Completed") break;
    }
    expect(seen[0]).toBe("Triggered");
    expect(seen.at(-1)).toBe("Completed");
    for await (const event of reactor.jobs.logs("process-order", { lastEventId: firstId!, runId: run.id })) {
      expect(event.kind === "run" && event.type).not.toBe("Triggered");
      break;
    }

    await reactor.jobs.triggers.delete("process-order", cron.id);
    expect((await reactor.jobs.get("process-order")).function_name).toBe("process-order");
    expect((await reactor.jobs.list()).map((j) => j.name)).toContain("process-order");
  });

  test("the DLQ, retry, cancel and typed errors", async () => {
    const reactor = await signedIn();
    await reactor.functions.create("fail-fast");
    await reactor.functions.deploy("fail-fast", failingBundle());
    await reactor.functions.promote("fail-fast");
    await reactor.jobs.create({ name: "fail-fast", functionName: "fail-fast", maxAttempts: 2, initialDelayMs: 10 });
    const run = await reactor.jobs.trigger("fail-fast", { payload: {} });
    const failed = await waitRun(reactor, "fail-fast", run.id, ["failed"]);
    expect(failed.attempt).toBe(1); // non-retryable: no second attempt
    const dlq = await reactor.jobs.dlq.list("fail-fast");
    expect(dlq.map((e) => e.run_id)).toEqual([run.id]);
    const retried = await reactor.jobs.dlq.retry("fail-fast", dlq[0]!.id);
    expect(retried.id).toBe(run.id);
    await waitRun(reactor, "fail-fast", run.id, ["failed"]);
    const again = await reactor.jobs.runs.retry("fail-fast", run.id);
    expect(["queued", "running", "failed"]).toContain(again.status);
    await waitRun(reactor, "fail-fast", run.id, ["failed"]);

    const err = await reactor.jobs.runs.cancel("fail-fast", run.id).catch((e) => e);
    expect(err).toBeInstanceOf(ReactorError);
    expect([err.status, err.code]).toEqual([409, "invalid_state"]);
    const missing = await reactor.jobs.get("no-such-job").catch((e) => e);
    expect([missing.status, missing.code, missing.message]).toEqual([404, "not_found", "job no-such-job not found"]);
    expect(missing.requestId).toBeTruthy();
    const invalid = await reactor.jobs.create({ name: "x", functionName: "fail-fast", maxAttempts: 0 }).catch((e) => e);
    expect([invalid.status, invalid.code]).toEqual([422, "invalid_field"]);
    await reactor.jobs.delete("fail-fast");
    expect((await reactor.jobs.get("fail-fast").catch((e) => e)).status).toBe(404);

    const outsider = createClient({ url: URL_! });
    const unauthorized = await outsider.jobs.list().catch((e) => e);
    expect([unauthorized.status, unauthorized.code]).toEqual([401, "unauthorized"]);
    const down = await createClient({ url: "http://127.0.0.1:1" }).jobs.list().catch((e) => e);
    expect([down.status, down.code]).toEqual([0, "connection_failed"]);
  });

  test("an expired access token is refreshed once, also for concurrent requests", async () => {
    const reactor = await signedIn();
    const first = reactor.auth.session!;
    reactor.auth.setSession({ ...first, access_token: "expired.or.bad" });
    const lists = await Promise.all([reactor.jobs.list(), reactor.jobs.list(), reactor.functions.list()]);
    expect(lists).toHaveLength(3);
    const renewed = reactor.auth.session!;
    expect(renewed.access_token).not.toBe("expired.or.bad");
    expect(renewed.refresh_token).not.toBe(first.refresh_token);
    await reactor.auth.signOut();
    expect(reactor.auth.session).toBeNull();
    const revoked = createClient({ url: URL_! });
    revoked.auth.setSession(renewed);
    await expect(revoked.auth.refresh()).rejects.toMatchObject({ status: 401 });
  });
});
