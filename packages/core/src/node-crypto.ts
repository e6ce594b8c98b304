/**
 * The parts of `node:crypto` core uses when it runs on Node: synchronous, where the Web Crypto
 * equivalent hops to the thread pool and back. Looked up at run time (`process.getBuiltinModule`),
 * so core still loads wherever only Web Crypto exists; each member is undefined there, and callers
 * fall back to Web Crypto.
 */
interface NodeGcm {
  setAAD(data: Uint8Array): unknown;
  update(data: Uint8Array): Uint8Array;
  final(): Uint8Array;
}

export interface NodeCrypto {
  /** One-shot digest (Node 20.19+). */
  hash?: (algorithm: string, data: string, outputEncoding: 'base64url') => string;
  createHmac?: (algorithm: string, key: Uint8Array) => { update(data: string, encoding: 'utf8'): { digest(encoding: 'base64url'): string } };
  createCipheriv?: (algorithm: 'aes-256-gcm', key: Uint8Array, iv: Uint8Array) => NodeGcm & { getAuthTag(): Uint8Array };
  createDecipheriv?: (algorithm: 'aes-256-gcm', key: Uint8Array, iv: Uint8Array) => NodeGcm & { setAuthTag(tag: Uint8Array): unknown };
}

export const nodeCrypto: NodeCrypto = (() => {
  const getBuiltin = (globalThis as { process?: { getBuiltinModule?: (id: string) => unknown } }).process?.getBuiltinModule;
  const crypto = getBuiltin?.('node:crypto') as Record<string, unknown> | undefined;
  if (!crypto) return {};
  const fn = <K extends keyof NodeCrypto>(name: K): NodeCrypto[K] =>
    typeof crypto[name] === 'function' ? (crypto[name] as NodeCrypto[K]) : undefined;
  return { hash: fn('hash'), createHmac: fn('createHmac'), createCipheriv: fn('createCipheriv'), createDecipheriv: fn('createDecipheriv') };
})();
