import { createHash } from 'node:crypto';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AthError, MemoryStore, Vault, type Store } from '@athkit/core';
import { createSqliteStore } from '@athkit/storage';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { OAuthBridge, type UpstreamTokenSet } from '../src/oauth-bridge.js';
import { Secret } from '../src/secret.js';
import { followToCallback } from './support/authorization-server.js';
import { CALLBACK, GW, Harness } from './support/flow.js';

async function caught(p: Promise<unknown>): Promise<AthError> {
  const err = await p.then(
    () => null,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(AthError);
  return err as AthError;
}

/** Nothing the AS issued and not the client secret in an error's message, wire body or details. */
function expectClean(h: Harness, err: AthError): void {
  const text = `${err.message} ${JSON.stringify(err.toJSON())} ${JSON.stringify(err.details ?? {})}`;
  expect(text).not.toContain(h.as.clientSecret);
  for (const t of h.as.issuedTokens) expect(text).not.toContain(t);
  expect(text).not.toContain(h.as.issuer);
}

async function tokenSet(h: Harness, grantId: string): Promise<UpstreamTokenSet> {
  const g = await h.store.getGrant(grantId);
  return h.vault.open<UpstreamTokenSet>(grantId, g!.ciphertext);
}

async function grantIdOf(h: Harness, sessionId: string): Promise<string> {
  const s = await h.store.getSession(sessionId);
  return s!.grantId!;
}

describe('authorization and code exchange against a real AS (oidc-provider)', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await Harness.start();
  });
  afterAll(async () => {
    await h.close();
  });

  it('C-088 / C-213 / D1: the upstream authorization request carries PKCE S256 and the engine query', async () => {
    const before = h.as.authorizationRequests.length;
    const { authorizationUrl, launch } = await h.flow(['mail:read']);
    const url = new URL(authorizationUrl);
    expect(url.origin + url.pathname).toBe(`${h.as.issuer}/auth`);
    const q = h.as.authorizationRequests[before]!;
    expect(q.get('response_type')).toBe('code');
    expect(q.get('client_id')).toBe(h.as.clientId);
    expect(q.get('redirect_uri')).toBe(CALLBACK);
    expect(q.get('scope')).toBe('mail:read');
    expect(q.get('code_challenge_method')).toBe('S256');
    expect(q.get('code_challenge')).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(q.get('code_challenge')).toBe(launch.upstreamQuery.get('code_challenge'));
    expect(q.get('state')).toBe(launch.upstreamQuery.get('state'));
    expect(authorizationUrl).not.toContain(h.as.clientSecret); // C-214
    expect(authorizationUrl).not.toContain(launch.session.codeVerifier); // C-083
  });

  it('C-100 / C-101 / C-083: form-encoded exchange with client auth, redirect_uri and a verifier that hashes to the challenge', async () => {
    const before = h.as.tokenRequests.length;
    const { launch, result, sessionId } = await h.flow(['mail:read', 'mail:send']);
    const rec = h.as.tokenRequests[before]!;
    expect(h.as.tokenRequests).toHaveLength(before + 1);
    expect(rec.status).toBe(200);
    expect(rec.contentType).toMatch(/^application\/x-www-form-urlencoded/);
    expect(rec.grantType).toBe('authorization_code');
    expect(rec.params['redirect_uri']).toBe(CALLBACK);
    expect(rec.params['code']).toBeTruthy();
    const verifier = rec.params['code_verifier']!;
    expect(verifier).toMatch(/^[A-Za-z0-9\-._~]{43,128}$/);
    expect(createHash('sha256').update(verifier).digest('base64url')).toBe(launch.upstreamQuery.get('code_challenge'));
    // client_secret_basic (RFC 6749 §2.3.1: form-urlencoded id and secret)
    expect(rec.authorization).toMatch(/^Basic /);
    const [id, secret] = Buffer.from(rec.authorization.slice(6), 'base64').toString().split(':').map(decodeURIComponent);
    expect([id, secret]).toEqual([h.as.clientId, h.as.clientSecret]);

    expect(result).toMatchObject({ kind: 'page', outcome: 'granted' });
    const session = await h.store.getSession(sessionId);
    expect(session!.status).toBe('consented');
    expect(session!.consentedScopes).toEqual(['mail:read', 'mail:send']);
    // Provider tokens never leave the server: not in the callback result, only sealed in the store.
    const issued = h.as.issuedTokens.slice(-2);
    const grant = await h.store.getGrant(session!.grantId!);
    for (const t of issued) {
      expect(JSON.stringify(result)).not.toContain(t);
      expect(JSON.stringify(grant)).not.toContain(t);
    }
    const set = await tokenSet(h, session!.grantId!);
    expect(issued).toContain(set.access_token);
    expect(issued).toContain(set.refresh_token);
    expect(set.scope).toBe('mail:read mail:send');
  });

  it('AMB-10: a user who consents to fewer scopes → consentedScopes from the token response', async () => {
    const { sessionId } = await h.flow(['mail:read', 'mail:send'], { kind: 'approve', accountId: 'user-1', grantScopes: ['mail:read'] });
    expect((await h.store.getSession(sessionId))!.consentedScopes).toEqual(['mail:read']);
  });

  it('AMB-19: the user id is the OIDC sub when an ID token is issued, otherwise the stable grant id', async () => {
    const oidc = await h.flow(['openid', 'mail:read'], { kind: 'approve', accountId: 'alice' });
    const s1 = await h.store.getSession(oidc.sessionId);
    expect(s1!.userId).toBe('alice');
    expect((await h.store.getGrant(s1!.grantId!))!.userId).toBe('alice');

    const plain = await h.flow(['mail:read'], { kind: 'approve', accountId: 'alice' });
    const s2 = await h.store.getSession(plain.sessionId);
    expect(s2!.userId).toBe(s2!.grantId);
    expect(s2!.userId).toMatch(/^ath_grant_[A-Za-z0-9_-]{43}$/);
  });

  it('C-164: two users get two grants with their own upstream tokens', async () => {
    const a = await h.flow(['openid', 'mail:read'], { kind: 'approve', accountId: 'u1' });
    const b = await h.flow(['openid', 'mail:read'], { kind: 'approve', accountId: 'u2' });
    const ga = await grantIdOf(h, a.sessionId);
    const gb = await grantIdOf(h, b.sessionId);
    expect(ga).not.toBe(gb);
    expect((await h.store.getGrant(ga))!.userId).toBe('u1');
    expect((await h.store.getGrant(gb))!.userId).toBe('u2');
    expect(await h.bridge.getUpstreamAccessToken(ga)).not.toBe(await h.bridge.getUpstreamAccessToken(gb));
  });

  it('D7: denied consent → outcome denied, session denied, no token request, no grant', async () => {
    const before = h.as.tokenRequests.length;
    const { result, sessionId, callbackUrl } = await h.flow(['mail:read'], { kind: 'deny' });
    expect(callbackUrl.searchParams.get('error')).toBe('access_denied');
    expect(result).toMatchObject({ kind: 'page', outcome: 'denied' });
    const session = await h.store.getSession(sessionId);
    expect(session!.status).toBe('denied');
    expect(session!.grantId).toBeNull();
    expect(h.as.tokenRequests).toHaveLength(before);
  });

  it('C-106: replaying the callback → STATE_MISMATCH, and the AS sees no second exchange', async () => {
    const { callbackUrl, launch } = await h.flow(['mail:read']);
    const before = h.as.tokenRequests.length;
    const err = await caught(h.bridge.handleCallback(h.engine, callbackUrl.searchParams, { [launch.cookieName]: launch.setBinding! }));
    expect(err.code).toBe('STATE_MISMATCH');
    expect(h.as.tokenRequests).toHaveLength(before);
  });

  it('D4: an injected code (from another authorization) fails PKCE at the AS → 502 OAUTH_ERROR, session failed', async () => {
    const victim = await h.start(['mail:read']);
    h.as.decision = { kind: 'approve', accountId: 'user-1' };
    const victimCb = await followToCallback(victim.authorizationUrl, CALLBACK);
    const attacker = await h.start(['mail:read']);
    const attackerCb = await followToCallback(attacker.authorizationUrl, CALLBACK);
    const injected = new URLSearchParams(victimCb.searchParams);
    injected.set('code', attackerCb.searchParams.get('code')!);
    const before = h.as.tokenRequests.length;

    const err = await caught(h.bridge.handleCallback(h.engine, injected, { [victim.launch.cookieName]: victim.launch.setBinding! }));
    expect(err.code).toBe('OAUTH_ERROR');
    expect(err.status).toBe(502);
    expectClean(h, err);
    expect(h.as.tokenRequests).toHaveLength(before + 1);
    expect(h.as.tokenRequests[before]!.status).toBe(400); // invalid_grant at the AS
    const session = await h.store.getSession(victim.sessionId);
    expect(session!.status).toBe('failed');
    expect(session!.grantId).toBeNull();
  });

  it('D5 / RFC 9207: a response with another issuer, or without iss, is refused before any exchange', async () => {
    const { launch, authorizationUrl, sessionId } = await h.start(['mail:read']);
    h.as.decision = { kind: 'approve', accountId: 'user-1' };
    const cb = await followToCallback(authorizationUrl, CALLBACK);
    expect(cb.searchParams.get('iss')).toBe(h.as.issuer);
    const before = h.as.tokenRequests.length;
    const cookies = { [launch.cookieName]: launch.setBinding! };

    const wrongIss = new URLSearchParams(cb.searchParams);
    wrongIss.set('iss', 'http://127.0.0.1:1/other-as');
    expect((await caught(h.bridge.handleCallback(h.engine, wrongIss, cookies))).code).toBe('STATE_MISMATCH');
    const noIss = new URLSearchParams(cb.searchParams);
    noIss.delete('iss');
    expect((await caught(h.bridge.handleCallback(h.engine, noIss, cookies))).code).toBe('STATE_MISMATCH');
    expect(h.as.tokenRequests).toHaveLength(before);

    // The session was not burnt by the forged responses: the genuine one still completes.
    const ok = await h.bridge.handleCallback(h.engine, cb.searchParams, cookies);
    expect(ok.outcome).toBe('granted');
    expect((await h.store.getSession(sessionId))!.status).toBe('consented');
  });

  it('D9 / C-086: a resource indicator reaches the authorization and token requests', async () => {
    const beforeAuth = h.as.authorizationRequests.length;
    const beforeTok = h.as.tokenRequests.length;
    const { sessionId } = await h.flow(['mail:read'], undefined, { resource: h.as.resource });
    expect(h.as.authorizationRequests[beforeAuth]!.get('resource')).toBe(h.as.resource);
    expect(h.as.tokenRequests[beforeTok]!.params['resource']).toBe(h.as.resource);
    expect((await tokenSet(h, await grantIdOf(h, sessionId))).resource).toBe(h.as.resource);
  });

  it('the provider-level resource is used when the agent named none', async () => {
    const bridge = h.newBridge({ providers: [{ ...h.provider, oauth: { ...h.provider.oauth, resource: h.as.resource } }] });
    const { launch } = await h.start(['mail:read']);
    const url = new URL(await bridge.authorizationUrl(launch));
    expect(url.searchParams.get('resource')).toBe(h.as.resource);
  });

  it('the callback without the browser cookie never reaches the AS (C-104)', async () => {
    const { authorizationUrl } = await h.start(['mail:read']);
    h.as.decision = { kind: 'approve', accountId: 'user-1' };
    const cb = await followToCallback(authorizationUrl, CALLBACK);
    const before = h.as.tokenRequests.length;
    expect((await caught(h.bridge.handleCallback(h.engine, cb.searchParams, {}))).code).toBe('STATE_MISMATCH');
    expect(h.as.tokenRequests).toHaveLength(before);
  });
});

