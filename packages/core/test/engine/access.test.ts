import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AgentRegistrationResponse } from '@athkit/schemas';
import { createHarness, rejection, type Harness, type TestAgent } from '../support/engine-harness.js';
import { useNetworkGuard } from '@athkit/testkit';
import { access, expectAthError, issueToken } from './helpers.js';

describe('API access decisions: validateAccess (checklist H)', () => {
  useNetworkGuard();
  let h: Harness;
  let a1: TestAgent;
  let a2: TestAgent;
  let reg1: AgentRegistrationResponse;
  let reg2: AgentRegistrationResponse;
  let readOnly: string; // T1 with {p:read}
  let readWrite: string; // with {p:read, p:write}

  beforeAll(async () => {
    h = await createHarness();
    a1 = await h.agent('h-a1');
    a2 = await h.agent('h-a2');
    reg1 = await h.register(a1);
    reg2 = await h.register(a2);
    readOnly = (await issueToken(h, reg1, a1, { scopes: ['p:read'], grantId: 'grant-u1' })).access_token;
    readWrite = (await issueToken(h, reg1, a1, { scopes: ['p:read', 'p:write'] })).access_token;
  });
  afterAll(() => h.close());

  it('C-150/C-215: a valid call returns the token binding (agent, user, provider, scopes, grant)', async () => {
    const grant = await access(h.engine, readOnly, a1.agentId);
    expect(grant).toMatchObject({
      agentId: a1.agentId,
      clientId: reg1.client_id,
      userId: 'user-1',
      providerId: 'p',
      scopes: ['p:read'],
      grantId: 'grant-u1',
    });
    expect(JSON.stringify(grant)).not.toContain(readOnly); // only the hash travels on
  });

  it('C-151: no Authorization, Basic, an unknown Bearer token and malformed Bearer values are 401 TOKEN_INVALID', async () => {
    const values = [undefined, '', `Basic ${Buffer.from('a:b').toString('base64')}`, 'Bearer random', 'Bearer ', `Bearer ${readOnly} x`, readOnly, `Token ${readOnly}`];
    for (const authorization of values) {
      const err = await rejection(() => access(h.engine, readOnly, a1.agentId, { authorization }));
      expectAthError(err, 'TOKEN_INVALID');
    }
    // the scheme is case-insensitive (RFC 6750 via RFC 7235)
    expect((await access(h.engine, readOnly, a1.agentId, { authorization: `bearer ${readOnly}` })).agentId).toBe(a1.agentId);
  });

  it('C-154: X-ATH-Agent-ID naming another agent is 403 AGENT_IDENTITY_MISMATCH', async () => {
    expectAthError(await rejection(() => access(h.engine, readOnly, a2.agentId)), 'AGENT_IDENTITY_MISMATCH');
    // and A2's own token cannot be used with A1's name either
    const t2 = (await issueToken(h, reg2, a2, { scopes: ['p:read'] })).access_token;
    expectAthError(await rejection(() => access(h.engine, t2, a1.agentId)), 'AGENT_IDENTITY_MISMATCH');
  });

  it('C-155/AMB-05: a missing, empty, case-changed or repeated X-ATH-Agent-ID is 403 AGENT_IDENTITY_MISMATCH', async () => {
    for (const header of [undefined, '', a1.agentId.toUpperCase(), `${a1.agentId}/`, [a1.agentId, a2.agentId]]) {
      expectAthError(await rejection(() => access(h.engine, readOnly, header)), 'AGENT_IDENTITY_MISMATCH');
    }
  });

  it('threats F9: two Authorization or two X-ATH-Agent-ID header lines are 400 INVALID_REQUEST (validate) and no fast-path grant (peek)', async () => {
    const req = (rawHeaders: string[]) => ({
      rawHeaders,
      authorization: `Bearer ${readOnly}`,
      agentIdHeader: a1.agentId,
      providerId: 'p',
      requiredScope: 'p:read',
    });
    const one = ['Host', 'x', 'Authorization', `Bearer ${readOnly}`, 'X-ATH-Agent-ID', a1.agentId];
    expect((await h.engine.validateAccess(req(one))).agentId).toBe(a1.agentId);
    expect(h.engine.peekAccess(req(one))).not.toBeNull(); // cached by the call above
    for (const dup of [
      [...one, 'authorization', `Bearer ${readOnly}`],
      [...one, 'x-ath-agent-id', a1.agentId],
      ['AUTHORIZATION', 'Bearer other', ...one],
    ]) {
      const err = expectAthError(await rejection(() => h.engine.validateAccess(req(dup))), 'INVALID_REQUEST');
      expect(err['details']).toEqual({ reason: 'duplicate_header' });
      expect(h.engine.peekAccess(req(dup))).toBeNull();
    }
  });

  it('C-156: the path provider must be the token provider (P2 and Q are 403 PROVIDER_MISMATCH)', async () => {
    for (const providerId of ['p2', 'q', 'P']) {
      expectAthError(await rejection(() => access(h.engine, readOnly, a1.agentId, { providerId, requiredScope: 'p:read' })), 'PROVIDER_MISMATCH');
    }
  });

  it('C-157: an operation needing a scope the token lacks is 403 SCOPE_NOT_APPROVED', async () => {
    const err = await rejection(() => access(h.engine, readOnly, a1.agentId, { requiredScope: 'p:write' }));
    expect(expectAthError(err, 'SCOPE_NOT_APPROVED')['details']).toEqual({ required_scope: 'p:write' });
    expectAthError(await rejection(() => access(h.engine, readOnly, a1.agentId, { requiredScope: 'P:READ' })), 'SCOPE_NOT_APPROVED');
  });

  it('C-158: an unmapped operation is denied by default (403 SCOPE_NOT_APPROVED), even for a token holding every scope', async () => {
    const err = await rejection(() => access(h.engine, readWrite, a1.agentId, { requiredScope: null }));
    expect(expectAthError(err, 'SCOPE_NOT_APPROVED')['details']).toEqual({ reason: 'unmapped' });
  });

  it('C-159 (engine part): a token holding {p:read, p:write} passes operations mapped to either scope', async () => {
    for (const requiredScope of ['p:read', 'p:write']) {
      expect((await access(h.engine, readWrite, a1.agentId, { requiredScope })).scopes).toEqual(['p:read', 'p:write']);
    }
  });

  it('C-164/AMB-19: two users of the same agent and provider get tokens bound to their own user and grant', async () => {
    const tu1 = (await issueToken(h, reg1, a1, { scopes: ['p:read'], userId: 'u1', grantId: 'g-u1' })).access_token;
    const tu2 = (await issueToken(h, reg1, a1, { scopes: ['p:read'], userId: 'u2', grantId: 'g-u2' })).access_token;
    expect(await access(h.engine, tu1, a1.agentId)).toMatchObject({ userId: 'u1', grantId: 'g-u1' });
    expect(await access(h.engine, tu2, a1.agentId)).toMatchObject({ userId: 'u2', grantId: 'g-u2' });
  });

  it('C-166(a)/AMB-29: a revoked token with a wrong agent header is 401 TOKEN_REVOKED', async () => {
    const t = (await issueToken(h, reg1, a1, { scopes: ['p:read'] })).access_token;
    await h.engine.revoke({ client_id: reg1.client_id, client_secret: reg1.client_secret, token: t });
    expectAthError(await rejection(() => access(h.engine, t, a2.agentId, { providerId: 'q', requiredScope: null })), 'TOKEN_REVOKED');
  });

  it('C-166(b): a valid token with a wrong agent header and a wrong provider is AGENT_IDENTITY_MISMATCH', async () => {
    expectAthError(await rejection(() => access(h.engine, readOnly, a2.agentId, { providerId: 'p2' })), 'AGENT_IDENTITY_MISMATCH');
  });

  it('C-166: order provider → scope: a wrong provider with a missing scope is PROVIDER_MISMATCH', async () => {
    expectAthError(await rejection(() => access(h.engine, readOnly, a1.agentId, { providerId: 'p2', requiredScope: null })), 'PROVIDER_MISMATCH');
  });

  it('C-168: scope violations (C-157, C-158) are audited as scope_violation with the binding and reason', async () => {
    const t = (await issueToken(h, reg1, a1, { scopes: ['p:read'], userId: 'user-168' })).access_token;
    await rejection(() => access(h.engine, t, a1.agentId, { requiredScope: 'p:write' }));
    await rejection(() => access(h.engine, t, a1.agentId, { requiredScope: null }));
    const events = h.audit.filter((e) => e.event === 'scope_violation' && e.user_id === 'user-168');
    expect(events).toHaveLength(2);
    for (const e of events) {
      expect(e).toMatchObject({ agent_id: a1.agentId, provider_id: 'p', effective_scopes: ['p:read'], denial_reason: expect.any(String) });
    }
    // a wrong agent or provider is not a scope violation
    await rejection(() => access(h.engine, t, a2.agentId));
    expect(h.audit.filter((e) => e.event === 'scope_violation' && e.user_id === 'user-168')).toHaveLength(2);
  });
});

