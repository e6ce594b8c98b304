import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/clock.js';
import { errorHeaders } from '../../src/errors.js';
import { MemoryStore } from '../../src/memory-store.js';
import { RateLimiter } from '../../src/engine/rate-limit.js';
import { createHarness, rejection, type Harness } from '../support/engine-harness.js';
import { useNetworkGuard } from '@athkit/testkit';

describe('rate limits (C-217, C-219, threats H8)', () => {
  it('C-217: the excess gets 429 RATE_LIMITED with Retry-After; another agent is unaffected', async () => {
    const clock = new ManualClock(Date.UTC(2026, 0, 1, 0, 0, 10));
    const limiter = new RateLimiter(new MemoryStore(), clock, { api: { limit: 3, windowSeconds: 60 } });
    for (let i = 0; i < 3; i++) await limiter.enforce('api', 'agent:A1');
    const err = await rejection(() => limiter.enforce('api', 'agent:A1'));
    expect(err).toMatchObject({ code: 'RATE_LIMITED', status: 429, details: { retry_after: 50 } });
    expect(errorHeaders(err as never)).toEqual({ 'retry-after': '50' });
    await expect(limiter.enforce('api', 'agent:A2')).resolves.toBeUndefined();
    clock.advance(50_000);
    await expect(limiter.enforce('api', 'agent:A1')).resolves.toBeUndefined();
  });

  it('threats H8: two limiters sharing one store enforce one limit', async () => {
    const store = new MemoryStore();
    const clock = new ManualClock(0);
    const [one, two] = [new RateLimiter(store, clock, { token: { limit: 2, windowSeconds: 10 } }), new RateLimiter(store, clock, { token: { limit: 2, windowSeconds: 10 } })];
    await one.enforce('token', 'agent:A');
    await two.enforce('token', 'agent:A');
    expect((await rejection(() => one.enforce('token', 'agent:A'))).code).toBe('RATE_LIMITED');
  });

  it('buckets without a rule are unlimited; invalid rules are refused', async () => {
    const limiter = new RateLimiter(new MemoryStore(), new ManualClock(0), {});
    for (let i = 0; i < 50; i++) await limiter.enforce('register', 'ip:127.0.0.1');
    expect(() => new RateLimiter(new MemoryStore(), new ManualClock(0), { api: { limit: 0, windowSeconds: 1 } })).toThrow(RangeError);
  });
});

/** A MemoryStore that counts its rate-limit writes. */
class CountingStore extends MemoryStore {
  writes = 0;
  override hitRateLimit(key: string, limit: number, windowMs: number, now: number, units?: number) {
    this.writes++;
    return super.hitRateLimit(key, limit, windowMs, now, units);
  }
}

