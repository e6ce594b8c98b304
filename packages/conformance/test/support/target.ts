/**
 * A reference ATH native service for the suite's own tests: node:http around AthEngine
 * (MemoryStore, one provider whose provider_id = app_id), with a form login, a plain-HTML consent
 * page following the suite's convention, and an api_base guarded by engine.validateAccess.
 * `fault` switches off one protection at a time, to prove the suite's checks can fail.
 */
import http from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { randomBytes } from 'node:crypto';
import {
  AthEngine,
  AthError,
  MemoryStore,
  defaultApprovalPolicy,
  errorHeaders,
  serviceDiscovery,
  toAthError,
  type AgentStatusAuth,
} from '@athkit/core';
import type { ApiMap } from '../../src/types.js';

export type Fault =
  | 'replay' // accepts a replayed jti (markJtiUsed always true)
  | 'ignore-aud' // the verifier accepts any aud
  | 'revoke-unauthenticated' // 200 for revoke without client credentials
  | 'conflict-before-attestation' // 409 before verifying the attestation
  | 'leak-secret' // GET agent includes client_secret
  | 'unmapped-api' // an unmapped native API path is allowed
  | 'wrong-status'; // SCOPE_NOT_APPROVED answered with 400

export interface TestTarget {
  url: string;
  engine: AthEngine;
  login: { url: string; username: string; password: string };
  apiMap: ApiMap;
  close(): Promise<void>;
}

const SCOPES = ['products:read', 'orders:write', 'orders:admin'];
export const TEST_API_MAP: ApiMap = {
  operations: [
    { method: 'GET', path: '/products', scope: 'products:read' },
    { method: 'POST', path: '/orders', scope: 'orders:write', body: { item: 'conformance' } },
  ],
  unmapped: { method: 'DELETE', path: '/admin/everything' },
};
const API_SCOPES: Record<string, string> = { 'GET /api/products': 'products:read', 'POST /api/orders': 'orders:write' };

function cookies(req: http.IncomingMessage): Record<string, string> {
  const out: Record<string, string> = {};
  for (const part of (req.headers.cookie ?? '').split(';')) {
    const eq = part.indexOf('=');
    if (eq > 0) out[part.slice(0, eq).trim()] = part.slice(eq + 1).trim();
  }
  return out;
}

const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');

async function readBody(req: http.IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const c of req as AsyncIterable<Buffer>) {
    size += c.length;
    if (size > 64 * 1024) throw new AthError('PAYLOAD_TOO_LARGE', 'Request body too large');
    chunks.push(c);
  }
  return Buffer.concat(chunks).toString('utf8');
}

async function jsonBody(req: http.IncomingMessage, allowForm = false): Promise<unknown> {
  const ct = (req.headers['content-type'] ?? '').toLowerCase();
  const text = await readBody(req);
  if (allowForm && ct.startsWith('application/x-www-form-urlencoded')) return Object.fromEntries(new URLSearchParams(text));
  if (!ct.startsWith('application/json')) throw new AthError('INVALID_REQUEST', 'Content-Type must be application/json');
  try {
    return JSON.parse(text) as unknown;
  } catch {
    throw new AthError('INVALID_REQUEST', 'Malformed JSON body');
  }
}

