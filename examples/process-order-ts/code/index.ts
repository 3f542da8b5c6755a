import { JobContext } from '@reactor/jobs-sdk';
import { chargeCustomer, validateOrder } from './orders';

export default {
  async fetch(request: Request, _env: Env, ctx: JobContext): Promise<Response> {
    const payload = await request.json();

    const order = await ctx.step('validate', async () => validateOrder(payload));
    await ctx.step('charge', async () => chargeCustomer(order));
    await ctx.emit('order.processed', { orderId: order.id });

    return Response.json({ success: true, orderId: order.id });
  },
};
