import type {
  AgentPatch,
  AgentRecord,
  AgentState,
  AuditQuery,
  AuditRecord,
  GrantPatch,
  GrantRecord,
  HandshakePatch,
  HandshakeRecord,
  HandshakeState,
  PurgeCounts,
  RateLimitResult,
  RevocationEvent,
  SessionExpectation,
  SessionPatch,
  SessionRecord,
  Store,
  TokenRecord,
} from './store.js';
import { rateLimitResult } from './store.js';

/** How long rows outlive their expiry before purge, so late requests still get a precise error. */
export const PURGE_GRACE_MS = 60 * 60 * 1000;
/** How long rate-limit windows are kept after they started, before purge. */
export const RATE_WINDOW_RETENTION_MS = 2 * 3_600_000;

const clone = <T>(value: T): T => structuredClone(value);

/**
 * A Store in process memory, for tests and development. Single-threaded JavaScript makes every
 * method atomic. Records are copied in and out so callers can never mutate stored state.
 */
export class MemoryStore implements Store {
  private readonly agents = new Map<string, AgentRecord>();
  private readonly agentIds = new Map<string, string>();
  private readonly jtis = new Map<string, number>();
  private readonly sessions = new Map<string, SessionRecord>();
  private readonly sessionsByState = new Map<string, string>();
  private readonly tokens = new Map<string, TokenRecord>();
  private readonly handshakes = new Map<string, HandshakeRecord>();
  private readonly grants = new Map<string, GrantRecord>();
  private readonly audit: AuditRecord[] = [];
  private readonly windows = new Map<string, { start: number; count: number }>();
  private readonly listeners = new Set<(event: RevocationEvent) => void>();

  createAgent(record: AgentRecord): Promise<{ created: true } | { created: false; existing: AgentRecord }> {
    const existingId = this.agentIds.get(record.agentId);
    if (existingId !== undefined) {
      return Promise.resolve({ created: false, existing: clone(this.agents.get(existingId)!) });
    }
    this.agents.set(record.clientId, clone(record));
    this.agentIds.set(record.agentId, record.clientId);
    return Promise.resolve({ created: true });
  }

  getAgent(clientId: string): Promise<AgentRecord | null> {
    const a = this.agents.get(clientId);
    return Promise.resolve(a ? clone(a) : null);
  }

  getAgentByAgentId(agentId: string): Promise<AgentRecord | null> {
    const id = this.agentIds.get(agentId);
    return this.getAgent(id ?? '');
  }

  updateAgent(clientId: string, patch: AgentPatch): Promise<AgentRecord | null> {
    const a = this.agents.get(clientId);
    if (!a) return Promise.resolve(null);
    const next = { ...a, ...clone(patch) };
    this.agents.set(clientId, next);
    return Promise.resolve(clone(next));
  }

  deleteAgent(clientId: string): Promise<boolean> {
    const a = this.agents.get(clientId);
    if (!a) return Promise.resolve(false);
    this.agents.delete(clientId);
    this.agentIds.delete(a.agentId);
    return Promise.resolve(true);
  }

  listAgents(filter: { state?: AgentState; limit?: number; offset?: number } = {}): Promise<AgentRecord[]> {
    const all = [...this.agents.values()]
      .filter((a) => !filter.state || a.state === filter.state)
      .sort((x, y) => x.createdAt - y.createdAt || x.clientId.localeCompare(y.clientId));
    const offset = filter.offset ?? 0;
    return Promise.resolve(all.slice(offset, offset + (filter.limit ?? 100)).map(clone));
  }

  markJtiUsed(agentId: string, jti: string, expiresAt: number): Promise<boolean> {
    const key = `${agentId}\u0000${jti}`;
    if (this.jtis.has(key)) return Promise.resolve(false);
    this.jtis.set(key, expiresAt);
    return Promise.resolve(true);
  }

  createSession(record: SessionRecord): Promise<void> {
    if (this.sessions.has(record.id)) return Promise.reject(new Error('duplicate session id'));
    this.sessions.set(record.id, clone(record));
    this.sessionsByState.set(record.upstreamStateHash, record.id);
    return Promise.resolve();
  }

  getSession(id: string): Promise<SessionRecord | null> {
    const s = this.sessions.get(id);
    return Promise.resolve(s ? clone(s) : null);
  }

  getSessionByUpstreamState(upstreamStateHash: string): Promise<SessionRecord | null> {
    return this.getSession(this.sessionsByState.get(upstreamStateHash) ?? '');
  }

  updateSession(id: string, expect: SessionExpectation, patch: SessionPatch): Promise<SessionRecord | null> {
    const s = this.sessions.get(id);
    if (!s || !expect.status.includes(s.status)) return Promise.resolve(null);
    if (expect.bindingHash !== undefined && s.bindingHash !== expect.bindingHash) return Promise.resolve(null);
    const next = { ...s, ...clone(patch) };
    this.sessions.set(id, next);
    return Promise.resolve(clone(next));
  }

  createHandshake(record: HandshakeRecord): Promise<void> {
    if (this.handshakes.has(record.id)) return Promise.reject(new Error('duplicate handshake id'));
    this.handshakes.set(record.id, clone(record));
    return Promise.resolve();
  }

  getHandshake(id: string): Promise<HandshakeRecord | null> {
    const h = this.handshakes.get(id);
    return Promise.resolve(h ? clone(h) : null);
  }

