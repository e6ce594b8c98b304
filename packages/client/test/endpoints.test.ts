import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  AthClientError,
  attestationAudience,
  createAttestation,
  discoveryRequest,
  generateAgentKey,
  isAuthorizationPending,
  processAgentStatusResponse,
  processAuthorizationResponse,
  processDiscoveryResponse,
  processRegistrationResponse,
  processRevocationResponse,
  processServiceDiscoveryResponse,
  processTokenResponse,
  registrationRequest,
  revocationRequest,
  serviceDiscoveryRequest,
  agentStatusRequest,
  tokenRequest,
  parseRetryAfter,
  type AgentCredentials,
} from '../src/index.js';
import { useNetworkGuard } from '@athkit/testkit';

useNetworkGuard();

/** A raw server whose answer each test chooses. */
let answer: (req: IncomingMessage, res: ServerResponse) => void;
let server: Server;
let base: string;
let agent: AgentCredentials;

beforeAll(async () => {
  server = createServer((req, res) => {
    res.setHeader('connection', 'close');
    answer(req, res);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const key = await generateAgentKey();
  agent = { agentId: 'https://agent.test/.well-known/agent.json', privateKey: key.privateKey, kid: key.kid };
});
afterEach(async () => {
  // Drop connections a test left hanging, and let the client's pool notice before the next test.
  server.closeAllConnections();
  await new Promise((r) => setTimeout(r, 20));
});
afterAll(async () => {
  await new Promise<void>((r) => {
    server.close(() => r());
    server.closeAllConnections();
  });
});

const json = (status: number, body: unknown, headers: Record<string, string> = {}) => (_req: unknown, res: ServerResponse) =>
  res.writeHead(status, { 'content-type': 'application/json', ...headers }).end(typeof body === 'string' ? body : JSON.stringify(body));

const VALID_REGISTRATION = {
  client_id: 'ath_c1',
  client_secret: 's3cret',
  agent_status: 'approved',
  approved_providers: [{ provider_id: 'shop', approved_scopes: ['products:read'], denied_scopes: [] }],
  approval_expires: '2030-01-01T00:00:00Z',
};

const register = async (options: { timeoutMs?: number; signal?: AbortSignal } = {}) =>
  processRegistrationResponse(
    await registrationRequest(base, agent, { developer: { name: 'D', id: 'd1' }, requested_providers: [{ provider_id: 'shop', scopes: ['products:read'] }] }, options),
  );

async function failure(p: Promise<unknown>): Promise<AthClientError> {
  const err = await p.then(
    () => {
      throw new Error('expected a failure');
    },
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(AthClientError);
  return err as AthClientError;
}

describe('request/process pairs: success', () => {
  it('registration: POSTs JSON with a fresh attestation for the origin, returns the validated body', async () => {
    let seen: { method?: string; type?: string; body?: Record<string, unknown> } = {};
    answer = (req, res) => {
      let text = '';
      req.on('data', (c: Buffer) => (text += c.toString()));
      req.on('end', () => {
        seen = { method: req.method!, type: req.headers['content-type']!, body: JSON.parse(text) as Record<string, unknown> };
        json(201, VALID_REGISTRATION)(req, res);
      });
    };
    const reg = await register();
    expect(reg.client_id).toBe('ath_c1');
    expect(seen.method).toBe('POST');
    expect(seen.type).toBe('application/json');
    expect(seen.body?.['agent_id']).toBe(agent.agentId);
    const [header, payload] = (seen.body?.['agent_attestation'] as string).split('.').slice(0, 2).map((p) => JSON.parse(Buffer.from(p, 'base64url').toString()) as Record<string, unknown>);
    expect(header).toEqual({ alg: 'ES256', typ: 'JWT', kid: agent.kid });
    expect(payload).toMatchObject({ iss: 'https://agent.test', sub: agent.agentId, aud: base });
  });

  it('audiences per endpoint (CL-05): origin everywhere, the exact token URL for /ath/token', () => {
    expect(attestationAudience('https://gw.example.com/', 'register')).toBe('https://gw.example.com');
    expect(attestationAudience('https://gw.example.com', 'authorize')).toBe('https://gw.example.com');
    expect(attestationAudience('https://gw.example.com', 'agent_status')).toBe('https://gw.example.com');
    expect(attestationAudience('https://gw.example.com', 'token')).toBe('https://gw.example.com/ath/token');
  });

  it('every attestation has a new jti, a short exp and iat = now (CL-04, CL-06)', async () => {
    const clock = { now: () => Date.UTC(2030, 0, 1) };
    const decode = (jwt: string) => JSON.parse(Buffer.from(jwt.split('.')[1]!, 'base64url').toString()) as Record<string, number | string>;
    const a = decode(await createAttestation(agent, base, 'token', { clock }));
    const b = decode(await createAttestation(agent, base, 'token', { clock }));
    expect(a['jti']).not.toBe(b['jti']);
    expect(String(a['jti']).length).toBeGreaterThanOrEqual(22);
    expect(a['iat']).toBe(Date.UTC(2030, 0, 1) / 1000);
    expect(Number(a['exp']) - Number(a['iat'])).toBe(120);
    expect(a['aud']).toBe(`${base}/ath/token`);
  });

  it('agent status uses HTTP Basic with the client credentials', async () => {
    let auth = '';
    answer = (req, res) => {
      auth = req.headers.authorization ?? '';
      json(200, { ...VALID_REGISTRATION, client_secret: undefined, agent_id: agent.agentId })(req, res);
    };
    const status = await processAgentStatusResponse(await agentStatusRequest(base, 'ath_c1', 's3cret'));
    expect(status.agent_status).toBe('approved');
    expect(auth).toBe(`Basic ${Buffer.from('ath_c1:s3cret').toString('base64')}`);
  });

  it('revocation: 200 with an empty body is success', async () => {
    answer = (_req, res) => res.writeHead(200).end();
    await expect(processRevocationResponse(await revocationRequest(base, { client_id: 'c', client_secret: 's', token: 't' }))).resolves.toBeUndefined();
  });
});

describe('request/process pairs: every failure is a typed, readable AthClientError', () => {
  it('malformed JSON → invalid_response', async () => {
    answer = json(201, '{"client_id": ');
    const err = await failure(register());
    expect(err.code).toBe('invalid_response');
    expect(err.status).toBe(201);
    expect(err.message).toMatch(/not valid JSON/);
  });

  it('a body that fails the schema → invalid_response with the violations', async () => {
    answer = json(201, { ...VALID_REGISTRATION, agent_status: 'maybe', client_secret: undefined });
    const err = await failure(register());
    expect(err.code).toBe('invalid_response');
    expect(err.message).toMatch(/not a valid AgentRegistrationResponse/);
    expect(err.violations?.map((v) => v.pointer)).toEqual(expect.arrayContaining(['/client_secret', '/agent_status']));
  });

  it('an ATHError keeps code, status, message and details', async () => {
    answer = json(401, { code: 'INVALID_ATTESTATION', message: 'attestation expired', details: { reason: 'expired' } });
    const err = await failure(register());
    expect(err).toMatchObject({ code: 'INVALID_ATTESTATION', status: 401, message: 'attestation expired', details: { reason: 'expired' } });
    expect(err.fromServer).toBe(true);
    expect(err.recovery).toBe('check_identity');
  });

  it('429 carries retryAfter from Retry-After', async () => {
    answer = json(429, { code: 'RATE_LIMITED', message: 'slow down' }, { 'retry-after': '7' });
    const err = await failure(register());
    expect(err).toMatchObject({ code: 'RATE_LIMITED', status: 429, retryAfter: 7 });
    expect(err.hint).toBe('retry in 7 s');
    expect(parseRetryAfter(new Date(Date.now() + 30_000).toUTCString())).toBeGreaterThanOrEqual(29);
  });

  it('503 (store unreachable, threats I3) carries retryAfter, with or without an ATHError body', async () => {
    answer = json(503, { code: 'INTERNAL_ERROR', message: 'temporarily unavailable' }, { 'retry-after': '1' });
    const err = await failure(register());
    expect(err).toMatchObject({ code: 'INTERNAL_ERROR', status: 503, retryAfter: 1 });
    expect(err.recovery).toBe('retry_later');
    expect(err.hint).toBe('retry in 1 s');
    answer = (_req, res) => res.writeHead(503, { 'content-type': 'text/plain', 'retry-after': '2' }).end('busy');
    expect(await failure(register())).toMatchObject({ code: 'server_error', status: 503, retryAfter: 2 });
  });

  it('a 5xx without an ATHError → server_error with the status', async () => {
    answer = (_req, res) => res.writeHead(503, { 'content-type': 'text/html' }).end('<h1>Service Unavailable</h1>');
    const err = await failure(register());
    expect(err).toMatchObject({ code: 'server_error', status: 503 });
    expect(err.message).toMatch(/HTTP 503.*Service Unavailable/);
  });

  it('a 4xx without an ATHError → invalid_response', async () => {
    answer = (_req, res) => res.writeHead(404, { 'content-type': 'text/plain' }).end('nope');
    const err = await failure(processDiscoveryResponse(await discoveryRequest(base)));
    expect(err).toMatchObject({ code: 'invalid_response', status: 404 });
  });

  it('a slow response → timeout', async () => {
    answer = (_req, res) => void setTimeout(() => json(201, VALID_REGISTRATION)(_req, res), 2_000).unref();
    const started = Date.now();
    const err = await failure(register({ timeoutMs: 150 }));
    expect(err.code).toBe('timeout');
    expect(Date.now() - started).toBeLessThan(1_500);
  });

  it('a body that stalls after the headers → timeout', async () => {
    answer = (_req, res) => {
      res.writeHead(201, { 'content-type': 'application/json' });
      res.write('{"client_id":');
    };
    const err = await failure(register({ timeoutMs: 200 }));
    expect(err.code).toBe('timeout');
  });

  it('a refused connection → network', async () => {
    const probe = createServer();
    await new Promise<void>((r) => probe.listen(0, '127.0.0.1', r));
    const port = (probe.address() as AddressInfo).port;
    await new Promise<void>((r) => probe.close(() => r()));
    const err = await failure(discoveryRequest(`http://127.0.0.1:${port}`));
    expect(err.code).toBe('network');
    expect(err.message).toMatch(/ECONNREFUSED|fetch failed/);
  });

  it('a caller abort → aborted', async () => {
    answer = () => undefined;
    const controller = new AbortController();
    setTimeout(() => controller.abort(), 50);
    const err = await failure(register({ signal: controller.signal }));
    expect(err.code).toBe('aborted');
  });

  it('plain http to a non-loopback host → insecure_url, nothing sent', async () => {
    let called = false;
    const err = await failure(
      discoveryRequest('http://gateway.example.com', {
        fetch: () => {
          called = true;
          return Promise.resolve(new Response('{}'));
        },
      }),
    );
    expect(err.code).toBe('insecure_url');
    expect(called).toBe(false);
  });

  it('a discovery document for another ATH version → unsupported_version (CL-18)', async () => {
    answer = json(200, { ath_version: '0.2', gateway_id: 'gw', agent_registration_endpoint: `${base}/ath/agents/register`, supported_providers: [] });
    const err = await failure(processDiscoveryResponse(await discoveryRequest(base)));
    expect(err.code).toBe('unsupported_version');
  });

  it('a service discovery with a non-https api_base → insecure_url', async () => {
    answer = json(200, {
      ath_version: '0.1',
      app_id: 'shop',
      name: 'Shop',
      api_base: 'http://shop.example/api',
      auth: { type: 'oauth2', authorization_endpoint: `${base}/a`, token_endpoint: `${base}/ath/token`, scopes_supported: ['x'] },
    });
    const err = await failure(processServiceDiscoveryResponse(await serviceDiscoveryRequest(base)));
    expect(err.code).toBe('insecure_url');
  });

  it('an authorization_url without PKCE S256 → invalid_response (CL-10)', async () => {
    const response = new Response(JSON.stringify({ authorization_url: 'https://as.example/authorize?state=x', ath_session_id: 's1' }), { status: 200 });
    const err = await failure(processAuthorizationResponse(response));
    expect(err.code).toBe('invalid_response');
    expect(err.message).toMatch(/S256/);
  });

  it('a token for another agent, provider or with extra scopes → invalid_token_response (CL-12)', async () => {
    const token = {
      access_token: 'ath_tk_x',
      token_type: 'Bearer',
      expires_in: 3600,
      effective_scopes: ['a', 'b'],
      provider_id: 'shop',
      agent_id: agent.agentId,
      scope_intersection: { agent_approved: ['a', 'b'], user_consented: ['a', 'b'], effective: ['a', 'b'] },
    };
    const check = (body: unknown, expected: Parameters<typeof processTokenResponse>[1]) => processTokenResponse(new Response(JSON.stringify(body), { status: 200 }), expected);
    await expect(check(token, { agentId: agent.agentId, providerId: 'shop', scopes: ['a', 'b'] })).resolves.toMatchObject({ access_token: 'ath_tk_x' });
    expect((await failure(check(token, { scopes: ['a'] }))).code).toBe('invalid_token_response');
    expect((await failure(check(token, { providerId: 'mail' }))).code).toBe('invalid_token_response');
    expect((await failure(check(token, { agentId: 'https://other.test/agent.json' }))).code).toBe('invalid_token_response');
    expect((await failure(check({ ...token, token_type: 'mac' }, {}))).code).toBe('invalid_response');
  });

  it('authorization_pending is recognisable', async () => {
    answer = json(400, { code: 'SESSION_NOT_FOUND', message: 'pending', details: { reason: 'authorization_pending' } });
    const err = await failure(
      tokenRequest(base, agent, { client_id: 'c', client_secret: 's', code: 'exchange', ath_session_id: 'x' }).then((r) => processTokenResponse(r)),
    );
    expect(isAuthorizationPending(err)).toBe(true);
    expect(err.recovery).toBe('restart_authorization');
  });
});
