import { acceptedAudiences, signAttestation, type generateAgentKeyPair } from '@athkit/core/attestation';
import { systemClock, type Clock } from './http.js';

/** The Web Crypto key type used throughout (an ECDSA P-256 CryptoKey). */
export type AgentCryptoKey = Awaited<ReturnType<typeof generateAgentKeyPair>>['privateKey'];

/** What an agent needs to sign attestations: its agent_id and its P-256 private key (with its `kid`). */
export interface AgentCredentials {
  /** The agent_id: the https URL where the identity document is published (CL-01). */
  agentId: string;
  privateKey: AgentCryptoKey;
  /** The `kid` of the published key (CL-03, CL-17). */
  kid?: string;
}

/** ATH endpoints that take an attestation. */
export type AttestedEndpoint = 'register' | 'authorize' | 'agent_status' | 'token';

const PATHS: Record<AttestedEndpoint, { path: string; mode: 'origin-or-endpoint' | 'exact' }> = {
  register: { path: '/ath/agents/register', mode: 'origin-or-endpoint' },
  authorize: { path: '/ath/authorize', mode: 'origin-or-endpoint' },
  agent_status: { path: '/ath/agents', mode: 'origin-or-endpoint' },
  token: { path: '/ath/token', mode: 'exact' },
};

/**
 * The `aud` to use for one endpoint (CL-05, AMB-09): the implementer's base URL for register,
 * authorize and agent status; the exact token endpoint URL `<base>/ath/token` for /ath/token.
 * Taken from core's audience rule, so client and server cannot drift apart.
 */
export function attestationAudience(baseUrl: string, endpoint: AttestedEndpoint): string {
  const { path, mode } = PATHS[endpoint];
  const accepted = [...acceptedAudiences(baseUrl, path, mode)];
  return accepted[0]!;
}

export interface AttestationOptions {
  clock?: Clock;
  /** Lifetime in seconds (CL-04: short). Default 120. */
  lifetimeSeconds?: number;
}

export const DEFAULT_ATTESTATION_LIFETIME_SECONDS = 120;

/**
 * A fresh attestation JWT for one request (CL-03, CL-04, CL-06): ES256 with `kid`; `iss` = the
 * agent's origin, `sub` = agent_id, `aud`, `iat` = now, short `exp`, and a new 192-bit `jti` on
 * every call. Signing is core's `signAttestation`; this only picks the audience.
 */
export function createAttestation(
  agent: AgentCredentials,
  baseUrl: string,
  endpoint: AttestedEndpoint,
  options: AttestationOptions = {},
): Promise<string> {
  const clock = options.clock ?? systemClock;
  return signAttestation({
    privateKey: agent.privateKey,
    ...(agent.kid !== undefined ? { kid: agent.kid } : {}),
    agentId: agent.agentId,
    audience: attestationAudience(baseUrl, endpoint),
    issuer: new URL(agent.agentId).origin,
    lifetimeSeconds: options.lifetimeSeconds ?? DEFAULT_ATTESTATION_LIFETIME_SECONDS,
    clock,
  });
}
