import {
  validateAgentRegistrationResponse,
  validateAgentStatusResponse,
  validateAuthorizationResponse,
  validateServiceDiscoveryDocument,
  validateTokenResponse,
} from '@athkit/schemas';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  APP_ID,
  BASE,
  SCOPES,
  authorize,
  buildHarness,
  consent,
  exchange,
  expectAthError,
  fullFlow,
  launch,
  register,
  type Harness,
  type Registered,
} from './support/harness.js';

let h: Harness;
let reg: Registered;
beforeAll(async () => {
  h = await buildHarness();
  reg = await register(h, 'main');
});
afterAll(() => h.close());

const basic = (id: string, secret: string) => `Basic ${Buffer.from(`${id}:${secret}`).toString('base64')}`;

describe('A. discovery: GET /.well-known/ath-app.json', () => {
  it('C-005/C-006/C-007/C-009: 200 ServiceDiscoveryDocument, oauth2, 0.1, attestation required', async () => {
    const res = await h.app.inject({ method: 'GET', url: '/.well-known/ath-app.json' });
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toMatch(/^application\/json/);
    const doc = res.json();
    expect(validateServiceDiscoveryDocument(doc).valid).toBe(true);
    expect(doc).toMatchObject({
      ath_version: '0.1',
      app_id: APP_ID,
      name: 'Example Shop',
      api_base: `${BASE}/api`,
      auth: {
        type: 'oauth2',
        authorization_endpoint: `${BASE}/ath/authorize/start`,
        token_endpoint: `${BASE}/ath/token`,
        scopes_supported: SCOPES,
        agent_attestation_required: true,
      },
    });
    expect(res.headers['strict-transport-security']).toBe('max-age=15552000');
  });

  it('C-008: public and without secrets (no credentials needed, no client secret in it)', async () => {
    const res = await h.app.inject({ method: 'GET', url: '/.well-known/ath-app.json' });
    expect(res.body).not.toContain(reg.clientSecret);
    expect(res.body).not.toMatch(/secret/i);
  });

  it('HEAD works; other methods → 405 METHOD_NOT_ALLOWED with Allow', async () => {
    expect((await h.app.inject({ method: 'HEAD', url: '/.well-known/ath-app.json' })).statusCode).toBe(200);
    const res = await h.app.inject({ method: 'POST', url: '/.well-known/ath-app.json', payload: {} });
    expectAthError(res, 405, 'METHOD_NOT_ALLOWED');
    expect(res.headers['allow']).toBe('GET, HEAD');
  });

  it('C-010: a scope outside scopes_supported is denied at registration', async () => {
    const agent = await h.agents.add('c010');
    const res = await h.app.inject({
      method: 'POST',
      url: '/ath/agents/register',
      payload: {
        agent_id: agent.agentId,
        agent_attestation: await agent.mint(BASE),
        developer: { name: 'd', id: 'd' },
        requested_providers: [{ provider_id: APP_ID, scopes: ['products:read', 'zz:unknown'] }],
      },
    });
    expect(res.statusCode).toBe(201);
    expect(res.json().approved_providers[0]).toMatchObject({ approved_scopes: ['products:read'], denied_scopes: ['zz:unknown'] });
  });
});

