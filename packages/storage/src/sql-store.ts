import {
  sql,
  type Compilable,
  type Insertable,
  type InsertQueryBuilder,
  type InsertResult,
  type Kysely,
  type QueryResult,
  type Selectable,
  type Transaction,
  type Updateable,
} from 'kysely';
import { PURGE_GRACE_MS, RATE_WINDOW_RETENTION_MS, rateLimitResult } from '@athkit/core';
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
  SessionStatus,
  Store,
  TokenRecord,
} from '@athkit/core';
import type {
  AgentsTable,
  Database,
  GrantsTable,
  HandshakesTable,
  SessionsTable,
  SqlDialect,
  TokensTable,
} from './database.js';
import { CompiledQueries } from './compiled-queries.js';
import type { AnyKysely } from './migrations.js';
import { isUniqueViolation, safeError, wrapError } from './errors.js';

/** Rows deleted per statement by purgeExpired, so a purge never holds long locks. */
const PURGE_BATCH = 500;

/**
 * Cross-instance transport of revocation events (PostgreSQL LISTEN/NOTIFY). `publish` runs inside
 * the transaction that revokes, so the event is delivered only if, and after, the change commits.
 * `subscribe` delivers events published by OTHER stores only; this store's own events are
 * dispatched in-process right after commit.
 */
export interface RevocationBus {
  publish(trx: Transaction<Database>, event: RevocationEvent): Promise<void>;
  subscribe(onEvent: (event: RevocationEvent) => void): Promise<void>;
  unsubscribe(): Promise<void>;
}

export interface SqlStoreOptions {
  dialect: SqlDialect;
  /** Cross-instance revocation feed; without it, only listeners of this instance are told. */
  bus?: RevocationBus;
  /** Releases the driver resources (pool, sqlite handle); called once by close(). */
  release: () => Promise<void>;
}

type AgentRow = Selectable<AgentsTable>;
type SessionRow = Selectable<SessionsTable>;
type TokenRow = Selectable<TokensTable>;
type GrantRow = Selectable<GrantsTable>;
type HandshakeRow = Selectable<HandshakesTable>;

const num = (v: unknown): number => Number(v);
const numOrNull = (v: unknown): number | null => (v === null || v === undefined ? null : Number(v));
const json = (v: unknown): string => JSON.stringify(v);
const jsonOrNull = (v: unknown): string | null => (v === null || v === undefined ? null : JSON.stringify(v));
const parse = <T>(v: string): T => JSON.parse(v) as T;
const parseOrNull = <T>(v: string | null): T | null => (v === null ? null : (JSON.parse(v) as T));
const yieldToEventLoop = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

function toAgent(r: AgentRow): AgentRecord {
  return {
    clientId: r.client_id,
    clientSecretHash: r.client_secret_hash,
    agentId: r.agent_id,
    state: r.state as AgentState,
    name: r.name,
    developer: parse(r.developer),
    purpose: r.purpose,
    redirectUris: parseOrNull(r.redirect_uris),
    requestedProviders: parse(r.requested_providers),
    approvals: parse(r.approvals),
    approvalExpiresAt: num(r.approval_expires_at),
    createdAt: num(r.created_at),
    updatedAt: num(r.updated_at),
  };
}

function fromAgent(a: AgentRecord): AgentRow {
  return {
    client_id: a.clientId,
    client_secret_hash: a.clientSecretHash,
    agent_id: a.agentId,
    state: a.state,
    name: a.name,
    developer: json(a.developer),
    purpose: a.purpose,
    redirect_uris: jsonOrNull(a.redirectUris),
    requested_providers: json(a.requestedProviders),
    approvals: json(a.approvals),
    approval_expires_at: a.approvalExpiresAt,
    created_at: a.createdAt,
    updated_at: a.updatedAt,
  };
}

