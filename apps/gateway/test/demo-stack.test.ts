/* eslint-disable @typescript-eslint/no-explicit-any -- JSON response bodies in test helpers */
/**
 * The embedded default (createDemoStack): Example Mail (apps/demo-mail, its own oidc-provider AS and
 * mail API) behind the gateway on SQLite. A real user in headless Chromium signs in to Example Mail,
 * unticks a scope (partial consent), and the agent then reads mail through the proxy; the admin API
 * and the `ath-gateway admin` CLI see the agent and its token.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { browserTestsEnabled, launchChromium } from '@athkit/testkit';
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { main } from '../src/cli.js';
import { createDemoStack, type DemoStack } from '../src/demo.js';
import { TestAgent } from './support/stack.js';

describe.skipIf(!browserTestsEnabled)('demo stack: gateway + Example Mail', () => {
  let dir: string;
  let demo: DemoStack;
  let agent: TestAgent;
  let browser: Browser;
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'ath-demo-'));
    agent = await TestAgent.start('Inbox summariser');
    demo = await createDemoStack({ dataDir: dir, port: 0, mailPort: 0, mailApiPort: 0, agentHosts: [agent.hostPort], logger: (await import('pino')).pino({ level: 'silent' }) });
    browser = await launchChromium();
  }, 60_000);
  afterAll(async () => {
    await browser?.close();
    await demo?.close();
    await agent?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const post = async (path: string, body: unknown) => {
    const res = await fetch(demo.gatewayUrl + path, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
    return { status: res.status, body: (await res.json()) as any };
  };

  it('prints URLs and a one-line ath CLI flow', () => {
    expect(demo.banner).toContain(`${demo.gatewayUrl}/.well-known/ath.json`);
    expect(demo.banner).toMatch(/npx ath keygen && .*npx ath register --provider mail .*npx ath authorize .*npx ath call GET \/v1\/messages/);
    expect(demo.config.storage.toString()).toBe(`sqlite:${join(dir, 'gateway.db')}`);
  });

  it('full flow with Example Mail login and partial consent in Chromium, then mail through the proxy', async () => {
    const reg = await post('/ath/agents/register', {
      agent_id: agent.agentId,
      agent_attestation: await agent.att(demo.gatewayUrl),
      developer: { name: 'Dev Co', id: 'dev-co' },
      requested_providers: [{ provider_id: 'mail', scopes: ['mail:read', 'mail:send', 'mail:delete'] }],
    });
    expect(reg.status).toBe(201);
    agent.clientId = reg.body.client_id;
    agent.clientSecret = reg.body.client_secret;
    const auth = await post('/ath/authorize', {
      client_id: agent.clientId,
      agent_attestation: await agent.att(demo.gatewayUrl),
      provider_id: 'mail',
      scopes: ['mail:read', 'mail:delete'],
      state: 'state-' + 'y'.repeat(40),
    });
    expect(auth.status).toBe(200);

    const context = await browser.newContext();
    const page = await context.newPage();
    page.setDefaultTimeout(15_000);
    const csp: string[] = [];
    page.on('console', (m) => void (/content security policy/i.test(m.text()) && csp.push(m.text())));
    await page.goto(auth.body.authorization_url);
    expect(await page.locator('h1').textContent()).toContain('Inbox summariser wants to access your Example Mail account');
    await page.getByRole('button', { name: /Continue to Example Mail/ }).click();
    await expect.poll(() => page.title()).toContain('Sign in');
    await page.fill('input[name="username"]', 'alice');
    await page.fill('input[name="password"]', 'alice-password');
    await page.click('button[value="login"]');
    await page.waitForSelector('input[name="scope"][value="mail:delete"]');
    await page.uncheck('input[name="scope"][value="mail:delete"]');
    await Promise.all([page.waitForURL(`${demo.gatewayUrl}/ath/callback?**`), page.click('button[value="approve"]')]);
    expect(await page.locator('h1').textContent()).toBe('Access granted');
    expect(csp).toEqual([]);
    await context.close();

    const tok = await post('/ath/token', {
      grant_type: 'authorization_code',
      client_id: agent.clientId,
      client_secret: agent.clientSecret,
      agent_attestation: await agent.att(`${demo.gatewayUrl}/ath/token`),
      code: 'placeholder',
      ath_session_id: auth.body.ath_session_id,
    });
    expect(tok.status).toBe(200);
    expect(tok.body.scope_intersection.user_consented).toEqual(['mail:read']);
    expect(tok.body.effective_scopes).toEqual(['mail:read']);
    const headers = { authorization: `Bearer ${tok.body.access_token}`, 'x-ath-agent-id': agent.agentId };
    const list = await fetch(`${demo.gatewayUrl}/ath/proxy/mail/v1/messages`, { headers });
    expect(list.status).toBe(200);
    const me = await fetch(`${demo.gatewayUrl}/ath/proxy/mail/v1/me`, { headers });
    expect(me.status).toBe(200);
    const del = await fetch(`${demo.gatewayUrl}/ath/proxy/mail/v1/messages/1`, { method: 'DELETE', headers });
    expect(del.status).toBe(403);

    // The admin CLI sees the agent and its live token.
    const out: string[] = [];
    const io = { out: (t: string) => void out.push(t), err: (t: string) => void out.push(t), env: {} };
    expect(await main(['admin', '--url', demo.gatewayUrl, '--key', demo.adminKey, 'agents', 'list'], io)).toBe(0);
    expect(out.join('\n')).toContain(agent.agentId);
    out.length = 0;
    expect(await main(['admin', '--url', demo.gatewayUrl, '--key', demo.adminKey, 'tokens', 'list', '--live'], io)).toBe(0);
    expect(JSON.parse(out[0]!).tokens).toHaveLength(1);
    expect(out.join('\n')).not.toContain(tok.body.access_token);
  });
});
