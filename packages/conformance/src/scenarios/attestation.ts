import { tamper, type Agent, type DocumentMode } from '../agents.js';
import { Failure, check, fail } from '../assert.js';
import { PATHS, type RunContext } from '../context.js';
import type { HttpResponse } from '../http.js';
import type { Scenario } from '../types.js';

/** Runs every case; fails with the list of failing cases (so one run shows every problem). */
export async function cases(list: [string, () => Promise<void>][]): Promise<void> {
  const failed: string[] = [];
  for (const [name, fn] of list) {
    try {
      await fn();
    } catch (e) {
      if (e instanceof Failure) failed.push(`${name}: ${e.message}`);
      else throw e;
    }
  }
  if (failed.length) fail(failed.join(' | '));
}

/** Registers a fresh agent whose attestation is built by `mint`. */
export async function registerWith(
  ctx: RunContext,
  label: string,
  mint: (agent: Agent) => Promise<string> | string,
  prepare?: (agent: Agent) => Promise<void> | void,
): Promise<{ res: HttpResponse; agent: Agent }> {
  const agent = await ctx.agents.create(label);
  await prepare?.(agent);
  const body = await ctx.registrationBody(agent);
  body['agent_attestation'] = await mint(agent);
  return { res: await ctx.post(PATHS.register, body), agent };
}

const rejected = (label: string, mint: (agent: Agent, ctx: RunContext) => Promise<string> | string) =>
  async (ctx: RunContext): Promise<void> => {
    const { res } = await registerWith(ctx, label, (a) => mint(a, ctx));
    ctx.expectError(res, 401, 'INVALID_ATTESTATION', label);
  };

const now = () => Math.floor(Date.now() / 1000);

function b(
  id: string,
  title: string,
  checklist: string[],
  threats: string[],
  spec: string,
  run: (ctx: RunContext) => Promise<void>,
): Scenario {
  return { id, title, section: 'B', checklist, threats, spec, profile: 'basic', modes: ['gateway', 'native'], run };
}