function toSession(r: SessionRow): SessionRecord {
  return {
    id: r.id,
    clientId: r.client_id,
    agentId: r.agent_id,
    providerId: r.provider_id,
    requestedScopes: parse(r.requested_scopes),
    agentState: r.agent_state,
    userRedirectUri: r.user_redirect_uri,
    resource: r.resource,
    codeVerifier: r.code_verifier,
    upstreamStateHash: r.upstream_state_hash,
    bindingHash: r.binding_hash,
    status: r.status as SessionStatus,
    userId: r.user_id,
    consentedScopes: parseOrNull(r.consented_scopes),
    grantId: r.grant_id,
    completionCodeHash: r.completion_code_hash,
    failure: parseOrNull(r.failure),
    extra: parseOrNull(r.extra),
    createdAt: num(r.created_at),
    expiresAt: num(r.expires_at),
    updatedAt: num(r.updated_at),
  };
}

function fromSession(s: SessionRecord): SessionRow {
  return {
    id: s.id,
    client_id: s.clientId,
    agent_id: s.agentId,
    provider_id: s.providerId,
    requested_scopes: json(s.requestedScopes),
    agent_state: s.agentState,
    user_redirect_uri: s.userRedirectUri,
    resource: s.resource,
    code_verifier: s.codeVerifier,
    upstream_state_hash: s.upstreamStateHash,
    binding_hash: s.bindingHash,
    status: s.status,
    user_id: s.userId,
    consented_scopes: jsonOrNull(s.consentedScopes),
    grant_id: s.grantId,
    completion_code_hash: s.completionCodeHash,
    failure: jsonOrNull(s.failure),
    extra: jsonOrNull(s.extra),
    created_at: s.createdAt,
    expires_at: s.expiresAt,
    updated_at: s.updatedAt,
  };
}

function toToken(r: TokenRow): TokenRecord {
  return {
    tokenHash: r.token_hash,
    clientId: r.client_id,
    agentId: r.agent_id,
    userId: r.user_id,
    providerId: r.provider_id,
    scopes: parse(r.scopes),
    sessionId: r.session_id,
    grantId: r.grant_id,
    resource: r.resource,
    createdAt: num(r.created_at),
    expiresAt: num(r.expires_at),
    revokedAt: numOrNull(r.revoked_at),
    // Only handshake tokens carry restrictions; others round-trip without the member.
    ...(r.restrictions === null || r.restrictions === undefined
      ? {}
      : { restrictions: parse(r.restrictions) }),
  };
}

function fromToken(t: TokenRecord): TokenRow {
  return {
    token_hash: t.tokenHash,
    client_id: t.clientId,
    agent_id: t.agentId,
    user_id: t.userId,
    provider_id: t.providerId,
    scopes: json(t.scopes),
    session_id: t.sessionId,
    grant_id: t.grantId,
    resource: t.resource,
    created_at: t.createdAt,
    expires_at: t.expiresAt,
    revoked_at: t.revokedAt,
    restrictions: jsonOrNull(t.restrictions),
  };
}

function toHandshake(r: HandshakeRow): HandshakeRecord {
  return {
    id: r.id,
    clientId: r.client_id,
    agentId: r.agent_id,
    state: r.state as HandshakeState,
    data: parse(r.data),
    createdAt: num(r.created_at),
    expiresAt: num(r.expires_at),
    updatedAt: num(r.updated_at),
  };
}

function fromHandshake(h: HandshakeRecord): HandshakeRow {
  return {
    id: h.id,
    client_id: h.clientId,
    agent_id: h.agentId,
    state: h.state,
    data: json(h.data),
    created_at: h.createdAt,
    expires_at: h.expiresAt,
    updated_at: h.updatedAt,
  };
}

function toGrant(r: GrantRow): GrantRecord {
  return {
    id: r.id,
    providerId: r.provider_id,
    userId: r.user_id,
    ciphertext: r.ciphertext,
    version: num(r.version),
    leaseUntil: numOrNull(r.lease_until),
    createdAt: num(r.created_at),
    updatedAt: num(r.updated_at),
  };
}

