import { validateAgentRegistrationResponse, validateAgentStatusResponse } from '@athkit/schemas';
import { brief, check, skip } from '../assert.js';
import { PATHS, UNKNOWN_PROVIDER, UNKNOWN_SCOPE, type RunContext } from '../context.js';
import type { Scenario } from '../types.js';
import { cases } from './attestation.js';

const basic = (id: string, secret: string) => `Basic ${Buffer.from(`${id}:${secret}`).toString('base64')}`;

function s(
  section: 'C' | 'D',
  id: string,
  title: string,
  checklist: string[],
  spec: string,
  run: (ctx: RunContext) => Promise<void>,
  threats: string[] = [],
): Scenario {
  return { id, title, section, checklist, threats, spec, profile: 'basic', modes: ['gateway', 'native'], run };
}

export const registrationScenarios: Scenario[] = [
  s('C', 'C.register-valid', 'A valid registration → 201, AgentRegistrationResponse, future approval_expires, Cache-Control: no-store', ['C-040', 'C-054', 'C-057'], 'S/server/registration.mdx; SCH; AMB-12', async (ctx) => {
    const agent = await ctx.agents.create('c-valid');
    const res = await ctx.post(PATHS.register, await ctx.registrationBody(agent));
    ctx.expectStatus(res, 201, 'registration');
    const v = validateAgentRegistrationResponse(res.json);
    check(v.valid, `AgentRegistrationResponse: ${v.valid ? '' : v.violations.map((x) => `${x.pointer} ${x.message}`).join('; ')}`);
    const exp = Date.parse(v.value.approval_expires);
    check(Number.isFinite(exp) && exp > Date.now(), `approval_expires ${v.value.approval_expires} is not in the future`);
    ctx.secrets.add(v.value.client_secret);
    check(/\bno-store\b/i.test(res.header('cache-control') ?? ''), `Cache-Control is ${brief(res.header('cache-control'))}, not no-store (C-057)`);
  }),
  s('C', 'C.required-fields', 'Each missing required field (and requested_providers: []) → 400 INVALID_REQUEST', ['C-041'], 'S/server/registration.mdx; SCH required; AMB-04', async (ctx) => {
    const mutations: [string, (b: Record<string, unknown>) => void][] = [
      ['agent_id', (b) => delete b['agent_id']],
      ['developer', (b) => delete b['developer']],
      ['developer.name', (b) => delete (b['developer'] as Record<string, unknown>)['name']],
      ['developer.id', (b) => delete (b['developer'] as Record<string, unknown>)['id']],
      ['requested_providers', (b) => delete b['requested_providers']],
      ['requested_providers[].provider_id', (b) => delete (b['requested_providers'] as Record<string, unknown>[])[0]!['provider_id']],
      ['requested_providers[].scopes', (b) => delete (b['requested_providers'] as Record<string, unknown>[])[0]!['scopes']],
      ['requested_providers: []', (b) => (b['requested_providers'] = [])],
    ];
    await cases(
      mutations.map(([name, mutate]) => [
        name,
        async () => {
          const agent = await ctx.agents.create('c-req');
          const body = await ctx.registrationBody(agent);
          mutate(body);
          ctx.expectError(await ctx.post(PATHS.register, body), 400, 'INVALID_REQUEST', `without ${name}`);
        },
      ]),
    );
  }),
  s('C', 'C.missing-attestation', 'A missing or blank agent_attestation → 401 INVALID_ATTESTATION', ['C-042'], 'S/server/registration.mdx; AMB-04', async (ctx) => {
    await cases(
      ([['missing', undefined], ['blank', '']] as const).map(([name, value]) => [
        name,
        async () => {
          const agent = await ctx.agents.create('c-noatt');
          const body = await ctx.registrationBody(agent);
          if (value === undefined) delete body['agent_attestation'];
          else body['agent_attestation'] = value;
          ctx.expectError(await ctx.post(PATHS.register, body), 401, 'INVALID_ATTESTATION', name);
        },
      ]),
    );
  }),
  s('C', 'C.attestation-first', 'A bad-signature registration leaves no record: then a valid one → 201 (not 409)', ['C-043'], 'S/server/registration.mdx; AMB-13', async (ctx) => {
    const agent = await ctx.agents.create('c-first');
    const impostor = await ctx.agents.create('c-first-impostor');
    const bad = await ctx.registrationBody(agent);
    bad['agent_attestation'] = await agent.attest(ctx.aud, { signWith: impostor, header: { kid: agent.kid } });
    ctx.expectError(await ctx.post(PATHS.register, bad), 401, 'INVALID_ATTESTATION', 'bad signature');
    ctx.expectStatus(await ctx.post(PATHS.register, await ctx.registrationBody(agent)), 201, 'then a valid registration');
  }),
  s('C', 'C.scope-partition', 'Approved ⊆ requested ∩ offered; every requested scope in exactly one list; denial_reason when something is denied', ['C-044', 'C-045', 'C-046'], 'S/server/registration.mdx; SCH ProviderApproval; AMB-12', async (ctx) => {
    ctx.requireDiscovery();
    const requested = [...ctx.offeredScopes, UNKNOWN_SCOPE];
    const reg = await ctx.registerNew('c-part', { scopes: requested });
    const entry = (reg.body['approved_providers'] as Record<string, unknown>[]).find((p) => p['provider_id'] === ctx.providerId);
    check(entry, `no approved_providers entry for ${ctx.providerId}`);
    check(Array.isArray(entry['approved_scopes']) && Array.isArray(entry['denied_scopes']), 'approved_scopes/denied_scopes not both present');
    check(!reg.approved.includes(UNKNOWN_SCOPE), `${UNKNOWN_SCOPE} approved (C-045)`);
    for (const sc of reg.approved) check(requested.includes(sc) && ctx.offeredScopes.includes(sc), `approved ${sc} was not requested/offered`);
    for (const sc of requested) {
      const n = Number(reg.approved.includes(sc)) + Number(reg.denied.includes(sc));
      check(n === 1, `requested scope ${sc} appears in ${n} lists (C-046)`);
    }
    if (reg.denied.length) check(typeof entry['denial_reason'] === 'string', 'denied_scopes non-empty but no denial_reason (SHOULD)');
    if (reg.status === 'approved') {
      const all = await ctx.registerNew('c-part-all', { scopes: reg.approved });
      check(all.denied.length === 0, `everything-approvable request still has denied_scopes ${JSON.stringify(all.denied)}`);
    } else ctx.note(`agent_status ${reg.status}: the all-approved case was not run`);
  }),
  s('C', 'C.unknown-provider', 'An unknown provider_id is listed with every scope denied (201, not an error)', ['C-047'], 'AMB-04', async (ctx) => {
    ctx.requireDiscovery();
    const agent = await ctx.agents.create('c-unk');
    const body = await ctx.registrationBody(agent, {
      providers: [
        { provider_id: ctx.providerId, scopes: ctx.offeredScopes.slice(0, 1) },
        { provider_id: UNKNOWN_PROVIDER, scopes: ['x:read'] },
      ],
    });
    const res = await ctx.post(PATHS.register, body);
    ctx.expectStatus(res, 201, 'registration naming an unknown provider');
    const entry = ((res.json as Record<string, unknown>)['approved_providers'] as Record<string, unknown>[]).find((p) => p['provider_id'] === UNKNOWN_PROVIDER);
    check(entry, 'no approved_providers entry for the unknown provider');
    check(Array.isArray(entry['approved_scopes']) && (entry['approved_scopes'] as unknown[]).length === 0, 'unknown provider got approved scopes');
    check(JSON.stringify(entry['denied_scopes']) === '["x:read"]', `denied_scopes ${brief(entry['denied_scopes'])}`);
  }),
  s('C', 'C.duplicate', 'A second registration of the same agent_id → 409 AGENT_ALREADY_REGISTERED, nothing changes', ['C-048'], 'S/server/registration.mdx; AMB-13', async (ctx) => {
    const reg = await ctx.registerNew('c-dup');
    const res = await ctx.post(PATHS.register, await ctx.registrationBody(reg.agent));
    ctx.expectError(res, 409, 'AGENT_ALREADY_REGISTERED', 'duplicate');
    check(!res.text.includes('client_secret'), '409 body mentions client_secret');
    const status = await ctx.get(PATHS.agent(reg.clientId), { authorization: basic(reg.clientId, reg.clientSecret) });
    ctx.expectStatus(status, 200, 'the original credentials still work');
  }, ['C2']),
  s('C', 'C.credentials-strong', 'client_id and client_secret are distinct across agents; secrets ≥ 22 base64url-equivalent chars', ['C-049'], 'S/server/registration.mdx; AMB-24', async (ctx) => {
    const a = await ctx.registerNew('c-cred1');
    const b2 = await ctx.registerNew('c-cred2');
    check(a.clientId !== b2.clientId, 'identical client_id');
    check(a.clientSecret !== b2.clientSecret, 'identical client_secret');
    for (const sec of [a.clientSecret, b2.clientSecret]) check(sec.length >= 22, `client_secret of ${sec.length} chars`);
  }),
  s('C', 'C.redirect-uris-optional', 'Registration without redirect_uris → 201', ['C-050'], 'S/server/registration.mdx; SCH', async (ctx) => {
    await ctx.registerNew('c-noredir', { redirectUris: null });
  }),
  s('C', 'C.redirect-uris-shape', 'Relative, plain-http (non-loopback) and fragment redirect_uris → 400', ['C-051'], 'AMB-14', async (ctx) => {
    await cases(
      ['/relative', 'http://evil.test/cb', 'https://a.test/cb#x'].map((uri) => [
        uri,
        async () => {
          const agent = await ctx.agents.create('c-redir');
          const body = await ctx.registrationBody(agent, { redirectUris: [uri] });
          ctx.expectError(await ctx.post(PATHS.register, body), 400, 'INVALID_REQUEST', uri);
        },
      ]),
    );
  }, ['D6']),
  s('C', 'C.json-only', 'Malformed JSON and text/plain bodies → 400 INVALID_REQUEST', ['C-056'], 'S/client/security.mdx; AMB-04, AMB-11', async (ctx) => {
    await cases([
      ['malformed JSON', async () => {
        const res = await ctx.request(PATHS.register, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"agent_id": ' });
        ctx.expectError(res, 400, 'INVALID_REQUEST', 'malformed JSON');
      }],
      ['text/plain', async () => {
        const agent = await ctx.agents.create('c-text');
        const res = await ctx.request(PATHS.register, { method: 'POST', headers: { 'content-type': 'text/plain' }, body: JSON.stringify(await ctx.registrationBody(agent)) });
        ctx.expectError(res, [400, 415], ['INVALID_REQUEST'], 'text/plain');
      }],
    ]);
  }, ['H4']),
  s('C', 'C.auto-approval-provider', 'A provider with agent_approval_required:false auto-approves (registration still required)', ['C-059'], 'S/client/discovery.mdx; AMB-22', async (ctx) => {
    const providers = (ctx.discovery?.['supported_providers'] as Record<string, unknown>[] | undefined) ?? [];
    const open = providers.find((p) => p['agent_approval_required'] === false);
    if (ctx.mode !== 'gateway' || !open) skip('no provider with agent_approval_required:false in the catalog');
    const agent = await ctx.agents.create('c-open');
    const body = await ctx.registrationBody(agent, { providers: [{ provider_id: String(open['provider_id']), scopes: (open['available_scopes'] as string[]).slice(0, 1) }] });
    const res = await ctx.post(PATHS.register, body);
    ctx.expectStatus(res, 201, 'registration');
    check((res.json as Record<string, unknown>)['agent_status'] === 'approved', 'not auto-approved');
  }),
  // ------------------------------------------------------------------ D
  s('D', 'D.auth-required', 'GET /ath/agents/{id} without credentials → 403 AGENT_NOT_REGISTERED, no data', ['C-060'], 'S/server/handshake-flow.mdx item 6; AMB-07', async (ctx) => {
    const reg = await ctx.primary();
    const res = await ctx.get(PATHS.agent(reg.clientId));
    ctx.expectError(res, 403, 'AGENT_NOT_REGISTERED', 'no credentials');
    check(!res.text.includes(reg.agent.agentId), 'body reveals the agent_id');
  }),
  s('D', 'D.wrong-credentials', 'Wrong secret and unknown client get identical 403 AGENT_NOT_REGISTERED bodies', ['C-061'], 'AMB-07', async (ctx) => {
    const reg = await ctx.primary();
    const a = await ctx.get(PATHS.agent(reg.clientId), { authorization: basic(reg.clientId, 'wrong') });
    const b2 = await ctx.get(PATHS.agent('nosuch'), { authorization: basic('nosuch', 'whatever') });
    ctx.expectError(a, 403, 'AGENT_NOT_REGISTERED', 'wrong secret');
    ctx.expectError(b2, 403, 'AGENT_NOT_REGISTERED', 'unknown client');
    check(a.text === b2.text, `bodies differ: ${brief(a.text, 100)} vs ${brief(b2.text, 100)}`);
  }, ['E5']),
  s('D', 'D.own-only', 'C1 reading C2’s record or a non-existent id → identical 403 AGENT_IDENTITY_MISMATCH', ['C-062'], 'AMB-07', async (ctx) => {
    const reg = await ctx.primary();
    const other = await ctx.secondary();
    const auth = { authorization: basic(reg.clientId, reg.clientSecret) };
    const a = await ctx.get(PATHS.agent(other.clientId), auth);
    const b2 = await ctx.get(PATHS.agent('does-not-exist'), auth);
    ctx.expectError(a, 403, 'AGENT_IDENTITY_MISMATCH', 'other client');
    ctx.expectError(b2, 403, 'AGENT_IDENTITY_MISMATCH', 'non-existent client');
    check(a.text === b2.text, 'the two answers differ (enumeration)');
  }),
  s('D', 'D.own-status', 'Own status with Basic auth → 200 AgentStatusResponse without client_secret', ['C-063', 'C-055'], 'AMB-07; HIST review P11', async (ctx) => {
    const reg = await ctx.primary();
    const res = await ctx.get(PATHS.agent(reg.clientId), { authorization: basic(reg.clientId, reg.clientSecret) });
    ctx.expectStatus(res, 200, 'own status');
    check(!('client_secret' in (res.json as object)), 'response contains client_secret (C-055)');
    check(!res.text.includes(reg.clientSecret), 'response contains the secret value (C-055)');
    const v = validateAgentStatusResponse(res.json);
    check(v.valid, `AgentStatusResponse: ${v.valid ? '' : v.violations.map((x) => `${x.pointer} ${x.message}`).join('; ')}`);
    check(v.value.agent_id === reg.agent.agentId && v.value.client_id === reg.clientId, 'wrong client_id/agent_id');
  }, ['C5']),
  s('D', 'D.attestation-auth', '(MAY) X-ATH-Agent-Attestation instead of Basic → 200, or 403 when unsupported', ['C-064'], 'S/server/handshake-flow.mdx; AMB-07', async (ctx) => {
    const reg = await ctx.primary();
    const res = await ctx.get(PATHS.agent(reg.clientId), { 'x-ath-agent-attestation': await reg.agent.attest(ctx.aud) });
    ctx.expectStatus(res, [200, 403], 'attestation auth');
    ctx.note(res.status === 200 ? 'attestation authentication supported' : 'attestation authentication not supported (403)');
    if (res.status === 200) check(!('client_secret' in (res.json as object)), 'response contains client_secret');
  }),
];
