import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AgentRegistrationResponse } from '@athkit/schemas';
import { AthEngine } from '../../src/engine/index.js';
import { AthError, toAthError } from '../../src/errors.js';
import { MemoryStore } from '../../src/memory-store.js';
import { defaultApprovalPolicy } from '../../src/policy.js';
import type { ProviderConfig } from '../../src/providers.js';
import type { AuditRecord, Store } from '../../src/store.js';
import { BASE, PROVIDERS, createHarness, rejection, type Harness, type TestAgent } from '../support/engine-harness.js';
import { useNetworkGuard } from '@athkit/testkit';
import {
  access,
  authorizeBody,
  expectAthError,
  finishFlow,
  granted,
  issueToken,
  sha256b64url,
  startFlow,
  type RejectionLike,
} from './helpers.js';

/** The code↔status table of checklist C-201 and AMB-04, written out literally (not read from the code under test). */
const SPEC_STATUS: Record<string, number> = {
  INVALID_ATTESTATION: 401,
  AGENT_NOT_REGISTERED: 403,
  AGENT_UNAPPROVED: 403,
  PROVIDER_NOT_APPROVED: 403,
  SCOPE_NOT_APPROVED: 403,
  SESSION_NOT_FOUND: 400,
  SESSION_EXPIRED: 400,
  STATE_MISMATCH: 400,
  TOKEN_INVALID: 401,
  TOKEN_EXPIRED: 401,
  TOKEN_REVOKED: 401,
  AGENT_IDENTITY_MISMATCH: 403,
  PROVIDER_MISMATCH: 403,
  USER_DENIED: 403,
  OAUTH_ERROR: 502,
  INTERNAL_ERROR: 500,
  INVALID_REQUEST: 400,
  NOT_FOUND: 404,
  AGENT_ALREADY_REGISTERED: 409,
};

