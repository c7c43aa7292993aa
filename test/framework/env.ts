import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The repository root and the built CLI that integration tests run as real processes. */
export const repoRoot = fileURLToPath(new URL('../../', import.meta.url));
export const courierBin = join(repoRoot, 'dist', 'cli', 'main.js');

/** Something a test started that must be gone when the test ends. */
export interface Closable {
  close(): Promise<void>;
}

/**
 * One test's world: a private COURIER_HOME (so its sidecars share a name-resolution database with
 * each other and nobody else) and everything started in it, closed in reverse order by `close()`.
 */
export class TestEnv {
  readonly home: string;
  readonly #closables: Closable[] = [];

  constructor() {
    this.home = mkdtempSync(join(tmpdir(), 'courier-test-'));
  }

  track<T extends Closable>(item: T): T {
    this.#closables.push(item);
    return item;
  }

  async close(): Promise<void> {
    const errors: unknown[] = [];
    for (const item of this.#closables.splice(0).reverse()) {
      try {
        await item.close();
      } catch (err) {
        errors.push(err);
      }
    }
    rmSync(this.home, { recursive: true, force: true });
    if (errors.length > 0) throw errors[0];
  }
}
