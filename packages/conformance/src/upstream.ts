/**
 * Gateway full profile: the suite's own upstream provider — a mock OAuth authorization server
 * ("AS" of threats 3.0: PKCE S256 enforced, single-use codes, scripted consent, every token request
 * recorded with the client authentication it carried) and a recording upstream API ("API": echoes
 * what it received). Both listen on loopback.
 * `providerEntry()` / `gatewayConfigFragment()` are what the gateway under test must be configured
 * with, in the athkit gateway's config format (apps/gateway/src/config.ts); the client secret is
 * given by reference (`client_secret_env: ATH_CONFORMANCE_UPSTREAM_SECRET`).
 */
import http from 'node:http';
import { createHash, randomBytes } from 'node:crypto';
import type { AddressInfo, Socket } from 'node:net';
import type { ConsentChoice } from './flow.js';

export const UPSTREAM_PROVIDER_ID = 'ath-conformance';
/** Checklist fixture `P2`: a second configured provider the suite's agents are never approved for (C-156). */
export const UPSTREAM_P2_PROVIDER_ID = 'ath-conformance-p2';
/** A provider with `agent_approval_required: false` (C-059: registration still required, auto-approved). */
export const UPSTREAM_OPEN_PROVIDER_ID = 'ath-conformance-open';
export const UPSTREAM_SCOPES = ['conf:read', 'conf:write', 'conf:admin'];
/** Scopes the gateway's approval policy must auto-approve for the suite's agents / must deny. */
export const UPSTREAM_AUTO_APPROVE = ['conf:read', 'conf:write'];
export const UPSTREAM_DENY = ['conf:admin'];
/** The environment variable both the gateway (client_secret_env) and the CLI read the mock AS client secret from. */
export const UPSTREAM_SECRET_ENV = 'ATH_CONFORMANCE_UPSTREAM_SECRET';
export const UPSTREAM_CLIENT_ID = 'ath-conformance-client';

export interface MockUpstreamOptions {
  /** Loopback host both servers listen on (default 127.0.0.1). */
  host?: string;
  /** The upstream client secret the gateway authenticates with (default: random per instance). */
  clientSecret?: string;
}

export interface AuthorizeRecord {
  query: URLSearchParams;
}
export interface TokenRecord {
  contentType: string | undefined;
  form: URLSearchParams;
  authorization: string | undefined;
  pkceOk: boolean;
  /** How the client authenticated (RFC 6749 §2.3.1): Basic header, body parameters, or not at all. */
  clientAuth: 'basic' | 'post' | 'none';
  /** The client authenticated as `clientId` with `clientSecret`. */
  clientAuthOk: boolean;
}
export interface ApiRecord {
  method: string;
  rawPath: string;
  headers: http.IncomingHttpHeaders;
  body: string;
}

interface IssuedCode {
  challenge: string;
  method: string;
  redirectUri: string;
  scopes: string[];
  omitScope: boolean;
  failure: ConsentChoice['upstreamFailure'];
}

const sha256b64u = (s: string) => createHash('sha256').update(s).digest('base64url');

export class MockUpstream {
  readonly authorizeRequests: AuthorizeRecord[] = [];
  readonly tokenRequests: TokenRecord[] = [];
  readonly apiRequests: ApiRecord[] = [];
  /** Upstream access tokens issued, by value → granted scopes. */
  readonly issuedTokens = new Map<string, string[]>();
  /** The decision the next /authorize applies (set by the flow driver). */
  nextChoice: ConsentChoice = { decision: 'approve' };
  readonly clientId = UPSTREAM_CLIENT_ID;
  readonly clientSecret: string;
  private readonly host: string;
  private readonly codes = new Map<string, IssuedCode>();
  private as: http.Server | null = null;
  private api: http.Server | null = null;
  private readonly sockets = new Set<Socket>();
  asPort = 0;
  apiPort = 0;

  constructor(options: MockUpstreamOptions = {}) {
    this.host = options.host ?? '127.0.0.1';
    this.clientSecret = options.clientSecret || `ath-conformance-secret-${randomBytes(12).toString('base64url')}`;
  }

  get asOrigin(): string {
    return `http://${this.host}:${this.asPort}`;
  }
  get apiOrigin(): string {
    return `http://${this.host}:${this.apiPort}`;
  }

  async start(asPort = 0, apiPort = 0): Promise<void> {
    this.as = await this.listen(asPort, (req, res, body) => this.handleAs(req, res, body));
    this.asPort = (this.as.address() as AddressInfo).port;
    this.api = await this.listen(apiPort, (req, res, body) => this.handleApi(req, res, body));
    this.apiPort = (this.api.address() as AddressInfo).port;
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    for (const server of [this.as, this.api]) if (server) await new Promise<void>((r) => server.close(() => r()));
    this.as = this.api = null;
  }