function fromGrant(g: GrantRecord): GrantRow {
  return {
    id: g.id,
    provider_id: g.providerId,
    user_id: g.userId,
    ciphertext: g.ciphertext,
    version: g.version,
    lease_until: g.leaseUntil,
    created_at: g.createdAt,
    updated_at: g.updatedAt,
  };
}

/**
 * The SQL Store: one implementation over kysely for SQLite and PostgreSQL. Every race-deciding
 * method is a single conditional statement (INSERT … ON CONFLICT, UPDATE … WHERE … RETURNING), so
 * it is atomic across every process sharing the database. The schema must already be migrated:
 * use createSqliteStore / createPostgresStore / openStore, which run the migrations first.
 */
export class SqlStore implements Store {
  readonly dialect: SqlDialect;
  private readonly db: Kysely<Database>;
  private readonly bus: RevocationBus | undefined;
  private readonly release: () => Promise<void>;
  private readonly listeners = new Set<(event: RevocationEvent) => void>();
  private subscribed: Promise<void> | undefined;
  /** Whether the cross-instance revocation feed is connected (last 'feed' event of the bus). */
  private feedLive = true;
  private closing: Promise<void> | undefined;
  /** The hot statements, compiled once per shape (see compiled-queries.ts). */
  private readonly compiled: CompiledQueries<Database>;

  constructor(db: Kysely<Database>, options: SqlStoreOptions) {
    this.db = db;
    this.compiled = new CompiledQueries(db);
    this.dialect = options.dialect;
    this.bus = options.bus;
    this.release = options.release;
  }

  /** The underlying kysely instance (for admin tooling and tests). */
  get kysely(): Kysely<Database> {
    return this.db;
  }

  // --- agents ---

  createAgent(record: AgentRecord): Promise<{ created: true } | { created: false; existing: AgentRecord }> {
    return this.run(async () => {
      // The existing row can vanish between the conflict and the read-back (deleteAgent); retry then.
      for (let attempt = 0; attempt < 5; attempt++) {
        let inserted: unknown[];
        try {
          inserted = (
            await this.insertRow('agents', fromAgent(record), {
              name: 'unless-registered',
              extend: (q) => q.onConflict((oc) => oc.column('agent_id').doNothing()).returning('client_id'),
            })
          ).rows;
        } catch (e) {
          if (isUniqueViolation(e)) throw safeError('duplicate client id', e);
          throw e;
        }
        if (inserted.length > 0) return { created: true as const };
        const existing = await this.agentBy('agent_id', record.agentId);
        if (existing) return { created: false as const, existing: toAgent(existing) };
      }
      throw new Error('createAgent: registration kept changing under a concurrent delete');
    });
  }

  getAgent(clientId: string): Promise<AgentRecord | null> {
    return this.run(async () => {
      const r = await this.agentBy('client_id', clientId);
      return r ? toAgent(r) : null;
    });
  }

  getAgentByAgentId(agentId: string): Promise<AgentRecord | null> {
    return this.run(async () => {
      const r = await this.agentBy('agent_id', agentId);
      return r ? toAgent(r) : null;
    });
  }

  updateAgent(clientId: string, patch: AgentPatch): Promise<AgentRecord | null> {
    return this.run(async () => {
      const set: Updateable<AgentsTable> = { updated_at: patch.updatedAt };
      if (patch.state !== undefined) set.state = patch.state;
      if (patch.approvals !== undefined) set.approvals = json(patch.approvals);
      if (patch.approvalExpiresAt !== undefined) set.approval_expires_at = patch.approvalExpiresAt;
      if (patch.clientSecretHash !== undefined) set.client_secret_hash = patch.clientSecretHash;
      const r = await this.db
        .updateTable('agents')
        .set(set)
        .where('client_id', '=', clientId)
        .returningAll()
        .executeTakeFirst();
      return r ? toAgent(r) : null;
    });
  }

