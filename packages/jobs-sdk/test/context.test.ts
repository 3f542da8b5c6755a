import { describe, expect, test } from "bun:test";
import {
  AttemptSignal,
  JobContext,
  LocalChannel,
  NonRetryableError,
  StepOutputError,
  describeError,
  isNonRetryable,
  parseDuration,
  toJsonValue,
  type Recorded,
} from "../index.ts";

const RUN = { run_id: "run_1", attempt: 1, job: "j", org: "acme", trigger: { kind: "manual" }, payload: { a: 1 } };

function context(recorded: Recorded[] = [], state: Record<string, unknown> = {}) {
  const channel = new LocalChannel();
  return { ctx: new JobContext({ run: RUN, recorded, state, channel }), channel };
}

describe("identity", () => {
  test("the run's identity", () => {
    const { ctx } = context();
    expect([ctx.runId, ctx.attempt, ctx.job, ctx.org]).toEqual(["run_1", 1, "j", "acme"]);
    expect(ctx.trigger).toEqual({ kind: "manual" });
    expect(ctx.payload).toEqual({ a: 1 });
    expect(typeof ctx.data.from).toBe("function");
  });
});

describe("step", () => {
  test("records the output and returns its JSON round trip", async () => {
    const { ctx, channel } = context();
    const out = await ctx.step("a", async () => ({ n: 1, skip: undefined as unknown }).n);
    expect(out).toBe(1);
    expect(channel.proposals).toMatchObject([{ t: "step", pos: 0, name: "a", output: 1 }]);
  });

  test("a step that returns nothing records null", async () => {
    const { ctx, channel } = context();
    expect(await ctx.step("void", () => {})).toBeNull();
    expect(channel.proposals[0]).toMatchObject({ output: null });
  });

  test("repeated names are keyed name#n and positions count every call", async () => {
    const { ctx, channel } = context();
    for (let i = 0; i < 3; i++) await ctx.step("item", () => i);
    await ctx.emit("t", {});
    await ctx.step("item", () => 9);
    expect(channel.proposals.map((p) => [p.t, (p as any).pos, (p as any).name])).toEqual([
      ["step", 0, "item"],
      ["step", 1, "item#2"],
      ["step", 2, "item#3"],
      ["emit", 3, "t"],
      ["step", 4, "item#4"],
    ]);
  });

  test("a recorded output is returned without calling fn", async () => {
    const { ctx, channel } = context([{ kind: "step", name: "a", output: { cached: true } }]);
    const out = await ctx.step<unknown>("a", () => {
      throw new Error("must not run");
    });
    expect(out).toEqual({ cached: true });
    expect(channel.proposals).toEqual([]);
  });

  test("a step recorded as failed runs again", async () => {
    const { ctx, channel } = context([{ kind: "step", name: "a", failed: true }]);
    expect(await ctx.step("a", () => 2)).toBe(2);
    expect(channel.proposals).toMatchObject([{ t: "step", pos: 0, name: "a", output: 2 }]);
  });

  test("a different recorded decision is proposed (the worker judges it)", async () => {
    const { ctx, channel } = context([{ kind: "step", name: "charge", output: 1 }]);
    await ctx.step("refund", () => 2);
    expect(channel.proposals).toMatchObject([{ t: "step", pos: 0, name: "refund" }]);
  });

  test("a throwing step is proposed with its error and rethrown", async () => {
    const { ctx, channel } = context();
    const boom = new NonRetryableError("no");
    await expect(ctx.step("a", () => Promise.reject(boom))).rejects.toBe(boom);
    expect(channel.proposals).toMatchObject([
      { t: "step", pos: 0, name: "a", error: { type: "NonRetryableError", message: "no", retryable: false } },
    ]);
  });

  test.each([
    [() => new Date(0), "a Date at $ (store date.toISOString())"],
    [() => ({ when: new Date(0) }), "a Date at $.when (store date.toISOString())"],
    [() => 10n, "a BigInt at $ (store it as a string or a number)"],
    [() => ({ f: () => 1 }), "a function at $.f"],
    [() => ({ a: [1, undefined] }), "undefined at $.a[1] (use null)"],
    [() => ({ a: undefined }), "undefined at $.a (use null)"],
    [() => new Map(), "a Map at $ (store Object.fromEntries(map))"],
    [() => NaN, "NaN at $ is not a JSON number"],
    [
      () => {
        const a: any = { b: {} };
        a.b.a = a;
        return a;
      },
      "a cycle at $.b.a (the value refers to itself)",
    ],
  ])("refuses what JSON cannot hold (%#)", async (fn, problem) => {
    const { ctx, channel } = context();
    const err = (await ctx.step("x", fn as () => unknown).catch((e: unknown) => e)) as Error;
    expect(err).toBeInstanceOf(StepOutputError);
    expect(err.message).toBe(`the output of step 'x' cannot be stored as JSON: ${problem}`);
    expect(channel.proposals).toEqual([]);
  });

  test("refuses more than 1 MiB", () => {
    expect(() => toJsonValue("x".repeat(1024 * 1024), "the output of step 'big'")).toThrow(
      "the output of step 'big' is 1048578 bytes; the limit is 1048576",
    );
  });

  test.each(["", "x".repeat(201), 7])("refuses bad names (%#)", async (name) => {
    const { ctx } = context();
    await expect(ctx.step(name as string, () => 1)).rejects.toThrow(
      "a step name must be a non-empty string of at most 200 characters",
    );
  });
});