describe('client_secret_post', () => {
  it('authenticates in the form body, not with Basic', async () => {
    const h = await Harness.start({ clientAuthMethod: 'client_secret_post' });
    try {
      const { result } = await h.flow(['mail:read']);
      expect(result.outcome).toBe('granted');
      const rec = h.as.tokenRequests.at(-1)!;
      expect(rec.status).toBe(200);
      expect(rec.authorization).toBe('');
      expect(rec.contentType).toMatch(/^application\/x-www-form-urlencoded/);
    } finally {
      await h.close();
    }
  });
});

describe('refresh with single flight (threats F14)', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await Harness.start({ accessTokenTtl: 60 });
  });
  afterAll(async () => {
    await h.close();
  });

  async function expiredGrant(): Promise<{ grantId: string; first: string }> {
    const { sessionId } = await h.flow(['openid', 'mail:read'], { kind: 'approve', accountId: 'carol' });
    const grantId = await grantIdOf(h, sessionId);
    const first = await h.bridge.getUpstreamAccessToken(grantId);
    h.clock.advance(61_000);
    return { grantId, first };
  }

  it('a fresh token is returned without any AS request', async () => {
    const { sessionId } = await h.flow(['mail:read']);
    const grantId = await grantIdOf(h, sessionId);
    const before = h.as.tokenRequests.length;
    const set = await tokenSet(h, grantId);
    expect(await h.bridge.getUpstreamAccessToken(grantId)).toBe(set.access_token);
    h.clock.advance(20_000); // still outside the 30 s refresh skew
    expect(await h.bridge.getUpstreamAccessToken(grantId)).toBe(set.access_token);
    expect(h.as.tokenRequests).toHaveLength(before);
  });

  it('an expired token is refreshed once (form-encoded, rotating refresh token) and the grant keeps its user', async () => {
    const { grantId, first } = await expiredGrant();
    const before = h.as.refreshRequests().length;
    const oldSet = await tokenSet(h, grantId);
    const next = await h.bridge.getUpstreamAccessToken(grantId);
    expect(next).not.toBe(first);
    const refreshes = h.as.refreshRequests().slice(before);
    expect(refreshes).toHaveLength(1);
    expect(refreshes[0]!.status).toBe(200);
    expect(refreshes[0]!.contentType).toMatch(/^application\/x-www-form-urlencoded/);
    expect(refreshes[0]!.params['refresh_token']).toBe(oldSet.refresh_token);
    const newSet = await tokenSet(h, grantId);
    expect(newSet.access_token).toBe(next);
    expect(newSet.refresh_token).not.toBe(oldSet.refresh_token); // rotated and stored
    expect(newSet.sub).toBe('carol');
    const grant = await h.store.getGrant(grantId);
    expect(grant!.userId).toBe('carol');
    expect(grant!.leaseUntil).toBeNull();
    // and it is fresh again
    expect(await h.bridge.getUpstreamAccessToken(grantId)).toBe(next);
    expect(h.as.refreshRequests().length - before).toBe(1);
  });

  it('20 concurrent callers on an expired grant → exactly 1 refresh at the AS; all get the new token', async () => {
    const { grantId, first } = await expiredGrant();
    const before = h.as.refreshRequests().length;
    const tokens = await Promise.all(Array.from({ length: 20 }, () => h.bridge.getUpstreamAccessToken(grantId)));
    expect(h.as.refreshRequests().length - before).toBe(1);
    expect(new Set(tokens).size).toBe(1);
    expect(tokens[0]).not.toBe(first);
  });

  it('two instances (two bridges on one store), 10 callers each → exactly 1 refresh', async () => {
    const { grantId, first } = await expiredGrant();
    const other = h.newBridge();
    const before = h.as.refreshRequests().length;
    const tokens = await Promise.all(
      Array.from({ length: 20 }, (_, i) => (i % 2 ? other : h.bridge).getUpstreamAccessToken(grantId)),
    );
    expect(h.as.refreshRequests().length - before).toBe(1);
    expect(new Set(tokens).size).toBe(1);
    expect(tokens[0]).not.toBe(first);
  });

  it('a token the upstream API rejected is refreshed even before its expiry', async () => {
    const { sessionId } = await h.flow(['mail:read']);
    const grantId = await grantIdOf(h, sessionId);
    const current = await h.bridge.getUpstreamAccessToken(grantId);
    const before = h.as.refreshRequests().length;
    const next = await h.bridge.getUpstreamAccessToken(grantId, { rejected: current });
    expect(next).not.toBe(current);
    expect(h.as.refreshRequests().length - before).toBe(1);
    // a stale "rejected" value does not refresh again
    expect(await h.bridge.getUpstreamAccessToken(grantId, { rejected: current })).toBe(next);
    expect(h.as.refreshRequests().length - before).toBe(1);
  });

  it('invalid_grant on refresh → 502 OAUTH_ERROR, the grant is marked broken, same user, nothing leaked', async () => {
    const { grantId } = await expiredGrant();
    // Someone uses the refresh token first (rotation makes ours invalid at the AS).
    const set = await tokenSet(h, grantId);
    const res = await fetch(`${h.as.issuer}/token`, {
      method: 'POST',
      headers: {
        'content-type': 'application/x-www-form-urlencoded',
        authorization: 'Basic ' + Buffer.from(`${h.as.clientId}:${h.as.clientSecret}`).toString('base64'),
      },
      body: new URLSearchParams({ grant_type: 'refresh_token', refresh_token: set.refresh_token! }),
    });
    expect(res.status).toBe(200);
    await res.arrayBuffer();
    const before = h.as.refreshRequests().length;

    const err = await caught(h.bridge.getUpstreamAccessToken(grantId));
    expect(err.code).toBe('OAUTH_ERROR');
    expect(err.status).toBe(502);
    expect(err.details).toEqual({ reason: 'refresh_failed' });
    expectClean(h, err);
    expect(h.as.refreshRequests().length - before).toBe(1);
    expect(h.as.refreshRequests().at(-1)!.status).toBe(400);

    const grant = await h.store.getGrant(grantId);
    expect(grant!.userId).toBe('carol');
    expect(grant!.leaseUntil).toBeNull();
    expect((await tokenSet(h, grantId)).broken).toBe(true);
    // later calls fail fast, without another AS request
    const again = await caught(h.bridge.getUpstreamAccessToken(grantId));
    expect(again.details).toEqual({ reason: 'grant_broken' });
    expect(h.as.refreshRequests().length - before).toBe(1);
  });

  it('a lease held by another (stuck) instance is respected, then taken over once it expires', async () => {
    const { grantId } = await expiredGrant();
    const g = await h.store.getGrant(grantId);
    await h.store.updateGrant(grantId, g!.version, { leaseUntil: h.clock.now() + 10_000, updatedAt: h.clock.now() });
    const impatient = h.newBridge({ leaseMs: 200, leasePollMs: 10 });
    const before = h.as.refreshRequests().length;
    const err = await caught(impatient.getUpstreamAccessToken(grantId));
    expect(err.details).toEqual({ reason: 'refresh_busy' });
    expect(h.as.refreshRequests().length - before).toBe(0);
    h.clock.advance(10_001);
    await impatient.getUpstreamAccessToken(grantId);
    expect(h.as.refreshRequests().length - before).toBe(1);
  });

  it('an unknown grant → 502 OAUTH_ERROR', async () => {
    expect((await caught(h.bridge.getUpstreamAccessToken('ath_grant_nope'))).details).toEqual({ reason: 'grant_missing' });
  });
});

