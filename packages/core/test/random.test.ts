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
