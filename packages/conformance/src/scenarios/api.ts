/** Section H (native API under api_base / gateway proxy), J with real tokens, and the gateway's upstream OAuth checks. */
import { brief, check, skip } from '../assert.js';
import { PATHS, UNKNOWN_PROVIDER, type Registration, type RunContext } from '../context.js';
import type { HttpResponse } from '../http.js';
import type { Scenario } from '../types.js';
import { UPSTREAM_P2_PROVIDER_ID, UPSTREAM_PROVIDER_ID, UPSTREAM_SECRET_ENV } from '../upstream.js';
import { cases } from './attestation.js';
import { obtainToken, runFlow } from './flows.js';

export interface Op {
  method: string;
  path: string;
  scope: string;
  body?: unknown;
}

interface Ops {
  list: Op[];
  unmapped: { method: string; path: string };
  url(path: string, providerId?: string): string;
}

/** The API operations: native from --api-map (under api_base), gateway from the suite's upstream scope map (via /ath/proxy). */
export function apiOps(ctx: RunContext): Ops {
  if (ctx.mode === 'native') {
    const map = ctx.requireApiMap();
    return {
      list: map.operations,
      unmapped: map.unmapped ?? { method: 'DELETE', path: '/ath-conformance-unmapped' },
      url: (path) => ctx.apiUrl(path),
    };
  }
  if (!ctx.upstream || ctx.providerId !== UPSTREAM_PROVIDER_ID) {
    skip(`gateway API checks need the suite's upstream provider "${UPSTREAM_PROVIDER_ID}" configured on the gateway (--profile full)`);
  }
  return {
    list: [
      { method: 'GET', path: '/v1/items?x=1', scope: 'conf:read' },
      { method: 'POST', path: '/v1/items', scope: 'conf:write', body: { name: 'conformance' } },
    ],
    unmapped: { method: 'DELETE', path: '/v1/unmapped' },
    url: (path, providerId = ctx.providerId) => ctx.url(`/ath/proxy/${providerId}${path}`),
  };
}

export async function callApi(
  ctx: RunContext,
  ops: Ops,
  op: { method: string; path: string; body?: unknown },
  auth: { token?: string; authorization?: string; agentId?: string | null; providerId?: string },
): Promise<HttpResponse> {
  const headers: Record<string, string> = {};
  if (auth.authorization !== undefined) headers['authorization'] = auth.authorization;
  else if (auth.token !== undefined) headers['authorization'] = `Bearer ${auth.token}`;
  if (auth.agentId) headers['x-ath-agent-id'] = auth.agentId;
  return ctx.request(ops.url(op.path, auth.providerId), {
    method: op.method,
    headers,
    ...(op.body !== undefined ? { body: op.body as Record<string, unknown> } : {}),
  });
}

/** A token whose effective scopes include `op.scope` (requests just that scope). */
async function tokenFor(ctx: RunContext, reg: Registration, op: Op): Promise<string> {
  if (!reg.approved.includes(op.scope)) skip(`the operation's scope ${op.scope} was not approved for the suite's agent`);
  return (await obtainToken(ctx, reg, { scopes: [op.scope] })).token;
}

const isAthError = (res: HttpResponse, code: string) => (res.json as { code?: unknown } | undefined)?.code === code;

function h(
  id: string,
  title: string,
  checklist: string[],
  spec: string,
  run: (ctx: RunContext) => Promise<void>,
  threats: string[] = [],
  opts: { profile?: Scenario['profile']; modes?: Scenario['modes']; section?: string } = {},
): Scenario {
  return {
    id,
    title,
    section: opts.section ?? 'H',
    checklist,
    threats,
    spec,
    profile: opts.profile ?? 'full',
    modes: opts.modes ?? ['gateway', 'native'],
    run,
  };
}