export async function startTarget(opts: { agentHostPort: string; fault?: Fault }): Promise<TestTarget> {
  const fault = opts.fault;
  const store = new MemoryStore();
  if (fault === 'replay') store.markJtiUsed = () => Promise.resolve(true);
  const users = new Map([['alice', 'wonderland']]);
  const logins = new Map<string, string>(); // sid → user
  const secrets = new Map<string, string>(); // client_id → secret (only for the leak fault)
  let base = '';

  const server = http.createServer((req, res) => {
    void handle(req, res).catch((err: unknown) => sendError(res, err));
  });
  const sockets = new Set<Socket>();
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

  const engine = new AthEngine({
    store,
    baseUrl: base,
    providers: [{ provider_id: 'shop', display_name: 'Test Shop', available_scopes: SCOPES }],
    policy: defaultApprovalPolicy({ autoApprove: ['products:read', 'orders:write'], deny: ['orders:admin'] }),
    identity: { allowInsecure: [opts.agentHostPort] },
  });
  if (fault === 'ignore-aud') {
    const verifier = engine.ctx.verifier;
    const original = verifier.verify.bind(verifier);
    verifier.verify = (jwt, expect) => {
      const payload = jwt.split('.')[1] ?? '';
      let aud: unknown;
      try {
        aud = (JSON.parse(Buffer.from(payload, 'base64url').toString('utf8')) as { aud?: unknown }).aud;
      } catch {
        aud = undefined;
      }
      const auds = typeof aud === 'string' ? [aud] : Array.isArray(aud) ? (aud as string[]) : [];
      return original(jwt, { ...expect, audiences: auds.length ? auds : expect.audiences });
    };
  }

  function send(res: http.ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
    res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store', ...headers }).end(JSON.stringify(body));
  }

  function sendError(res: http.ServerResponse, err: unknown): void {
    const e = toAthError(err);
    if (res.headersSent) return void res.end();
    const status = fault === 'wrong-status' && e.code === 'SCOPE_NOT_APPROVED' ? 400 : e.status;
    send(res, status, e.toJSON(), errorHeaders(e));
  }

  function html(res: http.ServerResponse, status: number, body: string, headers: Record<string, string> = {}): void {
    res.writeHead(status, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store', ...headers }).end(`<!doctype html><html><body>${body}</body></html>`);
  }

  function user(req: http.IncomingMessage): string | null {
    return logins.get(cookies(req)['sid'] ?? '') ?? null;
  }

  const ROUTES: Record<string, string[]> = {
    '/ath/agents/register': ['POST'],
    '/ath/authorize': ['POST'],
    '/ath/authorize/start': ['GET'],
    '/ath/consent': ['POST'],
    '/ath/token': ['POST'],
    '/ath/revoke': ['POST'],
  };

  async function handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', base);
    const path = url.pathname;
    const method = req.method ?? 'GET';

    if (path === '/.well-known/ath-app.json' && method === 'GET') {
      return send(res, 200, serviceDiscovery(base, { app_id: 'shop', name: 'Test Shop', api_base: `${base}/api`, scopes_supported: SCOPES }), { 'cache-control': 'public, max-age=300' });
    }
    if (path === '/login') {
      if (method === 'GET') {
        return html(res, 200, `<form method="post" action="/login"><input type="hidden" name="next" value="${esc(url.searchParams.get('next') ?? '/')}"><input name="username"><input type="password" name="password"><button type="submit">Sign in</button></form>`);
      }
      const form = new URLSearchParams(await readBody(req));
      const name = form.get('username') ?? '';
      if (users.get(name) !== form.get('password')) return html(res, 401, 'bad credentials');
      const sid = randomBytes(16).toString('base64url');
      logins.set(sid, name);
      const next = form.get('next') ?? '/';
      res.writeHead(302, { location: next.startsWith('/') ? next : '/', 'set-cookie': `sid=${sid}; Path=/; HttpOnly; SameSite=Lax` }).end();
      return;
    }

    if (path.startsWith('/api/') || path === '/api') {
      const key = `${method} ${path}`;
      const required = API_SCOPES[key] ?? (fault === 'unmapped-api' ? 'products:read' : null);
      const grant = await engine.validateAccess({
        authorization: req.headers.authorization,
        agentIdHeader: req.headers['x-ath-agent-id'],
        providerId: 'shop',
        requiredScope: required,
      });
      return send(res, 200, { ok: true, user: grant.userId, op: key });
    }

    const agentMatch = /^\/ath\/agents\/([^/]+)$/.exec(path);
    if (agentMatch && path !== '/ath/agents/register') {
      if (method !== 'GET') throw new AthError('METHOD_NOT_ALLOWED', 'Use GET', { allow: ['GET'] });
      const clientId = decodeURIComponent(agentMatch[1]!);
      const authz = req.headers.authorization ?? '';
      const att = req.headers['x-ath-agent-attestation'];
      let auth: AgentStatusAuth = { kind: 'none' };
      if (/^Basic /i.test(authz)) {
        const [id, ...rest] = Buffer.from(authz.slice(6), 'base64').toString('utf8').split(':');
        auth = { kind: 'basic', clientId: id ?? '', clientSecret: rest.join(':') };
      } else if (typeof att === 'string') auth = { kind: 'attestation', attestation: att };
      const status = await engine.agentStatus(clientId, auth);
      return send(res, 200, fault === 'leak-secret' ? { ...status, client_secret: secrets.get(clientId) } : status);
    }

    const allowed = ROUTES[path];
    if (!allowed) throw new AthError('NOT_FOUND', 'No such endpoint');
    if (!allowed.includes(method)) throw new AthError('METHOD_NOT_ALLOWED', `Use ${allowed.join(', ')}`, { allow: allowed });

    switch (path) {
      case '/ath/agents/register': {
        const body = await jsonBody(req);
        if (fault === 'conflict-before-attestation') {
          const agentId = (body as { agent_id?: unknown }).agent_id;
          if (typeof agentId === 'string') {
            const existing = await store.getAgentByAgentId(agentId);
            if (existing) throw new AthError('AGENT_ALREADY_REGISTERED', 'This agent_id is already registered', { client_id: existing.clientId });
          }
        }
        const reg = await engine.register(body);
        secrets.set(reg.client_id, reg.client_secret);
        return send(res, 201, reg);
      }
      case '/ath/authorize':
        return send(res, 200, await engine.authorize(await jsonBody(req)));
      case '/ath/token':
        return send(res, 200, await engine.exchangeToken(await jsonBody(req, true)));
      case '/ath/revoke': {
        const body = await jsonBody(req);
        if (fault === 'revoke-unauthenticated' && !(body as { client_secret?: unknown }).client_secret) return send(res, 200, {});
        await engine.revoke(body);
        return send(res, 200, {});
      }
      case '/ath/authorize/start': {
        if (!user(req)) {
          res.writeHead(302, { location: `/login?next=${encodeURIComponent(url.pathname + url.search)}` }).end();
          return;
        }
        const launched = await engine.launch(url.searchParams, cookies(req));
        const headers: Record<string, string> = {};
        if (launched.setBinding) headers['set-cookie'] = `${launched.cookieName}=${launched.setBinding}; Path=/; HttpOnly; Secure; SameSite=Lax`;
        const c = launched.consent;
        const boxes = c.scopes.map((s) => `<label><input type="checkbox" name="scope" value="${esc(s.scope)}" checked> ${esc(s.scope)}</label>`).join('');
        return html(
          res,
          200,
          `<h1>${esc(c.agent.name ?? c.agent.agentId)} (claimed by the agent) wants access to ${esc(c.provider.displayName)}</h1>
<form method="post" action="/ath/consent"><input type="hidden" name="state" value="${esc(url.searchParams.get('state') ?? '')}">${boxes}
<button type="submit" name="decision" value="approve">Allow</button><button type="submit" name="decision" value="deny">Deny</button></form>`,
          headers,
        );
      }
      case '/ath/consent': {
        const who = user(req);
        if (!who) throw new AthError('STATE_MISMATCH', 'Not signed in');
        const form = new URLSearchParams(await readBody(req));
        const session = await engine.openCallback(form.get('state'), cookies(req));
        const outcome =
          form.get('decision') === 'approve'
            ? { kind: 'granted' as const, userId: who, consentedScopes: form.getAll('scope') }
            : { kind: 'denied' as const };
        const result = await engine.completeConsent(session, outcome);
        if (result.kind === 'redirect') {
          res.writeHead(302, { location: result.location, 'cache-control': 'no-store' }).end();
          return;
        }
        return html(res, 200, result.outcome === 'granted' ? 'Done — return to your agent.' : 'Access denied — return to your agent.');
      }
    }
  }

  return {
    url: base,
    engine,
    login: { url: `${base}/login`, username: 'alice', password: 'wonderland' },
    apiMap: TEST_API_MAP,
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => server.close(() => r()));
      await engine.close();
    },
  };
}

/** A free loopback port (for pinning the suite's agent port, which the target must allow). */
export async function freePort(): Promise<number> {
  const s = http.createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}
