/* eslint-disable @typescript-eslint/no-explicit-any -- JSON response bodies in test helpers */
/**
 * A whole gateway on 127.0.0.1 for HTTP-level tests: a real oidc-provider upstream AS, a recording
 * upstream API, an agent identity document server, and `createGateway` listening on a free port.
 * Agents talk to it over HTTP only (as a real agent would); the browser is a cookie-jar client
 * (`Browser`) or headless Chromium.
 */
import { createServer as createNetServer } from 'node:net';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { exportPublicJwk, generateAgentKeyPair, signAttestation, type AuditRecord, type Store } from '@athkit/core';
import { parseConfig, type GatewayConfig } from '../../src/config.js';
import { createLogger } from '../../src/observability.js';
import { createGateway, type Gateway, type GatewayOptions } from '../../src/server.js';
import { startAuthorizationServer, type TestAuthorizationServer } from './authorization-server.js';
import { RecordingUpstream } from './upstream-server.js';

type AgentPrivateKey = Awaited<ReturnType<typeof generateAgentKeyPair>>['privateKey'];

export const API_SCOPES = ['mail:read', 'mail:send'];
export const ADMIN_KEY = 'test-admin-key-0123456789abcdefghijklmnop';

export async function freePort(host = '127.0.0.1'): Promise<number> {
  const server = createNetServer();
  await new Promise<void>((resolve) => server.listen(0, host, resolve));
  const port = (server.address() as AddressInfo).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** An agent with its identity document served on 127.0.0.1, speaking raw HTTP to the gateway. */
export class TestAgent {
  agentId = '';
  hostPort = '';
  clientId = '';
  clientSecret = '';
  private server!: Server;
  private privateKey!: AgentPrivateKey;
  privateKeyForClient!: AgentPrivateKey;

  static async start(name = 'Mail helper'): Promise<TestAgent> {
    const a = new TestAgent();
    const { privateKey, publicKey } = await generateAgentKeyPair();
    a.privateKey = privateKey;
    a.privateKeyForClient = privateKey;
    let doc: unknown = null;
    a.server = createServer((_req, res) => res.setHeader('content-type', 'application/json').end(JSON.stringify(doc)));
    await new Promise<void>((resolve) => a.server.listen(0, '127.0.0.1', resolve));
    a.hostPort = `127.0.0.1:${(a.server.address() as AddressInfo).port}`;
    a.agentId = `http://${a.hostPort}/.well-known/agent.json`;
    doc = {
      ath_version: '0.1',
      agent_id: a.agentId,
      name,
      developer: { name: 'Dev Co', id: 'dev-co' },
      public_key: await exportPublicJwk(publicKey, 'k1'),
    };
    return a;
  }

  att(aud: string): Promise<string> {
    return signAttestation({ privateKey: this.privateKey, kid: 'k1', agentId: this.agentId, audience: aud });
  }

  close(): Promise<void> {
    return new Promise((resolve) => {
      this.server.closeAllConnections();
      this.server.close(() => resolve());
    });
  }
}

export interface StackOptions {
  sessionTtlSeconds?: number;
  tokenTtlSeconds?: number;
  store?: Store;
  storage?: string;
  /** Extra config keys (merged at the top level). */
  config?: Record<string, unknown>;
  gateway?: GatewayOptions;
  /** Upstream AS access-token lifetime (seconds). */
  accessTokenTtl?: number;
  agents?: number;
  /** Share the AS/upstream/agents of another stack (second gateway instance). */
  shareWith?: Stack;
  /**
   * The gateway's log level (default debug, captured in logLines). At debug every proxied call goes
   * through the fastify route; at info, GETs the caches allow take the proxy fast path.
   */
  logLevel?: 'debug' | 'info';
}

export class Stack {
  as!: TestAuthorizationServer;
  upstream!: RecordingUpstream;
  agents: TestAgent[] = [];
  gw!: Gateway;
  config!: GatewayConfig;
  url = '';
  audit: AuditRecord[] = [];
  logLines: string[] = [];
  private shared = false;

  get agent(): TestAgent {
    return this.agents[0]!;
  }

  static async start(options: StackOptions = {}): Promise<Stack> {
    const s = new Stack();
    const port = await freePort();
    s.url = `http://127.0.0.1:${port}`;
    if (options.shareWith) {
      s.shared = true;
      s.as = options.shareWith.as;
      s.upstream = options.shareWith.upstream;
      s.agents = options.shareWith.agents;
    } else {
      s.as = await startAuthorizationServer({
        redirectUri: `${s.url}/ath/callback`,
        scopes: API_SCOPES,
        ...(options.accessTokenTtl ? { accessTokenTtl: options.accessTokenTtl } : {}),
      });
      s.upstream = await new RecordingUpstream().start();
      for (let i = 0; i < (options.agents ?? 2); i++) s.agents.push(await TestAgent.start(i === 0 ? 'Mail helper' : `Agent ${i}`));
    }
    const env = { MAIL_SECRET: s.as.clientSecret };
    s.config = parseConfig(
      {
        dev: true,
        publicUrl: options.shareWith ? options.shareWith.url : s.url,
        listen: { host: '127.0.0.1', port },
        storage: options.storage ?? 'memory:',
        secrets: { adminKey: ADMIN_KEY, cookieKey: Buffer.alloc(32, 1).toString('base64url'), vaultKey: Buffer.alloc(32, 2).toString('base64url') },
        approval: { autoApprove: true },
        allowInsecureAgentHosts: s.agents.map((a) => a.hostPort),
        logLevel: 'info',
        ...(options.sessionTtlSeconds ? { sessionTtlSeconds: options.sessionTtlSeconds } : {}),
        ...(options.tokenTtlSeconds ? { tokenTtlSeconds: options.tokenTtlSeconds } : {}),
        providers: [
          {
            provider_id: 'mail',
            display_name: 'Example Mail',
            available_scopes: ['openid', ...API_SCOPES],
            oauth: { issuer: s.as.issuer, client_id: s.as.clientId, client_secret_env: 'MAIL_SECRET', resource: s.as.resource },
            api_base: `${s.upstream.origin}/api/`,
            timeout_ms: 2000,
            scope_map: [
              { methods: ['GET', 'HEAD'], path: '/v1/messages', scope: 'mail:read' },
              { methods: ['GET', 'HEAD'], path: '/v1/messages/{id}', scope: 'mail:read' },
              { methods: ['POST', 'PUT', 'PATCH', 'DELETE'], path: '/v1/messages/{id}', scope: 'mail:send' },
              { methods: ['POST'], path: '/v1/messages/send', scope: 'mail:send' },
              { methods: ['GET'], path: '/v1/me', scope: 'mail:read' },
            ],
          },
        ],
        ...(options.config ?? {}),
      },
      env,
    );
    const logger = createLogger(options.logLevel ?? 'debug', { write: (line: string) => void s.logLines.push(line) } as unknown as NodeJS.WritableStream);
    s.gw = await createGateway(s.config, {
      ...(options.store ? { store: options.store } : {}),
      logger,
      env,
      defaultMetrics: false,
      auditSink: (e) => void s.audit.push(e),
      ...(options.gateway ?? {}),
    });
    await s.gw.listen({ port, host: '127.0.0.1' });
    return s;
  }

  /** Public URL of the gateway whose callback the AS redirects to (the first instance's for a second instance). */
  get publicUrl(): string {
    return this.config.publicUrl;
  }

  async post(path: string, body: unknown, headers: Record<string, string> = {}): Promise<{ status: number; body: any; headers: Headers }> {
    const res = await fetch(this.url + path, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...headers },
      body: JSON.stringify(body),
    });
    const text = await res.text();
    let parsed: unknown = text;
    try {
      parsed = JSON.parse(text);
    } catch {
      /* not JSON */
    }
    return { status: res.status, body: parsed, headers: res.headers };
  }

  async admin(method: string, path: string, body?: unknown): Promise<{ status: number; body: any }> {
    const res = await fetch(this.url + '/admin' + path, {
      method,
      headers: { authorization: `Bearer ${ADMIN_KEY}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
    });
    const text = await res.text();
    return { status: res.status, body: text ? (JSON.parse(text) as unknown) : null };
  }

  /** Registers the agent (auto-approved) and stores its credentials on it. */
  async register(agent: TestAgent = this.agent, scopes = ['openid', ...API_SCOPES], extra: Record<string, unknown> = {}): Promise<void> {
    const res = await this.post('/ath/agents/register', {
      agent_id: agent.agentId,
      agent_attestation: await agent.att(this.publicUrl),
      developer: { name: 'Dev Co', id: 'dev-co' },
      requested_providers: [{ provider_id: 'mail', scopes }],
      purpose: 'Summarise my inbox',
      ...extra,
    });
    if (res.status !== 201) throw new Error(`register: ${res.status} ${JSON.stringify(res.body)}`);
    agent.clientId = res.body.client_id;
    agent.clientSecret = res.body.client_secret;
  }

  async authorize(agent: TestAgent, scopes: string[], extra: Record<string, unknown> = {}): Promise<{ status: number; body: any }> {
    return this.post('/ath/authorize', {
      client_id: agent.clientId,
      agent_attestation: await agent.att(this.publicUrl),
      provider_id: 'mail',
      scopes,
      state: 'agent-state-' + 'x'.repeat(32),
      ...extra,
    });
  }

  async token(agent: TestAgent, sessionId: string, code = 'placeholder'): Promise<{ status: number; body: any; headers: Headers }> {
    return this.post('/ath/token', {
      grant_type: 'authorization_code',
      client_id: agent.clientId,
      client_secret: agent.clientSecret,
      agent_attestation: await agent.att(`${this.publicUrl}/ath/token`),
      code,
      ath_session_id: sessionId,
    });
  }

  proxy(path: string, token: string, init: RequestInit & { agent?: TestAgent } = {}): Promise<Response> {
    const { agent = this.agent, headers, ...rest } = init;
    return fetch(`${this.url}/ath/proxy/mail${path}`, {
      ...rest,
      headers: { authorization: `Bearer ${token}`, 'x-ath-agent-id': agent.agentId, ...(headers as Record<string, string> | undefined) },
    });
  }

  /** register → authorize → interstitial → AS (scripted user) → callback → token. */
  async fullFlow(
    scopes = ['mail:read'],
    agent: TestAgent = this.agent,
    browser = new Browser(),
  ): Promise<{ token: string; body: any; sessionId: string }> {
    if (!agent.clientId) await this.register(agent);
    const auth = await this.authorize(agent, scopes);
    if (auth.status !== 200) throw new Error(`authorize: ${auth.status} ${JSON.stringify(auth.body)}`);
    const page = await browser.consent(auth.body.authorization_url, 'approve', this.url);
    if (page.status !== 200) throw new Error(`callback: ${page.status} ${page.text}`);
    const tok = await this.token(agent, auth.body.ath_session_id);
    if (tok.status !== 200) throw new Error(`token: ${tok.status} ${JSON.stringify(tok.body)}`);
    return { token: tok.body.access_token, body: tok.body, sessionId: auth.body.ath_session_id };
  }

  async close(): Promise<void> {
    await this.gw.close();
    if (!this.shared) {
      await this.as.close();
      await this.upstream.close();
      for (const a of this.agents) await a.close();
    }
  }
}

export interface PageResult {
  status: number;
  url: string;
  text: string;
  headers: Headers;
}

/** A cookie-jar browser over fetch: follows redirects by hand, keeps cookies per host:port. */
export class Browser {
  readonly jar = new Map<string, Map<string, string>>();
  /** Every response seen (URL, status, Location, Set-Cookie, body) — for leak scans. */
  readonly seen: { url: string; status: number; location: string | null; setCookie: string[]; body: string }[] = [];

  private cookiesFor(url: URL): Map<string, string> {
    let m = this.jar.get(url.host);
    if (!m) this.jar.set(url.host, (m = new Map()));
    return m;
  }

  async request(url: string, init: { method?: string; form?: URLSearchParams; origin?: string } = {}): Promise<PageResult & { location: string | null }> {
    const u = new URL(url);
    const cookies = this.cookiesFor(u);
    const headers: Record<string, string> = {};
    if (cookies.size) headers['cookie'] = [...cookies].map(([k, v]) => `${k}=${v}`).join('; ');
    if (init.form) headers['content-type'] = 'application/x-www-form-urlencoded';
    if (init.origin) headers['origin'] = init.origin;
    const res = await fetch(url, {
      method: init.method ?? 'GET',
      redirect: 'manual',
      headers,
      ...(init.form ? { body: init.form.toString() } : {}),
      signal: AbortSignal.timeout(10_000),
    });
    const setCookie = res.headers.getSetCookie();
    for (const line of setCookie) {
      const [pair = '', ...attrs] = line.split(';');
      const eq = pair.indexOf('=');
      const name = pair.slice(0, eq).trim();
      const value = pair.slice(eq + 1).trim();
      const expired = attrs.some((a) => /^\s*max-age=0\s*$/i.test(a));
      if (expired || value === '') cookies.delete(name);
      else cookies.set(name, value);
    }
    const text = await res.text();
    const location = res.headers.get('location');
    this.seen.push({ url, status: res.status, location, setCookie, body: text });
    return { status: res.status, url, text, headers: res.headers, location: location ? new URL(location, url).toString() : null };
  }

  /** Follows redirects from `url` until a non-redirect, or until a Location starting with `stopAt` (returned unrequested). */
  async follow(url: string, stopAt?: string): Promise<PageResult & { stoppedAt?: string }> {
    let current = url;
    for (let hop = 0; hop < 15; hop++) {
      if (stopAt && current.startsWith(stopAt)) return { status: 0, url: current, text: '', headers: new Headers(), stoppedAt: current };
      const r = await this.request(current);
      if (r.status >= 300 && r.status < 400 && r.location) {
        current = r.location;
        continue;
      }
      return r;
    }
    throw new Error('too many redirects');
  }

  /** Opens the interstitial, submits `decision`, and (approve) walks the AS until `stopAt` or the final page. */
  async consent(authorizationUrl: string, decision: 'approve' | 'deny', gatewayUrl: string, stopAtCallback = false): Promise<PageResult & { stoppedAt?: string }> {
    const page = await this.request(authorizationUrl);
    if (page.status !== 200) return page;
    const state = /name="state" value="([^"]+)"/.exec(page.text)?.[1];
    if (!state) throw new Error('no state on the interstitial');
    const posted = await this.request(`${gatewayUrl}/ath/authorize/continue`, {
      method: 'POST',
      form: new URLSearchParams({ state: state.replace(/&amp;/g, '&'), decision }),
      origin: gatewayUrl,
    });
    if (!(posted.status >= 300 && posted.status < 400 && posted.location)) return posted;
    return this.follow(posted.location, stopAtCallback ? `${gatewayUrl}/ath/callback` : undefined);
  }
}
