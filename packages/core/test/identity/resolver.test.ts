import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/clock.js';
import { AthError } from '../../src/errors.js';
import type { DocumentFetcher } from '../../src/identity/fetcher.js';
import { createSafeFetcher, type SafeFetcher } from '../../src/identity/node-fetcher.js';
import { IdentityResolver, type IdentityResolverOptions } from '../../src/identity/resolver.js';
import { startAgentServer, type AgentServer, type TestAgent } from '../support/agent-server.js';
import { foreignKeys } from '../support/keys.js';
import { useNetworkGuard } from '@athkit/testkit';

useNetworkGuard();

async function reason(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (err) {
    expect(err).toBeInstanceOf(AthError);
    expect((err as AthError).code).toBe('INVALID_ATTESTATION');
    expect((err as AthError).status).toBe(401);
    return (err as AthError).details?.['reason'];
  }
  throw new Error('expected resolve() to fail');
}

/** Counts every fetch the resolver asks for, including ones the transport then refuses. */
function counting(inner: SafeFetcher): DocumentFetcher & { calls: URL[] } {
  const calls: URL[] = [];
  return {
    calls,
    fetch: (url, signal) => (calls.push(url), inner.fetch(url, signal)),
    isInsecureAllowed: (url) => inner.isInsecureAllowed(url),
  };
}

