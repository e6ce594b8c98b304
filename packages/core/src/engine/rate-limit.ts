import { AthError } from '../errors.js';
import type { Store } from '../store.js';
import type { Clock } from '../clock.js';

/** Where a limit applies. Unauthenticated steps are keyed by caller IP, authenticated ones by agent. */
export type RateLimitBucket = 'register' | 'authorize' | 'token' | 'revoke' | 'status' | 'api' | 'handshake';

export interface RateLimitRule {
  limit: number;
  windowSeconds: number;
  /**
   * Units an instance takes from the shared count at once (default 1: one store write per
   * request, exact). With `batch` > 1 the instance serves the units it holds without a store
   * write; the total admitted per window still never exceeds `limit`, but with several instances
   * a caller may be refused up to (instances − 1) × (batch − 1) requests early, because units
   * held by one instance are not usable by another. Held units lapse with their window.
   */
  batch?: number;
}

export type RateLimitRules = Partial<Record<RateLimitBucket, RateLimitRule>>;

function checkRule(bucket: string, rule: RateLimitRule): void {
  if (!Number.isInteger(rule.limit) || rule.limit < 1 || !Number.isInteger(rule.windowSeconds) || rule.windowSeconds < 1) {
    throw new RangeError(`rate limit ${bucket}: limit and windowSeconds must be positive integers`);
  }
  if (rule.batch !== undefined && (!Number.isInteger(rule.batch) || rule.batch < 1 || rule.batch > rule.limit)) {
    throw new RangeError(`rate limit ${bucket}: batch must be an integer from 1 to limit`);
  }
}

/** Units this instance took from the shared count and has not used yet, for one key and window. */
interface HeldUnits {
  windowStart: number;
  left: number;
}

/**
 * Keys with held units (or a refusal) kept at most; beyond that the map is emptied: held units
 * lapse (fewer admitted, never more) and refusals are asked of the store again.
 */
const MAX_HELD_KEYS = 10_000;

function rateLimited(resetInMs: number): AthError {
  return new AthError('RATE_LIMITED', 'Too many requests; retry later', { retry_after: Math.max(1, Math.ceil(resetInMs / 1000)) });
}

/**
 * Fixed-window limits counted in the Store, so every instance sharing it enforces one limit
 * (C-217, C-219, threats H8). Over the limit → 429 RATE_LIMITED with `retry_after` (seconds),
 * which adapters send as `Retry-After`.
 */
export class RateLimiter {
  private readonly held = new Map<string, HeldUnits>();
  /**
   * Keys refused in a window, by window start. A window's count never goes down, so a key refused
   * once stays refused until the window ends: later requests are refused here, without a store
   * write (an agent hammering past its limit costs nothing, and the count cannot grow without bound).
   */
  private readonly refused = new Map<string, number>();

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

  /**
   * Admits one request of `key` in `bucket` from the units this instance already holds, with no
   * store access; false when `bucket` has no rule or no unit is held (then {@link enforce} decides).
   */
  takeHeld(bucket: RateLimitBucket, key: string): boolean {
    const rule = this.rules[bucket];
    if (!rule || (rule.batch ?? 1) === 1) return false;
    const fullKey = `${bucket}:${key}`;
    const units = this.held.get(fullKey);
    if (!units) return false;
    const windowMs = rule.windowSeconds * 1000;
    const now = this.clock.now();
    if (units.windowStart !== now - (now % windowMs)) {
      this.held.delete(fullKey);
      return false;
    }
    if (--units.left === 0) this.held.delete(fullKey);
    return true;
  }

  /** Counts one request of `key` (e.g. `ip:203.0.113.7`, `agent:<agent_id>`) in `bucket`; throws when over. */
  async enforce(bucket: RateLimitBucket, key: string): Promise<void> {
    const rule = this.rules[bucket];
    if (!rule) return;
    if (this.takeHeld(bucket, key)) return;
    const fullKey = `${bucket}:${key}`;
    const windowMs = rule.windowSeconds * 1000;
    const now = this.clock.now();
    const windowStart = now - (now % windowMs);
    if (this.refused.get(fullKey) === windowStart) throw rateLimited(windowStart + windowMs - now);
    const result = await this.store.hitRateLimit(fullKey, rule.limit, windowMs, now, rule.batch ?? 1);
    if (!result.allowed) {
      if (this.refused.size >= MAX_HELD_KEYS) this.refused.clear();
      this.refused.set(fullKey, windowStart);
      throw rateLimited(result.resetInMs);
    }
    if (result.granted > 1) this.hold(fullKey, windowStart, result.granted - 1);
  }

  private hold(fullKey: string, windowStart: number, units: number): void {
    const current = this.held.get(fullKey);
    if (current && current.windowStart === windowStart) {
      current.left += units;
      return;
    }
    if (this.held.size >= MAX_HELD_KEYS) this.held.clear();
    this.held.set(fullKey, { windowStart, left: units });
  }
}
