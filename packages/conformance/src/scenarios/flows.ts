/** Full profile: sections E–J that need the user's side (consent) — native login hook or the suite's mock AS. */
import { validateTokenResponse } from '@athkit/schemas';
import { brief, check, skip } from '../assert.js';
import { PATHS, UNKNOWN_SCOPE, type Registration, type RunContext } from '../context.js';
import type { ConsentChoice, ConsentResult } from '../flow.js';
import type { HttpResponse } from '../http.js';
import type { Scenario } from '../types.js';
import { cases } from './attestation.js';

export interface FlowOutcome {
  sessionId: string;
  authorizationUrl: string;
  consent: ConsentResult;
  /** The completion code from the redirect, or the placeholder "exchange". */
  code: string;
  agentState: string;
  authorizeAttestation: string;
}

/** authorize → consent → (not yet token). */
export async function runFlow(
  ctx: RunContext,
  reg: Registration,
  opts: { scopes?: string[]; choice?: ConsentChoice } = {},
): Promise<FlowOutcome> {
  const driver = ctx.requireFlow();
  const { authorizationUrl, sessionId, body } = await ctx.startSession(reg, opts.scopes ? { scopes: opts.scopes } : {});
  const consent = await driver.consent(authorizationUrl, opts.choice ?? { decision: 'approve' });
  check(consent.status < 400, `consent/callback answered ${consent.status} ${brief(consent.body, 160)}`);
  return {
    sessionId,
    authorizationUrl,
    consent,
    code: consent.agentRedirect?.get('code') ?? 'exchange',
    agentState: String(body['state']),
    authorizeAttestation: String(body['agent_attestation']),
  };
}

/** FLOW + POST /ath/token; returns the token response (fails unless 200). */
export async function obtainToken(
  ctx: RunContext,
  reg: Registration,
  opts: { scopes?: string[]; choice?: ConsentChoice } = {},
): Promise<{ token: string; json: Record<string, unknown>; res: HttpResponse; flow: FlowOutcome }> {
  const flow = await runFlow(ctx, reg, opts);
  const res = await ctx.token(reg, flow.sessionId, flow.code);
  ctx.expectStatus(res, 200, 'token exchange');
  const json = res.json as Record<string, unknown>;
  check(typeof json['access_token'] === 'string', `no access_token: ${brief(res.text)}`);
  return { token: json['access_token'], json, res, flow };
}

function f(
  section: string,
  id: string,
  title: string,
  checklist: string[],
  spec: string,
  run: (ctx: RunContext) => Promise<void>,
  threats: string[] = [],
  modes: Scenario['modes'] = ['gateway', 'native'],
): Scenario {
  return { id, title, section, checklist, threats, spec, profile: 'full', modes, run };
}

const needTwo = (reg: Registration): [string, string] => {
  if (reg.approved.length < 2) skip(`needs two approved scopes; the target approved ${JSON.stringify(reg.approved)}`);
  return [reg.approved[0]!, reg.approved[1]!];
};

