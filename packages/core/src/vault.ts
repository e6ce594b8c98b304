import type { CryptoKey } from 'jose';
import { nodeCrypto } from './node-crypto.js';
import { base64url, cryptoRandom } from './random.js';

const encoder = new TextEncoder();
const decoder = new TextDecoder();

function fromBase64url(s: string): Uint8Array<ArrayBuffer> {
  const b64 = s.replace(/-/g, '+').replace(/_/g, '/');
  const bin = atob(b64 + '='.repeat((4 - (b64.length % 4)) % 4));
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

// Node's cipher is synchronous and costs a few µs for a token set. Same algorithm, same bytes
// (ciphertext ‖ 16-byte tag) as Web Crypto, so either side opens what the other sealed.
const { createCipheriv, createDecipheriv } = nodeCrypto;
const nodeAesGcm = createCipheriv && createDecipheriv ? { createCipheriv, createDecipheriv } : undefined;
const TAG_LENGTH = 16;

/**
 * Encrypts upstream OAuth token sets before they reach the Store (AES-256-GCM, Web Crypto). The
 * record id is bound as additional data, so a ciphertext copied onto another grant fails to open.
 * Format: `v1.<iv>.<ciphertext>` (base64url).
 */
export class Vault {
  private constructor(
    private readonly key: CryptoKey,
    /** The raw key, kept only where Node's synchronous cipher is used. */
    private readonly raw: Uint8Array | null,
  ) {}

  /** `secret`: 32 bytes, as raw bytes or base64url/base64 text. */
  static async create(secret: Uint8Array | string): Promise<Vault> {
    const raw = typeof secret === 'string' ? fromBase64url(secret.trim()) : new Uint8Array(secret);
    if (raw.length !== 32) throw new Error('vault key must be 32 bytes (256 bits)');
    const key = await globalThis.crypto.subtle.importKey('raw', raw, 'AES-GCM', false, ['encrypt', 'decrypt']);
    return new Vault(key, nodeAesGcm ? raw : null);
  }

  async seal(recordId: string, value: unknown): Promise<string> {
    const iv = cryptoRandom.bytes(12);
    const data = encoder.encode(JSON.stringify(value));
    if (nodeAesGcm && this.raw) {
      const cipher = nodeAesGcm.createCipheriv('aes-256-gcm', this.raw, iv);
      cipher.setAAD(encoder.encode(recordId));
      const head = cipher.update(data);
      const tail = cipher.final();
      const sealed = new Uint8Array(head.length + tail.length + TAG_LENGTH);
      sealed.set(head, 0);
      sealed.set(tail, head.length);
      sealed.set(cipher.getAuthTag(), head.length + tail.length);
      return `v1.${base64url(iv)}.${base64url(sealed)}`;
    }
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
    if (nodeAesGcm && this.raw) {
      const bytes = fromBase64url(ct);
      if (bytes.length < TAG_LENGTH) throw new Error('unrecognised vault ciphertext');
      const decipher = nodeAesGcm.createDecipheriv('aes-256-gcm', this.raw, fromBase64url(iv));
      decipher.setAAD(encoder.encode(recordId));
      decipher.setAuthTag(bytes.subarray(bytes.length - TAG_LENGTH));
      const head = decipher.update(bytes.subarray(0, bytes.length - TAG_LENGTH));
      const tail = decipher.final(); // throws when the tag does not match (tampered, other grant, other key)
      const plain = new Uint8Array(head.length + tail.length);
      plain.set(head, 0);
      plain.set(tail, head.length);
      return JSON.parse(decoder.decode(plain)) as T;
    }
    const plain = await globalThis.crypto.subtle.decrypt(
      { name: 'AES-GCM', iv: fromBase64url(iv), additionalData: encoder.encode(recordId) },
      this.key,
      fromBase64url(ct),
    );
    return JSON.parse(decoder.decode(plain)) as T;
  }
}
