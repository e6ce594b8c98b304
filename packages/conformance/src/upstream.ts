/**
 * Gateway full profile: the suite's own upstream provider — a mock OAuth authorization server
 * ("AS" of threats 3.0: PKCE S256 enforced, single-use codes, scripted consent, every token request
 * recorded) and a recording upstream API ("API": echoes what it received). Both listen on loopback.
 * `providerEntry()` is what the gateway under test must be configured with.
 */
import http from 'node:http';
import { createHash, randomBytes } from 'node:crypto';
import type { AddressInfo, Socket } from 'node:net';
import type { ConsentChoice } from './flow.js';

export const UPSTREAM_PROVIDER_ID = 'ath-conformance';
export const UPSTREAM_SCOPES = ['conf:read', 'conf:write', 'conf:admin'];

export interface AuthorizeRecord {
  query: URLSearchParams;
}
export interface TokenRecord {
  contentType: string | undefined;
  form: URLSearchParams;
  authorization: string | undefined;
  pkceOk: boolean;
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
  readonly clientId = 'ath-conformance-client';
  readonly clientSecret: string;
  private readonly codes = new Map<string, IssuedCode>();
  private as: http.Server | null = null;
  private api: http.Server | null = null;
  private readonly sockets = new Set<Socket>();
  asPort = 0;
  apiPort = 0;

  constructor(private readonly host = '127.0.0.1') {
    this.clientSecret = `ath-conformance-secret-${randomBytes(12).toString('base64url')}`;
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

  /** The provider entry the gateway must be configured with (printed by the CLI). */
  providerEntry(): Record<string, unknown> {
    return {
      provider_id: UPSTREAM_PROVIDER_ID,
      display_name: 'ATH conformance upstream',
      available_scopes: UPSTREAM_SCOPES,
      agent_approval_required: true,
      approval: { auto_approve: ['conf:read', 'conf:write'], deny: ['conf:admin'] },
      oauth: {
        authorization_endpoint: `${this.asOrigin}/authorize`,
        token_endpoint: `${this.asOrigin}/token`,
        client_id: this.clientId,
        client_secret: this.clientSecret,
        allow_insecure_http: true,
      },
      api_base: `${this.apiOrigin}/v1`,
      scope_map: [
        { method: 'GET', path: '/v1/items', scope: 'conf:read' },
        { method: 'GET', path: '/v1/me', scope: 'conf:read' },
        { method: 'GET', path: '/v1/status/*', scope: 'conf:read' },
        { method: 'POST', path: '/v1/items', scope: 'conf:write' },
        { method: 'PUT', path: '/v1/items', scope: 'conf:write' },
        { method: 'PATCH', path: '/v1/items', scope: 'conf:write' },
        { method: 'DELETE', path: '/v1/items', scope: 'conf:write' },
      ],
    };
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
      this.tokenRequests.push({ contentType: req.headers['content-type'], form, authorization: req.headers.authorization, pkceOk });
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

  private handleApi(req: http.IncomingMessage, res: http.ServerResponse, body: string): void {
    const rawPath = req.url ?? '/';
    this.apiRequests.push({ method: req.method ?? 'GET', rawPath, headers: req.headers, body });
    if (rawPath.startsWith('/v1/status/404')) {
      return void res.writeHead(404, { 'content-type': 'application/json' }).end('{"e":1}');
    }
    if (rawPath.startsWith('/v1/status/500')) return void res.writeHead(500, { 'content-type': 'text/plain' }).end('upstream broke');
    res.writeHead(200, { 'content-type': 'application/json', 'x-upstream': 'ath-conformance' }).end(
      JSON.stringify({ method: req.method, path: rawPath, authorization: req.headers.authorization ?? null, bodyLength: body.length }),
    );
  }
}
