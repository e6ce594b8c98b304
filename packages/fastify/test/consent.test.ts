import { createHmac } from 'node:crypto';
import Fastify from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { athFastify, type AthFastifyOptions } from '../src/index.js';
import {
  BASE,
  authorize,
  buildHarness,
  consent,
  exchange,
  expectAthError,
  launch,
  register,
  userCookie,
  type Harness,
  type Registered,
} from './support/harness.js';

let h: Harness;
let reg: Registered;
let redirecting: Registered;
beforeAll(async () => {
  h = await buildHarness();
  reg = await register(h, 'consent', undefined, { purpose: '<script>alert("purpose")</script>' });
  redirecting = await register(h, 'redirecting', ['products:read', 'cart:read'], { redirect_uris: ['https://agent.test/cb'] });
});
afterAll(() => h.close());

describe('consent launch page: GET /ath/authorize/start (C-089, AMB-03, AMB-41)', () => {
  it('C-089: binds the browser with an HttpOnly, Secure, SameSite=Lax __Host- cookie', async () => {
    const auth = await authorize(h, reg, ['products:read']);
    const { res } = await launch(h, auth.launchPath);
    const cookie = String(res.headers['set-cookie']);
    expect(cookie).toMatch(/^__Host-ath_bind_[A-Za-z0-9_-]+=[A-Za-z0-9_-]{20,};/);
    expect(cookie).toContain('HttpOnly');
    expect(cookie).toContain('Secure');
    expect(cookie).toContain('SameSite=Lax');
    expect(cookie).toContain('Path=/');
    expect(cookie).not.toContain('Domain');
  });

  it('renders an escaped page under a strict CSP, agent text labelled "claimed by the agent"', async () => {
    const auth = await authorize(h, reg, ['products:read', 'cart:write']);
    const { res } = await launch(h, auth.launchPath);
    expect(res.headers['content-type']).toMatch(/^text\/html/);
    const csp = String(res.headers['content-security-policy']);
    expect(csp).toContain("default-src 'none'");
    expect(csp).toMatch(/style-src 'nonce-[A-Za-z0-9+/=]+'/);
    expect(csp).toContain("form-action 'self'");
    expect(csp).toContain("frame-ancestors 'none'");
    expect(res.headers['cache-control']).toBe('no-store');
    expect(res.headers['x-frame-options']).toBe('DENY');
    expect(res.headers['referrer-policy']).toBe('no-referrer');
    expect(res.body).not.toContain('<script>');
    expect(res.body).toContain('&lt;script&gt;alert(&quot;purpose&quot;)&lt;/script&gt;');
    expect(res.body.match(/claimed by the agent/g)?.length).toBeGreaterThanOrEqual(3);
    expect(res.body).toContain('approved by the service for this agent');
    expect(res.body).toContain('name="scope" value="products:read" checked');
    expect(res.body).toContain('name="scope" value="cart:write" checked');
    expect(res.body).toContain('Signed in as <strong>alice</strong>');
    expect(res.body).not.toContain(reg.clientSecret);
  });

  it('a scope the service no longer approves for the agent is shown as such and cannot be ticked', async () => {
    const agent = await register(h, 'narrowed', ['products:read', 'cart:write']);
    const auth = await authorize(h, agent, ['products:read', 'cart:write']);
    await h.app.ath.admin.setApprovals(agent.clientId, [
      { provider_id: 'com.example.shop', approved_scopes: ['products:read'], denied_scopes: ['cart:write'] },
    ]);
    const { res } = await launch(h, auth.launchPath);
    expect(res.body).toContain('name="scope" value="cart:write" disabled');
    expect(res.body).toContain('not approved by the service for this agent');
  });

  it('not signed in → 302 to loginUrl with return_to = the launch URL; the browser is bound already', async () => {
    const auth = await authorize(h, reg, ['products:read']);
    const res = await h.app.inject({ method: 'GET', url: auth.launchPath });
    expect(res.statusCode).toBe(302);
    const location = new URL(String(res.headers.location), BASE);
    expect(location.pathname).toBe('/login');
    const returnTo = location.searchParams.get('return_to')!;
    expect(new URL(returnTo, BASE).searchParams.get('state')).toBe(auth.state);
    const binding = String(res.headers['set-cookie']).split(';')[0]!;
    // after login, the same browser comes back and sees the page (no new cookie)
    const back = await h.app.inject({ method: 'GET', url: returnTo, headers: { cookie: `${binding}; ${userCookie('alice')}` } });
    expect(back.statusCode).toBe(200);
    expect(back.headers['set-cookie']).toBeUndefined();
  });

  it('C-104: another browser (no or wrong cookie) → 400 STATE_MISMATCH', async () => {
    const auth = await authorize(h, reg, ['products:read']);
    await launch(h, auth.launchPath);
    const other = await h.app.inject({ method: 'GET', url: auth.launchPath, headers: { cookie: userCookie('mallory') } });
    expectAthError(other, 400, 'STATE_MISMATCH');
  });

  it('C-103: missing or random state → 400 STATE_MISMATCH, never a redirect', async () => {
    expectAthError(await h.app.inject({ method: 'GET', url: '/ath/authorize/start' }), 400, 'STATE_MISMATCH');
    expectAthError(await h.app.inject({ method: 'GET', url: '/ath/authorize/start?state=random' }), 400, 'STATE_MISMATCH');
  });
});

