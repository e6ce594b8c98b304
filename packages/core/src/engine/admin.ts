import type { ProviderApproval } from '@athkit/schemas';
import { AthError } from '../errors.js';
import { uniqueScopes } from '../scopes.js';
import type { AgentRecord, AgentState } from '../store.js';
import type { TokenCache } from './access.js';
import type { EngineContext } from './context.js';
import { revokeTokenHash } from './revocation.js';

function notFound(clientId: string): AthError {
  return new AthError('NOT_FOUND', `No agent with client_id ${clientId}`);
}

/** Approvals an administrator grants by default: every requested scope the provider offers. */
export function fullApprovals(ctx: EngineContext, agent: AgentRecord): ProviderApproval[] {
  return agent.requestedProviders.map((req) => {
    const offered = new Set(ctx.providers.get(req.provider_id)?.available_scopes ?? []);
    const scopes = uniqueScopes(req.scopes);
    const denied = scopes.filter((s) => !offered.has(s));
    return {
      provider_id: req.provider_id,
      approved_scopes: scopes.filter((s) => offered.has(s)),
      denied_scopes: denied,
      ...(denied.length ? { denial_reason: 'Scope not offered by this provider' } : {}),
    };
  });
}

async function setState(
  ctx: EngineContext,
  clientId: string,
  /** undefined = leave the state as stored (never write back a state read earlier: it may have changed since). */
  state: AgentState | undefined,
  approvals: ProviderApproval[] | undefined,
  actor: string,
  renewApproval = false,
): Promise<AgentRecord> {
  const now = ctx.clock.now();
  const updated = await ctx.store.updateAgent(clientId, {
    ...(state ? { state } : {}),
    ...(approvals ? { approvals } : {}),
    // Only an explicit approve() starts a new approval period; narrowing approvals must not
    // revive an expired approval (AMB-40).
    ...(renewApproval ? { approvalExpiresAt: now + ctx.approvalTtlSeconds * 1000 } : {}),
    updatedAt: now,
  });
  if (!updated) throw notFound(clientId);
  await ctx.auditor.emit('agent_status_changed', {
    agent_id: updated.agentId,
    client_id: clientId,
    agent_status: updated.state,
    actor,
  });
  return updated;
}

/** Admin operations (C-065, C-139, C-189, C-218). Taking an agent out of service kills its live tokens. */
export class AgentAdmin {
  constructor(
    private readonly ctx: EngineContext,
    private readonly cache: TokenCache,
  ) {}

  async approve(clientId: string, options: { approvals?: ProviderApproval[]; actor?: string } = {}): Promise<AgentRecord> {
    const agent = await this.ctx.store.getAgent(clientId);
    if (!agent) throw notFound(clientId);
    return setState(this.ctx, clientId, 'approved', options.approvals ?? fullApprovals(this.ctx, agent), options.actor ?? 'admin', true);
  }

  /** Replaces the approvals (e.g. withdraws one scope); the state is unchanged. */
  async setApprovals(clientId: string, approvals: ProviderApproval[], actor = 'admin'): Promise<AgentRecord> {
    return setState(this.ctx, clientId, undefined, approvals, actor);
  }

  async deny(clientId: string, actor = 'admin'): Promise<AgentRecord> {
    const agent = await this.ctx.store.getAgent(clientId);
    if (!agent) throw notFound(clientId);
    const approvals = agent.requestedProviders.map((r) => ({
      provider_id: r.provider_id,
      approved_scopes: [],
      denied_scopes: uniqueScopes(r.scopes),
      denial_reason: 'Denied by an administrator',
    }));
    const updated = await setState(this.ctx, clientId, 'denied', approvals, actor);
    await this.revokeTokens(clientId);
    return updated;
  }

  async suspend(clientId: string, actor = 'admin'): Promise<AgentRecord> {
    const updated = await setState(this.ctx, clientId, 'suspended', undefined, actor);
    await this.revokeTokens(clientId);
    return updated;
  }

  /** Deregistration (AMB-13): tokens die first, then the record; the agent may register again. */
  async remove(clientId: string, actor = 'admin'): Promise<void> {
    const agent = await this.ctx.store.getAgent(clientId);
    if (!agent) throw notFound(clientId);
    await this.revokeTokens(clientId);
    await this.ctx.store.deleteAgent(clientId);
    await this.ctx.auditor.emit('agent_status_changed', { agent_id: agent.agentId, client_id: clientId, agent_status: 'deleted', actor });
  }

  /**
   * Revokes one token known only by its stored hash (what the admin token list shows): durable,
   * seen by this instance's cache at once, audited. An unknown hash is a no-op.
   */
  async revokeTokenHash(tokenHash: string, actor = 'admin'): Promise<void> {
    await revokeTokenHash(this.ctx, this.cache, tokenHash, { kind: 'admin', actor });
  }

  /** Revokes every live token of the agent; returns how many. */
  async revokeTokens(clientId: string): Promise<number> {
    const n = await this.ctx.store.revokeAgentTokens(clientId, this.ctx.clock.now());
    this.cache.invalidate({ kind: 'agent', clientId });
    return n;
  }
}