describe('IdentityResolver', () => {
  let ad: AgentServer;
  let transport: SafeFetcher;
  let fetcher: ReturnType<typeof counting>;
  let clock: ManualClock;
  let n = 0;
  const agent = (options?: Parameters<AgentServer['addAgent']>[1]) => ad.addAgent(`agent${++n}`, options);
  const resolver = (options: Partial<IdentityResolverOptions> = {}) =>
    new IdentityResolver({ fetcher, clock, ...options });

  beforeAll(async () => {
    ad = await startAgentServer();
    transport = createSafeFetcher({
      allowInsecure: [ad.hostPort],
      connectTimeoutMs: 500,
      readTimeoutMs: 1000,
    });
  });
  beforeEach(() => {
    clock = new ManualClock(1_700_000_000_000);
    fetcher = counting(transport);
  });
  afterAll(async () => {
    await transport.close();
    await ad.close();
  });

  describe('documents and keys', () => {
    it('C-011/C-012 resolves a valid document and imports its ES256 key once, at fetch time', async () => {
      const a = await agent();
      const identity = await resolver().resolve(a.agentId);
      expect(identity.agentId).toBe(a.agentId);
      expect(identity.document.agent_id).toBe(a.agentId);
      expect(identity.fetchedAt).toBe(clock.now());
      expect(identity.keys).toHaveLength(1);
      expect(identity.keys[0]!.kid).toBe('k1');
      expect(identity.keys[0]!.key.algorithm).toMatchObject({ name: 'ECDSA', namedCurve: 'P-256' });
      expect(identity.keys[0]!.key.usages).toEqual(['verify']);
    });

    it.each([
      ['jwk', 'k1'],
      ['jwks', 'k1'],
      ['pem', null],
    ] as const)('AMB-24 accepts public_key as %s', async (keyFormat, kid) => {
      const a = await agent({ keyFormat });
      const identity = await resolver().resolve(a.agentId);
      expect(identity.keys.map((k) => k.kid)).toEqual([kid]);
    });

    it('accepts a JWK without kid and a JWKS with several distinct kids', async () => {
      const a = await agent({ kid: null });
      expect((await resolver().resolve(a.agentId)).keys.map((k) => k.kid)).toEqual([null]);
      const b = await agent();
      b.setMode({
        kind: 'patch',
        patch: {
          public_key: {
            keys: [
              { ...a.publicJwk, kid: 'old' },
              { ...b.publicJwk, kid: 'new' },
            ],
          },
        },
      });
      expect((await resolver().resolve(b.agentId)).keys.map((k) => k.kid)).toEqual(['old', 'new']);
    });

    it('accepts +json media types with parameters', async () => {
      const a = await agent();
      a.setMode({ kind: 'content-type', contentType: 'application/agent+json; charset=utf-8' });
      await expect(resolver().resolve(a.agentId)).resolves.toMatchObject({ agentId: a.agentId });
    });
  });

  describe('C-026 / threats B7: an unusable document is a 401, never a 5xx', () => {
    const cases: [string, (a: TestAgent) => Promise<void> | void, string][] = [
      ['(a) 404', (a) => a.setMode({ kind: 'status', status: 404 }), 'identity_document_unavailable'],
      ['500', (a) => a.setMode({ kind: 'status', status: 500 }), 'identity_document_unavailable'],
      ['(b) non-JSON body', (a) => a.setMode({ kind: 'non-json' }), 'invalid_identity_document'],
      [
        'B7 text/html content type',
        (a) => a.setMode({ kind: 'content-type', contentType: 'text/html' }),
        'invalid_identity_document',
      ],
      [
        'missing content type',
        (a) => a.setMode({ kind: 'raw', status: 200, contentType: null, body: '{}' }),
        'invalid_identity_document',
      ],
      [
        '(c) missing public_key',
        (a) => a.setMode({ kind: 'patch', patch: { public_key: undefined } }),
        'invalid_identity_document',
      ],
      [
        '(c) missing developer.id',
        (a) => a.setMode({ kind: 'patch', patch: { developer: { name: 'x' } } }),
        'invalid_identity_document',
      ],
      [
        '(d) agent_id differs from the URL',
        (a) => a.setMode({ kind: 'patch', patch: { agent_id: `${a.agentId}x` } }),
        'invalid_identity_document',
      ],
      [
        '(e) public_key is a number',
        (a) => a.setMode({ kind: 'patch', patch: { public_key: 42 } }),
        'invalid_identity_document',
      ],
      [
        'B7 JSON nested 30k deep (within the size cap)',
        (a) => a.setMode({ kind: 'deep-nesting', depth: 30_000 }),
        'invalid_identity_document',
      ],
      [
        'B7 JSON nested 100k deep',
        (a) => a.setMode({ kind: 'deep-nesting', depth: 100_000 }),
        'identity_document_too_large',
      ],
      [
        'a JSON array',
        (a) => a.setMode({ kind: 'raw', status: 200, contentType: 'application/json', body: '[]' }),
        'invalid_identity_document',
      ],
      [
        'invalid UTF-8',
        (a) =>
          a.setMode({
            kind: 'raw',
            status: 200,
            contentType: 'application/json',
            body: Uint8Array.of(0x7b, 0xff, 0x7d),
          }),
        'invalid_identity_document',
      ],
    ];
    it.each(cases)('%s', async (_name, setup, expected) => {
      const a = await agent();
      await setup(a);
      expect(await reason(resolver().resolve(a.agentId))).toBe(expected);
    });

    it('B7 rejects RSA, P-384 and Ed25519 keys (JWK and PEM), a point off the curve, and private key material', async () => {
      const k = await foreignKeys();
      const bad: unknown[] = [
        k.rsaJwk,
        k.rsaPem,
        k.p384Jwk,
        k.p384Pem,
        k.ed25519Jwk,
        k.ed25519Pem,
        k.offCurveJwk,
        k.privateJwk,
        { keys: [k.rsaJwk] },
        { keys: [] },
        { kty: 'EC', crv: 'P-256', x: 'AAAA', y: 'AAAA' },
        { kty: 'oct', k: 'c2VjcmV0' },
        '-----BEGIN PUBLIC KEY-----\nnot base64\n-----END PUBLIC KEY-----',
        'not a pem',
      ];
      for (const publicKey of bad) {
        const a = await agent();
        a.setMode({ kind: 'patch', patch: { public_key: publicKey } });
        expect(await reason(resolver().resolve(a.agentId)), JSON.stringify(publicKey).slice(0, 60)).toBe(
          'invalid_identity_document',
        );
      }
    });

    it('rejects a JWKS whose keys cannot be told apart by kid', async () => {
      const a = await agent();
      const b = await agent();
      a.setMode({ kind: 'patch', patch: { public_key: { keys: [a.publicJwk, b.publicJwk] } } });
      expect(await reason(resolver().resolve(a.agentId))).toBe('invalid_identity_document');
      a.setMode({
        kind: 'patch',
        patch: {
          public_key: {
            keys: [
              { ...a.publicJwk, kid: 'x' },
              { ...b.publicJwk, kid: 'x' },
            ],
          },
        },
      });
      expect(await reason(resolver().resolve(a.agentId))).toBe('invalid_identity_document');
    });

    it('wraps a raw error from a custom fetcher into INVALID_ATTESTATION', async () => {
      const r = new IdentityResolver({
        fetcher: { fetch: () => Promise.reject(new Error('socket hang up 10.0.0.1')) },
        clock,
      });
      const err = (await r.resolve('https://agent.example/.well-known/agent.json').then(
        () => undefined,
        (e: unknown) => e,
      )) as AthError;
      expect(err).toBeInstanceOf(AthError);
      expect(err.details).toEqual({ reason: 'identity_document_unavailable' });
      expect(err.message).not.toContain('10.0.0.1');
    });
  });

  describe('C-027 / threats B8: agent_id shape', () => {
    it.each([
      ['plain http (not allow-listed)', 'http://agent1.test/.well-known/agent.json'],
      ['not a URI', 'not a uri'],
      ['empty', ''],
      ['file:', 'file:///etc/passwd'],
      ['data:', 'data:application/json,{}'],
      ['ftp:', 'ftp://agent.example/.well-known/agent.json'],
      ['userinfo', 'https://user@agent.example/.well-known/agent.json'],
      [
        'encoded slash in userinfo (host = evil)',
        'https://agent.example%2f@evil.example/.well-known/agent.json',
      ],
      ['fragment', 'https://agent.example/.well-known/agent.json#x'],
      ['empty fragment', 'https://agent.example/.well-known/agent.json#'],
      ['query', 'https://agent.example/.well-known/agent.json?x=1'],
      ['trailing-dot host', 'https://agent.example./.well-known/agent.json'],
      ['upper-case scheme and host (non-canonical)', 'HTTPS://Agent.Example/.well-known/agent.json'],
      ['explicit default port (non-canonical)', 'https://agent.example:443/.well-known/agent.json'],
      ['dot segments (non-canonical)', 'https://agent.example/a/../.well-known/agent.json'],
      ['decimal IPv4 (non-canonical)', 'https://2130706433/.well-known/agent.json'],
      ['longer than 2048 characters', `https://agent.example/${'a'.repeat(2048)}`],
    ])('%s → invalid_agent_id, no fetch', async (_name, agentId) => {
      expect(await reason(resolver().resolve(agentId))).toBe('invalid_agent_id');
      expect(fetcher.calls).toHaveLength(0);
    });

    it('AMB-25: the /.well-known/agent.json path and the default port are conventional, not enforced', async () => {
      const a = await agent(); // served at /agents/<name>/.well-known/agent.json on a random port
      await expect(resolver().resolve(a.agentId)).resolves.toMatchObject({ agentId: a.agentId });
    });

    it('B8 a second spelling of the same agent is refused rather than cached as another identity', async () => {
      const a = await agent();
      const r = resolver();
      await r.resolve(a.agentId);
      const other = a.agentId.replace('http://', 'HTTP://');
      expect(await reason(r.resolve(other))).toBe('invalid_agent_id');
      expect(a.fetches).toBe(1);
    });
  });

  describe('cache (C-028…C-033, threats B9/B10)', () => {
    it('C-033 caches: 3 quick resolves → 1 fetch', async () => {
      const a = await agent();
      const r = resolver();
      for (let i = 0; i < 3; i++) await r.resolve(a.agentId);
      expect(a.fetches).toBe(1);
      expect(r.peek(a.agentId)?.agentId).toBe(a.agentId);
    });

    it('B9 100 concurrent first-time resolves → 1 fetch', async () => {
      const a = await agent();
      const r = resolver();
      const results = await Promise.all(Array.from({ length: 100 }, () => r.resolve(a.agentId)));
      expect(new Set(results).size).toBe(1);
      expect(a.fetches).toBe(1);
    });

    it('B9 concurrent failures are coalesced too', async () => {
      const a = await agent();
      a.setMode({ kind: 'status', status: 404 });
      const r = resolver();
      const results = await Promise.allSettled(Array.from({ length: 50 }, () => r.resolve(a.agentId)));
      expect(results.every((x) => x.status === 'rejected')).toBe(true);
      expect(a.fetches).toBe(1);
    });

    it('C-028 / B10 caches at most 5 minutes even with Cache-Control: max-age=86400', async () => {
      const a = await agent();
      a.setMode({ kind: 'ok', cacheControl: 'max-age=86400' });
      const r = resolver();
      await r.resolve(a.agentId);
      clock.advance(299_000);
      await r.resolve(a.agentId);
      expect(a.fetches).toBe(1);
      clock.advance(2_000); // 301 s after the fetch
      expect(r.peek(a.agentId)).toBeUndefined();
      await r.resolve(a.agentId);
      expect(a.fetches).toBe(2);
    });

    it('C-028 a configured TTL above 5 minutes is capped at 5 minutes', async () => {
      const a = await agent();
      const r = resolver({ cacheTtlMs: 86_400_000 });
      await r.resolve(a.agentId);
      clock.advance(300_001);
      await r.resolve(a.agentId);
      expect(a.fetches).toBe(2);
    });

    it('C-028 after the TTL a rotated key replaces the old one', async () => {
      const a = await agent();
      const r = resolver();
      const first = await r.resolve(a.agentId);
      await a.rotateKey();
      clock.advance(300_000);
      const second = await r.resolve(a.agentId);
      expect(second).not.toBe(first);
      expect(second.keys[0]!.key).not.toBe(first.keys[0]!.key);
    });

    it('C-029/C-030 forceRefresh bypasses the cache at most once per agent per minute', async () => {
      const a = await agent();
      const r = resolver();
      const first = await r.resolve(a.agentId);
      await a.rotateKey();
      const refreshed = await r.resolve(a.agentId, { forceRefresh: true });
      expect(refreshed).not.toBe(first);
      expect(a.fetches).toBe(2);
      for (let i = 0; i < 10; i++) {
        clock.advance(5_000);
        expect(await r.resolve(a.agentId, { forceRefresh: true })).toBe(refreshed); // rate-limited: same object
      }
      expect(a.fetches).toBe(2);
      clock.advance(10_000); // 60 s after the forced fetch
      await r.resolve(a.agentId, { forceRefresh: true });
      expect(a.fetches).toBe(3);
    });

    it('C-030 the refetch limit is per agent', async () => {
      const a = await agent();
      const b = await agent();
      const r = resolver();
      await r.resolve(a.agentId);
      await r.resolve(b.agentId);
      await r.resolve(a.agentId, { forceRefresh: true });
      await r.resolve(b.agentId, { forceRefresh: true });
      expect([a.fetches, b.fetches]).toEqual([2, 2]);
    });

    it('B9 a transient 500 fails, is not re-fetched per request, and recovers after the refetch window', async () => {
      const a = await agent();
      a.setMode({ kind: 'status', status: 500 });
      const r = resolver();
      expect(await reason(r.resolve(a.agentId))).toBe('identity_document_unavailable');
      a.setMode({ kind: 'ok' });
      for (let i = 0; i < 5; i++)
        expect(await reason(r.resolve(a.agentId, { forceRefresh: i % 2 === 0 }))).toBe(
          'identity_document_unavailable',
        );
      expect(a.fetches).toBe(1);
      clock.advance(60_000);
      await expect(r.resolve(a.agentId)).resolves.toMatchObject({ agentId: a.agentId });
      expect(a.fetches).toBe(2);
    });

    it('B9 only validated documents are cached; a bad refresh keeps the last good identity', async () => {
      const a = await agent();
      const r = resolver();
      const good = await r.resolve(a.agentId);
      a.setMode({ kind: 'status', status: 503 });
      expect(await r.resolve(a.agentId, { forceRefresh: true }).catch((e: unknown) => e)).toBeInstanceOf(
        AthError,
      );
      expect(r.peek(a.agentId)).toBe(good);
      expect(await r.resolve(a.agentId)).toBe(good);
    });

    it("B9 a document naming B, served at A's URL, is rejected and B's cached key is unchanged", async () => {
      const a = await agent();
      const b = await agent();
      const r = resolver();
      const bIdentity = await r.resolve(b.agentId);
      a.setMode({ kind: 'patch', patch: { agent_id: b.agentId, public_key: a.publicJwk } });
      expect(await reason(r.resolve(a.agentId))).toBe('invalid_identity_document');
      expect(r.peek(b.agentId)).toBe(bIdentity);
      expect(r.peek(a.agentId)).toBeUndefined();
    });

    it('invalidate() forgets an agent', async () => {
      const a = await agent();
      const r = resolver();
      await r.resolve(a.agentId);
      r.invalidate(a.agentId);
      expect(r.peek(a.agentId)).toBeUndefined();
      await r.resolve(a.agentId);
      expect(a.fetches).toBe(2);
    });

    it('maxEntries bounds the cache (oldest evicted first)', async () => {
      const agents = [await agent(), await agent(), await agent()];
      const r = resolver({ maxEntries: 2 });
      for (const a of agents) await r.resolve(a.agentId);
      expect(r.peek(agents[0]!.agentId)).toBeUndefined();
      expect(r.peek(agents[2]!.agentId)).toBeDefined();
    });
  });

  afterEach(() => {
    fetcher.calls.length = 0;
  });
});
