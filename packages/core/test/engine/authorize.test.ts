import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { validateAuthorizationResponse, validateTokenResponse, type AgentRegistrationResponse } from '@athkit/schemas';
import { BASE, createHarness, rejection, type Harness, type TestAgent } from '../support/engine-harness.js';
import { useNetworkGuard } from '@athkit/testkit';
import {
  AGENT_STATE,
  CALLBACK_URL,
  TEN_MINUTES,
  TOKEN_AUD,
  access,
  authorizeBody,
  expectAthError,
  finishFlow,
  granted,
  issueToken,
  sha256b64url,
  startFlow,
} from './helpers.js';

describe('authorization (checklist E)', () => {
  useNetworkGuard();
  let h: Harness;
  let a1: TestAgent;
  let a2: TestAgent;
  let reg1: AgentRegistrationResponse;
  let reg2: AgentRegistrationResponse;

  beforeAll(async () => {
    h = await createHarness();
    a1 = await h.agent('e-a1');
    a2 = await h.agent('e-a2');
    reg1 = await h.register(a1, { redirect_uris: ['https://agent1.test/cb'] });
    reg2 = await h.register(a2); // no redirect_uris
  });
  afterAll(() => h.close());

  /** Runs `fn` and asserts it created no session (C-071, C-078). */
  async function withoutSession<T>(fn: () => Promise<T>): Promise<T> {
    const spy = vi.spyOn(h.store, 'createSession');
    try {
      const out = await fn();
      expect(spy).not.toHaveBeenCalled();
      return out;
    } finally {
      spy.mockRestore();
    }
  }

  it('C-070: the happy path returns a schema-valid AuthorizationResponse with an absolute https URL', async () => {
    const res = await h.engine.authorize(await authorizeBody(reg1, a1, { user_redirect_uri: 'https://agent1.test/cb' }));
    expect(validateAuthorizationResponse(res).valid).toBe(true);
    const url = new URL(res.authorization_url);
    expect(url.protocol).toBe('https:');
    expect(`${url.origin}${url.pathname}`).toBe(`${BASE}/ath/authorize/start`); // AMB-03: implementer-hosted launch URL
    const session = await h.store.getSession(res.ath_session_id);
    expect(session).toMatchObject({
      clientId: reg1.client_id,
      agentId: a1.agentId,
      providerId: 'p',
      requestedScopes: ['p:read'],
      agentState: AGENT_STATE,
      userRedirectUri: 'https://agent1.test/cb',
      status: 'pending',
    });
  });

  it('C-071: a missing client_id, provider_id, scopes or state is 400 INVALID_REQUEST and creates no session', async () => {
    for (const field of ['client_id', 'provider_id', 'scopes', 'state']) {
      const body = await authorizeBody(reg1, a1);
      delete body[field];
      const err = await withoutSession(() => rejection(() => h.engine.authorize(body)));
      expectAthError(err, 'INVALID_REQUEST');
    }
  });

  it('C-071: a missing or blank agent_attestation is 401 INVALID_ATTESTATION, not 400', async () => {
    const body = await authorizeBody(reg1, a1);
    delete body['agent_attestation'];
    expectAthError(await withoutSession(() => rejection(() => h.engine.authorize(body))), 'INVALID_ATTESTATION');
    const blank = await authorizeBody(reg1, a1, { agent_attestation: '' });
    expectAthError(await withoutSession(() => rejection(() => h.engine.authorize(blank))), 'INVALID_ATTESTATION');
  });

  it('C-072: an unknown client_id with a valid attestation is 403 AGENT_NOT_REGISTERED', async () => {
    const err = await rejection(async () => h.engine.authorize(await authorizeBody(reg1, a1, { client_id: 'nosuch' })));
    expectAthError(err, 'AGENT_NOT_REGISTERED');
  });

  it('C-073: a pending and a denied agent get 403 AGENT_UNAPPROVED with details.agent_status', async () => {
    const pending = await h.agent('e-pending');
    const regP = await h.register(pending, { requested_providers: [{ provider_id: 'p2', scopes: ['p2:read'] }] });
    expect(regP.agent_status).toBe('pending');
    const errP = await rejection(async () => h.engine.authorize(await authorizeBody(regP, pending, { provider_id: 'p2', scopes: ['p2:read'] })));
    expect(expectAthError(errP, 'AGENT_UNAPPROVED')['details']).toMatchObject({ agent_status: 'pending' });

    const denied = await h.agent('e-denied');
    const regD = await h.register(denied, { requested_providers: [{ provider_id: 'p', scopes: ['p:admin'] }] });
    expect(regD.agent_status).toBe('denied');
    const errD = await rejection(async () => h.engine.authorize(await authorizeBody(regD, denied)));
    expect(expectAthError(errD, 'AGENT_UNAPPROVED')['details']).toMatchObject({ agent_status: 'denied' });
  });

  it('C-075: the attestation matrix at /ath/authorize is 401 INVALID_ATTESTATION', async () => {
    const other = await h.agent('e-forger');
    const now = Math.floor(h.clock.now() / 1000);
    const bad: [string | string[], string][] = [
      [['unknown_kid', 'invalid_signature'], await other.att(BASE, { sub: a1.agentId })], // B's key, claiming A1
      ['expired', await a1.att(BASE, { iat: now - 400, exp: now - 100 })],
      ['iat_out_of_range', await a1.att(BASE, { iat: now + 600, exp: now + 900 })],
      ['lifetime_too_long', await a1.att(BASE, { exp: now + 7200 })],
      ['audience_mismatch', await a1.att('https://evil.test')],
      ['audience_mismatch', await a1.att(TOKEN_AUD)], // a token-endpoint attestation is not valid here
      ['issuer_mismatch', await a1.att(BASE, { iss: 'https://evil.test' })],
      ['malformed_token', 'not-a-jwt'],
    ];
    for (const [reason, jwt] of bad) {
      const err = await withoutSession(() => rejection(async () => h.engine.authorize(await authorizeBody(reg1, a1, { agent_attestation: jwt }))));
      const details = expectAthError(err, 'INVALID_ATTESTATION')['details'] as { reason: string };
      expect([reason].flat(), String(reason)).toContain(details.reason);
    }
  });

  it('C-076: client_id C1 with a valid attestation of A2 is 401 INVALID_ATTESTATION', async () => {
    const err = await rejection(async () => h.engine.authorize(await authorizeBody(reg1, a2)));
    expectAthError(err, 'INVALID_ATTESTATION');
    // and the same with A1's document already cached (warm path)
    await h.engine.authorize(await authorizeBody(reg1, a1));
    expectAthError(await rejection(async () => h.engine.authorize(await authorizeBody(reg1, a2))), 'INVALID_ATTESTATION');
  });

  it('C-077: provider P2 (not approved) and Q (does not exist) are 403 PROVIDER_NOT_APPROVED', async () => {
    for (const provider_id of ['p2', 'q']) {
      const err = await withoutSession(() =>
        rejection(async () => h.engine.authorize(await authorizeBody(reg1, a1, { provider_id, scopes: [`${provider_id}:read`] }))),
      );
      expectAthError(err, 'PROVIDER_NOT_APPROVED');
    }
  });

  it('C-078: a scope outside the approved set is 403 SCOPE_NOT_APPROVED naming it, and no session is created', async () => {
    const err = await withoutSession(() => rejection(async () => h.engine.authorize(await authorizeBody(reg1, a1, { scopes: ['p:admin'] }))));
    expect(expectAthError(err, 'SCOPE_NOT_APPROVED')['details']).toEqual({ scopes: ['p:admin'] });
  });

  it('C-079: a mixed request is rejected as a whole, not narrowed', async () => {
    const err = await withoutSession(() =>
      rejection(async () => h.engine.authorize(await authorizeBody(reg1, a1, { scopes: ['p:read', 'p:admin'] }))),
    );
    expect(expectAthError(err, 'SCOPE_NOT_APPROVED')['details']).toEqual({ scopes: ['p:admin'] });
  });

  it('C-080: empty scopes and a space inside one element are 400; upper case is 403 (case-sensitive); duplicates collapse', async () => {
    for (const scopes of [[], ['p:read p:write']]) {
      const err = await withoutSession(() => rejection(async () => h.engine.authorize(await authorizeBody(reg1, a1, { scopes }))));
      expectAthError(err, 'INVALID_REQUEST');
    }
    const upper = await rejection(async () => h.engine.authorize(await authorizeBody(reg1, a1, { scopes: ['P:READ'] })));
    expect(expectAthError(upper, 'SCOPE_NOT_APPROVED')['details']).toEqual({ scopes: ['P:READ'] });
    const dup = await h.engine.authorize(await authorizeBody(reg1, a1, { scopes: ['p:read', 'p:read'] }));
    expect((await h.store.getSession(dup.ath_session_id))!.requestedScopes).toEqual(['p:read']);
  });

  it('C-081: authorization_url carries a 43-char S256 code_challenge = BASE64URL(SHA256(stored verifier))', async () => {
    const res = await h.engine.authorize(await authorizeBody(reg1, a1));
    const q = new URL(res.authorization_url).searchParams;
    expect(q.get('code_challenge_method')).toBe('S256');
    expect(q.getAll('code_challenge_method')).toHaveLength(1);
    const challenge = q.get('code_challenge')!;
    expect(challenge).toMatch(/^[A-Za-z0-9_-]{43}$/);
    const session = (await h.store.getSession(res.ath_session_id))!;
    expect(session.codeVerifier).toMatch(/^[A-Za-z0-9\-._~]{43,128}$/); // RFC 7636 §4.1
    expect(challenge).toBe(await sha256b64url(session.codeVerifier));
  });

  it('C-082: two identical requests get different code_challenge, state and ath_session_id', async () => {
    const r1 = await h.engine.authorize(await authorizeBody(reg1, a1));
    const r2 = await h.engine.authorize(await authorizeBody(reg1, a1));
    const [q1, q2] = [new URL(r1.authorization_url).searchParams, new URL(r2.authorization_url).searchParams];
    expect(r1.ath_session_id).not.toBe(r2.ath_session_id);
    expect(q1.get('code_challenge')).not.toBe(q2.get('code_challenge'));
    expect(q1.get('state')).not.toBe(q2.get('state'));
  });

  it('C-083: the code_verifier appears in no agent-visible value of the whole flow', async () => {
    const flow = await startFlow(h, reg1, a1, { scopes: ['p:read'], user_redirect_uri: 'https://agent1.test/cb' });
    const verifier = (await h.store.getSession(flow.sessionId))!.codeVerifier;
    const result = await finishFlow(h.engine, flow, granted(['p:read']));
    expect(result.kind).toBe('redirect');
    const code = result.kind === 'redirect' ? new URL(result.location).searchParams.get('code')! : '';
    const token = await h.engine.exchangeToken(await h.tokenBody(reg1, a1, flow.sessionId, code));
    const replay = await rejection(async () => h.engine.exchangeToken(await h.tokenBody(reg1, a1, flow.sessionId, code)));
    const visible = JSON.stringify([flow.authorizationUrl.toString(), result.kind === 'redirect' ? result.location : '', token, replay]);
    expect(visible).not.toContain(verifier);
  });

  it('C-084: user_redirect_uri must match a registered one exactly (400 INVALID_REQUEST otherwise)', async () => {
    const variants = [
      'https://agent1.test/cb/',
      'https://agent1.test/cb?x=1',
      'https://AGENT1.test/cb',
      'https://agent1.test/cb2',
      'https://agent1.test/cb#x',
      'https://agent1.test/cb/../x',
      'https://agent1.test.evil/cb',
      'https://agent1.test@evil/cb',
      'HTTPS://AGENT1.TEST/cb',
      'https://evil.test/cb',
      'javascript:alert(1)',
      'data:text/html,hi',
    ];
    for (const user_redirect_uri of variants) {
      const err = await withoutSession(() => rejection(async () => h.engine.authorize(await authorizeBody(reg1, a1, { user_redirect_uri }))));
      expectAthError(err, 'INVALID_REQUEST');
    }
    const ok = await h.engine.authorize(await authorizeBody(reg1, a1, { user_redirect_uri: 'https://agent1.test/cb' }));
    expect((await h.store.getSession(ok.ath_session_id))!.userRedirectUri).toBe('https://agent1.test/cb');
  });

  it('C-085: an agent without redirect_uris may not send user_redirect_uri; without it the request is 200', async () => {
    const err = await withoutSession(() =>
      rejection(async () => h.engine.authorize(await authorizeBody(reg2, a2, { user_redirect_uri: 'https://agent1.test/cb' }))),
    );
    expect(expectAthError(err, 'INVALID_REQUEST')['details']).toMatchObject({ field: 'user_redirect_uri' });
    const ok = await h.engine.authorize(await authorizeBody(reg2, a2));
    expect((await h.store.getSession(ok.ath_session_id))!.userRedirectUri).toBeNull();
  });

  it('C-085 (AMB-14): user_redirect_uri equal to the implementer callback means "no redirect"', async () => {
    const ok = await h.engine.authorize(await authorizeBody(reg2, a2, { user_redirect_uri: CALLBACK_URL }));
    expect((await h.store.getSession(ok.ath_session_id))!.userRedirectUri).toBeNull();
  });

  it('C-086: a valid resource passes through to the upstream query; an invalid one is 400', async () => {
    const res = await h.engine.authorize(await authorizeBody(reg1, a1, { resource: 'https://api.p.test/v1' }));
    expect(new URL(res.authorization_url).searchParams.get('resource')).toBe('https://api.p.test/v1');
    expect((await h.store.getSession(res.ath_session_id))!.resource).toBe('https://api.p.test/v1');
    for (const resource of ['not a uri', '/v1/relative', 'https://api.p.test/v1#frag']) {
      const err = await withoutSession(() => rejection(async () => h.engine.authorize(await authorizeBody(reg1, a1, { resource }))));
      expectAthError(err, 'INVALID_REQUEST');
    }
    const none = await h.engine.authorize(await authorizeBody(reg1, a1));
    expect(new URL(none.authorization_url).searchParams.has('resource')).toBe(false);
  });

  it('threats D9: a valid resource indicator is recorded in the token binding', async () => {
    const flow = await startFlow(h, reg2, a2, { scopes: ['p:read'], resource: 'https://api.p.test/v1' });
    await finishFlow(h.engine, flow, granted(['p:read']));
    const tok = await h.engine.exchangeToken(await h.tokenBody(reg2, a2, flow.sessionId));
    expect((await access(h.engine, tok.access_token, a2.agentId)).resource).toBe('https://api.p.test/v1');
  });

  it("threats D9: a resource outside the provider's API base (https://api.p.test/v1) is 400 and starts no session", async () => {
    const refused: [string, string][] = [
      ['https://api.p.test/v10', 'outside_api_base'],
      ['https://api.p.test/', 'outside_api_base'],
      ['https://api.open.test/', 'outside_api_base'], // another provider's API
      ['http://api.p.test/v1', 'outside_api_base'],
      ['https://api.p.test:8443/v1', 'outside_api_base'],
      ['https://api.p.test/v1/../admin', 'not_normalized'],
      ['https://api.p.test/v1/%2e%2e/admin', 'not_normalized'],
      ['https://API.P.TEST/v1', 'not_normalized'],
      ['https://api.p.test/v1/..%2Fadmin', 'ambiguous_path'],
      ['https://api.p.test/v1#x', 'fragment'],
    ];
    for (const [resource, reason] of refused) {
      const err = await withoutSession(() => rejection(async () => h.engine.authorize(await authorizeBody(reg1, a1, { resource }))));
      expect(expectAthError(err, 'INVALID_REQUEST')['details'], resource).toEqual({ field: 'resource', reason });
    }
    // A relative reference already fails the schema's `format: uri`, which names the field by pointer.
    const relative = await withoutSession(() => rejection(async () => h.engine.authorize(await authorizeBody(reg1, a1, { resource: '/v1' }))));
    expect(expectAthError(relative, 'INVALID_REQUEST')['details']).toMatchObject({ violations: [{ pointer: '/resource' }] });
    for (const resource of ['https://api.p.test/v1/', 'https://api.p.test/v1/messages']) {
      const ok = await h.engine.authorize(await authorizeBody(reg1, a1, { resource }));
      expect(new URL(ok.authorization_url).searchParams.get('resource')).toBe(resource);
    }
    // Each provider has its own base: 'open' admits a path below its API.
    const aOpen = await h.agent('e-d9-open');
    const regOpen = await h.register(aOpen, { requested_providers: [{ provider_id: 'open', scopes: ['o:read'] }] });
    const open = await h.engine.authorize(await authorizeBody(regOpen, aOpen, { provider_id: 'open', scopes: ['o:read'], resource: 'https://api.open.test/mail' }));
    expect(new URL(open.authorization_url).searchParams.get('resource')).toBe('https://api.open.test/mail');
  });

  it('threats D10 (engine part): the launch consent view names the requesting agent, its claimed developer, provider and scopes', async () => {
    const res = await h.engine.authorize(await authorizeBody(reg2, a2, { scopes: ['p:read', 'p:write'] }));
    const { consent } = await h.engine.launch(new URL(res.authorization_url).searchParams, {});
    expect(consent.agent).toMatchObject({ agentId: a2.agentId, name: 'Agent e-a2', developer: { name: 'Example Corp', id: 'dev-1' } });
    expect(consent.provider).toEqual({ providerId: 'p', displayName: 'Provider P' });
    expect(consent.scopes).toEqual([
      { scope: 'p:read', approvedForAgent: true },
      { scope: 'p:write', approvedForAgent: true },
    ]);
  });

  it('C-087: 20 ath_session_ids are distinct, ≥ 128 bits and share no incrementing pattern', async () => {
    const ids: string[] = [];
    for (let i = 0; i < 20; i++) ids.push((await h.engine.authorize(await authorizeBody(reg1, a1))).ath_session_id);
    expect(new Set(ids).size).toBe(20);
    const bodies = ids.map((id) => id.replace(/^ath_sess_/, ''));
    for (const b of bodies) expect(b).toMatch(/^[A-Za-z0-9_-]{22,}$/);
    // random ids share (practically) no common prefix and no common suffix
    const common = (xs: string[]) => {
      let n = 0;
      while (xs.every((x) => x[n] !== undefined && x[n] === xs[0]![n])) n++;
      return n;
    };
    expect(common(bodies)).toBeLessThan(2);
    expect(common(bodies.map((b) => [...b].reverse().join('')))).toBeLessThan(2);
  });

  it('C-088: the upstream query has response_type, client_id (no secret), redirect_uri, scope, our own state, PKCE', async () => {
    const res = await h.engine.authorize(await authorizeBody(reg1, a1, { scopes: ['p:read', 'p:write'] }));
    const q = new URL(res.authorization_url).searchParams;
    expect(q.get('response_type')).toBe('code');
    expect(q.get('client_id')).toBe('ath-gw');
    expect(q.has('client_secret')).toBe(false);
    expect(q.get('redirect_uri')).toBe(CALLBACK_URL);
    expect(q.get('scope')).toBe('p:read p:write');
    const state = q.get('state')!;
    expect(state).not.toBe(AGENT_STATE); // AMB-15: the implementer's own state
    expect(state).toMatch(/^[A-Za-z0-9_-]{43,}$/);
    expect(q.get('code_challenge_method')).toBe('S256');
    // the launch step rebuilds the same query from the session
    const launched = await h.engine.launch(q, {});
    expect(Object.fromEntries(launched.upstreamQuery)).toEqual(Object.fromEntries(q));
  });

  it('C-088: a tampered launch URL cannot widen the scope or swap the challenge: the query is rebuilt from the session', async () => {
    const res = await h.engine.authorize(await authorizeBody(reg1, a1, { scopes: ['p:read'] }));
    const original = new URL(res.authorization_url).searchParams;
    const tampered = new URLSearchParams(original);
    tampered.set('scope', 'p:read p:write p:admin');
    tampered.set('code_challenge', 'A'.repeat(43));
    tampered.set('redirect_uri', 'https://evil.test/cb');
    const launched = await h.engine.launch(tampered, {});
    expect(launched.upstreamQuery.get('scope')).toBe('p:read');
    expect(launched.upstreamQuery.get('code_challenge')).toBe(original.get('code_challenge'));
    expect(launched.upstreamQuery.get('redirect_uri')).toBe(CALLBACK_URL);
  });

  it('C-089: the launch page binds the first browser with a __Host- cookie whose value is stored only as a hash', async () => {
    const res = await h.engine.authorize(await authorizeBody(reg1, a1));
    const url = new URL(res.authorization_url);
    const launched = await h.engine.launch(url.searchParams, {});
    expect(launched.cookieName.startsWith('__Host-ath_bind_')).toBe(true);
    expect(launched.setBinding).toMatch(/^[A-Za-z0-9_-]{43}$/);
    const session = (await h.store.getSession(res.ath_session_id))!;
    expect(session.bindingHash).toBe(await sha256b64url(launched.setBinding!));
    expect(JSON.stringify(session)).not.toContain(launched.setBinding!);
    // second visit without the cookie is refused; with it, accepted without a new binding
    expectAthError(await rejection(() => h.engine.launch(url.searchParams, {})), 'STATE_MISMATCH');
    const again = await h.engine.launch(url.searchParams, { [launched.cookieName]: launched.setBinding! });
    expect(again.setBinding).toBeNull();
  });

  it('C-091: three concurrent sessions are independent; only the completed one yields a token', async () => {
    const flows = [
      await startFlow(h, reg1, a1, { scopes: ['p:read'] }),
      await startFlow(h, reg1, a1, { scopes: ['p:read'] }),
      await startFlow(h, reg1, a1, { scopes: ['p:read'] }),
    ];
    await finishFlow(h.engine, flows[1]!, granted(['p:read']));
    for (const [i, f] of flows.entries()) {
      if (i === 1) {
        const tok = await h.engine.exchangeToken(await h.tokenBody(reg1, a1, f.sessionId));
        expect(validateTokenResponse(tok).valid).toBe(true);
      } else {
        const err = await rejection(async () => h.engine.exchangeToken(await h.tokenBody(reg1, a1, f.sessionId)));
        expect(expectAthError(err, 'SESSION_NOT_FOUND')['details']).toEqual({ reason: 'authorization_pending' });
        expect((await h.store.getSession(f.sessionId))!.status).toBe('pending');
      }
    }
  });

  it('C-093: an authorization_started audit event names agent, client, provider and requested scopes', async () => {
    const res = await h.engine.authorize(await authorizeBody(reg1, a1, { scopes: ['p:write'] }));
    const events = (await h.store.queryAudit({ event: 'authorization_started', agentId: a1.agentId })).filter(
      (e) => e.requested_scopes?.length === 1 && e.requested_scopes[0] === 'p:write',
    );
    expect(events.length).toBeGreaterThanOrEqual(1);
    expect(events.at(-1)).toMatchObject({ agent_id: a1.agentId, client_id: reg1.client_id, provider_id: 'p', requested_scopes: ['p:write'] });
    expect(typeof events.at(-1)!.timestamp).toBe('string');
    expect(res.ath_session_id).toBeTruthy();
  });

  it('C-020(b): the same attestation JWT cannot authorize twice', async () => {
    const body = await authorizeBody(reg1, a1);
    await h.engine.authorize(body);
    const err = await rejection(() => h.engine.authorize(body));
    expect(expectAthError(err, 'INVALID_ATTESTATION')['details']).toMatchObject({ reason: 'replayed_jti' });
  });

  it('C-021: a jti is consumed even when the request then fails a business check', async () => {
    const jwt = await a1.att();
    const first = await rejection(() => h.engine.authorize({ ...authorizeBodySync(reg1), agent_attestation: jwt, scopes: ['p:admin'] }));
    expectAthError(first, 'SCOPE_NOT_APPROVED');
    const second = await rejection(() => h.engine.authorize({ ...authorizeBodySync(reg1), agent_attestation: jwt, scopes: ['p:read'] }));
    expect(expectAthError(second, 'INVALID_ATTESTATION')['details']).toMatchObject({ reason: 'replayed_jti' });
  });

  function authorizeBodySync(reg: AgentRegistrationResponse) {
    return { client_id: reg.client_id, provider_id: 'p', state: AGENT_STATE };
  }

  describe('AMB-26: check order at /ath/authorize', () => {
    it('AMB-26 (1 before 2): a schema error wins over a bad attestation (400)', async () => {
      const err = await rejection(async () => h.engine.authorize(await authorizeBody(reg1, a1, { scopes: [], agent_attestation: 'garbage' })));
      expectAthError(err, 'INVALID_REQUEST');
    });

    it('AMB-26 (2 before 3): an unknown client with a forged attestation is 401, so registration cannot be probed', async () => {
      const forger = await h.agent('e-order-forger');
      const err = await rejection(async () =>
        h.engine.authorize(await authorizeBody(reg1, a1, { client_id: 'nosuch', agent_attestation: await forger.att(BASE, { sub: a1.agentId }) })),
      );
      expectAthError(err, 'INVALID_ATTESTATION');
    });

    it('AMB-26 (4 before 5): a sub mismatch on a denied agent is 401, not AGENT_UNAPPROVED', async () => {
      const denied = await h.agent('e-order-denied');
      const reg = await h.register(denied);
      await h.engine.admin.deny(reg.client_id);
      const err = await rejection(async () => h.engine.authorize(await authorizeBody(reg, a1)));
      expectAthError(err, 'INVALID_ATTESTATION');
    });

    it('AMB-26 (5 before 6, 7, 8): a denied agent asking for an unknown provider with a bad redirect is AGENT_UNAPPROVED', async () => {
      const denied = await h.agent('e-order-denied2');
      const reg = await h.register(denied);
      await h.engine.admin.deny(reg.client_id);
      const err = await rejection(async () =>
        h.engine.authorize(await authorizeBody(reg, denied, { provider_id: 'q', scopes: ['q:x'], user_redirect_uri: 'https://evil.test' })),
      );
      expectAthError(err, 'AGENT_UNAPPROVED');
    });

    it('AMB-26 (6 before 7): provider P2 with an unapproved scope is PROVIDER_NOT_APPROVED', async () => {
      const err = await rejection(async () => h.engine.authorize(await authorizeBody(reg1, a1, { provider_id: 'p2', scopes: ['p:admin'] })));
      expectAthError(err, 'PROVIDER_NOT_APPROVED');
    });

    it('AMB-26 (7 before 8): an unapproved scope with a bad redirect URI is SCOPE_NOT_APPROVED', async () => {
      const err = await rejection(async () =>
        h.engine.authorize(await authorizeBody(reg1, a1, { scopes: ['p:admin'], user_redirect_uri: 'https://evil.test/cb' })),
      );
      expectAthError(err, 'SCOPE_NOT_APPROVED');
    });

    it('AMB-26 (8): a bad redirect URI is reported before a bad resource', async () => {
      const err = await rejection(async () =>
        h.engine.authorize(await authorizeBody(reg1, a1, { user_redirect_uri: 'https://evil.test/cb', resource: 'https://x.test/#f' })),
      );
      expect(expectAthError(err, 'INVALID_REQUEST')['details']).toMatchObject({ field: 'user_redirect_uri' });
    });
  });
});

