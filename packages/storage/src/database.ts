import type { ColumnType, Generated } from 'kysely';

/**
 * Integer milliseconds. PostgreSQL `bigint` may come back from a driver as a string (a pool we did
 * not create keeps pg's default parser), so every read goes through `Number()` in the mappers.
 */
export type Millis = ColumnType<number, number, number>;

/** Row shapes of the tables, in snake_case as stored. Arrays and objects are JSON text. */
export interface AgentsTable {
  client_id: string;
  client_secret_hash: string;
  agent_id: string;
  state: string;
  name: string | null;
  developer: string;
  purpose: string | null;
  redirect_uris: string | null;
  requested_providers: string;
  approvals: string;
  approval_expires_at: Millis;
  created_at: Millis;
  updated_at: Millis;
}

export interface JtiTable {
  agent_id: string;
  jti: string;
  expires_at: Millis;
}

export interface SessionsTable {
  id: string;
  client_id: string;
  agent_id: string;
  provider_id: string;
  requested_scopes: string;
  agent_state: string;
  user_redirect_uri: string | null;
  resource: string | null;
  code_verifier: string;
  upstream_state_hash: string;
  binding_hash: string | null;
  status: string;
  user_id: string | null;
  consented_scopes: string | null;
  grant_id: string | null;
  completion_code_hash: string | null;
  failure: string | null;
  extra: string | null;
  created_at: Millis;
  expires_at: Millis;
  updated_at: Millis;
}

export interface TokensTable {
  token_hash: string;
  client_id: string;
  agent_id: string;
  user_id: string;
  provider_id: string;
  scopes: string;
  session_id: string;
  grant_id: string | null;
  resource: string | null;
  created_at: Millis;
  expires_at: Millis;
  revoked_at: Millis | null;
  /** JSON TokenRestrictions of a 9-step handshake token (migration 2); null otherwise. */
  restrictions: string | null;
}

/** 9-step handshakes (migration 2). `data` is the JSON HandshakeData. */
export interface HandshakesTable {
  id: string;
  client_id: string;
  agent_id: string;
  state: string;
  data: string;
  created_at: Millis;
  expires_at: Millis;
  updated_at: Millis;
}

export interface GrantsTable {
  id: string;
  provider_id: string;
  user_id: string;
  ciphertext: string;
  version: number;
  lease_until: Millis | null;
  created_at: Millis;
  updated_at: Millis;
}

export interface AuditTable {
  /** Insertion order (queryAudit returns the newest `limit` events, oldest first). */
  seq: Generated<number>;
  timestamp: string;
  event: string;
  agent_id: string | null;
  /** The whole event as JSON. */
  data: string;
}

export interface RateLimitsTable {
  key: string;
  window_start: Millis;
  count: number;
}

export interface SchemaMigrationsTable {
  version: number;
  name: string;
  applied_at: Millis;
}

export interface Database {
  agents: AgentsTable;
  jti: JtiTable;
  sessions: SessionsTable;
  tokens: TokensTable;
  handshakes: HandshakesTable;
  grants: GrantsTable;
  audit: AuditTable;
  rate_limits: RateLimitsTable;
  schema_migrations: SchemaMigrationsTable;
}

/** The two SQL dialects; the only places they differ are marked with this tag. */
export type SqlDialect = 'sqlite' | 'postgres';