describe('errors (checklist K) over a battery of engine rejections', () => {
  useNetworkGuard();
  let h: Harness;
  let a1: TestAgent;
  let a2: TestAgent;
  let reg1: AgentRegistrationResponse;
  let reg2: AgentRegistrationResponse;
  const errors: { label: string; err: RejectionLike }[] = [];
  /** Every secret-ish value the battery handled; none may appear in an error body (C-203). */
  const secrets: string[] = [];

  beforeAll(async () => {
    h = await createHarness();
    a1 = await h.agent('k-a1');
    a2 = await h.agent('k-a2');
    reg1 = await h.register(a1, { redirect_uris: ['https://agent1.test/cb'] });
    reg2 = await h.register(a2);
    const tok = await issueToken(h, reg1, a1, { scopes: ['p:read'] });
    const flow = await startFlow(h, reg1, a1, { scopes: ['p:read'], user_redirect_uri: 'https://agent1.test/cb' });
    const session = (await h.store.getSession(flow.sessionId))!;
    const result = await finishFlow(h.engine, flow, granted(['p:read']));
    const code = result.kind === 'redirect' ? new URL(result.location).searchParams.get('code')! : '';
    const failing = await startFlow(h, reg2, a2);
    const denied = await startFlow(h, reg2, a2);
    await finishFlow(h.engine, denied, { kind: 'denied' });
    secrets.push(reg1.client_secret, reg2.client_secret, tok.access_token, code, session.codeVerifier, flow.state, flow.cookies[flow.cookieName]!);

    const e = async (label: string, fn: () => Promise<unknown>) => errors.push({ label, err: await rejection(fn) });
    await e('register: bad body', () => h.engine.register({ agent_id: 42 }));
    await e('register: duplicate', () => h.register(a1));
    await e('register: no attestation', () => h.engine.register({ agent_id: a1.agentId, developer: { name: 'x', id: 'y' }, requested_providers: [{ provider_id: 'p', scopes: ['p:read'] }] }));
    await e('status: wrong secret', () => h.engine.agentStatus(reg1.client_id, { kind: 'basic', clientId: reg1.client_id, clientSecret: reg2.client_secret }));
    await e('status: other client', () => h.engine.agentStatus(reg2.client_id, { kind: 'basic', clientId: reg1.client_id, clientSecret: reg1.client_secret }));
    await e('authorize: unknown client', async () => h.engine.authorize(await authorizeBody(reg1, a1, { client_id: 'nosuch' })));
    await e('authorize: provider', async () => h.engine.authorize(await authorizeBody(reg1, a1, { provider_id: 'p2', scopes: ['p2:read'] })));
    await e('authorize: scope', async () => h.engine.authorize(await authorizeBody(reg1, a1, { scopes: ['p:admin'] })));
    await e('authorize: redirect', async () => h.engine.authorize(await authorizeBody(reg1, a1, { user_redirect_uri: 'https://evil.test' })));
    await e('authorize: sub', async () => h.engine.authorize(await authorizeBody(reg1, a2)));
    await e('launch: other browser', () => h.engine.launch(flow.authorizationUrl.searchParams, {}));
    await e('callback: binding', () => h.engine.openCallback(failing.state, {}));
    await e('callback: replay', () => h.engine.openCallback(flow.state, flow.cookies));
    const failingSession = await h.engine.openCallback(failing.state, failing.cookies);
    await e('callback: upstream failure', () => h.engine.completeConsent(failingSession, { kind: 'failed', message: `upstream said ${reg1.client_secret}` }));
    await e('token: wrong secret', async () => h.engine.exchangeToken({ ...(await h.tokenBody(reg1, a1, flow.sessionId, code)), client_secret: reg2.client_secret }));
    await e('token: wrong code', async () => h.engine.exchangeToken(await h.tokenBody(reg1, a1, flow.sessionId, `${code}x`)));
    await e('token: foreign session', async () => h.engine.exchangeToken(await h.tokenBody(reg2, a2, flow.sessionId, code)));
    await e('token: audience', async () => h.engine.exchangeToken({ ...(await h.tokenBody(reg1, a1, flow.sessionId, code)), agent_attestation: await a1.att(BASE) }));
    await e('token: denied', async () => h.engine.exchangeToken(await h.tokenBody(reg2, a2, denied.sessionId)));
    await e('token: failed', async () => h.engine.exchangeToken(await h.tokenBody(reg2, a2, failing.sessionId)));
    await e('token: unknown session', async () => h.engine.exchangeToken(await h.tokenBody(reg1, a1, 'ath_sess_nosuch')));
    await e('access: invalid', () => access(h.engine, `${tok.access_token}x`, a1.agentId));
    await e('access: agent', () => access(h.engine, tok.access_token, a2.agentId));
    await e('access: provider', () => access(h.engine, tok.access_token, a1.agentId, { providerId: 'p2' }));
    await e('access: scope', () => access(h.engine, tok.access_token, a1.agentId, { requiredScope: 'p:write' }));
    await e('revoke: foreign', () => h.engine.revoke({ client_id: reg2.client_id, client_secret: reg2.client_secret, token: tok.access_token }));
    await e('revoke: no credentials', () => h.engine.revoke({ token: tok.access_token }));
    await e('admin: unknown client', () => h.engine.admin.suspend('nosuch'));
    await h.engine.revoke({ client_id: reg1.client_id, client_secret: reg1.client_secret, token: tok.access_token });
    await e('access: revoked', () => access(h.engine, tok.access_token, a1.agentId));
  });
  afterAll(() => h.close());

  it('C-200: every engine rejection is an AthError whose wire body validates SCH#ATHError', () => {
    expect(errors.length).toBeGreaterThanOrEqual(29);
    for (const { label, err } of errors) {
      expect(err, label).toBeInstanceOf(AthError);
      expectAthError(err, err.code);
      const wire = JSON.parse(JSON.stringify(err)) as Record<string, unknown>;
      expect(Object.keys(wire).every((k) => ['code', 'message', 'details'].includes(k)), label).toBe(true);
      expect(typeof wire['message'] === 'string' && wire['message'].length > 0, label).toBe(true);
    }
  });

  it('C-201/C-202: each code travels with the status of the spec table, including the extension codes', () => {
    const seen = new Set<string>();
    for (const { label, err } of errors) {
      expect(SPEC_STATUS[err.code], `${label}: ${err.code}`).toBeDefined();
      expect(err.status, `${label}: ${err.code}`).toBe(SPEC_STATUS[err.code]);
      seen.add(err.code);
    }
    // the battery really exercised the enum and the extension codes it claims to
    for (const code of [
      'INVALID_ATTESTATION', 'AGENT_NOT_REGISTERED', 'PROVIDER_NOT_APPROVED', 'SCOPE_NOT_APPROVED', 'SESSION_NOT_FOUND',
      'STATE_MISMATCH', 'TOKEN_INVALID', 'TOKEN_REVOKED', 'AGENT_IDENTITY_MISMATCH', 'PROVIDER_MISMATCH', 'USER_DENIED',
      'OAUTH_ERROR', 'INVALID_REQUEST', 'NOT_FOUND', 'AGENT_ALREADY_REGISTERED',
    ]) {
      expect(seen.has(code), code).toBe(true);
    }
  });

  it('C-203: no error body contains a secret, token, completion code, verifier, state, binding value or a stack', () => {
    expect(secrets.every((s) => s.length >= 20)).toBe(true);
    for (const { label, err } of errors) {
      const wire = JSON.stringify(err);
      for (const s of secrets) expect(wire.includes(s), `${label} leaks a secret`).toBe(false);
      expect(wire, label).not.toMatch(/\bat .+\.(ts|js):\d+|node_modules|\bstack\b/);
    }
  });
});

