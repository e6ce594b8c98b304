import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AthEngine } from '../../src/engine/index.js';
import type { AgentRegistrationResponse } from '@athkit/schemas';
import { createHarness, rejection, type Harness, type TestAgent } from '../support/engine-harness.js';
import { useNetworkGuard } from '@athkit/testkit';
import { access, authorizeBody, expectAthError, issueToken, sha256b64url } from './helpers.js';

describe('revocation (checklist J)', () => {
  useNetworkGuard();
  let h: Harness;
  let a1: TestAgent;
  let a2: TestAgent;
  let reg1: AgentRegistrationResponse;
  let reg2: AgentRegistrationResponse;

  beforeAll(async () => {
    h = await createHarness({ tokenCache: { ttlMs: 60_000 } }); // a long cache TTL: revocation must not wait for it
    a1 = await h.agent('j-a1');
    a2 = await h.agent('j-a2');
    reg1 = await h.register(a1);
    reg2 = await h.register(a2);
  });
  afterAll(() => h.close());

  const token = async (userId = 'user-1', reg = reg1, agent = a1) =>
    (await issueToken(h, reg, agent, { scopes: ['p:read'], userId })).access_token;
  const creds = (reg: AgentRegistrationResponse) => ({ client_id: reg.client_id, client_secret: reg.client_secret });
  const works = async (t: string, agent = a1) => expect((await access(h.engine, t, agent.agentId)).agentId).toBe(agent.agentId);

  it('C-180: an agent revokes its own token; the very next call is TOKEN_REVOKED', async () => {
    const t = await token();
    await works(t); // cached
    await expect(h.engine.revoke({ ...creds(reg1), token: t })).resolves.toBeUndefined();
    expectAthError(await rejection(() => access(h.engine, t, a1.agentId)), 'TOKEN_REVOKED');
    expect((await h.store.getToken(await sha256b64url(t)))!.revokedAt).toBe(h.clock.now());
  });

  it('C-181: revocation without any credentials is 403 AGENT_NOT_REGISTERED and the token keeps working', async () => {
    const t = await token();
    expectAthError(await rejection(() => h.engine.revoke({ token: t })), 'AGENT_NOT_REGISTERED');
    expectAthError(await rejection(() => h.engine.revoke({ client_id: reg1.client_id, token: t })), 'AGENT_NOT_REGISTERED');
    await works(t);
  });

  it('C-182: wrong client credentials are 403 AGENT_NOT_REGISTERED and the token keeps working', async () => {
    const t = await token();
    for (const body of [
      { client_id: reg1.client_id, client_secret: 'x', token: t },
      { client_id: reg1.client_id, client_secret: reg2.client_secret, token: t },
      { client_id: 'nosuch', client_secret: 'x', token: t },
    ]) {
      expectAthError(await rejection(() => h.engine.revoke(body)), 'AGENT_NOT_REGISTERED');
    }
    await works(t);
  });

  it('C-183/AMB-08: an agent cannot revoke another agent’s token (403 AGENT_IDENTITY_MISMATCH); the token keeps working', async () => {
    const t = await token();
    expectAthError(await rejection(() => h.engine.revoke({ ...creds(reg2), token: t })), 'AGENT_IDENTITY_MISMATCH');
    await works(t);
    expect((await h.store.getToken(await sha256b64url(t)))!.revokedAt).toBeNull();
  });

  it('C-184: an unknown token after successful authentication is a plain 200', async () => {
    await expect(h.engine.revoke({ ...creds(reg1), token: 'garbage' })).resolves.toBeUndefined();
    await expect(h.engine.revoke({ ...creds(reg1), token: 'ath_tk_' + 'A'.repeat(43) })).resolves.toBeUndefined();
  });

  it('C-185: revoking twice is 200 both times', async () => {
    const t = await token();
    await h.engine.revoke({ ...creds(reg1), token: t });
    await expect(h.engine.revoke({ ...creds(reg1), token: t })).resolves.toBeUndefined();
  });

  it('C-185: revoking an expired token is 200 as well (checked on a separate clock)', async () => {
    const h2 = await createHarness();
    try {
      const a = await h2.agent('c185');
      const reg = await h2.register(a);
      const tok = await issueToken(h2, reg, a, { scopes: ['p:read'] });
      h2.clock.advance(tok.expires_in * 1000 + 1000);
      expectAthError(await rejection(() => access(h2.engine, tok.access_token, a.agentId)), 'TOKEN_EXPIRED');
      await expect(h2.engine.revoke({ ...creds(reg), token: tok.access_token })).resolves.toBeUndefined();
      expectAthError(await rejection(() => access(h2.engine, tok.access_token, a.agentId)), 'TOKEN_REVOKED');
    } finally {
      await h2.close();
    }
  });

  it('C-186: a missing token is 400 INVALID_REQUEST', async () => {
    expectAthError(await rejection(() => h.engine.revoke(creds(reg1))), 'INVALID_REQUEST');
    expectAthError(await rejection(() => h.engine.revoke({ ...creds(reg1), token: 42 })), 'INVALID_REQUEST');
  });

  it('C-187: an admin caller revokes any token; a user caller only its own tokens', async () => {
    const tAdmin = await token('u-admin-case');
    await h.engine.revoke({ token: tAdmin }, { kind: 'admin', actor: 'ops' });
    expectAthError(await rejection(() => access(h.engine, tAdmin, a1.agentId)), 'TOKEN_REVOKED');

    const mine = await token('u-mine');
    const theirs = await token('u-theirs');
    expectAthError(await rejection(() => h.engine.revoke({ token: theirs }, { kind: 'user', userId: 'u-mine' })), 'AGENT_IDENTITY_MISMATCH');
    await works(theirs);
    await h.engine.revoke({ token: mine }, { kind: 'user', userId: 'u-mine' });
    expectAthError(await rejection(() => access(h.engine, mine, a1.agentId)), 'TOKEN_REVOKED');
  });

  it('C-188: a token_revoked audit event is written once, naming agent, user, provider and who revoked', async () => {
    const t = await token('user-188');
    await h.engine.revoke({ ...creds(reg1), token: t });
    await h.engine.revoke({ ...creds(reg1), token: t }); // idempotent: no second event
    const events = (await h.store.queryAudit({ event: 'token_revoked', agentId: a1.agentId })).filter((e) => e.user_id === 'user-188');
    expect(events).toHaveLength(1);
    expect(events[0]).toMatchObject({ agent_id: a1.agentId, client_id: reg1.client_id, provider_id: 'p', revoked_by: 'agent' });
    expect(JSON.stringify(events)).not.toContain(t);
  });

  it('AMB-30: revoking one token leaves the agent’s other tokens (even for the same user) alone', async () => {
    const t1 = await token('user-30');
    const t2 = await token('user-30');
    await h.engine.revoke({ ...creds(reg1), token: t1 });
    await works(t2);
  });
});

