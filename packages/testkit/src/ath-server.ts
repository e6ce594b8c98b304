/**
 * A minimal in-process ATH server for tests: AthEngine (MemoryStore) behind node:http on 127.0.0.1:0, with
 * discovery (gateway and native), register, agent status, authorize, a consent page, token,
 * revoke, a native API (`/api/*`) and a gateway proxy (`/ath/proxy/{provider}/*`) guarded by
 * engine.validateAccess. `consent()` plays the user's browser. `intercept` lets a test answer any
 * request itself (faults).
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import {
  AthEngine,
  MemoryStore,
  attestationFailure,
  defaultApprovalPolicy,
  errorHeaders,
  gatewayDiscovery,
  serviceDiscovery,
  staticCatalog,
  toAthError,
  type ApprovalPolicy,
  type Clock,
  type DocumentFetcher,
  type ProviderConfig,
} from '@athkit/core';

export const APP_ID = 'shop';
export const SHOP_SCOPES = ['products:read', 'orders:write', 'admin'];

/** Native API scope map: GET /api/products → products:read, POST /api/orders → orders:write. */
function nativeScope(method: string, path: string): string | null {
  if (method === 'GET' && path.startsWith('/api/products')) return 'products:read';
  if (method === 'POST' && path === '/api/orders') return 'orders:write';
  return null;
}

/** Fetches identity documents from any 127.0.0.1 port over plain http (tests only). */
export const loopbackFetcher: DocumentFetcher = {
  async fetch(url, signal) {
    if (url.hostname !== '127.0.0.1') throw attestationFailure('ssrf_blocked', 'tests fetch from loopback only');
    try {
      const res = await fetch(url, { redirect: 'manual', ...(signal ? { signal } : {}) });
      return { status: res.status, contentType: res.headers.get('content-type'), body: await res.text() };
    } catch (err) {
      throw attestationFailure('identity_document_unavailable', `fetch failed: ${(err as Error).message}`);
    }
  },
  isInsecureAllowed: (url) => url.hostname === '127.0.0.1',
};

export interface TestServerOptions {
  policy?: ApprovalPolicy;
  providers?: ProviderConfig[];
  clock?: Clock;
  tokenTtlSeconds?: number;
}

export interface ConsentOptions {
  decision?: 'granted' | 'denied';
  userId?: string;
  scopes?: string[] | null;
}

export interface TestServer {
  url: string;
  engine: AthEngine;
  server: Server;
  /** Every request seen: method and path. */
  requests: { method: string; path: string; headers: IncomingMessage['headers']; body: string }[];
  /** Return true after answering to take over a request (fault injection). */
  intercept: ((req: IncomingMessage, res: ServerResponse, body: string) => boolean | Promise<boolean>) | null;
  /** Plays the user's browser: opens authorization_url, then approves or denies on the consent page. Returns the redirect Location, if any. */
  consent(authorizationUrl: string, options?: ConsentOptions): Promise<string | null>;
  close(): Promise<void>;
}

function send(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = body === undefined ? '' : JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store', ...headers }).end(text);
}

