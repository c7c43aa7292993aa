// The container image, built offline (scripts/image/build-offline.sh: buildah from `scratch`, no
// registry, no Docker engine) and run with podman the way a cluster runs it: two Sentries (one taking
// its CA from a read-only, group-readable mount as the generated manifests give it), two sidecars with
// mTLS and one in Kubernetes mode, each in its own container from the one image, with a read-only root
// file system, as uid 1000, sharing only a volume (the CA, the trust anchors and the name-resolution
// database). The containers use the host's network namespace and listen on 127.0.0.1 only; the apps
// are this test's.
//
// Storage: overlay (COURIER_TEST_STORAGE_DRIVER=vfs for a file system without it). podman runs here
// with runc and the cgroupfs manager (this machine's cgroups are in hybrid mode, which crun refuses)
// and with rlimits no higher than the test's own (the sandbox forbids raising them).
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { chmodSync, copyFileSync, existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseAllDocuments } from 'yaml';
import { validateObject } from '../../src/kubernetes/manifests/testing/schema.js';
import { accepts } from '../framework/child.js';
import { waitForHealthz } from '../framework/cli-process.js';
import { TestEnv, repoRoot } from '../framework/env.js';
import { freePort, freePorts } from '../framework/ports.js';
import { startApp } from '../framework/test-app.js';

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

function run(cmd: string, args: readonly string[], timeoutMs = 120_000): Promise<Run> {
  return new Promise((resolve) => {
    execFile(cmd, args, { cwd: repoRoot, timeout: timeoutMs, maxBuffer: 64 * 1024 * 1024 }, (err, stdout, stderr) => {
      const code = err === null ? 0 : typeof err.code === 'number' ? err.code : 1;
      resolve({ code, stdout, stderr: stderr + (err !== null && typeof err.code !== 'number' ? err.message : '') });
    });
  });
}

/** This process's soft and hard limit on open files: a container may not get more here. */
function openFilesLimit(): string {
  const line = readFileSync('/proc/self/limits', 'utf8')
    .split('\n')
    .find((l) => l.startsWith('Max open files'));
  const [soft, hard] = (line ?? '').split(/\s+/).slice(3, 5);
  return `${soft ?? '1024'}:${hard ?? '1024'}`;
}

function testEnv(t: TestContext): TestEnv {
  const env = new TestEnv();
  t.after(() => env.close());
  return env;
}

