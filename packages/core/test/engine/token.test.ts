import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { validateTokenResponse, type AgentRegistrationResponse, type TokenResponse } from '@athkit/schemas';
import { AthEngine } from '../../src/engine/index.js';
import { MemoryStore } from '../../src/memory-store.js';
import { BASE, PROVIDERS, createHarness, rejection, type Harness, type TestAgent } from '../support/engine-harness.js';
import { useNetworkGuard } from '@athkit/testkit';
import { TEN_MINUTES, TOKEN_AUD, authorizeBody, expectAthError, finishFlow, granted, startFlow } from './helpers.js';

describe('token exchange (checklist G, threats E)', () => {
  useNetworkGuard();
  let h: Harness;
  let a1: TestAgent;
  let a2: TestAgent;
  let reg1: AgentRegistrationResponse;
  let reg2: AgentRegistrationResponse;

  beforeAll(async () => {
    h = await createHarness();
    a1 = await h.agent('g-a1');
    a2 = await h.agent('g-a2');
    reg1 = await h.register(a1, { redirect_uris: ['https://agent1.test/cb'] });
    reg2 = await h.register(a2);
  });
  afterAll(() => h.close());

  /** A consented session of A1 without redirect (code "exchange" is accepted). */
  async function consented(scopes = ['p:read', 'p:write'], consentedScopes: string[] | null = scopes, reg = reg1, agent = a1) {
    return (await h.consentFlow(reg, agent, { scopes, consented: consentedScopes })).sessionId;
  }

  // Usable tokens only: a request that loses the consume race leaves a revoked, never-returned row.
  const tokensOf = async (clientId: string) =>
    (await h.store.listTokens({ clientId, liveAt: h.clock.now(), limit: 1000 })).length;

  it('C-120: the happy path returns a schema-valid TokenResponse', async () => {
    const sid = await consented();
    const res = await h.engine.exchangeToken(await h.tokenBody(reg1, a1, sid));
    expect(validateTokenResponse(res).valid, JSON.stringify(validateTokenResponse(res))).toBe(true);
    expect(res.token_type).toBe('Bearer');
    expect(res.access_token).toMatch(/^ath_tk_[A-Za-z0-9_-]{43}$/);
    expect(res.effective_scopes).toEqual(['p:read', 'p:write']);
    expect(res.scope_intersection.effective).toEqual(res.effective_scopes);
    expect((await h.store.getSession(sid))!.status).toBe('consumed');
  });

  it('C-122/threats E7: a missing grant_type or another grant type is 400 INVALID_REQUEST', async () => {
    const sid = await consented();
    for (const grant_type of [undefined, 'client_credentials', 'refresh_token']) {
      const body = await h.tokenBody(reg1, a1, sid);
      if (grant_type === undefined) delete body['grant_type'];
      else body['grant_type'] = grant_type;
      expectAthError(await rejection(() => h.engine.exchangeToken(body)), 'INVALID_REQUEST');
    }
    expect((await h.store.getSession(sid))!.status).toBe('consented');
  });

  it('C-123/threats E5: no secret, a wrong secret and an unknown client are the same 403 and do not consume the session', async () => {
    const sid = await consented();
    const missing = await h.tokenBody(reg1, a1, sid);
    delete missing['client_secret'];
    const bodies = [
      missing,
      { ...(await h.tokenBody(reg1, a1, sid)), client_secret: '' },
      { ...(await h.tokenBody(reg1, a1, sid)), client_secret: reg1.client_secret.slice(0, -1) + 'x' },
      { ...(await h.tokenBody(reg1, a1, sid)), client_secret: reg2.client_secret },
      { ...(await h.tokenBody(reg1, a1, sid)), client_id: 'nosuch', client_secret: 'whatever' },
    ];
    const wires: string[] = [];
    for (const body of bodies) {
      const err = await rejection(() => h.engine.exchangeToken(body));
      wires.push(JSON.stringify(expectAthError(err, 'AGENT_NOT_REGISTERED')));
    }
    expect(wires).toHaveLength(5);
    expect(new Set(wires).size).toBe(1);
    expect((await h.store.getSession(sid))!.status).toBe('consented');
    expect((await h.engine.exchangeToken(await h.tokenBody(reg1, a1, sid))).access_token).toBeTruthy();
  });

  it('C-124: a missing attestation, another agent’s attestation, and invalid attestations are 401 INVALID_ATTESTATION', async () => {
    const sid = await consented();
    const now = Math.floor(h.clock.now() / 1000);
    const forger = await h.agent('g-forger');
    const variants: (string | undefined)[] = [
      undefined,
      '',
      await a2.att(TOKEN_AUD), // (b) A2's valid attestation with C1
      await forger.att(TOKEN_AUD, { sub: a1.agentId }),
      await a1.att(TOKEN_AUD, { iat: now - 400, exp: now - 100 }),
      await a1.att(TOKEN_AUD, { iss: 'https://evil.test' }),
      'x.y.z',
    ];
    for (const agent_attestation of variants) {
      const body = { ...(await h.tokenBody(reg1, a1, sid)), agent_attestation };
      if (agent_attestation === undefined) delete body.agent_attestation;
      expectAthError(await rejection(() => h.engine.exchangeToken(body)), 'INVALID_ATTESTATION');
    }
    expect((await h.store.getSession(sid))!.status).toBe('consented');
  });

  it('C-125: the attestation aud must be exactly the token endpoint URL', async () => {
    const sid = await consented();
    for (const aud of [BASE, `${BASE}/`, `${BASE}/ath/authorize`, `${TOKEN_AUD}/`, 'https://ath.test/ath/TOKEN']) {
      const body = { ...(await h.tokenBody(reg1, a1, sid)), agent_attestation: await a1.att(aud) };
      const err = await rejection(() => h.engine.exchangeToken(body));
      expect(expectAthError(err, 'INVALID_ATTESTATION')['details']).toMatchObject({ reason: 'audience_mismatch' });
    }
    const arrayAud = { ...(await h.tokenBody(reg1, a1, sid)), agent_attestation: await a1.att([BASE, TOKEN_AUD]) };
    expect((await h.engine.exchangeToken(arrayAud)).access_token).toBeTruthy();
  });

  it('C-126/threats E4: an attestation already used at /ath/authorize cannot be reused at /ath/token', async () => {
    // valid for both endpoints, so only the replay cache can refuse it
    const jwt = await a1.att([BASE, TOKEN_AUD]);
    const res = await h.engine.authorize(await authorizeBody(reg1, a1, { agent_attestation: jwt }));
    const flow = { sessionId: res.ath_session_id, url: new URL(res.authorization_url) };
    const launched = await h.engine.launch(flow.url.searchParams, {});
    const session = await h.engine.openCallback(flow.url.searchParams.get('state'), { [launched.cookieName]: launched.setBinding! });
    await h.engine.completeConsent(session, granted(['p:read']));
    const body = { ...(await h.tokenBody(reg1, a1, flow.sessionId)), agent_attestation: jwt };
    const err = await rejection(() => h.engine.exchangeToken(body));
    expect(expectAthError(err, 'INVALID_ATTESTATION')['details']).toMatchObject({ reason: 'replayed_jti' });
    // and a token-endpoint attestation cannot be replayed at the token endpoint either
    const fresh = await h.tokenBody(reg1, a1, flow.sessionId);
    await h.engine.exchangeToken(fresh);
    const again = await consented();
    const replay = await rejection(() => h.engine.exchangeToken({ ...fresh, ath_session_id: again }));
    expect(expectAthError(replay, 'INVALID_ATTESTATION')['details']).toMatchObject({ reason: 'replayed_jti' });
  });

  it('C-127: an unknown ath_session_id is 400 SESSION_NOT_FOUND; a missing one is 400 INVALID_REQUEST', async () => {
    const unknown = await rejection(async () => h.engine.exchangeToken(await h.tokenBody(reg1, a1, 'ath_sess_doesnotexist')));
    expectAthError(unknown, 'SESSION_NOT_FOUND');
    const body = await h.tokenBody(reg1, a1, 'x');
    delete body['ath_session_id'];
    expectAthError(await rejection(() => h.engine.exchangeToken(body)), 'INVALID_REQUEST');
  });

  it('C-128/threats E3: another client presenting C1’s session is 403 AGENT_IDENTITY_MISMATCH; C1 can still use it', async () => {
    const sid = await consented();
    const err = await rejection(async () => h.engine.exchangeToken(await h.tokenBody(reg2, a2, sid)));
    expectAthError(err, 'AGENT_IDENTITY_MISMATCH');
    expect((await h.store.getSession(sid))!.status).toBe('consented');
    const ok = await h.engine.exchangeToken(await h.tokenBody(reg1, a1, sid));
    expect(ok.agent_id).toBe(a1.agentId);
  });

  it('C-130: a session can be exchanged only once; the repeat is SESSION_NOT_FOUND and issues nothing', async () => {
    const sid = await consented();
    const before = await tokensOf(reg1.client_id);
    await h.engine.exchangeToken(await h.tokenBody(reg1, a1, sid));
    const err = await rejection(async () => h.engine.exchangeToken(await h.tokenBody(reg1, a1, sid)));
    expect(expectAthError(err, 'SESSION_NOT_FOUND')['details']).toEqual({ reason: 'consumed' });
    expect(await tokensOf(reg1.client_id)).toBe(before + 1);
  });

  it('C-131: a failed exchange (bad secret) does not consume the session', async () => {
    const sid = await consented();
    const bad = { ...(await h.tokenBody(reg1, a1, sid)), client_secret: 'wrong' };
    expectAthError(await rejection(() => h.engine.exchangeToken(bad)), 'AGENT_NOT_REGISTERED');
    expect(validateTokenResponse(await h.engine.exchangeToken(await h.tokenBody(reg1, a1, sid))).valid).toBe(true);
  });

  it('C-132: exchanging before consent is SESSION_NOT_FOUND (authorization_pending), not consumed; it works after consent', async () => {
    const flow = await startFlow(h, reg1, a1, { scopes: ['p:read'] });
    const err = await rejection(async () => h.engine.exchangeToken(await h.tokenBody(reg1, a1, flow.sessionId)));
    expect(expectAthError(err, 'SESSION_NOT_FOUND')['details']).toEqual({ reason: 'authorization_pending' });
    await finishFlow(h.engine, flow, granted(['p:read']));
    expect((await h.engine.exchangeToken(await h.tokenBody(reg1, a1, flow.sessionId))).effective_scopes).toEqual(['p:read']);
  });

  it('C-133(a)/AMB-02: a redirect session requires the exact completion code; a wrong code does not consume it', async () => {
    const { sessionId, code } = await h.consentFlow(reg1, a1, { scopes: ['p:read'], redirect: 'https://agent1.test/cb' });
    expect(code).toMatch(/^ath_code_/);
    const other = await h.consentFlow(reg1, a1, { scopes: ['p:read'], redirect: 'https://agent1.test/cb' });
    for (const wrong of ['exchange', code.slice(0, -1), `${code}x`, other.code]) {
      const err = await rejection(async () => h.engine.exchangeToken(await h.tokenBody(reg1, a1, sessionId, wrong)));
      expect(expectAthError(err, 'SESSION_NOT_FOUND')['details']).toEqual({ reason: 'invalid_code' });
    }
    expect((await h.engine.exchangeToken(await h.tokenBody(reg1, a1, sessionId, code))).access_token).toBeTruthy();
  });

  it('C-133(b)/AMB-02: a session without redirect accepts any non-empty code, e.g. "exchange"', async () => {
    for (const code of ['exchange', 'anything-at-all']) {
      const sid = await consented(['p:read']);
      expect((await h.engine.exchangeToken(await h.tokenBody(reg1, a1, sid, code))).access_token).toBeTruthy();
    }
  });

  it('C-133(c): a missing or empty code is 400 INVALID_REQUEST', async () => {
    const sid = await consented(['p:read']);
    const missing = await h.tokenBody(reg1, a1, sid);
    delete missing['code'];
    expectAthError(await rejection(() => h.engine.exchangeToken(missing)), 'INVALID_REQUEST');
    expectAthError(await rejection(async () => h.engine.exchangeToken(await h.tokenBody(reg1, a1, sid, ''))), 'INVALID_REQUEST');
    expect((await h.store.getSession(sid))!.status).toBe('consented');
  });

  it('C-134: approved {read,write}, requested {read,write}, consented {read} → effective [read]', async () => {
    const sid = await consented(['p:read', 'p:write'], ['p:read']);
    const res = await h.engine.exchangeToken(await h.tokenBody(reg1, a1, sid));
    expect(res.effective_scopes).toEqual(['p:read']);
    expect(res.scope_intersection).toEqual({ agent_approved: ['p:read', 'p:write'], user_consented: ['p:read'], effective: ['p:read'] });
    expect((await h.engine.validateAccess({ authorization: `Bearer ${res.access_token}`, agentIdHeader: a1.agentId, providerId: 'p', requiredScope: 'p:read' })).scopes).toEqual(['p:read']);
  });

  it('C-135/threats E6: nothing outside the intersection, even when the user grants more than requested', async () => {
    const sid = await consented(['p:read'], ['p:read', 'p:write', 'p:admin']);
    const res = await h.engine.exchangeToken(await h.tokenBody(reg1, a1, sid));
    expect(res.effective_scopes).toEqual(['p:read']);
    const stored = (await h.store.listTokens({ clientId: reg1.client_id, limit: 1000 })).filter((t) => t.sessionId === sid);
    expect(stored.map((t) => t.scopes)).toEqual([['p:read']]);
  });

  it('C-136/AMB-28: an empty intersection is 403 SCOPE_NOT_APPROVED, no token, and the session ends', async () => {
    for (const consentedScopes of [['other:x'], []]) {
      const sid = await consented(['p:read'], consentedScopes);
      const before = await tokensOf(reg1.client_id);
      const err = await rejection(async () => h.engine.exchangeToken(await h.tokenBody(reg1, a1, sid)));
      const wire = expectAthError(err, 'SCOPE_NOT_APPROVED');
      expect(JSON.stringify(wire)).not.toContain('access_token');
      expect(await tokensOf(reg1.client_id)).toBe(before);
      expect((await h.store.getSession(sid))!.status).toBe('consumed');
      expectAthError(await rejection(async () => h.engine.exchangeToken(await h.tokenBody(reg1, a1, sid))), 'SESSION_NOT_FOUND');
    }
  });

  it('C-137: agent_id is the registered agent_id and provider_id the session provider', async () => {
    const sid = await consented(['p:read']);
    const res = await h.engine.exchangeToken(await h.tokenBody(reg1, a1, sid));
    expect(res.agent_id).toBe(a1.agentId);
    expect(res.provider_id).toBe('p');
  });

  it('C-138: expires_in is an integer in (0, 3600]; the engine refuses a longer token or session lifetime', async () => {
    const sid = await consented(['p:read']);
    const res = await h.engine.exchangeToken(await h.tokenBody(reg1, a1, sid));
    expect(Number.isInteger(res.expires_in)).toBe(true);
    expect(res.expires_in).toBeGreaterThan(0);
    expect(res.expires_in).toBeLessThanOrEqual(3600);
    const token = (await h.store.listTokens({ clientId: reg1.client_id, limit: 1000 })).find((t) => t.sessionId === sid)!;
    expect(token.expiresAt - token.createdAt).toBe(res.expires_in * 1000);
    const base = { store: new MemoryStore(), baseUrl: BASE, providers: PROVIDERS };
    expect(() => new AthEngine({ ...base, tokenTtlSeconds: 3601 })).toThrow(RangeError);
    expect(() => new AthEngine({ ...base, sessionTtlSeconds: 601 })).toThrow(RangeError);
    const short = new AthEngine({ ...base, tokenTtlSeconds: 60 });
    expect(short.ctx.tokenTtlSeconds).toBe(60);
  });

  it('C-139(a): an agent denied after consent gets 403 AGENT_UNAPPROVED at exchange', async () => {
    const a = await h.agent('c139a');
    const reg = await h.register(a);
    const { sessionId } = await h.consentFlow(reg, a, { scopes: ['p:read'] });
    await h.engine.admin.deny(reg.client_id);
    const err = await rejection(async () => h.engine.exchangeToken(await h.tokenBody(reg, a, sessionId)));
    expect(expectAthError(err, 'AGENT_UNAPPROVED')['details']).toMatchObject({ agent_status: 'denied' });
    expect(await tokensOf(reg.client_id)).toBe(0);
  });

  it('C-139(b): p:write withdrawn by an admin after consent is not effective', async () => {
    const a = await h.agent('c139b');
    const reg = await h.register(a);
    const { sessionId } = await h.consentFlow(reg, a, { scopes: ['p:read', 'p:write'] });
    await h.engine.admin.setApprovals(reg.client_id, [{ provider_id: 'p', approved_scopes: ['p:read'], denied_scopes: ['p:write'] }]);
    const res = await h.engine.exchangeToken(await h.tokenBody(reg, a, sessionId));
    expect(res.effective_scopes).toEqual(['p:read']);
    expect(res.scope_intersection.agent_approved).toEqual(['p:read']);
  });

  it('C-140: tokens of two flows are distinct and ≥ 128 bits', async () => {
    const t1 = await h.engine.exchangeToken(await h.tokenBody(reg1, a1, await consented(['p:read'])));
    const t2 = await h.engine.exchangeToken(await h.tokenBody(reg1, a1, await consented(['p:read'])));
    expect(t1.access_token).not.toBe(t2.access_token);
    for (const t of [t1, t2]) expect(t.access_token.replace(/^ath_tk_/, '')).toMatch(/^[A-Za-z0-9_-]{22,}$/);
  });

  it('C-141: the response carries exactly the schema fields: no refresh_token, no grant reference', async () => {
    const flow = await startFlow(h, reg1, a1, { scopes: ['p:read'] });
    await finishFlow(h.engine, flow, granted(['p:read'], 'user-141', 'vault-grant-141'));
    const res = await h.engine.exchangeToken(await h.tokenBody(reg1, a1, flow.sessionId));
    expect(Object.keys(res).sort()).toEqual(
      ['access_token', 'agent_id', 'effective_scopes', 'expires_in', 'provider_id', 'scope_intersection', 'token_type'].sort(),
    );
    expect(JSON.stringify(res)).not.toContain('vault-grant-141');
    expect(JSON.stringify(res)).not.toContain('user-141');
  });

  it('C-143: access_granted and access_denied audit events carry the C-143 fields', async () => {
    const a = await h.agent('c143');
    const reg = await h.register(a);
    const ok = await h.consentFlow(reg, a, { scopes: ['p:read', 'p:write'], consented: ['p:read'], userId: 'user-143' });
    await h.engine.exchangeToken(await h.tokenBody(reg, a, ok.sessionId));
    const empty = await h.consentFlow(reg, a, { scopes: ['p:write'], consented: ['p:read'], userId: 'user-143' });
    await rejection(async () => h.engine.exchangeToken(await h.tokenBody(reg, a, empty.sessionId)));

    const grantedEv = (await h.store.queryAudit({ event: 'access_granted', agentId: a.agentId }))[0]!;
    expect(grantedEv).toMatchObject({
      event: 'access_granted',
      agent_id: a.agentId,
      user_id: 'user-143',
      provider_id: 'p',
      requested_scopes: ['p:read', 'p:write'],
      effective_scopes: ['p:read'],
      denied_scopes: ['p:write'],
    });
    expect(Number.isNaN(Date.parse(grantedEv.timestamp))).toBe(false);
    const deniedEv = (await h.store.queryAudit({ event: 'access_denied', agentId: a.agentId }))[0]!;
    expect(deniedEv).toMatchObject({
      event: 'access_denied',
      agent_id: a.agentId,
      user_id: 'user-143',
      provider_id: 'p',
      requested_scopes: ['p:write'],
      effective_scopes: [],
      denied_scopes: ['p:write'],
      denial_reason: expect.any(String),
    });
  });

  it('threats E1: 20 concurrent exchanges of one session yield exactly one token', async () => {
    const sid = await consented(['p:read']);
    const before = await tokensOf(reg1.client_id);
    const bodies = await Promise.all(Array.from({ length: 20 }, () => h.tokenBody(reg1, a1, sid)));
    const results = await Promise.allSettled(bodies.map((b) => h.engine.exchangeToken(b)));
    const ok = results.filter((r): r is PromiseFulfilledResult<TokenResponse> => r.status === 'fulfilled');
    expect(ok).toHaveLength(1);
    for (const r of results.filter((x) => x.status === 'rejected')) {
      expect(r.reason).toMatchObject({ code: 'SESSION_NOT_FOUND', status: 400 });
    }
    expect(await tokensOf(reg1.client_id)).toBe(before + 1);
  });

  describe('AMB-26: check order at /ath/token (schema → client auth → attestation → session → intersection)', () => {
    it('AMB-26: a schema error wins over bad credentials (400)', async () => {
      const body = { ...(await h.tokenBody(reg1, a1, 'x')), grant_type: 'password', client_secret: 'wrong' };
      expectAthError(await rejection(() => h.engine.exchangeToken(body)), 'INVALID_REQUEST');
    });

    it('AMB-26: a bad secret plus a bad attestation is 403 AGENT_NOT_REGISTERED first, and the attestation is not consumed', async () => {
      const sid = await consented(['p:read']);
      const jwt = await a1.att(TOKEN_AUD);
      const forged = await (await h.agent('g-order')).att(TOKEN_AUD, { sub: a1.agentId });
      const err = await rejection(async () =>
        h.engine.exchangeToken({ ...(await h.tokenBody(reg1, a1, sid)), client_secret: 'wrong', agent_attestation: forged }),
      );
      expectAthError(err, 'AGENT_NOT_REGISTERED');
      // the attestation step was never reached, so an attestation sent with a bad secret stays usable
      await rejection(async () => h.engine.exchangeToken({ ...(await h.tokenBody(reg1, a1, sid)), client_secret: 'wrong', agent_attestation: jwt }));
      expect((await h.engine.exchangeToken({ ...(await h.tokenBody(reg1, a1, sid)), agent_attestation: jwt })).access_token).toBeTruthy();
    });

    it('AMB-26: a bad attestation wins over an unknown, foreign or pending session (401)', async () => {
      const foreign = await consented(['p:read'], ['p:read'], reg2, a2);
      const pending = (await startFlow(h, reg1, a1)).sessionId;
      for (const sid of ['ath_sess_nosuch', foreign, pending]) {
        const body = { ...(await h.tokenBody(reg1, a1, sid)), agent_attestation: await a1.att(BASE) };
        expectAthError(await rejection(() => h.engine.exchangeToken(body)), 'INVALID_ATTESTATION');
      }
    });

    it('AMB-26: the approval re-check wins over the session checks', async () => {
      const a = await h.agent('g-order-deny');
      const reg = await h.register(a);
      await h.engine.admin.deny(reg.client_id);
      const err = await rejection(async () => h.engine.exchangeToken(await h.tokenBody(reg, a, 'ath_sess_nosuch')));
      expectAthError(err, 'AGENT_UNAPPROVED');
    });

    it('AMB-26: the session owner check wins over the session state (pending) and the code check', async () => {
      const pending = (await startFlow(h, reg1, a1)).sessionId;
      expectAthError(await rejection(async () => h.engine.exchangeToken(await h.tokenBody(reg2, a2, pending))), 'AGENT_IDENTITY_MISMATCH');
      const redirected = await h.consentFlow(reg1, a1, { scopes: ['p:read'], redirect: 'https://agent1.test/cb' });
      expectAthError(
        await rejection(async () => h.engine.exchangeToken(await h.tokenBody(reg2, a2, redirected.sessionId, 'wrong'))),
        'AGENT_IDENTITY_MISMATCH',
      );
    });

    it('AMB-26: a wrong completion code wins over an empty intersection (the session is not consumed)', async () => {
      const r = await h.consentFlow(reg1, a1, { scopes: ['p:read'], consented: ['other:x'], redirect: 'https://agent1.test/cb' });
      const err = await rejection(async () => h.engine.exchangeToken(await h.tokenBody(reg1, a1, r.sessionId, 'wrong')));
      expectAthError(err, 'SESSION_NOT_FOUND');
      expect((await h.store.getSession(r.sessionId))!.status).toBe('consented');
    });
  });
});

