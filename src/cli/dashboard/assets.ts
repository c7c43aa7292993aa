// The files the dashboard serves: its page (plain HTML, CSS and ES modules in the package's
// `dashboard/` folder, not compiled) and the browser builds of the libraries it draws with, taken
// straight from node_modules. Nothing is fetched from the internet, by the CLI or by the page.
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, statSync } from '../../util/builtins.js';
import { createRequire } from 'node:module';
import { dirname, extname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** One file ready to send. */
export interface Asset {
  readonly body: Buffer;
  readonly contentType: string;
  /** A strong validator, so a reload costs a 304. */
  readonly etag: string;
}

/** The package's `dashboard/` folder: three levels up from both src/cli/dashboard/ and dist/cli/dashboard/. */
export const PAGE_DIR = fileURLToPath(new URL('../../../dashboard/', import.meta.url));

/** The libraries' prebuilt ES modules and styles, by the name the page imports them under (`/vendor/<name>`). */
const VENDOR_FILES: Readonly<Record<string, { readonly pkg: string; readonly file: string }>> = {
  'cytoscape.js': { pkg: 'cytoscape', file: 'dist/cytoscape.esm.min.mjs' },
  'cytoscape-dagre.js': { pkg: 'cytoscape-dagre', file: 'dist/cytoscape-dagre.min.mjs' },
  'uplot.js': { pkg: 'uplot', file: 'dist/uPlot.esm.js' },
  'uplot.css': { pkg: 'uplot', file: 'dist/uPlot.min.css' },
};

const CONTENT_TYPES: Readonly<Record<string, string>> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
};

/**
 * Every file the dashboard may send, read once: the page folder's files (no subfolders, only known
 * types) under `/<name>`, and the vendor files under `/vendor/<name>`. A fixed table rather than paths
 * joined from the URL, so no request can name anything else on disk.
 */
export function loadAssets(pageDir: string = PAGE_DIR): ReadonlyMap<string, Asset> {
  const assets = new Map<string, Asset>();
  if (!existsSync(join(pageDir, 'index.html'))) throw new Error(`the dashboard's page is missing: ${join(pageDir, 'index.html')}`);
  for (const name of readdirSync(pageDir)) {
    const path = join(pageDir, name);
    const contentType = CONTENT_TYPES[extname(name)];
    if (contentType === undefined || !statSync(path).isFile()) continue;
    assets.set(`/${name}`, asset(readFileSync(path), contentType));
  }
  const require = createRequire(import.meta.url);
  for (const [name, { pkg, file }] of Object.entries(VENDOR_FILES)) {
    const path = join(packageRoot(require, pkg), file);
    const contentType = CONTENT_TYPES[extname(name)] ?? 'application/octet-stream';
    assets.set(`/vendor/${name}`, asset(readFileSync(path), contentType));
  }
  return assets;
}

function asset(body: Buffer, contentType: string): Asset {
  return { body, contentType, etag: `"${createHash('sha256').update(body).digest('base64url').slice(0, 22)}"` };
}

/**
 * The folder of an installed package. Resolved from its main entry (some packages export neither
 * their `dist/` files nor `package.json`), then up to the folder whose package.json names it.
 */
function packageRoot(require: NodeJS.Require, pkg: string): string {
  let dir = dirname(require.resolve(pkg));
  for (;;) {
    const manifest = join(dir, 'package.json');
    if (existsSync(manifest) && (JSON.parse(readFileSync(manifest, 'utf8')) as { name?: unknown }).name === pkg) return dir;
    const parent = dirname(dir);
    if (parent === dir) throw new Error(`cannot find the folder of the package ${pkg}`);
    dir = parent;
  }
}