  deleteAgent(clientId: string): Promise<boolean> {
    return this.run(async () => {
      const r = await this.db.deleteFrom('agents').where('client_id', '=', clientId).executeTakeFirst();
      return Number(r.numDeletedRows) > 0;
    });
  }

  listAgents(filter: { state?: AgentState; limit?: number; offset?: number } = {}): Promise<AgentRecord[]> {
    return this.run(async () => {
      let q = this.db.selectFrom('agents').selectAll();
      if (filter.state) q = q.where('state', '=', filter.state);
      const rows = await q
        .orderBy('created_at')
        .orderBy('client_id')
        .limit(Math.max(0, filter.limit ?? 100))
        .offset(Math.max(0, filter.offset ?? 0))
        .execute();
      return rows.map(toAgent);
    });
  }

  // --- replay cache ---

  markJtiUsed(agentId: string, jti: string, expiresAt: number): Promise<boolean> {
    return this.run(async () => {
      const { rows } = await this.compiled.execute(
        'jti.mark',
        [agentId, jti, expiresAt] as const,
        (db, [a, j, e]) =>
          db
            .insertInto('jti')
            .values({ agent_id: a, jti: j, expires_at: e })
            .onConflict((oc) => oc.columns(['agent_id', 'jti']).doNothing())
            .returning('jti'),
      );
      return rows.length === 1;
    });
  }

  // --- sessions ---

  createSession(record: SessionRecord): Promise<void> {
    return this.run(() => this.insertUnique('sessions', fromSession(record), 'duplicate session id'));
  }

  getSession(id: string): Promise<SessionRecord | null> {
    return this.run(async () => {
      const r = await this.rowBy('sessions', 'id', id);
      return r ? toSession(r) : null;
    });
  }

  getSessionByUpstreamState(upstreamStateHash: string): Promise<SessionRecord | null> {
    return this.run(async () => {
      const { rows } = await this.compiled.execute(
        'sessions.byState',
        [upstreamStateHash] as const,
        (db, [h]) =>
          db
            .selectFrom('sessions')
            .selectAll()
            .where('upstream_state_hash', '=', h)
            .orderBy('created_at', 'desc')
            // A literal: SQLite runs this with `LIMIT ?` about three times slower than with `LIMIT 1`.
            .limit(sql.lit(1)),
      );
      return rows[0] ? toSession(rows[0]) : null;
    });
  }

  updateSession(id: string, expect: SessionExpectation, patch: SessionPatch): Promise<SessionRecord | null> {
    return this.run(async () => {
      if (expect.status.length === 0) return null;
      const set: Updateable<SessionsTable> = { updated_at: patch.updatedAt };
      if (patch.status !== undefined) set.status = patch.status;
      if (patch.bindingHash !== undefined) set.binding_hash = patch.bindingHash;
      if (patch.userId !== undefined) set.user_id = patch.userId;
      if (patch.consentedScopes !== undefined) set.consented_scopes = jsonOrNull(patch.consentedScopes);
      if (patch.grantId !== undefined) set.grant_id = patch.grantId;
      if (patch.completionCodeHash !== undefined) set.completion_code_hash = patch.completionCodeHash;
      if (patch.failure !== undefined) set.failure = jsonOrNull(patch.failure);
      if (patch.extra !== undefined) set.extra = jsonOrNull(patch.extra);
      const columns = Object.keys(set) as (keyof typeof set)[];
      const binding = expect.bindingHash === null ? 'null' : expect.bindingHash === undefined ? 'any' : 'eq';
      const values = [
        id,
        ...expect.status,
        ...(binding === 'eq' ? [expect.bindingHash] : []),
        ...columns.map((c) => set[c]),
      ];
      const key = `sessions.update:${columns.join(',')}:${expect.status.length}:${binding}`;
      const { rows } = await this.compiled.execute(key, values, (db, v) => {
        const statuses = expect.status.length;
        let q = db
          .updateTable('sessions')
          .set(
            Object.fromEntries(columns.map((c, i) => [c, v[1 + statuses + (binding === 'eq' ? 1 : 0) + i]])),
          )
          .where('id', '=', v[0] as string)
          .where('status', 'in', v.slice(1, 1 + statuses) as string[]);
        if (binding === 'null') q = q.where('binding_hash', 'is', null);
        else if (binding === 'eq') q = q.where('binding_hash', '=', v[1 + statuses] as string);
        return q.returningAll();
      });
      return rows[0] ? toSession(rows[0]) : null;
    });
  }

