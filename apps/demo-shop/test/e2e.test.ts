/**
 * End to end, all on 127.0.0.1: ATH Shop, an agent (identity document + redirect target) and real
 * headless Chromium for the user's login and consent.
 */
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { Writable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { exportPublicJwk, generateAgentKeyPair, signAttestation } from '@athkit/core';
import { validateATHError, validateTokenResponse } from '@athkit/schemas';
import { browserTestsEnabled, launchChromium } from '@athkit/testkit';
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { APP_ID, createLogger, createShop, type Shop } from '../src/index.js';

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- JSON bodies of various shapes, checked with toMatchObject
type Json = Record<string, any>;

const here = dirname(fileURLToPath(import.meta.url));
const resultsDir = join(here, '..', 'test-results');

let shop: Shop;
let browser: Browser;
let dataDir: string;
let agentServer: http.Server;
let agentOrigin: string;
let agentId: string;
let privateKey: Awaited<ReturnType<typeof generateAgentKeyPair>>['privateKey'];
const callbacks: URLSearchParams[] = [];
const logLines: string[] = [];

beforeAll(async () => {
  const keys = await generateAgentKeyPair();
  privateKey = keys.privateKey;
  const publicJwk = await exportPublicJwk(keys.publicKey, 'k1');
  agentServer = http.createServer((req, res) => {
    const url = new URL(req.url ?? '/', agentOrigin);
    if (url.pathname === '/.well-known/agent.json') {
      res.setHeader('content-type', 'application/json');
      res.end(
        JSON.stringify({
          ath_version: '0.1',
          agent_id: agentId,
          name: 'Shopping Assistant',
          developer: { name: 'Example Agents Ltd', id: 'example-agents' },
          public_key: publicJwk,
        }),
      );
    } else if (url.pathname === '/cb') {
      callbacks.push(url.searchParams);
      res.setHeader('content-type', 'text/html');
      res.end('<!doctype html><title>Agent</title><p>Connected. You can close this window.</p>');
    } else {
      res.statusCode = 404;
      res.end();
    }
  });
  await new Promise<void>((resolve) => agentServer.listen(0, '127.0.0.1', resolve));
  const agentHost = `127.0.0.1:${(agentServer.address() as AddressInfo).port}`;
  agentOrigin = `http://${agentHost}`;
  agentId = `${agentOrigin}/.well-known/agent.json`;

  dataDir = mkdtempSync(join(tmpdir(), 'ath-shop-e2e-'));
  const destination = new Writable({
    write(chunk: Buffer, _enc, cb) {
      logLines.push(chunk.toString());
      cb();
    },
  });
  shop = await createShop({ dataDir, allowInsecureAgents: [agentHost], logger: createLogger({ destination }) });
  browser = await launchChromium();
  mkdirSync(resultsDir, { recursive: true });
}, 60_000);

afterAll(async () => {
  await browser?.close();
  await shop?.close();
  await new Promise<void>((resolve) => (agentServer ? agentServer.close(() => resolve()) : resolve()));
  if (dataDir) rmSync(dataDir, { recursive: true, force: true });
});

const att = (aud: string) => signAttestation({ privateKey, kid: 'k1', agentId, audience: aud });

async function api(method: string, path: string, body?: unknown, headers: Record<string, string> = {}) {
  const res = await fetch(shop.url + path, {
    method,
    headers: { ...(body !== undefined ? { 'content-type': 'application/json' } : {}), ...headers },
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
    signal: AbortSignal.timeout(10_000),
  });
  const text = await res.text();
  return { status: res.status, headers: res.headers, body: text ? (JSON.parse(text) as Json) : null };
}

function expectAthError(res: { status: number; body: Json | null }, status: number, code: string): void {
  expect(res.status).toBe(status);
  expect(validateATHError(res.body).valid).toBe(true);
  expect(res.body?.['code']).toBe(code);
}

describe.skipIf(!browserTestsEnabled)('ATH Shop, native mode, end to end', () => {
  let reg: { client_id: string; client_secret: string };

  it('discovery and registration (seed 002 steps 1–2)', async () => {
    const doc = await api('GET', '/.well-known/ath-app.json');
    expect(doc.status).toBe(200);
    expect(doc.body).toMatchObject({ app_id: APP_ID, api_base: `${shop.url}/api` });
    expect(doc.body?.['auth'].scopes_supported).toEqual(['products:read', 'cart:read', 'cart:write', 'orders:read', 'orders:write']);

    const res = await api('POST', '/ath/agents/register', {
      agent_id: agentId,
      agent_attestation: await att(shop.url),
      developer: { name: 'Example Agents Ltd', id: 'example-agents' },
      requested_providers: [{ provider_id: APP_ID, scopes: ['products:read', 'cart:read', 'cart:write', 'orders:write'] }],
      purpose: 'AI Shopping Agent',
      redirect_uris: [`${agentOrigin}/cb`],
    });
    expect(res.status).toBe(201);
    expect(res.body?.['agent_status']).toBe('approved');
    reg = res.body as typeof reg;
  });

  it('authorize → Chromium: log in, approve a subset → token → API calls → scope refusal → revoke', async () => {
    const auth = await api('POST', '/ath/authorize', {
      client_id: reg.client_id,
      agent_attestation: await att(shop.url),
      provider_id: APP_ID,
      scopes: ['products:read', 'cart:read', 'cart:write', 'orders:write'],
      state: 'agent-state-e2e-0123456789',
      user_redirect_uri: `${agentOrigin}/cb`,
    });
    expect(auth.status).toBe(200);
    const { authorization_url, ath_session_id } = auth.body as { authorization_url: string; ath_session_id: string };

    const context = await browser.newContext();
    const page = await context.newPage();
    page.setDefaultTimeout(15_000);
    const consoleErrors: string[] = [];
    page.on('console', (m) => void (/Content.Security.Policy/i.test(m.text()) && consoleErrors.push(m.text())));
    try {
      await page.goto(authorization_url);
      expect(new URL(page.url()).pathname).toBe('/login');
      await page.fill('#username', 'alice');
      await page.fill('#password', 'alice-password');
      await Promise.all([page.waitForURL(/\/ath\/authorize\/start/), page.click('button[type=submit]')]);

      const cookies = await context.cookies(shop.url);
      const binding = cookies.find((c) => c.name.startsWith('__Host-ath_bind_'));
      expect(binding).toMatchObject({ httpOnly: true, secure: true, sameSite: 'Lax', path: '/' });

      expect(await page.locator('h1').textContent()).toBe('Shopping Assistant wants to access your ATH Shop E-Commerce API account');
      expect(await page.locator('.tag').count()).toBeGreaterThanOrEqual(3);
      expect(await page.locator('input[name=scope]:checked').count()).toBe(4);
      await page.uncheck('input[name=scope][value="cart:read"]');
      await page.screenshot({ path: join(resultsDir, 'consent.png'), fullPage: true });

      await Promise.all([page.waitForURL(`${agentOrigin}/cb**`), page.click('button[value=approve]')]);
      expect(consoleErrors).toEqual([]); // no CSP violations on the login and consent pages
    } finally {
      await context.close();
    }
    const cb = callbacks.at(-1)!;
    expect(cb.get('state')).toBe('agent-state-e2e-0123456789');
    const code = cb.get('code')!;
    expect(code).toBeTruthy();

    const token = await api('POST', '/ath/token', {
      grant_type: 'authorization_code',
      client_id: reg.client_id,
      client_secret: reg.client_secret,
      agent_attestation: await att(`${shop.url}/ath/token`),
      code,
      ath_session_id,
    });
    expect(token.status).toBe(200);
    expect(validateTokenResponse(token.body).valid).toBe(true);
    expect(token.body?.['effective_scopes']).toEqual(['products:read', 'cart:write', 'orders:write']);
    const accessToken = token.body?.['access_token'] as string;
    const headers = { authorization: `Bearer ${accessToken}`, 'x-ath-agent-id': agentId };

    const products = await api('GET', '/api/products', undefined, headers);
    expect(products.status).toBe(200);
    expect(products.body?.['products'].length).toBeGreaterThan(0);
    const cart = await api('POST', '/api/cart', { product_id: 1, quantity: 2 }, headers);
    expect(cart.status).toBe(200);
    expect(cart.body?.['items']).toMatchObject([{ product_id: 1, quantity: 2 }]);
    const order = await api('POST', '/api/orders', {}, headers);
    expect(order.status).toBe(201);
    expect(order.body?.['order']).toMatchObject({ total_cents: 2 * 1290 });
    expect(shop.db.orders('alice')).toHaveLength(1);

    expectAthError(await api('GET', '/api/cart', undefined, headers), 403, 'SCOPE_NOT_APPROVED');
    expectAthError(await api('GET', '/api/orders', undefined, headers), 403, 'SCOPE_NOT_APPROVED');

    const revoke = await api('POST', '/ath/revoke', { client_id: reg.client_id, client_secret: reg.client_secret, token: accessToken });
    expect(revoke.status).toBe(200);
    expectAthError(await api('GET', '/api/products', undefined, headers), 401, 'TOKEN_REVOKED');

    // Nothing secret reached the logs.
    const logs = logLines.join('');
    expect(logs).toContain('audit access_granted');
    for (const secret of [accessToken, reg.client_secret, code, 'alice-password']) expect(logs).not.toContain(secret);
  }, 90_000);

  it('a second run where the user denies → completion page → 403 USER_DENIED at /ath/token', async () => {
    const auth = await api('POST', '/ath/authorize', {
      client_id: reg.client_id,
      agent_attestation: await att(shop.url),
      provider_id: APP_ID,
      scopes: ['products:read'],
      state: 'agent-state-e2e-deny-0123456789',
    });
    const { authorization_url, ath_session_id } = auth.body as { authorization_url: string; ath_session_id: string };
    const context = await browser.newContext();
    const page = await context.newPage();
    page.setDefaultTimeout(15_000);
    try {
      await page.goto(authorization_url);
      await page.fill('#username', 'bob');
      await page.fill('#password', 'bob-password');
      await Promise.all([page.waitForURL(/\/ath\/authorize\/start/), page.click('button[type=submit]')]);
      await Promise.all([page.waitForURL(`${shop.url}/ath/consent`), page.click('button[value=deny]')]);
      expect(await page.locator('h1').textContent()).toBe('Access denied');
      expect(await page.textContent('body')).toContain('return to your agent');
    } finally {
      await context.close();
    }
    const token = await api('POST', '/ath/token', {
      grant_type: 'authorization_code',
      client_id: reg.client_id,
      client_secret: reg.client_secret,
      agent_attestation: await att(`${shop.url}/ath/token`),
      code: 'exchange',
      ath_session_id,
    });
    expectAthError(token, 403, 'USER_DENIED');
  }, 90_000);
});