function cookies(req: IncomingMessage): Record<string, string> {
  const out: Record<string, string> = {};
  for (const part of (req.headers.cookie ?? '').split(';')) {
    const i = part.indexOf('=');
    if (i > 0) out[part.slice(0, i).trim()] = decodeURIComponent(part.slice(i + 1).trim());
  }
  return out;
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

const escapeHtml = (s: string): string => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

export async function startTestServer(options: TestServerOptions = {}): Promise<TestServer> {
  let handler: (req: IncomingMessage, res: ServerResponse) => Promise<void> = () => Promise.resolve();
  const server = createServer((req, res) => {
    handler(req, res).catch((err: unknown) => {
      const e = toAthError(err);
      if (!res.headersSent) send(res, e.status, e.toJSON(), errorHeaders(e));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const providers = options.providers ?? [
    { provider_id: APP_ID, display_name: 'Shop', available_scopes: SHOP_SCOPES },
    { provider_id: 'mail', display_name: 'Mail', available_scopes: ['mail:read', 'mail:send'], auth_mode: 'OAUTH2' },
  ];
  const engine = new AthEngine({
    store: new MemoryStore(),
    baseUrl: url,
    providers,
    policy: options.policy ?? defaultApprovalPolicy({ autoApprove: ['products:read', 'orders:write', 'mail:read', 'mail:send'], deny: ['admin'] }),
    identity: { fetcher: loopbackFetcher },
    ...(options.clock ? { clock: options.clock } : {}),
    ...(options.tokenTtlSeconds ? { tokenTtlSeconds: options.tokenTtlSeconds } : {}),
  });
  const catalog = staticCatalog(providers);
  const state: TestServer = {
    url,
    engine,
    server,
    requests: [],
    intercept: null,
    consent: (authorizationUrl, consentOptions) => playBrowser(url, authorizationUrl, consentOptions ?? {}),
    close: async () => {
      await engine.close();
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
    },
  };

  handler = async (req, res) => {
    const body = await readBody(req);
    const u = new URL(req.url ?? '/', url);
    const method = req.method ?? 'GET';
    state.requests.push({ method, path: u.pathname, headers: req.headers, body });
    if (state.intercept && (await state.intercept(req, res, body))) return;
    const path = u.pathname;

    if (method === 'GET' && path === '/.well-known/ath.json') return send(res, 200, gatewayDiscovery(url, 'test-gateway', catalog));
    if (method === 'GET' && path === '/.well-known/ath-app.json') {
      return send(res, 200, serviceDiscovery(url, { app_id: APP_ID, name: 'Test Shop', api_base: `${url}/api`, scopes_supported: SHOP_SCOPES }));
    }
    if (method === 'POST' && path === '/ath/agents/register') return send(res, 201, await engine.register(parseJson(body)));
    if (method === 'GET' && path.startsWith('/ath/agents/')) {
      const auth = req.headers.authorization ?? '';
      const decoded = auth.startsWith('Basic ') ? Buffer.from(auth.slice(6), 'base64').toString('utf8') : '';
      const i = decoded.indexOf(':');
      const clientId = decodeURIComponent(path.slice('/ath/agents/'.length));
      const status = await engine.agentStatus(
        clientId,
        i > 0 ? { kind: 'basic', clientId: decoded.slice(0, i), clientSecret: decoded.slice(i + 1) } : { kind: 'none' },
      );
      return send(res, 200, status);
    }
    if (method === 'POST' && path === '/ath/authorize') return send(res, 200, await engine.authorize(parseJson(body)));
    if (method === 'GET' && path === '/ath/authorize/start') {
      const launched = await engine.launch(u.searchParams, cookies(req));
      const upstreamState = launched.upstreamQuery.get('state') ?? '';
      const headers: Record<string, string> = { 'content-type': 'text/html; charset=utf-8' };
      if (launched.setBinding) headers['set-cookie'] = `${launched.cookieName}=${encodeURIComponent(launched.setBinding)}; Path=/; HttpOnly; SameSite=Lax`;
      res
        .writeHead(200, headers)
        .end(`<form method="post" action="/consent"><input type="hidden" name="state" value="${escapeHtml(upstreamState)}"></form>`);
      return;
    }
    if (method === 'POST' && path === '/consent') {
      const form = new URLSearchParams(body);
      const session = await engine.openCallback(form.get('state'), cookies(req));
      const decision = form.get('decision');
      const scopes = form.get('scopes');
      const result = await engine.completeConsent(
        session,
        decision === 'denied'
          ? { kind: 'denied' }
          : { kind: 'granted', userId: form.get('user') ?? 'alice', consentedScopes: scopes === null ? null : scopes.split(' ').filter(Boolean) },
      );
      if (result.kind === 'redirect') res.writeHead(302, { location: result.location }).end();
      else res.writeHead(200, { 'content-type': 'text/html' }).end('<p>Return to your agent.</p>');
      return;
    }
    if (method === 'POST' && path === '/ath/token') return send(res, 200, await engine.exchangeToken(parseJson(body)));
    if (method === 'POST' && path === '/ath/revoke') {
      await engine.revoke(parseJson(body));
      return send(res, 200, {});
    }
    if (path.startsWith('/api/')) {
      const grant = await engine.validateAccess({
        authorization: req.headers.authorization,
        agentIdHeader: req.headers['x-ath-agent-id'],
        providerId: APP_ID,
        requiredScope: nativeScope(method, path),
      });
      if (path === '/api/products') return send(res, 200, [{ id: 'p1', name: 'Tea', price: 4 }]);
      if (path === '/api/orders') return send(res, 201, { id: 'o1', user: grant.userId, order: parseJson(body) });
      return send(res, 404, { error: 'no such product' });
    }
    const proxy = /^\/ath\/proxy\/([^/]+)(\/.*)$/.exec(path);
    if (proxy) {
      const provider = decodeURIComponent(proxy[1]!);
      const grant = await engine.validateAccess({
        authorization: req.headers.authorization,
        agentIdHeader: req.headers['x-ath-agent-id'],
        providerId: provider,
        requiredScope: method === 'GET' ? `${provider}:read` : `${provider}:send`,
      });
      return send(res, 200, { provider, path: proxy[2], method, user: grant.userId, scopes: grant.scopes });
    }
    return send(res, 404, { code: 'NOT_FOUND', message: 'no such route' });
  };
  return state;
}

/** The user's browser: GET the consent URL (gets the binding cookie), then POST the decision. */
async function playBrowser(base: string, authorizationUrl: string, options: ConsentOptions): Promise<string | null> {
  const page = await fetch(authorizationUrl, { redirect: 'manual' });
  const html = await page.text();
  if (page.status !== 200) throw new Error(`consent page: HTTP ${page.status} ${html}`);
  const cookie = (page.headers.get('set-cookie') ?? '').split(';')[0] ?? '';
  const upstreamState = /name="state" value="([^"]*)"/.exec(html)?.[1] ?? '';
  const form = new URLSearchParams({ state: upstreamState.replace(/&#(\d+);/g, (_, n: string) => String.fromCharCode(Number(n))) });
  form.set('decision', options.decision ?? 'granted');
  form.set('user', options.userId ?? 'alice');
  if (options.scopes) form.set('scopes', options.scopes.join(' '));
  const done = await fetch(`${base}/consent`, {
    method: 'POST',
    redirect: 'manual',
    headers: { 'content-type': 'application/x-www-form-urlencoded', cookie },
    body: form.toString(),
  });
  const text = await done.text();
  if (done.status === 302) return done.headers.get('location');
  if (done.status !== 200) throw new Error(`consent: HTTP ${done.status} ${text}`);
  return null;
}
