import type { AgentIdentityDocument, AgentStatus, DeveloperInfo, ProviderApproval, ProviderScopeRequest } from '@athkit/schemas';
import type { ProviderCatalog } from './providers.js';
import { uniqueScopes } from './scopes.js';

export interface ApprovalInput {
  agentId: string;
  document: AgentIdentityDocument;
  developer: DeveloperInfo;
  purpose: string | null;
  requested: ProviderScopeRequest[];
  providers: ProviderCatalog;
}

export interface ApprovalDecision {
  status: AgentStatus;
  /** One entry per requested provider; every requested scope in exactly one list (C-046). */
  approvals: ProviderApproval[];
}

/** The app-side half of ATH (Phase A): decides which agent may have which scopes. */
export type ApprovalPolicy = (input: ApprovalInput) => ApprovalDecision | Promise<ApprovalDecision>;

export interface DefaultPolicyOptions {
  /** Scopes granted without review: `true` = every scope the provider offers; a list = just those. */
  autoApprove?: true | readonly string[];
  /** Scopes never granted (e.g. `p:admin`), with the reason shown to the agent. */
  deny?: readonly string[];
  denyReason?: string;
}

/**
 * Default policy: scopes a provider does not offer and unknown providers are denied (C-045, C-047,
 * C-010); `deny` scopes are denied; `autoApprove` scopes are approved; anything else is held for
 * an administrator, which makes the whole registration `pending` with nothing approved yet
 * (C-052). A provider with `agent_approval_required: false` approves everything it offers (C-059).
 */
export function defaultApprovalPolicy(options: DefaultPolicyOptions = {}): ApprovalPolicy {
  const deny = new Set(options.deny ?? []);
  const auto = options.autoApprove === true ? true : new Set(options.autoApprove ?? []);
  return ({ requested, providers }) => {
    let held = false;
    const approvals = requested.map((req): ProviderApproval & { held: string[] } => {
      const provider = providers.get(req.provider_id);
      const scopes = uniqueScopes(req.scopes);
      if (!provider) {
        return { provider_id: req.provider_id, approved_scopes: [], denied_scopes: scopes, denial_reason: 'Unknown provider', held: [] };
      }
      const offered = new Set(provider.available_scopes);
      const approved: string[] = [];
      const denied: string[] = [];
      const pending: string[] = [];
      const reasons = new Set<string>();
      for (const s of scopes) {
        if (!offered.has(s)) {
          denied.push(s);
          reasons.add('Scope not offered by this provider');
        } else if (deny.has(s)) {
          denied.push(s);
          reasons.add(options.denyReason ?? 'Scope not granted to agents by policy');
        } else if (provider.agent_approval_required === false || auto === true || auto.has(s)) approved.push(s);
        else pending.push(s);
      }
      if (pending.length) held = true;
      return {
        provider_id: req.provider_id,
        approved_scopes: approved,
        denied_scopes: denied,
        ...(reasons.size ? { denial_reason: [...reasons].join('; ') } : {}),
        held: pending,
      };
    });
    if (held) {
      // Pending review: nothing is usable until an administrator decides (AMB-06).
      return {
        status: 'pending',
        approvals: approvals.map(({ provider_id, approved_scopes, denied_scopes, held: h, denial_reason }) => ({
          provider_id,
          approved_scopes: [],
          denied_scopes: [...approved_scopes, ...h, ...denied_scopes],
          denial_reason: denial_reason ? `Awaiting review; ${denial_reason}` : 'Awaiting review',
        })),
      };
    }
    const stripped = approvals.map(({ held: _h, ...a }) => a);
    const anyApproved = stripped.some((a) => a.approved_scopes.length > 0);
    return { status: anyApproved ? 'approved' : 'denied', approvals: stripped };
  };
}