describe('C. registration: POST /ath/agents/register', () => {
  it('C-040/C-057: 201 AgentRegistrationResponse with Cache-Control: no-store', async () => {
    const agent = await h.agents.add('c040');
    const res = await h.app.inject({
      method: 'POST',
      url: '/ath/agents/register',
      payload: {
        agent_id: agent.agentId,
        agent_attestation: await agent.mint(BASE),
        developer: { name: 'd', id: 'd' },
        requested_providers: [{ provider_id: APP_ID, scopes: ['products:read', 'admin:all'] }],
        redirect_uris: ['https://agent.test/cb'],
      },
    });
    expect(res.statusCode).toBe(201);
    expect(validateAgentRegistrationResponse(res.json()).valid).toBe(true);
    expect(res.headers['cache-control']).toBe('no-store');
    expect(res.headers['strict-transport-security']).toBe('max-age=15552000');
    // C-044: the policy denies admin:all with a reason
    expect(res.json().approved_providers[0]).toMatchObject({ approved_scopes: ['products:read'], denied_scopes: ['admin:all'] });
  });

  it('C-041: missing required field → 400 INVALID_REQUEST', async () => {
    const agent = await h.agents.add('c041');
    const res = await h.app.inject({
      method: 'POST',
      url: '/ath/agents/register',
      payload: { agent_id: agent.agentId, agent_attestation: await agent.mint(BASE), requested_providers: [] },
    });
    expectAthError(res, 400, 'INVALID_REQUEST');
  });

  it('C-042: missing attestation → 401 INVALID_ATTESTATION', async () => {
    const agent = await h.agents.add('c042');
    const res = await h.app.inject({
      method: 'POST',
      url: '/ath/agents/register',
      payload: { agent_id: agent.agentId, developer: { name: 'd', id: 'd' }, requested_providers: [{ provider_id: APP_ID, scopes: ['products:read'] }] },
    });
    expectAthError(res, 401, 'INVALID_ATTESTATION');
  });

  it('C-048: duplicate registration → 409 AGENT_ALREADY_REGISTERED, no secret in it', async () => {
    const res = await h.app.inject({
      method: 'POST',
      url: '/ath/agents/register',
      payload: {
        agent_id: reg.agent.agentId,
        agent_attestation: await reg.agent.mint(BASE),
        developer: { name: 'd', id: 'd' },
        requested_providers: [{ provider_id: APP_ID, scopes: ['products:read'] }],
      },
    });
    const body = expectAthError(res, 409, 'AGENT_ALREADY_REGISTERED');
    expect(body.details).toEqual({ client_id: reg.clientId });
  });

  it('C-056: text/plain body → 400 INVALID_REQUEST (reason unsupported_media_type)', async () => {
    const res = await h.app.inject({
      method: 'POST',
      url: '/ath/agents/register',
      headers: { 'content-type': 'text/plain' },
      payload: '{}',
    });
    expect(expectAthError(res, 400, 'INVALID_REQUEST').details).toEqual({ reason: 'unsupported_media_type' });
  });

  it('C-056: form-encoded body is not accepted at register → 400 unsupported_media_type', async () => {
    const res = await h.app.inject({
      method: 'POST',
      url: '/ath/agents/register',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      payload: 'agent_id=x',
    });
    expect(expectAthError(res, 400, 'INVALID_REQUEST').details).toEqual({ reason: 'unsupported_media_type' });
  });

  it('C-056: malformed JSON → 400 INVALID_REQUEST', async () => {
    const res = await h.app.inject({
      method: 'POST',
      url: '/ath/agents/register',
      headers: { 'content-type': 'application/json' },
      payload: '{"agent_id": ',
    });
    expectAthError(res, 400, 'INVALID_REQUEST');
  });

  it('C-202: GET /ath/agents/register → 405 with Allow: POST', async () => {
    const res = await h.app.inject({ method: 'GET', url: '/ath/agents/register' });
    expectAthError(res, 405, 'METHOD_NOT_ALLOWED');
    expect(res.headers['allow']).toBe('POST');
  });
});

