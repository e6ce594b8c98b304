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
