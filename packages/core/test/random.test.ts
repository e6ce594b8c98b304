import { describe, expect, it } from 'vitest';
import { base64url, cryptoRandom, randomId } from '../src/random.js';
import { sha256, timingSafeEqual } from '../src/digest.js';
import { ManualClock } from '../src/clock.js';

describe('random and digest helpers', () => {
  it('base64url matches Node for every length remainder', () => {
    for (let n = 0; n < 40; n++) {
      const bytes = cryptoRandom.bytes(n);
      expect(base64url(bytes)).toBe(Buffer.from(bytes).toString('base64url'));
    }
  });

  it('randomId carries 256 bits by default and never repeats', () => {
    const ids = new Set(Array.from({ length: 1000 }, () => randomId(cryptoRandom, 'ath_tk_')));
    expect(ids.size).toBe(1000);
    for (const id of ids) expect(id).toMatch(/^ath_tk_[A-Za-z0-9_-]{43}$/);
  });

  it('cryptoRandom hands out fresh bytes: pooled draws never overlap, are copies, and large draws work', () => {
    const draws = Array.from({ length: 2000 }, (_, i) => cryptoRandom.bytes(1 + (i % 40))); // crosses the 4 KiB pool many times
    const hex = new Set(draws.filter((d) => d.length >= 16).map((d) => Buffer.from(d).toString('hex')));
    expect(hex.size).toBe(draws.filter((d) => d.length >= 16).length);
    const a = cryptoRandom.bytes(32);
    expect(a.buffer.byteLength).toBe(32); // its own buffer, not a view into the pool
    const copy = Uint8Array.from(a);
    a.fill(0); // scribbling on one draw changes no other
    const b = cryptoRandom.bytes(32);
    expect(Buffer.from(b).equals(Buffer.from(copy))).toBe(false);
    expect(b.some((x) => x !== 0)).toBe(true);
    const big = cryptoRandom.bytes(5000);
    expect(big.length).toBe(5000);
    expect(new Set(big).size).toBeGreaterThan(200); // ~all 256 byte values in 5,000 random bytes
    // Bytes of one pooled draw are not repeated by the next ones: 128 consecutive 32-byte draws are all distinct.
    const row = Array.from({ length: 128 }, () => Buffer.from(cryptoRandom.bytes(32)).toString('hex'));
    expect(new Set(row).size).toBe(128);
  });

  it('sha256 is the base64url SHA-256 of the UTF-8 input', async () => {
    const { createHash } = await import('node:crypto');
    expect(await sha256('héllo')).toBe(createHash('sha256').update('héllo').digest('base64url'));
  });

  it('timingSafeEqual compares exactly', () => {
    expect(timingSafeEqual('abc', 'abc')).toBe(true);
    expect(timingSafeEqual('abc', 'abd')).toBe(false);
    expect(timingSafeEqual('abc', 'abcd')).toBe(false);
  });

  it('ManualClock only moves when told', () => {
    const clock = new ManualClock(1000);
    clock.advance(500);
    expect(clock.now()).toBe(1500);
  });
});
