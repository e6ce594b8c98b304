import { existsSync } from 'node:fs';
import { afterEach, describe, expect, it, vi } from 'vitest';
import {
  CHROMIUM_ARGS,
  CHROMIUM_PATH,
  browserTestsEnabled,
  launchChromium,
  useNetworkGuard,
} from '../src/index.js';
import type * as Chromium from '../src/chromium.js';

useNetworkGuard();

/** chromium.ts reads the environment when it is loaded: load a fresh copy under `env`. */
async function loadWith(env: Record<string, string | undefined>): Promise<typeof Chromium> {
  for (const [name, value] of Object.entries(env)) vi.stubEnv(name, value);
  vi.resetModules();
  return import('../src/chromium.js');
}

describe('headless Chromium helpers', () => {
  afterEach(() => {
    vi.unstubAllEnvs();
    vi.resetModules();
  });

  it('uses $CHROMIUM_PATH, else /usr/bin/chromium', async () => {
    expect((await loadWith({ CHROMIUM_PATH: '/opt/other/chromium' })).CHROMIUM_PATH).toBe('/opt/other/chromium');
    expect((await loadWith({ CHROMIUM_PATH: undefined })).CHROMIUM_PATH).toBe('/usr/bin/chromium');
  });

  it('browser tests are always enabled under CI=true, so a missing browser fails instead of skipping', async () => {
    const missing = '/nonexistent/athkit-testkit/chromium';
    expect((await loadWith({ CI: 'true', CHROMIUM_PATH: missing })).browserTestsEnabled).toBe(true);
    expect((await loadWith({ CI: undefined, CHROMIUM_PATH: missing })).browserTestsEnabled).toBe(false);
    expect((await loadWith({ CI: 'false', CHROMIUM_PATH: missing })).browserTestsEnabled).toBe(false);
    expect((await loadWith({ CI: undefined, CHROMIUM_PATH: process.execPath })).browserTestsEnabled).toBe(true);
  });

  it('outside CI, browser tests run exactly when the executable exists', () => {
    if (process.env['CI'] !== 'true') expect(browserTestsEnabled).toBe(existsSync(CHROMIUM_PATH));
    else expect(browserTestsEnabled).toBe(true);
  });

  it('launches headless, sandbox-free and quiet (no QUIC, background, update or sync traffic)', () => {
    expect(CHROMIUM_ARGS).toContain('--headless');
    expect(CHROMIUM_ARGS).toContain('--no-sandbox');
    expect(CHROMIUM_ARGS).toContain('--no-first-run');
    for (const feature of ['gpu', 'quic', 'background-networking', 'component-update', 'sync']) {
      expect(CHROMIUM_ARGS).toContain(`--disable-${feature}`);
    }
    expect(CHROMIUM_ARGS).toHaveLength(8);
    expect(Object.isFrozen(CHROMIUM_ARGS)).toBe(true);
  });

  it.runIf(browserTestsEnabled)(
    'launches the real browser, renders a page and closes',
    async () => {
      const browser = await launchChromium({ args: ['--lang=en-US'] });
      try {
        expect(browser.isConnected()).toBe(true);
        expect(browser.version()).toMatch(/^\d+\./);
        const page = await browser.newPage();
        await page.setContent('<!doctype html><title>testkit</title><p id="p">hello</p>');
        expect(await page.title()).toBe('testkit');
        expect(await page.textContent('#p')).toBe('hello');
        expect(await page.evaluate(() => 6 * 7)).toBe(42);
      } finally {
        await browser.close();
      }
      expect(browser.isConnected()).toBe(false);
    },
    60_000,
  );
});
