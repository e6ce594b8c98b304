import { calculateJwkThumbprint, exportJWK, importJWK, type CryptoKey, type JWK } from 'jose';
import type { EcP256PublicJwk, ServerJwks } from '@athkit/schemas';

/** The service's handshake signing key (ES256): signs the step-2 transcript and step-6 pushes (AMB-23). */
export interface ServerSigningKey {
  readonly privateKey: CryptoKey;
  /** What ath-app.json publishes in `server_jwks` and step 2 returns as `server_pubkey`. */
  readonly publicJwk: EcP256PublicJwk & { kid: string; alg: 'ES256'; use: 'sig' };
  readonly kid: string;
}

function publicPart(jwk: JWK): { kty: 'EC'; crv: 'P-256'; x: string; y: string } {
  if (jwk.kty !== 'EC' || jwk.crv !== 'P-256' || typeof jwk.x !== 'string' || typeof jwk.y !== 'string') {
    throw new TypeError('the handshake signing key must be an EC P-256 key');
  }
  return { kty: 'EC', crv: 'P-256', x: jwk.x, y: jwk.y };
}

async function fromPrivateKey(privateKey: CryptoKey, kid?: string): Promise<ServerSigningKey> {
  const pub = publicPart(await exportJWK(privateKey));
  const id = kid ?? (await calculateJwkThumbprint(pub, 'sha256'));
  return { privateKey, kid: id, publicJwk: { ...pub, kid: id, alg: 'ES256', use: 'sig' } };
}

/** A fresh P-256 key (development; production services load a stored key, see importServerSigningKey). */
export async function generateServerSigningKey(kid?: string): Promise<ServerSigningKey> {
  const pair = await globalThis.crypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, true, [
    'sign',
    'verify',
  ]);
  return fromPrivateKey(pair.privateKey, kid);
}

/** Imports a private P-256 JWK (`d` present); its `kid` is kept, else the RFC 7638 thumbprint is used. */
export async function importServerSigningKey(jwk: JWK): Promise<ServerSigningKey> {
  if (typeof jwk.d !== 'string')
    throw new TypeError('the handshake signing key JWK must contain the private member d');
  publicPart(jwk);
  const key = await importJWK({ kty: 'EC', crv: 'P-256', x: jwk.x, y: jwk.y, d: jwk.d }, 'ES256', {
    extractable: true,
  });
  if (key instanceof Uint8Array) throw new TypeError('not an asymmetric key');
  return fromPrivateKey(key, typeof jwk.kid === 'string' ? jwk.kid : undefined);
}

/** The private JWK of a signing key, for storing it (e.g. `ath user` demo files). Keep it secret. */
export async function exportServerSigningKey(key: ServerSigningKey): Promise<JWK> {
  const { kty, crv, x, y, d } = await exportJWK(key.privateKey);
  return { kty, crv, x, y, d, kid: key.kid };
}

export function serverJwks(key: ServerSigningKey): ServerJwks {
  return { keys: [key.publicJwk] };
}

/** `did:web:<host>` for a base URL (AMB-23); a port is percent-encoded as the did:web method requires. */
export function didWebFor(baseUrl: string): string {
  const url = new URL(baseUrl);
  const path = url.pathname.replace(/\/+$/, '');
  const host = url.port ? `${url.hostname}%3A${url.port}` : url.hostname;
  return `did:web:${host}${path ? path.split('/').join(':') : ''}`;
}

/** A minimal DID document for the service DID, listing the handshake key (served at /.well-known/did.json). */
export function didDocument(did: string, key: ServerSigningKey): Record<string, unknown> {
  const vm = `${did}#${key.kid}`;
  return {
    '@context': ['https://www.w3.org/ns/did/v1', 'https://w3id.org/security/suites/jws-2020/v1'],
    id: did,
    verificationMethod: [{ id: vm, type: 'JsonWebKey2020', controller: did, publicKeyJwk: key.publicJwk }],
    assertionMethod: [vm],
    authentication: [vm],
  };
}

/** True when two JWKs are the same P-256 public key (coordinates compared; kid/alg ignored). */
export function samePublicKey(a: JWK, b: JWK): boolean {
  return a.kty === 'EC' && b.kty === 'EC' && a.crv === b.crv && a.x === b.x && a.y === b.y;
}