/** A Store whose chosen method fails like a database outage would (C-204). */
function faultyStore(inner: MemoryStore): { store: MemoryStore; failOn: (method: keyof Store | null) => void } {
  let failing: string | null = null;
  const store = new Proxy(inner, {
    get(target, prop, _receiver) {
      const value = Reflect.get(target, prop, target) as unknown;
      if (typeof value !== 'function') return value;
      return (...args: unknown[]) => {
        if (prop === failing) return Promise.reject(new Error('connect ECONNREFUSED 10.20.30.40:5432 (SELECT * FROM sessions)'));
        return (value as (...a: unknown[]) => unknown).apply(target, args);
      };
    },
  });
  return { store, failOn: (m) => (failing = m) };
}

describe('store failures become a generic 500 (C-204)', () => {
  useNetworkGuard();
  let h: Harness;
  let fault: ReturnType<typeof faultyStore>;
  let a: TestAgent;
  let reg: AgentRegistrationResponse;

  beforeAll(async () => {
    fault = faultyStore(new MemoryStore());
    h = await createHarness({ store: fault.store });
    a = await h.agent('k-fault');
    reg = await h.register(a);
  });
  afterAll(() => h.close());

  /** The thrown value is not an AthError carrying internals; rendered, it is a generic 500. */
  async function expectInternal(method: keyof Store, fn: () => Promise<unknown>): Promise<void> {
    fault.failOn(method);
    let thrown: unknown;
    try {
      await fn();
    } catch (err) {
      thrown = err;
    } finally {
      fault.failOn(null);
    }
    expect(thrown, `${method}: the call should fail`).toBeDefined();
    const isProtocolError = thrown instanceof AthError && thrown.code !== 'INTERNAL_ERROR';
    expect(isProtocolError, `${method} became ${(thrown as AthError).code ?? 'a raw error'}`).toBe(false);
    const rendered = toAthError(thrown);
    expect(rendered.status).toBe(500);
    expect(rendered.code).toBe('INTERNAL_ERROR');
    expectAthError(rendered, 'INTERNAL_ERROR');
    expect(JSON.stringify(rendered)).not.toMatch(/10\.20\.30\.40|ECONNREFUSED|SELECT/);
  }

  it('AMB-27/C-131: a failed token write is a 500 that leaves the session exchangeable', async () => {
    const { sessionId } = await h.consentFlow(reg, a, { scopes: ['p:read'] });
    await expectInternal('createToken', async () => h.engine.exchangeToken(await h.tokenBody(reg, a, sessionId)));
    const res = await h.engine.exchangeToken(await h.tokenBody(reg, a, sessionId));
    expect(res.effective_scopes).toEqual(['p:read']);
  });

  it('C-204: a failing getAgent at authorize, token and status is a 500, not AGENT_NOT_REGISTERED', async () => {
    await expectInternal('getAgent', async () => h.engine.authorize(await authorizeBody(reg, a)));
    await expectInternal('getAgent', async () => h.engine.exchangeToken(await h.tokenBody(reg, a, 'ath_sess_x')));
    await expectInternal('getAgent', () => h.engine.agentStatus(reg.client_id, { kind: 'basic', clientId: reg.client_id, clientSecret: reg.client_secret }));
  });

  it('C-204: a failing replay cache (markJtiUsed) is a 500, not 401 INVALID_ATTESTATION, and is not audited as attestation_failed', async () => {
    const before = h.audit.filter((e) => e.event === 'attestation_failed').length;
    await expectInternal('markJtiUsed', async () => h.engine.authorize(await authorizeBody(reg, a)));
    expect(h.audit.filter((e) => e.event === 'attestation_failed').length).toBe(before);
  });

  it('C-204: failing session reads and writes at authorize, launch, callback and token are 500s', async () => {
    await expectInternal('createSession', async () => h.engine.authorize(await authorizeBody(reg, a)));
    const res = await h.engine.authorize(await authorizeBody(reg, a));
    const q = new URL(res.authorization_url).searchParams;
    await expectInternal('getSessionByUpstreamState', () => h.engine.launch(q, {}));
    await expectInternal('updateSession', () => h.engine.launch(q, {}));
    const launched = await h.engine.launch(q, {});
    const cookies = { [launched.cookieName]: launched.setBinding! };
    await expectInternal('getSessionByUpstreamState', () => h.engine.openCallback(q.get('state'), cookies));
    const session = await h.engine.openCallback(q.get('state'), cookies);
    await expectInternal('updateSession', () => h.engine.completeConsent(session, granted(['p:read'])));
    await h.engine.completeConsent(session, granted(['p:read']));
    await expectInternal('getSession', async () => h.engine.exchangeToken(await h.tokenBody(reg, a, res.ath_session_id)));
    await expectInternal('updateSession', async () => h.engine.exchangeToken(await h.tokenBody(reg, a, res.ath_session_id)));
    // the session survived those failures and still exchanges once the store is back
    expect((await h.engine.exchangeToken(await h.tokenBody(reg, a, res.ath_session_id))).access_token).toBeTruthy();
  });

  it('C-204: a failing createToken is a 500 and issues no token', async () => {
    const { sessionId } = await h.consentFlow(reg, a, { scopes: ['p:read'] });
    const before = (await h.store.listTokens({ clientId: reg.client_id })).length;
    await expectInternal('createToken', async () => h.engine.exchangeToken(await h.tokenBody(reg, a, sessionId)));
    expect((await h.store.listTokens({ clientId: reg.client_id })).length).toBe(before);
  });

  it('C-204: failing token lookups and revocations are 500s, never TOKEN_INVALID or a silent 200', async () => {
    const tok = await issueToken(h, reg, a, { scopes: ['p:read'] });
    h.engine.tokenCache.clear();
    await expectInternal('getToken', () => access(h.engine, tok.access_token, a.agentId));
    await expectInternal('getToken', () => h.engine.revoke({ client_id: reg.client_id, client_secret: reg.client_secret, token: tok.access_token }));
    await expectInternal('revokeToken', () => h.engine.revoke({ client_id: reg.client_id, client_secret: reg.client_secret, token: tok.access_token }));
    await expectInternal('revokeAgentTokens', () => h.engine.admin.revokeTokens(reg.client_id));
  });

  it('C-204: a failing audit write is a 500, not a half-successful answer', async () => {
    await expectInternal('appendAudit', async () => h.engine.authorize(await authorizeBody(reg, a)));
  });
});

