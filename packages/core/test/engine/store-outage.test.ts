/**
 * Threats I3 (storage outage), engine side: an unreachable store fails closed with 503
 * INTERNAL_ERROR + Retry-After, and the token cache is not trusted while the store's revocation
 * feed is down (revocations made elsewhere would go unheard).
 */
import { afterEach, describe, expect, it } from 'vitest';
import { validateATHError } from '@athkit/schemas';
import { useNetworkGuard } from '@athkit/testkit';
import {
  AthError,
  AthUnavailableError,
  errorHeaders,
  StoreUnavailableError,
  toAthError,
} from '../../src/errors.js';
import { TokenCache } from '../../src/engine/access.js';
import { MemoryStore } from '../../src/memory-store.js';
import type { RevocationEvent, TokenRecord } from '../../src/store.js';
import { createHarness, rejection, type Harness } from '../support/engine-harness.js';
import { access, authorizeBody, issueToken } from './helpers.js';

/**
 * A memory store standing in for a shared one: revocations "made by another instance" (`muted`)
 * do not reach the listener, the feed can be reported lost/live, and the store can be made unreachable.
 */
class FlakyStore extends MemoryStore {
  down = false;
  muted = false;
  tokenReads = 0;
  private listener: ((event: RevocationEvent) => void) | undefined;

  override watchRevocations(listener: (event: RevocationEvent) => void): Promise<() => Promise<void>> {
    this.listener = listener;
    return super.watchRevocations((e) => {
      if (!this.muted) listener(e);
    });
  }

  feed(live: boolean): void {
    this.listener?.({ kind: 'feed', live });
  }

  override getToken(tokenHash: string): Promise<TokenRecord | null> {
    this.tokenReads++;
    if (this.down)
      return Promise.reject(
        new StoreUnavailableError({ cause: new Error('connect ECONNREFUSED 10.1.2.3:5432') }),
      );
    return super.getToken(tokenHash);
  }

  override markJtiUsed(agentId: string, jti: string, expiresAt: number): Promise<boolean> {
    if (this.down)
      return Promise.reject(
        new StoreUnavailableError({ cause: new Error('Connection terminated unexpectedly') }),
      );
    return super.markJtiUsed(agentId, jti, expiresAt);
  }
}

describe('storage outage (threats I3): errors', () => {
  it('an unreachable store becomes 503 INTERNAL_ERROR with Retry-After and a body that reveals nothing', () => {
    const err = toAthError(
      new StoreUnavailableError({ cause: new Error('connect ECONNREFUSED db.internal:5432') }),
    );
    expect(err).toBeInstanceOf(AthError);
    expect(err).toBeInstanceOf(AthUnavailableError);
    expect(err.status).toBe(503);
    expect(err.code).toBe('INTERNAL_ERROR');
    expect(errorHeaders(err)).toEqual({ 'retry-after': '1' });
    const body = JSON.parse(JSON.stringify(err)) as Record<string, unknown>;
    expect(validateATHError(body).valid).toBe(true);
    expect(Object.keys(body).sort()).toEqual(['code', 'message']);
    expect(JSON.stringify(body)).not.toMatch(/ECONNREFUSED|db\.internal|5432|stack/);
  });

  it('any other failure stays a generic 500 (C-204)', () => {
    const err = toAthError(new Error('storage failure', { cause: new Error('syntax error at or near "x"') }));
    expect(err.status).toBe(500);
    expect(errorHeaders(err)).toEqual({});
  });
});