  // --- 9-step handshakes ---

  createHandshake(record: HandshakeRecord): Promise<void> {
    return this.run(() => this.insertUnique('handshakes', fromHandshake(record), 'duplicate handshake id'));
  }

  getHandshake(id: string): Promise<HandshakeRecord | null> {
    return this.run(async () => {
      const r = await this.rowBy('handshakes', 'id', id);
      return r ? toHandshake(r) : null;
    });
  }

  updateHandshake(
    id: string,
    expectStates: HandshakeState[],
    patch: HandshakePatch,
  ): Promise<HandshakeRecord | null> {
    return this.run(async () => {
      if (expectStates.length === 0) return null;
      const set: Updateable<HandshakesTable> = { updated_at: patch.updatedAt };
      if (patch.state !== undefined) set.state = patch.state;
      if (patch.data !== undefined) set.data = json(patch.data);
      if (patch.expiresAt !== undefined) set.expires_at = patch.expiresAt;
      const r = await this.db
        .updateTable('handshakes')
        .set(set)
        .where('id', '=', id)
        .where('state', 'in', expectStates)
        .returningAll()
        .executeTakeFirst();
      return r ? toHandshake(r) : null;
    });
  }

  // --- tokens ---

  createToken(record: TokenRecord): Promise<void> {
    return this.run(() => this.insertUnique('tokens', fromToken(record), 'duplicate token'));
  }

  getToken(tokenHash: string): Promise<TokenRecord | null> {
    return this.run(async () => {
      const r = await this.rowBy('tokens', 'token_hash', tokenHash);
      return r ? toToken(r) : null;
    });
  }

  revokeToken(tokenHash: string, at: number): Promise<boolean> {
    return this.run(async () => {
      const event: RevocationEvent = { kind: 'token', tokenHash };
      const revoked = await this.withEvent(
        event,
        async (q) => {
          const r = await q
            .updateTable('tokens')
            .set({ revoked_at: at })
            .where('token_hash', '=', tokenHash)
            .where('revoked_at', 'is', null)
            .executeTakeFirst();
          return Number(r.numUpdatedRows) > 0;
        },
        (ok) => ok,
      );
      if (revoked) this.emit(event);
      return revoked;
    });
  }

  revokeAgentTokens(clientId: string, at: number): Promise<number> {
    return this.run(async () => {
      const event: RevocationEvent = { kind: 'agent', clientId };
      const n = await this.withEvent(
        event,
        async (q) => {
          const r = await q
            .updateTable('tokens')
            .set({ revoked_at: at })
            .where('client_id', '=', clientId)
            .where('revoked_at', 'is', null)
            .executeTakeFirst();
          return Number(r.numUpdatedRows);
        },
        () => true,
      );
      this.emit(event);
      return n;
    });
  }

