/**
 * The gateway consent path in real headless Chromium (CSP enforced, real cookies, real redirects),
 * driven by the official agent SDK (@athkit/client GatewayClient) sending only what the spec defines.
 */
import { GatewayClient } from '@athkit/client';
import { browserTestsEnabled, launchChromium } from '@athkit/testkit';
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { API_SCOPES, Stack } from './support/stack.js';

describe.skipIf(!browserTestsEnabled)('gateway consent in headless Chromium', () => {
  let s: Stack;
  let browser: Browser;
  beforeAll(async () => {
    s = await Stack.start();
    browser = await launchChromium();
  }, 60_000);
  afterAll(async () => {
    await browser?.close();
    await s?.close();
  });

  it('GatewayClient + Chromium: discover → register → authorize → interstitial → provider → callback → token → call → revoke', async () => {
    const client = await GatewayClient.discover(s.url, { agent: { agentId: s.agent.agentId, privateKey: s.agent.privateKeyForClient, kid: 'k1' } });
    expect(client.providers.map((p) => p.provider_id)).toEqual(['mail']);
    const reg = await client.register({
      developer: { name: 'Dev Co', id: 'dev-co' },
      providers: [{ provider_id: 'mail', scopes: ['openid', ...API_SCOPES] }],
      purpose: 'Summarise my inbox',
    });
    expect(reg.credentials.agentStatus).toBe('approved');
    const pending = await client.authorize({ provider: 'mail', scopes: ['mail:read'] });

    const context = await browser.newContext();
    const page = await context.newPage();
    await page.goto(pending.authorizationUrl);
    await expect(page.locator('h1').textContent()).resolves.toContain('Mail helper wants to access your Example Mail account');
    expect(await page.locator('.claimed').textContent()).toContain('claimed by the agent');
    expect(await page.locator('li.scope').first().textContent()).toContain('approved by the gateway');
    const cookies = await context.cookies(s.url);
    expect(cookies).toHaveLength(1);
    expect(cookies[0]).toMatchObject({ httpOnly: true, sameSite: 'Lax' });
    expect(s.as.authorizationRequests).toHaveLength(0); // nothing upstream before the user confirms (D10)

    await Promise.all([page.waitForURL(`${s.url}/ath/callback?**`), page.getByRole('button', { name: /Continue to Example Mail/ }).click()]);
    await expect(page.locator('h1').textContent()).resolves.toBe('Access granted');
    expect(s.as.authorizationRequests).toHaveLength(1);
    await context.close();

    const token = await client.waitForToken(pending, { timeoutMs: 5000, intervalMs: 50 });
    expect(token.scopes).toEqual(['mail:read']);
    const res = await client.call('mail', 'GET', '/v1/messages?folder=inbox');
    expect(res.status).toBe(200);
    expect(((await res.json()) as { rawPath: string }).rawPath).toBe('/api/v1/messages?folder=inbox');
    await expect(client.revoke('mail')).resolves.toBe(true);
    const after = await fetch(`${s.url}/ath/proxy/mail/v1/messages`, {
      headers: { authorization: `Bearer ${token.accessToken}`, 'x-ath-agent-id': s.agent.agentId },
    });
    expect(after.status).toBe(401);
  });

  it('cancel in Chromium: the completion page says denied and nothing went upstream', async () => {
    await s.register(s.agents[1]);
    const auth = await s.authorize(s.agents[1]!, ['mail:read']);
    const before = s.as.authorizationRequests.length;
    const context = await browser.newContext();
    const page = await context.newPage();
    await page.goto(auth.body.authorization_url);
    await Promise.all([page.waitForURL(`${s.url}/ath/authorize/continue`), page.getByRole('button', { name: 'Cancel' }).click()]);
    await expect(page.locator('h1').textContent()).resolves.toBe('Access denied');
    expect(s.as.authorizationRequests.length).toBe(before);
    await context.close();
    expect((await s.token(s.agents[1]!, auth.body.ath_session_id)).body.code).toBe('USER_DENIED');
  });
});
