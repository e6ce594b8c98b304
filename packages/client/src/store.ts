import type { AgentStatus, ProviderApproval } from '@athkit/schemas';

/** An ATH access token as the client keeps it. */
export interface StoredToken {
  accessToken: string;
  tokenType: 'Bearer';
  providerId: string;
  agentId: string;
  scopes: string[];
  /** Milliseconds since the epoch (clock at receipt + `expires_in`). */
  expiresAt: number;
}

/** An authorization started with /ath/authorize and not yet exchanged. */
export interface PendingAuthorization {
  authorizationUrl: string;
  sessionId: string;
  /** The CSPRNG state sent to /ath/authorize; the redirect must carry the same value (CL-09). */
  state: string;
  providerId: string;
  scopes: string[];
  /** The registered redirect URI the user returns to, when the agent has one (CL-07). */
  redirectUri?: string;
  /** Milliseconds since the epoch. */
  createdAt: number;
}

/** Everything the client remembers about one agent at one ATH server (gateway or native service). */
export interface StoredCredentials {
  agentId: string;
  /** The server's base URL (normalised, no trailing slash). */
  server: string;
  clientId: string;
  clientSecret: string;
  agentStatus?: AgentStatus;
  approvedProviders?: ProviderApproval[];
  approvalExpires?: string;
  /** Access tokens by provider_id. */
  tokens?: Record<string, StoredToken>;
  /** Unfinished authorizations by provider_id. */
  pending?: Record<string, PendingAuthorization>;
}

/**
 * Where client credentials and tokens live (CL-15, CL-16). Implementations must keep them secret:
 * `FileCredentialStore` in '@athkit/client/node' writes 0600 files in 0700 directories, sealed
 * with AES-256-GCM when given a key.
 */
export interface CredentialStore {
  load(agentId: string, server: string): Promise<StoredCredentials | null>;
  save(credentials: StoredCredentials): Promise<void>;
  remove(agentId: string, server: string): Promise<void>;
}

/** In-memory store (the default): credentials last as long as the process. */
export class MemoryCredentialStore implements CredentialStore {
  private readonly entries = new Map<string, string>();

  private key(agentId: string, server: string): string {
    return JSON.stringify([agentId, server]);
  }

  load(agentId: string, server: string): Promise<StoredCredentials | null> {
    const raw = this.entries.get(this.key(agentId, server));
    return Promise.resolve(raw === undefined ? null : (JSON.parse(raw) as StoredCredentials));
  }

  save(credentials: StoredCredentials): Promise<void> {
    this.entries.set(this.key(credentials.agentId, credentials.server), JSON.stringify(credentials));
    return Promise.resolve();
  }

  remove(agentId: string, server: string): Promise<void> {
    this.entries.delete(this.key(agentId, server));
    return Promise.resolve();
  }
}
