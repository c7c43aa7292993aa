// The examples users start with, run exactly as the README says (from a copy, on free ports):
// the service-invocation overview's hello-world (S11, S12), the quickstart's checkout pattern, and gRPC proxy mode.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse, stringify } from 'yaml';
import { repoRoot, TestEnv } from '../framework/env.js';
import { CliProcess, freePort, listJson, runCli, waitGone } from '../framework/cli-process.js';
import { send } from '../framework/http-client.js';

interface RunFile {
  apps: Array<{ appID: string; appPort?: number; env?: Record<string, string> }>;
}

/** Copies an example into the test's home and adjusts its run file (ports, environment). */
async function copyExample(env: TestEnv, name: string, adjust: (file: RunFile) => Promise<void>): Promise<string> {
  const dir = join(env.home, name);
  cpSync(join(repoRoot, 'examples', name), dir, { recursive: true });
  const path = join(dir, 'dapr.yaml');
  const file = parse(readFileSync(path, 'utf8')) as RunFile;
  await adjust(file);
  writeFileSync(path, stringify(file));
  return dir;
}

function testEnv(t: TestContext): TestEnv {
  const env = new TestEnv();
  t.after(() => env.close());
  return env;
}

test('hello-world: pythonapp sends orders to nodeapp through two sidecars; the order can be read back', async (t) => {
  const env = testEnv(t);
  const dir = await copyExample(env, 'hello-world', async (file) => {
    const node = file.apps.find((a) => a.appID === 'nodeapp');
    assert.ok(node);
    node.appPort = await freePort();
    const python = file.apps.find((a) => a.appID === 'pythonapp');
    assert.ok(python);
    python.env = { ORDER_LIMIT: '3' };
  });
  const run = new CliProcess(env, ['run', '-f', dir]);
  await run.waitFor(/== APP - nodeapp == Got a new order! Order ID: 3/, 60_000);
  await run.waitFor(/== APP - pythonapp == Sent order 3: HTTP 200/);
  // S11: the README's curl calls, through nodeapp's own sidecar.
  const listed = await listJson(env);
  const node = listed.find((e) => e.appId === 'nodeapp');
  assert.ok(node?.httpPort);
  const sample = readFileSync(join(dir, 'sample.json'), 'utf8');
  const posted = await send(node.httpPort, { method: 'POST', path: '/v1.0/invoke/nodeapp/method/neworder', headers: { 'content-type': 'application/json' }, body: sample });
  assert.equal(posted.status, 200);
  assert.equal(posted.text, '');
  const order = await send(node.httpPort, { path: '/v1.0/invoke/nodeapp/method/order' });
  assert.equal(order.status, 200);
  assert.equal(order.text, '{"orderId":"42"}');
  // And `courier invoke`, as the README shows.
  const invoked = await runCli(env, ['invoke', '--app-id', 'nodeapp', '--method', 'neworder', '--data-file', join(dir, 'sample.json')]);
  assert.equal(invoked.code, 0, invoked.stderr);
  assert.match(invoked.stdout, /App invoked successfully/);
  const pids = listed.flatMap((e) => [e.daprdPid, e.appPid].filter((p) => p > 0));
  run.child.kill('SIGINT');
  assert.equal((await run.waitForExit()).code, 0, run.output);
  assert.deepEqual(await waitGone(pids), [], 'every app and sidecar stopped');
});

test('checkout: orders pass to order-processor with the dapr-app-id header', async (t) => {
  const env = testEnv(t);
  const dir = await copyExample(env, 'checkout', async (file) => {
    const processor = file.apps.find((a) => a.appID === 'order-processor');
    assert.ok(processor);
    processor.appPort = await freePort();
    const checkout = file.apps.find((a) => a.appID === 'checkout');
    assert.ok(checkout);
    checkout.env = { ORDER_COUNT: '3', ORDER_INTERVAL_MS: '100' };
  });
  const run = new CliProcess(env, ['run', '-f', dir]);
  for (let i = 1; i <= 3; i++) {
    await run.waitFor(new RegExp(`== APP - order-processor == Order received: \\{ orderId: ${i} \\}`), 60_000);
    await run.waitFor(new RegExp(`== APP - checkout == Order passed: \\{"orderId":${i}\\}`));
  }
  run.child.kill('SIGINT');
  assert.equal((await run.waitForExit()).code, 0, run.output);
});

test('grpc: the client calls helloworld.Greeter on the greeter app through two sidecars in proxy mode', async (t) => {
  const env = testEnv(t);
  const dir = await copyExample(env, 'grpc', async (file) => {
    const greeter = file.apps.find((a) => a.appID === 'greeter');
    assert.ok(greeter);
    greeter.appPort = await freePort();
    const client = file.apps.find((a) => a.appID === 'client');
    assert.ok(client);
    client.env = { GREETING_LIMIT: '3' };
  });
  // The example uses the repository's @grpc/grpc-js and protobufjs, as it does when run from a checkout.
  symlinkSync(join(repoRoot, 'node_modules'), join(dir, 'node_modules'), 'dir');
  const run = new CliProcess(env, ['run', '-f', dir]);
  await run.waitFor(/== APP - client == Greeter said: Hello world 1/, 60_000);
  await run.waitFor(/== APP - client == Greeter streamed: Hello stream #1, Hello stream #2, Hello stream #3/);
  await run.waitFor(/== APP - greeter == SayHello from client: world 3/);
  await run.waitFor(/== APP - client == Greeter said: Hello world 3/);
  run.child.kill('SIGINT');
  assert.equal((await run.waitForExit()).code, 0, run.output);
});