test('the image built offline with buildah from scratch runs Sentries and mTLS sidecars under podman, as the manifests and the injector run them', { timeout: 600_000 }, async (t) => {
  for (const tool of ['buildah', 'podman', 'runc']) {
    assert.equal((await run('sh', ['-c', `command -v ${tool}`])).code, 0, `${tool} is not installed (Debian packages buildah, podman and runc; .ci/run installs them)`);
  }
  assert.ok(existsSync(join(repoRoot, 'dist', 'cli', 'main.js')), 'dist/ is built (npm run build)');
  const env = testEnv(t);
  const store = join(env.home, 'storage');
  const runroot = join(env.home, 'run');
  const data = join(env.home, 'data');
  mkdirSync(data);
  chmodSync(data, 0o777); // written by the containers' uid 1000
  const tag = `localhost/courier-test:${process.pid}`;
  const driver = process.env.COURIER_TEST_STORAGE_DRIVER ?? 'overlay';
  const archive = join(env.home, 'courier.oci.tar');
  const storage = ['--root', store, '--runroot', runroot, '--storage-driver', driver];
  const podman = (args: readonly string[], timeoutMs?: number): Promise<Run> =>
    run('podman', [...storage, '--runtime', 'runc', '--cgroup-manager', 'cgroupfs', ...args], timeoutMs);
  const names: string[] = [];
  // Closed before the test's home (and the storage in it) is removed.
  env.track({
    close: async () => {
      if (names.length > 0) await podman(['rm', '--force', '--time', '5', ...names]);
      await podman(['rmi', '--force', tag]);
    },
  });

  // The build: the runtime running this test (the native module in node_modules is built for it).
  const built = await run('bash', ['scripts/image/build-offline.sh', '--no-build', '--node', process.execPath, '--root', store, '--runroot', runroot, '--storage-driver', driver, '--tag', tag, '--archive', archive], 300_000);
  assert.equal(built.code, 0, built.stderr);
  const imageId = built.stdout.trim().split('\n').pop() ?? '';
  assert.match(imageId, /^[0-9a-f]{64}$/);

  const inspected = await podman(['image', 'inspect', tag]);
  assert.equal(inspected.code, 0, inspected.stderr);
  const [image] = JSON.parse(inspected.stdout) as [{ Id: string; Size: number; Config: { User: string; Entrypoint: string[]; WorkingDir: string; Env: string[] }; RootFS: { Layers: string[] } }];
  assert.equal(image.Id, imageId);
  assert.equal(image.Config.User, '1000:1000');
  assert.deepEqual(image.Config.Entrypoint, ['/usr/local/bin/node', '/app/dist/cli/main.js']);
  assert.equal(image.Config.WorkingDir, '/app');
  assert.ok(image.Config.Env.includes('NODE_ENV=production'), image.Config.Env.join(' '));
  assert.equal(image.RootFS.Layers.length, 1, 'one layer, on top of nothing');
  // The runtime, its libraries and the production dependencies only: the development ones (TypeScript,
  // the linters, the test tools) would more than double it.
  assert.ok(image.Size < 200 * 1024 * 1024, `image size ${image.Size} B`);

  // The OCI archive, for a machine without a registry (podman load, kind load image-archive, ctr import).
  const listing = await run('tar', ['-tf', archive]);
  assert.equal(listing.code, 0, listing.stderr);
  for (const entry of ['oci-layout', 'index.json']) assert.ok(listing.stdout.split('\n').includes(entry), `${entry} in the archive: ${listing.stdout}`);

  // Every container: the host's network (listening on 127.0.0.1 only), a read-only root, rlimits this machine allows.
  const isolated = ['--pull', 'never', '--network', 'host', '--read-only', '--ulimit', `nofile=${openFilesLimit()}`, '--ulimit', 'nproc=4096:4096'];
  const runFlags = [...isolated, '-v', `${data}:/data`, '-e', 'COURIER_HOME=/data'];
  const logs = async (name: string): Promise<string> => {
    const r = await podman(['logs', name]);
    return r.stdout + r.stderr;
  };
  /** Starts a detached container and waits for it to be ready, failing with its logs otherwise. */
  const startContainer = async (name: string, args: readonly string[], waitReady: () => Promise<void>): Promise<void> => {
    names.push(name);
    const started = await podman(['run', '-d', '--name', name, ...args]);
    assert.equal(started.code, 0, started.stderr);
    try {
      await waitReady();
    } catch (err) {
      assert.fail(`${name}: ${String(err)}\n${await logs(name)}`);
    }
  };
  const healthy = (port: number) => (): Promise<void> => waitForHealthz(port, 60_000);
  const listening = (port: number) => async (): Promise<void> => {
    for (const deadline = Date.now() + 60_000; !(await accepts(port)); await sleep(100)) {
      if (Date.now() > deadline) throw new Error(`nothing listens on ${port} after 60 s`);
    }
  };

  // Nothing but Courier in it: no shell to exec into.
  const shell = await podman(['run', '--rm', ...runFlags, '--entrypoint', '/bin/sh', tag, '-c', 'true']);
  assert.notEqual(shell.code, 0);
  assert.match(shell.stderr, /no such file/);

  const version = await podman(['run', '--rm', ...runFlags, tag, '--version']);
  assert.equal(version.code, 0, version.stderr);
  const pkg = JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8')) as { version: string };
  assert.equal(version.stdout.trim(), pkg.version);

  // The manifests the image's own CLI prints validate against the Kubernetes schemas.
  const manifests = await podman(['run', '--rm', ...runFlags, tag, 'kubernetes', 'manifests', '--namespace', 'mesh', '--image', tag]);
  assert.equal(manifests.code, 0, manifests.stderr);
  const objects = parseAllDocuments(manifests.stdout).map((d) => d.toJS() as { kind: string; metadata: { name: string } });
  assert.ok(objects.some((o) => o.kind === 'MutatingWebhookConfiguration'), manifests.stdout);
  for (const o of objects) validateObject(o);

  // The Sentry, in a container, keeping its credentials on the volume.
  const sentryPort = await freePort();
  const firstSentry = `sentry-${process.pid}`;
  await startContainer(firstSentry, [...runFlags, tag, 'sentry', '--port', String(sentryPort), '--listen-address', '127.0.0.1', '--issuer-credentials', '/data/certs'], listening(sentryPort));
  assert.ok(existsSync(join(data, 'certs', 'ca.crt')));

  // A second Sentry as the generated manifests run it: the same CA mounted read-only as a Secret volume
  // presents it (root's files, mode 0444), copied owner-only into the container's own /tmp at start.
  const secret = join(data, 'secret');
  mkdirSync(secret);
  for (const file of ['ca.crt', 'issuer.crt', 'issuer.key', 'token.key']) {
    copyFileSync(join(data, 'certs', file), join(secret, file));
    chmodSync(join(secret, file), 0o444);
  }
  const secondSentryPort = await freePort();
  const secondSentry = `sentry2-${process.pid}`;
  await startContainer(
    secondSentry,
    [...runFlags, tag, 'sentry', '--port', String(secondSentryPort), '--listen-address', '127.0.0.1', '--issuer-credentials', '/tmp/credentials', '--issuer-credentials-from', '/data/secret'],
    listening(secondSentryPort),
  );

  const tokenFor = async (appId: string): Promise<string> => {
    const r = await podman(['run', '--rm', ...runFlags, tag, 'sentry', 'token', '--app-id', appId, '--issuer-credentials', '/data/certs']);
    assert.equal(r.code, 0, r.stderr);
    return r.stdout.trim();
  };

  const app = await startApp(env, (a) => a.route('/orders/new', (req, res, body) => res.end(`created ${body.toString()} for ${req.headers['dapr-caller-app-id'] as string}`)));
  const sidecar = async (appId: string, sentryAt: number, appPort?: number): Promise<{ name: string; httpPort: number; metricsPort: number }> => {
    const [httpPort, grpcPort, metricsPort, internalPort] = (await freePorts(4)) as [number, number, number, number];
    const name = `${appId}-${process.pid}`;
    const token = await tokenFor(appId);
    // prettier-ignore
    await startContainer(name, [
      ...runFlags, '-e', `COURIER_SENTRY_TOKEN=${token}`, tag,
      'sidecar', '--app-id', appId, ...(appPort === undefined ? [] : ['--app-port', String(appPort)]),
      '--dapr-http-port', String(httpPort), '--dapr-grpc-port', String(grpcPort), '--dapr-internal-grpc-port', String(internalPort),
      '--dapr-listen-addresses', '127.0.0.1', '--metrics-port', String(metricsPort), '--metrics-listen-address', '127.0.0.1',
      '--enable-mtls', '--sentry-address', `127.0.0.1:${sentryAt}`, '--trust-anchors-file', '/data/certs/ca.crt',
    ], healthy(httpPort));
    return { name, httpPort, metricsPort };
  };
  const orders = await sidecar('orders', sentryPort, app.port);
  const checkout = await sidecar('checkout', secondSentryPort);

  const res = await fetch(`http://127.0.0.1:${checkout.httpPort}/v1.0/invoke/orders/method/orders/new`, { method: 'POST', body: 'order-1' });
  assert.equal(res.status, 200, await logs(checkout.name));
  assert.equal(await res.text(), 'created order-1 for checkout');
  assert.equal(app.seen.length, 1);
  assert.equal(app.seen[0]?.body.toString(), 'order-1');

  // Both sidecars hold certificates from the Sentries in the other containers.
  for (const [s, appId] of [[orders, 'orders'], [checkout, 'checkout']] as const) {
    const info = (await (await fetch(`http://127.0.0.1:${s.metricsPort}/courier/v1/info`)).json()) as { mtls: boolean; identity: string | null };
    assert.equal(info.mtls, true);
    assert.equal(info.identity, `spiffe://public/ns/default/${appId}`);
  }

  // As the injector runs it in a Pod: Kubernetes mode, nothing writable but /tmp, no COURIER_HOME. It
  // starts, serves its health endpoints on the public port and picks the kubernetes name resolver.
  const [podHttp, podPublic, podMetrics] = (await freePorts(3)) as [number, number, number];
  const podName = `pod-${process.pid}`;
  const podInternal = await freePort();
  // prettier-ignore
  await startContainer(podName, [
    ...isolated, tag,
    'sidecar', '--mode', 'kubernetes', '--app-id', 'payments', '--dapr-http-port', String(podHttp), '--dapr-grpc-port', '0', '--dapr-internal-grpc-port', String(podInternal),
    '--dapr-listen-addresses', '127.0.0.1', '--dapr-public-port', String(podPublic), '--dapr-public-listen-address', '127.0.0.1',
    '--metrics-port', String(podMetrics), '--metrics-listen-address', '127.0.0.1',
  ], healthy(podPublic));
  const podInfo = (await (await fetch(`http://127.0.0.1:${podMetrics}/courier/v1/info`)).json()) as { resolver: string; namespace: string };
  assert.equal(podInfo.resolver, 'kubernetes');

  // Stopped as a kubelet stops a pod: SIGTERM to the container's first process, which is node itself.
  for (const name of [podName, checkout.name, orders.name, firstSentry, secondSentry]) {
    const stopped = await podman(['stop', '--time', '30', name], 60_000);
    assert.equal(stopped.code, 0, stopped.stderr);
    const state = await podman(['inspect', '--format', '{{.State.ExitCode}}', name]);
    assert.equal(state.stdout.trim(), '0', `${name} exit code; logs:\n${await logs(name)}`);
  }
});