describe('registration revocation by an admin (C-189, C-218)', () => {
  useNetworkGuard();
  let h: Harness;
  beforeAll(async () => {
    h = await createHarness({ tokenCache: { ttlMs: 60_000 } });
  });
  afterAll(() => h.close());

  async function agentWithTokens(name: string) {
    const a = await h.agent(name);
    const reg = await h.register(a);
    const t1 = (await issueToken(h, reg, a, { scopes: ['p:read'], userId: 'u1' })).access_token;
    const t2 = (await issueToken(h, reg, a, { scopes: ['p:read', 'p:write'], userId: 'u2' })).access_token;
    for (const t of [t1, t2]) await access(h.engine, t, a.agentId); // cached
    return { a, reg, tokens: [t1, t2] };
  }

  it('C-189: an admin deny kills all live tokens (TOKEN_REVOKED) and new authorize is AGENT_UNAPPROVED', async () => {
    const bystander = await agentWithTokens('c189-bystander');
    const { a, reg, tokens } = await agentWithTokens('c189-deny');
    await h.engine.admin.deny(reg.client_id);
    for (const t of tokens) expectAthError(await rejection(() => access(h.engine, t, a.agentId)), 'TOKEN_REVOKED');
    const err = await rejection(async () => h.engine.authorize(await authorizeBody(reg, a)));
    expect(expectAthError(err, 'AGENT_UNAPPROVED')['details']).toMatchObject({ agent_status: 'denied' });
    for (const t of bystander.tokens) expect((await access(h.engine, t, bystander.a.agentId)).agentId).toBe(bystander.a.agentId);
  });

  it('C-189/C-218: an admin suspension kills all live tokens and authorize is AGENT_UNAPPROVED (wire status denied)', async () => {
    const { a, reg, tokens } = await agentWithTokens('c189-suspend');
    await h.engine.admin.suspend(reg.client_id);
    for (const t of tokens) expectAthError(await rejection(() => access(h.engine, t, a.agentId)), 'TOKEN_REVOKED');
    const err = await rejection(async () => h.engine.authorize(await authorizeBody(reg, a)));
    expect(expectAthError(err, 'AGENT_UNAPPROVED')['details']).toMatchObject({ agent_status: 'denied', reason: 'suspended' });
    const status = await h.engine.agentStatus(reg.client_id, { kind: 'basic', clientId: reg.client_id, clientSecret: reg.client_secret });
    expect(status.agent_status).toBe('denied');
  });

  it('C-189 (AMB-13): an admin removal kills all live tokens; the client is then unknown (AGENT_NOT_REGISTERED)', async () => {
    const { a, reg, tokens } = await agentWithTokens('c189-remove');
    await h.engine.admin.remove(reg.client_id);
    for (const t of tokens) expectAthError(await rejection(() => access(h.engine, t, a.agentId)), 'TOKEN_REVOKED');
    expectAthError(await rejection(async () => h.engine.authorize(await authorizeBody(reg, a))), 'AGENT_NOT_REGISTERED');
  });

  it('C-189: admin.revokeTokens kills the tokens but keeps the registration usable for new flows', async () => {
    const { a, reg, tokens } = await agentWithTokens('c189-tokens');
    expect(await h.engine.admin.revokeTokens(reg.client_id)).toBe(2);
    for (const t of tokens) expectAthError(await rejection(() => access(h.engine, t, a.agentId)), 'TOKEN_REVOKED');
    const fresh = await issueToken(h, reg, a, { scopes: ['p:read'] });
    expect((await access(h.engine, fresh.access_token, a.agentId)).agentId).toBe(a.agentId);
  });

  it('C-189: admin.revokeTokenHash kills one token by its stored hash (cached validation included), audits once, ignores unknown hashes', async () => {
    const { a, tokens } = await agentWithTokens('c189-hash');
    const [first, second] = tokens as [string, string];
    await access(h.engine, first, a.agentId); // now in the validation cache
    const hash = await sha256b64url(first);
    await h.engine.admin.revokeTokenHash(hash, 'ops');
    await h.engine.admin.revokeTokenHash(hash, 'ops');
    await h.engine.admin.revokeTokenHash('no-such-hash', 'ops');
    expectAthError(await rejection(() => access(h.engine, first, a.agentId)), 'TOKEN_REVOKED');
    expect((await access(h.engine, second, a.agentId)).agentId).toBe(a.agentId);
    const events = await h.store.queryAudit({ event: 'token_revoked', agentId: a.agentId });
    expect(events.filter((e) => e['revoked_by'] === 'admin:ops')).toHaveLength(1);
  });

  it('C-189: admin actions on an unknown client are 404 NOT_FOUND', async () => {
    for (const op of [() => h.engine.admin.deny('nosuch'), () => h.engine.admin.approve('nosuch'), () => h.engine.admin.remove('nosuch')]) {
      expectAthError(await rejection(op), 'NOT_FOUND');
    }
  });
});

