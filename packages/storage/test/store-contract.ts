import { randomBytes } from 'node:crypto';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { MemoryStore, PURGE_GRACE_MS } from '@athkit/core';
import type {
  AgentRecord,
  AuditRecord,
  GrantRecord,
  HandshakeRecord,
  RevocationEvent,
  SessionRecord,
  Store,
  TokenRecord,
} from '@athkit/core';
import { sha256, waitFor } from './helpers.js';

/** What a backend gives the contract suite for one test. */
export interface StoreHarness {
  store: Store;
  /** Opens another Store instance over the same data, as a second gateway instance would. */
  openPeer(): Promise<Store>;
  /** True when a revocation made through one instance reaches watchRevocations listeners of another. */
  crossInstanceEvents: boolean;
  /** Closes everything opened and removes the test's data (schema, files). */
  dispose(): Promise<void>;
}

const T0 = Date.UTC(2026, 0, 15, 9, 30, 0);
const MIN = 60_000;
const DAY = 24 * 60 * MIN;

let counter = 0;
const uid = (prefix: string): string =>
  `${prefix}_${(counter++).toString(36).padStart(4, '0')}_${randomBytes(6).toString('hex')}`;

export function agentRecord(overrides: Partial<AgentRecord> = {}): AgentRecord {
  const id = uid('agent');
  return {
    clientId: `ath_${id}`,
    clientSecretHash: sha256(`secret-${id}`),
    agentId: `https://agents.example.com/${id}/.well-known/agent.json`,
    state: 'approved',
    name: 'Shopping Assistant',
    developer: {
      name: 'Acme Agents Ltd',
      id: 'acme-agents',
      contact: 'security@acme.example',
      extra: { verified: false },
    },
    purpose: 'Compares prices and places orders the user asked for',
    redirectUris: ['https://agents.example.com/callback', 'http://127.0.0.1:8765/cb'],
    requestedProviders: [{ provider_id: 'shop', scopes: ['orders:read', 'cart:write', 'payments:charge'] }],
    approvals: [
      {
        provider_id: 'shop',
        approved_scopes: ['orders:read', 'cart:write'],
        denied_scopes: ['payments:charge'],
        denial_reason: 'payments need a manual review',
      },
    ],
    approvalExpiresAt: T0 + 90 * DAY,
    createdAt: T0,
    updatedAt: T0,
    ...overrides,
  };
}

export function sessionRecord(agent: AgentRecord, overrides: Partial<SessionRecord> = {}): SessionRecord {
  const id = uid('sess');
  return {
    id,
    clientId: agent.clientId,
    agentId: agent.agentId,
    providerId: 'shop',
    requestedScopes: ['orders:read', 'cart:write'],
    agentState: `st-${randomBytes(8).toString('hex')}`,
    userRedirectUri: 'https://agents.example.com/callback',
    resource: 'https://shop.example.com/api',
    codeVerifier: randomBytes(32).toString('base64url'),
    upstreamStateHash: sha256(`upstream-${id}`),
    bindingHash: null,
    status: 'pending',
    userId: null,
    consentedScopes: null,
    grantId: null,
    completionCodeHash: null,
    failure: null,
    extra: null,
    createdAt: T0,
    expiresAt: T0 + 10 * MIN,
    updatedAt: T0,
    ...overrides,
  };
}

export function tokenRecord(agent: AgentRecord, overrides: Partial<TokenRecord> = {}): TokenRecord {
  const id = uid('tok');
  return {
    tokenHash: sha256(`token-${id}`),
    clientId: agent.clientId,
    agentId: agent.agentId,
    userId: 'user-alice',
    providerId: 'shop',
    scopes: ['orders:read'],
    sessionId: uid('sess'),
    grantId: `grant-${id}`,
    resource: 'https://shop.example.com/api',
    createdAt: T0,
    expiresAt: T0 + 60 * MIN,
    revokedAt: null,
    ...overrides,
  };
}

export function handshakeRecord(
  agent: AgentRecord,
  overrides: Partial<HandshakeRecord> = {},
): HandshakeRecord {
  return {
    id: uid('ath_hs'),
    clientId: agent.clientId,
    agentId: agent.agentId,
    state: 'initiated',
    data: {
      version: '0.1',
      capabilities: ['ES256', 'TLS1.3'],
      nonceA: randomBytes(16).toString('base64url'),
      nonceB: randomBytes(32).toString('base64url'),
      serverDid: 'did:web:shop.example.com',
    },
    createdAt: T0,
    expiresAt: T0 + 5 * MIN,
    updatedAt: T0,
    ...overrides,
  };
}

export function grantRecord(overrides: Partial<GrantRecord> = {}): GrantRecord {
  return {
    id: uid('grant'),
    providerId: 'shop',
    userId: 'user-alice',
    ciphertext: `v1.${randomBytes(12).toString('base64url')}.${randomBytes(64).toString('base64url')}`,
    version: 1,
    leaseUntil: null,
    createdAt: T0,
    updatedAt: T0,
    ...overrides,
  };
}

function auditEvent(overrides: Partial<AuditRecord> & Pick<AuditRecord, 'event'>): AuditRecord {
  return { timestamp: new Date(T0).toISOString(), ...overrides };
}

/** The message of a rejected promise; it must never carry SQL. */
async function rejection(p: Promise<unknown>): Promise<Error> {
  const e = await p.then(
    () => {
      throw new Error('expected a rejection');
    },
    (err: unknown) => err,
  );
  expect(e).toBeInstanceOf(Error);
  const message = (e as Error).message;
  expect(message).not.toMatch(/\b(insert|select|update|delete)\b/i);
  expect(message).not.toMatch(/constraint|sqlite|duplicate key/i);
  return e as Error;
}

/**
 * The shared Store contract. MemoryStore is the oracle: every assertion here also holds for it,
 * and the differential test replays one operation sequence on both and compares the answers.
 */
