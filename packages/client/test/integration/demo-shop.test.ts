/**
 * Integration: NativeClient against the real demo shop (apps/demo-shop: fastify + @athkit/fastify +
 * SQLite store) on 127.0.0.1:0. The user's browser is played with fetch: log in, open the consent
 * URL, approve one scope.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AthClientError, NativeClient } from '../../src/index.js';
import { useNetworkGuard } from '@athkit/testkit';
import { DEVELOPER, startAgent, type TestAgent } from '../support/agent.js';

useNetworkGuard();

/** The slice of apps/demo-shop this test uses (imported by name at run time, so the client package
 * does not depend on the app that will later depend on it). */
interface Shop {
  url: string;
  close(): Promise<void>;
}
type CreateShop = (options: { dataDir: string; logger: false; allowInsecureAgents: string[] }) => Promise<Shop>;
const DEMO_SHOP = '@athkit/demo-shop';
let shop: Shop;
let agent: TestAgent;
const dataDir = mkdtempSync(join(tmpdir(), 'athkit-client-shop-'));

beforeAll(async () => {
  agent = await startAgent('Shopping Assistant');
  const { createShop } = (await import(/* @vite-ignore */ DEMO_SHOP)) as { createShop: CreateShop };
  shop = await createShop({ dataDir, logger: false, allowInsecureAgents: [new URL(agent.agent.agentId).host] });
});
afterAll(async () => {
  await shop.close();
  await agent.identity.close();
  rmSync(dataDir, { recursive: true, force: true });
});

const cookieOf = (res: Response): string => (res.headers.get('set-cookie') ?? '').split(';')[0] ?? '';

/** Alice logs in, opens the consent URL and approves `scopes`. Returns the redirect, if any. */
async function aliceConsents(authorizationUrl: string, scopes: string[]): Promise<string | null> {
  const login = await fetch(`${shop.url}/login`, {
    method: 'POST',
    redirect: 'manual',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ username: 'alice', password: 'alice-password', return_to: '/' }).toString(),
  });
  const session = cookieOf(login);
  expect(session).toContain('=');
  const page = await fetch(authorizationUrl, { redirect: 'manual', headers: { cookie: session } });
  const html = await page.text();
  expect(page.status, html).toBe(200);
  const binding = cookieOf(page);
  const state = /name="state" value="([^"]*)"/.exec(html)![1]!.replace(/&#x?([0-9a-fA-F]+);/g, (m, n: string) =>
    String.fromCharCode(m.startsWith('&#x') ? parseInt(n, 16) : Number(n)),
  );
  const form = new URLSearchParams({ state, decision: 'approve' });
  for (const s of scopes) form.append('scope', s);
  const done = await fetch(`${shop.url}/ath/consent`, {
    method: 'POST',
    redirect: 'manual',
    headers: { 'content-type': 'application/x-www-form-urlencoded', cookie: `${binding}; ${session}`, origin: shop.url },
    body: form.toString(),
  });
  await done.text();
  expect(done.status).toBeLessThan(400);
  return done.headers.get('location');
}

describe('NativeClient against the demo shop', () => {
  it('discovers, registers, waits for consent, calls the API and revokes', async () => {
    const client = await NativeClient.discover(shop.url, { agent: agent.agent, pollIntervalMs: 20 });
    expect(client.providerId).toBe('com.ath-shop.ecommerce');
    const reg = await client.register({ developer: DEVELOPER, scopes: ['products:read', 'cart:write'], purpose: 'integration test' });
    expect(reg.credentials.agentStatus).toBeDefined();
    if (reg.credentials.agentStatus !== 'approved') await client.waitForApproval({ intervalMs: 20, timeoutMs: 2_000 });

    const pending = await client.authorize({ scopes: ['products:read', 'cart:write'] });
    const waiting = client.waitForToken(pending, { intervalMs: 20, timeoutMs: 10_000 });
    await aliceConsents(pending.authorizationUrl, ['products:read']);
    const token = await waiting;
    expect(token.scopes).toEqual(['products:read']);

    const { products } = await client.json<{ products: { name: string }[] }>('GET', '/products');
    expect(products.length).toBeGreaterThan(0);
    const refused = (await client.json('POST', '/cart', { product_id: 1, quantity: 1 }).catch((e: unknown) => e)) as AthClientError;
    expect(refused).toBeInstanceOf(AthClientError);
    expect(refused.code).toBe('SCOPE_NOT_APPROVED');

    // 409 on a second registration reuses the stored credentials (CL-07).
    expect((await client.register({ developer: DEVELOPER, scopes: ['products:read'] })).reused).toBe(true);
    expect((await client.status()).agent_id).toBe(agent.agent.agentId);

    expect(await client.revoke()).toBe(true);
    // The server agrees the token is dead: replay it by hand.
    const replay = await fetch(`${client.apiBase}/products`, { headers: { authorization: `Bearer ${token.accessToken}`, 'x-ath-agent-id': agent.agent.agentId } });
    expect(((await replay.json()) as { code: string }).code).toBe('TOKEN_REVOKED');
  });
});
