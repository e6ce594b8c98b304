import { exportJWK, exportSPKI, generateKeyPair, SignJWT, type CryptoKey } from 'jose';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { acceptedAudiences } from '../../src/attestation/audience.js';
import { generateAgentKeyPair } from '../../src/attestation/sign.js';
import { AthError } from '../../src/errors.js';
import { startAgentServer, startCanary, type TestAgent } from '../support/agent-server.js';
import {
  createAttestationHarness,
  TEST_BASE,
  type AttestationHarness,
} from '../support/attestation-harness.js';
import { b64url, claimsFor, hmacSign, rawSign, segments } from '../support/jwt.js';
import { useNetworkGuard } from '@athkit/testkit';

useNetworkGuard();

const P256_N = 0xffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551n;

let h: AttestationHarness;
let a: TestAgent;

beforeEach(async () => {
  h = await createAttestationHarness();
  a = await h.ad.addAgent('a');
});
afterEach(async () => {
  await h.close();
});

const verify = (
  jwt: string,
  options: { agentId?: string; audiences?: ReadonlySet<string> | readonly string[] } = {},
) =>
  h.verifier.verify(jwt, {
    agentId: options.agentId ?? a.agentId,
    audiences: options.audiences ?? h.audiences,
  });

/** Asserts a 401 INVALID_ATTESTATION with the given reason, and that the token is not echoed. */
async function rejects(
  jwt: string,
  reason: string | string[],
  options?: Parameters<typeof verify>[1],
): Promise<AthError> {
  let error: unknown;
  try {
    await verify(jwt, options);
  } catch (err) {
    error = err;
  }
  expect(error, 'verification should fail').toBeInstanceOf(AthError);
  const e = error as AthError;
  expect(e.code).toBe('INVALID_ATTESTATION');
  expect(e.status).toBe(401);
  expect([reason].flat()).toContain(e.details?.['reason']);
  const wire = JSON.stringify(e.toJSON());
  if (typeof jwt === 'string' && jwt.length > 20) expect(wire).not.toContain(jwt.slice(-20));
  return e;
}

/** Signs hand-made claims with the agent's key (header kid k1 unless overridden). */
const signed = (
  overrides: Record<string, unknown> = {},
  header: Record<string, unknown> | string = { alg: 'ES256', typ: 'JWT', kid: 'k1' },
  key?: CryptoKey,
) => rawSign(header, claimsFor(a.agentId, TEST_BASE, h.clock.now(), overrides), key ?? a.privateKey);

const warm = async () => {
  await verify(await h.mint(a));
  expect(a.fetches).toBe(1);
};

