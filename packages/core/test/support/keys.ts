/**
 * Public keys an identity document must NOT be allowed to publish (threats B7, A3): other key
 * types and curves, and a P-256 JWK whose point is not on the curve.
 */
import { exportJWK, exportSPKI, generateKeyPair, type JWK } from 'jose';

export interface ForeignKeys {
  rsaJwk: JWK;
  rsaPem: string;
  p384Jwk: JWK;
  p384Pem: string;
  ed25519Jwk: JWK;
  ed25519Pem: string;
  /** kty EC, crv P-256, but (x, y) is not a point on the curve. */
  offCurveJwk: JWK;
  /** A private P-256 JWK (with `d`). */
  privateJwk: JWK;
}

let cached: Promise<ForeignKeys> | undefined;

/** Generated once per test file (RSA generation is slow-ish). */
export function foreignKeys(): Promise<ForeignKeys> {
  cached ??= (async () => {
    const rsa = await generateKeyPair('RS256', { extractable: true });
    const p384 = await generateKeyPair('ES384', { extractable: true });
    const ed = await generateKeyPair('EdDSA', { extractable: true });
    const p256 = await generateKeyPair('ES256', { extractable: true });
    const p256Jwk = await exportJWK(p256.publicKey);
    // Flipping bits of y moves the point off the curve (probability of landing on it is ~2^-128).
    const y = Buffer.from(p256Jwk.y!, 'base64url');
    y[31] = y[31]! ^ 0x01;
    y[0] = y[0]! ^ 0x80;
    return {
      rsaJwk: await exportJWK(rsa.publicKey),
      rsaPem: await exportSPKI(rsa.publicKey),
      p384Jwk: await exportJWK(p384.publicKey),
      p384Pem: await exportSPKI(p384.publicKey),
      ed25519Jwk: await exportJWK(ed.publicKey),
      ed25519Pem: await exportSPKI(ed.publicKey),
      offCurveJwk: { kty: 'EC', crv: 'P-256', x: p256Jwk.x!, y: y.toString('base64url') },
      privateJwk: await exportJWK(p256.privateKey),
    };
  })();
  return cached;
}