describe("state", () => {
  test("reads locally, writes are proposed, unchanged writes are not", async () => {
    const { ctx, channel } = context([], { cursor: { at: 1 } });
    expect(ctx.state.get("cursor")).toEqual({ at: 1 });
    await ctx.state.set("cursor", { at: 1 });
    await ctx.state.set("cursor", { at: 2 });
    await ctx.state.delete("missing");
    await ctx.state.delete("cursor");
    expect(channel.proposals).toEqual([
      { t: "state", key: "cursor", value: { at: 2 } },
      { t: "state", key: "cursor", deleted: true },
    ]);
    expect(ctx.state.has("cursor")).toBe(false);
    await expect(ctx.state.set("d", new Date())).rejects.toThrow("state 'd' cannot be stored as JSON");
  });
});

describe("emit", () => {
  test("proposes the event and returns its id; a recorded emit returns the recorded id", async () => {
    const { ctx } = context();
    expect(await ctx.emit("order.processed", { orderId: "o" })).toBe("evt_1");
    const replay = context([{ kind: "emit", name: "order.processed", event_id: "evt_old" }]);
    expect(await replay.ctx.emit("order.processed", {})).toBe("evt_old");
    expect(replay.channel.proposals).toEqual([]);
    await expect(ctx.emit("", {})).rejects.toThrow("a topic name must be a non-empty string");
  });
});

describe("sleep", () => {
  test("proposes the sleep, then suspends the attempt", async () => {
    const { ctx, channel } = context();
    const err = await ctx.sleep("cool-off", "24h").catch((e) => e);
    expect(err).toBeInstanceOf(AttemptSignal);
    expect(channel.suspended).toBe(true);
    expect(channel.proposals).toEqual([{ t: "sleep", pos: 0, name: "cool-off", ms: 86_400_000, replay: false }]);
  });

  test("a sleep recorded as done returns at once", async () => {
    const { ctx, channel } = context([{ kind: "sleep", name: "nap", done: true }]);
    await ctx.sleep("nap", "2s");
    expect(channel.proposals).toEqual([]);
  });

  test("sleepUntil sends the time in UTC", async () => {
    const { ctx, channel } = context();
    await ctx.sleepUntil("until-9", new Date("2026-12-05T10:00:00+01:00")).catch(() => {});
    expect(channel.proposals).toEqual([
      { t: "sleep", pos: 0, name: "until-9", until: "2026-12-05T09:00:00.000Z", replay: false },
    ]);
    await expect(ctx.sleepUntil("bad", "not a date")).rejects.toThrow("sleepUntil needs a Date");
  });
});

describe("audit replays and resumed sleeps", () => {
  test("a replay never runs a step: the worker's ack answers", async () => {
    const channel = new LocalChannel();
    channel.propose = async (p) => {
      channel.proposals.push(p);
      return p.t === "step" ? { output: { from: "journal" } } : { resume: true };
    };
    const recorded: Recorded[] = [{ kind: "step", name: "a", output: "ignored in a replay" }];
    const ctx = new JobContext({ run: RUN, recorded, replay: true, channel });
    const out = await ctx.step<unknown>("a", () => {
      throw new Error("must not run");
    });
    expect(out).toEqual({ from: "journal" });
    await ctx.sleep("nap", "1s"); // resume: true, so no suspension
    expect(channel.suspended).toBe(false);
    expect(channel.proposals).toEqual([
      { t: "step", pos: 0, name: "a", replay: true },
      { t: "sleep", pos: 1, name: "nap", ms: 1000, replay: true },
    ]);
  });
});

describe("NUL characters", () => {
  test("cannot be stored, nor be part of a name", async () => {
    const { ctx } = context();
    await expect(ctx.step("a", () => ({ text: "a\u0000b" }))).rejects.toThrow(
      "the output of step 'a' contains a NUL character, which cannot be stored",
    );
    await expect(ctx.step("a\u0000", () => 1)).rejects.toThrow("a step name must be");
    await expect(ctx.state.set("k\u0000", 1)).rejects.toThrow("a state key name must be");
  });
});

describe("durations", () => {
  test.each([
    ["500ms", 500],
    ["30s", 30_000],
    ["15m", 900_000],
    ["24h", 86_400_000],
    ["7d", 604_800_000],
    [" 1.5 s ", 1500],
    [2, 2000],
    [0, 0],
    ["365d", 365 * 86_400_000],
  ])("%p is %p ms", (text, ms) => {
    expect(parseDuration(text)).toBe(ms);
  });

  test("unreadable or out of range", () => {
    expect(() => parseDuration("2x")).toThrow(`cannot read '2x' as a duration: use '30s', '15m', '24h', '7d'`);
    expect(() => parseDuration("366d")).toThrow("a sleep must last between 0 and 365 days, not 366 days");
    expect(() => parseDuration(-1)).toThrow("a sleep must last between 0 and 365 days");
  });
});

describe("errors", () => {
  test("non-Errors become readable errors; NonRetryableError is recognised by brand", () => {
    expect(describeError("boom")).toEqual({ type: "Error", message: "boom", retryable: true });
    expect(describeError({ a: 1 })).toMatchObject({ message: 'a non-Error value was thrown: {"a":1}' });
    const other = Object.assign(new Error("x"), { [Symbol.for("reactor.jobs.NonRetryableError")]: true });
    expect(isNonRetryable(other)).toBe(true);
    expect(describeError(new RangeError("r"))).toMatchObject({ type: "RangeError", retryable: true });
  });
});
