import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type Browser, type BrowserContext, chromium, type ConsoleMessage, type Page } from 'playwright-core';
import { forThisFile, reading, sharedStart } from '../helpers/for-this-file.ts';

/** Debian's Chromium (installed by .ci/run); override with STREAMGRAD_CHROMIUM. */
export const CHROMIUM = process.env.STREAMGRAD_CHROMIUM ?? '/usr/bin/chromium';

export const CHROMIUM_ARGS = [
  '--headless=new', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
  '--disable-dev-shm-usage',
];

export interface HeadlessBrowser {
  readonly context: BrowserContext;
  /** Console errors and uncaught page errors, in order. */
  readonly errors: string[];
  newPage(): Promise<Page>;
  close(): Promise<void>;
}

/**
 * A real headless Chromium with a fresh profile (its own user-data-dir, removed on close),
 * collecting every console error and uncaught exception of its pages.
 */
export async function launch(options: { width?: number; height?: number } = {}): Promise<HeadlessBrowser> {
  const profile = await mkdtemp(join(tmpdir(), 'streamgrad-chromium-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    args: CHROMIUM_ARGS,
    headless: true,
    viewport: { width: options.width ?? 1440, height: options.height ?? 1000 },
    deviceScaleFactor: 1,
  });
  const errors: string[] = [];
  const watch = (page: Page) => {
    page.on('console', (message: ConsoleMessage) => {
      if (message.type() === 'error') errors.push(message.text());
    });
    page.on('pageerror', (error) => errors.push(`pageerror: ${error.message}`));
  };
  context.pages().forEach(watch);
  context.on('page', watch);
  return {
    context,
    errors,
    async newPage() {
      const existing = context.pages().find((p) => p.url() === 'about:blank');
      return existing ?? context.newPage();
    },
    async close() {
      await context.close().catch(() => undefined);
      await rm(profile, { recursive: true, force: true });
    },
  };
}

/**
 * A headless Chromium ({@link launch} with `options`) for the tests of the calling file (or
 * `describe` block): launched before them, closed after them — also when the launch
 * outlives `beforeAll`'s timeout (see {@link sharedStart}), which otherwise left a Chromium
 * and its renderers running after the suite. What it returns reads the running browser, so
 * use it in tests and hooks. Fails, rather than skips, where Chromium is missing.
 *
 * @example
 * const browser = browserForThisFile();
 * it('loads', async () => { const page = await browser.newPage(); … });
 */
export function browserForThisFile(options: { width?: number; height?: number } = {}): HeadlessBrowser {
  return reading(forThisFile(sharedStart('the Chromium of this file', async () => {
    if (!existsSync(CHROMIUM)) throw new Error(`no Chromium at ${CHROMIUM} (.ci/run installs Debian's chromium)`);
    return launch(options);
  }, (browser) => browser.close())));
}

export type { Browser, Page };