  listTokens(
    filter: { clientId?: string; userId?: string; liveAt?: number; limit?: number; offset?: number } = {},
  ): Promise<TokenRecord[]> {
    return this.run(async () => {
      let q = this.db.selectFrom('tokens').selectAll();
      if (filter.clientId) q = q.where('client_id', '=', filter.clientId);
      if (filter.userId) q = q.where('user_id', '=', filter.userId);
      if (filter.liveAt !== undefined)
        q = q.where('revoked_at', 'is', null).where('expires_at', '>', filter.liveAt);
      const rows = await q
        .orderBy('created_at')
        .orderBy('token_hash')
        .limit(Math.max(0, filter.limit ?? 100))
        .offset(Math.max(0, filter.offset ?? 0))
        .execute();
      return rows.map(toToken);
    });
  }

  // --- grants ---

  putGrant(record: GrantRecord): Promise<void> {
    return this.run(async () => {
      await this.insertRow('grants', fromGrant(record), {
        name: 'upsert',
        extend: (q) =>
          q.onConflict((oc) =>
            oc.column('id').doUpdateSet((eb) => ({
              provider_id: eb.ref('excluded.provider_id'),
              user_id: eb.ref('excluded.user_id'),
              ciphertext: eb.ref('excluded.ciphertext'),
              version: eb.ref('excluded.version'),
              lease_until: eb.ref('excluded.lease_until'),
              created_at: eb.ref('excluded.created_at'),
              updated_at: eb.ref('excluded.updated_at'),
            })),
          ),
      });
    });
  }

  getGrant(id: string): Promise<GrantRecord | null> {
    return this.run(async () => {
      const r = await this.rowBy('grants', 'id', id);
      return r ? toGrant(r) : null;
    });
  }

  updateGrant(id: string, expectVersion: number, patch: GrantPatch): Promise<GrantRecord | null> {
    return this.run(async () => {
      const r = await this.db
        .updateTable('grants')
        .set((eb) => {
          const set: Updateable<GrantsTable> = { updated_at: patch.updatedAt };
          if (patch.ciphertext !== undefined) set.ciphertext = patch.ciphertext;
          if (patch.leaseUntil !== undefined) set.lease_until = patch.leaseUntil;
          return { ...set, version: eb('version', '+', 1) };
        })
        .where('id', '=', id)
        .where('version', '=', expectVersion)
        .returningAll()
        .executeTakeFirst();
      return r ? toGrant(r) : null;
    });
  }

  deleteGrant(id: string): Promise<boolean> {
    return this.run(async () => {
      const r = await this.db.deleteFrom('grants').where('id', '=', id).executeTakeFirst();
      return Number(r.numDeletedRows) > 0;
    });
  }

  // --- audit ---

  appendAudit(event: AuditRecord): Promise<void> {
    return this.run(async () => {
      await this.insertRow('audit', {
        timestamp: event.timestamp,
        event: event.event,
        agent_id: typeof event.agent_id === 'string' ? event.agent_id : null,
        data: json(event),
      });
    });
  }

  queryAudit(filter: AuditQuery = {}): Promise<AuditRecord[]> {
    return this.run(async () => {
      let q = this.db.selectFrom('audit').select(['seq', 'data']);
      if (filter.event) q = q.where('event', '=', filter.event);
      if (filter.agentId) q = q.where('agent_id', '=', filter.agentId);
      if (filter.since) q = q.where('timestamp', '>=', filter.since);
      if (filter.until) q = q.where('timestamp', '<=', filter.until);
      const rows = await q
        .orderBy('seq', 'desc')
        .limit(Math.max(0, filter.limit ?? 100))
        .execute();
      return rows.reverse().map((r) => parse<AuditRecord>(r.data));
    });
  }

  // --- rate limits ---

  hitRateLimit(key: string, limit: number, windowMs: number, now: number, units = 1): Promise<RateLimitResult> {
    return this.run(async () => {
      const start = now - (now % windowMs);
      const { rows } = await this.compiled.execute('rate.hit', [key, start, units] as const, (db, [k, w, u]) =>
        db
          .insertInto('rate_limits')
          .values({ key: k, window_start: w, count: u })
          .onConflict((oc) =>
            // Qualified: inside DO UPDATE an unqualified `count` is ambiguous with `excluded.count` in PostgreSQL.
            oc
              .columns(['key', 'window_start'])
              .doUpdateSet((eb) => ({ count: eb('rate_limits.count', '+', u) })),
          )
          .returning('count'),
      );
      if (!rows[0]) throw new Error('rate limit upsert returned no row');
      return rateLimitResult(Number(rows[0].count), units, limit, start + windowMs - now);
    });
  }