describe('D. agent status: GET /ath/agents/{clientId}', () => {
  it('C-063: Basic client_id:client_secret → 200 without client_secret', async () => {
    const res = await h.app.inject({
      method: 'GET',
      url: `/ath/agents/${reg.clientId}`,
      headers: { authorization: basic(reg.clientId, reg.clientSecret) },
    });
    expect(res.statusCode).toBe(200);
    expect(validateAgentStatusResponse(res.json()).valid).toBe(true);
    expect(res.json()).toMatchObject({ client_id: reg.clientId, agent_id: reg.agent.agentId, agent_status: 'approved' });
    expect(res.body).not.toContain('client_secret');
    expect(res.body).not.toContain(reg.clientSecret);
    expect(res.headers['cache-control']).toBe('no-store');
  });

  it('C-060: no credentials → 403 AGENT_NOT_REGISTERED without registration data', async () => {
    const res = await h.app.inject({ method: 'GET', url: `/ath/agents/${reg.clientId}` });
    expectAthError(res, 403, 'AGENT_NOT_REGISTERED');
    expect(res.body).not.toContain(reg.agent.agentId);
  });

  it('C-061: wrong secret and unknown client give identical 403 bodies; malformed Basic too', async () => {
    const wrong = await h.app.inject({
      method: 'GET',
      url: `/ath/agents/${reg.clientId}`,
      headers: { authorization: basic(reg.clientId, 'wrong') },
    });
    const unknown = await h.app.inject({
      method: 'GET',
      url: `/ath/agents/${reg.clientId}`,
      headers: { authorization: basic('nosuch', 'whatever') },
    });
    const malformed = await h.app.inject({
      method: 'GET',
      url: `/ath/agents/${reg.clientId}`,
      headers: { authorization: 'Basic !!!not-base64' },
    });
    const bearer = await h.app.inject({
      method: 'GET',
      url: `/ath/agents/${reg.clientId}`,
      headers: { authorization: 'Bearer abc' },
    });
    expectAthError(wrong, 403, 'AGENT_NOT_REGISTERED');
    expect(unknown.body).toBe(wrong.body);
    expect(malformed.body).toBe(wrong.body);
    expect(bearer.body).toBe(wrong.body);
  });

  it('C-062: another client id or a non-existent one → identical 403 AGENT_IDENTITY_MISMATCH', async () => {
    const other = await register(h, 'd-other');
    const a = await h.app.inject({
      method: 'GET',
      url: `/ath/agents/${other.clientId}`,
      headers: { authorization: basic(reg.clientId, reg.clientSecret) },
    });
    const b = await h.app.inject({
      method: 'GET',
      url: '/ath/agents/does-not-exist',
      headers: { authorization: basic(reg.clientId, reg.clientSecret) },
    });
    expectAthError(a, 403, 'AGENT_IDENTITY_MISMATCH');
    expect(b.body).toBe(a.body);
  });

  it('C-064: X-ATH-Agent-Attestation header instead of Basic → 200', async () => {
    const res = await h.app.inject({
      method: 'GET',
      url: `/ath/agents/${reg.clientId}`,
      headers: { 'x-ath-agent-attestation': await reg.agent.mint(BASE) },
    });
    expect(res.statusCode, res.body).toBe(200);
    expect(res.json().client_id).toBe(reg.clientId);
  });

  it('POST /ath/agents/{id} → 405 Allow: GET, HEAD', async () => {
    const res = await h.app.inject({ method: 'DELETE', url: `/ath/agents/${reg.clientId}` });
    expectAthError(res, 405, 'METHOD_NOT_ALLOWED');
    expect(res.headers['allow']).toBe('GET, HEAD');
  });
});

describe('E. authorization: POST /ath/authorize', () => {
  it('C-070/C-081/C-092: 200 AuthorizationResponse; authorization_url is this service\'s launch page with PKCE S256', async () => {
    const res = await h.app.inject({
      method: 'POST',
      url: '/ath/authorize',
      payload: {
        client_id: reg.clientId,
        agent_attestation: await reg.agent.mint(BASE),
        provider_id: APP_ID,
        scopes: ['products:read'],
        state: 'x'.repeat(43),
      },
    });
    expect(res.statusCode).toBe(200);
    expect(validateAuthorizationResponse(res.json()).valid).toBe(true);
    expect(res.headers['cache-control']).toBe('no-store');
    const url = new URL(res.json().authorization_url);
    expect(url.origin + url.pathname).toBe(`${BASE}/ath/authorize/start`);
    expect(url.searchParams.get('code_challenge_method')).toBe('S256');
    expect(url.searchParams.get('code_challenge')).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(res.body).not.toContain('code_verifier');
  });

  it('C-071: missing state → 400 INVALID_REQUEST', async () => {
    const res = await h.app.inject({
      method: 'POST',
      url: '/ath/authorize',
      payload: { client_id: reg.clientId, agent_attestation: await reg.agent.mint(BASE), provider_id: APP_ID, scopes: ['products:read'] },
    });
    expectAthError(res, 400, 'INVALID_REQUEST');
  });

  it('C-072: unknown client → 403 AGENT_NOT_REGISTERED', async () => {
    const res = await h.app.inject({
      method: 'POST',
      url: '/ath/authorize',
      payload: { client_id: 'nosuch', agent_attestation: await reg.agent.mint(BASE), provider_id: APP_ID, scopes: ['products:read'], state: 's'.repeat(22) },
    });
    expectAthError(res, 403, 'AGENT_NOT_REGISTERED');
  });

  it('C-077: another provider → 403 PROVIDER_NOT_APPROVED', async () => {
    const res = await h.app.inject({
      method: 'POST',
      url: '/ath/authorize',
      payload: { client_id: reg.clientId, agent_attestation: await reg.agent.mint(BASE), provider_id: 'other', scopes: ['products:read'], state: 's'.repeat(22) },
    });
    expectAthError(res, 403, 'PROVIDER_NOT_APPROVED');
  });

  it('C-078/C-079: a scope outside the approved set → 403 SCOPE_NOT_APPROVED naming it', async () => {
    const res = await h.app.inject({
      method: 'POST',
      url: '/ath/authorize',
      payload: {
        client_id: reg.clientId,
        agent_attestation: await reg.agent.mint(BASE),
        provider_id: APP_ID,
        scopes: ['products:read', 'admin:all'],
        state: 's'.repeat(22),
      },
    });
    expect(expectAthError(res, 403, 'SCOPE_NOT_APPROVED').details).toEqual({ scopes: ['admin:all'] });
  });

  it('C-084: user_redirect_uri not registered → 400 INVALID_REQUEST', async () => {
    const res = await h.app.inject({
      method: 'POST',
      url: '/ath/authorize',
      payload: {
        client_id: reg.clientId,
        agent_attestation: await reg.agent.mint(BASE),
        provider_id: APP_ID,
        scopes: ['products:read'],
        state: 's'.repeat(22),
        user_redirect_uri: 'https://evil.test/cb',
      },
    });
    expectAthError(res, 400, 'INVALID_REQUEST');
  });

  it('C-222: no permissive CORS (Origin: https://evil.test is not reflected)', async () => {
    for (const url of ['/ath/authorize', '/ath/token']) {
      const res = await h.app.inject({ method: 'POST', url, headers: { origin: 'https://evil.test' }, payload: {} });
      expect(res.headers['access-control-allow-origin']).toBeUndefined();
      expect(res.headers['access-control-allow-credentials']).toBeUndefined();
      const pre = await h.app.inject({
        method: 'OPTIONS',
        url,
        headers: { origin: 'https://evil.test', 'access-control-request-method': 'POST' },
      });
      expect(pre.headers['access-control-allow-origin']).toBeUndefined();
      expectAthError(pre, 405, 'METHOD_NOT_ALLOWED');
    }
  });
});

