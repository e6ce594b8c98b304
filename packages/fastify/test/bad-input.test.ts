/**
 * Hostile and broken input at every ATH endpoint: always a 4xx ATHError, never a 5xx or a stack,
 * and nothing stored (no agent, no session, no token).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { APP_ID, BASE, buildHarness, expectAthError, register, type Harness, type Registered } from './support/harness.js';

let h: Harness;
let reg: Registered;
beforeAll(async () => {
  h = await buildHarness();
  reg = await register(h, 'bad-input');
});
afterAll(() => h.close());

const POST_ENDPOINTS = ['/ath/agents/register', '/ath/authorize', '/ath/token', '/ath/revoke'] as const;

const deep = (n: number) => '['.repeat(n) + ']'.repeat(n);
const deepObject = (n: number) => '{"a":'.repeat(n) + '1' + '}'.repeat(n);

interface Case {
  name: string;
  headers?: Record<string, string>;
  payload?: string | Buffer;
  status: number;
  code: string;
}

const CASES: Case[] = [
  { name: 'malformed JSON', payload: '{"a":', status: 400, code: 'INVALID_REQUEST' },
  { name: 'trailing garbage', payload: '{"a":1} x', status: 400, code: 'INVALID_REQUEST' },
  { name: 'empty JSON body', payload: '', status: 400, code: 'INVALID_REQUEST' },
  { name: 'JSON null', payload: 'null', status: 400, code: 'INVALID_REQUEST' },
  { name: 'JSON array', payload: '[]', status: 400, code: 'INVALID_REQUEST' },
  { name: 'JSON string', payload: '"x"', status: 400, code: 'INVALID_REQUEST' },
  { name: 'missing fields ({})', payload: '{}', status: 400, code: 'INVALID_REQUEST' },
  {
    name: 'wrong types',
    payload: JSON.stringify({ agent_id: 5, client_id: 5, scopes: 'x', grant_type: 1, token: 5, developer: 'x', requested_providers: {} }),
    status: 400,
    code: 'INVALID_REQUEST',
  },
  { name: '__proto__ key', payload: '{"__proto__":{"isAdmin":true},"token":"x"}', status: 400, code: 'INVALID_REQUEST' },
  { name: 'nested __proto__ key', payload: '{"developer":{"__proto__":{"x":1}}}', status: 400, code: 'INVALID_REQUEST' },
  { name: 'constructor.prototype key', payload: '{"constructor":{"prototype":{"x":1}}}', status: 400, code: 'INVALID_REQUEST' },
  { name: 'deeply nested array (10 000)', payload: deep(10_000), status: 400, code: 'INVALID_REQUEST' },
  { name: 'deeply nested object (5 000)', payload: deepObject(5_000), status: 400, code: 'INVALID_REQUEST' },
  { name: 'nesting just above the limit (33)', payload: `{"x":${deep(32)}}`, status: 400, code: 'INVALID_REQUEST' },
  {
    name: 'oversized body (70 KiB)',
    payload: JSON.stringify({ pad: 'x'.repeat(70 * 1024) }),
    status: 413,
    code: 'PAYLOAD_TOO_LARGE',
  },
  { name: 'text/plain', headers: { 'content-type': 'text/plain' }, payload: '{}', status: 400, code: 'INVALID_REQUEST' },
  { name: 'no content type', headers: { 'content-type': '' }, payload: '{}', status: 400, code: 'INVALID_REQUEST' },
  { name: 'multipart', headers: { 'content-type': 'multipart/form-data; boundary=x' }, payload: '--x--', status: 400, code: 'INVALID_REQUEST' },
  { name: 'invalid UTF-8', payload: Buffer.from([0x7b, 0x22, 0xff, 0xfe, 0x22, 0x3a, 0x31, 0x7d]), status: 400, code: 'INVALID_REQUEST' },
];

async function counts() {
  const agents = (await h.store.listAgents()).length;
  const tokens = (await h.store.listTokens()).length;
  const sessions = (await h.store.queryAudit({})).filter((e) => e.event === 'authorization_started').length;
  return { agents, tokens, sessions };
}

describe.each(POST_ENDPOINTS)('POST %s', (url) => {
  it.each(CASES)('$name → $status $code, nothing stored', async (c) => {
    const before = await counts();
    const res = await h.app.inject({
      method: 'POST',
      url,
      headers: { 'content-type': 'application/json', ...c.headers },
      ...(c.payload !== undefined ? { payload: c.payload } : {}),
    });
    expect(res.statusCode).toBeLessThan(500);
    expectAthError(res, c.status, c.code);
    expect(res.body).not.toMatch(/SyntaxError|Unexpected token|position \d+/);
    expect(await counts()).toEqual(before);
  });
});

describe('bodies are accepted where they are fine', () => {
  it('application/json; charset=utf-8 is JSON', async () => {
    const res = await h.app.inject({
      method: 'POST',
      url: '/ath/revoke',
      headers: { 'content-type': 'application/json; charset=utf-8' },
      payload: JSON.stringify({ client_id: reg.clientId, client_secret: reg.clientSecret, token: 'nope' }),
    });
    expect(res.statusCode).toBe(200);
  });

  it('nesting within the limit reaches the engine (which rejects the shape, not the parser)', async () => {
    const res = await h.app.inject({
      method: 'POST',
      url: '/ath/revoke',
      headers: { 'content-type': 'application/json' },
      payload: JSON.stringify({ client_id: reg.clientId, client_secret: reg.clientSecret, token: 'nope', extra: JSON.parse(deep(20)) }),
    });
    expect(res.statusCode).toBe(200);
  });

  it('a body declared larger than the limit is refused before it is read', async () => {
    const res = await h.app.inject({
      method: 'POST',
      url: '/ath/agents/register',
      headers: { 'content-type': 'application/json', 'content-length': String(10 * 1024 * 1024) },
      payload: '{}',
    });
    expect([400, 413]).toContain(res.statusCode);
    expect(res.statusCode).toBeLessThan(500);
  });
});

describe('forms and other endpoints', () => {
  it('POST /ath/consent: oversized form → 413; garbage → 400; __proto__ keys do no harm', async () => {
    const big = await h.app.inject({
      method: 'POST',
      url: '/ath/consent',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      payload: 'state=' + 'x'.repeat(70 * 1024),
    });
    expectAthError(big, 413, 'PAYLOAD_TOO_LARGE');
    for (const payload of ['', '%%%', 'state=a&state=b&decision=approve', '__proto__[x]=1&constructor=2', 'state=' + '%ZZ']) {
      const res = await h.app.inject({
        method: 'POST',
        url: '/ath/consent',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        payload,
      });
      expect(res.statusCode, payload).toBe(400);
      expect(validateBody(res.json())).toBe(true);
    }
    expect(({} as Record<string, unknown>)['x']).toBeUndefined();
  });

  it('POST /ath/token form: wrong types cannot exist, missing fields → 400, proto keys → 400', async () => {
    for (const payload of ['', 'grant_type=authorization_code', '__proto__=x', 'constructor=x', 'a=1&a=2']) {
      const res = await h.app.inject({
        method: 'POST',
        url: '/ath/token',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        payload,
      });
      expectAthError(res, 400, 'INVALID_REQUEST');
    }
  });

  it('GET endpoints with odd input: long/encoded client ids, garbage queries → 4xx ATHError', async () => {
    const urls = [
      `/ath/agents/${'x'.repeat(5000)}`,
      '/ath/agents/%00',
      '/ath/agents/..%2F..%2Fetc',
      `/ath/authorize/start?state=${'x'.repeat(5000)}`,
      '/ath/authorize/start?state=a&state=b',
      '/ath/authorize/start?state[]=x',
      '/ath/callback?state=%00',
      '/ath/callback?error=access_denied',
    ];
    for (const url of urls) {
      const res = await h.app.inject({ method: 'GET', url });
      expect(res.statusCode, url).toBeGreaterThanOrEqual(400);
      expect(res.statusCode, url).toBeLessThan(500);
      expect(validateBody(res.json()), url).toBe(true);
    }
  });

  it('an attestation header that is garbage → 401, not 5xx', async () => {
    const res = await h.app.inject({
      method: 'GET',
      url: `/ath/agents/${reg.clientId}`,
      headers: { 'x-ath-agent-attestation': 'not.a.jwt' },
    });
    expect([401, 403]).toContain(res.statusCode);
  });

  it('wrong-typed register fields that pass JSON parsing are the engine\'s 400, nothing stored', async () => {
    const before = await counts();
    const agent = await h.agents.add('typed');
    const res = await h.app.inject({
      method: 'POST',
      url: '/ath/agents/register',
      payload: {
        agent_id: agent.agentId,
        agent_attestation: await agent.mint(BASE),
        developer: { name: 'd', id: 'd' },
        requested_providers: [{ provider_id: APP_ID, scopes: [5] }],
      },
    });
    expectAthError(res, 400, 'INVALID_REQUEST');
    expect(await counts()).toEqual(before);
  });
});

function validateBody(body: unknown): boolean {
  return typeof body === 'object' && body !== null && typeof (body as { code?: unknown }).code === 'string' && typeof (body as { message?: unknown }).message === 'string';
}
