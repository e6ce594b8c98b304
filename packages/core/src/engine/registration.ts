import {
  validateAgentRegistrationRequest,
  type AgentRegistrationResponse,
  type AgentStatusResponse,
} from '@athkit/schemas';
import { acceptedAudiences } from '../attestation/index.js';
import { sha256 } from '../digest.js';
import { AthError } from '../errors.js';
import { randomId } from '../random.js';
import type { AgentRecord } from '../store.js';
import { parseWire } from '../wire.js';
import { authenticateClient, wireStatus, type EngineContext } from './context.js';
import { unverifiedSubject, verifyOrAudit } from './attest.js';

const REGISTER_PATH = '/ath/agents/register';

const LOOPBACK_HOSTS = new Set(['127.0.0.1', 'localhost', '[::1]']);

/**
 * C-051 / AMB-14: absolute URIs without fragment; https, or http on loopback for local agents.
 * Returns the reason a URI is refused, or null.
 */
export function redirectUriProblem(uri: string): string | null {
  let url: URL;
  try {
    url = new URL(uri);
  } catch {
    return 'not an absolute URI';
  }
  if (uri.includes('#')) return 'must not contain a fragment';
  if (url.username || url.password) return 'must not contain userinfo';
  if (url.protocol === 'https:') return null;
  if (url.protocol === 'http:' && LOOPBACK_HOSTS.has(url.hostname)) return null;
  return 'must use https (http only on loopback)';
}

function toResponseBase(agent: AgentRecord) {
  return {
    client_id: agent.clientId,
    agent_status: wireStatus(agent.state),
    approved_providers: agent.approvals,
    approval_expires: new Date(agent.approvalExpiresAt).toISOString(),
  };
}

/** POST /ath/agents/register (C-040…C-059). */
export async function register(ctx: EngineContext, body: unknown): Promise<AgentRegistrationResponse> {
  const req = parseWire(validateAgentRegistrationRequest, body, 'agent_attestation');

  // The attestation comes first, so only the key holder learns anything about the agent (C-043, AMB-13).
  const attestation = await verifyOrAudit(ctx, req.agent_attestation, {
    agentId: req.agent_id,
    audiences: acceptedAudiences(ctx.baseUrl, REGISTER_PATH, 'origin-or-endpoint'),
  });

  const badRedirect = (req.redirect_uris ?? []).map((u) => [u, redirectUriProblem(u)] as const).find(([, p]) => p);
  if (badRedirect) {
    throw new AthError('INVALID_REQUEST', `redirect_uris entry ${badRedirect[1]}`, { field: 'redirect_uris' });
  }

  const existing = await ctx.store.getAgentByAgentId(req.agent_id);
  if (existing) throw duplicate(existing);

  const decision = await ctx.policy({
    agentId: req.agent_id,
    document: attestation.identity.document,
    developer: req.developer,
    purpose: req.purpose ?? null,
    requested: req.requested_providers,
    providers: ctx.providers,
  });

  const now = ctx.clock.now();
  const clientSecret = randomId(ctx.random, 'ath_secret_', 32);
  const record: AgentRecord = {
    clientId: randomId(ctx.random, 'ath_', 16),
    clientSecretHash: await sha256(clientSecret),
    agentId: req.agent_id,
    state: decision.status,
    name: attestation.identity.document.name,
    developer: req.developer,
    purpose: req.purpose ?? null,
    redirectUris: req.redirect_uris ?? null,
    requestedProviders: req.requested_providers,
    approvals: decision.approvals,
    approvalExpiresAt: now + ctx.approvalTtlSeconds * 1000,
    createdAt: now,
    updatedAt: now,
  };
  const created = await ctx.store.createAgent(record);
  if (!created.created) throw duplicate(created.existing);

  await ctx.auditor.emit(decision.status === 'denied' ? 'agent_registration_denied' : 'agent_registered', {
    agent_id: record.agentId,
    client_id: record.clientId,
    agent_status: decision.status,
    requested_scopes: req.requested_providers.flatMap((p) => p.scopes.map((s) => `${p.provider_id}:${s}`)),
    ...(decision.status === 'denied' ? { denial_reason: 'registration denied by policy' } : {}),
  });
  return { ...toResponseBase(record), client_secret: clientSecret };
}

function duplicate(existing: AgentRecord): AthError {
  // AMB-13: the client_id, never the secret.
  return new AthError('AGENT_ALREADY_REGISTERED', 'This agent_id is already registered', { client_id: existing.clientId });
}

export type AgentStatusAuth =
  | { kind: 'basic'; clientId: string; clientSecret: string }
  | { kind: 'attestation'; attestation: string }
  | { kind: 'none' };

/** GET /ath/agents/{clientId} (C-060…C-065, AMB-07): the caller's own record only, without the secret. */
export async function agentStatus(ctx: EngineContext, clientId: string, auth: AgentStatusAuth): Promise<AgentStatusResponse> {
  let caller: AgentRecord;
  if (auth.kind === 'basic') {
    caller = await authenticateClient(ctx, auth.clientId, auth.clientSecret);
  } else if (auth.kind === 'attestation') {
    const sub = unverifiedSubject(auth.attestation);
    const agent = sub ? await ctx.store.getAgentByAgentId(sub) : null;
    if (!agent) throw new AthError('AGENT_NOT_REGISTERED', 'Unknown client or invalid client credentials');
    await verifyOrAudit(ctx, auth.attestation, {
      agentId: agent.agentId,
      audiences: acceptedAudiences(ctx.baseUrl, `/ath/agents/${encodeURIComponent(clientId)}`, 'origin-or-endpoint'),
    });
    caller = agent;
  } else {
    throw new AthError('AGENT_NOT_REGISTERED', 'Unknown client or invalid client credentials');
  }
  // Another client's id and a non-existent id look the same (C-062).
  if (caller.clientId !== clientId) {
    throw new AthError('AGENT_IDENTITY_MISMATCH', 'Agents may only read their own registration');
  }
  return { ...toResponseBase(caller), agent_id: caller.agentId };
}
