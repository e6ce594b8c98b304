import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { exportPublicJwk, generateAgentKeyPair, signAttestation } from '@athkit/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { APP_ID, startTestServer, useNetworkGuard, type TestServer } from '../src/index.js';

useNetworkGuard();

let server: TestServer;
let identity: Server;
let agentId: string;
let privateKey: Awaited<ReturnType<typeof generateAgentKeyPair>>['privateKey'];

beforeAll(async () => {
  const keys = await generateAgentKeyPair();
  privateKey = keys.privateKey;
  const jwk = await exportPublicJwk(keys.publicKey, 'k1');
  identity = createServer((_req, res) => {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(
      JSON.stringify({
        ath_version: '0.1',
        agent_id: agentId,
        name: 'Kit Agent',
        developer: { name: 'Dev', id: 'dev' },
        public_key: jwk,
      }),
    );
  });
  await new Promise<void>((resolve) => identity.listen(0, '127.0.0.1', resolve));
  agentId = `http://127.0.0.1:${(identity.address() as AddressInfo).port}/.well-known/agent.json`;
  server = await startTestServer();
});
afterAll(async () => {
  await server.close();
  await new Promise<void>((resolve) => identity.close(() => resolve()));
});

async function post(path: string, body: unknown): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(server.url + path, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}
const att = (audience: string): Promise<string> =>
  signAttestation({ privateKey, kid: 'k1', agentId, audience });

describe('the in-process ATH test server', () => {
  it('serves discovery and records every request', async () => {
    const doc = (await (await fetch(`${server.url}/.well-known/ath-app.json`)).json()) as Record<
      string,
      unknown
    >;
    expect(doc).toMatchObject({ app_id: APP_ID, api_base: `${server.url}/api` });
    expect(server.requests.at(-1)).toMatchObject({ method: 'GET', path: '/.well-known/ath-app.json' });
  });

  it('runs register → authorize → consent → token → API → revoke', async () => {
    const reg = await post('/ath/agents/register', {
      agent_id: agentId,
      agent_attestation: await att(server.url),
      developer: { name: 'Dev', id: 'dev' },
      requested_providers: [{ provider_id: APP_ID, scopes: ['products:read', 'orders:write'] }],
    });
    expect(reg.status).toBe(201);
    const { client_id, client_secret } = reg.body as { client_id: string; client_secret: string };
    const auth = await post('/ath/authorize', {
      client_id,
      agent_attestation: await att(server.url),
      provider_id: APP_ID,
      scopes: ['products:read', 'orders:write'],
      state: 'kit-state-0123456789abcdef',
    });
    expect(auth.status).toBe(200);
    const { authorization_url, ath_session_id } = auth.body as {
      authorization_url: string;
      ath_session_id: string;
    };
    expect(await server.consent(authorization_url, { scopes: ['products:read'] })).toBeNull();
    const token = await post('/ath/token', {
      grant_type: 'authorization_code',
      client_id,
      client_secret,
      agent_attestation: await att(`${server.url}/ath/token`),
      code: 'exchange',
      ath_session_id,
    });
    expect(token.body).toMatchObject({ effective_scopes: ['products:read'] });
    const headers = {
      authorization: `Bearer ${String(token.body['access_token'])}`,
      'x-ath-agent-id': agentId,
    };
    expect(await (await fetch(`${server.url}/api/products`, { headers })).json()).toEqual([
      { id: 'p1', name: 'Tea', price: 4 },
    ]);
    expect(
      (await post('/ath/revoke', { client_id, client_secret, token: token.body['access_token'] })).status,
    ).toBe(200);
    const after = await fetch(`${server.url}/api/products`, { headers });
    expect(after.status).toBe(401);
    expect(((await after.json()) as { code: string }).code).toBe('TOKEN_REVOKED');
  });

  it('lets a test take over a request (fault injection)', async () => {
    server.intercept = (_req, res) => {
      res.writeHead(503).end();
      return true;
    };
    try {
      expect((await fetch(`${server.url}/.well-known/ath.json`)).status).toBe(503);
    } finally {
      server.intercept = null;
    }
  });
});
