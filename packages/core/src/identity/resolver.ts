import type { AgentIdentityDocument } from '@athkit/schemas';
import { systemClock, type Clock } from '../clock.js';
import { AthError } from '../errors.js';
import { parseAgentId } from './agent-id.js';
import { parseIdentityDocument } from './document.js';
import { attestationFailure } from './failure.js';
import type { DocumentFetcher } from './fetcher.js';
import type { AgentKey } from './keys.js';

/** A validated identity document with its keys already imported. Immutable; replaced, never mutated. */
export interface ResolvedIdentity {
  readonly agentId: string;
  readonly document: AgentIdentityDocument;
  readonly keys: readonly AgentKey[];
  /** Clock time (ms) when the document was fetched. */
  readonly fetchedAt: number;
}

export interface IdentityResolverOptions {
  fetcher: DocumentFetcher;
  clock?: Clock;
  /** How long a validated document is used (default and maximum 300000 ms; C-028). */
  cacheTtlMs?: number;
  /** Minimum time between cache-bypassing re-fetches of one agent (default 60000 ms; C-030). */
  refetchIntervalMs?: number;
  /** How long a failed fetch is remembered (default: refetchIntervalMs; threats B9). */
  failureTtlMs?: number;
  /** Bound on remembered agents (documents, failures, refetch times); oldest evicted first. Default 10000. */
  maxEntries?: number;
}

export const MAX_CACHE_TTL_MS = 300_000;

interface CacheEntry {
  identity: ResolvedIdentity;
  expiresAt: number;
}

/** Map.set that keeps at most `max` entries, evicting in insertion order (refreshed keys move last). */
function setBounded<K, V>(map: Map<K, V>, key: K, value: V, max: number): void {
  map.delete(key);
  map.set(key, value);
  if (map.size > max) map.delete(map.keys().next().value as K);
}

/**
 * Fetches, validates and caches agent identity documents. The cache key is the canonical agent_id
 * and nothing else: nothing from a JWT (kid, iss, jku) ever chooses what is fetched or cached
 * (threats B9). Cache-Control is ignored on purpose: a short max-age would let an agent make us
 * fetch on every request, and a long one must not exceed the 5-minute cap anyway.
 */
export class IdentityResolver {
  private readonly fetcher: DocumentFetcher;
  private readonly clock: Clock;
  private readonly ttlMs: number;
  private readonly refetchIntervalMs: number;
  private readonly failureTtlMs: number;
  private readonly maxEntries: number;
  private readonly entries = new Map<string, CacheEntry>();
  private readonly failures = new Map<string, { error: AthError; until: number }>();
  private readonly lastForced = new Map<string, number>();
  private readonly inflight = new Map<string, Promise<ResolvedIdentity>>();

  constructor(options: IdentityResolverOptions) {
    this.fetcher = options.fetcher;
    this.clock = options.clock ?? systemClock;
    this.ttlMs = Math.min(Math.max(options.cacheTtlMs ?? MAX_CACHE_TTL_MS, 0), MAX_CACHE_TTL_MS);
    this.refetchIntervalMs = options.refetchIntervalMs ?? 60_000;
    this.failureTtlMs = options.failureTtlMs ?? this.refetchIntervalMs;
    this.maxEntries = options.maxEntries ?? 10_000;
  }

  /** Validates an agent_id the way resolve() does, without fetching. Throws INVALID_ATTESTATION. */
  parseAgentId(agentId: string): URL {
    return parseAgentId(agentId, (url) => this.fetcher.isInsecureAllowed?.(url) ?? false);
  }

  /** The cached identity if it is still fresh; synchronous, for the verification hot path. */
  peek(agentId: string): ResolvedIdentity | undefined {
    const entry = this.entries.get(agentId);
    return entry !== undefined && this.clock.now() < entry.expiresAt ? entry.identity : undefined;
  }

  /**
   * Returns the identity for `agentId`, fetching when the cache has no fresh entry. `forceRefresh`
   * (used after a signature failure, C-029) bypasses a fresh entry at most once per agent per
   * `refetchIntervalMs` (C-030); when rate-limited it returns the cached identity unchanged, so
   * callers can compare by reference to learn that nothing new was fetched.
   */
  resolve(agentId: string, options?: { forceRefresh?: boolean }): Promise<ResolvedIdentity> {
    const now = this.clock.now();
    const entry = this.entries.get(agentId);
    if (entry !== undefined && now < entry.expiresAt) {
      if (options?.forceRefresh !== true) return Promise.resolve(entry.identity);
      // Concurrent failures share the one refresh already under way instead of seeing the old keys.
      const pending = this.inflight.get(agentId);
      if (pending !== undefined) return pending;
      const last = this.lastForced.get(agentId);
      if (last !== undefined && now - last < this.refetchIntervalMs) return Promise.resolve(entry.identity);
      setBounded(this.lastForced, agentId, now, this.maxEntries);
      // A failed forced refresh keeps the entry: an attacker who can trigger refreshes (any bad
      // signature does) must not be able to evict a good key during the agent's transient outage.
      return this.load(agentId, new URL(agentId));
    }
    return this.resolveUncached(agentId, now);
  }

  private async resolveUncached(agentId: string, now: number): Promise<ResolvedIdentity> {
    const url = this.parseAgentId(agentId);
    // A recent failure is answered from memory: a broken agent must not cost a fetch per request.
    const failure = this.failures.get(agentId);
    if (failure !== undefined && now < failure.until) throw failure.error;
    return this.load(agentId, url);
  }

  /** Drops everything known about an agent (e.g. after deregistration). */
  invalidate(agentId: string): void {
    this.entries.delete(agentId);
    this.failures.delete(agentId);
    this.lastForced.delete(agentId);
  }

  /** Concurrent loads of one agent share one fetch (threats B9: 100 parallel first uses → 1 fetch). */
  private load(agentId: string, url: URL): Promise<ResolvedIdentity> {
    const pending = this.inflight.get(agentId);
    if (pending !== undefined) return pending;
    const promise = this.fetchAndValidate(agentId, url);
    this.inflight.set(agentId, promise);
    promise
      .finally(() => {
        if (this.inflight.get(agentId) === promise) this.inflight.delete(agentId);
      })
      .catch(() => {});
    return promise;
  }

  private async fetchAndValidate(agentId: string, url: URL): Promise<ResolvedIdentity> {
    try {
      const fetched = await this.fetcher.fetch(url);
      const { document, keys } = await parseIdentityDocument(fetched, agentId);
      const fetchedAt = this.clock.now();
      const identity: ResolvedIdentity = Object.freeze({
        agentId,
        document,
        keys: Object.freeze(keys),
        fetchedAt,
      });
      setBounded(this.entries, agentId, { identity, expiresAt: fetchedAt + this.ttlMs }, this.maxEntries);
      this.failures.delete(agentId);
      return identity;
    } catch (err) {
      const error =
        err instanceof AthError && err.code === 'INVALID_ATTESTATION'
          ? err
          : attestationFailure('identity_document_unavailable', 'The identity document could not be fetched');
      setBounded(
        this.failures,
        agentId,
        { error, until: this.clock.now() + this.failureTtlMs },
        this.maxEntries,
      );
      throw error;
    }
  }
}
