import { describe, expect, test } from "bun:test";
import { DataRequestError, JobContext, LocalChannel, type Ack, type Proposal, type Recorded } from "../index.ts";

const RUN = { run_id: "run_1", attempt: 1, job: "j", org: "acme", trigger: { kind: "manual" }, payload: null };

class DataChannel extends LocalChannel {
  answers: Ack[] = [];
  override async propose(proposal: Proposal): Promise<Ack> {
    this.proposals.push(proposal);
    return this.answers.shift() ?? { data: [], count: 0 };
  }
}

function context(recorded: Recorded[] = []) {
  const channel = new DataChannel();
  return { ctx: new JobContext({ run: RUN, recorded, channel }), channel };
}

describe("ctx.data", () => {
  test("a select is a data proposal in PostgREST's grammar, keyed by table", async () => {
    const { ctx, channel } = context();
    channel.answers.push({ data: [{ id: 1 }], count: 1 });
    const result = await ctx.data.from("orders").select("id,total", { count: "exact" }).eq("status", "paid")
      .in("id", [1, "a,b"]).is("note", null).order("id", { ascending: false }).limit(10);
    expect(result).toEqual({ data: [{ id: 1 }], count: 1, error: null });
    await ctx.data.from("orders").insert({ id: 2 }).select("id");
    expect(channel.proposals).toEqual([
      {
        t: "data", pos: 0, name: "data:orders",
        request: {
          method: "GET", table: "orders", prefer: ["count=exact"],
          query: [["select", "id,total"], ["status", "eq.paid"], ["id", 'in.(1,"a,b")'], ["note", "is.null"],
                  ["order", "id.desc"], ["limit", "10"]],
        },
      },
      {
        t: "data", pos: 1, name: "data:orders#2",
        request: { method: "POST", table: "orders", body: { id: 2 }, prefer: ["return=representation"],
                   query: [["select", "id"]] },
      },
    ]);
  });

  test("a recorded call is answered without a proposal; errors throw", async () => {
    const { ctx, channel } = context([{ kind: "data", name: "data:orders", data: [{ id: 7 }], count: 1 }]);
    expect(await ctx.data.from("orders").select("id")).toEqual({ data: [{ id: 7 }], count: 1, error: null });
    expect(channel.proposals).toEqual([]);
    channel.answers.push({ error: { code: "not_found", message: "table 'x'" } });
    const failed = ctx.data.rpc("x", { a: 1 }).then(() => null);
    await expect(failed).rejects.toBeInstanceOf(DataRequestError);
  });

  test("inside a step a call is plain: no position", async () => {
    const { ctx, channel } = context();
    await ctx.step("s", async () => (await ctx.data.from("t").update({ a: 1 }).eq("id", 1)).data);
    expect(channel.proposals[0]).toEqual({
      t: "data", in_step: true, name: "data:t",
      request: { method: "PATCH", table: "t", body: { a: 1 }, prefer: ["return=minimal"], query: [["id", "eq.1"]] },
    });
    expect(channel.proposals[1]).toMatchObject({ t: "step", pos: 0, name: "s" });
  });
});
