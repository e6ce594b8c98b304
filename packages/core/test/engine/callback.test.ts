import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { validateTokenResponse, type AgentRegistrationResponse } from '@athkit/schemas';
import { createHarness, rejection, type Harness, type TestAgent } from '../support/engine-harness.js';
import { useNetworkGuard } from '@athkit/testkit';
import { AGENT_STATE, TEN_MINUTES, authorizeBody, expectAthError, finishFlow, granted, sha256b64url, startFlow } from './helpers.js';

const REDIRECT = 'https://agent1.test/cb';

describe('OAuth callback: openCallback + completeConsent (checklist F, AMB-02, AMB-03)', () => {
  useNetworkGuard();
  let h: Harness;
  let a1: TestAgent;
  let reg1: AgentRegistrationResponse; // with redirect_uris
  let a2: TestAgent;
  let reg2: AgentRegistrationResponse; // without redirect_uris

  beforeAll(async () => {
    h = await createHarness();
    a1 = await h.agent('f-a1');
    a2 = await h.agent('f-a2');
    reg1 = await h.register(a1, { redirect_uris: [REDIRECT, 'https://agent1.test/cb2?app=1'] });
    reg2 = await h.register(a2);
  });
  afterAll(() => h.close());

  it('C-100: a granted consent marks the session consented with user, consented scopes and grant', async () => {
    const flow = await startFlow(h, reg2, a2, { scopes: ['p:read', 'p:write'] });
    const session = await h.engine.openCallback(flow.state, flow.cookies);
    // what the gateway needs for the upstream exchange: the verifier matching the challenge it sent
    expect(await sha256b64url(session.codeVerifier)).toBe(flow.authorizationUrl.searchParams.get('code_challenge'));
    await h.engine.completeConsent(session, granted(['p:read'], 'user-100', 'grant-100'));
    expect(await h.store.getSession(flow.sessionId)).toMatchObject({
      status: 'consented',
      userId: 'user-100',
      consentedScopes: ['p:read'],
      grantId: 'grant-100',
    });
  });

  it('C-102(a)/AMB-02: with a user_redirect_uri, the result redirects to exactly it with the agent state and a fresh single-use code', async () => {
    const flow = await startFlow(h, reg1, a1, { user_redirect_uri: REDIRECT });
    const result = await finishFlow(h.engine, flow, granted(['p:read']));
    expect(result.kind).toBe('redirect');
    if (result.kind !== 'redirect') return;
    const loc = new URL(result.location);
    expect(`${loc.origin}${loc.pathname}`).toBe(REDIRECT);
    expect([...loc.searchParams.keys()].sort()).toEqual(['code', 'state']);
    expect(loc.searchParams.get('state')).toBe(AGENT_STATE);
    const code = loc.searchParams.get('code')!;
    expect(code.replace(/^ath_code_/, '')).toMatch(/^[A-Za-z0-9_-]{22,}$/); // ≥ 128 bits
    const stored = (await h.store.getSession(flow.sessionId))!;
    expect(stored.completionCodeHash).toBe(await sha256b64url(code)); // stored hashed only
    expect(JSON.stringify(stored)).not.toContain(code);
    // single use: the first exchange consumes it
    await h.engine.exchangeToken(await h.tokenBody(reg1, a1, flow.sessionId, code));
    expectAthError(await rejection(async () => h.engine.exchangeToken(await h.tokenBody(reg1, a1, flow.sessionId, code))), 'SESSION_NOT_FOUND');
  });

  it('C-102(a): a registered redirect URI with its own query keeps it and gets code and state added', async () => {
    const uri = 'https://agent1.test/cb2?app=1';
    const flow = await startFlow(h, reg1, a1, { user_redirect_uri: uri });
    const result = await finishFlow(h.engine, flow, granted(['p:read']));
    if (result.kind !== 'redirect') throw new Error('expected a redirect');
    const loc = new URL(result.location);
    expect(loc.searchParams.get('app')).toBe('1');
    expect(loc.searchParams.get('state')).toBe(AGENT_STATE);
    expect(loc.searchParams.get('code')).toMatch(/^ath_code_/);
  });

  it('C-102(b): without a user_redirect_uri, the callback ends on the implementer page and issues no completion code', async () => {
    const flow = await startFlow(h, reg2, a2);
    const result = await finishFlow(h.engine, flow, granted(['p:read']));
    expect(result).toMatchObject({ kind: 'page', outcome: 'granted' });
    expect((await h.store.getSession(flow.sessionId))!.completionCodeHash).toBeNull();
  });

  it('C-103/threats D2: a missing, random, or agent-side state is 400 STATE_MISMATCH and completes nothing', async () => {
    const flow = await startFlow(h, reg1, a1, { user_redirect_uri: REDIRECT });
    for (const state of [null, '', 'random-state-value', AGENT_STATE, flow.state.slice(0, -1)]) {
      expectAthError(await rejection(() => h.engine.openCallback(state, flow.cookies)), 'STATE_MISMATCH');
    }
    expect((await h.store.getSession(flow.sessionId))!.status).toBe('pending');
  });

  it('C-104/threats D3: a callback from another browser (no cookie, or another session cookie) is STATE_MISMATCH; J1 then succeeds', async () => {
    const flow = await startFlow(h, reg2, a2);
    const other = await startFlow(h, reg2, a2);
    const jars: Record<string, string>[] = [
      {}, // J2 without any cookie
      other.cookies, // J2 holding the binding cookie of another session
      { [flow.cookieName]: other.cookies[other.cookieName]! }, // another session's value under this name
      { [flow.cookieName]: '' },
    ];
    for (const jar of jars) {
      expectAthError(await rejection(() => h.engine.openCallback(flow.state, jar)), 'STATE_MISMATCH');
    }
    expect((await h.store.getSession(flow.sessionId))!.status).toBe('pending');
    const pending = await rejection(async () => h.engine.exchangeToken(await h.tokenBody(reg2, a2, flow.sessionId)));
    expect(expectAthError(pending, 'SESSION_NOT_FOUND')['details']).toEqual({ reason: 'authorization_pending' });

    const session = await h.engine.openCallback(flow.state, flow.cookies);
    await h.engine.completeConsent(session, granted(['p:read']));
    const tok = await h.engine.exchangeToken(await h.tokenBody(reg2, a2, flow.sessionId));
    expect(validateTokenResponse(tok).valid).toBe(true);
  });

  it('C-104 (AMB-03): a callback for a session whose launch page was never opened is STATE_MISMATCH', async () => {
    const res = await h.engine.authorize(await authorizeBody(reg2, a2));
    const state = new URL(res.authorization_url).searchParams.get('state');
    expectAthError(await rejection(() => h.engine.openCallback(state, {})), 'STATE_MISMATCH');
  });

  it('AMB-03/threats D3: a second launch without the binding cookie is refused; the bound browser may reopen it', async () => {
    const flow = await startFlow(h, reg2, a2);
    expectAthError(await rejection(() => h.engine.launch(flow.authorizationUrl.searchParams, {})), 'STATE_MISMATCH');
    expectAthError(
      await rejection(() => h.engine.launch(flow.authorizationUrl.searchParams, { [flow.cookieName]: 'forged' })),
      'STATE_MISMATCH',
    );
    const reopened = await h.engine.launch(flow.authorizationUrl.searchParams, flow.cookies);
    expect(reopened.setBinding).toBeNull();
    expect(reopened.session.id).toBe(flow.sessionId);
  });

  it('AMB-03/threats D3: two browsers racing on one launch URL: exactly one is bound, the other is refused', async () => {
    const res = await h.engine.authorize(await authorizeBody(reg2, a2));
    const q = new URL(res.authorization_url).searchParams;
    const outcomes = await Promise.allSettled([h.engine.launch(q, {}), h.engine.launch(q, {}), h.engine.launch(q, {})]);
    const bound = outcomes.filter((o) => o.status === 'fulfilled');
    expect(bound).toHaveLength(1);
    for (const o of outcomes.filter((x) => x.status === 'rejected')) {
      expect(o.reason).toMatchObject({ code: 'STATE_MISMATCH' });
    }
  });

  it('AMB-03: a launch URL cannot be reopened once consent is recorded', async () => {
    const flow = await startFlow(h, reg2, a2);
    await finishFlow(h.engine, flow, granted(['p:read']));
    expectAthError(await rejection(() => h.engine.launch(flow.authorizationUrl.searchParams, flow.cookies)), 'STATE_MISMATCH');
  });

  it('C-105: a callback more than ten minutes after authorize is SESSION_EXPIRED and completes nothing', async () => {
    const h2 = await createHarness();
    try {
      const a = await h2.agent('c105');
      const reg = await h2.register(a);
      const flow = await startFlow(h2, reg, a);
      h2.clock.advance(TEN_MINUTES + 1000);
      expectAthError(await rejection(() => h2.engine.openCallback(flow.state, flow.cookies)), 'SESSION_EXPIRED');
      expect((await h2.store.getSession(flow.sessionId))!.status).toBe('pending');
    } finally {
      await h2.close();
    }
  });

  it('C-106/threats D4: a replayed callback after completion is STATE_MISMATCH and does not change the outcome', async () => {
    const flow = await startFlow(h, reg2, a2);
    await finishFlow(h.engine, flow, granted(['p:read'], 'user-a'));
    expectAthError(await rejection(() => h.engine.openCallback(flow.state, flow.cookies)), 'STATE_MISMATCH');
    expect((await h.store.getSession(flow.sessionId))!.userId).toBe('user-a');
  });

  it('C-106: concurrent completions of one opened callback: exactly one wins, the rest are STATE_MISMATCH', async () => {
    const flow = await startFlow(h, reg2, a2, { scopes: ['p:read', 'p:write'] });
    const opened = await Promise.all([1, 2, 3, 4, 5].map(() => h.engine.openCallback(flow.state, flow.cookies)));
    const results = await Promise.allSettled(
      opened.map((s, i) => h.engine.completeConsent(s, i % 2 ? granted(['p:read'], `user-${i}`) : { kind: 'denied' })),
    );
    const won = results.filter((r) => r.status === 'fulfilled');
    expect(won).toHaveLength(1);
    for (const r of results.filter((x) => x.status === 'rejected')) {
      expect(r.reason).toMatchObject({ code: 'STATE_MISMATCH', status: 400 });
    }
    const winner = (won[0] as PromiseFulfilledResult<{ outcome: string }>).value.outcome;
    const stored = (await h.store.getSession(flow.sessionId))!;
    expect(stored.status).toBe(winner === 'granted' ? 'consented' : 'denied');
  });

  it('C-107/threats D6: a denial redirects only to the validated URI with error=access_denied and the agent state', async () => {
    const flow = await startFlow(h, reg1, a1, { user_redirect_uri: REDIRECT });
    const result = await finishFlow(h.engine, flow, { kind: 'denied' });
    if (result.kind !== 'redirect') throw new Error('expected a redirect');
    const loc = new URL(result.location);
    expect(`${loc.origin}${loc.pathname}`).toBe(REDIRECT);
    expect(loc.searchParams.get('error')).toBe('access_denied');
    expect(loc.searchParams.get('state')).toBe(AGENT_STATE);
    expect(loc.searchParams.has('code')).toBe(false);
  });

  it('C-107/threats D7: after a denial /ath/token is 403 USER_DENIED and no token row exists', async () => {
    const a = await h.agent('c107');
    const reg = await h.register(a);
    const flow = await startFlow(h, reg, a);
    const result = await finishFlow(h.engine, flow, { kind: 'denied' });
    expect(result).toMatchObject({ kind: 'page', outcome: 'denied' });
    const err = await rejection(async () => h.engine.exchangeToken(await h.tokenBody(reg, a, flow.sessionId)));
    expectAthError(err, 'USER_DENIED');
    expect(await h.store.listTokens({ clientId: reg.client_id })).toEqual([]);
  });

  it('C-108: an upstream failure is 502 OAUTH_ERROR at the callback and at /ath/token, without the upstream text', async () => {
    const a = await h.agent('c108');
    const reg = await h.register(a);
    const flow = await startFlow(h, reg, a);
    const session = await h.engine.openCallback(flow.state, flow.cookies);
    const upstreamText = 'invalid_grant: code expired at https://as.internal:8443';
    const err = await rejection(() => h.engine.completeConsent(session, { kind: 'failed', message: upstreamText }));
    const wire = expectAthError(err, 'OAUTH_ERROR');
    expect(JSON.stringify(wire)).not.toContain('as.internal');
    expect((await h.store.getSession(flow.sessionId))!.status).toBe('failed');
    const tokErr = await rejection(async () => h.engine.exchangeToken(await h.tokenBody(reg, a, flow.sessionId)));
    expect(JSON.stringify(expectAthError(tokErr, 'OAUTH_ERROR'))).not.toContain('as.internal');
    expect(await h.store.listTokens({ clientId: reg.client_id })).toEqual([]);
    // the failed callback cannot be retried into success
    expectAthError(await rejection(() => h.engine.openCallback(flow.state, flow.cookies)), 'STATE_MISMATCH');
  });

  it('C-109: nothing server-side (verifier, grant, upstream state, binding value) appears in the redirect', async () => {
    const flow = await startFlow(h, reg1, a1, { user_redirect_uri: REDIRECT });
    const session = await h.engine.openCallback(flow.state, flow.cookies);
    const result = await h.engine.completeConsent(session, granted(['p:read'], 'user-109', 'grant-secret-ref-109'));
    if (result.kind !== 'redirect') throw new Error('expected a redirect');
    for (const secret of [session.codeVerifier, 'grant-secret-ref-109', flow.state, flow.cookies[flow.cookieName]!]) {
      expect(result.location).not.toContain(secret);
    }
  });

  it('C-110: the consented set is recorded: a narrower upstream grant, and "as requested" when the AS omits scope', async () => {
    const narrow = await startFlow(h, reg2, a2, { scopes: ['p:read', 'p:write'] });
    await finishFlow(h.engine, narrow, granted(['p:read']));
    const t1 = await h.engine.exchangeToken(await h.tokenBody(reg2, a2, narrow.sessionId));
    expect(t1.scope_intersection.user_consented).toEqual(['p:read']);
    expect(t1.effective_scopes).toEqual(['p:read']);

    const omitted = await startFlow(h, reg2, a2, { scopes: ['p:read', 'p:write'] });
    await finishFlow(h.engine, omitted, granted(null));
    const t2 = await h.engine.exchangeToken(await h.tokenBody(reg2, a2, omitted.sessionId));
    expect(t2.scope_intersection.user_consented).toEqual(['p:read', 'p:write']);
    expect(t2.effective_scopes).toEqual(['p:read', 'p:write']);
  });

  it('C-111: errors on state or binding are thrown (never a redirect) and do not reveal the agent redirect URI or state', async () => {
    const flow = await startFlow(h, reg1, a1, { user_redirect_uri: REDIRECT });
    const errs = [
      await rejection(() => h.engine.openCallback(flow.state, {})),
      await rejection(() => h.engine.openCallback('bogus', flow.cookies)),
    ];
    for (const e of errs) {
      const body = JSON.stringify(expectAthError(e, 'STATE_MISMATCH'));
      expect(body).not.toContain('agent1.test');
      expect(body).not.toContain(AGENT_STATE);
    }
    // a failed upstream exchange is also thrown, not redirected
    const session = await h.engine.openCallback(flow.state, flow.cookies);
    const failed = await rejection(() => h.engine.completeConsent(session, { kind: 'failed', message: 'x' }));
    expect(JSON.stringify(expectAthError(failed, 'OAUTH_ERROR'))).not.toContain('agent1.test');
  });
});
