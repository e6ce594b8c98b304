/**
 * The assembled gateway over HTTP, end to end with a real oidc-provider upstream: discovery, the
 * interstitial (threats D10), the upstream hop (PKCE S256, state, redirect_uri, resource), the
 * callback (state + cookie, code exchange, iss), token, proxy and revoke — and the failure cases of
 * threats D2–D5, D7, E2 and checklist C-100…C-111.
 */
import { createHmac } from 'node:crypto';
import { ManualClock } from '@athkit/core';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { Browser, Stack } from './support/stack.js';

describe('gateway handshake over HTTP', () => {
  let s: Stack;
  let clock: ManualClock;
  let failTokenEndpoint = false;
  beforeAll(async () => {
    clock = new ManualClock();
    s = await Stack.start({
      gateway: {
        clock,
        fetch: (input, init) => {
          const url = input instanceof Request ? input.url : String(input);
          if (failTokenEndpoint && url.endsWith('/token')) {
            return Promise.resolve(new Response('{"error":"server_error"}', { status: 500, headers: { 'content-type': 'application/json' } }));
          }
          return fetch(input, init);
        },
      },
    });
    await s.register();
  });
  afterAll(() => s.close());
  afterEach(() => {
    s.as.decision = { kind: 'approve', accountId: 'user-1' };
    failTokenEndpoint = false;
    clock.set(Date.now());
  });

  it('publishes the catalog at /.well-known/ath.json without secrets (C-001…C-008)', async () => {
    const res = await fetch(`${s.url}/.well-known/ath.json`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^application\/json/);
    expect(res.headers.get('strict-transport-security')).toMatch(/max-age=15552000/);
    const text = await res.text();
    expect(text).not.toContain(s.as.clientSecret);
    const doc = JSON.parse(text);
    expect(doc).toMatchObject({
      ath_version: '0.1',
      agent_registration_endpoint: `${s.url}/ath/agents/register`,
      supported_providers: [{ provider_id: 'mail', display_name: 'Example Mail', auth_mode: 'OAUTH2', agent_approval_required: true }],
    });
  });

  it('runs the full flow: interstitial → upstream with PKCE/state/resource → callback → token → proxy', async () => {
    const browser = new Browser();
    const auth = await s.authorize(s.agent, ['mail:read', 'mail:send']);
    expect(auth.status).toBe(200);
    const launchUrl = new URL(auth.body.authorization_url);
    expect(launchUrl.origin + launchUrl.pathname).toBe(`${s.url}/ath/authorize/start`);
    expect(launchUrl.searchParams.get('code_challenge_method')).toBe('S256');

    // The interstitial: agent-aware, values claimed, scopes marked, the binding cookie set; no redirect yet (D10).
    const page = await browser.request(auth.body.authorization_url);
    expect(page.status).toBe(200);
    expect(page.headers.get('content-type')).toMatch(/^text\/html/);
    expect(page.text).toContain('Mail helper');
    expect(page.text).toContain('Dev Co');
    expect(page.text).toContain('Summarise my inbox');
    expect(page.text).toContain('claimed by the agent');
    expect(page.text).toMatch(/mail:read<\/code>\s*<span class="ok">approved by the gateway/);
    expect(page.headers.get('content-security-policy')).toContain(`form-action 'self' ${s.as.issuer}`);
    const cookie = page.headers.getSetCookie()[0]!;
    expect(cookie).toMatch(/^ath_bind_[A-Za-z0-9_-]{12}=/);
    expect(cookie).toMatch(/HttpOnly/);
    expect(cookie).toMatch(/SameSite=Lax/);
    expect(s.as.authorizationRequests).toHaveLength(0);
    // secrets.cookieKey keys the binding digest the session keeps (a store writer cannot plant one).
    const bindingValue = /^[^=]+=([^;]*)/.exec(cookie)![1]!;
    const cookieKey = Buffer.from(s.config.secrets.cookieKey.reveal(), 'base64url');
    expect((await s.gw.store.getSession(auth.body.ath_session_id))!.bindingHash).toBe(
      createHmac('sha256', cookieKey).update(bindingValue).digest('base64url'),
    );

    const state = /name="state" value="([^"]+)"/.exec(page.text)![1]!;
    const cont = await browser.request(`${s.url}/ath/authorize/continue`, {
      method: 'POST',
      form: new URLSearchParams({ state, decision: 'approve' }),
      origin: s.url,
    });
    expect(cont.status).toBe(303);
    const upstream = new URL(cont.location!);
    expect(upstream.origin).toBe(s.as.issuer);
    expect(upstream.searchParams.get('response_type')).toBe('code');
    expect(upstream.searchParams.get('client_id')).toBe(s.as.clientId);
    expect(upstream.searchParams.get('redirect_uri')).toBe(`${s.url}/ath/callback`);
    expect(upstream.searchParams.get('code_challenge_method')).toBe('S256');
    expect(upstream.searchParams.get('code_challenge')).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(upstream.searchParams.get('resource')).toBe(s.as.resource);
    expect(upstream.searchParams.get('state')).not.toBe('agent-state-' + 'x'.repeat(32));
    expect(upstream.toString()).not.toContain(s.as.clientSecret);

    const done = await browser.follow(cont.location!);
    expect(done.status).toBe(200);
    expect(done.text).toContain('Access granted');
    const exchange = s.as.tokenRequests.at(-1)!;
    expect(exchange.grantType).toBe('authorization_code');
    expect(exchange.contentType).toMatch(/^application\/x-www-form-urlencoded/);
    expect(exchange.params['redirect_uri']).toBe(`${s.url}/ath/callback`);
    expect(exchange.params['code_verifier']).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(exchange.params['resource']).toBe(s.as.resource);

    const tok = await s.token(s.agent, auth.body.ath_session_id);
    expect(tok.status).toBe(200);
    expect(tok.headers.get('cache-control')).toBe('no-store');
    expect(tok.body.scope_intersection).toEqual({
      agent_approved: ['openid', 'mail:read', 'mail:send'],
      user_consented: ['mail:read', 'mail:send'],
      effective: ['mail:read', 'mail:send'],
    });
    // Nothing upstream leaks to the agent or the browser (C-109, C-141, C-214).
    const everything = JSON.stringify(tok.body) + JSON.stringify(browser.seen);
    for (const secret of [s.as.clientSecret, ...s.as.issuedTokens, exchange.params['code_verifier']!]) expect(everything).not.toContain(secret);

    const before = s.upstream.hits;
    const res = await s.proxy('/v1/messages?folder=inbox&x=%20y', tok.body.access_token);
    expect(res.status).toBe(200);
    expect(res.headers.get('x-upstream')).toBe('yes');
    const rec = (await res.json()) as { rawPath: string; headers: Record<string, string> };
    expect(rec.rawPath).toBe('/api/v1/messages?folder=inbox&x=%20y');
    expect(s.as.issuedTokens).toContain(rec.headers['authorization']!.replace(/^Bearer /, ''));
    expect(rec.headers['x-ath-agent-id']).toBeUndefined();
    expect(s.upstream.hits).toBe(before + 1);

    // Revoke → the very next call is refused (C-180).
    const rev = await s.post('/ath/revoke', { client_id: s.agent.clientId, client_secret: s.agent.clientSecret, token: tok.body.access_token });
    expect(rev.status).toBe(200);
    const after = await s.proxy('/v1/messages', tok.body.access_token);
    expect(after.status).toBe(401);
    expect(((await after.json()) as { code: string }).code).toBe('TOKEN_REVOKED');
  });

  it('partial consent: user_consented ⊂ requested, the rest is refused at the proxy (C-110, C-157)', async () => {
    s.as.decision = { kind: 'approve', accountId: 'user-2', grantScopes: ['mail:read'] };
    const { body, token } = await s.fullFlow(['mail:read', 'mail:send']);
    expect(body.scope_intersection.user_consented).toEqual(['mail:read']);
    expect(body.effective_scopes).toEqual(['mail:read']);
    const before = s.upstream.hits;
    const send = await s.proxy('/v1/messages/send', token, { method: 'POST', body: '{}', headers: { 'content-type': 'application/json' } });
    expect(send.status).toBe(403);
    expect(((await send.json()) as { code: string }).code).toBe('SCOPE_NOT_APPROVED');
    expect(s.upstream.hits).toBe(before);
  });

  it('denial at the provider: completion page, then 403 USER_DENIED (C-107, D7)', async () => {
    s.as.decision = { kind: 'deny' };
    const auth = await s.authorize(s.agent, ['mail:read']);
    const page = await new Browser().consent(auth.body.authorization_url, 'approve', s.url);
    expect(page.status).toBe(200);
    expect(page.text).toContain('Access denied');
    const tok = await s.token(s.agent, auth.body.ath_session_id);
    expect(tok.status).toBe(403);
    expect(tok.body.code).toBe('USER_DENIED');
  });

  it('cancel on the interstitial denies without contacting the provider', async () => {
    const auth = await s.authorize(s.agent, ['mail:read']);
    const n = s.as.authorizationRequests.length;
    const page = await new Browser().consent(auth.body.authorization_url, 'deny', s.url);
    expect(page.status).toBe(200);
    expect(page.text).toContain('Access denied');
    expect(s.as.authorizationRequests.length).toBe(n);
    expect((await s.token(s.agent, auth.body.ath_session_id)).body.code).toBe('USER_DENIED');
  });

  it('the interstitial form refuses another origin and a browser without the binding cookie', async () => {
    const auth = await s.authorize(s.agent, ['mail:read']);
    const b = new Browser();
    const page = await b.request(auth.body.authorization_url);
    const state = /name="state" value="([^"]+)"/.exec(page.text)![1]!;
    const evil = await b.request(`${s.url}/ath/authorize/continue`, {
      method: 'POST',
      form: new URLSearchParams({ state, decision: 'approve' }),
      origin: 'https://evil.test',
    });
    expect(evil.status).toBe(400);
    const other = await new Browser().request(`${s.url}/ath/authorize/continue`, {
      method: 'POST',
      form: new URLSearchParams({ state, decision: 'approve' }),
      origin: s.url,
    });
    expect(other.status).toBe(400);
    expect(JSON.parse(other.text).code).toBe('STATE_MISMATCH');
    // Opening the link in a second browser is refused too (D3).
    expect((await new Browser().request(auth.body.authorization_url)).status).toBe(400);
  });

  it('upstream token endpoint failure → 502 OAUTH_ERROR, then /ath/token → 502 (C-108)', async () => {
    const auth = await s.authorize(s.agent, ['mail:read']);
    const b = new Browser();
    const stopped = await b.consent(auth.body.authorization_url, 'approve', s.url, true);
    failTokenEndpoint = true;
    const cb = await b.request(stopped.stoppedAt!);
    expect(cb.status).toBe(502);
    expect(JSON.parse(cb.text).code).toBe('OAUTH_ERROR');
    failTokenEndpoint = false;
    const tok = await s.token(s.agent, auth.body.ath_session_id);
    expect(tok.status).toBe(502);
    expect(tok.body.code).toBe('OAUTH_ERROR');
  });

  it('session expiry: a callback after the session TTL → 400 SESSION_EXPIRED, nothing exchanged (C-105)', async () => {
    const auth = await s.authorize(s.agent, ['mail:read']);
    const b = new Browser();
    const stopped = await b.consent(auth.body.authorization_url, 'approve', s.url, true);
    const n = s.as.tokenRequests.length;
    clock.advance(600_001);
    const cb = await b.request(stopped.stoppedAt!);
    expect(cb.status).toBe(400);
    expect(JSON.parse(cb.text).code).toBe('SESSION_EXPIRED');
    expect(s.as.tokenRequests.length).toBe(n);
  });

  it('double callback: the replay gets 400 STATE_MISMATCH and the AS sees one exchange (C-106, D4)', async () => {
    const auth = await s.authorize(s.agent, ['mail:read']);
    const b = new Browser();
    const stopped = await b.consent(auth.body.authorization_url, 'approve', s.url, true);
    const cookies = new Map(b.jar.get(new URL(s.url).host));
    const n = s.as.tokenRequests.length;
    expect((await b.request(stopped.stoppedAt!)).status).toBe(200);
    b.jar.set(new URL(s.url).host, cookies); // even with the cookie replayed
    const again = await b.request(stopped.stoppedAt!);
    expect(again.status).toBe(400);
    expect(JSON.parse(again.text).code).toBe('STATE_MISMATCH');
    expect(s.as.tokenRequests.length).toBe(n + 1);
  });

  it('a callback from another browser is refused; the right browser still completes (C-104, D3)', async () => {
    const auth = await s.authorize(s.agent, ['mail:read']);
    const victim = new Browser();
    const stopped = await victim.consent(auth.body.authorization_url, 'approve', s.url, true);
    const n = s.as.tokenRequests.length;
    const attacker = new Browser();
    const stolen = await attacker.request(stopped.stoppedAt!);
    expect(stolen.status).toBe(400);
    expect(JSON.parse(stolen.text).code).toBe('STATE_MISMATCH');
    expect(stolen.location).toBeNull();
    // A cookie from another session does not help either.
    const other = await s.authorize(s.agent, ['mail:read']);
    await attacker.request(other.body.authorization_url);
    expect((await attacker.request(stopped.stoppedAt!)).status).toBe(400);
    expect(s.as.tokenRequests.length).toBe(n);
    expect((await s.token(s.agent, auth.body.ath_session_id)).body.code).toBe('SESSION_NOT_FOUND');
    expect((await victim.request(stopped.stoppedAt!)).status).toBe(200);
    expect((await s.token(s.agent, auth.body.ath_session_id)).status).toBe(200);
  });

  it('code injection: an attacker code on the victim callback fails PKCE at the AS → 502, no token (D4)', async () => {
    // The attacker's own code, for their own session.
    const mine = await s.authorize(s.agent, ['mail:read']);
    const attacker = new Browser();
    s.as.decision = { kind: 'approve', accountId: 'attacker' };
    const attackerCb = await attacker.consent(mine.body.authorization_url, 'approve', s.url, true);
    const attackerCode = new URL(attackerCb.stoppedAt!).searchParams.get('code')!;

    s.as.decision = { kind: 'approve', accountId: 'victim' };
    const victimAuth = await s.authorize(s.agent, ['mail:read']);
    const victim = new Browser();
    const victimCb = new URL((await victim.consent(victimAuth.body.authorization_url, 'approve', s.url, true)).stoppedAt!);
    victimCb.searchParams.set('code', attackerCode);
    const res = await victim.request(victimCb.toString());
    expect(res.status).toBe(502);
    expect(JSON.parse(res.text).code).toBe('OAUTH_ERROR');
    expect(s.as.tokenRequests.at(-1)!.status).toBe(400);
    expect((await s.token(s.agent, victimAuth.body.ath_session_id)).status).toBe(502);
  });

  it('a callback with a wrong iss is refused before any exchange (D5)', async () => {
    const auth = await s.authorize(s.agent, ['mail:read']);
    const b = new Browser();
    const cb = new URL((await b.consent(auth.body.authorization_url, 'approve', s.url, true)).stoppedAt!);
    cb.searchParams.set('iss', 'http://127.0.0.1:1');
    const n = s.as.tokenRequests.length;
    const res = await b.request(cb.toString());
    expect(res.status).toBe(400);
    expect(JSON.parse(res.text).code).toBe('STATE_MISMATCH');
    expect(s.as.tokenRequests.length).toBe(n);
  });

  it('callback without or with a random state → 400 STATE_MISMATCH, never a redirect (C-103, C-111)', async () => {
    for (const q of ['', '?state=nope&code=x']) {
      const res = await fetch(`${s.url}/ath/callback${q}`, { redirect: 'manual' });
      expect(res.status).toBe(400);
      expect(((await res.json()) as { code: string }).code).toBe('STATE_MISMATCH');
    }
  });

  it('no permissive CORS and HSTS everywhere (C-212, C-222)', async () => {
    for (const path of ['/ath/authorize', '/ath/token', '/ath/proxy/mail/v1/messages']) {
      const res = await fetch(s.url + path, { method: 'POST', headers: { origin: 'https://evil.test', 'content-type': 'application/json' }, body: '{}' });
      expect(res.headers.get('access-control-allow-origin')).toBeNull();
      expect(res.headers.get('strict-transport-security')).toMatch(/max-age=15552000/);
    }
  });

  it('logs never contain tokens, codes, secrets or cookies (C-221, F8)', async () => {
    const { token } = await s.fullFlow(['mail:read']);
    await s.proxy('/v1/messages', token);
    const logs = s.logLines.join('\n');
    expect(logs.length).toBeGreaterThan(0);
    for (const secret of [token, s.as.clientSecret, ...s.as.issuedTokens, s.agent.clientSecret]) expect(logs).not.toContain(secret);
    for (const r of s.as.tokenRequests) if (r.params['code']) expect(logs).not.toContain(r.params['code']);
  });
});