describe('rate-limit batches: units taken from the shared count several at a time', () => {
  const admitted = async (limiter: RateLimiter, key: string) => {
    if (limiter.takeHeld('api', key)) return 'held';
    try {
      await limiter.enforce('api', key);
      return 'store';
    } catch (err) {
      expect(err).toMatchObject({ code: 'RATE_LIMITED' });
      return 'refused';
    }
  };

  it('one instance admits exactly the limit, with one store write per batch', async () => {
    const store = new CountingStore();
    const clock = new ManualClock(Date.UTC(2026, 0, 1, 0, 0, 10));
    const limiter = new RateLimiter(store, clock, { api: { limit: 10, windowSeconds: 60, batch: 4 } });
    const outcomes: string[] = [];
    for (let i = 0; i < 12; i++) outcomes.push(await admitted(limiter, 'agent:A1'));
    expect(outcomes.filter((o) => o !== 'refused')).toHaveLength(10);
    expect(outcomes.slice(10)).toEqual(['refused', 'refused']);
    // 4 + 4 + 2 units in three writes, then one write for the first refusal; the second is refused
    // without the store (a window's count never goes down).
    expect(outcomes.filter((o) => o === 'store')).toHaveLength(3);
    expect(store.writes).toBe(4);
    // enforce() itself uses the held units too (the slow path shares them with takeHeld).
    const other = new RateLimiter(new CountingStore(), clock, { api: { limit: 10, windowSeconds: 60, batch: 4 } });
    for (let i = 0; i < 10; i++) await other.enforce('api', 'agent:A1');
    expect((await rejection(() => other.enforce('api', 'agent:A1'))).code).toBe('RATE_LIMITED');
  });

  it('threats H8: two instances never admit more than the limit together, and at most batch − 1 fewer', async () => {
    const store = new MemoryStore();
    const clock = new ManualClock(0);
    const rules = { api: { limit: 10, windowSeconds: 60, batch: 4 } };
    const instances = [new RateLimiter(store, clock, rules), new RateLimiter(store, clock, rules)];
    let total = 0;
    for (let i = 0; i < 40; i++) if ((await admitted(instances[i % 2]!, 'agent:A')) !== 'refused') total++;
    expect(total).toBeLessThanOrEqual(10);
    expect(total).toBeGreaterThanOrEqual(10 - 3);
  });

  it('a key refused in a window is refused without a store write until the window ends, with the right Retry-After', async () => {
    const store = new CountingStore();
    const clock = new ManualClock(Date.UTC(2026, 0, 1, 0, 0, 0));
    const limiter = new RateLimiter(store, clock, { token: { limit: 1, windowSeconds: 60 } });
    await limiter.enforce('token', 'agent:A');
    expect(await rejection(() => limiter.enforce('token', 'agent:A'))).toMatchObject({ details: { retry_after: 60 } });
    clock.advance(20_000);
    for (let i = 0; i < 50; i++) expect(await rejection(() => limiter.enforce('token', 'agent:A'))).toMatchObject({ details: { retry_after: 40 } });
    expect(store.writes).toBe(2);
    await limiter.enforce('token', 'agent:B'); // another key is asked of the store
    clock.advance(40_000); // next window
    await limiter.enforce('token', 'agent:A');
    expect(store.writes).toBe(4);
  });

  it('held units lapse with their window; another key holds nothing', async () => {
    const store = new CountingStore();
    const clock = new ManualClock(0);
    const limiter = new RateLimiter(store, clock, { api: { limit: 10, windowSeconds: 60, batch: 5 } });
    await limiter.enforce('api', 'agent:A');
    expect(limiter.takeHeld('api', 'agent:A')).toBe(true);
    expect(limiter.takeHeld('api', 'agent:B')).toBe(false);
    clock.advance(60_000);
    expect(limiter.takeHeld('api', 'agent:A')).toBe(false);
    await limiter.enforce('api', 'agent:A');
    expect(store.writes).toBe(2);
  });

  it('batch 1 (the default) holds nothing: every request is a store write', async () => {
    const store = new CountingStore();
    const limiter = new RateLimiter(store, new ManualClock(0), { api: { limit: 10, windowSeconds: 60 } });
    await limiter.enforce('api', 'agent:A');
    expect(limiter.takeHeld('api', 'agent:A')).toBe(false);
    await limiter.enforce('api', 'agent:A');
    expect(store.writes).toBe(2);
  });

  it('a batch outside 1…limit, or not an integer, is refused', () => {
    for (const batch of [0, 11, 1.5]) {
      expect(() => new RateLimiter(new MemoryStore(), new ManualClock(0), { api: { limit: 10, windowSeconds: 60, batch } }), String(batch)).toThrow(RangeError);
    }
  });
});

describe('engine.enforceRateLimit (C-219)', () => {
  useNetworkGuard();
  let h: Harness;
  beforeAll(async () => {
    h = await createHarness({ rateLimits: { register: { limit: 2, windowSeconds: 60 } } });
  });
  afterAll(() => h.close());

  it('C-219: registrations beyond the per-IP threshold get 429', async () => {
    await h.engine.enforceRateLimit('register', 'ip:10.1.1.1');
    await h.engine.enforceRateLimit('register', 'ip:10.1.1.1');
    expect((await rejection(() => h.engine.enforceRateLimit('register', 'ip:10.1.1.1'))).code).toBe('RATE_LIMITED');
    await expect(h.engine.enforceRateLimit('register', 'ip:10.1.1.2')).resolves.toBeUndefined();
  });
});
