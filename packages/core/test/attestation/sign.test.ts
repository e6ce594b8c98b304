import { decodeJwt, decodeProtectedHeader, importJWK, jwtVerify } from 'jose';
import { describe, expect, it } from 'vitest';
import { exportPublicJwk, generateAgentKeyPair, signAttestation } from '../../src/attestation/sign.js';
import { ManualClock } from '../../src/clock.js';

const AGENT = 'https://agent1.test/.well-known/agent.json';

describe('signAttestation', () => {
  it('produces an ES256 JWT with {alg, typ, kid} and iss/sub/aud/iat/exp/jti', async () => {
    const { privateKey, publicKey } = await generateAgentKeyPair();
    const clock = new ManualClock(1_700_000_000_500);
    const jwt = await signAttestation({
      privateKey,
      kid: 'k1',
      agentId: AGENT,
      audience: 'https://gw.test',
      clock,
    });
    expect(decodeProtectedHeader(jwt)).toEqual({ alg: 'ES256', typ: 'JWT', kid: 'k1' });
    const claims = decodeJwt(jwt);
    expect(claims).toMatchObject({
      iss: 'https://agent1.test',
      sub: AGENT,
      aud: 'https://gw.test',
      iat: 1_700_000_000,
      exp: 1_700_000_300,
    });
    expect(claims.jti).toMatch(/^[A-Za-z0-9_-]{32}$/); // 192 random bits
    await expect(
      jwtVerify(jwt, publicKey, { algorithms: ['ES256'], currentDate: new Date(clock.now()) }),
    ).resolves.toBeDefined();
  });

  it('uses fresh jtis, and honours issuer, lifetime, audience arrays, jti and extra claims (registered claims win)', async () => {
    const { privateKey } = await generateAgentKeyPair();
    const a = decodeJwt(await signAttestation({ privateKey, agentId: AGENT, audience: 'x' }));
    const b = decodeJwt(await signAttestation({ privateKey, agentId: AGENT, audience: 'x' }));
    expect(a.jti).not.toBe(b.jti);
    const jwt = await signAttestation({
      privateKey,
      agentId: AGENT,
      audience: ['a', 'b'],
      issuer: AGENT,
      lifetimeSeconds: 60,
      jti: 'fixed',
      extraClaims: { scope: 'x', sub: 'spoofed' },
    });
    const claims = decodeJwt(jwt);
    expect(claims).toMatchObject({ iss: AGENT, sub: AGENT, aud: ['a', 'b'], jti: 'fixed', scope: 'x' });
    expect(claims.exp! - claims.iat!).toBe(60);
    expect(decodeProtectedHeader(jwt).kid).toBeUndefined();
  });

  it('exportPublicJwk publishes only kty/crv/x/y(/kid), which imports back as a verification key', async () => {
    const { publicKey } = await generateAgentKeyPair();
    const jwk = await exportPublicJwk(publicKey, 'k9');
    expect(Object.keys(jwk).sort()).toEqual(['crv', 'kid', 'kty', 'x', 'y']);
    expect(jwk).toMatchObject({ kty: 'EC', crv: 'P-256', kid: 'k9' });
    await expect(importJWK(jwk, 'ES256')).resolves.toBeDefined();
  });
});
