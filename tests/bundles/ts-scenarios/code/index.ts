// Test job for the bun host: the payload's "mode" picks a behaviour.
import { type JobContext, NonRetryableError } from "@reactor/jobs-sdk";
import { double } from "./lib";

type Payload = { mode: string; n?: number; seconds?: number; topic?: string; ok_on?: number };

export default {
  async fetch(request: Request, env: Env, ctx: JobContext): Promise<Response | unknown> {
    const p = (await request.json()) as Payload;
    switch (p.mode) {
      case "steps": {
        const a = await ctx.step("a", async () => {
          console.log("computing a for", ctx.runId);
          return { doubled: double(p.n ?? 1) };
        });
        await ctx.state.set("a", a);
        const eventId = await ctx.emit(p.topic ?? "ts.done", { a, mode: "noop" });
        ctx.log.info("emitted", { eventId });
        return Response.json({ a, eventId, greeting: env.GREETING ?? null, attempt: ctx.attempt });
      }
      case "flaky": {
        const a = await ctx.step("a", () => {
          console.log("running a");
          return { got: 1 };
        });
        const b = await ctx.step("b", () => {
          console.log("running b");
          if (ctx.attempt < (p.ok_on ?? 2)) throw new Error(`b fails on attempt ${ctx.attempt}`);
          return a.got + 1;
        });
        return { b, attempt: ctx.attempt };
      }
      case "state": {
        if (ctx.attempt === 1) {
          await ctx.state.set("seen", { first: ctx.attempt });
          throw new Error("first attempt fails after writing state");
        }
        return { seen: ctx.state.get("seen"), attempt: ctx.attempt };
      }
      case "sleep": {
        const before = await ctx.step("before", () => "x");
        await ctx.sleep("nap", p.seconds ?? 2);
        const after = await ctx.step("after", () => "y");
        return before + after;
      }
      case "loop": {
        const seen: number[] = [];
        for (let i = 0; i < 3; i++) seen.push(await ctx.step("item", () => i));
        return seen;
      }
      case "step-fails":
        await ctx.step("charge", () => {
          throw new TypeError("card declined");
        });
        return "unreachable";
      case "bad-output":
        return await ctx.step("when", () => new Date(0));
      case "nonretryable":
        throw new NonRetryableError("the order is gone");
      case "throw-string":
        throw "boom";
      case "throw-object":
        throw { a: 1 };
      case "busy":
        await ctx.step("started", () => true);
        console.log("spinning");
        while (true) {}
      case "wait-forever":
        await ctx.step("started", () => true);
        for (;;) await new Promise((resolve) => setTimeout(resolve, 10));
      case "exit":
        process.exit(3);
      default:
        throw new Error(`unknown mode ${p.mode}`);
    }
  },
};
