// Stand-ins for the quickstart's order logic (the spec's code calls them without showing
// them). A real bundle would call a payment provider here.

export interface Order {
  id: string;
  total: number;
}

export function validateOrder(payload: unknown): Order {
  const { orderId, total } = (payload ?? {}) as { orderId?: unknown; total?: unknown };
  if (typeof orderId !== 'string' || orderId === '') {
    throw new Error('the payload needs an orderId');
  }
  return { id: orderId, total: typeof total === 'number' ? total : 0 };
}

export function chargeCustomer(order: Order): { orderId: string; charged: number } {
  return { orderId: order.id, charged: order.total };
}
