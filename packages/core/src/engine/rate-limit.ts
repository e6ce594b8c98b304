import { AthError } from '../errors.js';
import type { Store } from '../store.js';
import type { Clock } from '../clock.js';

/** Where a limit applies. Unauthenticated steps are keyed by caller IP, authenticated ones by agent. */
export type RateLimitBucket = 'register' | 'authorize' | 'token' | 'revoke' | 'status' | 'api' | 'handshake';

export interface RateLimitRule {
  limit: number;
  windowSeconds: number;
}

export type RateLimitRules = Partial<Record<RateLimitBucket, RateLimitRule>>;

function checkRule(bucket: string, rule: RateLimitRule): void {
  if (!Number.isInteger(rule.limit) || rule.limit < 1 || !Number.isInteger(rule.windowSeconds) || rule.windowSeconds < 1) {
    throw new RangeError(`rate limit ${bucket}: limit and windowSeconds must be positive integers`);
  }
}

/**
 * Fixed-window limits counted in the Store, so every instance sharing it enforces one limit
 * (C-217, C-219, threats H8). Over the limit → 429 RATE_LIMITED with `retry_after` (seconds),
 * which adapters send as `Retry-After`.
 */
export class RateLimiter {
  constructor(
    private readonly store: Pick<Store, 'hitRateLimit'>,
    private readonly clock: Clock,
    private readonly rules: RateLimitRules,
  ) {
    this.rules = { ...rules };
    for (const [bucket, rule] of Object.entries(rules)) checkRule(bucket, rule);
  }

  /** Sets the rule of one bucket when none is configured (e.g. the 9-step handshake's own default, C-271). */
  setDefault(bucket: RateLimitBucket, rule: RateLimitRule): void {
    checkRule(bucket, rule);
    this.rules[bucket] ??= rule;
  }

  /** Whether `bucket` has a rule. */
  has(bucket: RateLimitBucket): boolean {
    return this.rules[bucket] !== undefined;
  }

  /** Counts one request of `key` (e.g. `ip:203.0.113.7`, `agent:<agent_id>`) in `bucket`; throws when over. */
  async enforce(bucket: RateLimitBucket, key: string): Promise<void> {
    const rule = this.rules[bucket];
    if (!rule) return;
    const result = await this.store.hitRateLimit(`${bucket}:${key}`, rule.limit, rule.windowSeconds * 1000, this.clock.now());
    if (!result.allowed) {
      throw new AthError('RATE_LIMITED', 'Too many requests; retry later', {
        retry_after: Math.max(1, Math.ceil(result.resetInMs / 1000)),
      });
    }
  }
}
