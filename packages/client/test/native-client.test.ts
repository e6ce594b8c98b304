import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AthClientError, MemoryCredentialStore, NativeClient } from '../src/index.js';
import { startTestServer, type TestServer, useNetworkGuard } from '@athkit/testkit';
import { DEVELOPER, startAgent, type TestAgent } from './support/agent.js';

useNetworkGuard();

let server: TestServer;
let agent: TestAgent;

beforeAll(async () => {
  server = await startTestServer();
  agent = await startAgent();
});
afterAll(async () => {
  await agent.identity.close();
  await server.close();
});

const noSleep = (): Promise<void> => new Promise((r) => setTimeout(r, 5));

describe('NativeClient against an in-process AthEngine', () => {
  it('runs discovery → register → authorize → consent → token → API → revoke', async () => {
    const shop = await NativeClient.discover(server.url, { agent: agent.agent, sleep: noSleep, pollIntervalMs: 5 });
    expect(shop.providerId).toBe('shop');
    expect(shop.apiBase).toBe(`${server.url}/api`);

    const reg = await shop.register({ developer: DEVELOPER, scopes: ['products:read', 'orders:write'] });
    expect(reg.reused).toBe(false);
    expect(reg.credentials.agentStatus).toBe('approved');

    const pending = await shop.authorize({ scopes: ['products:read', 'orders:write'] });
    expect(pending.authorizationUrl).toContain('code_challenge_method=S256');
    expect(pending.state.length).toBeGreaterThanOrEqual(43); // 256 bits base64url

    // The user has not consented yet: the first poll sees authorization_pending, then the user approves.
    const waiting = shop.waitForToken(pending, { intervalMs: 20, timeoutMs: 5_000 });
    await new Promise((r) => setTimeout(r, 60));
    await server.consent(pending.authorizationUrl, { scopes: ['products:read'] });
    const token = await waiting;
    expect(token.scopes).toEqual(['products:read']);
    expect(token.providerId).toBe('shop');
    const tokenPolls = server.requests.filter((r) => r.path === '/ath/token');
    expect(tokenPolls.length).toBeGreaterThan(1);

    // Every attestation is fresh: no jti is reused across requests (CL-06), and the aud is right (CL-05).
    const claims = server.requests
      .filter((r) => r.method === 'POST' && r.body.includes('agent_attestation'))
      .map((r): { path: string; claims: Record<string, unknown> } => {
        const jwt = (JSON.parse(r.body) as { agent_attestation: string }).agent_attestation;
        const payload = JSON.parse(Buffer.from(jwt.split('.')[1]!, 'base64url').toString()) as Record<string, unknown>;
        return { path: r.path, claims: payload };
      });
    expect(new Set(claims.map((c) => c.claims['jti'])).size).toBe(claims.length);
    for (const c of claims) {
      expect(c.claims['aud']).toBe(c.path === '/ath/token' ? `${server.url}/ath/token` : server.url);
      expect(c.claims['sub']).toBe(agent.agent.agentId);
      expect(c.claims['iss']).toBe(new URL(agent.agent.agentId).origin);
      expect((c.claims['exp'] as number) - (c.claims['iat'] as number)).toBeLessThanOrEqual(300);
    }

    const products = await shop.json<{ id: string }[]>('GET', '/products');
    expect(products[0]?.id).toBe('p1');
    const apiCall = server.requests.find((r) => r.path === '/api/products')!;
    expect(apiCall.headers['x-ath-agent-id']).toBe(agent.agent.agentId);
    expect(apiCall.headers.authorization).toBe(`Bearer ${token.accessToken}`);

    // orders:write was not consented: the service refuses with an ATH error.
    const denied = await shop.json('POST', '/orders', { item: 'p1' }).catch((e: unknown) => e);
    expect(denied).toBeInstanceOf(AthClientError);
    expect((denied as AthClientError).code).toBe('SCOPE_NOT_APPROVED');
    expect((denied as AthClientError).status).toBe(403);

    expect(await shop.revoke()).toBe(true);
    const after = await shop.json('GET', '/products').catch((e: unknown) => e);
    expect((after as AthClientError).code).toBe('no_token');
    expect((after as AthClientError).needsReauthorization).toBe(true);
  });

  it('reuses stored credentials on 409 (CL-07) and reports a foreign duplicate clearly', async () => {
    const store = new MemoryCredentialStore();
    const a = await startAgent('Dup Agent');
    try {
      const first = await NativeClient.discover(server.url, { agent: a.agent, store });
      const r1 = await first.register({ developer: DEVELOPER, scopes: ['products:read'] });
      const again = await first.register({ developer: DEVELOPER, scopes: ['products:read'] });
      expect(again.reused).toBe(true);
      expect(again.credentials.clientId).toBe(r1.credentials.clientId);

      const elsewhere = await NativeClient.discover(server.url, { agent: a.agent }); // empty store
      const err = (await elsewhere.register({ developer: DEVELOPER, scopes: ['products:read'] }).catch((e: unknown) => e)) as AthClientError;
      expect(err.code).toBe('AGENT_ALREADY_REGISTERED');
      expect(err.status).toBe(409);
      expect(err.message).toMatch(/no stored credentials/);
    } finally {
      await a.identity.close();
    }
  });

  it('tells the agent to re-authorize when the token was revoked elsewhere (CL-20)', async () => {
    const a = await startAgent('Revoked Agent');
    try {
      const shop = await NativeClient.discover(server.url, { agent: a.agent });
      const reg = await shop.register({ developer: DEVELOPER, scopes: ['products:read'] });
      const pending = await shop.authorize({ scopes: ['products:read'] });
      await server.consent(pending.authorizationUrl);
      const token = await shop.exchange(pending);
      await server.engine.revoke({ client_id: reg.credentials.clientId, client_secret: reg.credentials.clientSecret, token: token.accessToken });
      const err = (await shop.call('GET', '/products').catch((e: unknown) => e)) as AthClientError;
      expect(err.code).toBe('TOKEN_REVOKED');
      expect(err.needsReauthorization).toBe(true);
      expect(err.hint).toMatch(/authorize again/);
      // The dead token is forgotten.
      expect((await shop.credentials())?.tokens?.['shop']).toBeUndefined();
    } finally {
      await a.identity.close();
    }
  });

  it('refuses scopes outside the approval before asking the server (CL-08)', async () => {
    const a = await startAgent('Scoped Agent');
    try {
      const shop = await NativeClient.discover(server.url, { agent: a.agent });
      const reg = await shop.register({ developer: DEVELOPER, scopes: ['products:read', 'admin'] });
      expect(reg.credentials.approvedProviders?.[0]?.denied_scopes).toEqual(['admin']);
      const before = server.requests.length;
      const err = (await shop.authorize({ scopes: ['products:read', 'admin'] }).catch((e: unknown) => e)) as AthClientError;
      expect(err.code).toBe('scope_not_approved');
      expect(server.requests.length).toBe(before);
    } finally {
      await a.identity.close();
    }
  });

  it('surfaces USER_DENIED when the user refuses consent', async () => {
    const a = await startAgent('Denied Agent');
    try {
      const shop = await NativeClient.discover(server.url, { agent: a.agent });
      await shop.register({ developer: DEVELOPER, scopes: ['products:read'] });
      const pending = await shop.authorize({ scopes: ['products:read'] });
      await server.consent(pending.authorizationUrl, { decision: 'denied' });
      const err = (await shop.waitForToken(pending, { intervalMs: 5 }).catch((e: unknown) => e)) as AthClientError;
      expect(err.code).toBe('USER_DENIED');
      expect(err.recovery).toBe('tell_user');
      expect(await shop.pendingAuthorization('shop')).toBeNull();
    } finally {
      await a.identity.close();
    }
  });
});