  // --- change feed and housekeeping ---

  watchRevocations(listener: (event: RevocationEvent) => void): Promise<() => Promise<void>> {
    return this.run(async () => {
      this.listeners.add(listener);
      if (this.bus) {
        this.subscribed ??= this.bus
          .subscribe((event) => this.emit(event))
          .catch((e: unknown) => {
            this.subscribed = undefined;
            throw e;
          });
        try {
          await this.subscribed;
        } catch (e) {
          this.listeners.delete(listener);
          throw e;
        }
        // A listener that arrives while the feed is down must not trust anything it caches.
        if (!this.feedLive) listener({ kind: 'feed', live: false });
      }
      let active = true;
      return async () => {
        if (!active) return;
        active = false;
        this.listeners.delete(listener);
        if (this.bus && this.listeners.size === 0 && this.subscribed) {
          this.subscribed = undefined;
          this.feedLive = true;
          await this.bus.unsubscribe().catch(() => undefined);
        }
      };
    });
  }

  purgeExpired(now: number): Promise<PurgeCounts> {
    return this.run(async () => {
      const db = this.db;
      const sessionCutoff = now - PURGE_GRACE_MS;
      const windowCutoff = now - RATE_WINDOW_RETENTION_MS;
      const jti = await this.purgeInBatches(() =>
        db
          .deleteFrom('jti')
          .where((eb) =>
            eb(
              eb.refTuple('agent_id', 'jti'),
              'in',
              eb
                .selectFrom('jti')
                .select(['agent_id', 'jti'])
                .where('expires_at', '<', now)
                .limit(PURGE_BATCH)
                .$asTuple('agent_id', 'jti'),
            ),
          )
          .executeTakeFirst(),
      );
      const sessions = await this.purgeInBatches(() =>
        db
          .deleteFrom('sessions')
          .where('id', 'in', (eb) =>
            eb.selectFrom('sessions').select('id').where('expires_at', '<', sessionCutoff).limit(PURGE_BATCH),
          )
          .executeTakeFirst(),
      );
      const handshakes = await this.purgeInBatches(() =>
        db
          .deleteFrom('handshakes')
          .where('id', 'in', (eb) =>
            eb
              .selectFrom('handshakes')
              .select('id')
              .where('expires_at', '<', sessionCutoff)
              .limit(PURGE_BATCH),
          )
          .executeTakeFirst(),
      );
      const tokens = await this.purgeInBatches(() =>
        db
          .deleteFrom('tokens')
          .where('token_hash', 'in', (eb) =>
            eb
              .selectFrom('tokens')
              .select('token_hash')
              .where('expires_at', '<', sessionCutoff)
              .limit(PURGE_BATCH),
          )
          .executeTakeFirst(),
      );
      const rateLimits = await this.purgeInBatches(() =>
        db
          .deleteFrom('rate_limits')
          .where((eb) =>
            eb(
              eb.refTuple('key', 'window_start'),
              'in',
              eb
                .selectFrom('rate_limits')
                .select(['key', 'window_start'])
                .where('window_start', '<', windowCutoff)
                .limit(PURGE_BATCH)
                .$asTuple('key', 'window_start'),
            ),
          )
          .executeTakeFirst(),
      );
      return { jti, sessions: sessions + handshakes, tokens, rateLimits };
    });
  }