describe('cross-cutting security (checklist L)', () => {
  useNetworkGuard();

  it('C-213/threats D1: every authorization over 5 flows and two providers uses a fresh S256 challenge', async () => {
    const h = await createHarness();
    try {
      const a = await h.agent('l213');
      const reg = await h.register(a, {
        requested_providers: [
          { provider_id: 'p', scopes: ['p:read', 'p:write'] },
          { provider_id: 'open', scopes: ['o:read'] },
        ],
      });
      const variants = [
        { scopes: ['p:read'] },
        { scopes: ['p:read', 'p:write'] },
        { scopes: ['p:write'], resource: 'https://api.p.test/v1' },
        { provider_id: 'open', scopes: ['o:read'] },
        { provider_id: 'open', scopes: ['o:read'], resource: 'https://api.open.test/' },
      ];
      const challenges = new Set<string>();
      for (const v of variants) {
        const res = await h.engine.authorize(await authorizeBody(reg, a, v));
        const q = new URL(res.authorization_url).searchParams;
        expect(q.get('code_challenge_method')).toBe('S256');
        expect(q.get('code_challenge')).toMatch(/^[A-Za-z0-9_-]{43}$/);
        const launched = await h.engine.launch(q, {});
        expect(launched.upstreamQuery.get('code_challenge_method')).toBe('S256');
        expect(launched.upstreamQuery.get('code_challenge')).toBe(await sha256b64url(launched.session.codeVerifier));
        challenges.add(q.get('code_challenge')!);
      }
      expect(challenges.size).toBe(variants.length);
    } finally {
      await h.close();
    }
  });

  it('C-214: provider configuration beyond the public upstream client_id never reaches the agent or the consent view', async () => {
    const secret = 'upstream-client-secret-C214-xyz';
    const providers = [{ ...PROVIDERS[0]!, upstream_client_secret: secret, token_endpoint_auth: { secret } } as ProviderConfig, ...PROVIDERS.slice(1)];
    const h = await createHarness({ providers });
    try {
      const a = await h.agent('l214');
      const reg = await h.register(a);
      const res = await h.engine.authorize(await authorizeBody(reg, a));
      const launched = await h.engine.launch(new URL(res.authorization_url).searchParams, {});
      const visible = JSON.stringify([res, launched.upstreamQuery.toString(), launched.consent]);
      expect(visible).not.toContain(secret);
      expect(visible).not.toContain('client_secret');
    } finally {
      await h.close();
    }
  });

  it('C-216/C-143: a scripted run produces the eight engine audit event types with timestamp, event and agent_id', async () => {
    const h = await createHarness();
    try {
      const a = await h.agent('l216');
      const reg = await h.register(a); // agent_registered
      const d = await h.agent('l216-denied');
      await h.register(d, { requested_providers: [{ provider_id: 'p', scopes: ['p:admin'] }] }); // agent_registration_denied
      await rejection(async () => h.engine.authorize(await authorizeBody(reg, a, { agent_attestation: await a.att('https://evil.test') }))); // attestation_failed
      const tok = await issueToken(h, reg, a, { scopes: ['p:read'], userId: 'u-216' }); // authorization_started, access_granted
      const deniedFlow = await startFlow(h, reg, a); // access_denied (user)
      await finishFlow(h.engine, deniedFlow, { kind: 'denied' });
      await rejection(() => access(h.engine, tok.access_token, a.agentId, { requiredScope: 'p:write' })); // scope_violation
      await h.engine.revoke({ client_id: reg.client_id, client_secret: reg.client_secret, token: tok.access_token }); // token_revoked

      const types = new Set(h.audit.map((e) => e.event));
      for (const t of [
        'agent_registered', 'agent_registration_denied', 'attestation_failed', 'authorization_started',
        'access_granted', 'access_denied', 'token_revoked', 'scope_violation',
      ] as const) {
        expect(types.has(t), t).toBe(true);
      }
      for (const e of h.audit) {
        expect(Number.isNaN(Date.parse(e.timestamp)), e.event).toBe(false);
        expect(typeof e.agent_id, e.event).toBe('string');
      }
      // the store holds the same events as the sink (proxy_request aside)
      expect((await h.store.queryAudit({ limit: 1000 })).map((e) => e.event)).toEqual(h.audit.map((e) => e.event));
      // decisions carry the C-143 fields, the user denial included
      const decisions = h.audit.filter((e): e is AuditRecord => e.event === 'access_granted' || e.event === 'access_denied');
      expect(decisions.length).toBeGreaterThanOrEqual(2);
      for (const e of decisions) {
        for (const f of ['agent_id', 'provider_id', 'requested_scopes', 'effective_scopes', 'denied_scopes']) expect(e[f], `${e.event}.${f}`).toBeDefined();
      }
      const userDenial = h.audit.find((e) => e.event === 'access_denied')!;
      expect(userDenial).toMatchObject({ denial_reason: 'user_denied', effective_scopes: [], denied_scopes: ['p:read'] });
    } finally {
      await h.close();
    }
  });

  it('C-221: neither the store nor the audit log holds a client secret, access token, completion code or binding value in clear', async () => {
    const h = await createHarness();
    try {
      const a = await h.agent('l221');
      const reg = await h.register(a, { redirect_uris: ['https://agent1.test/cb'] });
      const flow = await startFlow(h, reg, a, { scopes: ['p:read'], user_redirect_uri: 'https://agent1.test/cb' });
      const result = await finishFlow(h.engine, flow, granted(['p:read'], 'u-221'));
      const code = result.kind === 'redirect' ? new URL(result.location).searchParams.get('code')! : '';
      const tok = await h.engine.exchangeToken(await h.tokenBody(reg, a, flow.sessionId, code));
      await h.engine.revoke({ client_id: reg.client_id, client_secret: reg.client_secret, token: tok.access_token });

      const persisted = JSON.stringify([
        await h.store.getAgent(reg.client_id),
        await h.store.getSession(flow.sessionId),
        await h.store.listTokens({ clientId: reg.client_id }),
        await h.store.queryAudit({ limit: 1000 }),
        h.audit,
      ]);
      for (const s of [reg.client_secret, tok.access_token, code, flow.cookies[flow.cookieName]!, flow.state]) {
        expect(s.length).toBeGreaterThan(20);
        expect(persisted.includes(s)).toBe(false);
      }
      expect((await h.store.getAgent(reg.client_id))!.clientSecretHash).toBe(await sha256b64url(reg.client_secret));
    } finally {
      await h.close();
    }
  });
});