describe('storage outage (threats I3): the engine', () => {
  useNetworkGuard();
  let h: Harness | undefined;
  afterEach(async () => {
    await h?.close();
    h = undefined;
  });

  async function setUp(): Promise<{
    h: Harness;
    store: FlakyStore;
    token: string;
    agentId: string;
    reg: Awaited<ReturnType<Harness['register']>>;
    agent: Awaited<ReturnType<Harness['agent']>>;
  }> {
    const store = new FlakyStore();
    // A long TTL, so only the feed rule can explain a cache miss.
    h = await createHarness({ store, tokenCache: { ttlMs: 60_000 } });
    await h.engine.start();
    const agent = await h.agent('i3');
    const reg = await h.register(agent);
    const token = (await issueToken(h, reg, agent, { scopes: ['p:read'] })).access_token;
    return { h, store, token, agentId: agent.agentId, reg, agent };
  }

  it('attestation checks fail closed: no replay check, no acceptance (503, not 401 or 200)', async () => {
    const { h, store, reg, agent } = await setUp();
    store.down = true;
    const err = await h.engine.authorize(await authorizeBody(reg, agent)).then(
      () => null,
      (e: unknown) => toAthError(e),
    );
    expect(err?.status).toBe(503);
    expect(err?.code).toBe('INTERNAL_ERROR');
    store.down = false;
    await expect(h.engine.authorize(await authorizeBody(reg, agent))).resolves.toMatchObject({
      ath_session_id: expect.any(String),
    });
  });

  it('token validation fails closed once the cache cannot decide (503), and recovers with the store', async () => {
    const { h, store, token, agentId } = await setUp();
    store.down = true;
    store.feed(false); // a store that lost its database loses the feed's connection too
    const err = await access(h.engine, token, agentId).then(
      () => null,
      (e: unknown) => toAthError(e),
    );
    expect(err?.status).toBe(503);
    store.down = false;
    await expect(access(h.engine, token, agentId)).resolves.toMatchObject({ agentId });
  });

  it('while the feed is down the cache is bypassed: a revocation made elsewhere is refused at once', async () => {
    const { h, store, token, agentId } = await setUp();
    const peek = () =>
      h.engine.peekAccess({
        authorization: `Bearer ${token}`,
        agentIdHeader: agentId,
        providerId: 'p',
        requiredScope: 'p:read',
      });
    await access(h.engine, token, agentId);
    const reads = store.tokenReads;
    await access(h.engine, token, agentId);
    expect(store.tokenReads).toBe(reads); // cached
    expect(peek()).not.toBeNull();

    store.feed(false);
    expect(h.engine.tokenCache.feedLive).toBe(false);
    expect(h.engine.tokenCache.size).toBe(0);
    expect(peek()).toBeNull();
    await access(h.engine, token, agentId);
    await access(h.engine, token, agentId);
    expect(store.tokenReads).toBe(reads + 2); // every call reads the store, nothing is cached

    // Another instance revokes; its notification is lost with the feed.
    store.muted = true;
    const record = (await store.listTokens({}))[0]!;
    expect(await store.revokeToken(record.tokenHash, Date.now())).toBe(true);
    expect((await rejection(() => access(h.engine, token, agentId))).code).toBe('TOKEN_REVOKED');
  });

  it('a feed that is live again lets the cache fill again, but nothing cached before the loss survives', async () => {
    const { h, store, token, agentId } = await setUp();
    await access(h.engine, token, agentId);
    store.feed(false);
    store.feed(true);
    expect(h.engine.tokenCache.feedLive).toBe(true);
    const reads = store.tokenReads;
    await access(h.engine, token, agentId);
    expect(store.tokenReads).toBe(reads + 1); // the entry from before the loss was dropped
    await access(h.engine, token, agentId);
    expect(store.tokenReads).toBe(reads + 1); // cached again
  });

  it('close() returns the cache to its feedless default', async () => {
    const { h, store } = await setUp();
    store.feed(false);
    await h.engine.close();
    expect(h.engine.tokenCache.feedLive).toBe(true);
  });
});

describe('TokenCache generations', () => {
  const record = (tokenHash: string, clientId = 'c1'): TokenRecord => ({
    tokenHash,
    clientId,
    agentId: 'a',
    userId: 'u',
    providerId: 'p',
    scopes: ['p:read'],
    sessionId: 's',
    grantId: null,
    resource: null,
    createdAt: 0,
    expiresAt: 10_000,
    revokedAt: null,
  });

  it('a record read before an invalidation is not cached after it', () => {
    const cache = new TokenCache(10, 60_000);
    const before = cache.generation;
    cache.invalidate({ kind: 'token', tokenHash: 'h1' }); // heard while the read was in flight
    cache.set('t1', record('h1'), 0, before);
    expect(cache.get('t1', 1)).toBeUndefined();
    cache.set('t1', record('h1'), 0, cache.generation);
    expect(cache.get('t1', 1)).toBeDefined();
  });

  it('nothing is cached or served while the feed is down', () => {
    const cache = new TokenCache(10, 60_000);
    cache.set('t1', record('h1'), 0);
    cache.invalidate({ kind: 'feed', live: false });
    expect(cache.get('t1', 1)).toBeUndefined();
    cache.set('t2', record('h2'), 0);
    expect(cache.size).toBe(0);
    cache.invalidate({ kind: 'feed', live: true });
    cache.set('t2', record('h2'), 0);
    expect(cache.get('t2', 1)).toBeDefined();
  });
});