  close(): Promise<void> {
    this.closing ??= (async () => {
      this.listeners.clear();
      const subscribed = this.subscribed;
      this.subscribed = undefined;
      if (this.bus && subscribed) await this.bus.unsubscribe().catch(() => undefined);
      await this.release();
    })().catch((e: unknown) => {
      throw wrapError(e);
    });
    return this.closing;
  }

  // --- internals ---

  private agentBy(column: 'client_id' | 'agent_id', value: string): Promise<AgentRow | undefined> {
    return this.rowBy('agents', column, value);
  }

  /** The row whose unique `column` equals `value` (compiled once per table and column). */
  private async rowBy<T extends 'agents' | 'sessions' | 'tokens' | 'grants' | 'handshakes'>(
    table: T,
    column: keyof Database[T] & string,
    value: string,
  ): Promise<Selectable<Database[T]> | undefined> {
    // Untyped builder: the signature already ties `column` to `table`.
    const name: string = column;
    const { rows } = await this.compiled.execute(`${table}.by:${name}`, [value] as const, (db, [v]) =>
      (db as unknown as AnyKysely).selectFrom(table).selectAll().where(name, '=', v),
    );
    return rows[0] as Selectable<Database[T]> | undefined;
  }

  /** INSERT of a row whose key must be new; a duplicate key is reported as `duplicate` without SQL. */
  private async insertUnique<T extends keyof Database>(
    table: T,
    row: Insertable<Database[T]>,
    duplicate: string,
  ): Promise<void> {
    try {
      await this.insertRow(table, row);
    } catch (e) {
      if (isUniqueViolation(e)) throw safeError(duplicate, e);
      throw e;
    }
  }

  /**
   * INSERT of one row, compiled once per table and column list; `variant` names an extension of the
   * statement (ON CONFLICT …, RETURNING …) and is part of the compiled shape's key.
   */
  private insertRow<T extends keyof Database, R = never>(
    table: T,
    row: Insertable<Database[T]>,
    variant?: { name: string; extend: (q: InsertQueryBuilder<Database, T, InsertResult>) => Compilable<R> },
  ): Promise<QueryResult<R>> {
    const columns = Object.keys(row) as (keyof typeof row & string)[];
    const values = columns.map((c) => row[c]);
    return this.compiled.execute(
      `insert:${table}:${columns.join(',')}:${variant?.name ?? ''}`,
      values,
      (db, v) => {
        const q = db
          .insertInto(table)
          .values(Object.fromEntries(columns.map((c, i) => [c, v[i]])) as Insertable<Database[T]>);
        return variant ? variant.extend(q) : q;
      },
    );
  }

  private async run<T>(fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (e) {
      throw wrapError(e);
    }
  }

  /**
   * Runs a revoking update; with a bus (PostgreSQL) it runs in a transaction that also publishes
   * the event when `shouldPublish(result)`, so the NOTIFY is delivered exactly when the update
   * commits. Without a bus it is the single statement alone.
   */
  private async withEvent<T>(
    event: RevocationEvent,
    update: (q: Kysely<Database>) => Promise<T>,
    shouldPublish: (result: T) => boolean,
  ): Promise<T> {
    const bus = this.bus;
    if (!bus) return update(this.db);
    return this.db.transaction().execute(async (trx) => {
      const result = await update(trx);
      if (shouldPublish(result)) await bus.publish(trx, event);
      return result;
    });
  }

  private async purgeInBatches(step: () => Promise<{ numDeletedRows: bigint }>): Promise<number> {
    let total = 0;
    for (;;) {
      const n = Number((await step()).numDeletedRows);
      total += n;
      if (n < PURGE_BATCH) return total;
      await yieldToEventLoop();
    }
  }

  private emit(event: RevocationEvent): void {
    if (event.kind === 'feed') this.feedLive = event.live;
    for (const listener of [...this.listeners]) {
      try {
        listener(event);
      } catch {
        // A listener's failure must not undo or fail a revocation that has already committed.
      }
    }
  }
}
