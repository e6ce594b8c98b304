/**
 * The login and consent pages in real headless Chromium, with the CSP enforced: the form posts, the
 * redirect chain back to the client (which CSP form-action also governs) and partial consent.
 */
import * as oauth from 'oauth4webapi';
import { browserTestsEnabled, launchChromium } from '@athkit/testkit';
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createMailService, type MailService } from '../src/index.js';
import {
  api,
  authorizationRequest,
  CLIENT_ID,
  CLIENT_SECRET,
  discover,
  insecure,
  RedirectListener,
} from './helpers.js';

const client: oauth.Client = { client_id: CLIENT_ID };

describe.skipIf(!browserTestsEnabled)('Example Mail in headless Chromium', () => {
  let listener: RedirectListener;
  let svc: MailService;
  let as: oauth.AuthorizationServer;
  let browser: Browser;

  beforeAll(async () => {
    listener = await new RedirectListener().start();
    svc = await createMailService({
      gatewayRedirectUris: [listener.callback],
      clientId: CLIENT_ID,
      clientSecret: CLIENT_SECRET,
    });
    as = await discover(svc);
    browser = await launchChromium();
  }, 60_000);

  afterAll(async () => {
    await browser?.close();
    await svc?.close();
    await listener?.close();
  });

  it('log in, untick mail:delete, allow → code at the redirect URI → token with the ticked scopes', async () => {
    const context = await browser.newContext();
    const page = await context.newPage();
    page.setDefaultTimeout(10_000);
    const cspViolations: string[] = [];
    page.on('console', (msg) => {
      if (/content security policy/i.test(msg.text())) cspViolations.push(msg.text());
    });
    try {
      const req = await authorizationRequest(as, svc, listener.callback, 'mail:read mail:send mail:delete');
      await page.goto(req.url.href);
      await expect.poll(() => page.title()).toContain('Sign in');
      await page.fill('input[name="username"]', 'alice');
      await page.fill('input[name="password"]', 'alice-password');
      await page.click('button[value="login"]');
      await page.waitForSelector('input[name="scope"][value="mail:delete"]');
      expect(await page.textContent('main')).toContain('alice@example.mail');
      await page.uncheck('input[name="scope"][value="mail:delete"]');
      await page.click('button[value="approve"]');
      await page.waitForURL((url) => url.href.startsWith(listener.callback));

      const callback = new URL(page.url());
      expect(listener.received.map((u) => u.href)).toContain(callback.href);
      const params = oauth.validateAuthResponse(as, client, callback, req.state);
      const tokens = await oauth.processAuthorizationCodeResponse(
        as,
        client,
        await oauth.authorizationCodeGrantRequest(
          as,
          client,
          oauth.ClientSecretBasic(CLIENT_SECRET),
          params,
          req.redirectUri,
          req.verifier,
          insecure,
        ),
      );
      expect(tokens.scope?.split(' ').sort()).toEqual(['mail:read', 'mail:send']);
      expect((await api(svc, 'DELETE', '/v1/messages/x', tokens.access_token)).status).toBe(403);
      expect(cspViolations).toEqual([]);
    } finally {
      await context.close();
    }
  });

  it('deny in the browser → error=access_denied', async () => {
    const context = await browser.newContext();
    const page = await context.newPage();
    page.setDefaultTimeout(10_000);
    try {
      const req = await authorizationRequest(as, svc, listener.callback, 'mail:read');
      await page.goto(req.url.href);
      await page.fill('input[name="username"]', 'bob');
      await page.fill('input[name="password"]', 'bob-password');
      await page.press('input[name="password"]', 'Enter'); // Enter submits with the first button: Sign in
      await page.waitForSelector('button[value="deny"]');
      await page.click('button[value="deny"]');
      await page.waitForURL((url) => url.href.startsWith(listener.callback));
      const callback = new URL(page.url());
      expect(callback.searchParams.get('error')).toBe('access_denied');
      expect(callback.searchParams.get('state')).toBe(req.state);
    } finally {
      await context.close();
    }
  });
});