  /**
   * The provider entry the gateway must be configured with, in the athkit gateway's format
   * (`providers[]` of apps/gateway/src/config.ts). Scope-map paths are the paths agents call under
   * `/ath/proxy/ath-conformance`; the gateway appends them to `api_base`, so the recording API sees
   * `/v1/...` unchanged.
   */
  providerEntry(): Record<string, unknown> {
    return upstreamProviderEntry(this.asOrigin, this.apiOrigin);
  }

  /**
   * The part of a gateway config file the suite needs: the provider, the approval policy for the
   * suite's agents, and the plain-http agent host (`agentHostPort`, e.g. `127.0.0.1:7800`).
   */
  gatewayConfigFragment(agentHostPort: string): Record<string, unknown> {
    return gatewayConfigFragment({ asOrigin: this.asOrigin, apiOrigin: this.apiOrigin, agentHostPort });
  }

  private listen(
    port: number,
    handler: (req: http.IncomingMessage, res: http.ServerResponse, body: string) => void,
  ): Promise<http.Server> {
    const server = http.createServer((req, res) => {
      const chunks: Buffer[] = [];
      let size = 0;
      req.on('data', (c: Buffer) => {
        size += c.length;
        if (size <= 1 << 20) chunks.push(c);
      });
      req.on('end', () => handler(req, res, Buffer.concat(chunks).toString('utf8')));
    });
    server.on('connection', (s) => {
      this.sockets.add(s);
      s.on('close', () => this.sockets.delete(s));
    });
    return new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, this.host, () => resolve(server));
    });
  }

  private handleAs(req: http.IncomingMessage, res: http.ServerResponse, body: string): void {
    const url = new URL(req.url ?? '/', this.asOrigin);
    if (req.method === 'GET' && url.pathname === '/authorize') {
      this.authorizeRequests.push({ query: url.searchParams });
      const redirect = url.searchParams.get('redirect_uri');
      const state = url.searchParams.get('state');
      if (!redirect) return void res.writeHead(400, { 'content-type': 'text/plain' }).end('missing redirect_uri');
      const back = new URL(redirect);
      if (state !== null) back.searchParams.set('state', state);
      const choice = this.nextChoice;
      this.nextChoice = { decision: 'approve' };
      if (choice.decision === 'deny') {
        back.searchParams.set('error', 'access_denied');
      } else {
        const requested = (url.searchParams.get('scope') ?? '').split(' ').filter(Boolean);
        const code = randomBytes(24).toString('base64url');
        this.codes.set(code, {
          challenge: url.searchParams.get('code_challenge') ?? '',
          method: url.searchParams.get('code_challenge_method') ?? '',
          redirectUri: redirect,
          scopes: [...(choice.scopes ?? requested), ...(choice.extraScopes ?? [])],
          omitScope: choice.omitScope ?? false,
          failure: choice.upstreamFailure,
        });
        back.searchParams.set('code', code);
      }
      res.writeHead(302, { location: back.toString() }).end();
      return;
    }
    if (req.method === 'POST' && url.pathname === '/token') {
      const form = new URLSearchParams(body);
      const issued = this.codes.get(form.get('code') ?? '');
      this.codes.delete(form.get('code') ?? '');
      const verifier = form.get('code_verifier') ?? '';
      const pkceOk = !!issued && issued.method === 'S256' && sha256b64u(verifier) === issued.challenge;
      const { clientAuth, clientAuthOk } = this.checkClientAuth(req.headers.authorization, form);
      this.tokenRequests.push({ contentType: req.headers['content-type'], form, authorization: req.headers.authorization, pkceOk, clientAuth, clientAuthOk });
      const json = (status: number, value: unknown) =>
        res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store' }).end(JSON.stringify(value));
      if (issued?.failure === 'server_error') return void res.writeHead(500, { 'content-type': 'text/plain' }).end('boom');
      if (!issued || !pkceOk || issued.failure === 'invalid_grant' || form.get('redirect_uri') !== issued.redirectUri) {
        return void json(400, { error: 'invalid_grant' });
      }
      const accessToken = `up_at_${randomBytes(24).toString('base64url')}`;
      this.issuedTokens.set(accessToken, issued.scopes);
      return void json(200, {
        access_token: accessToken,
        token_type: 'Bearer',
        expires_in: 3600,
        refresh_token: `up_rt_${randomBytes(24).toString('base64url')}`,
        ...(issued.omitScope ? {} : { scope: issued.scopes.join(' ') }),
      });
    }
    res.writeHead(404, { 'content-type': 'text/plain' }).end('not found');
  }

  /** RFC 6749 §2.3.1: Basic with form-urlencoded id and secret, or client_id/client_secret in the body. */
  private checkClientAuth(authorization: string | undefined, form: URLSearchParams): Pick<TokenRecord, 'clientAuth' | 'clientAuthOk'> {
    const basic = /^Basic\s+([A-Za-z0-9+/=]+)\s*$/i.exec(authorization ?? '');
    if (basic) {
      const decoded = Buffer.from(basic[1]!, 'base64').toString('utf8');
      const colon = decoded.indexOf(':');
      const unform = (v: string) => {
        try {
          return decodeURIComponent(v.replace(/\+/g, ' '));
        } catch {
          return v;
        }
      };
      const id = unform(decoded.slice(0, Math.max(colon, 0)));
      const secret = unform(decoded.slice(colon + 1));
      return { clientAuth: 'basic', clientAuthOk: colon > 0 && id === this.clientId && secret === this.clientSecret };
    }
    if (form.has('client_secret')) {
      return { clientAuth: 'post', clientAuthOk: form.get('client_id') === this.clientId && form.get('client_secret') === this.clientSecret };
    }
    return { clientAuth: 'none', clientAuthOk: false };
  }

  private handleApi(req: http.IncomingMessage, res: http.ServerResponse, body: string): void {
    const rawPath = req.url ?? '/';
    this.apiRequests.push({ method: req.method ?? 'GET', rawPath, headers: req.headers, body });
    // Every answer carries x-upstream, so the suite can tell passed-through upstream errors (C-163) from
    // errors the gateway itself generates (C-200 applies only to the latter).
    if (rawPath.startsWith('/v1/status/404')) {
      return void res.writeHead(404, { 'content-type': 'application/json', 'x-upstream': 'ath-conformance' }).end('{"e":1}');
    }
    if (rawPath.startsWith('/v1/status/500')) {
      return void res.writeHead(500, { 'content-type': 'text/plain', 'x-upstream': 'ath-conformance' }).end('upstream broke');
    }
    res.writeHead(200, { 'content-type': 'application/json', 'x-upstream': 'ath-conformance' }).end(
      JSON.stringify({ method: req.method, path: rawPath, authorization: req.headers.authorization ?? null, bodyLength: body.length }),
    );
  }
}