describe('API access lifetimes (C-152, C-153)', () => {
  useNetworkGuard();

  it('C-152: a token works until expires_in and is 401 TOKEN_EXPIRED from then on (also when cached)', async () => {
    const h = await createHarness();
    try {
      const a = await h.agent('c152');
      const reg = await h.register(a);
      const tok = await issueToken(h, reg, a, { scopes: ['p:read'] });
      await access(h.engine, tok.access_token, a.agentId); // warm the token cache
      h.clock.advance(tok.expires_in * 1000 - 1);
      expect((await access(h.engine, tok.access_token, a.agentId)).agentId).toBe(a.agentId);
      h.clock.advance(1);
      expectAthError(await rejection(() => access(h.engine, tok.access_token, a.agentId)), 'TOKEN_EXPIRED');
      // AMB-29: revoked is reported before expired
      await h.engine.revoke({ client_id: reg.client_id, client_secret: reg.client_secret, token: tok.access_token });
      expectAthError(await rejection(() => access(h.engine, tok.access_token, a.agentId)), 'TOKEN_REVOKED');
    } finally {
      await h.close();
    }
  });

  it('C-153: a revoked token is rejected on the very next call, even right after a cached success', async () => {
    const h = await createHarness({ tokenCache: { ttlMs: 60_000 } });
    try {
      const a = await h.agent('c153');
      const reg = await h.register(a);
      const tok = await issueToken(h, reg, a, { scopes: ['p:read'] });
      await access(h.engine, tok.access_token, a.agentId);
      await access(h.engine, tok.access_token, a.agentId);
      await h.engine.revoke({ client_id: reg.client_id, client_secret: reg.client_secret, token: tok.access_token });
      expectAthError(await rejection(() => access(h.engine, tok.access_token, a.agentId)), 'TOKEN_REVOKED');
    } finally {
      await h.close();
    }
  });
});