describe('token exchange lifetimes (C-129)', () => {
  useNetworkGuard();

  it('C-129: a consented session exchanges until 10 min after authorize and is SESSION_EXPIRED after', async () => {
    const h = await createHarness();
    try {
      const a = await h.agent('c129');
      const reg = await h.register(a);
      const early = await h.consentFlow(reg, a, { scopes: ['p:read'] });
      const late = await h.consentFlow(reg, a, { scopes: ['p:read'] });
      h.clock.advance(TEN_MINUTES - 1000);
      expect((await h.engine.exchangeToken(await h.tokenBody(reg, a, early.sessionId))).access_token).toBeTruthy();
      h.clock.advance(2000);
      const err = await rejection(async () => h.engine.exchangeToken(await h.tokenBody(reg, a, late.sessionId)));
      expectAthError(err, 'SESSION_EXPIRED');
    } finally {
      await h.close();
    }
  });

  it('C-129 (threats E2): a shorter configured session TTL is honoured', async () => {
    const h = await createHarness({ sessionTtlSeconds: 2 });
    try {
      const a = await h.agent('c129b');
      const reg = await h.register(a);
      const { sessionId } = await h.consentFlow(reg, a, { scopes: ['p:read'] });
      h.clock.advance(2500);
      expectAthError(await rejection(async () => h.engine.exchangeToken(await h.tokenBody(reg, a, sessionId))), 'SESSION_EXPIRED');
    } finally {
      await h.close();
    }
  });
});

