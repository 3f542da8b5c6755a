// Test job for ctx.data in bun job code: the payload's "mode" picks a behaviour.
import { DataRequestError, type JobContext } from "@reactor/jobs-sdk";

type Payload = { mode: string; id?: number; ok_on?: number };

export default {
  async fetch(request: Request, _env: Env, ctx: JobContext): Promise<unknown> {
    const p = (await request.json()) as Payload;
    switch (p.mode) {
      case "read_write": {
        // A keyed read, an insert that returns its row, an rpc; fails after the insert until
        // attempt ok_on, so the retry must be answered from the journal, not write again.
        const read = await ctx.data.from("orders").select("id,note").eq("id", p.id);
        const wrote = await ctx.data
          .from("orders")
          .insert({ id: p.id, note: `ts try ${ctx.attempt}` })
          .select("id,note");
        if (ctx.attempt < (p.ok_on ?? 1)) throw new Error(`fails after the write on attempt ${ctx.attempt}`);
        const total = await ctx.data.rpc("order_count");
        return { read: read.data, wrote: wrote.data, count: total.data, attempt: ctx.attempt };
      }
      case "in_step": {
        // Plain calls inside a step: nothing journaled for them.
        return await ctx.step("work", async () => {
          await ctx.data.from("orders").insert({ id: p.id, note: "ts in step" });
          return (await ctx.data.from("orders").select("id").eq("id", p.id)).data;
        });
      }
      case "bad": {
        try {
          await ctx.data.from("nosuch").select("*");
        } catch (err) {
          if (err instanceof DataRequestError) return { code: err.code, message: err.message };
          throw err;
        }
        return { code: null };
      }
      default:
        throw new Error(`unknown mode ${p.mode}`);
    }
  },
};
