import { validateDiscoveryDocument, validateProviderInfo, validateServiceDiscoveryDocument } from '@athkit/schemas';
import { brief, check, skip } from '../assert.js';
import { PATHS, UNKNOWN_SCOPE, type RunContext } from '../context.js';
import type { Scenario } from '../types.js';

const violations = (r: { valid: boolean; violations?: readonly { pointer: string; message: string }[] }) =>
  (r.violations ?? []).map((v) => `${v.pointer || '(root)'} ${v.message}`).join('; ');

async function fetchDoc(ctx: RunContext, path: string) {
  const res = await ctx.get(path);
  ctx.expectStatus(res, 200, `GET ${path}`);
  check(/^application\/json\b/i.test(res.header('content-type') ?? ''), `GET ${path}: content-type ${res.header('content-type')}`);
  check(res.json && typeof res.json === 'object', `GET ${path}: body is not JSON`);
  return { res, doc: res.json as Record<string, unknown> };
}

export const discoveryScenarios: Scenario[] = [
  {
    id: 'A.gateway-catalog',
    title: 'GET /.well-known/ath.json is a valid DiscoveryDocument with unique, well-formed providers',
    section: 'A',
    checklist: ['C-001', 'C-002', 'C-003', 'C-007'],
    spec: 'S/client/discovery.mdx; SCH DiscoveryDocument, ProviderInfo; AMB-22',
    profile: 'basic',
    modes: ['gateway'],
    async run(ctx) {
      const { doc } = await fetchDoc(ctx, PATHS.gatewayDiscovery);
      const v = validateDiscoveryDocument(doc);
      check(v.valid, `DiscoveryDocument: ${violations(v)}`);
      const providers = doc['supported_providers'] as unknown[];
      for (const [i, p] of providers.entries()) {
        const pv = validateProviderInfo(p);
        check(pv.valid, `supported_providers/${i}: ${violations(pv)}`);
      }
      const ids = providers.map((p) => (p as { provider_id: string }).provider_id);
      check(new Set(ids).size === ids.length, `duplicate provider_id values: ${ids.join(', ')}`);
      check(doc['ath_version'] === '0.1', `ath_version is ${brief(doc['ath_version'])}, not "0.1"`);
    },
  },
  {
    id: 'A.native-metadata',
    title: 'GET /.well-known/ath-app.json is a valid ServiceDiscoveryDocument (auth.type oauth2, attestation not disabled)',
    section: 'A',
    checklist: ['C-005', 'C-006', 'C-007', 'C-009'],
    spec: 'S/client/discovery.mdx Mode 3; SCH ServiceDiscoveryDocument; AMB-21',
    profile: 'basic',
    modes: ['native'],
    async run(ctx) {
      const { doc } = await fetchDoc(ctx, PATHS.nativeDiscovery);
      const v = validateServiceDiscoveryDocument(doc);
      check(v.valid, `ServiceDiscoveryDocument: ${violations(v)}`);
      const auth = doc['auth'] as Record<string, unknown>;
      check(auth['type'] === 'oauth2', `auth.type is ${brief(auth['type'])}`);
      check(doc['ath_version'] === '0.1', `ath_version is ${brief(doc['ath_version'])}, not "0.1"`);
      check(auth['agent_attestation_required'] !== false, 'auth.agent_attestation_required is false (C-009)');
    },
  },
  {
    id: 'A.public-no-secrets',
    title: 'Discovery is public (no credentials needed) and contains no secrets or tokens',
    section: 'A',
    checklist: ['C-008', 'C-214'],
    threats: [],
    spec: 'SEED-002; S/client/security.mdx',
    profile: 'basic',
    modes: ['gateway', 'native'],
    async run(ctx) {
      const path = ctx.mode === 'gateway' ? PATHS.gatewayDiscovery : PATHS.nativeDiscovery;
      const { res } = await fetchDoc(ctx, path);
      check(!/client_secret|"secret"|refresh_token|access_token/i.test(res.text), 'discovery mentions a secret/token field');
      for (const s of ctx.secrets) check(!res.text.includes(s), 'discovery contains a configured secret canary');
      if (ctx.secrets.size === 0) ctx.note('no --secret-canary given: only field names were scanned');
    },
  },
  {
    id: 'A.registration-endpoint',
    title: 'agent_registration_endpoint is on the discovery origin and registers like POST /ath/agents/register',
    section: 'A',
    checklist: ['C-004'],
    spec: 'S/client/discovery.mdx; AMB-22',
    profile: 'basic',
    modes: ['gateway'],
    async run(ctx) {
      const endpoint = ctx.discovery?.['agent_registration_endpoint'];
      if (typeof endpoint !== 'string') skip('no discovery document');
      const url = new URL(endpoint);
      check(url.origin === new URL(ctx.base).origin, `registration endpoint ${endpoint} is not on ${ctx.base}`);
      if (url.protocol !== 'https:') ctx.note('registration endpoint is plain http (acceptable only for a loopback test deployment)');
      const agent = await ctx.agents.create('c004');
      const res = await ctx.request(endpoint, { method: 'POST', body: await ctx.registrationBody(agent) });
      ctx.expectStatus(res, 201, 'POST to agent_registration_endpoint');
    },
  },
  {
    id: 'A.scopes-supported-policy',
    title: 'Native: a scope outside scopes_supported is denied at registration',
    section: 'A',
    checklist: ['C-010'],
    spec: 'S/server/registration.mdx; AMB-21',
    profile: 'basic',
    modes: ['native'],
    async run(ctx) {
      ctx.requireDiscovery();
      const reg = await ctx.registerNew('c010', { scopes: [...ctx.offeredScopes, UNKNOWN_SCOPE] });
      check(!reg.approved.includes(UNKNOWN_SCOPE), `${UNKNOWN_SCOPE} was approved`);
      check(reg.denied.includes(UNKNOWN_SCOPE), `${UNKNOWN_SCOPE} is not in denied_scopes: ${JSON.stringify(reg.denied)}`);
    },
  },
];