describe('two instances on one SQLite file (threats 3.0 "two instances")', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'ath-gw-bridge-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('exactly one refresh across two stores sharing the database', async () => {
    const file = join(dir, 'gw.db');
    const h = await Harness.start({}, {}, await createSqliteStore({ filename: file }));
    const store2: Store = await createSqliteStore({ filename: file });
    try {
      const { sessionId } = await h.flow(['mail:read']);
      const grantId = await grantIdOf(h, sessionId);
      const first = await h.bridge.getUpstreamAccessToken(grantId);
      h.clock.advance(61_000);
      const other = h.newBridge({ store: store2 });
      const before = h.as.refreshRequests().length;
      const tokens = await Promise.all(
        Array.from({ length: 20 }, (_, i) => (i % 2 ? other : h.bridge).getUpstreamAccessToken(grantId)),
      );
      expect(h.as.refreshRequests().length - before).toBe(1);
      expect(new Set(tokens).size).toBe(1);
      expect(tokens[0]).not.toBe(first);
    } finally {
      await store2.close();
      await h.close();
    }
  });
});

describe('unreachable or unsuitable authorization servers', () => {
  const servers: { close(cb: () => void): void }[] = [];
  afterEach(async () => {
    await Promise.all(servers.splice(0).map((s) => new Promise<void>((resolve) => s.close(() => resolve()))));
  });

  const provider = (issuer: string) => ({
    provider_id: 'mail',
    oauth: {
      issuer,
      client_id: 'gw',
      client_secret: new Secret('very-secret-client-secret'),
      token_endpoint_auth_method: 'client_secret_basic' as const,
    },
  });
  const launchFor = () => ({
    session: { providerId: 'mail', resource: null } as never,
    upstreamQuery: new URLSearchParams({
      response_type: 'code',
      redirect_uri: `${GW}/ath/callback`,
      code_challenge: 'x'.repeat(43),
      code_challenge_method: 'S256',
    }),
  });

  it('discovery failure → 502 OAUTH_ERROR without the issuer URL or secret', async () => {
    const srv = createServer((_req, res) => res.writeHead(500).end());
    await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve));
    const port = (srv.address() as AddressInfo).port;
    await new Promise<void>((resolve) => srv.close(() => resolve())); // now refused
    const bridge = new OAuthBridge({
      store: new MemoryStore(),
      vault: await Vault.create(Buffer.alloc(32)),
      baseUrl: GW,
      providers: [provider(`http://127.0.0.1:${port}`)],
      timeoutMs: 2000,
    });
    const err = await caught(bridge.authorizationUrl(launchFor()));
    expect(err.code).toBe('OAUTH_ERROR');
    expect(err.details).toEqual({ reason: 'discovery_failed' });
    expect(JSON.stringify(err.toJSON())).not.toContain('very-secret');
    expect(err.message).not.toContain(String(port));
  });

  it('threats D1: a provider whose metadata lacks PKCE S256 is refused', async () => {
    let issuer = '';
    const srv = createServer((_req, res) => {
      res.setHeader('content-type', 'application/json').end(
        JSON.stringify({
          issuer,
          authorization_endpoint: `${issuer}/auth`,
          token_endpoint: `${issuer}/token`,
          code_challenge_methods_supported: ['plain'],
        }),
      );
    });
    servers.push(srv);
    await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve));
    issuer = `http://127.0.0.1:${(srv.address() as AddressInfo).port}`;
    const bridge = new OAuthBridge({
      store: new MemoryStore(),
      vault: await Vault.create(Buffer.alloc(32)),
      baseUrl: GW,
      providers: [provider(issuer)],
    });
    const err = await caught(bridge.authorizationUrl(launchFor()));
    expect(err.details).toEqual({ reason: 'pkce_unsupported' });
  });

  it('an authorization request without S256 is never built (C-213)', async () => {
    const h = await Harness.start();
    try {
      const { launch } = await h.start(['mail:read']);
      const q = new URLSearchParams(launch.upstreamQuery);
      q.set('code_challenge_method', 'plain');
      expect((await caught(h.bridge.authorizationUrl({ ...launch, upstreamQuery: q }))).code).toBe('INTERNAL_ERROR');
      q.delete('code_challenge_method');
      expect((await caught(h.bridge.authorizationUrl({ ...launch, upstreamQuery: q }))).code).toBe('INTERNAL_ERROR');
    } finally {
      await h.close();
    }
  });

  it('the AS going down between authorization and callback → 502 OAUTH_ERROR, session failed', async () => {
    const h = await Harness.start();
    try {
      const { launch, authorizationUrl, sessionId } = await h.start(['mail:read']);
      h.as.decision = { kind: 'approve', accountId: 'user-1' };
      const cb = await followToCallback(authorizationUrl, CALLBACK);
      await h.as.close();
      const err = await caught(h.bridge.handleCallback(h.engine, cb.searchParams, { [launch.cookieName]: launch.setBinding! }));
      expect(err.code).toBe('OAUTH_ERROR');
      expectClean(h, err);
      expect((await h.store.getSession(sessionId))!.status).toBe('failed');
    } finally {
      await h.close();
    }
  });
});