describe('AttestationVerifier', () => {
  it('C-011 accepts a correct attestation and reports what it verified', async () => {
    const jwt = await h.mint(a, { jti: 'the-jti' });
    const result = await verify(jwt);
    expect(result).toMatchObject({ agentId: a.agentId, jti: 'the-jti' });
    expect(result.issuedAt).toBe(Math.floor(h.clock.now() / 1000) * 1000);
    expect(result.expiresAt).toBe(result.issuedAt + 300_000);
    expect(result.claims.sub).toBe(a.agentId);
    expect(result.identity.document.agent_id).toBe(a.agentId);
  });

  it('C-011 accepts JWKS and PEM published keys, and a kid-less JWK whatever the header kid', async () => {
    for (const [name, keyFormat, kid] of [
      ['jwks', 'jwks', 'k1'],
      ['pem', 'pem', null],
      ['nokid', 'jwk', null],
    ] as const) {
      const agent = await h.ad.addAgent(name, { keyFormat, kid });
      await expect(verify(await h.mint(agent), { agentId: agent.agentId })).resolves.toMatchObject({
        agentId: agent.agentId,
      });
      if (kid === null)
        await expect(
          verify(await h.mint(agent, { kid: 'anything' }), { agentId: agent.agentId }),
        ).resolves.toBeDefined();
    }
  });

  describe('key and signature', () => {
    it('C-012 / A1 a JWT for A signed with K2 fails; ≤ 1 forced refetch of A within 60 s even after 20 tries', async () => {
      const b = await h.ad.addAgent('b');
      await warm();
      for (let i = 0; i < 20; i++) {
        const forged = await rawSign(
          { alg: 'ES256', typ: 'JWT', kid: 'k1' },
          claimsFor(a.agentId, TEST_BASE, h.clock.now()),
          b.privateKey,
        );
        await rejects(forged, 'invalid_signature');
        h.clock.advance(2_000);
      }
      expect(a.fetches).toBe(2);
      expect(b.fetches).toBe(0);
    });

    it('C-025 a tampered payload fails', async () => {
      await warm();
      const [hd, pl, sig] = segments(await h.mint(a));
      const i = Math.floor(pl.length / 2);
      const flipped = pl.slice(0, i) + (pl[i] === 'A' ? 'B' : 'A') + pl.slice(i + 1);
      await rejects(`${hd}.${flipped}.${sig}`, ['invalid_signature', 'malformed_token']);
    });

    it('C-013 / A2 alg none, NONE, None and an empty signature are refused', async () => {
      const claims = claimsFor(a.agentId, TEST_BASE, h.clock.now());
      for (const alg of ['none', 'NONE', 'None']) {
        await rejects(
          `${b64url(JSON.stringify({ alg }))}.${b64url(JSON.stringify(claims))}.`,
          'malformed_token',
        );
        // Even with a signature-shaped third segment, the algorithm is refused.
        await rejects(
          `${b64url(JSON.stringify({ alg }))}.${b64url(JSON.stringify(claims))}.${'A'.repeat(86)}`,
          'unsupported_alg',
        );
      }
      expect(a.fetches).toBe(0);
    });

    it('C-013 / A3 HS256 with the public key (JWK JSON, PEM, raw x||y) as HMAC secret is refused', async () => {
      const claims = claimsFor(a.agentId, TEST_BASE, h.clock.now());
      const jwk = a.publicJwk;
      const raw = Buffer.concat([Buffer.from(jwk.x!, 'base64url'), Buffer.from(jwk.y!, 'base64url')]);
      const secrets = [Buffer.from(JSON.stringify(jwk)), Buffer.from(await exportSPKI(a.publicKey)), raw];
      for (const secret of secrets) {
        const jwt = await hmacSign({ alg: 'HS256', typ: 'JWT', kid: 'k1' }, claims, secret);
        await rejects(jwt, ['unsupported_alg', 'malformed_token']);
      }
    });

    it('C-013 / A3 RS256, PS256, ES384, ES512 and EdDSA tokens with matching attacker keys are refused', async () => {
      for (const alg of ['RS256', 'PS256', 'ES384', 'ES512', 'EdDSA']) {
        const { privateKey } = await generateKeyPair(alg);
        const jwt = await new SignJWT(claimsFor(a.agentId, TEST_BASE, h.clock.now()))
          .setProtectedHeader({ alg, kid: 'k1' })
          .sign(privateKey);
        await rejects(jwt, ['unsupported_alg', 'malformed_token']);
      }
      expect(a.fetches).toBe(0);
    });

    it('A4 r=s=0 ("psychic signature"), DER signatures, signatures 1 byte short/long, padding and whitespace fail', async () => {
      await warm();
      const jwt = await h.mint(a);
      const [hd, pl, sig] = segments(jwt);
      const rs = Buffer.from(sig, 'base64url');
      const der = (() => {
        const int = (b: Buffer) => {
          let v = b;
          while (v.length > 1 && v[0] === 0 && v[1]! < 0x80) v = v.subarray(1);
          if (v[0]! >= 0x80) v = Buffer.concat([Buffer.of(0), v]);
          return Buffer.concat([Buffer.of(0x02, v.length), v]);
        };
        const body = Buffer.concat([int(rs.subarray(0, 32)), int(rs.subarray(32))]);
        return Buffer.concat([Buffer.of(0x30, body.length), body]);
      })();
      await rejects(`${hd}.${pl}.${b64url(new Uint8Array(64))}`, 'invalid_signature');
      await rejects(`${hd}.${pl}.${b64url(der)}`, 'malformed_token');
      await rejects(`${hd}.${pl}.${b64url(rs.subarray(0, 63))}`, 'malformed_token');
      await rejects(`${hd}.${pl}.${b64url(Buffer.concat([rs, Buffer.of(0)]))}`, 'malformed_token');
      await rejects(`${hd}.${pl}.${rs.toString('base64')}`, ['malformed_token', 'invalid_signature']);
      await rejects(`${hd}.${pl}.${sig}==`, 'malformed_token');
      await rejects(`${hd}.${pl}. ${sig}`, 'malformed_token');
      await rejects(`${hd} .${pl}.${sig}`, 'malformed_token');
      await rejects(` ${jwt}`, 'malformed_token');
    });

    it('A4 / A10.5 a malleated signature (r, n−s) is valid on first use; after the original, it is a replay', async () => {
      const malleate = (jwt: string) => {
        const [hd, pl, sig] = segments(jwt);
        const rs = Buffer.from(sig, 'base64url');
        const s = BigInt(`0x${rs.subarray(32).toString('hex')}`);
        const s2 = Buffer.from((P256_N - s).toString(16).padStart(64, '0'), 'hex');
        return `${hd}.${pl}.${b64url(Buffer.concat([rs.subarray(0, 32), s2]))}`;
      };
      const first = await h.mint(a);
      await expect(verify(malleate(first))).resolves.toBeDefined();
      await rejects(first, 'replayed_jti');
      const second = await h.mint(a);
      await verify(second);
      await rejects(malleate(second), 'replayed_jti');
    });
  });

  describe('headers (threats A5, A6)', () => {
    it('A5 jku/x5u pointing at a canary are never fetched: attacker-signed → 401, agent-signed → header ignored', async () => {
      const canary = await startCanary();
      try {
        const attacker = await generateAgentKeyPair();
        const header = {
          alg: 'ES256',
          typ: 'JWT',
          kid: 'k1',
          jku: `${canary.url}/jwks`,
          x5u: `${canary.url}/cert`,
        };
        await rejects(await signed({}, header, attacker.privateKey), 'invalid_signature');
        await expect(verify(await signed({}, header))).resolves.toBeDefined();
        await rejects(
          await signed({}, { ...header, x5c: ['MIIB'] }, attacker.privateKey),
          'invalid_signature',
        );
        expect(canary.hits).toBe(0);
      } finally {
        await canary.close();
      }
    });

    it('A5 an embedded jwk header carrying the attacker key is ignored → 401', async () => {
      const attacker = await generateAgentKeyPair();
      const jwk = await exportJWK(attacker.publicKey);
      await rejects(
        await signed({}, { alg: 'ES256', typ: 'JWT', kid: 'k1', jwk }, attacker.privateKey),
        'invalid_signature',
      );
    });

    it('A5 kid injection behaves like a wrong kid, touches nothing else, never 500', async () => {
      const canary = await startCanary();
      try {
        for (const kid of [
          '../../etc/passwd',
          "' OR 1=1 --",
          `${canary.url}/`,
          'x'.repeat(5000),
          '__proto__',
          'constructor',
        ]) {
          await rejects(await signed({}, { alg: 'ES256', typ: 'JWT', kid }), 'unknown_kid');
        }
        await rejects(
          await signed({}, { alg: 'ES256', typ: 'JWT', kid: 'x'.repeat(10_240) }),
          'malformed_token',
        );
        expect(canary.hits).toBe(0);
        expect(a.fetches).toBeLessThanOrEqual(2);
      } finally {
        await canary.close();
      }
    });

    it('A6 unknown crit, cty JWT, 5-segment JWE, > 8 KB, non-string kid → 401 without a 500', async () => {
      await rejects(await signed({}, { alg: 'ES256', kid: 'k1', crit: ['exp'], exp: 1 }), 'malformed_token');
      await rejects(await signed({}, { alg: 'ES256', kid: 'k1', cty: 'JWT' }), 'malformed_token');
      await rejects(await signed({}, { alg: 'ES256', kid: 7 }), 'malformed_token');
      await rejects('eyJhbGciOiJSU0EtT0FFUCIsImVuYyI6IkEyNTZHQ00ifQ.a.b.c.d', 'malformed_token');
      await rejects(await signed({ pad: 'x'.repeat(8192) }), 'malformed_token');
      await rejects(`${b64url('[1]')}.${b64url('{}')}.${'A'.repeat(86)}`, 'malformed_token');
      await rejects(`${b64url('not json')}.${b64url('{}')}.${'A'.repeat(86)}`, 'malformed_token');
      for (const junk of ['', 'a', 'a.b', 'a.b.c', '...', 'é.é.é']) await rejects(junk, 'malformed_token');
      await expect(
        h.verifier.verify(undefined as unknown as string, { agentId: a.agentId, audiences: h.audiences }),
      ).rejects.toBeInstanceOf(AthError);
    });

    it('A6 duplicate header members are refused outright, whichever value comes last', async () => {
      const claims = claimsFor(a.agentId, TEST_BASE, h.clock.now());
      await rejects(
        await rawSign('{"alg":"none","alg":"ES256","kid":"k1"}', claims, a.privateKey),
        'malformed_token',
      );
      await rejects(
        await rawSign('{"alg":"ES256","kid":"k1","kid":"k2"}', claims, a.privateKey),
        'malformed_token',
      );
      await rejects(
        await rawSign('{"alg":"ES256","kid":"k1","\\u0061lg":"ES256"}', claims, a.privateKey),
        'malformed_token',
      );
      // The same members once each are fine.
      await expect(
        verify(await rawSign('{"alg":"ES256","kid":"k1","x":{"alg":1}}', claims, a.privateKey)),
      ).resolves.toBeDefined();
    });
  });

  describe('claims', () => {
    it.each(['iss', 'sub', 'aud', 'iat', 'exp', 'jti'])(
      'A7 / C-014 / C-016 / C-018 / C-019 a missing %s is refused',
      async (claim) => {
        await warm();
        const e = await rejects(await signed({ [claim]: undefined }), ['missing_claim', 'sub_mismatch']);
        if (e.details?.['reason'] === 'missing_claim') expect(e.details['claim']).toBe(claim);
      },
    );

    it('C-015 / A8 expired attestations are refused (exp = now−10, now−1, now)', async () => {
      const now = Math.floor(h.clock.now() / 1000);
      for (const exp of [now - 10, now - 1, now])
        await rejects(await signed({ iat: now - 60, exp }), 'expired');
    });

    it('C-018 / A8 iat must be within 5 minutes in both directions', async () => {
      const now = Math.floor(h.clock.now() / 1000);
      await rejects(await signed({ iat: now - 360, exp: now + 300 }), 'iat_out_of_range');
      await rejects(await signed({ iat: now + 360, exp: now + 600 }), 'iat_out_of_range');
      await expect(verify(await signed({ iat: now - 240, exp: now + 60 }))).resolves.toBeDefined();
      await expect(verify(await signed({ iat: now + 300, exp: now + 600 }))).resolves.toBeDefined();
      await expect(verify(await signed({ iat: now - 300, exp: now + 1 }))).resolves.toBeDefined();
    });

    it('A8 iat = now+20 s is accepted with a configured skew of 30 s, iat = now+31 s is not', async () => {
      await h.close();
      h = await createAttestationHarness({ verifier: { skewSeconds: 30 } });
      a = await h.ad.addAgent('a');
      const now = Math.floor(h.clock.now() / 1000);
      await expect(verify(await signed({ iat: now + 20, exp: now + 300 }))).resolves.toBeDefined();
      await rejects(await signed({ iat: now + 31, exp: now + 300 }), 'iat_out_of_range');
    });

    it('C-035 / A8 lifetime above 3600 s is refused (exp = now+7200, now+10 years); exactly 3600 s is fine', async () => {
      const now = Math.floor(h.clock.now() / 1000);
      await rejects(await signed({ iat: now, exp: now + 7200 }), 'lifetime_too_long');
      await rejects(await signed({ iat: now, exp: now + 10 * 365 * 86400 }), 'lifetime_too_long');
      await expect(verify(await signed({ iat: now, exp: now + 3600 }))).resolves.toBeDefined();
      await rejects(await signed({ iat: now, exp: now + 3601 }), 'lifetime_too_long');
    });

    it('non-numeric iat/exp and empty, non-string or oversized jti are refused', async () => {
      await rejects(await signed({ iat: 'now' }), 'invalid_claim');
      await rejects(await signed({ exp: '1' }), 'invalid_claim');
      await rejects(await signed({ jti: '' }), 'invalid_claim');
      await rejects(await signed({ jti: 12345 }), 'invalid_claim');
      await rejects(await signed({ jti: 'j'.repeat(257) }), 'invalid_claim');
    });

    it('C-016 / A9 aud must name this endpoint', async () => {
      await rejects(await h.mint(a, { aud: 'https://other.test' }), 'audience_mismatch');
      await rejects(await h.mint(a, { aud: 'http://gw.test' }), 'audience_mismatch');
      await rejects(await h.mint(a, { aud: 'https://gw.test/ath/authorize' }), 'audience_mismatch');
      await rejects(await h.mint(a, { aud: [] }), 'audience_mismatch');
      await rejects(await signed({ aud: 42 }), 'audience_mismatch');
    });

    it('C-017 / A9 register accepts BASE, BASE/, [BASE], BASE/ath/agents/register and an array containing one of them', async () => {
      for (const aud of [
        TEST_BASE,
        `${TEST_BASE}/`,
        [TEST_BASE],
        `${TEST_BASE}/ath/agents/register`,
        ['https://other.test', TEST_BASE],
      ]) {
        await expect(verify(await h.mint(a, { aud })), JSON.stringify(aud)).resolves.toBeDefined();
      }
    });

    it('C-125 / A9 at /ath/token the origin is not enough; the exact token URL is', async () => {
      const audiences = acceptedAudiences(TEST_BASE, '/ath/token', 'exact');
      await rejects(await h.mint(a, { aud: TEST_BASE }), 'audience_mismatch', { audiences });
      await expect(
        verify(await h.mint(a, { aud: `${TEST_BASE}/ath/token` }), { audiences }),
      ).resolves.toBeDefined();
      await expect(
        verify(await h.mint(a, { aud: `${TEST_BASE}/ath/token` }), { audiences: [`${TEST_BASE}/ath/token`] }),
      ).resolves.toBeDefined();
    });

    it('C-024 iss must name the agent host: origin, bare host or full agent_id; anything else fails', async () => {
      const url = new URL(a.agentId);
      for (const iss of [url.origin, url.host, url.hostname, a.agentId]) {
        await expect(verify(await signed({ iss })), iss).resolves.toBeDefined();
      }
      for (const iss of [
        'https://evil.test',
        `https://${url.host}.evil.test`,
        `${url.origin}/other`,
        'https://127.0.0.2',
        42,
      ]) {
        await rejects(await signed({ iss }), 'issuer_mismatch');
      }
    });
  });

  describe('subject (C-023, AMB-26, threats A11)', () => {
    it('C-023 register agent_id=A1 with sub=A2 signed by K2 fails before any fetch', async () => {
      const b = await h.ad.addAgent('b');
      await rejects(await h.mint(b), 'sub_mismatch');
      expect(a.fetches).toBe(0);
      expect(b.fetches).toBe(0);
    });

    it('C-023 with a warm cache a foreign sub still fails (after the signature check)', async () => {
      const b = await h.ad.addAgent('b');
      await warm();
      await rejects(await h.mint(b), ['sub_mismatch', 'invalid_signature']);
      await rejects(await signed({ sub: b.agentId }), 'sub_mismatch');
      expect(b.fetches).toBe(0);
    });

    it('A11 iss = attacker origin serving the attacker key, sub = victim: 401 and the attacker server gets 0 hits', async () => {
      const evil = await startAgentServer();
      try {
        const attacker = await evil.addAgent('evil');
        const jwt = await rawSign(
          { alg: 'ES256', typ: 'JWT', kid: 'k1' },
          claimsFor(a.agentId, TEST_BASE, h.clock.now(), { iss: evil.origin }),
          attacker.privateKey,
        );
        await rejects(jwt, 'invalid_signature');
        expect(evil.totalFetches).toBe(0);
      } finally {
        await evil.close();
      }
    });

    it('A11 a valid attestation for B presented for A fails', async () => {
      const b = await h.ad.addAgent('b');
      await rejects(await h.mint(b), 'sub_mismatch', { agentId: a.agentId });
      await expect(verify(await h.mint(b), { agentId: b.agentId })).resolves.toBeDefined();
    });
  });

  describe('replay (C-020…C-022, threats A10)', () => {
    it('C-020 / A10.1 the same token twice: accepted, then replayed_jti', async () => {
      const jwt = await h.mint(a);
      await verify(jwt);
      await rejects(jwt, 'replayed_jti');
    });

    it('A10.2 the same token 50 times concurrently → exactly 1 success', async () => {
      const jwt = await h.mint(a);
      const results = await Promise.allSettled(Array.from({ length: 50 }, () => verify(jwt)));
      expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
      for (const r of results)
        if (r.status === 'rejected') expect((r.reason as AthError).details?.['reason']).toBe('replayed_jti');
    });

    it('C-020 a new token reusing a jti is a replay; the replay entry lives until exp', async () => {
      await verify(await h.mint(a, { jti: 'reused' }));
      await rejects(await h.mint(a, { jti: 'reused' }), 'replayed_jti');
      const purged = await h.store.purgeExpired(h.clock.now() + 299_000);
      expect(purged.jti).toBe(0);
    });

    it('C-021 the jti is consumed once signature and times verify, before any later business check', async () => {
      const jwt = await h.mint(a);
      const first = await verify(jwt); // the caller may now fail e.g. a scope check…
      expect(first.jti).toBeDefined();
      await rejects(jwt, 'replayed_jti'); // …the token is spent anyway
    });

    it('a token refused for audience or issuer does not consume its jti', async () => {
      await rejects(await h.mint(a, { jti: 'keep', aud: 'https://other.test' }), 'audience_mismatch');
      await expect(verify(await h.mint(a, { jti: 'keep' }))).resolves.toBeDefined();
    });

    it('C-022 the replay cache is keyed by (agent_id, jti): two agents may use the same jti', async () => {
      const b = await h.ad.addAgent('b');
      await verify(await h.mint(a, { jti: 'same-123' }));
      await expect(
        verify(await h.mint(b, { jti: 'same-123' }), { agentId: b.agentId }),
      ).resolves.toBeDefined();
    });
  });

  describe('identity cache and key rotation (C-026…C-036, threats B9/B10)', () => {
    it('C-026 an unusable document is a 401 INVALID_ATTESTATION, not a 5xx', async () => {
      a.setMode({ kind: 'status', status: 404 });
      await rejects(await h.mint(a), 'identity_document_unavailable');
      a.setMode({ kind: 'non-json' });
      h.clock.advance(60_000);
      await rejects(await h.mint(a), 'invalid_identity_document');
    });

    it('C-027 an http agent_id that is not allow-listed, or not a URI, fails with no fetch', async () => {
      const jwt = await rawSign(
        { alg: 'ES256', kid: 'k1' },
        claimsFor('http://agent1.test/.well-known/agent.json', TEST_BASE, h.clock.now()),
        a.privateKey,
      );
      await rejects(jwt, 'invalid_agent_id', { agentId: 'http://agent1.test/.well-known/agent.json' });
      const junk = await rawSign(
        { alg: 'ES256', kid: 'k1' },
        { ...claimsFor(a.agentId, TEST_BASE, h.clock.now()), sub: 'not a uri' },
        a.privateKey,
      );
      await rejects(junk, 'invalid_agent_id', { agentId: 'not a uri' });
      expect(h.ad.totalFetches).toBe(0);
    });

    it('C-029 / B10 emergency rotation: a K1′ token right after rotation is accepted after one extra fetch', async () => {
      await warm();
      await a.rotateKey();
      await expect(verify(await h.mint(a))).resolves.toBeDefined();
      expect(a.fetches).toBe(2);
    });

    it('C-029 rotation to a new kid: the unknown kid triggers the one refetch, then verifies', async () => {
      await warm();
      await a.rotateKey({ kid: 'k2' });
      await expect(verify(await h.mint(a))).resolves.toBeDefined();
      expect(a.fetches).toBe(2);
    });

    it('B10 after the forced refetch, tokens signed with the old key fail', async () => {
      const oldKey = a.privateKey;
      await warm();
      await a.rotateKey();
      await verify(await h.mint(a));
      await rejects(await signed({}, undefined, oldKey), 'invalid_signature');
    });

    it('C-030 10 wrong-key attestations within 60 s: all 401, at most 1 cache-bypassing fetch', async () => {
      const attacker = await generateAgentKeyPair();
      await warm();
      for (let i = 0; i < 10; i++) {
        await rejects(await signed({}, undefined, attacker.privateKey), 'invalid_signature');
        h.clock.advance(5_000);
      }
      expect(a.fetches).toBe(2);
    });

    it('C-031 audience and expiry failures never trigger a re-fetch', async () => {
      await warm();
      const now = Math.floor(h.clock.now() / 1000);
      for (let i = 0; i < 5; i++)
        await rejects(await h.mint(a, { aud: 'https://other.test' }), 'audience_mismatch');
      for (let i = 0; i < 5; i++) await rejects(await signed({ iat: now - 100, exp: now - 1 }), 'expired');
      for (let i = 0; i < 5; i++)
        await rejects(await signed({ iss: 'https://evil.test' }), 'issuer_mismatch');
      expect(a.fetches).toBe(1);
    });

    it('C-028 the cache lives ≤ 5 min: with the forced refetch used up, K1′ is accepted and K1 refused after 5 min + 5 s', async () => {
      const k1 = a.privateKey;
      await warm();
      const attacker = await generateAgentKeyPair();
      await rejects(await signed({}, undefined, attacker.privateKey), 'invalid_signature'); // uses the forced refetch
      expect(a.fetches).toBe(2);
      await a.rotateKey();
      h.clock.advance(50_000);
      await rejects(await h.mint(a), 'invalid_signature'); // rate-limited: still the K1 document
      expect(a.fetches).toBe(2);
      h.clock.advance(305_000 - 50_000);
      await expect(verify(await h.mint(a))).resolves.toBeDefined();
      await rejects(await signed({}, undefined, k1), 'invalid_signature');
    });

    it('C-033 3 quick verifications → 1 fetch', async () => {
      for (let i = 0; i < 3; i++) await verify(await h.mint(a));
      expect(a.fetches).toBe(1);
    });

    it('B9 100 parallel first-time verifications → 1 fetch, all accepted', async () => {
      const tokens = await Promise.all(Array.from({ length: 100 }, () => h.mint(a)));
      const results = await Promise.all(tokens.map((t) => verify(t)));
      expect(results).toHaveLength(100);
      expect(a.fetches).toBe(1);
    });

    it('C-036 / B9 an unknown kid fails; 100 random kids cause ≤ 2 fetches', async () => {
      const jwks = await h.ad.addAgent('jwks', { keyFormat: 'jwks' });
      const sign = (kid: string) =>
        rawSign(
          { alg: 'ES256', typ: 'JWT', kid },
          claimsFor(jwks.agentId, TEST_BASE, h.clock.now()),
          jwks.privateKey,
        );
      const audiences = h.audiences;
      await rejects(await sign('nope'), 'unknown_kid', { agentId: jwks.agentId, audiences });
      for (let i = 0; i < 100; i++)
        await rejects(await sign(crypto.randomUUID()), 'unknown_kid', { agentId: jwks.agentId, audiences });
      expect(jwks.fetches).toBeLessThanOrEqual(2);
    });

    it('C-036 with several keys the header kid selects the key; no kid → refused', async () => {
      const b = await h.ad.addAgent('b');
      a.setMode({
        kind: 'patch',
        patch: {
          public_key: {
            keys: [
              { ...b.publicJwk, kid: 'other' },
              { ...a.publicJwk, kid: 'k1' },
            ],
          },
        },
      });
      await expect(verify(await h.mint(a))).resolves.toBeDefined();
      await expect(
        verify(
          await rawSign(
            { alg: 'ES256', kid: 'other' },
            claimsFor(a.agentId, TEST_BASE, h.clock.now()),
            b.privateKey,
          ),
        ),
      ).resolves.toBeDefined();
      await rejects(
        await rawSign({ alg: 'ES256' }, claimsFor(a.agentId, TEST_BASE, h.clock.now()), a.privateKey),
        'unknown_kid',
      );
      await rejects(
        await rawSign(
          { alg: 'ES256', kid: 'other' },
          claimsFor(a.agentId, TEST_BASE, h.clock.now()),
          a.privateKey,
        ),
        'invalid_signature',
      );
    });

    it('B9 the cache key is the agent_id only: a JWT kid/iss/jku never selects what is fetched or cached', async () => {
      const canary = await startCanary();
      try {
        await rejects(
          await signed(
            { iss: canary.url },
            { alg: 'ES256', kid: `${canary.url}/k`, jku: `${canary.url}/jwks` },
          ),
          ['unknown_kid', 'issuer_mismatch'],
        );
        expect(canary.hits).toBe(0);
        expect(h.resolver.peek(a.agentId)?.agentId).toBe(a.agentId);
      } finally {
        await canary.close();
      }
    });

    it('C-032 a document server that never answers → 401 within a bounded time', async () => {
      await h.close();
      h = await createAttestationHarness({ fetcher: { connectTimeoutMs: 200, readTimeoutMs: 500 } });
      a = await h.ad.addAgent('a');
      a.setMode({ kind: 'slow-headers', delayMs: Infinity });
      const started = Date.now();
      await rejects(await h.mint(a), 'identity_document_timeout');
      expect(Date.now() - started).toBeLessThan(5_000);
    });
  });
});
