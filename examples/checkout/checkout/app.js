// checkout: sends 20 orders to order-processor, addressed with the dapr-app-id header, as Dapr's
// service-invocation quickstart does. The request goes to checkout's own sidecar.
const sidecar = `${process.env.DAPR_HOST ?? 'http://localhost'}:${process.env.DAPR_HTTP_PORT ?? 3500}`;
const count = Number(process.env.ORDER_COUNT ?? 20);

for (let i = 1; i <= count; i++) {
  const order = { orderId: i };
  const res = await fetch(`${sidecar}/orders`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', 'dapr-app-id': 'order-processor' },
    body: JSON.stringify(order),
  });
  await res.text();
  if (!res.ok) {
    console.error(`Order ${i} failed: HTTP ${res.status}`);
    process.exit(1);
  }
  console.log('Order passed:', JSON.stringify(order));
  await new Promise((resolve) => setTimeout(resolve, Number(process.env.ORDER_INTERVAL_MS ?? 1000)));
}
