// Child processes of a benchmark run: each one is stopped by its PID when the run ends, however it ends.
import { spawn, spawnSync } from 'node:child_process';
import { accessSync, constants, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { accepts, ChildHandle } from '../../test/framework/child.js';
import { repoRoot } from '../../test/framework/env.js';
import type { LoadResult, LoadSpec } from './loadgen.js';
import type { SidecarSpec } from '../../test/framework/sidecar-process.js';
import { MALLOC_ENV, NODE_FLAGS } from '../../src/runtime/heap-flags.js';

/**
 * A sidecar's spec as the launcher starts it (the `courier` executable's interpreter line, `courier
 * run`): with its Node flags before the spec's own and its allocator settings under the spec's variables.
 */
export function asLaunched(spec: SidecarSpec): SidecarSpec {
  return { ...spec, nodeArgs: [...NODE_FLAGS, ...(spec.nodeArgs ?? [])], env: { ...MALLOC_ENV, ...spec.env } };
}

/** Starts `node <script>` that prints its port on the first line of stdout; resolves with the port. */
export async function startPortPrinter(name: string, args: string[]): Promise<{ child: ChildHandle; port: number }> {
  const child = new ChildHandle(spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] }), name);
  try {
    const m = await child.waitFor(/^(\d+)\n/, 15_000);
    return { child, port: Number(m[1]) };
  } catch (err) {
    await child.close();
    throw err;
  }
}

/**
 * One nginx process (no master, one worker's work in one PID) proxying 127.0.0.1:listenPort to
 * 127.0.0.1:upstreamPort over a keep-alive upstream pool, as a sidecar pair of proxies would.
 */
export async function startNginx(nginx: string, dir: string, name: string, listenPort: number, upstreamPort: number): Promise<ChildHandle> {
  const root = join(dir, name);
  mkdirSync(root, { recursive: true });
  const conf = join(root, 'nginx.conf');
  writeFileSync(
    conf,
    `daemon off;
master_process off;
worker_processes 1;
pid ${join(root, 'nginx.pid')};
error_log stderr warn;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path ${join(root, 'body')};
  proxy_temp_path ${join(root, 'proxy')};
  fastcgi_temp_path ${join(root, 'fastcgi')};
  uwsgi_temp_path ${join(root, 'uwsgi')};
  scgi_temp_path ${join(root, 'scgi')};
  keepalive_timeout 65s;
  keepalive_requests 1000000;
  client_max_body_size 0;
  upstream app { server 127.0.0.1:${upstreamPort}; keepalive 64; keepalive_requests 1000000; }
  server {
    listen 127.0.0.1:${listenPort};
    location / {
      proxy_pass http://app;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_request_buffering off;
      proxy_buffering off;
    }
  }
}
`,
  );
  const child = new ChildHandle(spawn(nginx, ['-p', root, '-c', conf, '-e', 'stderr'], { stdio: ['ignore', 'pipe', 'pipe'] }), name);
  const deadline = Date.now() + 10_000;
  while (!(await accepts(listenPort))) {
    if (!child.running || Date.now() > deadline) {
      await child.close();
      throw new Error(`nginx ${name} did not start:\n${child.output}`);
    }
    await sleep(20);
  }
  return child;
}

/** The path of a program, or undefined. */
export function which(program: string, extra: readonly string[] = []): string | undefined {
  for (const dir of [...(process.env.PATH ?? '').split(':'), ...extra]) {
    if (dir === '') continue;
    try {
      accessSync(join(dir, program), constants.X_OK);
      return join(dir, program);
    } catch {
      // not in this directory
    }
  }
  return undefined;
}

/**
 * Finds the comparison tools, installing the missing ones with apt-get when running as root.
 * Returns each tool's path, or why it is missing.
 */
export function ensureTools(): Record<'wrk' | 'nginx' | 'h2load', string | { missing: string }> {
  const wanted = { wrk: 'wrk', nginx: 'nginx-light', h2load: 'nghttp2-client' } as const;
  const sbin = ['/usr/sbin', '/usr/local/sbin', '/sbin'];
  const find = (tool: keyof typeof wanted): string | undefined => which(tool, sbin);
  const absent = (Object.keys(wanted) as (keyof typeof wanted)[]).filter((tool) => find(tool) === undefined);
  let installProblem = '';
  if (absent.length > 0) {
    const root = process.getuid?.() === 0;
    const apt = root ? ['apt-get'] : which('sudo') !== undefined ? ['sudo', '-n', 'apt-get'] : undefined;
    if (apt === undefined) {
      installProblem = 'not installed, and installing needs root (apt-get)';
    } else {
      const packages = absent.map((tool) => wanted[tool]);
      console.error(`bench: installing ${packages.join(', ')} with apt-get`);
      const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
      const [cmd, ...pre] = apt as [string, ...string[]];
      const update = spawnSync(cmd, [...pre, 'update'], { stdio: 'inherit', env });
      const install = update.status === 0 ? spawnSync(cmd, [...pre, 'install', '-y', '--no-install-recommends', ...packages], { stdio: 'inherit', env }) : update;
      if (install.status !== 0) installProblem = `apt-get install ${packages.join(' ')} failed (exit ${String(install.status)})`;
    }
  }
  const out = {} as Record<'wrk' | 'nginx' | 'h2load', string | { missing: string }>;
  for (const tool of Object.keys(wanted) as (keyof typeof wanted)[]) {
    out[tool] = find(tool) ?? { missing: `${tool} (Debian package ${wanted[tool]}) is ${installProblem || 'not installed'}` };
  }
  return out;
}

/** Runs the load generator in its own process (so its CPU is not the measured processes'). */
export function runLoadProcess(spec: LoadSpec): Promise<LoadResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', join(repoRoot, 'bench', 'lib', 'loadgen.ts'), JSON.stringify(spec)], {
      stdio: ['ignore', 'pipe', 'pipe'],
      cwd: repoRoot,
    });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.once('exit', (code) => {
      if (code !== 0) reject(new Error(`the load generator exited with ${String(code)}:\n${err}`));
      else resolve(JSON.parse(out.trim().split('\n').pop() ?? '{}') as LoadResult);
    });
  });
}
