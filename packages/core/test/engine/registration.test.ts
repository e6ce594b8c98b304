import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { validateAgentRegistrationResponse, validateAgentStatusResponse, validateATHError } from '@athkit/schemas';
import { defaultApprovalPolicy } from '../../src/policy.js';
import { BASE, createHarness, rejection, type Harness } from '../support/engine-harness.js';
import { useNetworkGuard } from '@athkit/testkit';

describe('registration (checklist C)', () => {
  useNetworkGuard();
  let h: Harness;
  beforeAll(async () => {
    h = await createHarness();
  });
  afterAll(() => h.close());

  it('C-040/C-011: a valid registration returns the full schema body with approvals', async () => {
    const a = await h.agent('c040');
    const res = await h.register(a, { redirect_uris: ['https://agent1.test/cb'] });
    expect(validateAgentRegistrationResponse(res).valid).toBe(true);
    expect(res.agent_status).toBe('approved');
    expect(res.approved_providers).toEqual([{ provider_id: 'p', approved_scopes: ['p:read', 'p:write'], denied_scopes: [] }]);
    expect(Date.parse(res.approval_expires)).toBeGreaterThan(h.clock.now()); // C-054
    expect(h.audit.some((e) => e.event === 'agent_registered' && e.agent_id === a.agentId)).toBe(true); // C-058
  });

  it('C-041: missing fields are 400 INVALID_REQUEST and nothing is stored', async () => {
    const a = await h.agent('c041');
    const full = {
      agent_id: a.agentId,
      developer: { name: 'Example Corp', id: 'dev-1' },
      requested_providers: [{ provider_id: 'p', scopes: ['p:read'] }],
    };
    const variants: Record<string, unknown>[] = [
      { ...full, agent_id: undefined },
      { ...full, developer: undefined },
      { ...full, developer: { id: 'dev-1' } },
      { ...full, developer: { name: 'x' } },
      { ...full, requested_providers: undefined },
      { ...full, requested_providers: [{ scopes: ['p:read'] }] },
      { ...full, requested_providers: [{ provider_id: 'p' }] },
      { ...full, requested_providers: [] },
    ];
    for (const v of variants) {
      const err = await rejection(async () => h.engine.register({ ...v, agent_attestation: await a.att() }));
      expect(err.code).toBe('INVALID_REQUEST');
      expect(err.status).toBe(400);
    }
    expect(await h.store.getAgentByAgentId(a.agentId)).toBeNull();
  });

  it('C-042: a missing or blank attestation is 401 INVALID_ATTESTATION', async () => {
    const a = await h.agent('c042');
    const body = { agent_id: a.agentId, developer: { name: 'x', id: 'y' }, requested_providers: [{ provider_id: 'p', scopes: ['p:read'] }] };
    expect((await rejection(() => h.engine.register(body))).code).toBe('INVALID_ATTESTATION');
    expect((await rejection(() => h.engine.register({ ...body, agent_attestation: '' }))).code).toBe('INVALID_ATTESTATION');
  });

  it('C-012/C-043: a bad signature leaves no record; a valid retry is 201, not 409', async () => {
    const a = await h.agent('c043');
    const b = await h.agent('c043b');
    const forged = await b.att(BASE, { sub: a.agentId }); // signed by B's key, claiming to be A
    const err = await rejection(() =>
      h.engine.register({
        agent_id: a.agentId,
        agent_attestation: forged,
        developer: { name: 'x', id: 'y' },
        requested_providers: [{ provider_id: 'p', scopes: ['p:read'] }],
      }),
    );
    expect(err.code).toBe('INVALID_ATTESTATION');
    expect(h.audit.some((e) => e.event === 'attestation_failed' && e.agent_id === a.agentId)).toBe(true);
    expect((await h.register(a)).agent_status).toBe('approved');
  });

  it('C-023: sub must equal the body agent_id', async () => {
    const a = await h.agent('c023');
    const b = await h.agent('c023b');
    const err = await rejection(async () =>
      h.engine.register({
        agent_id: a.agentId,
        agent_attestation: await b.att(),
        developer: { name: 'x', id: 'y' },
        requested_providers: [{ provider_id: 'p', scopes: ['p:read'] }],
      }),
    );
    expect(err.code).toBe('INVALID_ATTESTATION');
  });

  it('C-017: origin, origin with slash, array and exact endpoint audiences are accepted', async () => {
    for (const [i, aud] of [BASE, `${BASE}/`, [BASE], `${BASE}/ath/agents/register`].entries()) {
      const a = await h.agent(`c017-${i}`);
      const res = await h.engine.register({
        agent_id: a.agentId,
        agent_attestation: await a.att(aud),
        developer: { name: 'x', id: 'y' },
        requested_providers: [{ provider_id: 'p', scopes: ['p:read'] }],
      });
      expect(res.agent_status).toBe('approved');
    }
  });

  it('C-020 (AMB-13): resending the identical request is a replay (401), not 409', async () => {
    const a = await h.agent('c020');
    const body = {
      agent_id: a.agentId,
      agent_attestation: await a.att(),
      developer: { name: 'x', id: 'y' },
      requested_providers: [{ provider_id: 'p', scopes: ['p:read'] }],
    };
    await h.engine.register(body);
    expect((await rejection(() => h.engine.register(body))).code).toBe('INVALID_ATTESTATION');
  });

  it('C-044/C-045/C-046: a subset is approved, the rest denied with a reason, each scope in exactly one list', async () => {
    const a = await h.agent('c044');
    const res = await h.register(a, { requested_providers: [{ provider_id: 'p', scopes: ['p:read', 'p:admin', 'zz:unknown'] }] });
    const p = res.approved_providers[0]!;
    expect(p.approved_scopes).toEqual(['p:read']);
    expect(p.denied_scopes.sort()).toEqual(['p:admin', 'zz:unknown']);
    expect(typeof p.denial_reason).toBe('string');
  });

  it('C-047: an unknown provider is listed with every scope denied, not an error', async () => {
    const a = await h.agent('c047');
    const res = await h.register(a, {
      requested_providers: [
        { provider_id: 'p', scopes: ['p:read'] },
        { provider_id: 'q', scopes: ['q:x'] },
      ],
    });
    expect(res.approved_providers[1]).toMatchObject({ provider_id: 'q', approved_scopes: [], denied_scopes: ['q:x'] });
  });

  it('C-048: a duplicate registration is 409 with the client_id and no new secret; the old secret still works', async () => {
    const a = await h.agent('c048');
    const first = await h.register(a);
    const err = await rejection(() => h.register(a));
    expect(err.code).toBe('AGENT_ALREADY_REGISTERED');
    expect(err.status).toBe(409);
    expect(err.details).toEqual({ client_id: first.client_id });
    expect(JSON.stringify(err)).not.toContain(first.client_secret);
    const status = await h.engine.agentStatus(first.client_id, {
      kind: 'basic',
      clientId: first.client_id,
      clientSecret: first.client_secret,
    });
    expect(status.client_id).toBe(first.client_id);
  });

  it('C-049: credentials are distinct and long (≥ 128 bits)', async () => {
    const [a, b] = [await h.agent('c049a'), await h.agent('c049b')];
    const [ra, rb] = [await h.register(a), await h.register(b)];
    expect(ra.client_id).not.toBe(rb.client_id);
    expect(ra.client_secret).not.toBe(rb.client_secret);
    expect(ra.client_secret.replace(/^ath_secret_/, '').length).toBeGreaterThanOrEqual(22);
  });

  it('C-050/C-051: redirect_uris optional; relative, plain-http (non-loopback) and fragment URIs are 400', async () => {
    expect((await h.register(await h.agent('c050'))).agent_status).toBe('approved');
    for (const bad of ['/relative', 'http://evil.test/cb', 'https://a.test/cb#x']) {
      const a = await h.agent(`c051-${bad.length}`);
      const err = await rejection(() => h.register(a, { redirect_uris: [bad] }));
      expect(err.code).toBe('INVALID_REQUEST');
      expect(await h.store.getAgentByAgentId(a.agentId)).toBeNull();
    }
    const local = await h.agent('c051-local');
    expect((await h.register(local, { redirect_uris: ['http://127.0.0.1:8765/cb'] })).agent_status).toBe('approved');
  });

  it('C-055/C-063: the status endpoint returns the own record without the secret', async () => {
    const a = await h.agent('c063');
    const reg = await h.register(a);
    const status = await h.engine.agentStatus(reg.client_id, { kind: 'basic', clientId: reg.client_id, clientSecret: reg.client_secret });
    expect(validateAgentStatusResponse(status).valid).toBe(true);
    expect(status).toMatchObject({ client_id: reg.client_id, agent_id: a.agentId, agent_status: 'approved' });
    expect(JSON.stringify(status)).not.toContain(reg.client_secret);
    expect((await h.store.getAgent(reg.client_id))!.clientSecretHash).not.toContain(reg.client_secret.slice(11));
  });

  it('C-060/C-061: no or wrong credentials are 403 AGENT_NOT_REGISTERED with identical bodies', async () => {
    const a = await h.agent('c061');
    const reg = await h.register(a);
    const none = await rejection(() => h.engine.agentStatus(reg.client_id, { kind: 'none' }));
    const wrong = await rejection(() => h.engine.agentStatus(reg.client_id, { kind: 'basic', clientId: reg.client_id, clientSecret: 'wrong' }));
    const unknown = await rejection(() => h.engine.agentStatus('nosuch', { kind: 'basic', clientId: 'nosuch', clientSecret: 'whatever' }));
    for (const e of [none, wrong, unknown]) {
      expect(e.code).toBe('AGENT_NOT_REGISTERED');
      expect(validateATHError(JSON.parse(JSON.stringify(e))).valid).toBe(true);
    }
    expect(JSON.stringify(wrong)).toBe(JSON.stringify(unknown));
  });

  it('C-062: reading another or a non-existent client is the same 403 AGENT_IDENTITY_MISMATCH', async () => {
    const [a, b] = [await h.agent('c062a'), await h.agent('c062b')];
    const [ra, rb] = [await h.register(a), await h.register(b)];
    const auth = { kind: 'basic' as const, clientId: ra.client_id, clientSecret: ra.client_secret };
    const other = await rejection(() => h.engine.agentStatus(rb.client_id, auth));
    const missing = await rejection(() => h.engine.agentStatus('does-not-exist', auth));
    expect(other.code).toBe('AGENT_IDENTITY_MISMATCH');
    expect(JSON.stringify(other)).toBe(JSON.stringify(missing));
  });

  it('C-064: attestation authentication works for the own record', async () => {
    const a = await h.agent('c064');
    const reg = await h.register(a);
    const status = await h.engine.agentStatus(reg.client_id, { kind: 'attestation', attestation: await a.att() });
    expect(status.client_id).toBe(reg.client_id);
  });

  it('C-059: a provider without approval requirement auto-approves (registration still required)', async () => {
    const a = await h.agent('c059');
    const res = await h.register(a, { requested_providers: [{ provider_id: 'open', scopes: ['o:read'] }] });
    expect(res.agent_status).toBe('approved');
  });
});