describe('admin races', () => {
  it('setApprovals never writes back a stale state: a suspension landing mid-call stands', async () => {
    const inner = new MemoryStore();
    let suspendFirst: string | null = null;
    // The write that carries new approvals arrives just after another admin suspended the agent.
    const store = new Proxy(inner, {
      get(target, prop) {
        if (prop === 'updateAgent') {
          return async (clientId: string, patch: Parameters<MemoryStore['updateAgent']>[1]) => {
            if (suspendFirst === clientId && patch.approvals) {
              suspendFirst = null;
              await target.updateAgent(clientId, { state: 'suspended', updatedAt: patch.updatedAt });
            }
            return target.updateAgent(clientId, patch);
          };
        }
        const value = Reflect.get(target, prop, target) as unknown;
        return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value;
      },
    });
    const h = await createHarness({ store });
    try {
      const a = await h.agent('race-a');
      const reg = await h.register(a);
      suspendFirst = reg.client_id;
      const updated = await h.engine.admin.setApprovals(reg.client_id, [
        { provider_id: 'p', approved_scopes: ['p:read'], denied_scopes: ['p:write'] },
      ]);
      expect(updated.state).toBe('suspended');
      expect((await inner.getAgent(reg.client_id))!.state).toBe('suspended');
    } finally {
      await h.close();
    }
  });
});
