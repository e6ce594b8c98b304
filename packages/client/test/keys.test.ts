import { describe, expect, it } from 'vitest';
import { validateAgentIdentityDocument } from '@athkit/schemas';
import { AthClientError, createAttestation, createIdentityDocument, exportAgentKey, generateAgentKey, importAgentKey, jwkThumbprint, publicJwk } from '../src/index.js';

async function verifies(key: Awaited<ReturnType<typeof generateAgentKey>>, other: Awaited<ReturnType<typeof generateAgentKey>>): Promise<boolean> {
  const jwt = await createAttestation({ agentId: 'https://a.test/agent.json', privateKey: key.privateKey, kid: key.kid }, 'https://s.test', 'register');
  const [h, p, s] = jwt.split('.');
  return globalThis.crypto.subtle.verify(
    { name: 'ECDSA', hash: 'SHA-256' },
    other.publicKey,
    Buffer.from(s!, 'base64url'),
    new TextEncoder().encode(`${h}.${p}`),
  );
}

describe('keys', () => {
  it('kid defaults to the RFC 7638 thumbprint of the public key', async () => {
    const key = await generateAgentKey();
    expect(key.kid).toBe(await jwkThumbprint(await publicJwk(key)));
    expect(key.kid).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect((await generateAgentKey({ kid: 'k1' })).kid).toBe('k1');
  });

  it.each(['pem', 'jwk'] as const)('round-trips a private key as %s', async (format) => {
    const key = await generateAgentKey({ kid: 'k1' });
    const text = await exportAgentKey(key, format);
    expect(text).toMatch(format === 'pem' ? /^-----BEGIN PRIVATE KEY-----\n/ : /"d":/);
    const back = await importAgentKey(text);
    expect(back.kid).toBe(format === 'jwk' ? 'k1' : key.kid === 'k1' ? await jwkThumbprint(await publicJwk(key)) : key.kid);
    expect(await publicJwk({ ...back, kid: 'k1' })).toEqual(await publicJwk(key));
    expect(await verifies(back, key)).toBe(true);
    expect(await verifies(key, back)).toBe(true);
    expect(await verifies(await generateAgentKey(), key)).toBe(false);
  });

  it('the public JWK never contains the private part', async () => {
    const jwk = await publicJwk(await generateAgentKey());
    expect(Object.keys(jwk).sort()).toEqual(['crv', 'kid', 'kty', 'x', 'y']);
  });

  it('rejects what it cannot read, readably', async () => {
    const sec1 = '-----BEGIN EC PRIVATE KEY-----\nMHcCAQEE\n-----END EC PRIVATE KEY-----';
    await expect(importAgentKey(sec1)).rejects.toThrow(/openssl pkcs8/);
    await expect(importAgentKey('{"kty":"RSA"}')).rejects.toBeInstanceOf(AthClientError);
    await expect(importAgentKey('hello')).rejects.toThrow(/PKCS#8/);
    const pub = JSON.stringify(await publicJwk(await generateAgentKey()));
    await expect(importAgentKey(pub)).rejects.toThrow(/private EC P-256/);
  });

  it('builds a schema-valid identity document (CL-02) and refuses an invalid one', async () => {
    const key = await generateAgentKey();
    const doc = await createIdentityDocument({
      agentId: 'https://agent.example/.well-known/agent.json',
      name: 'Agent',
      developer: { name: 'Dev', id: 'dev-1', contact: 'sec@agent.example' },
      key,
      capabilities: ['shopping'],
    });
    expect(validateAgentIdentityDocument(doc).valid).toBe(true);
    expect(doc).toMatchObject({ ath_version: '0.1', agent_id: 'https://agent.example/.well-known/agent.json', public_key: { kid: key.kid, kty: 'EC', crv: 'P-256' } });
    expect(JSON.stringify(doc)).not.toContain('"d"');
    await expect(createIdentityDocument({ agentId: 'https://a.example/x', name: 'A', developer: { name: 'D', id: 'has space' }, key })).rejects.toThrow(/developer\/id/);
    await expect(createIdentityDocument({ agentId: 'http://a.example/x', name: 'A', developer: { name: 'D', id: 'd' }, key })).rejects.toMatchObject({ code: 'insecure_url' });
  });
});