describe('consent decision: POST /ath/consent (AMB-02)', () => {
  it('C-102(b): no user_redirect_uri → 200 completion page; the user approved a subset', async () => {
    const auth = await authorize(h, reg, ['products:read', 'cart:write']);
    const { binding } = await launch(h, auth.launchPath);
    const res = await consent(h, auth.state, binding, 'approve', ['cart:write']);
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toMatch(/^text\/html/);
    expect(res.body).toContain('return to your agent');
    expect(String(res.headers['content-security-policy'])).toContain("default-src 'none'");
    expect(String(res.headers['set-cookie'])).toMatch(/Max-Age=0/);
    const token = await exchange(h, reg, auth.ath_session_id);
    expect(token.json().effective_scopes).toEqual(['cart:write']);
  });

  it('C-102(a): with user_redirect_uri → 303 to it with code and the agent state; the code is required at /ath/token (C-133)', async () => {
    const auth = await authorize(h, redirecting, ['products:read', 'cart:read'], { user_redirect_uri: 'https://agent.test/cb' });
    const { res: page, binding } = await launch(h, auth.launchPath);
    expect(String(page.headers['content-security-policy'])).toContain("form-action 'self' https://agent.test");
    const res = await consent(h, auth.state, binding, 'approve', ['products:read']);
    expect(res.statusCode).toBe(303);
    const location = new URL(String(res.headers.location));
    expect(location.origin + location.pathname).toBe('https://agent.test/cb');
    expect(location.searchParams.get('state')).toBe('agent-state-0123456789abcdef');
    const code = location.searchParams.get('code')!;
    expect(code.length).toBeGreaterThanOrEqual(22);
    expectAthError(await exchange(h, redirecting, auth.ath_session_id, 'wrong'), 400, 'SESSION_NOT_FOUND');
    const token = await exchange(h, redirecting, auth.ath_session_id, code);
    expect(token.statusCode).toBe(200);
    expect(token.json().effective_scopes).toEqual(['products:read']);
  });

  it('C-107: denial with user_redirect_uri → 303 with error=access_denied and state', async () => {
    const auth = await authorize(h, redirecting, ['products:read'], { user_redirect_uri: 'https://agent.test/cb' });
    const { binding } = await launch(h, auth.launchPath);
    const res = await consent(h, auth.state, binding, 'deny');
    expect(res.statusCode).toBe(303);
    const location = new URL(String(res.headers.location));
    expect(location.searchParams.get('error')).toBe('access_denied');
    expect(location.searchParams.get('state')).toBe('agent-state-0123456789abcdef');
    expectAthError(await exchange(h, redirecting, auth.ath_session_id), 403, 'USER_DENIED');
  });

  it('C-104/C-111: a form without the binding cookie → 400 STATE_MISMATCH, never a redirect; the session stays usable', async () => {
    const auth = await authorize(h, redirecting, ['products:read'], { user_redirect_uri: 'https://agent.test/cb' });
    const { binding } = await launch(h, auth.launchPath);
    const stolen = await consent(h, auth.state, 'other=1', 'approve', ['products:read']);
    expectAthError(stolen, 400, 'STATE_MISMATCH');
    expect(stolen.headers.location).toBeUndefined();
    expectAthError(await exchange(h, redirecting, auth.ath_session_id), 400, 'SESSION_NOT_FOUND');
    expect((await consent(h, auth.state, binding, 'approve', ['products:read'])).statusCode).toBe(303);
  });

  it('C-106: the decision can be posted once only → 400 STATE_MISMATCH', async () => {
    const auth = await authorize(h, reg, ['products:read']);
    const { binding } = await launch(h, auth.launchPath);
    expect((await consent(h, auth.state, binding, 'approve', ['products:read'])).statusCode).toBe(200);
    expectAthError(await consent(h, auth.state, binding, 'deny'), 400, 'STATE_MISMATCH');
  });

  it('C-105: a decision more than 10 minutes after authorize → 400 SESSION_EXPIRED', async () => {
    const auth = await authorize(h, reg, ['products:read']);
    const { binding } = await launch(h, auth.launchPath);
    h.clock.advance(601_000);
    try {
      expectAthError(await consent(h, auth.state, binding, 'approve', ['products:read']), 400, 'SESSION_EXPIRED');
    } finally {
      h.clock.advance(-601_000);
    }
  });

  it('CSRF: a cross-origin form post → 400 STATE_MISMATCH; a JSON body → 400; a bad decision → 400', async () => {
    const auth = await authorize(h, reg, ['products:read']);
    const { binding } = await launch(h, auth.launchPath);
    const form = new URLSearchParams({ state: auth.state, decision: 'approve', scope: 'products:read' }).toString();
    const cross = await h.app.inject({
      method: 'POST',
      url: '/ath/consent',
      headers: { 'content-type': 'application/x-www-form-urlencoded', origin: 'https://evil.test', cookie: `${binding}; user=alice` },
      payload: form,
    });
    expectAthError(cross, 400, 'STATE_MISMATCH');
    const json = await h.app.inject({
      method: 'POST',
      url: '/ath/consent',
      headers: { cookie: `${binding}; user=alice` },
      payload: { state: auth.state, decision: 'approve' },
    });
    expectAthError(json, 400, 'INVALID_REQUEST');
    expectAthError(await consent(h, auth.state, binding, 'maybe' as 'approve'), 400, 'INVALID_REQUEST');
    // nothing was decided: the page still works
    expect((await consent(h, auth.state, binding, 'approve', ['products:read'])).statusCode).toBe(200);
  });

  it('signed out before deciding → back to login, nothing decided', async () => {
    const auth = await authorize(h, reg, ['products:read']);
    const { binding } = await launch(h, auth.launchPath);
    const res = await h.app.inject({
      method: 'POST',
      url: '/ath/consent',
      headers: { 'content-type': 'application/x-www-form-urlencoded', cookie: binding },
      payload: new URLSearchParams({ state: auth.state, decision: 'approve', scope: 'products:read' }).toString(),
    });
    expect(res.statusCode).toBe(302);
    expect(String(res.headers.location)).toMatch(/^\/login\?return_to=/);
    expectAthError(await exchange(h, reg, auth.ath_session_id), 400, 'SESSION_NOT_FOUND');
  });
});