export function describeStoreContract(name: string, openFreshStore: () => Promise<StoreHarness>): void {
  describe(`Store contract: ${name}`, () => {
    let h: StoreHarness;
    let store: Store;

    beforeEach(async () => {
      h = await openFreshStore();
      store = h.store;
    });
    afterEach(async () => {
      await h.dispose();
    });

    describe('agents', () => {
      it('round-trips a registration by client_id and by agent_id', async () => {
        const a = agentRecord({ redirectUris: null, name: null, purpose: null });
        expect(await store.createAgent(a)).toEqual({ created: true });
        expect(await store.getAgent(a.clientId)).toEqual(a);
        expect(await store.getAgentByAgentId(a.agentId)).toEqual(a);
        const b = agentRecord();
        await store.createAgent(b);
        expect(await store.getAgent(b.clientId)).toEqual(b);
        expect(await store.getAgent('ath_unknown')).toBeNull();
        expect(await store.getAgentByAgentId('https://agents.example.com/nobody')).toBeNull();
      });

      it('createAgent with an agentId already registered returns the existing record unchanged', async () => {
        const first = agentRecord();
        await store.createAgent(first);
        const second = agentRecord({
          agentId: first.agentId,
          name: 'Impostor',
          state: 'pending',
          createdAt: T0 + MIN,
        });
        const result = await store.createAgent(second);
        expect(result).toEqual({ created: false, existing: first });
        expect(await store.getAgent(first.clientId)).toEqual(first);
        expect(await store.getAgent(second.clientId)).toBeNull();
        expect(await store.getAgentByAgentId(first.agentId)).toEqual(first);
      });

      it('concurrent registrations of one agentId from two instances create exactly one', async () => {
        const peer = await h.openPeer();
        const agentId = agentRecord().agentId;
        const attempts = Array.from({ length: 20 }, (_, i) => agentRecord({ agentId, name: `attempt ${i}` }));
        const results = await Promise.all(
          attempts.map((a, i) => (i % 2 === 0 ? store : peer).createAgent(a)),
        );
        const created = results.filter((r) => r.created);
        expect(created).toHaveLength(1);
        const winner = attempts[results.findIndex((r) => r.created)]!;
        for (const r of results) if (!r.created) expect(r.existing).toEqual(winner);
        expect(await peer.getAgentByAgentId(agentId)).toEqual(winner);
      });

      it('updateAgent applies only the patch and returns the new record', async () => {
        const a = agentRecord({ state: 'pending' });
        await store.createAgent(a);
        const approvals = [{ provider_id: 'shop', approved_scopes: ['orders:read'], denied_scopes: [] }];
        const updated = await store.updateAgent(a.clientId, {
          state: 'approved',
          approvals,
          updatedAt: T0 + 5 * MIN,
        });
        const expected = { ...a, state: 'approved', approvals, updatedAt: T0 + 5 * MIN };
        expect(updated).toEqual(expected);
        expect(await store.getAgent(a.clientId)).toEqual(expected);
        const rotated = await store.updateAgent(a.clientId, {
          clientSecretHash: sha256('rotated'),
          approvalExpiresAt: T0 + 7 * DAY,
          updatedAt: T0 + 6 * MIN,
        });
        expect(rotated).toEqual({
          ...expected,
          clientSecretHash: sha256('rotated'),
          approvalExpiresAt: T0 + 7 * DAY,
          updatedAt: T0 + 6 * MIN,
        });
        expect(await store.updateAgent('ath_unknown', { state: 'suspended', updatedAt: T0 })).toBeNull();
      });

      it('deleteAgent removes the registration, after which the agentId can register again', async () => {
        const a = agentRecord();
        await store.createAgent(a);
        expect(await store.deleteAgent(a.clientId)).toBe(true);
        expect(await store.deleteAgent(a.clientId)).toBe(false);
        expect(await store.getAgent(a.clientId)).toBeNull();
        expect(await store.getAgentByAgentId(a.agentId)).toBeNull();
        const again = agentRecord({ agentId: a.agentId });
        expect(await store.createAgent(again)).toEqual({ created: true });
        expect(await store.getAgentByAgentId(a.agentId)).toEqual(again);
      });

      it('listAgents orders by createdAt then clientId, filters by state and pages', async () => {
        const agents = [
          agentRecord({ clientId: 'ath_c', createdAt: T0 + 2, state: 'approved' }),
          agentRecord({ clientId: 'ath_a', createdAt: T0 + 1, state: 'pending' }),
          agentRecord({ clientId: 'ath_b', createdAt: T0 + 2, state: 'approved' }),
          agentRecord({ clientId: 'ath_d', createdAt: T0, state: 'suspended' }),
        ];
        for (const a of agents) await store.createAgent(a);
        const ids = (list: AgentRecord[]): string[] => list.map((a) => a.clientId);
        expect(ids(await store.listAgents())).toEqual(['ath_d', 'ath_a', 'ath_b', 'ath_c']);
        expect(ids(await store.listAgents({ state: 'approved' }))).toEqual(['ath_b', 'ath_c']);
        expect(ids(await store.listAgents({ limit: 2, offset: 1 }))).toEqual(['ath_a', 'ath_b']);
        expect(ids(await store.listAgents({ offset: 3 }))).toEqual(['ath_c']);
        expect(await store.listAgents({ state: 'denied' })).toEqual([]);
        expect((await store.listAgents())[0]).toEqual(agents[3]);
      });

      it('listAgents returns at most 100 by default', async () => {
        for (let i = 0; i < 105; i++) await store.createAgent(agentRecord({ createdAt: T0 + i }));
        expect(await store.listAgents()).toHaveLength(100);
        expect(await store.listAgents({ offset: 100 })).toHaveLength(5);
      });

      it('records handed out are copies', async () => {
        const a = agentRecord();
        await store.createAgent(a);
        a.approvals.length = 0;
        const got = (await store.getAgent(a.clientId))!;
        expect(got.approvals).toHaveLength(1);
        got.redirectUris!.push('https://evil.example/cb');
        expect((await store.getAgent(a.clientId))!.redirectUris).toHaveLength(2);
      });
    });

    describe('attestation replay cache', () => {
      it('markJtiUsed is true only the first time per (agentId, jti)', async () => {
        const agentId = agentRecord().agentId;
        expect(await store.markJtiUsed(agentId, 'jti-1', T0 + 5 * MIN)).toBe(true);
        expect(await store.markJtiUsed(agentId, 'jti-1', T0 + 5 * MIN)).toBe(false);
        expect(await store.markJtiUsed(agentId, 'jti-1', T0 + 50 * MIN)).toBe(false);
        expect(await store.markJtiUsed(agentId, 'jti-2', T0 + 5 * MIN)).toBe(true);
        expect(await store.markJtiUsed(`${agentId}/other`, 'jti-1', T0 + 5 * MIN)).toBe(true);
      });

      it('concurrent markJtiUsed from two instances on one database: exactly one true', async () => {
        const peer = await h.openPeer();
        const agentId = agentRecord().agentId;
        for (let round = 0; round < 5; round++) {
          const jti = randomBytes(16).toString('base64url');
          const results = await Promise.all(
            Array.from({ length: 20 }, (_, i) =>
              (i % 2 === 0 ? store : peer).markJtiUsed(agentId, jti, T0 + 5 * MIN),
            ),
          );
          expect(results.filter(Boolean)).toHaveLength(1);
        }
      });
    });

    describe('sessions', () => {
      it('round-trips a session by id and by upstream state hash', async () => {
        const a = agentRecord();
        const s = sessionRecord(a, {
          extra: { handshake: 'h9-123', nested: { n: 1 } },
          userRedirectUri: null,
          resource: null,
        });
        await store.createSession(s);
        expect(await store.getSession(s.id)).toEqual(s);
        expect(await store.getSessionByUpstreamState(s.upstreamStateHash)).toEqual(s);
        expect(await store.getSession('missing')).toBeNull();
        expect(await store.getSessionByUpstreamState(sha256('missing'))).toBeNull();
      });

      it('createSession rejects a duplicate id without leaking SQL', async () => {
        const s = sessionRecord(agentRecord());
        await store.createSession(s);
        await rejection(store.createSession({ ...s, upstreamStateHash: sha256('other') }));
        expect(await store.getSession(s.id)).toEqual(s);
      });

      it('updateSession is a compare-and-set on status and binding', async () => {
        const s = sessionRecord(agentRecord());
        await store.createSession(s);
        const binding = sha256('cookie-1');
        // wrong status
        expect(
          await store.updateSession(
            s.id,
            { status: ['consented'] },
            { status: 'consumed', updatedAt: T0 + 1 },
          ),
        ).toBeNull();
        // bind: expects "not bound yet"
        const bound = await store.updateSession(
          s.id,
          { status: ['pending'], bindingHash: null },
          { bindingHash: binding, updatedAt: T0 + 2 },
        );
        expect(bound).toEqual({ ...s, bindingHash: binding, updatedAt: T0 + 2 });
        // binding again fails, and a wrong binding fails
        expect(
          await store.updateSession(
            s.id,
            { status: ['pending'], bindingHash: null },
            { bindingHash: sha256('x'), updatedAt: T0 + 3 },
          ),
        ).toBeNull();
        expect(
          await store.updateSession(
            s.id,
            { status: ['pending'], bindingHash: sha256('cookie-2') },
            { status: 'denied', updatedAt: T0 + 3 },
          ),
        ).toBeNull();
        // matching binding + status
        const consented = await store.updateSession(
          s.id,
          { status: ['pending'], bindingHash: binding },
          {
            status: 'consented',
            userId: 'user-alice',
            consentedScopes: ['orders:read'],
            grantId: 'grant-1',
            updatedAt: T0 + 4,
          },
        );
        expect(consented).toEqual({
          ...s,
          bindingHash: binding,
          status: 'consented',
          userId: 'user-alice',
          consentedScopes: ['orders:read'],
          grantId: 'grant-1',
          updatedAt: T0 + 4,
        });
        // bindingHash absent from the expectation: not checked
        const consumed = await store.updateSession(
          s.id,
          { status: ['consented', 'pending'] },
          { status: 'consumed', completionCodeHash: sha256('code'), extra: { step: 9 }, updatedAt: T0 + 5 },
        );
        expect(consumed).toEqual({
          ...consented,
          status: 'consumed',
          completionCodeHash: sha256('code'),
          extra: { step: 9 },
          updatedAt: T0 + 5,
        });
        expect(await store.getSession(s.id)).toEqual(consumed);
        expect(
          await store.updateSession(s.id, { status: [] }, { status: 'failed', updatedAt: T0 + 6 }),
        ).toBeNull();
        expect(
          await store.updateSession(
            'missing',
            { status: ['pending'] },
            { status: 'failed', updatedAt: T0 + 6 },
          ),
        ).toBeNull();
      });

      it('updateSession records a failure object and can clear fields to null', async () => {
        const s = sessionRecord(agentRecord(), { userId: 'user-bob', extra: { a: 1 } });
        await store.createSession(s);
        const failed = await store.updateSession(
          s.id,
          { status: ['pending'] },
          {
            status: 'failed',
            failure: { code: 'UPSTREAM_ERROR', message: 'provider said no' },
            extra: null,
            userId: null,
            updatedAt: T0 + 1,
          },
        );
        expect(failed).toEqual({
          ...s,
          status: 'failed',
          failure: { code: 'UPSTREAM_ERROR', message: 'provider said no' },
          extra: null,
          userId: null,
          updatedAt: T0 + 1,
        });
      });

      it('50 concurrent consumes of one consented session: exactly one wins', async () => {
        const s = sessionRecord(agentRecord(), {
          status: 'consented',
          userId: 'user-alice',
          consentedScopes: ['orders:read'],
        });
        await store.createSession(s);
        const results = await Promise.all(
          Array.from({ length: 50 }, (_, i) =>
            store.updateSession(
              s.id,
              { status: ['consented'] },
              { status: 'consumed', completionCodeHash: sha256(`code-${i}`), updatedAt: T0 + i },
            ),
          ),
        );
        const winners = results.filter((r) => r !== null);
        expect(winners).toHaveLength(1);
        expect(await store.getSession(s.id)).toEqual(winners[0]);
      });

      it('concurrent consumes from two instances: exactly one wins', async () => {
        const peer = await h.openPeer();
        for (let round = 0; round < 3; round++) {
          const s = sessionRecord(agentRecord(), { status: 'consented' });
          await store.createSession(s);
          const results = await Promise.all(
            Array.from({ length: 20 }, (_, i) =>
              (i % 2 === 0 ? store : peer).updateSession(
                s.id,
                { status: ['consented'] },
                { status: 'consumed', updatedAt: T0 + i },
              ),
            ),
          );
          expect(results.filter((r) => r !== null)).toHaveLength(1);
        }
      });
    });

    describe('9-step handshakes (section M)', () => {
      it('round-trips a handshake; a duplicate id is rejected without leaking SQL', async () => {
        const hs = handshakeRecord(agentRecord());
        await store.createHandshake(hs);
        expect(await store.getHandshake(hs.id)).toEqual(hs);
        expect(await store.getHandshake('ath_hs_nope')).toBeNull();
        await rejection(store.createHandshake({ ...hs, clientId: 'ath_other' }));
        expect(await store.getHandshake(hs.id)).toEqual(hs);
      });

      it('updateHandshake is a compare-and-set on state (one-way state machine, C-259)', async () => {
        const hs = handshakeRecord(agentRecord());
        await store.createHandshake(hs);
        expect(
          await store.updateHandshake(hs.id, ['authenticated'], { state: 'completed', updatedAt: T0 + 1 }),
        ).toBeNull();
        expect(await store.updateHandshake(hs.id, [], { state: 'completed', updatedAt: T0 + 1 })).toBeNull();
        expect(
          await store.updateHandshake('ath_hs_nope', ['initiated'], {
            state: 'terminated',
            updatedAt: T0 + 1,
          }),
        ).toBeNull();
        const data = {
          ...hs.data,
          sessionId: 'ath_sess_1',
          requestedScopes: ['goods:read'],
          ttlGranted: 3600,
          restrictions: { rate_limit: '2/second' },
        };
        const next = await store.updateHandshake(hs.id, ['initiated', 'authenticated'], {
          state: 'authenticated',
          data,
          expiresAt: T0 + 10 * MIN,
          updatedAt: T0 + 2,
        });
        expect(next).toEqual({
          ...hs,
          state: 'authenticated',
          data,
          expiresAt: T0 + 10 * MIN,
          updatedAt: T0 + 2,
        });
        expect(await store.getHandshake(hs.id)).toEqual(next);
        const stateOnly = await store.updateHandshake(hs.id, ['authenticated'], {
          state: 'terminated',
          updatedAt: T0 + 3,
        });
        expect(stateOnly).toEqual({ ...next, state: 'terminated', updatedAt: T0 + 3 });
      });

      it('50 concurrent proofs of one handshake: exactly one wins', async () => {
        const hs = handshakeRecord(agentRecord());
        await store.createHandshake(hs);
        const peer = await h.openPeer();
        const results = await Promise.all(
          Array.from({ length: 50 }, (_, i) =>
            (i % 2 === 0 ? store : peer).updateHandshake(hs.id, ['initiated'], {
              state: 'authenticated',
              updatedAt: T0 + i,
            }),
          ),
        );
        const winners = results.filter((r) => r !== null);
        expect(winners).toHaveLength(1);
        expect(await store.getHandshake(hs.id)).toEqual(winners[0]);
      });

      it('purgeExpired counts expired handshakes with the sessions, after the grace period', async () => {
        const a = agentRecord();
        const old = handshakeRecord(a, { expiresAt: T0 });
        const live = handshakeRecord(a, { expiresAt: T0 + PURGE_GRACE_MS + 10 * MIN });
        await store.createHandshake(old);
        await store.createHandshake(live);
        const now = T0 + PURGE_GRACE_MS + MIN;
        expect((await store.purgeExpired(now)).sessions).toBe(1);
        expect(await store.getHandshake(old.id)).toBeNull();
        expect(await store.getHandshake(live.id)).toEqual(live);
      });

      it('a handshake token round-trips its restrictions (AMB-35); other tokens have none', async () => {
        const a = agentRecord();
        const restricted = tokenRecord(a, {
          restrictions: { ip_whitelist: ['10.0.0.0/8'], rate_limit: '2/second' },
        });
        const plain = tokenRecord(a);
        await store.createToken(restricted);
        await store.createToken(plain);
        expect(await store.getToken(restricted.tokenHash)).toEqual(restricted);
        const back = await store.getToken(plain.tokenHash);
        expect(back).toEqual(plain);
        expect(back).not.toHaveProperty('restrictions');
      });
    });

    describe('tokens', () => {
      it('round-trips a token; a duplicate hash is rejected without leaking SQL', async () => {
        const a = agentRecord();
        const t = tokenRecord(a, { grantId: null, resource: null });
        await store.createToken(t);
        expect(await store.getToken(t.tokenHash)).toEqual(t);
        expect(await store.getToken(sha256('nope'))).toBeNull();
        await rejection(store.createToken({ ...t, userId: 'user-mallory' }));
        expect(await store.getToken(t.tokenHash)).toEqual(t);
      });

      it('revokeToken is true once, records revokedAt and tells listeners', async () => {
        const t = tokenRecord(agentRecord());
        await store.createToken(t);
        const events: RevocationEvent[] = [];
        const stop = await store.watchRevocations((e) => events.push(e));
        expect(await store.revokeToken(t.tokenHash, T0 + MIN)).toBe(true);
        expect(await store.revokeToken(t.tokenHash, T0 + 2 * MIN)).toBe(false);
        expect(await store.revokeToken(sha256('unknown'), T0)).toBe(false);
        expect(await store.getToken(t.tokenHash)).toEqual({ ...t, revokedAt: T0 + MIN });
        expect(await waitFor(() => events.length >= 1)).toBe(true);
        expect(events).toEqual([{ kind: 'token', tokenHash: t.tokenHash }]);
        await stop();
      });

      it('revokeAgentTokens revokes every unrevoked token of the client and counts them', async () => {
        const a = agentRecord();
        const other = agentRecord();
        const t1 = tokenRecord(a);
        const t2 = tokenRecord(a, { userId: 'user-bob' });
        const t3 = tokenRecord(a, { revokedAt: T0 + 1 });
        const t4 = tokenRecord(other);
        for (const t of [t1, t2, t3, t4]) await store.createToken(t);
        const events: RevocationEvent[] = [];
        const stop = await store.watchRevocations((e) => events.push(e));
        expect(await store.revokeAgentTokens(a.clientId, T0 + 9)).toBe(2);
        expect((await store.getToken(t1.tokenHash))!.revokedAt).toBe(T0 + 9);
        expect((await store.getToken(t2.tokenHash))!.revokedAt).toBe(T0 + 9);
        expect((await store.getToken(t3.tokenHash))!.revokedAt).toBe(T0 + 1);
        expect((await store.getToken(t4.tokenHash))!.revokedAt).toBeNull();
        expect(await store.revokeAgentTokens(a.clientId, T0 + 10)).toBe(0);
        expect(await waitFor(() => events.length >= 2)).toBe(true);
        expect(events[0]).toEqual({ kind: 'agent', clientId: a.clientId });
        await stop();
      });

      it('listTokens filters by client, user and liveness, ordered by createdAt and paged', async () => {
        const a = agentRecord();
        const b = agentRecord();
        const t1 = tokenRecord(a, { createdAt: T0 + 3 });
        const t2 = tokenRecord(a, { createdAt: T0 + 1, userId: 'user-bob' });
        const t3 = tokenRecord(a, { createdAt: T0 + 2, expiresAt: T0 + 5 * MIN });
        const t4 = tokenRecord(a, { createdAt: T0 + 4, revokedAt: T0 + 4 });
        const t5 = tokenRecord(b, { createdAt: T0 });
        for (const t of [t1, t2, t3, t4, t5]) await store.createToken(t);
        const hashes = (list: TokenRecord[]): string[] => list.map((t) => t.tokenHash);
        expect(hashes(await store.listTokens())).toEqual(hashes([t5, t2, t3, t1, t4]));
        expect(hashes(await store.listTokens({ clientId: a.clientId }))).toEqual(hashes([t2, t3, t1, t4]));
        expect(hashes(await store.listTokens({ userId: 'user-bob' }))).toEqual(hashes([t2]));
        expect(hashes(await store.listTokens({ clientId: a.clientId, liveAt: T0 + 10 * MIN }))).toEqual(
          hashes([t2, t1]),
        );
        expect(hashes(await store.listTokens({ clientId: a.clientId, liveAt: T0 + 5 * MIN }))).toEqual(
          hashes([t2, t1]),
        );
        expect(hashes(await store.listTokens({ clientId: a.clientId, liveAt: T0 + 5 * MIN - 1 }))).toEqual(
          hashes([t2, t3, t1]),
        );
        expect(hashes(await store.listTokens({ limit: 2, offset: 1 }))).toEqual(hashes([t2, t3]));
        expect(await store.listTokens({ clientId: a.clientId })).toContainEqual(t4);
      });

      it('a revocation written by one instance is seen by the other', async () => {
        const peer = await h.openPeer();
        const a = agentRecord();
        const t1 = tokenRecord(a);
        const t2 = tokenRecord(a);
        await store.createToken(t1);
        await store.createToken(t2);
        expect(await peer.getToken(t1.tokenHash)).toEqual(t1);
        const peerEvents: RevocationEvent[] = [];
        const stop = await peer.watchRevocations((e) => peerEvents.push(e));
        expect(await store.revokeToken(t1.tokenHash, T0 + MIN)).toBe(true);
        expect((await peer.getToken(t1.tokenHash))!.revokedAt).toBe(T0 + MIN);
        expect(await peer.revokeToken(t1.tokenHash, T0 + 2 * MIN)).toBe(false);
        expect(await store.revokeAgentTokens(a.clientId, T0 + 3 * MIN)).toBe(1);
        expect((await peer.getToken(t2.tokenHash))!.revokedAt).toBe(T0 + 3 * MIN);
        if (h.crossInstanceEvents) {
          expect(await waitFor(() => peerEvents.length >= 2, 2000)).toBe(true);
          expect(peerEvents).toEqual([
            { kind: 'token', tokenHash: t1.tokenHash },
            { kind: 'agent', clientId: a.clientId },
          ]);
        }
        await stop();
      });

      it('an unsubscribed listener hears nothing more', async () => {
        const t1 = tokenRecord(agentRecord());
        const t2 = tokenRecord(agentRecord());
        await store.createToken(t1);
        await store.createToken(t2);
        const kept: RevocationEvent[] = [];
        const dropped: RevocationEvent[] = [];
        const stopKept = await store.watchRevocations((e) => kept.push(e));
        const stopDropped = await store.watchRevocations((e) => dropped.push(e));
        await store.revokeToken(t1.tokenHash, T0);
        expect(await waitFor(() => kept.length === 1 && dropped.length === 1)).toBe(true);
        await stopDropped();
        await store.revokeToken(t2.tokenHash, T0);
        expect(await waitFor(() => kept.length === 2)).toBe(true);
        expect(dropped).toHaveLength(1);
        await stopKept();
      });
    });

    describe('grant vault', () => {
      it('round-trips, overwrites with putGrant and deletes', async () => {
        const g = grantRecord({ leaseUntil: T0 + 30_000 });
        await store.putGrant(g);
        expect(await store.getGrant(g.id)).toEqual(g);
        const replaced = { ...g, ciphertext: 'v1.new', version: 7, leaseUntil: null, updatedAt: T0 + 1 };
        await store.putGrant(replaced);
        expect(await store.getGrant(g.id)).toEqual(replaced);
        expect(await store.deleteGrant(g.id)).toBe(true);
        expect(await store.deleteGrant(g.id)).toBe(false);
        expect(await store.getGrant(g.id)).toBeNull();
      });

      it('updateGrant is a compare-and-set on version', async () => {
        const g = grantRecord();
        await store.putGrant(g);
        const leased = await store.updateGrant(g.id, 1, { leaseUntil: T0 + 30_000, updatedAt: T0 + 1 });
        expect(leased).toEqual({ ...g, leaseUntil: T0 + 30_000, version: 2, updatedAt: T0 + 1 });
        expect(await store.updateGrant(g.id, 1, { ciphertext: 'v1.stale', updatedAt: T0 + 2 })).toBeNull();
        const refreshed = await store.updateGrant(g.id, 2, {
          ciphertext: 'v1.fresh',
          leaseUntil: null,
          updatedAt: T0 + 3,
        });
        expect(refreshed).toEqual({
          ...g,
          ciphertext: 'v1.fresh',
          leaseUntil: null,
          version: 3,
          updatedAt: T0 + 3,
        });
        expect(await store.getGrant(g.id)).toEqual(refreshed);
        expect(await store.updateGrant('missing', 1, { updatedAt: T0 })).toBeNull();
      });

      it('two concurrent updateGrant with the same expectVersion (two instances): one wins', async () => {
        const peer = await h.openPeer();
        for (let round = 0; round < 10; round++) {
          const g = grantRecord({ version: 4 });
          await store.putGrant(g);
          const [x, y] = await Promise.all([
            store.updateGrant(g.id, 4, { ciphertext: 'v1.from-a', updatedAt: T0 + 1 }),
            peer.updateGrant(g.id, 4, { ciphertext: 'v1.from-b', updatedAt: T0 + 2 }),
          ]);
          expect([x, y].filter((r) => r !== null)).toHaveLength(1);
          const winner = (x ?? y)!;
          expect(winner.version).toBe(5);
          expect(await peer.getGrant(g.id)).toEqual(winner);
        }
      });
    });

    describe('audit', () => {
      it('appends and queries by event, agent, time range and limit (newest N, oldest first)', async () => {
        const a = agentRecord();
        const events: AuditRecord[] = [];
        for (let i = 0; i < 6; i++) {
          events.push(
            auditEvent({
              timestamp: new Date(T0 + i * MIN).toISOString(),
              event: i % 2 === 0 ? 'access_granted' : 'proxy_request',
              agent_id: i < 4 ? a.agentId : 'https://agents.example.com/other',
              client_id: a.clientId,
              user_id: 'user-alice',
              provider_id: 'shop',
              effective_scopes: ['orders:read'],
              method: 'GET',
              path: `/orders/${i}`,
              status: 200,
            }),
          );
        }
        for (const e of events) await store.appendAudit(e);
        expect(await store.queryAudit()).toEqual(events);
        expect(await store.queryAudit({ event: 'access_granted' })).toEqual([
          events[0],
          events[2],
          events[4],
        ]);
        expect(await store.queryAudit({ agentId: a.agentId })).toEqual(events.slice(0, 4));
        expect(await store.queryAudit({ since: events[2]!.timestamp, until: events[4]!.timestamp })).toEqual(
          events.slice(2, 5),
        );
        expect(await store.queryAudit({ limit: 2 })).toEqual(events.slice(4));
        expect(await store.queryAudit({ event: 'proxy_request', agentId: a.agentId, limit: 1 })).toEqual([
          events[3],
        ]);
        expect(await store.queryAudit({ event: 'token_revoked' })).toEqual([]);
      });
    });

    describe('rate limits', () => {
      it('counts hits in fixed windows', async () => {
        const key = `ip:${uid('rl')}`;
        const windowMs = 60_000;
        const now = T0 + 15_000; // T0 is a whole minute
        const r1 = await store.hitRateLimit(key, 2, windowMs, now);
        expect(r1).toEqual({ allowed: true, granted: 1, count: 1, resetInMs: 45_000 });
        expect(await store.hitRateLimit(key, 2, windowMs, now + 1000)).toEqual({
          allowed: true,
          granted: 1,
          count: 2,
          resetInMs: 44_000,
        });
        expect(await store.hitRateLimit(key, 2, windowMs, now + 2000)).toEqual({
          allowed: false,
          granted: 0,
          count: 3,
          resetInMs: 43_000,
        });
        expect(await store.hitRateLimit(`${key}:other`, 2, windowMs, now)).toEqual({
          allowed: true,
          granted: 1,
          count: 1,
          resetInMs: 45_000,
        });
        // next window starts over
        expect(await store.hitRateLimit(key, 2, windowMs, T0 + windowMs)).toEqual({
          allowed: true,
          granted: 1,
          count: 1,
          resetInMs: 60_000,
        });
      });

      it('takes several units at once: granted is what fitted under the limit, the count grows by all of them', async () => {
        const key = `agent:${uid('rl')}`;
        const hit = (units: number) => store.hitRateLimit(key, 10, 60_000, T0 + 1000, units);
        expect(await hit(4)).toEqual({ allowed: true, granted: 4, count: 4, resetInMs: 59_000 });
        expect(await hit(4)).toEqual({ allowed: true, granted: 4, count: 8, resetInMs: 59_000 });
        expect(await hit(4)).toEqual({ allowed: true, granted: 2, count: 12, resetInMs: 59_000 });
        expect(await hit(4)).toEqual({ allowed: false, granted: 0, count: 16, resetInMs: 59_000 });
        expect(await hit(1)).toEqual({ allowed: false, granted: 0, count: 17, resetInMs: 59_000 });
      });

      it('units taken concurrently by two instances never add up to more than the limit', async () => {
        const peer = await h.openPeer();
        const key = `agent:${uid('rl')}`;
        const results = await Promise.all(
          Array.from({ length: 12 }, (_, i) => (i % 2 === 0 ? store : peer).hitRateLimit(key, 25, 60_000, T0 + 1000, 3)),
        );
        expect(results.reduce((sum, r) => sum + r.granted, 0)).toBe(25);
        expect(results.map((r) => r.count).sort((x, y) => x - y)).toEqual(Array.from({ length: 12 }, (_, i) => 3 * (i + 1)));
      });

      it('is shared by two instances', async () => {
        const peer = await h.openPeer();
        const key = `client:${uid('rl')}`;
        const results = await Promise.all(
          Array.from({ length: 30 }, (_, i) =>
            (i % 2 === 0 ? store : peer).hitRateLimit(key, 10, 60_000, T0 + 1000),
          ),
        );
        expect(results.map((r) => r.count).sort((x, y) => x - y)).toEqual(
          Array.from({ length: 30 }, (_, i) => i + 1),
        );
        expect(results.filter((r) => r.allowed)).toHaveLength(10);
        expect((await peer.hitRateLimit(key, 10, 60_000, T0 + 2000)).count).toBe(31);
      });
    });

    describe('purgeExpired', () => {
      it('removes exactly the rows whose retention ended', async () => {
        const now = T0 + 10 * DAY;
        const a = agentRecord();
        await store.createAgent(a);
        // jti: expires_at < now goes; == now stays
        expect(await store.markJtiUsed(a.agentId, 'old-1', now - 1)).toBe(true);
        expect(await store.markJtiUsed(a.agentId, 'old-2', now - DAY)).toBe(true);
        expect(await store.markJtiUsed(a.agentId, 'edge', now)).toBe(true);
        expect(await store.markJtiUsed(a.agentId, 'live', now + MIN)).toBe(true);
        // sessions and tokens: kept until expiresAt + PURGE_GRACE_MS
        const sGone = sessionRecord(a, { expiresAt: now - PURGE_GRACE_MS - 1 });
        const sEdge = sessionRecord(a, { expiresAt: now - PURGE_GRACE_MS });
        const sLive = sessionRecord(a, { expiresAt: now - 1 });
        for (const s of [sGone, sEdge, sLive]) await store.createSession(s);
        const tGone = tokenRecord(a, { expiresAt: now - PURGE_GRACE_MS - 1 });
        const tGoneRevoked = tokenRecord(a, {
          expiresAt: now - 2 * PURGE_GRACE_MS,
          revokedAt: now - 3 * PURGE_GRACE_MS,
        });
        const tEdge = tokenRecord(a, { expiresAt: now - PURGE_GRACE_MS });
        const tLive = tokenRecord(a, { expiresAt: now + MIN });
        for (const t of [tGone, tGoneRevoked, tEdge, tLive]) await store.createToken(t);
        // rate-limit windows: started more than 2 h ago goes
        const hour = 3_600_000;
        await store.hitRateLimit('rl:old', 5, 60_000, now - 2 * hour - 60_001);
        await store.hitRateLimit('rl:edge', 5, 60_000, now - 2 * hour);
        await store.hitRateLimit('rl:live', 5, 60_000, now);
        const g = grantRecord();
        await store.putGrant(g);
        await store.appendAudit(auditEvent({ event: 'agent_registered', agent_id: a.agentId }));

        expect(await store.purgeExpired(now)).toEqual({ jti: 2, sessions: 1, tokens: 2, rateLimits: 1 });

        expect(await store.markJtiUsed(a.agentId, 'old-1', now + MIN)).toBe(true);
        expect(await store.markJtiUsed(a.agentId, 'edge', now + MIN)).toBe(false);
        expect(await store.markJtiUsed(a.agentId, 'live', now + MIN)).toBe(false);
        expect(await store.getSession(sGone.id)).toBeNull();
        expect(await store.getSessionByUpstreamState(sGone.upstreamStateHash)).toBeNull();
        expect(await store.getSession(sEdge.id)).toEqual(sEdge);
        expect(await store.getSession(sLive.id)).toEqual(sLive);
        expect(await store.getToken(tGone.tokenHash)).toBeNull();
        expect(await store.getToken(tGoneRevoked.tokenHash)).toBeNull();
        expect(await store.getToken(tEdge.tokenHash)).toEqual(tEdge);
        expect(await store.getToken(tLive.tokenHash)).toEqual(tLive);
        expect((await store.hitRateLimit('rl:old', 5, 60_000, now - 2 * hour - 60_001)).count).toBe(1);
        expect((await store.hitRateLimit('rl:edge', 5, 60_000, now - 2 * hour)).count).toBe(2);
        expect((await store.hitRateLimit('rl:live', 5, 60_000, now)).count).toBe(2);
        expect(await store.getAgent(a.clientId)).toEqual(a);
        expect(await store.getGrant(g.id)).toEqual(g);
        expect(await store.queryAudit()).toHaveLength(1);
        // nothing left to purge at the same instant (the re-marked jti is live)
        expect(await store.purgeExpired(now)).toEqual({ jti: 0, sessions: 0, tokens: 0, rateLimits: 1 });
      });

      it('purges more rows than one batch', async () => {
        const agentId = agentRecord().agentId;
        for (let i = 0; i < 1234; i++)
          await store.markJtiUsed(agentId, `j${i}`, i % 2 === 0 ? T0 - 1 : T0 + MIN);
        expect((await store.purgeExpired(T0)).jti).toBe(617);
        expect(await store.markJtiUsed(agentId, 'j0', T0 + MIN)).toBe(true);
        expect(await store.markJtiUsed(agentId, 'j1', T0 + MIN)).toBe(false);
      });
    });

    describe('MemoryStore as oracle', () => {
      it('answers a mixed operation sequence exactly like MemoryStore', async () => {
        const oracle = new MemoryStore();
        const log: string[] = [];
        let seed = 0x2545f491;
        const rand = (n: number): number => {
          seed ^= seed << 13;
          seed ^= seed >>> 17;
          seed ^= seed << 5;
          return (seed >>> 0) % n;
        };
        const agents = Array.from({ length: 4 }, (_, i) =>
          agentRecord({ clientId: `ath_oracle_${i}`, createdAt: T0 + i }),
        );
        const sessions: SessionRecord[] = [];
        const tokens: TokenRecord[] = [];
        const grants = Array.from({ length: 3 }, () => grantRecord());
        const statuses = ['pending', 'consented', 'denied', 'failed', 'consumed'] as const;
        const both = async (label: string, op: (s: Store) => Promise<unknown>): Promise<void> => {
          const [want, got] = [await op(oracle), await op(store)];
          log.push(label);
          expect(got, `step ${log.length}: ${label}`).toEqual(want);
        };
        for (let step = 0; step < 300; step++) {
          const a = agents[rand(agents.length)]!;
          const now = T0 + step * 13 * MIN;
          switch (rand(12)) {
            case 0: {
              const record = { ...a, clientId: `${a.clientId}_${rand(3)}`, createdAt: now };
              await both('createAgent', (s) => s.createAgent(record));
              break;
            }
            case 1: {
              const clientId = `${a.clientId}_${rand(3)}`;
              const state = rand(2) ? 'pending' : 'approved';
              await both('updateAgent', (s) => s.updateAgent(clientId, { state, updatedAt: now }));
              break;
            }
            case 2: {
              const clientId = `${a.clientId}_${rand(3)}`;
              await both('deleteAgent+list', async (s) => [
                await s.deleteAgent(clientId),
                await s.listAgents({ limit: 5 }),
              ]);
              break;
            }
            case 3: {
              const jti = `j${rand(20)}`;
              const exp = now + rand(3) * 30 * MIN;
              await both('markJtiUsed', (s) => s.markJtiUsed(a.agentId, jti, exp));
              break;
            }
            case 4: {
              const sess = sessionRecord(a, { createdAt: now, expiresAt: now + 10 * MIN });
              sessions.push(sess);
              await both('createSession', (s) => s.createSession(sess));
              break;
            }
            case 5: {
              const sess = sessions[rand(sessions.length || 1)];
              if (!sess) break;
              const expect = {
                status: [statuses[rand(5)]!, statuses[rand(5)]!],
                ...(rand(2) ? { bindingHash: rand(2) ? null : sha256('b') } : {}),
              };
              const patch = {
                status: statuses[rand(5)]!,
                ...(rand(2) ? { bindingHash: sha256('b') } : {}),
                updatedAt: now,
              };
              await both('updateSession', (s) => s.updateSession(sess.id, expect, patch));
              await both('getSessionByUpstreamState', (s) =>
                s.getSessionByUpstreamState(sess.upstreamStateHash),
              );
              break;
            }
            case 6: {
              const tok = tokenRecord(a, { createdAt: now, expiresAt: now + rand(4) * 30 * MIN });
              tokens.push(tok);
              await both('createToken', (s) => s.createToken(tok));
              break;
            }
            case 7: {
              const tok = tokens[rand(tokens.length || 1)];
              if (tok) await both('revokeToken', (s) => s.revokeToken(tok.tokenHash, now));
              break;
            }
            case 8:
              await both('revokeAgentTokens+listTokens', async (s) => [
                await s.revokeAgentTokens(a.clientId, now),
                await s.listTokens({ liveAt: now, limit: 10 }),
              ]);
              break;
            case 9: {
              const g = grants[rand(grants.length)]!;
              if (rand(4) === 0) {
                await both('putGrant', (s) => s.putGrant({ ...g, updatedAt: now }));
              } else {
                const version = 1 + rand(3);
                const leaseUntil = rand(2) ? now : null;
                await both('updateGrant', (s) =>
                  s.updateGrant(g.id, version, { leaseUntil, updatedAt: now }),
                );
              }
              break;
            }
            case 10:
              await both('hitRateLimit', (s) => s.hitRateLimit(`rl:${a.clientId}`, 3, 60 * MIN, now));
              break;
            case 11:
              await both('purgeExpired', async (s) => {
                // MemoryStore keeps only the current window per key, so rate-limit counts are compared elsewhere.
                const { rateLimits: _ignored, ...rest } = await s.purgeExpired(now);
                return rest;
              });
              break;
          }
        }
        await both('final agents', (s) => s.listAgents());
        await both('final tokens', (s) => s.listTokens({ limit: 1000 }));
        await both('final grants', (s) => Promise.all(grants.map((g) => s.getGrant(g.id))));
        await both('final sessions', (s) => Promise.all(sessions.map((x) => s.getSession(x.id))));
        expect(log.length).toBeGreaterThan(300);
      });
    });
  });
}