describe('registration under review and denial policies (C-052, C-053, C-065)', () => {
  useNetworkGuard();
  let h: Harness;
  beforeAll(async () => {
    h = await createHarness({ policy: defaultApprovalPolicy({ deny: ['p:admin'] }) });
  });
  afterAll(() => h.close());

  it('C-052: manual review → 201 pending, credentials issued, nothing approved yet', async () => {
    const a = await h.agent('c052');
    const res = await h.register(a);
    expect(res.agent_status).toBe('pending');
    expect(res.client_secret).toBeTruthy();
    expect(res.approved_providers).toEqual([
      expect.objectContaining({ provider_id: 'p', approved_scopes: [], denied_scopes: ['p:read', 'p:write'] }),
    ]);
  });

  it('C-065: an admin approval shows up in the status', async () => {
    const a = await h.agent('c065');
    const reg = await h.register(a);
    const auth = { kind: 'basic' as const, clientId: reg.client_id, clientSecret: reg.client_secret };
    expect((await h.engine.agentStatus(reg.client_id, auth)).agent_status).toBe('pending');
    await h.engine.admin.approve(reg.client_id);
    const after = await h.engine.agentStatus(reg.client_id, auth);
    expect(after.agent_status).toBe('approved');
    expect(after.approved_providers[0]!.approved_scopes).toEqual(['p:read', 'p:write']);
  });

  it('C-053: a registration whose every scope is denied is 201 denied, with reasons', async () => {
    const a = await h.agent('c053');
    const res = await h.register(a, { requested_providers: [{ provider_id: 'p', scopes: ['p:admin'] }] });
    expect(res.agent_status).toBe('denied');
    expect(res.approved_providers[0]).toMatchObject({ approved_scopes: [], denied_scopes: ['p:admin'] });
    expect(h.audit.some((e) => e.event === 'agent_registration_denied' && e.agent_id === a.agentId)).toBe(true);
  });
});