export const flowScenarios: Scenario[] = [
  f('F', 'F.redirect-completion', 'Callback with user_redirect_uri: 302 there with the agent state and a ≥128-bit single-use code; nothing upstream leaks', ['C-102', 'C-109', 'C-083'], 'AMB-02; S/client/security.mdx', async (ctx) => {
    const reg = await ctx.primary();
    const flow = await runFlow(ctx, reg);
    const c = flow.consent;
    check(c.status >= 300 && c.status < 400 && c.agentRedirect, `expected a redirect to ${reg.redirectUri}, got ${c.status} ${brief(c.location ?? c.body, 120)}`);
    check(c.location!.startsWith(reg.redirectUri!), `redirected to ${brief(c.location)}`);
    check(c.agentRedirect.get('state') === flow.agentState, 'state on the redirect is not the agent’s state');
    const code = c.agentRedirect.get('code') ?? '';
    check(code.length >= 22, `completion code ${brief(code)} is shorter than 22 chars`);
    check(!/code_verifier|access_token|refresh_token/i.test(c.location!), 'redirect carries upstream material');
    for (const r of c.responses) check(!/code_verifier=/.test(r.header('location') ?? ''), 'a Location header carries code_verifier');
  }, ['D4']),
  f('F', 'F.page-completion', 'Callback without user_redirect_uri: 200 text/html page on the implementer origin', ['C-102'], 'AMB-02', async (ctx) => {
    const reg2 = await ctx.secondary();
    const flow = await runFlow(ctx, reg2);
    check(flow.consent.status === 200, `expected 200, got ${flow.consent.status}`);
    check(/text\/html/i.test(flow.consent.contentType ?? ''), `content-type ${flow.consent.contentType}`);
  }),
  f('F', 'F.binding-cookie', 'Opening authorization_url sets an HttpOnly, SameSite=Lax/Strict (Secure) binding cookie', ['C-089'], 'S/server/authorization.mdx; AMB-03', async (ctx) => {
    const reg = await ctx.primary();
    const driver = ctx.requireFlow();
    const { authorizationUrl } = await ctx.startSession(reg);
    const browser = await driver.newBrowser();
    const pending = await driver.begin(authorizationUrl, { decision: 'approve' }, browser);
    const good = pending.launchCookies.filter((c) => /;\s*httponly/i.test(c) && /;\s*samesite=(lax|strict)/i.test(c));
    check(good.length > 0, `no HttpOnly+SameSite cookie set while launching: ${brief(pending.launchCookies.map((c) => c.replace(/=[^;]*/, '=…')))}`);
    if (!good.some((c) => /;\s*secure/i.test(c))) {
      check(new URL(ctx.base).protocol === 'http:', 'binding cookie lacks Secure');
      ctx.note('binding cookie without Secure (plain-http test target)');
    }
  }, ['D3']),
  f('F', 'F.browser-binding', 'Decision delivered from another browser → 400 STATE_MISMATCH, no redirect; token pending; the right browser then succeeds', ['C-104', 'C-111'], 'S/server/authorization.mdx; AMB-03', async (ctx) => {
    const reg = await ctx.primary();
    const driver = ctx.requireFlow();
    const { authorizationUrl, sessionId } = await ctx.startSession(reg);
    const j1 = await driver.newBrowser();
    const pending = await driver.begin(authorizationUrl, { decision: 'approve' }, j1);
    const j2 = await driver.newBrowser();
    const foreign = await driver.finish(pending, j2);
    check(foreign.status === 400 && /STATE_MISMATCH/.test(foreign.body), `other browser: expected 400 STATE_MISMATCH, got ${foreign.status} ${brief(foreign.body, 120)}`);
    check(!foreign.agentRedirect, 'the refused callback redirected to the agent (C-111)');
    const early = await ctx.token(reg, sessionId, 'exchange');
    ctx.expectError(early, 400, 'SESSION_NOT_FOUND', 'token after the refused callback');
    const ok = await driver.finish(pending, j1);
    check(ok.status < 400, `the binding browser then got ${ok.status} ${brief(ok.body, 120)}`);
  }, ['D3']),
  f('F', 'F.state-validation', 'Decision with a missing or random state → 400 STATE_MISMATCH, no redirect', ['C-103', 'C-111'], 'SCH AuthorizationRequest.state; AMB-15', async (ctx) => {
    const reg = await ctx.primary();
    const driver = ctx.requireFlow();
    const { authorizationUrl } = await ctx.startSession(reg);
    const browser = await driver.newBrowser();
    const pending = await driver.begin(authorizationUrl, { decision: 'approve' }, browser);
    if (pending.state === null) skip('the consent form carries no state field to tamper with');
    await cases(
      ([['random', 'ath-conformance-random-state'], ['missing', '']] as const).map(([name, state]) => [
        name,
        async () => {
          const r = await driver.finish(pending, browser, { state });
          check(r.status === 400 && /STATE_MISMATCH/.test(r.body), `${name} state: expected 400 STATE_MISMATCH, got ${r.status} ${brief(r.body, 120)}`);
          check(!r.agentRedirect, `${name} state redirected to the agent`);
        },
      ]),
    );
  }, ['D2']),
  f('F', 'F.single-use', 'Replaying the completed decision/callback → 400 STATE_MISMATCH', ['C-106'], 'AMB-02', async (ctx) => {
    const reg = await ctx.primary();
    const driver = ctx.requireFlow();
    const { authorizationUrl } = await ctx.startSession(reg);
    const browser = await driver.newBrowser();
    const pending = await driver.begin(authorizationUrl, { decision: 'approve' }, browser);
    const first = await driver.finish(pending, browser);
    check(first.status < 400, `first delivery ${first.status}`);
    const tokenCalls = ctx.upstreamTokenRequests();
    const second = await driver.finish(pending, browser);
    check(second.status === 400 && /STATE_MISMATCH/.test(second.body), `replay: expected 400 STATE_MISMATCH, got ${second.status} ${brief(second.body, 120)}`);
    if (tokenCalls !== null) check(ctx.upstreamTokenRequests() === tokenCalls, 'the replayed callback caused a second upstream exchange');
  }, ['D4']),
  f('F', 'F.user-denied', 'User denial: redirect with error=access_denied&state; token → 403 USER_DENIED', ['C-107'], 'S/schema.mdx USER_DENIED; AMB-02', async (ctx) => {
    const reg = await ctx.primary();
    const flow = await runFlow(ctx, reg, { choice: { decision: 'deny' } });
    const q = flow.consent.agentRedirect;
    check(q, `expected a redirect to the agent, got ${flow.consent.status}`);
    check(q.get('error') === 'access_denied' && q.get('state') === flow.agentState, `redirect query ${q.toString()}`);
    const res = await ctx.token(reg, flow.sessionId, 'exchange');
    ctx.expectError(res, 403, 'USER_DENIED', 'token after denial');
    check(!/access_token/.test(res.text), 'an access token was issued');
  }, ['D7']),
  // ------------------------------------------------------------------ G
  f('G', 'G.happy-path', 'Token exchange → 200 TokenResponse: Bearer, agent_id/provider_id bound, 0 < expires_in ≤ 3600, no refresh_token, no-store', ['C-120', 'C-125', 'C-137', 'C-138', 'C-141', 'C-142'], 'S/server/token.mdx; SCH; AMB-17', async (ctx) => {
    const reg = await ctx.primary();
    const { json, res } = await obtainToken(ctx, reg);
    const v = validateTokenResponse(json);
    check(v.valid, `TokenResponse: ${v.valid ? '' : v.violations.map((x) => `${x.pointer} ${x.message}`).join('; ')}`);
    check(v.value.token_type === 'Bearer', `token_type ${v.value.token_type}`);
    check(v.value.agent_id === reg.agent.agentId, `agent_id ${v.value.agent_id}`);
    check(v.value.provider_id === ctx.providerId, `provider_id ${v.value.provider_id}`);
    check(Number.isInteger(v.value.expires_in) && v.value.expires_in > 0 && v.value.expires_in <= 3600, `expires_in ${v.value.expires_in}`);
    check(!('refresh_token' in json), 'refresh_token in the response (C-141)');
    for (const up of ctx.upstreamTokens()) check(!res.text.includes(up), 'the upstream access token leaked (C-141)');
    check(/\bno-store\b/i.test(res.header('cache-control') ?? ''), `Cache-Control ${brief(res.header('cache-control'))} (C-142)`);
  }),
  f('G', 'G.form-encoded', 'A form-encoded token request → 200 or 400, never 5xx', ['C-121'], 'AMB-11', async (ctx) => {
    const reg = await ctx.primary();
    const flow = await runFlow(ctx, reg);
    const body = new URLSearchParams(Object.entries(await ctx.tokenBody(reg, flow.sessionId, flow.code)).map(([k, v]): [string, string] => [k, String(v)])).toString();
    const res = await ctx.request(PATHS.token, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body });
    ctx.expectStatus(res, [200, 400, 415], 'form-encoded token request');
    ctx.note(`form-encoded → ${res.status}`);
  }, ['H4']),
  f('G', 'G.attestation-reuse', 'The authorize attestation cannot be reused at the token endpoint', ['C-126'], 'S/client/identity.mdx jti', async (ctx) => {
    const reg = await ctx.primary();
    const flow = await runFlow(ctx, reg);
    const res = await ctx.token(reg, flow.sessionId, flow.code, { agent_attestation: flow.authorizeAttestation });
    ctx.expectError(res, 401, 'INVALID_ATTESTATION', 'reused attestation');
  }, ['A10', 'E4']),
  f('G', 'G.foreign-session', 'Another client presenting C1’s session → 403 AGENT_IDENTITY_MISMATCH; C1 can still exchange', ['C-128'], 'AMB-27', async (ctx) => {
    const reg = await ctx.primary();
    const reg2 = await ctx.secondary();
    const flow = await runFlow(ctx, reg);
    ctx.expectError(await ctx.token(reg2, flow.sessionId, flow.code), 403, 'AGENT_IDENTITY_MISMATCH', 'C2 with C1’s session');
    ctx.expectStatus(await ctx.token(reg, flow.sessionId, flow.code), 200, 'C1 afterwards');
  }, ['E3']),
  f('G', 'G.single-exchange', 'A session is exchanged once: the second exchange → 400 SESSION_NOT_FOUND', ['C-130'], 'S/server/token.mdx', async (ctx) => {
    const reg = await ctx.primary();
    const { flow } = await obtainToken(ctx, reg);
    const res = await ctx.token(reg, flow.sessionId, flow.code);
    ctx.expectError(res, 400, 'SESSION_NOT_FOUND', 'second exchange');
  }, ['E1']),
  f('G', 'G.failure-not-consumed', 'A failed exchange (bad secret) does not consume the session', ['C-131'], 'S/server/token.mdx; AMB-27', async (ctx) => {
    const reg = await ctx.primary();
    const flow = await runFlow(ctx, reg);
    ctx.expectError(await ctx.token(reg, flow.sessionId, flow.code, { client_secret: 'wrong' }), 403, 'AGENT_NOT_REGISTERED', 'bad secret');
    ctx.expectStatus(await ctx.token(reg, flow.sessionId, flow.code), 200, 'then the correct request');
  }, ['E5']),
  f('G', 'G.pending', 'Exchange before consent → 400 SESSION_NOT_FOUND (authorization_pending); after consent → 200', ['C-132', 'C-091'], 'AMB-27', async (ctx) => {
    const reg = await ctx.primary();
    const driver = ctx.requireFlow();
    const s1 = await ctx.startSession(reg);
    const s2 = await ctx.startSession(reg);
    const early = await ctx.token(reg, s1.sessionId, 'exchange');
    ctx.expectError(early, 400, 'SESSION_NOT_FOUND', 'before consent');
    check(/authorization_pending/.test(early.text), 'details.reason is not authorization_pending');
    const consent = await driver.consent(s1.authorizationUrl, { decision: 'approve' });
    check(consent.status < 400, `consent ${consent.status}`);
    ctx.expectStatus(await ctx.token(reg, s1.sessionId, consent.agentRedirect?.get('code') ?? 'exchange'), 200, 'after consent');
    ctx.expectError(await ctx.token(reg, s2.sessionId, 'exchange'), 400, 'SESSION_NOT_FOUND', 'the other, unfinished session (C-091)');
  }),
  f('G', 'G.code', 'code: wrong completion code → 400 then the right one → 200; no-redirect session accepts "exchange"; missing → 400', ['C-133'], 'S/server/token.mdx; AMB-02', async (ctx) => {
    const reg = await ctx.primary();
    const flow = await runFlow(ctx, reg);
    check(flow.consent.agentRedirect?.get('code'), 'no completion code on the redirect');
    ctx.expectError(await ctx.token(reg, flow.sessionId, 'wrong-code'), 400, 'SESSION_NOT_FOUND', 'wrong code');
    ctx.expectError(await ctx.token(reg, flow.sessionId, flow.code, { code: undefined }), 400, 'INVALID_REQUEST', 'missing code');
    ctx.expectStatus(await ctx.token(reg, flow.sessionId, flow.code), 200, 'right code');
    const reg2 = await ctx.secondary();
    const flow2 = await runFlow(ctx, reg2);
    ctx.expectStatus(await ctx.token(reg2, flow2.sessionId, 'exchange'), 200, 'placeholder code without a redirect');
  }, ['D4']),
  f('G', 'G.scope-intersection', 'Approved {a,b}, requested {a,b}, user grants {a} → effective [a] with the full scope_intersection', ['C-134', 'C-110'], 'S/client/scope-intersection.mdx', async (ctx) => {
    const reg = await ctx.primary();
    const [a, b2] = needTwo(reg);
    const { json } = await obtainToken(ctx, reg, { scopes: [a, b2], choice: { decision: 'approve', scopes: [a] } });
    const si = json['scope_intersection'] as Record<string, string[]>;
    check(JSON.stringify(json['effective_scopes']) === JSON.stringify([a]), `effective_scopes ${brief(json['effective_scopes'])}`);
    check(JSON.stringify(si['effective']) === JSON.stringify(json['effective_scopes']), 'scope_intersection.effective ≠ effective_scopes');
    check(si['agent_approved']?.includes(a) && si['agent_approved'].includes(b2), `agent_approved ${brief(si['agent_approved'])}`);
    check(JSON.stringify(si['user_consented']) === JSON.stringify([a]), `user_consented ${brief(si['user_consented'])}`);
  }, ['E6']),
  f('G', 'G.no-extra-scopes', 'The user granting more than requested does not widen the token', ['C-135'], 'S/client/scope-intersection.mdx req. 3', async (ctx) => {
    const reg = await ctx.primary();
    const a = reg.approved[0]!;
    const extra = [...reg.approved.slice(1), ctx.unapprovedScope(reg)];
    const { json } = await obtainToken(ctx, reg, { scopes: [a], choice: { decision: 'approve', scopes: [a], extraScopes: extra } });
    check(JSON.stringify(json['effective_scopes']) === JSON.stringify([a]), `effective_scopes ${brief(json['effective_scopes'])}`);
  }, ['E6']),
  f('G', 'G.empty-intersection', 'The user grants nothing usable → 403 SCOPE_NOT_APPROVED, no token, session ended', ['C-136'], 'S/client/scope-intersection.mdx req. 4; AMB-28', async (ctx) => {
    const reg = await ctx.primary();
    const driver = ctx.requireFlow();
    const { authorizationUrl, sessionId } = await ctx.startSession(reg);
    const consent = await driver.consent(authorizationUrl, { decision: 'approve', scopes: [], extraScopes: [UNKNOWN_SCOPE] });
    if (consent.status >= 400) {
      ctx.note(`the consent page itself refused an empty grant (${consent.status})`);
      return;
    }
    const res = await ctx.token(reg, sessionId, consent.agentRedirect?.get('code') ?? 'exchange');
    ctx.expectError(res, 403, 'SCOPE_NOT_APPROVED', 'empty intersection');
    check(!/access_token/.test(res.text), 'a token was issued');
    ctx.expectError(await ctx.token(reg, sessionId, consent.agentRedirect?.get('code') ?? 'exchange'), 400, 'SESSION_NOT_FOUND', 'the session ended');
  }, ['E6']),
  f('G', 'G.tokens-unique', 'Two flows yield distinct tokens of ≥ 22 chars', ['C-140'], 'S/client/security.mdx; HIST AS9', async (ctx) => {
    const reg = await ctx.primary();
    const t1 = await obtainToken(ctx, reg);
    const t2 = await obtainToken(ctx, reg);
    check(t1.token !== t2.token, 'same token twice');
    for (const t of [t1.token, t2.token]) check(t.length >= 22, `token of ${t.length} chars`);
  }),
];