describe('G. token exchange: POST /ath/token', () => {
  it('C-120/C-134/C-137/C-138/C-142: 200 TokenResponse, intersection, no-store', async () => {
    const auth = await authorize(h, reg, ['products:read', 'cart:write']);
    const { binding } = await launch(h, auth.launchPath);
    expect((await consent(h, auth.state, binding, 'approve', ['products:read'])).statusCode).toBe(200);
    const res = await exchange(h, reg, auth.ath_session_id);
    expect(res.statusCode, res.body).toBe(200);
    const body = res.json();
    expect(validateTokenResponse(body).valid).toBe(true);
    expect(body).toMatchObject({
      token_type: 'Bearer',
      effective_scopes: ['products:read'],
      provider_id: APP_ID,
      agent_id: reg.agent.agentId,
      scope_intersection: { user_consented: ['products:read'], effective: ['products:read'] },
    });
    expect(body.expires_in).toBeGreaterThan(0);
    expect(body.expires_in).toBeLessThanOrEqual(3600);
    expect(res.headers['cache-control']).toBe('no-store');
    expect(res.headers['pragma']).toBe('no-cache');
    expect(body).not.toHaveProperty('refresh_token');
  });

  it('C-121: form-encoded token request is accepted (MAY)', async () => {
    const auth = await authorize(h, reg, ['products:read']);
    const { binding } = await launch(h, auth.launchPath);
    await consent(h, auth.state, binding, 'approve', ['products:read']);
    const form = new URLSearchParams({
      grant_type: 'authorization_code',
      client_id: reg.clientId,
      client_secret: reg.clientSecret,
      agent_attestation: await reg.agent.mint(`${BASE}/ath/token`),
      code: 'exchange',
      ath_session_id: auth.ath_session_id,
    });
    const res = await h.app.inject({
      method: 'POST',
      url: '/ath/token',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      payload: form.toString(),
    });
    expect(res.statusCode, res.body).toBe(200);
    expect(res.json().effective_scopes).toEqual(['products:read']);
  });

  it('C-121: form with a repeated field → 400 INVALID_REQUEST, never 5xx', async () => {
    const res = await h.app.inject({
      method: 'POST',
      url: '/ath/token',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      payload: 'grant_type=authorization_code&grant_type=x&__proto__=y',
    });
    expectAthError(res, 400, 'INVALID_REQUEST');
  });

  it('C-122: bad grant_type → 400 INVALID_REQUEST', async () => {
    const res = await h.app.inject({ method: 'POST', url: '/ath/token', payload: { grant_type: 'client_credentials' } });
    expectAthError(res, 400, 'INVALID_REQUEST');
  });

  it('C-123/C-131: wrong secret → 403 AGENT_NOT_REGISTERED and the session survives', async () => {
    const auth = await authorize(h, reg, ['products:read']);
    const { binding } = await launch(h, auth.launchPath);
    await consent(h, auth.state, binding, 'approve', ['products:read']);
    const bad = await h.app.inject({
      method: 'POST',
      url: '/ath/token',
      payload: {
        grant_type: 'authorization_code',
        client_id: reg.clientId,
        client_secret: 'wrong',
        agent_attestation: await reg.agent.mint(`${BASE}/ath/token`),
        code: 'exchange',
        ath_session_id: auth.ath_session_id,
      },
    });
    expectAthError(bad, 403, 'AGENT_NOT_REGISTERED');
    expect((await exchange(h, reg, auth.ath_session_id)).statusCode).toBe(200);
    // C-130: only once
    expectAthError(await exchange(h, reg, auth.ath_session_id), 400, 'SESSION_NOT_FOUND');
  });

  it('C-127: unknown session → 400 SESSION_NOT_FOUND; C-132: before consent → authorization_pending', async () => {
    expectAthError(await exchange(h, reg, 'ath_sess_nope'), 400, 'SESSION_NOT_FOUND');
    const auth = await authorize(h, reg, ['products:read']);
    const pending = expectAthError(await exchange(h, reg, auth.ath_session_id), 400, 'SESSION_NOT_FOUND');
    expect(pending.details).toEqual({ reason: 'authorization_pending' });
  });

  it('C-107: denied consent → 403 USER_DENIED at /ath/token', async () => {
    const auth = await authorize(h, reg, ['products:read']);
    const { binding } = await launch(h, auth.launchPath);
    const page = await consent(h, auth.state, binding, 'deny');
    expect(page.statusCode).toBe(200);
    expect(page.body).toContain('Access denied');
    expectAthError(await exchange(h, reg, auth.ath_session_id), 403, 'USER_DENIED');
  });

  it('C-136: nothing approved on the consent page → 403 SCOPE_NOT_APPROVED, no token', async () => {
    const auth = await authorize(h, reg, ['products:read']);
    const { binding } = await launch(h, auth.launchPath);
    await consent(h, auth.state, binding, 'approve', []);
    const res = await exchange(h, reg, auth.ath_session_id);
    expectAthError(res, 403, 'SCOPE_NOT_APPROVED');
    expect(res.body).not.toContain('access_token');
  });

  it('C-129/C-090: session older than 10 minutes → 400 SESSION_EXPIRED', async () => {
    const auth = await authorize(h, reg, ['products:read']);
    const { binding } = await launch(h, auth.launchPath);
    await consent(h, auth.state, binding, 'approve', ['products:read']);
    h.clock.advance(601_000);
    try {
      expectAthError(await exchange(h, reg, auth.ath_session_id), 400, 'SESSION_EXPIRED');
    } finally {
      h.clock.advance(-601_000);
    }
  });

  it('C-202: GET /ath/token → 405 Allow: POST', async () => {
    const res = await h.app.inject({ method: 'GET', url: '/ath/token' });
    expectAthError(res, 405, 'METHOD_NOT_ALLOWED');
    expect(res.headers['allow']).toBe('POST');
  });
});

