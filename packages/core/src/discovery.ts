import { PROTOCOL_VERSION, type DiscoveryDocument, type ServiceDiscoveryDocument } from '@athkit/schemas';
import { toProviderInfo, type ProviderCatalog } from './providers.js';

/** GET /.well-known/ath.json for a gateway (C-001…C-004, C-008): public, no secrets. */
export function gatewayDiscovery(baseUrl: string, gatewayId: string, providers: ProviderCatalog): DiscoveryDocument {
  return {
    ath_version: PROTOCOL_VERSION,
    gateway_id: gatewayId,
    agent_registration_endpoint: `${baseUrl}/ath/agents/register`,
    supported_providers: providers.list().map(toProviderInfo),
  };
}

export interface ServiceDescription {
  app_id: string;
  name: string;
  api_base: string;
  scopes_supported: string[];
  /** Developer registration page (a human page, not /ath/agents/register, AMB-21). */
  registration_endpoint?: string;
}

/**
 * GET /.well-known/ath-app.json for a native service (C-005…C-010). The OAuth endpoints are the
 * service's consent launch and ATH token endpoints; `ath_endpoints` is our additive extension
 * naming the fixed ATH paths (AMB-21).
 */
export function serviceDiscovery(baseUrl: string, service: ServiceDescription): ServiceDiscoveryDocument {
  return {
    ath_version: PROTOCOL_VERSION,
    app_id: service.app_id,
    name: service.name,
    auth: {
      type: 'oauth2',
      authorization_endpoint: `${baseUrl}/ath/authorize/start`,
      token_endpoint: `${baseUrl}/ath/token`,
      ...(service.registration_endpoint ? { registration_endpoint: service.registration_endpoint } : {}),
      scopes_supported: service.scopes_supported,
      agent_attestation_required: true,
    },
    api_base: service.api_base,
    ath_endpoints: {
      register: `${baseUrl}/ath/agents/register`,
      authorize: `${baseUrl}/ath/authorize`,
      token: `${baseUrl}/ath/token`,
      revoke: `${baseUrl}/ath/revoke`,
    },
  };
}
