import type { ProviderInfo } from '@athkit/schemas';

/** A provider an implementer offers: a gateway's upstream service, or the native service itself (provider_id = app_id, AMB-21). */
export interface ProviderConfig {
  provider_id: string;
  display_name: string;
  categories?: string[];
  available_scopes: string[];
  /** Upper case as the schema shows it (AMB-22). */
  auth_mode?: string;
  /** false = registration is still required but auto-approved (AMB-22, C-059). */
  agent_approval_required?: boolean;
  /** OAuth client_id the consent launch URL names upstream (gateway mode). */
  upstream_client_id?: string;
  /**
   * Absolute http(s) URL of the provider's API (the gateway's `api_base`, a native service's
   * ath-app.json `api_base`). When set, an agent's RFC 8707 `resource` must name it or a path below
   * it (threats D9, see resource.ts); when absent only the RFC 8707 syntax is checked.
   */
  api_base?: string;
}

/** Where the engine looks providers up; the gateway's catalog changes at run time (admin API). */
export interface ProviderCatalog {
  get(providerId: string): ProviderConfig | undefined;
  list(): ProviderConfig[];
}

export function staticCatalog(providers: readonly ProviderConfig[]): ProviderCatalog {
  const byId = new Map(providers.map((p) => [p.provider_id, p]));
  if (byId.size !== providers.length) throw new Error('provider_id values must be unique (C-003)');
  return { get: (id) => byId.get(id), list: () => [...byId.values()] };
}

/** The public catalog entry (schema ProviderInfo): never upstream client ids or secrets (C-008). */
export function toProviderInfo(p: ProviderConfig): ProviderInfo {
  return {
    provider_id: p.provider_id,
    display_name: p.display_name,
    ...(p.categories ? { categories: p.categories } : {}),
    available_scopes: p.available_scopes,
    auth_mode: p.auth_mode ?? 'OAUTH2',
    agent_approval_required: p.agent_approval_required ?? true,
  };
}