describe('revocation threats (threats G; where threats and checklist differ, the checklist codes of AMB-08 apply)', () => {
  useNetworkGuard();
  let h: Harness;
  let a1: TestAgent;
  let a2: TestAgent;
  let reg1: AgentRegistrationResponse;
  let reg2: AgentRegistrationResponse;

  beforeAll(async () => {
    h = await createHarness({ tokenCache: { ttlMs: 60_000 } });
    a1 = await h.agent('g-a1');
    a2 = await h.agent('g-a2');
    reg1 = await h.register(a1);
    reg2 = await h.register(a2);
  });
  afterAll(() => h.close());

  const token = async () => (await issueToken(h, reg1, a1, { scopes: ['p:read'] })).access_token;
  const creds = (reg: AgentRegistrationResponse) => ({ client_id: reg.client_id, client_secret: reg.client_secret });

  it('threats G1: another client cannot revoke A’s token, the refusal is audited-free of the token, and A’s token still works', async () => {
    const t = await token();
    expectAthError(await rejection(() => h.engine.revoke({ ...creds(reg2), token: t })), 'AGENT_IDENTITY_MISMATCH');
    expect((await access(h.engine, t, a1.agentId)).clientId).toBe(reg1.client_id);
    expect(JSON.stringify(h.audit)).not.toContain(t);
  });

  it('threats G2: no credentials or a wrong secret are refused with one body (AMB-08: 403 AGENT_NOT_REGISTERED)', async () => {
    const t = await token();
    const none = await rejection(() => h.engine.revoke({ token: t }));
    const wrong = await rejection(() => h.engine.revoke({ client_id: reg1.client_id, client_secret: 'nope', token: t }));
    expectAthError(none, 'AGENT_NOT_REGISTERED');
    expect(JSON.stringify(wrong)).toBe(JSON.stringify(none));
    expect((await access(h.engine, t, a1.agentId)).clientId).toBe(reg1.client_id);
  });

  it('threats G3: a random or a 10 KB token answers 200 (RFC 7009 §2.2), never an error', async () => {
    await expect(h.engine.revoke({ ...creds(reg1), token: 'random-garbage' })).resolves.toBeUndefined();
    await expect(h.engine.revoke({ ...creds(reg1), token: 'x'.repeat(10 * 1024) })).resolves.toBeUndefined();
  });

  it('threats G4: a revocation through one engine is refused by another engine on the same store at once', async () => {
    const other = new AthEngine({
      store: h.store,
      baseUrl: 'https://ath.test',
      providers: h.engine.ctx.providers,
      clock: h.clock,
      tokenCache: { ttlMs: 60_000 },
    });
    await other.start();
    try {
      const t = await token();
      expect((await access(other, t, a1.agentId)).clientId).toBe(reg1.client_id); // warm in other's cache
      await h.engine.revoke({ ...creds(reg1), token: t });
      expectAthError(await rejection(() => access(other, t, a1.agentId)), 'TOKEN_REVOKED');
    } finally {
      await other.close();
    }
  });

  it('threats G5: suspending or deregistering an agent kills all its tokens at once; approval expiry lets live tokens run to exp (AMB-40)', async () => {
    const [t1, t2] = [await token(), await token()];
    await h.engine.admin.suspend(reg1.client_id);
    for (const t of [t1, t2]) expectAthError(await rejection(() => access(h.engine, t, a1.agentId)), 'TOKEN_REVOKED');

    const t3 = (await issueToken(h, reg2, a2, { scopes: ['p:read'] })).access_token;
    await h.engine.admin.remove(reg2.client_id);
    expectAthError(await rejection(() => access(h.engine, t3, a2.agentId)), 'TOKEN_REVOKED');

    const a3 = await h.agent('g-a3');
    const reg3 = await h.register(a3);
    const t4 = (await issueToken(h, reg3, a3, { scopes: ['p:read'] })).access_token;
    const agent = (await h.store.getAgent(reg3.client_id))!;
    await h.store.updateAgent(reg3.client_id, { approvalExpiresAt: h.clock.now() - 1, updatedAt: h.clock.now() });
    expect((await access(h.engine, t4, a3.agentId)).clientId).toBe(agent.clientId);
    expectAthError(await rejection(async () => h.engine.authorize(await authorizeBody(reg3, a3))), 'AGENT_UNAPPROVED');
  });
});