describe('authorization lifetimes (C-090, C-074, AMB-40)', () => {
  useNetworkGuard();

  it('C-090: ten minutes and one second after authorize, a consented session is SESSION_EXPIRED at /ath/token', async () => {
    const h = await createHarness();
    try {
      const a = await h.agent('c090');
      const reg = await h.register(a);
      const { sessionId } = await h.consentFlow(reg, a, { scopes: ['p:read'] });
      h.clock.advance(TEN_MINUTES + 1000);
      const err = await rejection(async () => h.engine.exchangeToken(await h.tokenBody(reg, a, sessionId)));
      expectAthError(err, 'SESSION_EXPIRED');
      expect((await h.store.listTokens({ clientId: reg.client_id })).length).toBe(0);
    } finally {
      await h.close();
    }
  });

  it('C-090: a launch URL opened after ten minutes is SESSION_EXPIRED', async () => {
    const h = await createHarness();
    try {
      const a = await h.agent('c090b');
      const reg = await h.register(a);
      const res = await h.engine.authorize(await authorizeBody(reg, a));
      h.clock.advance(TEN_MINUTES);
      expectAthError(await rejection(() => h.engine.launch(new URL(res.authorization_url).searchParams, {})), 'SESSION_EXPIRED');
    } finally {
      await h.close();
    }
  });

  it('C-074/AMB-40: after approval_expires, authorize and token are AGENT_UNAPPROVED; issued tokens live on', async () => {
    const h = await createHarness({ approvalTtlSeconds: 120 });
    try {
      const a = await h.agent('c074');
      const reg = await h.register(a);
      const tok = await issueToken(h, reg, a, { scopes: ['p:read'] });
      const pendingExchange = await h.consentFlow(reg, a, { scopes: ['p:read'] });

      h.clock.advance(121_000);
      const authErr = await rejection(async () => h.engine.authorize(await authorizeBody(reg, a)));
      expect(expectAthError(authErr, 'AGENT_UNAPPROVED')['details']).toMatchObject({ reason: 'approval_expired' });
      const tokErr = await rejection(async () => h.engine.exchangeToken(await h.tokenBody(reg, a, pendingExchange.sessionId)));
      expectAthError(tokErr, 'AGENT_UNAPPROVED');
      // AMB-40: the already-issued token runs to its own exp
      const grant = await access(h.engine, tok.access_token, a.agentId);
      expect(grant.agentId).toBe(a.agentId);
    } finally {
      await h.close();
    }
  });

  it('AMB-40: narrowing the approvals of an expired agent does not silently renew its approval; approve() does', async () => {
    const h = await createHarness({ approvalTtlSeconds: 120 });
    try {
      const a = await h.agent('amb40');
      const reg = await h.register(a);
      h.clock.advance(121_000);
      await h.engine.admin.setApprovals(reg.client_id, [{ provider_id: 'p', approved_scopes: ['p:read'], denied_scopes: ['p:write'] }]);
      expectAthError(await rejection(async () => h.engine.authorize(await authorizeBody(reg, a))), 'AGENT_UNAPPROVED');
      await h.engine.admin.approve(reg.client_id);
      const ok = await h.engine.authorize(await authorizeBody(reg, a));
      expect(ok.ath_session_id).toBeTruthy();
    } finally {
      await h.close();
    }
  });
});