export const apiScenarios: Scenario[] = [
  h('H.token-invalid', 'API call with no Authorization, Basic, or an unknown Bearer → 401 TOKEN_INVALID', ['C-151', 'C-167'], 'S/server/proxy.mdx; AMB-20', async (ctx) => {
    let target: (auth: Record<string, string>) => Promise<HttpResponse>;
    if (ctx.mode === 'native') {
      if (!ctx.apiBase) skip('no api_base');
      const op = ctx.apiMap?.operations[0] ?? { method: 'GET', path: '/' };
      target = (headers) => ctx.request(ctx.apiUrl(op.path), { method: op.method, headers });
    } else {
      ctx.requireDiscovery();
      target = (headers) => ctx.request(ctx.url(`/ath/proxy/${ctx.providerId}/v1/items`), { method: 'GET', headers });
    }
    const agentId = 'https://agent1.test/.well-known/agent.json';
    await cases([
      ['no Authorization', async () => ctx.expectError(await target({ 'x-ath-agent-id': agentId }), 401, 'TOKEN_INVALID', 'no Authorization')],
      ['Basic', async () => ctx.expectError(await target({ authorization: 'Basic YTpi', 'x-ath-agent-id': agentId }), 401, 'TOKEN_INVALID', 'Basic')],
      ['random Bearer', async () => ctx.expectError(await target({ authorization: 'Bearer random-ath-conformance-token', 'x-ath-agent-id': agentId }), 401, 'TOKEN_INVALID', 'random Bearer')],
    ]);
  }, ['F11'], { profile: 'basic' }),
  h('H.happy-path', 'A mapped operation within the token’s scopes is served (gateway: forwarded as is, with the upstream token)', ['C-150', 'C-160', 'C-167'], 'S/server/proxy.mdx Behavior 1–6; AMB-29', async (ctx) => {
    const reg = await ctx.primary();
    const ops = apiOps(ctx);
    const op = ops.list[0]!;
    const token = await tokenFor(ctx, reg, op);
    const before = ctx.upstream?.apiRequests.length ?? 0;
    const res = await callApi(ctx, ops, op, { token, agentId: reg.agent.agentId });
    check(res.status < 400, `${op.method} ${op.path} → ${res.status} ${brief(res.text, 160)}`);
    if (ctx.upstream) {
      const seen = ctx.upstream.apiRequests.slice(before);
      check(seen.length === 1, `upstream saw ${seen.length} requests`);
      const fwd = seen[0]!;
      check(fwd.method === 'GET' && fwd.rawPath === '/v1/items?x=1', `forwarded as ${fwd.method} ${fwd.rawPath}`);
      const auth = fwd.headers.authorization ?? '';
      check(!auth.includes(token), 'the ATH token was forwarded upstream (C-160)');
      check([...ctx.upstream.issuedTokens.keys()].some((t) => auth === `Bearer ${t}`), 'the upstream did not get the upstream access token');
      check(!('x-ath-agent-id' in fwd.headers), 'X-ATH-Agent-ID forwarded upstream (C-160)');
      check(res.header('x-upstream') === 'ath-conformance', 'upstream headers were not passed back');
    }
  }, ['F8']),
  h('H.agent-header', 'Wrong or missing X-ATH-Agent-ID → 403 AGENT_IDENTITY_MISMATCH', ['C-154', 'C-155', 'C-167'], 'S/server/proxy.mdx step 2; AMB-05', async (ctx) => {
    const reg = await ctx.primary();
    const reg2 = await ctx.secondary();
    const ops = apiOps(ctx);
    const op = ops.list[0]!;
    const token = await tokenFor(ctx, reg, op);
    const before = ctx.upstream?.apiRequests.length ?? 0;
    await cases([
      ['other agent', async () => ctx.expectError(await callApi(ctx, ops, op, { token, agentId: reg2.agent.agentId }), 403, 'AGENT_IDENTITY_MISMATCH', 'A2 header')],
      ['missing', async () => ctx.expectError(await callApi(ctx, ops, op, { token, agentId: null }), 403, 'AGENT_IDENTITY_MISMATCH', 'no header')],
    ]);
    if (ctx.upstream) check(ctx.upstream.apiRequests.length === before, 'the upstream was called');
  }, ['F9']),
  h('H.provider-mismatch', 'A token used for another provider → 403 PROVIDER_MISMATCH', ['C-156', 'C-166'], 'S/server/proxy.mdx step 3', async (ctx) => {
    const reg = await ctx.primary();
    const ops = apiOps(ctx);
    const op = ops.list[0]!;
    const token = await tokenFor(ctx, reg, op);
    if (ctx.mode === 'native') {
      const alias = await ctx.request(ctx.url(`/ath/proxy/${ctx.providerId}${op.path}`), { method: op.method, headers: { authorization: `Bearer ${token}`, 'x-ath-agent-id': reg.agent.agentId } });
      if (alias.status === 404 || alias.status === 405) skip('native target has a single provider and no /ath/proxy alias');
      const res = await ctx.request(ctx.url(`/ath/proxy/${UNKNOWN_PROVIDER}${op.path}`), { method: op.method, headers: { authorization: `Bearer ${token}`, 'x-ath-agent-id': reg.agent.agentId } });
      ctx.expectError(res, 403, 'PROVIDER_MISMATCH', 'other provider via the alias');
      return;
    }
    // Checklist fixtures: P2 is a second configured provider (not approved for A1), Q does not exist.
    const catalog = Array.isArray(ctx.discovery?.['supported_providers']) ? (ctx.discovery['supported_providers'] as Record<string, unknown>[]) : [];
    const others = catalog.map((p) => String(p['provider_id'])).filter((id) => id !== ctx.providerId);
    const p2 = others.includes(UPSTREAM_P2_PROVIDER_ID) ? UPSTREAM_P2_PROVIDER_ID : others[0];
    const reg2 = await ctx.secondary();
    const before = ctx.upstream?.apiRequests.length ?? 0;
    await cases([
      ...(p2 !== undefined
        ? [[`second provider ${p2}`, async () => ctx.expectError(await callApi(ctx, ops, op, { token, agentId: reg.agent.agentId, providerId: p2 }), 403, 'PROVIDER_MISMATCH', `T1 on /ath/proxy/${p2}`)] as [string, () => Promise<void>]]
        : []),
      ['unknown provider', async () => ctx.expectError(await callApi(ctx, ops, op, { token, agentId: reg.agent.agentId, providerId: UNKNOWN_PROVIDER }), 403, 'PROVIDER_MISMATCH', `T1 on /ath/proxy/${UNKNOWN_PROVIDER}`)],
      ['wrong agent and unknown provider', async () => ctx.expectError(await callApi(ctx, ops, op, { token, agentId: reg2.agent.agentId, providerId: UNKNOWN_PROVIDER }), 403, 'AGENT_IDENTITY_MISMATCH', 'C-166b order')],
    ]);
    if (p2 === undefined) ctx.note('the catalog has no second provider: only an unknown provider was tried');
    if (ctx.upstream) check(ctx.upstream.apiRequests.length === before, 'the upstream was called');
  }, ['F10']),
  h('H.scope-enforced', 'An operation needing a scope the token lacks → 403 SCOPE_NOT_APPROVED', ['C-157', 'C-167'], 'S/server/proxy.mdx step 4; AMB-29', async (ctx) => {
    const reg = await ctx.primary();
    const ops = apiOps(ctx);
    const op = ops.list[0]!;
    const other = ops.list.find((o) => o.scope !== op.scope);
    if (!other) skip('the API map has operations for only one scope');
    const token = await tokenFor(ctx, reg, op);
    const before = ctx.upstream?.apiRequests.length ?? 0;
    ctx.expectError(await callApi(ctx, ops, other, { token, agentId: reg.agent.agentId }), 403, 'SCOPE_NOT_APPROVED', `${other.method} ${other.path} with only ${op.scope}`);
    if (ctx.upstream) check(ctx.upstream.apiRequests.length === before, 'the upstream was called');
  }, ['F4']),
  h('H.unmapped-denied', 'An operation with no scope mapping → 403 SCOPE_NOT_APPROVED (deny by default)', ['C-158', 'C-167'], 'S/server/proxy.mdx step 4', async (ctx) => {
    const reg = await ctx.primary();
    const ops = apiOps(ctx);
    const token = (await obtainToken(ctx, reg, { scopes: reg.approved })).token;
    ctx.expectError(await callApi(ctx, ops, ops.unmapped, { token, agentId: reg.agent.agentId }), 403, 'SCOPE_NOT_APPROVED', `${ops.unmapped.method} ${ops.unmapped.path}`);
  }, ['F3']),
  h('H.traversal', 'Traversal paths are refused (400/403) and never reach the upstream outside its base', ['C-162'], 'HIST review M6; AMB-29', async (ctx) => {
    const reg = await ctx.primary();
    const ops = apiOps(ctx);
    const token = await tokenFor(ctx, reg, ops.list[0]!);
    const prefix = new URL(ops.url('/')).pathname.replace(/\/$/, '');
    const before = ctx.upstream?.apiRequests.length ?? 0;
    await cases(
      ['/v1/../admin', '/v1/%2e%2e/admin', '/%2Fadmin', '/v1/..%2Fadmin'].map((p) => [
        p,
        async () => {
          const res = await ctx.request(ops.url('/'), { method: 'GET', rawPath: `${prefix}${p}`, headers: { authorization: `Bearer ${token}`, 'x-ath-agent-id': reg.agent.agentId } });
          check(res.status === 400 || res.status === 403 || res.status === 404, `${p} → ${res.status}`);
        },
      ]),
    );
    if (ctx.upstream) {
      const escaped = ctx.upstream.apiRequests.slice(before).filter((r) => !r.rawPath.startsWith('/v1/') || /\.\.|%2e%2e|%2f/i.test(r.rawPath));
      check(escaped.length === 0, `upstream saw ${escaped.map((r) => r.rawPath).join(', ')}`);
    }
  }, ['F1', 'F2'], { modes: ['gateway'] }),
  h('H.passthrough', 'Upstream errors reach the agent unchanged (404 JSON, 500 text/plain)', ['C-163'], 'S/server/proxy.mdx Response', async (ctx) => {
    const reg = await ctx.primary();
    const ops = apiOps(ctx);
    const token = await tokenFor(ctx, reg, ops.list[0]!);
    const a = await callApi(ctx, ops, { method: 'GET', path: '/v1/status/404' }, { token, agentId: reg.agent.agentId });
    check(a.status === 404 && a.text === '{"e":1}', `404 case: ${a.status} ${brief(a.text, 80)}`);
    const b = await callApi(ctx, ops, { method: 'GET', path: '/v1/status/500' }, { token, agentId: reg.agent.agentId });
    check(b.status === 500 && b.text === 'upstream broke', `500 case: ${b.status} ${brief(b.text, 80)}`);
  }, ['F14'], { modes: ['gateway'] }),
  // ------------------------------------------------------------------ J with real tokens
  h('J.revoke-own', 'Revoking one’s own token → 200; the very next API call → 401 TOKEN_REVOKED (also with a wrong agent header); revoking again → 200', ['C-180', 'C-153', 'C-166', 'C-185'], 'S/server/revocation.mdx; AMB-29', async (ctx) => {
    const reg = await ctx.primary();
    const { token } = await obtainToken(ctx, reg);
    ctx.expectStatus(await ctx.post(PATHS.revoke, { client_id: reg.clientId, client_secret: reg.clientSecret, token }), 200, 'revoke');
    let ops: Ops | null = null;
    try {
      ops = apiOps(ctx);
    } catch {
      ctx.note('no API operations: the effect of revocation on API calls was not checked');
    }
    if (ops) {
      const op = ops.list[0]!;
      ctx.expectError(await callApi(ctx, ops, op, { token, agentId: reg.agent.agentId }), 401, 'TOKEN_REVOKED', 'API call after revocation');
      const reg2 = await ctx.secondary();
      ctx.expectError(await callApi(ctx, ops, op, { token, agentId: reg2.agent.agentId }), 401, 'TOKEN_REVOKED', 'revoked token + wrong agent header (C-166a)');
    }
    ctx.expectStatus(await ctx.post(PATHS.revoke, { client_id: reg.clientId, client_secret: reg.clientSecret, token }), 200, 'revoking again');
  }, ['G4'], { section: 'J' }),
  h('J.revoke-guarded', 'Unauthenticated, wrong-secret and foreign-client revocations fail and leave the token working', ['C-181', 'C-182', 'C-183'], 'S/server/revocation.mdx; AMB-08', async (ctx) => {
    const reg = await ctx.primary();
    const reg2 = await ctx.secondary();
    const { token } = await obtainToken(ctx, reg);
    ctx.expectError(await ctx.post(PATHS.revoke, { token }), 403, 'AGENT_NOT_REGISTERED', 'no credentials');
    ctx.expectError(await ctx.post(PATHS.revoke, { client_id: reg.clientId, client_secret: 'x', token }), 403, 'AGENT_NOT_REGISTERED', 'wrong secret');
    const foreign = await ctx.post(PATHS.revoke, { client_id: reg2.clientId, client_secret: reg2.clientSecret, token });
    if (foreign.status === 200) ctx.note('foreign-token revocation answered 200 (lenient no-op)');
    else ctx.expectError(foreign, 403, 'AGENT_IDENTITY_MISMATCH', 'C2 revoking T1');
    let ops: Ops | null = null;
    try {
      ops = apiOps(ctx);
    } catch {
      ctx.note('no API operations: "token still works" was not checked');
    }
    if (ops) {
      const res = await callApi(ctx, ops, ops.list[0]!, { token, agentId: reg.agent.agentId });
      check(!isAthError(res, 'TOKEN_REVOKED') && res.status < 400, `T1 no longer works: ${res.status} ${brief(res.text, 100)}`);
    }
  }, ['G1', 'G2'], { section: 'J' }),
  // ------------------------------------------------------------------ gateway upstream OAuth (mock AS)
  h('F.upstream-authorize', 'The upstream authorization request: response_type=code, upstream client_id (no secret), redirect_uri = BASE/ath/callback, scope, state, PKCE S256', ['C-088', 'C-213'], 'S/server/authorization.mdx; L/architecture.mdx', async (ctx) => {
    const up = ctx.upstream;
    if (!up) skip('needs the suite upstream');
    const reg = await ctx.primary();
    const before = up.authorizeRequests.length;
    await runFlow(ctx, reg, { scopes: reg.approved.slice(0, 1) });
    const q = up.authorizeRequests[before]?.query;
    check(q, 'the mock AS saw no authorization request');
    check(q.get('response_type') === 'code', `response_type ${q.get('response_type')}`);
    check(q.get('client_id') === up.clientId, `client_id ${q.get('client_id')}`);
    check(!q.toString().includes(up.clientSecret), 'the upstream client secret is in the authorization request');
    check(q.get('redirect_uri') === ctx.url(PATHS.callback), `redirect_uri ${q.get('redirect_uri')}`);
    check(q.get('scope') === reg.approved[0], `scope ${q.get('scope')}`);
    check(!!q.get('state'), 'no state');
    check(q.get('code_challenge_method') === 'S256' && /^[A-Za-z0-9_-]{43}$/.test(q.get('code_challenge') ?? ''), 'PKCE S256 missing');
  }, ['D1', 'D10'], { modes: ['gateway'], section: 'F' }),
  h('F.upstream-exchange', 'The callback exchanges the code server-side: form-encoded, authorization_code, matching code_verifier, redirect_uri', ['C-100', 'C-101', 'C-083'], 'S/server/authorization.mdx; S/client/security.mdx; AMB-02, AMB-11', async (ctx) => {
    const up = ctx.upstream;
    if (!up) skip('needs the suite upstream');
    const reg = await ctx.primary();
    const before = up.tokenRequests.length;
    await runFlow(ctx, reg);
    const t = up.tokenRequests[before];
    check(t, 'the mock AS saw no token request');
    check(/^application\/x-www-form-urlencoded/i.test(t.contentType ?? ''), `content-type ${t.contentType}`);
    check(t.form.get('grant_type') === 'authorization_code', `grant_type ${t.form.get('grant_type')}`);
    check(t.pkceOk, 'code_verifier does not match the code_challenge');
    check(t.form.get('redirect_uri') === ctx.url(PATHS.callback), `redirect_uri ${t.form.get('redirect_uri')}`);
    check(t.clientAuth !== 'none', 'no client authentication upstream');
    check(t.clientAuthOk, `client authentication (${t.clientAuth}) is not ${up.clientId} with the configured client secret (${UPSTREAM_SECRET_ENV})`);
  }, ['D1', 'D4'], { modes: ['gateway'], section: 'F' }),
  h('F.upstream-failure', 'An upstream invalid_grant → callback 502 OAUTH_ERROR; token → 502 OAUTH_ERROR', ['C-108'], 'S/schema.mdx OAUTH_ERROR; AMB-02', async (ctx) => {
    if (!ctx.upstream) skip('needs the suite upstream');
    const reg = await ctx.primary();
    const driver = ctx.requireFlow();
    const { authorizationUrl, sessionId } = await ctx.startSession(reg);
    const r = await driver.consent(authorizationUrl, { decision: 'approve', upstreamFailure: 'invalid_grant' });
    check(r.status === 502, `callback answered ${r.status}`);
    ctx.expectError(await ctx.token(reg, sessionId, 'exchange'), 502, 'OAUTH_ERROR', 'token after the failed exchange');
  }, ['F14'], { modes: ['gateway'], section: 'F' }),
  h('F.consented-set', 'The consented set comes from the upstream scope answer (or the request when omitted)', ['C-110'], 'S/client/scope-intersection.mdx; AMB-10', async (ctx) => {
    if (!ctx.upstream) skip('needs the suite upstream');
    const reg = await ctx.primary();
    if (reg.approved.length < 2) skip('needs two approved scopes');
    const [a, b] = [reg.approved[0]!, reg.approved[1]!];
    const omitted = await obtainToken(ctx, reg, { scopes: [a, b], choice: { decision: 'approve', omitScope: true } });
    const si = omitted.json['scope_intersection'] as Record<string, string[]>;
    check(JSON.stringify([...(si['user_consented'] ?? [])].sort()) === JSON.stringify([a, b].sort()), `omitted scope: user_consented ${brief(si['user_consented'])}`);
  }, ['E6'], { modes: ['gateway'], section: 'F' }),
];
