import { base64url } from './random.js';

const encoder = new TextEncoder();

type NodeHash = (algorithm: string, data: string, outputEncoding: 'base64url') => string;

// Node's one-shot crypto.hash (20.19+): synchronous and ~20x cheaper for short inputs than a Web
// Crypto digest, which hops to the thread pool. Elsewhere, Web Crypto.
const nodeHash: NodeHash | undefined = (() => {
  const getBuiltin = (globalThis as { process?: { getBuiltinModule?: (id: string) => unknown } }).process?.getBuiltinModule;
  const hash = (getBuiltin?.('node:crypto') as { hash?: unknown } | undefined)?.hash;
  return typeof hash === 'function' ? (hash as NodeHash) : undefined;
})();

/** SHA-256 of a UTF-8 string as base64url: how secrets, tokens and codes are stored. */
export async function sha256(value: string): Promise<string> {
  if (nodeHash) return nodeHash('sha256', value, 'base64url');
  const digest = await globalThis.crypto.subtle.digest('SHA-256', encoder.encode(value));
  return base64url(new Uint8Array(digest));
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
