import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { defaultApprovalPolicy } from '@athkit/core';
import { GatewayClient, type AthClientError } from '../src/index.js';
import { startTestServer, type TestServer, useNetworkGuard } from '@athkit/testkit';
import { DEVELOPER, startAgent, type TestAgent } from './support/agent.js';

useNetworkGuard();

let server: TestServer;
let agent: TestAgent;
const REDIRECT = 'http://127.0.0.1:9/callback';

beforeAll(async () => {
  server = await startTestServer();
  agent = await startAgent('Gateway Agent');
});
afterAll(async () => {
  await agent.identity.close();
  await server.close();
});

describe('GatewayClient against an in-process AthEngine', () => {
  it('discovers providers, registers with a redirect URI, checks state on return and calls through the proxy', async () => {
    const gw = await GatewayClient.discover(server.url, { agent: agent.agent });
    expect(gw.providers.map((p) => p.provider_id)).toEqual(['shop', 'mail']);

    await gw.register({ developer: DEVELOPER, providers: [{ provider_id: 'mail', scopes: ['mail:read', 'mail:send'] }], redirectUris: [REDIRECT] });
    const pending = await gw.authorize({ provider: 'mail', scopes: ['mail:read'], redirectUri: REDIRECT });
    const location = await server.consent(pending.authorizationUrl);
    expect(location).toMatch(/^http:\/\/127\.0\.0\.1:9\/callback\?code=/);

    // A forged redirect with another state is rejected without contacting the server (CL-09).
    const forged = new URL(location!);
    forged.searchParams.set('state', 'attacker-state');
    const before = server.requests.length;
    const err = (await gw.exchange(pending, { redirectUrl: forged }).catch((e: unknown) => e)) as AthClientError;
    expect(err.code).toBe('state_mismatch');
    expect(server.requests.length).toBe(before);

    const token = await gw.exchange(pending, { redirectUrl: location! });
    expect(token.providerId).toBe('mail');
    expect(token.scopes).toEqual(['mail:read']);

    const echoed = await gw.json<{ provider: string; path: string; user: string }>('mail', 'GET', '/v1/messages?x=1');
    expect(echoed).toMatchObject({ provider: 'mail', path: '/v1/messages', user: 'alice' });
    const proxied = server.requests.find((r) => r.path === '/ath/proxy/mail/v1/messages')!;
    expect(proxied.headers['x-ath-agent-id']).toBe(agent.agent.agentId);

    // The token is bound to mail; the shop provider has no token here.
    expect(((await gw.call('shop', 'GET', '/x').catch((e: unknown) => e)) as AthClientError).code).toBe('no_token');
    expect(await gw.revoke('mail')).toBe(true);
    expect(await gw.revoke('mail')).toBe(false);
  });

  it('a denial on the redirect becomes USER_DENIED', async () => {
    const a = await startAgent('Redirect Denied');
    try {
      const gw = new GatewayClient(server.url, { agent: a.agent });
      await gw.register({ developer: DEVELOPER, providers: [{ provider_id: 'mail', scopes: ['mail:read'] }], redirectUris: [REDIRECT] });
      const pending = await gw.authorize({ provider: 'mail', scopes: ['mail:read'], redirectUri: REDIRECT });
      const location = await server.consent(pending.authorizationUrl, { decision: 'denied' });
      const err = (await gw.exchange(pending, { redirectUrl: location! }).catch((e: unknown) => e)) as AthClientError;
      expect(err.code).toBe('USER_DENIED');
    } finally {
      await a.identity.close();
    }
  });

  it('polls the agent status while pending and stops when approved (CL-08)', async () => {
    const pendingServer = await startTestServer({ policy: defaultApprovalPolicy({}) });
    const a = await startAgent('Pending Agent');
    try {
      const gw = new GatewayClient(pendingServer.url, { agent: a.agent, pollIntervalMs: 10 });
      const reg = await gw.register({ developer: DEVELOPER, providers: [{ provider_id: 'mail', scopes: ['mail:read'] }] });
      expect(reg.credentials.agentStatus).toBe('pending');
      // authorize while pending: the server says AGENT_UNAPPROVED and the client suggests polling.
      const early = (await gw.authorize({ provider: 'mail', scopes: ['mail:read'] }).catch((e: unknown) => e)) as AthClientError;
      expect(early.code).toBe('AGENT_UNAPPROVED');
      expect(early.recovery).toBe('poll_status');

      let polls = 0;
      const waiting = gw.waitForApproval({ intervalMs: 10, timeoutMs: 5_000 });
      const approver = setInterval(() => {
        polls = pendingServer.requests.filter((r) => r.method === 'GET' && r.path.startsWith('/ath/agents/')).length;
        if (polls >= 2) {
          clearInterval(approver);
          void pendingServer.engine.admin.approve(reg.credentials.clientId);
        }
      }, 5);
      const status = await waiting;
      expect(status.agent_status).toBe('approved');
      expect(polls).toBeGreaterThanOrEqual(2);
      expect((await gw.credentials())?.agentStatus).toBe('approved');
      await pendingServer.engine.admin.deny(reg.credentials.clientId);
      const denied = (await gw.waitForApproval({ intervalMs: 10 }).catch((e: unknown) => e)) as AthClientError;
      expect(denied.code).toBe('agent_denied');
    } finally {
      await a.identity.close();
      await pendingServer.close();
    }
  });
});
