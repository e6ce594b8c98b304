import type { CryptoKey } from 'jose';
import { base64url } from './random.js';

const encoder = new TextEncoder();
const decoder = new TextDecoder();

function fromBase64url(s: string): Uint8Array<ArrayBuffer> {
  const b64 = s.replace(/-/g, '+').replace(/_/g, '/');
  const bin = atob(b64 + '='.repeat((4 - (b64.length % 4)) % 4));
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

/**
 * Encrypts upstream OAuth token sets before they reach the Store (AES-256-GCM, Web Crypto). The
 * record id is bound as additional data, so a ciphertext copied onto another grant fails to open.
 * Format: `v1.<iv>.<ciphertext>` (base64url).
 */
export class Vault {
  private constructor(private readonly key: CryptoKey) {}

  /** `secret`: 32 bytes, as raw bytes or base64url/base64 text. */
  static async create(secret: Uint8Array | string): Promise<Vault> {
    const raw = typeof secret === 'string' ? fromBase64url(secret.trim()) : new Uint8Array(secret);
    if (raw.length !== 32) throw new Error('vault key must be 32 bytes (256 bits)');
    const key = await globalThis.crypto.subtle.importKey('raw', raw, 'AES-GCM', false, ['encrypt', 'decrypt']);
    return new Vault(key);
  }

  async seal(recordId: string, value: unknown): Promise<string> {
    const iv = globalThis.crypto.getRandomValues(new Uint8Array(12));
    const data = encoder.encode(JSON.stringify(value));
    const ct = await globalThis.crypto.subtle.encrypt(
      { name: 'AES-GCM', iv, additionalData: encoder.encode(recordId) },
      this.key,
      data,
    );
    return `v1.${base64url(iv)}.${base64url(new Uint8Array(ct))}`;
  }

  async open<T = unknown>(recordId: string, sealed: string): Promise<T> {
    const [version, iv, ct] = sealed.split('.');
    if (version !== 'v1' || !iv || !ct) throw new Error('unrecognised vault ciphertext');
    const plain = await globalThis.crypto.subtle.decrypt(
      { name: 'AES-GCM', iv: fromBase64url(iv), additionalData: encoder.encode(recordId) },
      this.key,
      fromBase64url(ct),
    );
    return JSON.parse(decoder.decode(plain)) as T;
  }
}
