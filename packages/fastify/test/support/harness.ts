/** A fastify app with @athkit/fastify mounted for inject() tests, plus helpers that walk the ATH flow. */
import { ManualClock, MemoryStore, type AuditRecord } from '@athkit/core';
import { validateATHError } from '@athkit/schemas';
import Fastify, { type FastifyInstance, type LightMyRequestResponse } from 'fastify';
import { expect } from 'vitest';
import { athFastify, type AthFastifyOptions } from '../../src/index.js';
import { startAgentServer, type AgentServer, type TestAgent } from './agents.js';

export const BASE = 'https://shop.test';
export const APP_ID = 'com.example.shop';
export const SCOPES = ['products:read', 'cart:read', 'cart:write', 'orders:read', 'orders:write', 'admin:all'];

export interface Harness {
  app: FastifyInstance;
  store: MemoryStore;
  clock: ManualClock;
  agents: AgentServer;
  audit: AuditRecord[];
  close(): Promise<void>;
}

/** Users sign in with a `user=<name>` cookie in these tests. */
export function userCookie(user: string): string {
  return `user=${user}`;
}

export async function buildHarness(overrides: Partial<AthFastifyOptions> = {}): Promise<Harness> {
  const clock = new ManualClock();
  const agents = await startAgentServer(clock);
  const store = new MemoryStore();
  const audit: AuditRecord[] = [];
  const app = Fastify();
  await app.register(athFastify, {
    baseUrl: BASE,
    service: { app_id: APP_ID, name: 'Example Shop', api_base: '/api' },
    scopes: SCOPES,
    policy: { autoApprove: true, deny: ['admin:all'] },
    store,
    authenticateUser: (request) => /(?:^|;\s*)user=([a-z]+)/.exec(request.headers.cookie ?? '')?.[1] ?? null,
    loginUrl: '/login',
    identity: { allowInsecure: [agents.hostPort] },
    clock,
    auditSink: (e) => void audit.push(e),
    ...overrides,
  });
  // The service's own API (native mode, C-167).
  app.get('/api/products', { config: { ath: { scope: 'products:read' } } }, (request) => ({
    products: [{ id: 1 }],
    user: request.ath?.userId,
    agent: request.ath?.agentId,
  }));
  app.get('/api/cart', { config: { ath: { scope: 'cart:read' } } }, (request) => ({ user: request.ath?.userId, items: [] }));
  app.post('/api/cart', { config: { ath: { scope: 'cart:write' } } }, (request) => ({ added: request.body }));
  app.post('/api/orders', { config: { ath: { scope: 'orders:write' } } }, () => ({ order: 1 }));
  app.get('/api/unmapped', () => ({ leaked: true }));
  app.get('/api/health', { config: { ath: false } }, () => ({ ok: true }));
  app.get('/public', () => ({ hello: 'world' }));
  await app.ready();
  return {
    app,
    store,
    clock,
    agents,
    audit,
    async close() {
      await app.close();
      await agents.close();
    },
  };
}

/** Asserts an ATHError response (C-200/C-201) and returns its body. */
export function expectAthError(res: LightMyRequestResponse, status: number, code: string): { code: string; message: string; details?: Record<string, unknown> } {
  expect({ status: res.statusCode, body: res.body }).toMatchObject({ status });
  expect(res.headers['content-type']).toMatch(/^application\/json/);
  const body = res.json<{ code: string; message: string; details?: Record<string, unknown> }>();
  expect(validateATHError(body).valid).toBe(true);
  expect(body.code).toBe(code);
  expect(res.body).not.toMatch(/\bat .+:\d+:\d+/); // no stack trace (C-203)
  return body;
}

export interface Registered {
  agent: TestAgent;
  clientId: string;
  clientSecret: string;
}

export async function register(
  h: Harness,
  name: string,
  scopes: string[] = ['products:read', 'cart:read', 'cart:write', 'orders:write'],
  extra: Record<string, unknown> = {},
): Promise<Registered> {
  const agent = await h.agents.add(name);
  const res = await h.app.inject({
    method: 'POST',
    url: '/ath/agents/register',
    payload: {
      agent_id: agent.agentId,
      agent_attestation: await agent.mint(BASE),
      developer: { name: 'Test Developer', id: 'dev-test' },
      requested_providers: [{ provider_id: APP_ID, scopes }],
      purpose: 'Shopping on behalf of the user',
      ...extra,
    },
  });
  expect(res.statusCode, res.body).toBe(201);
  const body = res.json();
  return { agent, clientId: body.client_id, clientSecret: body.client_secret };
}

export async function authorize(h: Harness, reg: Registered, scopes: string[], extra: Record<string, unknown> = {}) {
  const res = await h.app.inject({
    method: 'POST',
    url: '/ath/authorize',
    payload: {
      client_id: reg.clientId,
      agent_attestation: await reg.agent.mint(BASE),
      provider_id: APP_ID,
      scopes,
      state: 'agent-state-0123456789abcdef',
      ...extra,
    },
  });
  expect(res.statusCode, res.body).toBe(200);
  const body = res.json<{ authorization_url: string; ath_session_id: string }>();
  const url = new URL(body.authorization_url);
  return { ...body, launchPath: url.pathname + url.search, state: url.searchParams.get('state')! };
}

/** Opens the launch page as a signed-in user; returns the binding cookie ("name=value"). */
export async function launch(h: Harness, launchPath: string, user = 'alice') {
  const res = await h.app.inject({ method: 'GET', url: launchPath, headers: { cookie: userCookie(user) } });
  expect(res.statusCode, res.body).toBe(200);
  const setCookie = String(res.headers['set-cookie'] ?? '');
  const binding = setCookie.split(';')[0]!;
  return { res, binding };
}

export async function consent(
  h: Harness,
  state: string,
  binding: string,
  decision: 'approve' | 'deny',
  scopes: string[] = [],
  user = 'alice',
) {
  const form = new URLSearchParams({ state, decision });
  for (const s of scopes) form.append('scope', s);
  return h.app.inject({
    method: 'POST',
    url: '/ath/consent',
    headers: { 'content-type': 'application/x-www-form-urlencoded', cookie: `${binding}; ${userCookie(user)}` },
    payload: form.toString(),
  });
}

export async function exchange(h: Harness, reg: Registered, sessionId: string, code = 'exchange') {
  return h.app.inject({
    method: 'POST',
    url: '/ath/token',
    payload: {
      grant_type: 'authorization_code',
      client_id: reg.clientId,
      client_secret: reg.clientSecret,
      agent_attestation: await reg.agent.mint(`${BASE}/ath/token`),
      code,
      ath_session_id: sessionId,
    },
  });
}

/** register (optional) → authorize → launch → approve `granted` → token. */
export async function fullFlow(h: Harness, reg: Registered, requested: string[], granted: string[]) {
  const auth = await authorize(h, reg, requested);
  const { binding } = await launch(h, auth.launchPath);
  const done = await consent(h, auth.state, binding, 'approve', granted);
  expect(done.statusCode, done.body).toBe(200);
  const res = await exchange(h, reg, auth.ath_session_id);
  expect(res.statusCode, res.body).toBe(200);
  return res.json<{ access_token: string; effective_scopes: string[]; agent_id: string }>();
}