  updateHandshake(
    id: string,
    expectStates: HandshakeState[],
    patch: HandshakePatch,
  ): Promise<HandshakeRecord | null> {
    const h = this.handshakes.get(id);
    if (!h || !expectStates.includes(h.state)) return Promise.resolve(null);
    const next = { ...h, ...clone(patch) };
    this.handshakes.set(id, next);
    return Promise.resolve(clone(next));
  }

  createToken(record: TokenRecord): Promise<void> {
    if (this.tokens.has(record.tokenHash)) return Promise.reject(new Error('duplicate token'));
    this.tokens.set(record.tokenHash, clone(record));
    return Promise.resolve();
  }

  getToken(tokenHash: string): Promise<TokenRecord | null> {
    const t = this.tokens.get(tokenHash);
    return Promise.resolve(t ? clone(t) : null);
  }

  revokeToken(tokenHash: string, at: number): Promise<boolean> {
    const t = this.tokens.get(tokenHash);
    if (!t || t.revokedAt !== null) return Promise.resolve(false);
    t.revokedAt = at;
    this.emit({ kind: 'token', tokenHash });
    return Promise.resolve(true);
  }

  revokeAgentTokens(clientId: string, at: number): Promise<number> {
    let n = 0;
    for (const t of this.tokens.values()) {
      if (t.clientId === clientId && t.revokedAt === null) {
        t.revokedAt = at;
        n++;
      }
    }
    this.emit({ kind: 'agent', clientId });
    return Promise.resolve(n);
  }

  listTokens(
    filter: { clientId?: string; userId?: string; liveAt?: number; limit?: number; offset?: number } = {},
  ): Promise<TokenRecord[]> {
    const live = filter.liveAt;
    const all = [...this.tokens.values()]
      .filter((t) => (!filter.clientId || t.clientId === filter.clientId) && (!filter.userId || t.userId === filter.userId))
      .filter((t) => live === undefined || (t.revokedAt === null && t.expiresAt > live))
      .sort((x, y) => x.createdAt - y.createdAt || x.tokenHash.localeCompare(y.tokenHash));
    const offset = filter.offset ?? 0;
    return Promise.resolve(all.slice(offset, offset + (filter.limit ?? 100)).map(clone));
  }

  putGrant(record: GrantRecord): Promise<void> {
    this.grants.set(record.id, clone(record));
    return Promise.resolve();
  }

  getGrant(id: string): Promise<GrantRecord | null> {
    const g = this.grants.get(id);
    return Promise.resolve(g ? clone(g) : null);
  }

  updateGrant(id: string, expectVersion: number, patch: GrantPatch): Promise<GrantRecord | null> {
    const g = this.grants.get(id);
    if (!g || g.version !== expectVersion) return Promise.resolve(null);
    const next = { ...g, ...clone(patch), version: g.version + 1 };
    this.grants.set(id, next);
    return Promise.resolve(clone(next));
  }

  deleteGrant(id: string): Promise<boolean> {
    return Promise.resolve(this.grants.delete(id));
  }

  appendAudit(event: AuditRecord): Promise<void> {
    this.audit.push(clone(event));
    return Promise.resolve();
  }

  queryAudit(filter: AuditQuery = {}): Promise<AuditRecord[]> {
    const out = this.audit.filter(
      (e) =>
        (!filter.event || e.event === filter.event) &&
        (!filter.agentId || e.agent_id === filter.agentId) &&
        (!filter.since || e.timestamp >= filter.since) &&
        (!filter.until || e.timestamp <= filter.until),
    );
    return Promise.resolve(out.slice(-(filter.limit ?? 100)).map(clone));
  }

  hitRateLimit(key: string, limit: number, windowMs: number, now: number, units = 1): Promise<RateLimitResult> {
    const start = now - (now % windowMs);
    let w = this.windows.get(key);
    if (!w || w.start !== start) {
      w = { start, count: 0 };
      this.windows.set(key, w);
    }
    w.count += units;
    return Promise.resolve(rateLimitResult(w.count, units, limit, start + windowMs - now));
  }

  watchRevocations(listener: (event: RevocationEvent) => void): Promise<() => Promise<void>> {
    this.listeners.add(listener);
    return Promise.resolve(() => {
      this.listeners.delete(listener);
      return Promise.resolve();
    });
  }

  purgeExpired(now: number): Promise<PurgeCounts> {
    const counts: PurgeCounts = { jti: 0, sessions: 0, tokens: 0, rateLimits: 0 };
    for (const [k, exp] of this.jtis) {
      if (exp < now) {
        this.jtis.delete(k);
        counts.jti++;
      }
    }
    for (const [id, s] of this.sessions) {
      if (s.expiresAt + PURGE_GRACE_MS < now) {
        this.sessions.delete(id);
        this.sessionsByState.delete(s.upstreamStateHash);
        counts.sessions++;
      }
    }
    for (const [id, h] of this.handshakes) {
      if (h.expiresAt + PURGE_GRACE_MS < now) {
        this.handshakes.delete(id);
        counts.sessions++;
      }
    }
    for (const [h, t] of this.tokens) {
      if (t.expiresAt + PURGE_GRACE_MS < now) {
        this.tokens.delete(h);
        counts.tokens++;
      }
    }
    for (const [k, w] of this.windows) {
      if (w.start + RATE_WINDOW_RETENTION_MS < now) {
        this.windows.delete(k);
        counts.rateLimits++;
      }
    }
    return Promise.resolve(counts);
  }

  close(): Promise<void> {
    this.listeners.clear();
    return Promise.resolve();
  }

  private emit(event: RevocationEvent): void {
    for (const l of this.listeners) l(event);
  }
}