describe('state shared by several engine instances over one store (C-223, partial)', () => {
  useNetworkGuard();
  let h: Harness;
  let e2: AthEngine;
  let a: TestAgent;
  let reg: AgentRegistrationResponse;

  beforeAll(async () => {
    h = await createHarness({ tokenCache: { ttlMs: 60_000 } });
    e2 = new AthEngine({
      store: h.store,
      baseUrl: BASE,
      providers: PROVIDERS,
      policy: defaultApprovalPolicy({ autoApprove: ['p:read', 'p:write'], deny: ['p:admin'] }),
      identity: { allowInsecure: [h.docs.hostPort] },
      clock: h.clock,
      tokenCache: { ttlMs: 60_000 },
    });
    await e2.start();
    a = await h.agent('l223');
    reg = await h.register(a, { redirect_uris: ['https://agent1.test/cb'] });
  });
  afterAll(async () => {
    await e2.close();
    await h.close();
  });

  it('C-223: an attestation used on instance 1 is a replay on instance 2', async () => {
    const body = await authorizeBody(reg, a);
    await h.engine.authorize(body);
    const err = await rejection(() => e2.authorize(body));
    expect(expectAthError(err, 'INVALID_ATTESTATION')['details']).toMatchObject({ reason: 'replayed_jti' });
  });

  it('C-223: a session started on instance 1 is bound, completed and exchanged (once) across instances', async () => {
    const res = await h.engine.authorize(await authorizeBody(reg, a, { user_redirect_uri: 'https://agent1.test/cb' }));
    const q = new URL(res.authorization_url).searchParams;
    const launched = await e2.launch(q, {});
    expectAthError(await rejection(() => h.engine.launch(q, {})), 'STATE_MISMATCH'); // binding is shared
    const cookies = { [launched.cookieName]: launched.setBinding! };
    const session = await h.engine.openCallback(q.get('state'), cookies);
    const result = await e2.completeConsent(session, granted(['p:read']));
    const code = result.kind === 'redirect' ? new URL(result.location).searchParams.get('code')! : '';
    const bodies = [await h.tokenBody(reg, a, res.ath_session_id, code), await h.tokenBody(reg, a, res.ath_session_id, code)];
    const outcomes = await Promise.allSettled([h.engine.exchangeToken(bodies[0]!), e2.exchangeToken(bodies[1]!)]);
    expect(outcomes.filter((o) => o.status === 'fulfilled')).toHaveLength(1);
  });

  it('C-223: a revocation on instance 1 takes effect on instance 2 at once, despite its warm cache', async () => {
    const tok = await issueToken(h, reg, a, { scopes: ['p:read'] });
    await access(e2, tok.access_token, a.agentId); // instance 2 caches it for 60 s
    await h.engine.revoke({ client_id: reg.client_id, client_secret: reg.client_secret, token: tok.access_token });
    expectAthError(await rejection(() => access(e2, tok.access_token, a.agentId)), 'TOKEN_REVOKED');
  });

  it('C-223: without a revocation feed, a stale cache entry lives at most the cache TTL', async () => {
    const e3 = new AthEngine({ store: h.store, baseUrl: BASE, providers: PROVIDERS, clock: h.clock, identity: { allowInsecure: [h.docs.hostPort] } }); // not started: no feed
    try {
      const tok = await issueToken(h, reg, a, { scopes: ['p:read'] });
      await access(e3, tok.access_token, a.agentId);
      await h.engine.revoke({ client_id: reg.client_id, client_secret: reg.client_secret, token: tok.access_token });
      h.clock.advance(1001); // default cache TTL is 1 s
      expectAthError(await rejection(() => access(e3, tok.access_token, a.agentId)), 'TOKEN_REVOKED');
    } finally {
      await e3.close();
    }
  });

  it('C-223: a purge before expiry keeps the replay cache, the sessions and the revocations', async () => {
    const jwt = await a.att();
    await h.engine.authorize({ ...(await authorizeBody(reg, a)), agent_attestation: jwt });
    const { sessionId } = await h.consentFlow(reg, a, { scopes: ['p:read'] });
    const tok = await issueToken(h, reg, a, { scopes: ['p:read'] });
    await h.engine.revoke({ client_id: reg.client_id, client_secret: reg.client_secret, token: tok.access_token });
    h.clock.advance(60_000);
    await h.store.purgeExpired(h.clock.now());
    expect((await rejection(async () => e2.authorize({ ...(await authorizeBody(reg, a)), agent_attestation: jwt }))).details).toMatchObject({ reason: 'replayed_jti' });
    expectAthError(await rejection(() => access(e2, tok.access_token, a.agentId)), 'TOKEN_REVOKED');
    expect((await e2.exchangeToken(await h.tokenBody(reg, a, sessionId))).access_token).toBeTruthy();
  });
});
