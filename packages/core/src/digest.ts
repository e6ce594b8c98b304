import { nodeCrypto } from './node-crypto.js';
import { base64url } from './random.js';

const encoder = new TextEncoder();

// Node's one-shot crypto.hash is ~20x cheaper for short inputs than a Web Crypto digest.
const nodeHash = nodeCrypto.hash;
const nodeHmac = nodeCrypto.createHmac;

/** SHA-256 of a UTF-8 string as base64url: how secrets, tokens and codes are stored. */
export async function sha256(value: string): Promise<string> {
  if (nodeHash) return nodeHash('sha256', value, 'base64url');
  const digest = await globalThis.crypto.subtle.digest('SHA-256', encoder.encode(value));
  return base64url(new Uint8Array(digest));
}

/**
 * A digest function for secrets a server hands out and later recognises (the browser-binding
 * cookie): HMAC-SHA256 under `key` as base64url, or plain {@link sha256} without a key. With a key,
 * someone who can write the store but does not hold the key cannot plant a digest of a value of
 * their own choosing.
 */
export function keyedDigest(key: Uint8Array | undefined): (value: string) => Promise<string> {
  if (key === undefined) return sha256;
  if (key.byteLength < 32) throw new TypeError('A digest key needs at least 32 bytes');
  const raw = Uint8Array.from(key); // a copy: later changes to the caller's buffer do not matter
  if (nodeHmac) {
    const hmac = nodeHmac;
    return (value) => Promise.resolve(hmac('sha256', raw).update(value, 'utf8').digest('base64url'));
  }
  let imported: ReturnType<typeof globalThis.crypto.subtle.importKey> | undefined;
  return async (value) => {
    imported ??= globalThis.crypto.subtle.importKey('raw', raw, { name: 'HMAC', hash: 'SHA-256' }, false, ['sign']);
    const mac = await globalThis.crypto.subtle.sign('HMAC', await imported, encoder.encode(value));
    return base64url(new Uint8Array(mac));
  };
}

/**
 * Constant-time comparison of two strings of equal length (e.g. two digests). Length is not
 * secret for digests; for other inputs compare digests, never raw secrets of unequal length.
 */
export function timingSafeEqual(a: string, b: string): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a.charCodeAt(i) ^ b.charCodeAt(i);
  return diff === 0;
}