export const attestationScenarios: Scenario[] = [
  b('B.baseline', 'A correct ES256 attestation is accepted at register (201)', ['C-011', 'C-040'], [], 'S/client/identity.mdx', async (ctx) => {
    const { res } = await registerWith(ctx, 'b-ok', (a) => a.attest(ctx.aud));
    ctx.expectStatus(res, 201, 'valid registration');
  }),
  b('B.wrong-key', 'JWT signed with another agent’s key is refused', ['C-012'], ['A1'], 'S/client/identity.mdx Verification 1–3', async (ctx) => {
    const other = await ctx.agents.create('b-other');
    const { res } = await registerWith(ctx, 'b-wrongkey', (a) => a.attest(ctx.aud, { signWith: other, header: { kid: a.kid } }));
    ctx.expectError(res, 401, 'INVALID_ATTESTATION', 'signed with K2');
  }),
  b('B.alg-none', 'alg "none" (and "NONE", "None") with an empty signature is refused', ['C-013'], ['A2'], 'S/changelog.mdx; AMB-24', async (ctx) => {
    await cases(
      ['none', 'NONE', 'None'].map((alg) => [alg, () => rejected(`b-${alg}`, (a, c) => a.unsigned(c.aud, alg))(ctx)] as [string, () => Promise<void>]),
    );
  }),
  b('B.hs256-confusion', 'HS256 keyed with the published public key is refused', ['C-013'], ['A3'], 'AMB-24; HIST AS8', rejected('b-hs256', (a, c) => a.hmacWithPublicKey(c.aud))),
  b('B.rs256', 'RS256 (attacker RSA key) is refused: ES256 only', ['C-013'], ['A3'], 'SCH agent_attestation; AMB-24', rejected('b-rs256', (a, c) => a.rs256(c.aud))),
  b('B.missing-exp', 'An attestation without exp is refused', ['C-014'], ['A7'], 'S/client/identity.mdx', rejected('b-noexp', (a, c) => a.attest(c.aud, { omit: ['exp'] }))),
  b('B.expired', 'An expired attestation is refused', ['C-015'], ['A8'], 'S/client/identity.mdx', rejected('b-expired', (a, c) => a.attest(c.aud, { claims: { iat: now() - 120, exp: now() - 10 } }))),
  b('B.audience', 'aud missing or naming another service is refused', ['C-016'], ['A9'], 'S/client/identity.mdx step 4', async (ctx) => {
    await cases([
      ['no aud', () => rejected('b-noaud', (a, c) => a.attest(c.aud, { omit: ['aud'] }))(ctx)],
      ['aud=https://other.test', () => rejected('b-otheraud', (a) => a.attest('https://other.test'))(ctx)],
    ]);
  }),
  b('B.audience-forms', 'aud = origin, origin/, [origin] and the endpoint URL are all accepted at register', ['C-017'], ['A9'], 'AMB-09', async (ctx) => {
    const forms: [string, unknown][] = [
      ['origin', ctx.base],
      ['origin/', `${ctx.base}/`],
      ['[origin]', [ctx.base]],
      ['endpoint', ctx.url(PATHS.register)],
    ];
    await cases(
      forms.map(([name, aud]) => [
        name,
        async () => {
          const { res } = await registerWith(ctx, 'b-audform', (a) => a.attest(aud));
          ctx.expectStatus(res, 201, `aud ${name}`);
        },
      ]),
    );
  }),
  b('B.iat-window', 'iat is required and must be within ±5 minutes (−240 s accepted)', ['C-018'], ['A8'], 'S/client/identity.mdx; AMB-24', async (ctx) => {
    await cases([
      ['no iat', () => rejected('b-noiat', (a, c) => a.attest(c.aud, { omit: ['iat'] }))(ctx)],
      ['iat=now-360', () => rejected('b-oldiat', (a, c) => a.attest(c.aud, { claims: { iat: now() - 360, exp: now() + 300 } }))(ctx)],
      ['iat=now+360', () => rejected('b-futureiat', (a, c) => a.attest(c.aud, { claims: { iat: now() + 360, exp: now() + 600 } }))(ctx)],
      [
        'iat=now-240 accepted',
        async () => {
          const { res } = await registerWith(ctx, 'b-iat240', (a) => a.attest(ctx.aud, { claims: { iat: now() - 240, exp: now() + 60 } }));
          ctx.expectStatus(res, 201, 'iat now-240');
        },
      ],
    ]);
  }),
  b('B.missing-jti', 'An attestation without jti is refused', ['C-019'], ['A7'], 'S/client/identity.mdx', rejected('b-nojti', (a, c) => a.attest(c.aud, { omit: ['jti'] }))),
  b('B.replay-register', 'Resending the identical registration (same JWT) gets 401, not 409', ['C-020', 'C-043'], ['A10'], 'S/client/identity.mdx; AMB-13', async (ctx) => {
    const agent = await ctx.agents.create('b-replay');
    const body = await ctx.registrationBody(agent);
    const first = await ctx.post(PATHS.register, body);
    ctx.expectStatus(first, 201, 'first use');
    const second = await ctx.post(PATHS.register, body);
    ctx.expectError(second, 401, 'INVALID_ATTESTATION', 'replayed attestation');
  }),
  b('B.replay-authorize', 'Authorizing twice with the same attestation: the second gets 401', ['C-020'], ['A10'], 'S/client/identity.mdx jti', async (ctx) => {
    const reg = await ctx.primary();
    const body = await ctx.authorizeBody(reg);
    const first = await ctx.post(PATHS.authorize, body);
    ctx.expectStatus(first, 200, 'first authorize');
    const second = await ctx.post(PATHS.authorize, { ...body, state: `${String(body['state'])}2` });
    ctx.expectError(second, 401, 'INVALID_ATTESTATION', 'replayed attestation at authorize');
  }),
  b('B.jti-consumed-on-failure', 'A jti is used up even when the request fails a later business check', ['C-021'], ['A10'], 'AMB-24', async (ctx) => {
    const reg = await ctx.primary();
    const body = await ctx.authorizeBody(reg, { scopes: [ctx.unapprovedScope(reg)] });
    const first = await ctx.post(PATHS.authorize, body);
    ctx.expectError(first, 403, 'SCOPE_NOT_APPROVED', 'disallowed scope');
    const second = await ctx.post(PATHS.authorize, { ...body, scopes: reg.approved.slice(0, 1) });
    ctx.expectError(second, 401, 'INVALID_ATTESTATION', 'same JWT with allowed scopes');
  }),
  b('B.jti-per-agent', 'Two agents may each use the same jti once (cache keyed by (sub, jti))', ['C-022'], ['A4', 'A10'], 'AMB-24', async (ctx) => {
    const jti = `same-${Date.now()}-${Math.random().toString(36).slice(2)}`;
    await cases(
      ['A1', 'A2'].map((n) => [
        n,
        async () => {
          const { res } = await registerWith(ctx, `b-samejti-${n}`, (a) => a.attest(ctx.aud, { claims: { jti } }));
          ctx.expectStatus(res, 201, `${n} with shared jti`);
        },
      ]),
    );
  }),
  b('B.sub-mismatch', 'register agent_id=A1 with an attestation whose sub is A2 (signed by K2) is refused', ['C-023'], ['A11', 'C3'], 'S/client/identity.mdx sub', async (ctx) => {
    const other = await ctx.agents.create('b-sub-other');
    const { res } = await registerWith(ctx, 'b-sub', () => other.attest(ctx.aud));
    ctx.expectError(res, 401, 'INVALID_ATTESTATION', 'sub = another agent');
  }),
  b('B.iss-mismatch', 'iss naming another host is refused', ['C-024'], ['A11'], 'AMB-09', rejected('b-iss', (a, c) => a.attest(c.aud, { claims: { iss: 'https://evil.test' } }))),
  b('B.tampered', 'A payload changed after signing is refused', ['C-025'], ['A4'], 'S/client/identity.mdx', rejected('b-tamper', async (a, c) => tamper(await a.attest(c.aud)))),
  b('B.bad-document', 'An unusable identity document (404, non-JSON, no key, wrong agent_id, numeric key) is a 401, never a 5xx', ['C-026'], ['B7'], 'S/client/identity.mdx; AMB-25', async (ctx) => {
    const modes: [string, DocumentMode][] = [
      ['404', { kind: 'status', status: 404 }],
      ['non-JSON', { kind: 'non-json' }],
      ['no public_key', { kind: 'patch', patch: { public_key: undefined } }],
      ['no developer.id', { kind: 'patch', patch: { developer: { name: 'x' } } }],
      ['agent_id ≠ URL', { kind: 'patch', patch: { agent_id: 'https://someone-else.test/.well-known/agent.json' } }],
      ['public_key is a number', { kind: 'patch', patch: { public_key: 42 } }],
    ];
    await cases(
      modes.map(([name, mode]) => [
        name,
        async () => {
          const { res } = await registerWith(ctx, 'b-baddoc', (a) => a.attest(ctx.aud), (a) => {
            a.mode = mode;
          });
          ctx.expectError(res, 401, 'INVALID_ATTESTATION', name);
        },
      ]),
    );
  }),
  b('B.agent-id-shape', 'agent_id that is not an absolute https URI is refused (400 or 401)', ['C-027'], ['B8'], 'S/client/identity.mdx; AMB-25', async (ctx) => {
    await cases(
      ['http://agent1.test/.well-known/agent.json', 'not a uri'].map((agentId) => [
        agentId,
        async () => {
          const agent = await ctx.agents.create('b-shape');
          const body = await ctx.registrationBody(agent);
          body['agent_id'] = agentId;
          const res = await ctx.post(PATHS.register, body);
          ctx.expectError(res, [400, 401], ['INVALID_REQUEST', 'INVALID_ATTESTATION'], agentId);
        },
      ]),
    );
  }),
  b('B.key-rotation', 'After an emergency key rotation, a new-key attestation is accepted at once (forced re-fetch)', ['C-029'], ['B10'], 'S/client/identity.mdx Caching', async (ctx) => {
    const reg = await ctx.registerNew('b-rotate');
    const before = reg.agent.fetches;
    await reg.agent.rotate();
    const res = await ctx.authorize(reg);
    if (reg.status !== 'approved') {
      // still proves the signature verified: any answer but 401 means the new key was picked up
      check(res.status !== 401, `new-key attestation refused: ${res.status} ${res.text.slice(0, 120)}`);
    } else ctx.expectStatus(res, 200, 'authorize with the rotated key');
    ctx.note(`document fetches for the re-fetch: ${reg.agent.fetches - before}`);
  }),
  b('B.refetch-limit', 'Ten wrong-key attestations within a minute cause at most one forced re-fetch', ['C-030'], ['A1', 'B9'], 'S/client/identity.mdx Caching', async (ctx) => {
    const reg = await ctx.registerNew('b-refetch');
    const impostor = await ctx.agents.create('b-impostor');
    const before = reg.agent.fetches;
    for (let i = 0; i < 10; i++) {
      const res = await ctx.post(PATHS.authorize, await ctx.authorizeBody(reg, { agent_attestation: await reg.agent.attest(ctx.aud, { signWith: impostor, header: { kid: reg.agent.kid } }) }));
      ctx.expectError(res, 401, 'INVALID_ATTESTATION', `wrong-key attestation #${i + 1}`);
    }
    const extra = reg.agent.fetches - before;
    check(extra <= 1, `${extra} document fetches for 10 bad signatures (at most 1 per minute allowed)`);
  }),
  b('B.no-refetch-on-claims', 'Bad-aud attestations do not trigger re-fetches', ['C-031'], ['B9'], 'S/client/identity.mdx Caching', async (ctx) => {
    const reg = await ctx.registerNew('b-noref');
    const before = reg.agent.fetches;
    for (let i = 0; i < 5; i++) {
      const res = await ctx.post(PATHS.authorize, await ctx.authorizeBody(reg, { agent_attestation: await reg.agent.attest('https://other.test') }));
      ctx.expectError(res, 401, 'INVALID_ATTESTATION', `bad aud #${i + 1}`);
    }
    check(reg.agent.fetches - before === 0, `${reg.agent.fetches - before} extra document fetches for audience failures`);
  }),
  b('B.fetch-timeout', 'A document server that never answers yields a bounded 401 (≤ 30 s)', ['C-032'], ['B6'], 'S/client/identity.mdx Caching', async (ctx) => {
    const started = Date.now();
    const agent = await ctx.agents.create('b-hang');
    agent.mode = { kind: 'hang' };
    const body = await ctx.registrationBody(agent);
    const res = await ctx.request(PATHS.register, { method: 'POST', body, timeoutMs: 30_000 });
    ctx.expectError(res, 401, 'INVALID_ATTESTATION', 'hanging document server');
    ctx.note(`answered after ${Date.now() - started} ms`);
  }),
  b('B.document-cache', '(MAY) Identity documents are cached: three quick authorizations, fewer than three fetches', ['C-033'], [], 'S/client/identity.mdx', async (ctx) => {
    const reg = await ctx.registerNew('b-cache');
    const before = reg.agent.fetches;
    for (let i = 0; i < 3; i++) await ctx.authorize(reg);
    ctx.note(`${reg.agent.fetches - before} fetches for 3 authorizations (informational)`);
  }),
  b('B.ssrf', 'Identity documents are not fetched from loopback/internal addresses, nor through redirects', ['C-034'], ['B1', 'B4'], 'HIST AS7; AMB-25', async (ctx) => {
    const canary = ctx.agents.canaryUrl('ssrf');
    await cases([
      [
        'agent_id https://127.0.0.1:9',
        async () => {
          const agent = await ctx.agents.create('b-ssrf');
          const body = await ctx.registrationBody(agent);
          body['agent_id'] = 'https://127.0.0.1:9/.well-known/agent.json';
          body['agent_attestation'] = await agent.attest(ctx.aud, { claims: { sub: body['agent_id'], iss: 'https://127.0.0.1:9' } });
          const res = await ctx.post(PATHS.register, body);
          ctx.expectError(res, [400, 401], ['INVALID_REQUEST', 'INVALID_ATTESTATION'], 'loopback agent_id');
        },
      ],
      [
        'redirect to an internal target',
        async () => {
          const hitsBefore = ctx.agents.strayHits.length;
          const { res } = await registerWith(ctx, 'b-redirect', (a) => a.attest(ctx.aud), (a) => {
            a.mode = { kind: 'redirect', location: canary };
          });
          ctx.expectError(res, [400, 401], ['INVALID_REQUEST', 'INVALID_ATTESTATION'], 'redirecting document');
          check(ctx.agents.strayHits.length === hitsBefore, 'the target followed the redirect to the canary');
        },
      ],
    ]);
  }),
  b('B.lifetime-cap', 'exp − iat > 3600 s is refused', ['C-035'], ['A8'], 'T/best-practices.mdx; AMB-24', rejected('b-long', (a, c) => a.attest(c.aud, { claims: { iat: now(), exp: now() + 7200 } }))),
  b('B.unknown-kid', 'A JWT whose kid is not published is refused', ['C-036'], ['A5'], 'S/client/identity.mdx; AMB-24', rejected('b-kid', (a, c) => a.attest(c.aud, { header: { kid: 'nope' } }))),
  b('B.matrix-authorize', 'Section-B failures at POST /ath/authorize (none, HS256, expired, wrong aud, tampered, no jti, A2’s attestation)', ['C-075', 'C-076', 'C-013', 'C-015', 'C-016', 'C-019', 'C-025'], ['A2', 'A3', 'A8', 'A9', 'A11'], 'S/server/authorization.mdx; AMB-26', async (ctx) => {
    const reg = await ctx.primary();
    const a = reg.agent;
    const other = await ctx.agents.create('b-m-other');
    const variants: [string, () => Promise<string> | string][] = [
      ['alg none', () => a.unsigned(ctx.aud)],
      ['HS256', () => a.hmacWithPublicKey(ctx.aud)],
      ['expired', () => a.attest(ctx.aud, { claims: { iat: now() - 120, exp: now() - 10 } })],
      ['wrong aud', () => a.attest('https://other.test')],
      ['tampered', async () => tamper(await a.attest(ctx.aud))],
      ['no jti', () => a.attest(ctx.aud, { omit: ['jti'] })],
      ['A2 attestation with C1 (C-076)', () => other.attest(ctx.aud)],
      ['missing', () => ''],
    ];
    await cases(
      variants.map(([name, mint]) => [
        name,
        async () => {
          const att = await mint();
          const res = await ctx.post(PATHS.authorize, await ctx.authorizeBody(reg, { agent_attestation: att === '' ? undefined : att }));
          ctx.expectError(res, 401, 'INVALID_ATTESTATION', name);
        },
      ]),
    );
  }),
];
