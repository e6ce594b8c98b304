/**
 * Two gateway instances on one PostgreSQL database (threats I2; checklist C-223): exactly-once
 * semantics for attestation jti, session consumption and revocation across instances, suspension,
 * and shared rate limits. ATH_TEST_PG_URL selects the server; each run uses a fresh schema.
 */
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Browser, Stack } from './support/stack.js';

const PG = process.env['ATH_TEST_PG_URL'];
if (!PG) {
  if (process.env['CI'] === 'true') {
    describe('two instances on PostgreSQL', () => {
      it('has a database (ATH_TEST_PG_URL is required when CI=true)', () => {
        throw new Error('ATH_TEST_PG_URL is not set, and CI=true forbids skipping the PostgreSQL suites');
      });
    });
  } else console.log('skipped: set ATH_TEST_PG_URL to run the two-instance PostgreSQL gateway tests');
}

async function waitUntil(check: () => Promise<boolean>, timeoutMs: number): Promise<number> {
  const start = Date.now();
  while (Date.now() - start < timeoutMs) {
    if (await check()) return Date.now() - start;
    await new Promise((r) => setTimeout(r, 20));
  }
  return -1;
}

describe.skipIf(!PG)('two gateway instances on one PostgreSQL', () => {
  const schema = `ath_gw_test_${randomBytes(5).toString('hex')}`;
  const storage = () => {
    const u = new URL(PG!);
    u.searchParams.set('schema', schema);
    return u.toString();
  };
  let a: Stack;
  let b: Stack;
  beforeAll(async () => {
    const config = { rateLimits: { perAgent: { limit: 1000, windowSeconds: 60 } } };
    a = await Stack.start({ storage: storage(), config });
    b = await Stack.start({ storage: storage(), config, shareWith: a });
    await a.register();
  });
  afterAll(async () => {
    await b?.close();
    await a?.close();
    const client = new pg.Client({ connectionString: PG });
    await client.connect();
    await client.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
    await client.end();
  });

  it('an attestation jti used on A is refused on B (A10, C-223)', async () => {
    const att = await a.agent.att(a.publicUrl);
    const body = { client_id: a.agent.clientId, agent_attestation: att, provider_id: 'mail', scopes: ['mail:read'], state: 's'.repeat(43) };
    expect((await a.post('/ath/authorize', body)).status).toBe(200);
    const replay = await b.post('/ath/authorize', body);
    expect(replay.status).toBe(401);
    expect(replay.body.code).toBe('INVALID_ATTESTATION');
  });

  it('a session consumed on A cannot be consumed on B: 20 concurrent tries → exactly one token (E1)', async () => {
    const auth = await a.authorize(a.agent, ['mail:read']);
    const page = await new Browser().consent(auth.body.authorization_url, 'approve', a.url);
    expect(page.status).toBe(200);
    const results = await Promise.all(Array.from({ length: 20 }, (_, i) => (i % 2 ? b : a).token(a.agent, auth.body.ath_session_id)));
    const ok = results.filter((r) => r.status === 200);
    expect(ok).toHaveLength(1);
    for (const r of results.filter((r) => r.status !== 200)) expect(r.status).toBe(400);
  });

  it('a token revoked on A is refused on B within 1 s (G4)', async () => {
    const { token } = await a.fullFlow(['mail:read']);
    expect((await b.proxy('/v1/messages', token)).status).toBe(200); // B has it cached now
    const rev = await a.post('/ath/revoke', { client_id: a.agent.clientId, client_secret: a.agent.clientSecret, token });
    expect(rev.status).toBe(200);
    const ms = await waitUntil(async () => (await b.proxy('/v1/messages', token)).status === 401, 1000);
    expect(ms).toBeGreaterThanOrEqual(0);
  });

  it('an agent suspended on A is refused on B (C-189, G5)', async () => {
    const { token } = await a.fullFlow(['mail:read']);
    expect((await b.proxy('/v1/messages', token)).status).toBe(200);
    expect((await a.admin('POST', `/agents/${a.agent.clientId}/suspend`)).status).toBe(200);
    const ms = await waitUntil(async () => (await b.proxy('/v1/messages', token)).status === 401, 1000);
    expect(ms).toBeGreaterThanOrEqual(0);
    expect((await b.authorize(a.agent, ['mail:read'])).body.code).toBe('AGENT_UNAPPROVED');
    expect((await b.admin('POST', `/agents/${a.agent.clientId}/approve`)).status).toBe(200);
  });

  it('rate limits are shared across instances (H8)', async () => {
    const schema2 = storage();
    const c = await Stack.start({ storage: schema2, config: { rateLimits: { perAgent: { limit: 4, windowSeconds: 60 } } } });
    const d = await Stack.start({ storage: schema2, config: { rateLimits: { perAgent: { limit: 4, windowSeconds: 60 } } }, shareWith: c });
    try {
      await c.register(c.agents[1]);
      const { token } = await c.fullFlow(['mail:read'], c.agents[1]);
      const statuses: number[] = [];
      for (const s of [c, d, c, d, c, d]) statuses.push((await s.proxy('/v1/messages', token, { agent: c.agents[1]! })).status);
      expect(statuses).toEqual([200, 200, 200, 200, 429, 429]);
    } finally {
      await d.close();
      await c.close();
    }
  });
});
