/**
 * The user's side of step 4, played by headless Chromium (Debian's /usr/bin/chromium through
 * playwright-core): open the authorization URL, log in, read the consent page, approve.
 */
import { chromium } from 'playwright-core';
import { shortUrl } from './trace.js';

export const CHROMIUM_PATH = '/usr/bin/chromium';
// prettier-ignore
export const CHROMIUM_FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];

export interface BrowserUser {
  username: string;
  password: string;
}

export interface ConsentSeen {
  /** The consent page's heading, e.g. "Shopping Assistant wants to access your … account". */
  heading: string;
  /** The scopes offered (checked) on the consent page. */
  scopes: string[];
  /** The heading of the page shown after approving ("Access granted"). */
  outcome: string;
  /** The browser's page loads and form posts, in order: "GET <url> → 302". */
  navigations: string[];
}

export interface ApproveOptions {
  executablePath?: string;
  /** Per-action timeout (default 15 000 ms). */
  timeoutMs?: number;
}

/** Logs in as `user` at the authorization URL and approves every scope offered. */
export async function approveInChromium(
  authorizationUrl: string,
  user: BrowserUser,
  options: ApproveOptions = {},
): Promise<ConsentSeen> {
  const browser = await chromium.launch({
    executablePath: options.executablePath ?? CHROMIUM_PATH,
    args: CHROMIUM_FLAGS,
    timeout: 30_000,
  });
  try {
    const context = await browser.newContext();
    const page = await context.newPage();
    page.setDefaultTimeout(options.timeoutMs ?? 15_000);
    const navigations: string[] = [];
    page.on('response', (response) => {
      const request = response.request();
      if (!request.isNavigationRequest()) return;
      const form = request.method() === 'POST' ? new URLSearchParams(request.postData() ?? '') : null;
      const body = form
        ? `  ${[...form].map(([k, v]) => `${k}=${k === 'password' ? '••••••' : v.length > 24 ? `${v.slice(0, 10)}…` : v}`).join('&')}`
        : '';
      navigations.push(`${request.method()} ${shortUrl(request.url())}${body} → ${response.status()}`);
    });

    await page.goto(authorizationUrl);
    await page.fill('#username', user.username);
    await page.fill('#password', user.password);
    await Promise.all([page.waitForURL(/\/ath\/authorize\/start/), page.click('button[type=submit]')]);

    const heading = (await page.locator('h1').textContent())?.trim() ?? '';
    const scopes = await page
      .locator('input[name=scope]:checked')
      .evaluateAll((inputs) => inputs.map((i) => (i as unknown as { value: string }).value));
    await Promise.all([page.waitForURL(/\/ath\/consent/), page.click('button[value=approve]')]);
    const outcome = (await page.locator('h1').textContent())?.trim() ?? '';
    await context.close();
    return { heading, scopes, outcome, navigations };
  } finally {
    await browser.close();
  }
}