describe('J. revocation: POST /ath/revoke', () => {
  it('C-180/C-185: the agent revokes its own token → 200, next call 401 TOKEN_REVOKED; idempotent', async () => {
    const token = await fullFlow(h, reg, ['products:read'], ['products:read']);
    const payload = { client_id: reg.clientId, client_secret: reg.clientSecret, token: token.access_token };
    const res = await h.app.inject({ method: 'POST', url: '/ath/revoke', payload });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toEqual({});
    expect(res.headers['cache-control']).toBe('no-store');
    const call = await h.app.inject({
      method: 'GET',
      url: '/api/products',
      headers: { authorization: `Bearer ${token.access_token}`, 'x-ath-agent-id': reg.agent.agentId },
    });
    expectAthError(call, 401, 'TOKEN_REVOKED');
    expect((await h.app.inject({ method: 'POST', url: '/ath/revoke', payload })).statusCode).toBe(200);
  });

  it('C-181/C-182: no or wrong client credentials → 403 AGENT_NOT_REGISTERED, token still works', async () => {
    const token = await fullFlow(h, reg, ['products:read'], ['products:read']);
    expectAthError(await h.app.inject({ method: 'POST', url: '/ath/revoke', payload: { token: token.access_token } }), 403, 'AGENT_NOT_REGISTERED');
    expectAthError(
      await h.app.inject({ method: 'POST', url: '/ath/revoke', payload: { client_id: reg.clientId, client_secret: 'x', token: token.access_token } }),
      403,
      'AGENT_NOT_REGISTERED',
    );
    const call = await h.app.inject({
      method: 'GET',
      url: '/api/products',
      headers: { authorization: `Bearer ${token.access_token}`, 'x-ath-agent-id': reg.agent.agentId },
    });
    expect(call.statusCode).toBe(200);
  });

  it('C-183: another agent\'s token → 403 AGENT_IDENTITY_MISMATCH; C-184: unknown token → 200; C-186: token missing → 400', async () => {
    const token = await fullFlow(h, reg, ['products:read'], ['products:read']);
    const other = await register(h, 'j-other');
    expectAthError(
      await h.app.inject({ method: 'POST', url: '/ath/revoke', payload: { client_id: other.clientId, client_secret: other.clientSecret, token: token.access_token } }),
      403,
      'AGENT_IDENTITY_MISMATCH',
    );
    const garbage = await h.app.inject({ method: 'POST', url: '/ath/revoke', payload: { client_id: reg.clientId, client_secret: reg.clientSecret, token: 'garbage' } });
    expect(garbage.statusCode).toBe(200);
    expectAthError(
      await h.app.inject({ method: 'POST', url: '/ath/revoke', payload: { client_id: reg.clientId, client_secret: reg.clientSecret } }),
      400,
      'INVALID_REQUEST',
    );
  });

  it('C-187: the signed-in user revokes their own token with the service session; a stranger cannot', async () => {
    const token = await fullFlow(h, reg, ['products:read'], ['products:read']);
    const bob = await h.app.inject({ method: 'POST', url: '/ath/revoke', headers: { cookie: 'user=bob' }, payload: { token: token.access_token } });
    expectAthError(bob, 403, 'AGENT_IDENTITY_MISMATCH');
    const alice = await h.app.inject({ method: 'POST', url: '/ath/revoke', headers: { cookie: 'user=alice' }, payload: { token: token.access_token } });
    expect(alice.statusCode).toBe(200);
    const call = await h.app.inject({
      method: 'GET',
      url: '/api/products',
      headers: { authorization: `Bearer ${token.access_token}`, 'x-ath-agent-id': reg.agent.agentId },
    });
    expectAthError(call, 401, 'TOKEN_REVOKED');
  });
});

