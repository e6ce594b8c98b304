import { ERROR_STATUS } from '@athkit/schemas';
import { brief, check, skip } from '../assert.js';
import { PATHS, type RunContext } from '../context.js';
import type { Scenario } from '../types.js';
import { cases } from './attestation.js';

function s(
  section: string,
  id: string,
  title: string,
  checklist: string[],
  spec: string,
  run: (ctx: RunContext) => Promise<void>,
  threats: string[] = [],
): Scenario {
  return { id, title, section, checklist, threats, spec, profile: 'basic', modes: ['gateway', 'native'], run };
}

const UNKNOWN_SESSION = 'ath_sess_conformance_unknown_0000000000000000';

export const tokenBasicScenarios: Scenario[] = [
  s('G', 'G.grant-type', 'grant_type missing or "client_credentials" → 400 INVALID_REQUEST', ['C-122'], 'S/server/token.mdx; SCH const', async (ctx) => {
    const reg = await ctx.primary();
    await cases(
      ([['missing', undefined], ['client_credentials', 'client_credentials']] as const).map(([name, gt]) => [
        name,
        async () => ctx.expectError(await ctx.token(reg, UNKNOWN_SESSION, 'exchange', { grant_type: gt }), 400, 'INVALID_REQUEST', `grant_type ${name}`),
      ]),
    );
  }, ['E7']),
  s('G', 'G.client-auth', 'No secret, wrong secret, unknown client → identical 403 AGENT_NOT_REGISTERED', ['C-123'], 'S/server/token.mdx; AMB-04', async (ctx) => {
    const reg = await ctx.primary();
    const a = await ctx.token(reg, UNKNOWN_SESSION, 'exchange', { client_secret: undefined });
    const b = await ctx.token(reg, UNKNOWN_SESSION, 'exchange', { client_secret: 'wrong' });
    const c = await ctx.token(reg, UNKNOWN_SESSION, 'exchange', { client_id: 'nosuch' });
    ctx.expectError(b, 403, 'AGENT_NOT_REGISTERED', 'wrong secret');
    ctx.expectError(c, 403, 'AGENT_NOT_REGISTERED', 'unknown client');
    // a missing secret may also be a schema failure (400) — the checklist wants 403
    ctx.expectError(a, 403, 'AGENT_NOT_REGISTERED', 'no secret');
    check(b.text === c.text, 'wrong-secret and unknown-client bodies differ');
  }, ['E5']),
  s('G', 'G.attestation', 'Token: missing attestation, A2’s attestation, alg none, aud = origin (not the token URL) → 401', ['C-124', 'C-125'], 'S/server/token.mdx; AMB-09, AMB-26', async (ctx) => {
    const reg = await ctx.primary();
    const other = await ctx.agents.create('g-other');
    const variants: [string, () => Promise<string | undefined> | string | undefined][] = [
      ['missing', () => undefined],
      ['A2 attestation with C1', () => other.attest(ctx.tokenAud)],
      ['alg none', () => reg.agent.unsigned(ctx.tokenAud)],
      ['aud = origin (C-125b)', () => reg.agent.attest(ctx.aud)],
    ];
    await cases(
      variants.map(([name, mint]) => [
        name,
        async () => {
          const res = await ctx.token(reg, UNKNOWN_SESSION, 'exchange', { agent_attestation: await mint() });
          ctx.expectError(res, 401, 'INVALID_ATTESTATION', name);
        },
      ]),
    );
  }, ['A9', 'E4']),
  s('G', 'G.session-required', 'Unknown ath_session_id → 400 SESSION_NOT_FOUND; missing → 400 INVALID_REQUEST', ['C-127'], 'S/server/token.mdx', async (ctx) => {
    const reg = await ctx.primary();
    ctx.expectError(await ctx.token(reg, UNKNOWN_SESSION, 'exchange'), 400, 'SESSION_NOT_FOUND', 'unknown session');
    ctx.expectError(await ctx.token(reg, UNKNOWN_SESSION, 'exchange', { ath_session_id: undefined }), 400, 'INVALID_REQUEST', 'missing session');
  }),
  s('J', 'J.unauthenticated', 'Revoke without client credentials → 403 AGENT_NOT_REGISTERED', ['C-181'], 'S/server/revocation.mdx; AMB-08', async (ctx) => {
    ctx.expectError(await ctx.post(PATHS.revoke, { token: 'ath_tk_conformance_probe' }), 403, 'AGENT_NOT_REGISTERED', 'no credentials');
  }, ['G2']),
  s('J', 'J.wrong-secret', 'Revoke with a wrong client_secret → 403 AGENT_NOT_REGISTERED', ['C-182'], 'S/server/revocation.mdx', async (ctx) => {
    const reg = await ctx.primary();
    ctx.expectError(await ctx.post(PATHS.revoke, { client_id: reg.clientId, client_secret: 'x', token: 'ath_tk_conformance_probe' }), 403, 'AGENT_NOT_REGISTERED', 'wrong secret');
  }, ['G2']),
  s('J', 'J.unknown-token', 'Authenticated revoke of an unknown (or 10 KB) token → 200', ['C-184'], 'S/server/revocation.mdx (RFC 7009 §2.2)', async (ctx) => {
    const reg = await ctx.primary();
    ctx.expectStatus(await ctx.post(PATHS.revoke, { client_id: reg.clientId, client_secret: reg.clientSecret, token: 'garbage' }), 200, 'unknown token');
  }, ['G3']),
  s('J', 'J.token-required', 'Revoke without token → 400 INVALID_REQUEST', ['C-186'], 'SCH required', async (ctx) => {
    const reg = await ctx.primary();
    ctx.expectError(await ctx.post(PATHS.revoke, { client_id: reg.clientId, client_secret: reg.clientSecret }), 400, 'INVALID_REQUEST', 'no token');
  }),
  // ------------------------------------------------------------------ K / L
  s('K', 'K.status-table', 'Error codes carry the status of the table (probes plus every error seen in this run)', ['C-201'], 'S/schema.mdx; AMB-04', async (ctx) => {
    // Own probes, so the scenario stands alone under --only.
    const reg = await ctx.primary().catch(() => null);
    await ctx.get(PATHS.agent('nosuch'));
    await ctx.post(PATHS.register, { agent_id: 'x' });
    if (reg) {
      await ctx.authorize(reg, { scopes: [ctx.unapprovedScope(reg)] });
      await ctx.authorize(reg, { provider_id: 'ath-conformance-no-such-provider' });
      await ctx.authorize(reg, { agent_attestation: reg.agent.unsigned(ctx.aud) });
      await ctx.token(reg, 'ath_sess_conformance_unknown', 'exchange');
    }
    const table = ERROR_STATUS as Readonly<Record<string, number>>;
    const bad = ctx.errors.filter((r) => {
      const code = r.code;
      return code !== null && table[code] !== undefined && table[code] !== r.status;
    });
    check(bad.length === 0, bad.slice(0, 5).map((r) => `${r.request} → ${r.status} ${brief(r.body, 80)}`).join(' | '));
    ctx.note(`${ctx.errors.length} error responses checked`);
  }),
  s('K', 'K.error-shape', 'Every ATH error is application/json {code, message, details?}', ['C-200'], 'S/schema.mdx ATHError; SCH', async (ctx) => {
    await ctx.get('/ath/conformance-nope');
    await ctx.post(PATHS.register, { agent_id: 'x' });
    const bad = ctx.errors.filter((r) => r.problems.some((p) => !p.startsWith('code ') && !p.startsWith('error body contains')));
    check(bad.length === 0, bad.slice(0, 5).map((r) => `${r.request} → ${r.status}: ${r.problems.join(', ')}`).join(' | '));
    ctx.note(`${ctx.errors.length} error responses checked`);
  }, ['H7']),
  s('K', 'K.extension-codes', 'Unknown /ath route → 404 NOT_FOUND; GET /ath/token → 405 METHOD_NOT_ALLOWED with Allow', ['C-202'], 'AMB-04', async (ctx) => {
    ctx.expectError(await ctx.get('/ath/nope'), 404, 'NOT_FOUND', 'unknown route');
    const res = await ctx.get(PATHS.token);
    ctx.expectError(res, 405, 'METHOD_NOT_ALLOWED', 'GET /ath/token');
    check(/\bPOST\b/i.test(res.header('allow') ?? ''), `Allow header is ${brief(res.header('allow'))}`);
  }),
  s('K', 'K.no-leaks', 'Error bodies contain no stack traces, SQL, internal addresses, secrets or tokens', ['C-203', 'C-214'], 'HIST review L2; AMB-04', async (ctx) => {
    await ctx.request(PATHS.register, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"a":' });
    await ctx.request(PATHS.authorize, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '[[[[[[' });
    const bad = ctx.errors.filter((r) => r.problems.some((p) => p.startsWith('error body contains')));
    check(bad.length === 0, bad.slice(0, 5).map((r) => `${r.request}: ${r.problems.join(', ')}`).join(' | '));
  }, ['H7']),
  s('L', 'L.cors', 'No permissive CORS on /ath/*: no ACAO * with credentials, no reflected foreign origin', ['C-222'], 'HIST review L3', async (ctx) => {
    const evil = 'https://evil.test';
    const probes: [string, string][] = [
      ['POST', PATHS.authorize],
      ['POST', PATHS.token],
      ['OPTIONS', PATHS.token],
      ['POST', PATHS.register],
    ];
    if (ctx.apiBase) probes.push(['GET', ctx.apiUrl('/')]);
    const problems: string[] = [];
    for (const [method, path] of probes) {
      const res = await ctx.request(path, {
        method,
        headers: { origin: evil, 'access-control-request-method': 'POST', 'content-type': 'application/json' },
        ...(method === 'POST' ? { body: {} } : {}),
      });
      const acao = res.header('access-control-allow-origin');
      const creds = res.header('access-control-allow-credentials');
      if (acao === evil) problems.push(`${method} ${path} reflects Origin`);
      if (acao === '*' && creds === 'true') problems.push(`${method} ${path}: ACAO * with credentials`);
    }
    check(problems.length === 0, problems.join('; '));
  }),
  s('L', 'L.token-endpoint-no-store', 'Token endpoint error answers are not cacheable either (Cache-Control: no-store)', ['C-142'], 'AMB-04', async (ctx) => {
    const reg = await ctx.primary().catch(() => skip('no approved registration'));
    const res = await ctx.token(reg, 'ath_sess_conformance_unknown', 'exchange');
    check(/\bno-store\b/i.test(res.header('cache-control') ?? ''), `Cache-Control ${brief(res.header('cache-control'))} on /ath/token`);
  }),
];