describe('GET /ath/callback in native mode', () => {
  it('C-103: no or unknown state → 400 STATE_MISMATCH', async () => {
    expectAthError(await h.app.inject({ method: 'GET', url: '/ath/callback' }), 400, 'STATE_MISMATCH');
    expectAthError(await h.app.inject({ method: 'GET', url: '/ath/callback?state=abc&code=x' }), 400, 'STATE_MISMATCH');
  });

  it('a valid bound state decides nothing: 303 back to the consent page; C-104 without the cookie → 400', async () => {
    const auth = await authorize(h, reg, ['products:read']);
    const { binding } = await launch(h, auth.launchPath);
    const url = `/ath/callback?state=${encodeURIComponent(auth.state)}&code=anything`;
    expectAthError(await h.app.inject({ method: 'GET', url }), 400, 'STATE_MISMATCH');
    const res = await h.app.inject({ method: 'GET', url, headers: { cookie: binding } });
    expect(res.statusCode).toBe(303);
    expect(String(res.headers.location)).toBe(`/ath/authorize/start?state=${encodeURIComponent(auth.state)}`);
    expectAthError(await exchange(h, reg, auth.ath_session_id), 400, 'SESSION_NOT_FOUND');
  });
});

describe('cookieSecure: false (plain-http development)', () => {
  it('names the cookie ath_bind_… without Secure, and the flow still works', async () => {
    const hh = await buildHarness({ cookieSecure: false });
    try {
      const r = await register(hh, 'insecure');
      const auth = await authorize(hh, r, ['products:read']);
      const { res, binding } = await launch(hh, auth.launchPath);
      const cookie = String(res.headers['set-cookie']);
      expect(cookie).toMatch(/^ath_bind_/);
      expect(cookie).not.toContain('Secure');
      expect((await consent(hh, auth.state, binding, 'approve', ['products:read'])).statusCode).toBe(200);
      expect((await exchange(hh, r, auth.ath_session_id)).statusCode).toBe(200);
    } finally {
      await hh.close();
    }
  });

  it('bindingKey: the session keeps HMAC-SHA256(key, cookie) and the flow works; a short key is refused when the plugin registers', async () => {
    const key = new Uint8Array(32).fill(3);
    const hh = await buildHarness({ bindingKey: key });
    try {
      const r = await register(hh, 'keyed');
      const auth = await authorize(hh, r, ['products:read']);
      const { binding } = await launch(hh, auth.launchPath);
      const value = binding.split('=')[1]!;
      expect((await hh.store.getSession(auth.ath_session_id))!.bindingHash).toBe(createHmac('sha256', key).update(value).digest('base64url'));
      expect((await consent(hh, auth.state, binding, 'approve', ['products:read'])).statusCode).toBe(200);
      expect((await exchange(hh, r, auth.ath_session_id)).statusCode).toBe(200);
    } finally {
      await hh.close();
    }
    const app = Fastify();
    await expect(app.register(athFastify, await minimumOptions({ bindingKey: new Uint8Array(16) })).ready()).rejects.toThrow(/bindingKey: must be a Uint8Array of at least 32 bytes/);
    await app.close();
  });

  it('loginUrl may be a function of the return-to path', async () => {
    const hh = await buildHarness({ loginUrl: (returnTo) => `https://sso.test/login?next=${encodeURIComponent(returnTo)}` });
    try {
      const r = await register(hh, 'fnlogin');
      const auth = await authorize(hh, r, ['products:read']);
      const res = await hh.app.inject({ method: 'GET', url: auth.launchPath });
      expect(res.statusCode).toBe(302);
      expect(String(res.headers.location)).toMatch(/^https:\/\/sso\.test\/login\?next=%2Fath%2Fauthorize%2Fstart%3F/);
    } finally {
      await hh.close();
    }
  });
});

it('the module can be registered in a bare app with the minimum options', async () => {
  const app = Fastify();
  await app.register(athFastify, await minimumOptions());
  await app.ready();
  expect((await app.inject({ method: 'GET', url: '/.well-known/ath-app.json' })).json().api_base).toBe('https://api.min.test/v1');
  await app.close();
});

/** The least a bare app must pass, plus `extra`. */
async function minimumOptions(extra: Partial<AthFastifyOptions> = {}): Promise<AthFastifyOptions> {
  const { MemoryStore } = await import('@athkit/core');
  return {
    baseUrl: 'https://min.test',
    service: { app_id: 'min', name: 'Min', api_base: 'https://api.min.test/v1' },
    scopes: ['a:read'],
    store: new MemoryStore(),
    authenticateUser: () => null,
    loginUrl: '/login',
    ...extra,
  };
}