describe('K. errors', () => {
  it('C-202: unknown route under /ath → 404 NOT_FOUND (any method, any body)', async () => {
    expectAthError(await h.app.inject({ method: 'GET', url: '/ath/nope' }), 404, 'NOT_FOUND');
    expectAthError(await h.app.inject({ method: 'GET', url: '/ath' }), 404, 'NOT_FOUND');
    expectAthError(
      await h.app.inject({ method: 'POST', url: '/ath/nope', headers: { 'content-type': 'text/plain' }, payload: 'x' }),
      404,
      'NOT_FOUND',
    );
    expectAthError(await h.app.inject({ method: 'POST', url: '/ath/proxy/com.example.shop/api/products' }), 404, 'NOT_FOUND');
  });

  it('the user\'s routes outside /ath keep fastify\'s own 404', async () => {
    const res = await h.app.inject({ method: 'GET', url: '/nope' });
    expect(res.statusCode).toBe(404);
    expect(res.json()).toMatchObject({ error: 'Not Found', statusCode: 404 });
  });

  it('C-204: an unexpected failure → 500 INTERNAL_ERROR with a generic message', async () => {
    const original = h.store.getAgent.bind(h.store);
    h.store.getAgent = () => Promise.reject(new Error('SELECT * FROM secret_table failed'));
    try {
      const res = await h.app.inject({
        method: 'POST',
        url: '/ath/authorize',
        payload: { client_id: reg.clientId, agent_attestation: 'x', provider_id: APP_ID, scopes: ['products:read'], state: 's'.repeat(22) },
      });
      const body = expectAthError(res, 500, 'INTERNAL_ERROR');
      expect(JSON.stringify(body)).not.toContain('secret_table');
    } finally {
      h.store.getAgent = original;
    }
  });
});
