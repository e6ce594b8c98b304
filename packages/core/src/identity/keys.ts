import { importJWK, importSPKI, type CryptoKey, type JWK } from 'jose';
import { attestationFailure } from './failure.js';

/** A verification key published in an identity document. `kid` is null when the document gave none. */
export interface AgentKey {
  kid: string | null;
  key: CryptoKey;
}

/** More keys than this in one JWKS is not a rotation set any more, it is a cost we refuse to pay. */
const MAX_KEYS = 16;
const MAX_KID_LENGTH = 256;
const B64URL_32_BYTES = /^[A-Za-z0-9_-]{43}$/;

function invalid(message: string): never {
  throw attestationFailure('invalid_identity_document', message);
}

const isObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * Imports the `public_key` of an identity document (AMB-24): an EC P-256 JWK (optionally with a
 * kid), a JWKS of such keys, or a PEM SubjectPublicKeyInfo. Everything else (RSA, other curves,
 * Ed25519, private keys, points not on the curve) is an invalid document. Import happens once,
 * at fetch time, so the verification hot path only ever sees ready CryptoKeys.
 */
export async function importAgentKeys(publicKey: unknown): Promise<AgentKey[]> {
  if (typeof publicKey === 'string') return [{ kid: null, key: await importPem(publicKey) }];
  if (!isObject(publicKey)) invalid('public_key must be a JWK, a JWKS or a PEM string');
  if ('keys' in publicKey) {
    const keys = publicKey['keys'];
    if (!Array.isArray(keys) || keys.length === 0) invalid('public_key.keys must be a non-empty array');
    if (keys.length > MAX_KEYS) invalid(`public_key.keys has more than ${MAX_KEYS} keys`);
    const imported = await Promise.all(keys.map((jwk) => importEcJwk(jwk)));
    if (imported.length > 1) {
      const kids = imported.map((k) => k.kid);
      // With several keys the JWT kid is the only selector, so every key needs a distinct one.
      if (kids.some((kid) => kid === null)) invalid('every key of a multi-key JWKS needs a kid');
      if (new Set(kids).size !== kids.length) invalid('duplicate kid in public_key.keys');
    }
    return imported;
  }
  return [await importEcJwk(publicKey)];
}

async function importEcJwk(jwk: unknown): Promise<AgentKey> {
  if (!isObject(jwk)) invalid('each JWK must be an object');
  if (jwk['kty'] !== 'EC' || jwk['crv'] !== 'P-256') invalid('public_key must be an EC P-256 key (ES256)');
  if ('d' in jwk) invalid('public_key contains private key material');
  const { x, y, kid, alg, use } = jwk;
  if (
    typeof x !== 'string' ||
    typeof y !== 'string' ||
    !B64URL_32_BYTES.test(x) ||
    !B64URL_32_BYTES.test(y)
  ) {
    invalid('public_key x/y must be 32-byte base64url coordinates');
  }
  if (kid !== undefined && (typeof kid !== 'string' || kid.length === 0 || kid.length > MAX_KID_LENGTH))
    invalid('public_key kid must be a short string');
  if (alg !== undefined && alg !== 'ES256') invalid('public_key alg must be ES256');
  if (use !== undefined && use !== 'sig') invalid('public_key use must be sig');
  try {
    // Only the members we checked: no key_ops/ext surprises; Web Crypto rejects points off the curve.
    const key = await importJWK({ kty: 'EC', crv: 'P-256', x, y } satisfies JWK, 'ES256');
    if (key instanceof Uint8Array) invalid('public_key is not an asymmetric key');
    return { kid: kid ?? null, key };
  } catch (err) {
    if (err instanceof Error && err.name === 'AthError') throw err;
    invalid('public_key is not a valid P-256 point');
  }
}

async function importPem(pem: string): Promise<CryptoKey> {
  const text = pem.trim();
  if (!text.startsWith('-----BEGIN PUBLIC KEY-----') || !text.endsWith('-----END PUBLIC KEY-----')) {
    invalid('a string public_key must be a PEM SubjectPublicKeyInfo');
  }
  try {
    // Fails for RSA, Ed25519, P-384 and invalid points alike: the algorithm pins the curve.
    return await importSPKI(text, 'ES256');
  } catch {
    invalid('public_key PEM is not an EC P-256 public key');
  }
}
