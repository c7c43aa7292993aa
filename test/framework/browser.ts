import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { chromium, type Browser, type Page } from 'playwright-core';
import { repoRoot } from './env.js';

/** What the dashboard's page tells its console (`window.courierDashboard`) about the graph it draws. */
export interface GraphSnapshot {
  nodes: Array<{ id: string; label: string; health: string; position: { x: number; y: number } }>;
  edges: Array<{ src: string; dst: string; rps: number; label: string }>;
}

/** The graph the dashboard's page draws now. */
export function graphOf(page: Page): Promise<GraphSnapshot> {
  return page.evaluate<GraphSnapshot>('window.courierDashboard.graph()');
}

/**
 * Polls `check` (every 200 ms) until it is true; fails after `timeoutMs` naming `what`. For
 * conditions Playwright's own waits do not express (several elements, numbers in attributes).
 */
export async function waitUntil(what: string, check: () => Promise<boolean>, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check().catch(() => false)) return;
    if (Date.now() > deadline) throw new Error(`not seen within ${timeoutMs} ms: ${what}`);
    await sleep(200);
  }
}

/** Debian's Chromium (`.ci/run` installs it); Playwright never downloads a browser here. */
export const CHROMIUM = '/usr/bin/chromium';

/** Why a browser test cannot run here (no Chromium), for node:test's `skip`; false when it can. */
export function browserMissing(): string | false {
  return existsSync(CHROMIUM) ? false : `needs Debian's Chromium at ${CHROMIUM} (apt-get install chromium; .ci/run installs it)`;
}

/** Where tests save what a person would look at (screenshots); ignored by git. */
export const RESULTS_DIR = join(repoRoot, 'test-results');

/**
 * Headless Chromium with everything that would reach the internet on its own turned off (background
 * networking, component updates, sync, QUIC): the tests' pages talk to loopback only.
 */
export function launchChromium(): Promise<Browser> {
  return chromium.launch({
    executablePath: CHROMIUM,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
}

/** What went wrong in a page: console errors, uncaught exceptions, and requests that left loopback or failed. */
export interface PageProblems {
  readonly errors: string[];
  readonly offLoopback: string[];
}

export function watchPage(page: Page): PageProblems {
  const problems: PageProblems = { errors: [], offLoopback: [] };
  page.on('console', (msg) => {
    if (msg.type() === 'error') problems.errors.push(`console: ${msg.text()}`);
  });
  page.on('pageerror', (err) => problems.errors.push(`page: ${err.message}`));
  page.on('request', (req) => {
    const url = new URL(req.url());
    if (url.protocol !== 'data:' && !['127.0.0.1', 'localhost', '[::1]'].includes(url.hostname)) problems.offLoopback.push(req.url());
  });
  page.on('requestfailed', (req) => {
    // An EventSource closed by the page (a new tap filter, the page going) is not a failure.
    if (req.resourceType() !== 'eventsource') problems.errors.push(`request failed: ${req.url()} ${req.failure()?.errorText ?? ''}`);
  });
  return problems;
}

/** Saves a full-page screenshot under test-results/ and returns its path. */
export async function screenshot(page: Page, name: string): Promise<string> {
  mkdirSync(RESULTS_DIR, { recursive: true });
  const path = join(RESULTS_DIR, name);
  await page.screenshot({ path, fullPage: true });
  return path;
}
