/** Randomness source (CSPRNG by default), injected so tests can make ids deterministic. */
export interface RandomSource {
  bytes(length: number): Uint8Array;
}

// Small requests are served from a pool filled 4 KiB at a time: one getRandomValues call costs more
// than the bytes it returns (a handshake asks for ~10 ids). Every byte is handed out once, as a copy,
// and the pool's used part is zeroed, so no two callers ever share randomness.
const POOL_SIZE = 4096;
const POOLED_MAX = 256;
const pool = new Uint8Array(POOL_SIZE);
let poolOffset = POOL_SIZE;

export const cryptoRandom: RandomSource = {
  bytes(length) {
    if (length > POOLED_MAX) {
      const out = new Uint8Array(length);
      globalThis.crypto.getRandomValues(out);
      return out;
    }
    if (poolOffset + length > POOL_SIZE) {
      globalThis.crypto.getRandomValues(pool);
      poolOffset = 0;
    }
    const out = pool.slice(poolOffset, poolOffset + length);
    pool.fill(0, poolOffset, poolOffset + length);
    poolOffset += length;
    return out;
  },
};

const B64URL = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';

/** base64url without padding; no Buffer so it runs wherever Web Crypto does. */
export function base64url(bytes: Uint8Array): string {
  let out = '';
  let i = 0;
  for (; i + 2 < bytes.length; i += 3) {
    const n = (bytes[i]! << 16) | (bytes[i + 1]! << 8) | bytes[i + 2]!;
    out += B64URL[n >> 18]! + B64URL[(n >> 12) & 63]! + B64URL[(n >> 6) & 63]! + B64URL[n & 63]!;
  }
  const rest = bytes.length - i;
  if (rest === 1) {
    const n = bytes[i]! << 16;
    out += B64URL[n >> 18]! + B64URL[(n >> 12) & 63]!;
  } else if (rest === 2) {
    const n = (bytes[i]! << 16) | (bytes[i + 1]! << 8);
    out += B64URL[n >> 18]! + B64URL[(n >> 12) & 63]! + B64URL[(n >> 6) & 63]!;
  }
  return out;
}

/** An opaque, prefixed random identifier, e.g. `ath_tk_<43 chars>` for 32 bytes (256 bits). */
export function randomId(random: RandomSource, prefix: string, byteLength = 32): string {
  return prefix + base64url(random.bytes(byteLength));
}
