// An app that calls itself through its sidecar the moment it starts listening, as the Dapr SDK's
// hello-world examples do: the call must wait for the sidecar to see the app, never fail. Started with
// `courier run`, many times in a row, over HTTP and over gRPC proxying.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { TestEnv, repoRoot } from '../framework/env.js';
import { appDirectory, CliProcess, freePort } from '../framework/cli-process.js';

const RUNS = 6;

function testEnv(t: TestContext): TestEnv {
  const env = new TestEnv();
  t.after(() => env.close());
  return env;
}

/** Listens, then at once calls its own `/echo` through the sidecar's HTTP API, prints the answer and exits. */
const httpSelfCaller = `
const http = require('node:http');
const server = http.createServer((req, res) => {
  let body = '';
  req.on('data', (c) => (body += c));
  req.on('end', () => res.end('echo:' + body));
});
server.listen(Number(process.env.APP_PORT), '127.0.0.1', async () => {
  try {
    const res = await fetch('http://127.0.0.1:' + process.env.DAPR_HTTP_PORT + '/v1.0/invoke/' + process.env.APP_ID + '/method/echo', { method: 'POST', body: 'hello' });
    const text = await res.text();
    console.log('self-call ' + res.status + ' ' + text);
    process.exitCode = res.status === 200 && text === 'echo:hello' ? 0 : 1;
  } catch (err) {
    console.log('self-call failed ' + err.message);
    process.exitCode = 1;
  }
  server.close();
});
`;

/** A grpc-js server that, once bound, calls its own method through the sidecar's gRPC port (proxy mode). */
const grpcSelfCaller = (grpcJs: string): string => `
const grpc = require(${JSON.stringify(grpcJs)});
const raw = { path: '/test.Echo/Say', requestStream: false, responseStream: false,
  requestSerialize: (b) => b, requestDeserialize: (b) => b, responseSerialize: (b) => b, responseDeserialize: (b) => b };
const server = new grpc.Server();
server.addService({ Say: raw }, { Say: (call, callback) => callback(null, Buffer.concat([Buffer.from('echo:'), call.request])) });
server.bindAsync('127.0.0.1:' + process.env.APP_PORT, grpc.ServerCredentials.createInsecure(), (err) => {
  if (err) { console.log('bind failed ' + err.message); process.exit(1); }
  const client = new grpc.Client('127.0.0.1:' + process.env.DAPR_GRPC_PORT, grpc.credentials.createInsecure());
  const md = new grpc.Metadata();
  md.set('dapr-app-id', process.env.APP_ID);
  client.makeUnaryRequest(raw.path, (b) => b, (b) => b, Buffer.from('hello'), md, { deadline: Date.now() + 60000 }, (e, reply) => {
    console.log(e ? 'self-call failed ' + e.code + ' ' + e.details : 'self-call OK ' + reply.toString());
    process.exitCode = e || reply.toString() !== 'echo:hello' ? 1 : 0;
    client.close();
    server.forceShutdown();
  });
});
`;

async function runSelfCallers(t: TestContext, appId: string, protocol: 'http' | 'grpc', script: string): Promise<void> {
  const env = testEnv(t);
  const dir = appDirectory(env, { 'app.js': script });
  const failures: string[] = [];
  for (let run = 1; run <= RUNS; run++) {
    const appPort = await freePort();
    const cli = new CliProcess(env, ['run', '--app-id', appId, '--app-port', String(appPort), '--app-protocol', protocol, '--', 'node', 'app.js'], { cwd: dir });
    const exit = await cli.waitForExit(60_000);
    if (exit.code !== 0 || !/self-call (200 echo:hello|OK echo:hello)/.test(cli.stdout)) {
      failures.push(`run ${run}: ${JSON.stringify(exit)} ${cli.stdout.split('\n').filter((l) => l.includes('self-call') || l.includes('level=error')).join(' | ')}`);
    }
  }
  assert.deepEqual(failures, [], `${failures.length} of ${RUNS} runs failed`);
}

test(`an HTTP app calling itself as soon as it listens succeeds every time (${RUNS} runs of courier run)`, async (t) => {
  await runSelfCallers(t, 'selfcaller', 'http', httpSelfCaller);
});

test(`a gRPC app calling itself through gRPC proxying as soon as it listens succeeds every time (${RUNS} runs of courier run)`, async (t) => {
  await runSelfCallers(t, 'grpcselfcaller', 'grpc', grpcSelfCaller(join(repoRoot, 'node_modules', '@grpc', 'grpc-js')));
});
