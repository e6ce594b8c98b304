import { validateAuthorizationResponse } from '@athkit/schemas';
import { brief, check } from '../assert.js';
import { AGENT_REDIRECT_URI, UNKNOWN_PROVIDER, type RunContext } from '../context.js';
import { isLoopbackHost } from '../http.js';
import { UPSTREAM_PROVIDER_ID } from '../upstream.js';
import type { Scenario } from '../types.js';
import { cases } from './attestation.js';

function e(
  id: string,
  title: string,
  checklist: string[],
  spec: string,
  run: (ctx: RunContext) => Promise<void>,
  threats: string[] = [],
  modes: Scenario['modes'] = ['gateway', 'native'],
): Scenario {
  return { id, title, section: 'E', checklist, threats, spec, profile: 'basic', modes, run };
}

export const authorizeScenarios: Scenario[] = [
  e('E.happy-path', 'POST /ath/authorize → 200 AuthorizationResponse with an absolute authorization_url', ['C-070', 'C-092'], 'S/server/authorization.mdx; SCH; AMB-21', async (ctx) => {
    const reg = await ctx.primary();
    const res = await ctx.authorize(reg);
    ctx.expectStatus(res, 200, 'authorize');
    const v = validateAuthorizationResponse(res.json);
    check(v.valid, `AuthorizationResponse: ${v.valid ? '' : v.violations.map((x) => `${x.pointer} ${x.message}`).join('; ')}`);
    const url = new URL(v.value.authorization_url);
    if (url.protocol !== 'https:') {
      check(isLoopbackHost(url.hostname), `authorization_url is ${url.protocol} on a non-loopback host`);
      ctx.note('authorization_url is plain http (loopback test deployment)');
    }
  }),
  e('E.required-fields', 'Missing client_id/provider_id/scopes/state → 400; missing attestation → 401', ['C-071'], 'S/server/authorization.mdx; SCH; AMB-04, AMB-15', async (ctx) => {
    const reg = await ctx.primary();
    await cases([
      ...['client_id', 'provider_id', 'scopes', 'state'].map(
        (f) => [f, async () => ctx.expectError(await ctx.authorize(reg, { [f]: undefined }), 400, 'INVALID_REQUEST', `without ${f}`)] as [string, () => Promise<void>],
      ),
      ['agent_attestation', async () => ctx.expectError(await ctx.authorize(reg, { agent_attestation: undefined }), 401, 'INVALID_ATTESTATION', 'without attestation')],
    ]);
  }),
  e('E.unregistered', 'client_id "nosuch" with a valid attestation → 403 AGENT_NOT_REGISTERED', ['C-072'], 'S/server/authorization.mdx', async (ctx) => {
    const reg = await ctx.primary();
    ctx.expectError(await ctx.authorize(reg, { client_id: 'nosuch' }), 403, 'AGENT_NOT_REGISTERED', 'unknown client');
  }),
  e('E.provider-not-approved', 'An unknown (or unapproved) provider → 403 PROVIDER_NOT_APPROVED', ['C-077'], 'S/server/authorization.mdx', async (ctx) => {
    const reg = await ctx.primary();
    const providers = ((ctx.discovery?.['supported_providers'] as { provider_id: string }[] | undefined) ?? []).map((p) => p.provider_id);
    const others = [UNKNOWN_PROVIDER, ...providers.filter((p) => p !== ctx.providerId).slice(0, 1)];
    await cases(
      others.map((p) => [p, async () => ctx.expectError(await ctx.authorize(reg, { provider_id: p }), 403, 'PROVIDER_NOT_APPROVED', `provider ${p}`)]),
    );
  }, ['C4']),
  e('E.scope-not-approved', 'An unapproved scope, alone or mixed with approved ones → 403 SCOPE_NOT_APPROVED (not narrowed)', ['C-078', 'C-079'], 'S/server/authorization.mdx; AMB-10', async (ctx) => {
    const reg = await ctx.primary();
    const bad = ctx.unapprovedScope(reg);
    await cases([
      ['alone', async () => {
        const res = await ctx.authorize(reg, { scopes: [bad] });
        ctx.expectError(res, 403, 'SCOPE_NOT_APPROVED', `scopes [${bad}]`);
        if (!res.text.includes(bad)) ctx.note('details do not name the offending scope (SHOULD)');
      }],
      ['mixed', async () => ctx.expectError(await ctx.authorize(reg, { scopes: [...reg.approved.slice(0, 1), bad] }), 403, 'SCOPE_NOT_APPROVED', 'mixed scopes')],
    ]);
  }),
  e('E.scope-hygiene', 'scopes [] and "a b" → 400; upper-cased scope → 403 (case-sensitive)', ['C-080'], 'AMB-10', async (ctx) => {
    const reg = await ctx.primary();
    const first = reg.approved[0]!;
    const upper = first.toUpperCase();
    await cases([
      ['[]', async () => ctx.expectError(await ctx.authorize(reg, { scopes: [] }), 400, 'INVALID_REQUEST', 'scopes []')],
      ['space', async () => ctx.expectError(await ctx.authorize(reg, { scopes: [reg.approved.join(' ') + ' x'] }), 400, 'INVALID_REQUEST', 'scope with a space')],
      ...(upper !== first && !reg.approved.includes(upper)
        ? [['upper case', async () => ctx.expectError(await ctx.authorize(reg, { scopes: [upper] }), 403, 'SCOPE_NOT_APPROVED', upper)] as [string, () => Promise<void>]]
        : []),
    ]);
  }, ['C4']),
  e('E.pkce-in-url', 'authorization_url carries a 43-char base64url code_challenge and code_challenge_method=S256', ['C-081'], 'S/server/authorization.mdx; S/client/security.mdx', async (ctx) => {
    const reg = await ctx.primary();
    const { authorizationUrl } = await ctx.startSession(reg);
    const q = new URL(authorizationUrl).searchParams;
    check(q.get('code_challenge_method') === 'S256', `code_challenge_method is ${brief(q.get('code_challenge_method'))}`);
    check(/^[A-Za-z0-9_-]{43}$/.test(q.get('code_challenge') ?? ''), `code_challenge ${brief(q.get('code_challenge'))} is not 43-char base64url`);
    check(!q.has('code_verifier'), 'authorization_url contains code_verifier (C-083)');
  }, ['D1']),
  e('E.fresh-per-request', 'Two identical authorizations get different code_challenge and ath_session_id', ['C-082'], 'RFC 7636 via S/client/security.mdx', async (ctx) => {
    const reg = await ctx.primary();
    const a = await ctx.startSession(reg);
    const b = await ctx.startSession(reg);
    check(a.sessionId !== b.sessionId, 'same ath_session_id twice');
    const ca = new URL(a.authorizationUrl).searchParams.get('code_challenge');
    const cb = new URL(b.authorizationUrl).searchParams.get('code_challenge');
    check(ca !== cb, 'same code_challenge twice');
  }, ['D1']),
  e('E.redirect-exact', 'user_redirect_uri must equal a registered URI exactly', ['C-084'], 'S/server/registration.mdx; AMB-14', async (ctx) => {
    const reg = await ctx.primary();
    const r = AGENT_REDIRECT_URI;
    const upperHost = r.replace('agent.', 'AGENT.');
    await cases([
      ...[`${r}/`, `${r}?x=1`, upperHost, `${r}2`].map(
        (u) => [u, async () => ctx.expectError(await ctx.authorize(reg, { user_redirect_uri: u }), 400, 'INVALID_REQUEST', u)] as [string, () => Promise<void>],
      ),
      ['exact', async () => ctx.expectStatus(await ctx.authorize(reg, { user_redirect_uri: r }), 200, 'exact redirect URI')],
    ]);
  }, ['D6']),
  e('E.redirect-none-registered', 'No registered redirect_uris: a user_redirect_uri → 400; without one → 200', ['C-085'], 'S/server/registration.mdx; SCH', async (ctx) => {
    const reg2 = await ctx.secondary();
    ctx.expectError(await ctx.authorize(reg2, { user_redirect_uri: AGENT_REDIRECT_URI }), 400, 'INVALID_REQUEST', 'redirect without registered URIs');
    ctx.expectStatus(await ctx.authorize(reg2), 200, 'no redirect');
  }, ['D6']),
  e('E.resource', '(MAY) resource: an absolute URI → 200, "not a uri" → 400', ['C-086'], 'S/server/authorization.mdx; RFC 8707', async (ctx) => {
    const reg = await ctx.primary();
    // threats D9: a server may admit only its API base or a path below it, so use the base when the
    // suite knows it (native ath-app.json, or the suite's own upstream provider); otherwise 400 is allowed too.
    const apiBase = ctx.apiBase ?? (ctx.upstream && ctx.providerId === UPSTREAM_PROVIDER_ID ? `${ctx.upstream.apiOrigin}/` : null);
    const first = await ctx.authorize(reg, { resource: apiBase ?? 'https://api.p.test/v1' });
    if (apiBase !== null || first.status === 200) ctx.expectStatus(first, 200, 'resource URI');
    else {
      ctx.expectError(first, 400, 'INVALID_REQUEST', 'resource outside the (unknown) API base');
      ctx.note('https://api.p.test/v1 refused (resource restricted to the API base, threats D9)');
    }
    ctx.expectError(await ctx.authorize(reg, { resource: 'not a uri' }), 400, 'INVALID_REQUEST', 'resource "not a uri"');
  }, ['D9']),
  e('E.session-entropy', '20 sessions: distinct, ≥ 22 chars, no shared incrementing pattern', ['C-087'], 'HIST AS9; AMB-27', async (ctx) => {
    const reg = await ctx.primary();
    const ids: string[] = [];
    for (let i = 0; i < 20; i++) ids.push((await ctx.startSession(reg)).sessionId);
    check(new Set(ids).size === ids.length, 'duplicate ath_session_id');
    for (const id of ids) check(id.length >= 22, `ath_session_id ${id} is shorter than 22 chars`);
    const numeric = ids.map((id) => Number(/(\d+)$/.exec(id)?.[1] ?? NaN));
    const sequential = numeric.every((n, i) => i === 0 || n === numeric[i - 1]! + 1);
    check(!sequential, 'ath_session_id values are sequential');
  }),
];
