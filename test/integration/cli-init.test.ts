// `courier init` then `courier run`: mutual TLS on one machine with no extra steps.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { TestEnv } from '../framework/env.js';
import { appDirectory, CliProcess, freePort, runCli } from '../framework/cli-process.js';

function testEnv(t: TestContext): TestEnv {
  const env = new TestEnv();
  t.after(() => env.close());
  return env;
}

const callee = `
const http = require('node:http');
http.createServer((req, res) => {
  console.log('callee saw caller ' + req.headers['dapr-caller-app-id']);
  res.end('hello from callee');
}).listen(Number(process.env.APP_PORT), '127.0.0.1');
process.on('SIGTERM', () => process.exit(0));
`;

const caller = `
const http = require('node:http');
function call(attempt) {
  http.get({ host: '127.0.0.1', port: Number(process.env.DAPR_HTTP_PORT), path: '/v1.0/invoke/callee/method/hi' }, (res) => {
    let text = '';
    res.on('data', (c) => (text += c));
    res.on('end', () => {
      if (res.statusCode === 200) console.log('caller got: ' + text);
      else if (attempt < 100) setTimeout(() => call(attempt + 1), 200);
      else console.log('caller failed: ' + res.statusCode + ' ' + text);
    });
  }).on('error', () => setTimeout(() => call(attempt + 1), 200));
}
call(0);
setInterval(() => {}, 1000);
process.on('SIGTERM', () => process.exit(0));
`;

test('courier init writes a CA and an mTLS configuration; courier run then starts a Sentry and the apps talk over mTLS', async (t) => {
  const env = testEnv(t);
  const init = await runCli(env, ['init']);
  assert.equal(init.code, 0, init.stderr);
  for (const file of ['config.yaml', 'certs/ca.crt', 'certs/issuer.crt', 'certs/issuer.key', 'certs/token.key']) {
    assert.ok(existsSync(join(env.home, file)), file);
  }
  assert.equal(statSync(join(env.home, 'certs/issuer.key')).mode & 0o077, 0, 'the issuer key is private');
  assert.match(readFileSync(join(env.home, 'config.yaml'), 'utf8'), /mtls:\n\s+enabled: true/);
  const again = await runCli(env, ['init']);
  assert.match(again.stdout, /Kept the certificate authority/);

  const port = await freePort();
  const dir = appDirectory(env, {
    'callee/app.js': callee,
    'caller/app.js': caller,
    'dapr.yaml': `version: 1
common:
  daprdLogDestination: console
apps:
  - appID: callee
    appDirPath: ./callee
    appPort: ${port}
    command: ["node", "app.js"]
  - appID: caller
    appDirPath: ./caller
    command: ["node", "app.js"]
`,
  });
  const run = new CliProcess(env, ['run', '-f', dir]);
  await run.waitFor(/Local Sentry \(certificate authority\) is up on 127\.0\.0\.1:\d+ /);
  await run.waitFor(/caller got: hello from callee/, 60_000);
  await run.waitFor(/callee saw caller caller/);
  assert.match(run.stdout, /COURIER - callee ==.*workload certificate obtained.*spiffe:\/\/public\/ns\/default\/callee/);
  assert.match(run.stdout, /COURIER - caller ==.*workload certificate obtained.*spiffe:\/\/public\/ns\/default\/caller/);
  run.child.kill('SIGINT');
  assert.equal((await run.waitForExit()).code, 0, run.output);
});

test('courier run stops with the reason when the local Sentry cannot start, and starts no app', async (t) => {
  const env = testEnv(t);
  assert.equal((await runCli(env, ['init'])).code, 0);
  writeFileSync(join(env.home, 'certs/issuer.crt'), 'not a certificate\n');
  const dir = appDirectory(env, {
    'callee/app.js': callee,
    'dapr.yaml': `version: 1
apps:
  - appID: callee
    appDirPath: ./callee
    appPort: ${await freePort()}
    command: ["node", "app.js"]
`,
  });
  const run = new CliProcess(env, ['run', '-f', dir]);
  const exit = await run.waitForExit(60_000);
  assert.notEqual(exit.code, 0, run.output);
  assert.match(run.output, /the local Sentry did not start/);
  assert.doesNotMatch(run.output, /Local Sentry \(certificate authority\) is up|callee saw/);
});
