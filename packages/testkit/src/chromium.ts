import { existsSync } from 'node:fs';
import type { Browser, LaunchOptions } from 'playwright-core';

/**
 * Headless Chromium for browser tests: the system (Debian) chromium driven by playwright-core, never a
 * downloaded browser. `$CHROMIUM_PATH` overrides the default `/usr/bin/chromium`.
 */
export const CHROMIUM_PATH: string = process.env['CHROMIUM_PATH'] || '/usr/bin/chromium';

/** Flags for a quiet, offline, sandbox-free headless run (no QUIC, no background or update traffic). */
export const CHROMIUM_ARGS: readonly string[] = Object.freeze([
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
]);

/**
 * Whether browser tests run: when the executable exists, and always under `CI=true`, so that a missing
 * browser fails in CI instead of silently skipping. Use `describe.skipIf(!browserTestsEnabled)`.
 */
export const browserTestsEnabled: boolean = process.env['CI'] === 'true' || existsSync(CHROMIUM_PATH);

/** Default launch timeout (ms). */
const LAUNCH_TIMEOUT_MS = 30_000;

/**
 * Launches headless Chromium at {@link CHROMIUM_PATH} with {@link CHROMIUM_ARGS} and a 30 s launch
 * timeout. `options` are passed through to playwright-core (`args` are appended to the defaults).
 * playwright-core is imported lazily, so importing `@athkit/testkit` never loads it.
 */
export async function launchChromium(options: LaunchOptions = {}): Promise<Browser> {
  const { chromium } = await import('playwright-core');
  return chromium.launch({
    executablePath: CHROMIUM_PATH,
    timeout: LAUNCH_TIMEOUT_MS,
    ...options,
    args: [...CHROMIUM_ARGS, ...(options.args ?? [])],
  });
}
