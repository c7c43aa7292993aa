// Test hosts on one machine: network namespaces joined by veth pairs to a bridge that lives in its
// own namespace, on a private subnet that exists only inside them. Nothing is added to the machine's
// own namespace, so nothing a test sends can reach a real interface. Every namespace (and with it
// every link) and every process is removed by close(), also when a test fails.
import { spawn, spawnSync } from 'node:child_process';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ChildHandle } from './child.js';

/** Why test hosts cannot be made here (not root, no `ip`), or undefined when they can. */
export function netlabUnavailable(): string | undefined {
  if (process.platform !== 'linux') return 'network namespaces need Linux';
  if (process.getuid?.() !== 0) return 'creating network namespaces needs root (CI runs as root)';
  const ip = spawnSync('ip', ['-V']);
  if (ip.status !== 0) return 'the ip command (Debian package iproute2) is missing';
  const probe = `crprobe${process.pid % 100000}`;
  const add = spawnSync('ip', ['netns', 'add', probe]);
  spawnSync('ip', ['netns', 'del', probe]);
  if (add.status !== 0) return `ip netns add failed: ${add.stderr.toString().trim()}`;
  return undefined;
}

function ip(...args: string[]): void {
  const r = spawnSync('ip', args);
  if (r.status !== 0) throw new Error(`ip ${args.join(' ')}: ${r.stderr.toString().trim()}`);
}

/** A process running on a test host. */
export type HostProcess = ChildHandle;

/**
 * `hosts` test hosts `h1`…`hN` at 10.77.0.1…N/24 and fd77::1…N/64, each with interface `cv0` (multicast on, default
 * route through it) plugged into one bridge. `cut(i)`/`restore(i)` take a host's cable out and back.
 */
export class NetLab {
  readonly id: string;
  readonly dir: string;
  readonly hosts: number;
  readonly #processes: HostProcess[] = [];
  readonly #namespaces: string[] = [];
  readonly #etc: string[] = [];

  constructor(hosts: number, dir: string) {
    this.id = `cr${process.pid % 10000}${Math.floor(Math.random() * 90 + 10)}`;
    this.hosts = hosts;
    this.dir = dir;
  }

  ns(host: number): string {
    return `${this.id}-h${host}`;
  }

  get switchNs(): string {
    return `${this.id}-sw`;
  }

  address(host: number): string {
    return `10.77.0.${host}`;
  }

  /** Host `h`'s IPv6 address (a unique local address, usable at once: no duplicate detection). */
  address6(host: number): string {
    return `fd77::${host}`;
  }

  /** The bridge end of host `i`'s cable (in the switch namespace). */
  #port(host: number): string {
    return `${this.id}p${host}`;
  }

  create(): this {
    try {
      ip('netns', 'add', this.switchNs);
      this.#namespaces.push(this.switchNs);
      ip('-n', this.switchNs, 'link', 'add', 'br0', 'type', 'bridge');
      ip('-n', this.switchNs, 'link', 'set', 'br0', 'up');
      ip('-n', this.switchNs, 'link', 'set', 'lo', 'up');
      for (let h = 1; h <= this.hosts; h++) {
        const ns = this.ns(h);
        ip('netns', 'add', ns);
        this.#namespaces.push(ns);
        ip('-n', ns, 'link', 'set', 'lo', 'up');
        ip('-n', ns, 'link', 'add', 'cv0', 'type', 'veth', 'peer', 'name', this.#port(h), 'netns', this.switchNs);
        ip('-n', ns, 'addr', 'add', `${this.address(h)}/24`, 'dev', 'cv0');
        ip('-n', ns, '-6', 'addr', 'add', `${this.address6(h)}/64`, 'dev', 'cv0', 'nodad');
        ip('-n', ns, 'link', 'set', 'cv0', 'multicast', 'on', 'up');
        ip('-n', ns, 'route', 'add', 'default', 'dev', 'cv0');
        ip('-n', this.switchNs, 'link', 'set', this.#port(h), 'master', 'br0');
        ip('-n', this.switchNs, 'link', 'set', this.#port(h), 'up');
      }
    } catch (err) {
      this.#removeNamespaces();
      throw err;
    }
    return this;
  }

  /** Starts `command` on host `h` (inside its namespace); tracked and stopped by close(). */
  spawn(host: number, command: string, args: readonly string[], env: Record<string, string> = {}): HostProcess {
    const child = spawn('ip', ['netns', 'exec', this.ns(host), command, ...args], {
      env: { ...process.env, ...env },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    const proc = new ChildHandle(child, `${command} on h${host}`);
    this.#processes.push(proc);
    return proc;
  }

  /** Writes the resolv.conf that processes started on host `h` see (ip netns exec bind-mounts it). */
  setResolvConf(host: number, text: string): void {
    const dir = join('/etc/netns', this.ns(host));
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'resolv.conf'), text);
    this.#etc.push(dir);
  }

  /** Unplugs host `h` from the bridge (its side of the link stays up: packets just go nowhere). */
  cut(host: number): void {
    ip('-n', this.switchNs, 'link', 'set', this.#port(host), 'down');
  }

  restore(host: number): void {
    ip('-n', this.switchNs, 'link', 'set', this.#port(host), 'up');
  }

  async close(): Promise<void> {
    await Promise.all(this.#processes.map((p) => p.stop(5000)));
    this.#removeNamespaces();
    for (const dir of this.#etc) rmSync(dir, { recursive: true, force: true });
    rmSync(this.dir, { recursive: true, force: true });
  }

  #removeNamespaces(): void {
    for (const ns of this.#namespaces.splice(0).reverse()) spawnSync('ip', ['netns', 'del', ns]);
  }
}
