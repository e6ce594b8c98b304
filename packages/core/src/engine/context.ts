import type { AgentStatus } from '@athkit/schemas';
import type { AttestationVerifier } from '../attestation/index.js';
import type { Auditor } from '../audit.js';
import type { Clock } from '../clock.js';
import { sha256, timingSafeEqual } from '../digest.js';
import { AthError } from '../errors.js';
import type { ApprovalPolicy } from '../policy.js';
import type { ProviderCatalog } from '../providers.js';
import type { RandomSource } from '../random.js';
import type { IdentityResolver } from '../identity/index.js';
import type {
  AgentRecord,
  AgentState,
  SessionRecord,
  Store,
  TokenRecord,
  TokenRestrictions,
} from '../store.js';

/** Everything the engine's parts share; built once by AthEngine. */
export interface EngineContext {
  store: Store;
  clock: Clock;
  random: RandomSource;
  auditor: Auditor;
  verifier: AttestationVerifier;
  providers: ProviderCatalog;
  policy: ApprovalPolicy;
  /** Implementer origin, no trailing slash: the base of every ATH endpoint URL (AMB-21 fixed paths). */
  baseUrl: string;
  tokenTtlSeconds: number;
  sessionTtlSeconds: number;
  /** Digest of the browser-binding cookie value as stored on the session (keyed when the engine has a bindingKey). */
  bindingDigest(value: string): Promise<string>;
  approvalTtlSeconds: number;
  /** The identity resolver behind `verifier` (the 9-step handshake compares published keys, C-257). */
  resolver?: IdentityResolver;
  /** Set by AthEngine.enableHandshake: the 9-step extension of authorize and token (section M). */
  handshake?: HandshakeHooks;
}

/** What the 9-step handshake adds to POST /ath/authorize (step 5) and POST /ath/token (step 9). */
export interface HandshakeHooks {
  /** Step 5 checks, after the usual authorize checks; returns what to store on the session and how to finish. */
  prepareAuthorize(input: {
    agent: AgentRecord;
    body: unknown;
    providerId: string;
    scopes: string[];
  }): Promise<{
    extra: Record<string, unknown>;
    /** Called once the session exists; its result is merged into the AuthorizationResponse. */
    finish(session: SessionRecord, authorizationUrl: string): Promise<Record<string, unknown>>;
  }>;
  /** Step 9 checks for a session created by a handshake; returns the token lifetime, restrictions and how to finish. */
  prepareToken(input: { agent: AgentRecord; body: unknown; session: SessionRecord }): Promise<{
    ttlSeconds: number;
    restrictions: TokenRestrictions | null;
    /** Called after the token is stored and the session consumed; merged into the TokenResponse. */
    finish(record: TokenRecord): Promise<Record<string, unknown>>;
  }>;
}

export const MAX_TOKEN_TTL_SECONDS = 3600; // AMB-17, C-138
export const MAX_SESSION_TTL_SECONDS = 600; // C-090

/** The wire view of a stored state: AgentStatus has three values, so `suspended` reads `denied`. */
export function wireStatus(state: AgentState): AgentStatus {
  return state === 'suspended' ? 'denied' : state;
}

// Compared against when the client_id is unknown, so both paths hash and compare alike (threats E5).
const DUMMY_HASH = 'x'.repeat(43);

/**
 * Client authentication with client_id + client_secret. Unknown client, missing secret and wrong
 * secret all produce the same 403 AGENT_NOT_REGISTERED body (AMB-04, C-061, C-123). The secret is
 * stored as a SHA-256 digest and compared in constant time.
 */
export async function authenticateClient(
  ctx: EngineContext,
  clientId: string | undefined,
  clientSecret: string | undefined,
): Promise<AgentRecord> {
  const agent = clientId ? await ctx.store.getAgent(clientId) : null;
  const presented = await sha256(clientSecret ?? '');
  const ok = timingSafeEqual(presented, agent?.clientSecretHash ?? DUMMY_HASH);
  if (!agent || !ok || !clientSecret) throw notRegistered();
  return agent;
}

export function notRegistered(): AthError {
  return new AthError('AGENT_NOT_REGISTERED', 'Unknown client or invalid client credentials');
}

/** AMB-06/AMB-40: only an approved registration whose approval has not expired may authorize or exchange. */
export function requireApproved(ctx: EngineContext, agent: AgentRecord): void {
  if (agent.state !== 'approved') {
    throw new AthError('AGENT_UNAPPROVED', `Agent registration is ${wireStatus(agent.state)}`, {
      agent_status: wireStatus(agent.state),
      ...(agent.state === 'suspended' ? { reason: 'suspended' } : {}),
    });
  }
  if (agent.approvalExpiresAt <= ctx.clock.now()) {
    throw new AthError('AGENT_UNAPPROVED', 'Agent approval has expired', { agent_status: 'approved', reason: 'approval_expired' });
  }
}

/** The scopes an administrator approved for `agent` at `providerId` (empty when none). */
export function approvedScopes(agent: AgentRecord, providerId: string): string[] {
  return agent.approvals.find((a) => a.provider_id === providerId)?.approved_scopes ?? [];
}

export function endpointUrl(ctx: EngineContext, path: string): string {
  return ctx.baseUrl + path;
}