/** The suite's provider in the athkit gateway config format (see {@link MockUpstream.providerEntry}). */
export function upstreamProviderEntry(asOrigin: string, apiOrigin: string): Record<string, unknown> {
  return {
    provider_id: UPSTREAM_PROVIDER_ID,
    display_name: 'ATH conformance upstream',
    available_scopes: UPSTREAM_SCOPES,
    agent_approval_required: true,
    oauth: {
      authorization_endpoint: `${asOrigin}/authorize`,
      token_endpoint: `${asOrigin}/token`,
      client_id: UPSTREAM_CLIENT_ID,
      client_secret_env: UPSTREAM_SECRET_ENV,
      token_endpoint_auth_method: 'client_secret_basic',
    },
    api_base: `${apiOrigin}/`,
    timeout_ms: 5000,
    scope_map: [
      { methods: ['GET', 'HEAD'], path: '/v1/items', scope: 'conf:read' },
      { methods: ['GET'], path: '/v1/me', scope: 'conf:read' },
      { methods: ['GET'], path: '/v1/status/{code}', scope: 'conf:read' },
      { methods: ['POST', 'PUT', 'PATCH', 'DELETE'], path: '/v1/items', scope: 'conf:write' },
    ],
  };
}

/**
 * Fixture `P2` (configured, offered in the catalog, never requested or approved for the suite's
 * agents), or with `open` the provider with `agent_approval_required: false` of C-059.
 */
export function upstreamP2Entry(asOrigin: string, apiOrigin: string, open = false): Record<string, unknown> {
  const id = open ? UPSTREAM_OPEN_PROVIDER_ID : UPSTREAM_P2_PROVIDER_ID;
  const scope = open ? 'conf-open:read' : 'conf-p2:read';
  return {
    provider_id: id,
    display_name: open ? 'ATH conformance open provider' : 'ATH conformance second provider',
    available_scopes: [scope],
    agent_approval_required: !open,
    oauth: {
      authorization_endpoint: `${asOrigin}/authorize`,
      token_endpoint: `${asOrigin}/token`,
      client_id: UPSTREAM_CLIENT_ID,
      client_secret_env: UPSTREAM_SECRET_ENV,
      token_endpoint_auth_method: 'client_secret_basic',
    },
    api_base: `${apiOrigin}/${open ? 'open' : 'p2'}/`,
    timeout_ms: 5000,
    scope_map: [{ methods: ['GET'], path: '/v1/items', scope }],
  };
}

/**
 * The keys of an athkit gateway config file the suite needs (merge them into the gateway's
 * config): `allowInsecureAgentHosts` (exactly the suite's agent host), `approval` (auto-approve
 * conf:read/conf:write, deny conf:admin) and the providers (the suite's, `P2`, and an
 * `agent_approval_required: false` one). Export `ATH_CONFORMANCE_UPSTREAM_SECRET`
 * with the same value for the gateway and the suite.
 */
export function gatewayConfigFragment(o: { asOrigin: string; apiOrigin: string; agentHostPort: string }): Record<string, unknown> {
  return {
    allowInsecureAgentHosts: [o.agentHostPort],
    approval: { autoApprove: UPSTREAM_AUTO_APPROVE, deny: UPSTREAM_DENY },
    providers: [upstreamProviderEntry(o.asOrigin, o.apiOrigin), upstreamP2Entry(o.asOrigin, o.apiOrigin), upstreamP2Entry(o.asOrigin, o.apiOrigin, true)],
  };
}
