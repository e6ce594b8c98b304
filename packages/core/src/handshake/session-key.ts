import { calculateJwkThumbprint, exportJWK, type CryptoKey, type JWK } from 'jose';
import { base64url } from '../random.js';

export const KEY_EXCHANGE_ALG = 'ECDH-P256';
export const CIPHER_SUITE = 'AES-256-GCM';
/** Session keys live at most 24 h (S/client handshake-flow security). */
export const MAX_SESSION_KEY_SECONDS = 86_400;

const encoder = new TextEncoder();

export function fromBase64url(text: string): Uint8Array {
  if (!/^[A-Za-z0-9_-]*$/.test(text)) throw new TypeError('not base64url');
  const b64 = text.replace(/-/g, '+').replace(/_/g, '/') + '='.repeat((4 - (text.length % 4)) % 4);
  const bin = atob(b64);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

export interface EphemeralKeyPair {
  privateKey: CryptoKey;
  /** `{kty, crv, x, y}`: what goes on the wire as `epk` / `key_exchange_params`. */
  publicJwk: { kty: 'EC'; crv: 'P-256'; x: string; y: string };
}

/** A fresh ephemeral ECDH P-256 key pair, one per handshake and side (CL-28, C-268). */
export async function generateEphemeralKeyPair(): Promise<EphemeralKeyPair> {
  const pair = await globalThis.crypto.subtle.generateKey({ name: 'ECDH', namedCurve: 'P-256' }, true, [
    'deriveBits',
  ]);
  const jwk = await exportJWK(pair.publicKey);
  return { privateKey: pair.privateKey, publicJwk: { kty: 'EC', crv: 'P-256', x: jwk.x!, y: jwk.y! } };
}

/** Imports a peer's ephemeral public key; throws TypeError for anything but a valid P-256 point. */
export async function importEphemeralPublicKey(jwk: JWK): Promise<CryptoKey> {
  if (
    jwk.kty !== 'EC' ||
    jwk.crv !== 'P-256' ||
    typeof jwk.x !== 'string' ||
    typeof jwk.y !== 'string' ||
    'd' in jwk
  ) {
    throw new TypeError('epk must be an EC P-256 public JWK');
  }
  try {
    return await globalThis.crypto.subtle.importKey(
      'jwk',
      { kty: 'EC', crv: 'P-256', x: jwk.x, y: jwk.y, ext: true },
      { name: 'ECDH', namedCurve: 'P-256' },
      true,
      [],
    );
  } catch {
    throw new TypeError('epk is not a valid P-256 point');
  }
}

/** RFC 7638 thumbprint of an ephemeral key: the replay-cache key that refuses a reused epk (C-268). */
export function ephemeralKeyThumbprint(jwk: JWK): Promise<string> {
  return calculateJwkThumbprint({ kty: 'EC', crv: 'P-256', x: jwk.x!, y: jwk.y! }, 'sha256');
}

export interface SessionKeyInput {
  /** Own ephemeral private key. */
  privateKey: CryptoKey;
  /** The peer's ephemeral public JWK. */
  peerPublicJwk: JWK;
  nonceA: string;
  nonceB: string;
  handshakeId: string;
}

export interface SessionKey {
  /** AES-256-GCM key (not extractable). */
  key: CryptoKey;
  /** First 16 characters of base64url(SHA-256(K)): lets both sides compare keys without revealing them. */
  keyId: string;
}

/**
 * K = HKDF-SHA256(Z = ECDH(own, peer), salt = nonce_a ‖ nonce_b, info = "ATH/0.1 session " ‖ handshake_id),
 * 32 bytes (AMB-34). The nonces enter the salt as the UTF-8 bytes of their base64url text.
 */
export async function deriveSessionKey(input: SessionKeyInput): Promise<SessionKey> {
  const subtle = globalThis.crypto.subtle;
  const peer = await importEphemeralPublicKey(input.peerPublicJwk);
  const z = await subtle.deriveBits({ name: 'ECDH', public: peer }, input.privateKey, 256);
  const ikm = await subtle.importKey('raw', z, 'HKDF', false, ['deriveBits']);
  const bits = await subtle.deriveBits(
    {
      name: 'HKDF',
      hash: 'SHA-256',
      salt: encoder.encode(input.nonceA + input.nonceB),
      info: encoder.encode(`ATH/0.1 session ${input.handshakeId}`),
    },
    ikm,
    256,
  );
  const digest = await subtle.digest('SHA-256', bits);
  const key = await subtle.importKey('raw', bits, { name: 'AES-GCM', length: 256 }, false, [
    'encrypt',
    'decrypt',
  ]);
  return { key, keyId: base64url(new Uint8Array(digest)).slice(0, 16) };
}

/** An AES-256-GCM envelope: 96-bit random IV, ciphertext with the 128-bit tag appended; both base64url. */
export interface EncryptedBody {
  alg: 'AES-256-GCM';
  iv: string;
  ciphertext: string;
}

/** Encrypts a request body with the session key (optional message-level protection; TLS + Bearer stay mandatory, AMB-34). */
export async function encryptWithSessionKey(
  key: CryptoKey,
  plaintext: string | Uint8Array,
  aad?: string,
): Promise<EncryptedBody> {
  const iv = globalThis.crypto.getRandomValues(new Uint8Array(12));
  const data = typeof plaintext === 'string' ? encoder.encode(plaintext) : plaintext;
  const ct = await globalThis.crypto.subtle.encrypt(
    { name: 'AES-GCM', iv, ...(aad !== undefined ? { additionalData: encoder.encode(aad) } : {}) },
    key,
    data,
  );
  return { alg: 'AES-256-GCM', iv: base64url(iv), ciphertext: base64url(new Uint8Array(ct)) };
}

/** Decrypts an envelope; throws when the key, IV, AAD or ciphertext does not match. */
export async function decryptWithSessionKey(
  key: CryptoKey,
  body: EncryptedBody,
  aad?: string,
): Promise<Uint8Array> {
  const pt = await globalThis.crypto.subtle.decrypt(
    {
      name: 'AES-GCM',
      iv: fromBase64url(body.iv),
      ...(aad !== undefined ? { additionalData: encoder.encode(aad) } : {}),
    },
    key,
    fromBase64url(body.ciphertext),
  );
  return new Uint8Array(pt);
}
