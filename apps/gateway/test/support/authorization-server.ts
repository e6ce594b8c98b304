/**
 * A REAL upstream OAuth authorization server for tests (threats 3.0 "AS"): oidc-provider 9 on
 * 127.0.0.1, port 0. One confidential client, PKCE required (S256 only), resource indicators
 * (RFC 8707) with one API resource, RFC 9207 `iss` on every authorization response, rotating
 * refresh tokens, and a scripted interaction instead of login/consent pages: the test sets
 * `decision` to approve (as some account, optionally granting fewer scopes) or deny. Every
 * authorization and token request is recorded.
 */
import { generateKeyPairSync } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import Provider, { errors } from 'oidc-provider';

export type ConsentDecision = { kind: 'approve'; accountId: string; grantScopes?: readonly string[] } | { kind: 'deny' };

export interface TokenRequestRecord {
  grantType: string;
  contentType: string;
  authorization: string;
  params: Record<string, string>;
  status: number;
}

export interface AuthorizationServerOptions {
  /** The gateway's `<base>/ath/callback`. */
  redirectUri: string;
  /** API scopes the resource server offers (OIDC scopes openid/offline_access are always known). */
  scopes: readonly string[];
  /** Lifetime of API access tokens, seconds (default 60). */
  accessTokenTtl?: number;
  clientAuthMethod?: 'client_secret_basic' | 'client_secret_post';
}

export interface TestAuthorizationServer {
  issuer: string;
  clientId: string;
  clientSecret: string;
  /** The API resource indicator (also the default resource). */
  resource: string;
  decision: ConsentDecision;
  /** Query of every request that reached the authorization endpoint. */
  readonly authorizationRequests: URLSearchParams[];
  readonly tokenRequests: TokenRequestRecord[];
  /** Every access/refresh token value the AS issued (to scan responses for leaks). */
  readonly issuedTokens: string[];
  refreshRequests(): TokenRequestRecord[];
  close(): Promise<void>;
}

const OIDC_SCOPES = new Set(['openid', 'offline_access']);

export async function startAuthorizationServer(options: AuthorizationServerOptions): Promise<TestAuthorizationServer> {
  let handler: (req: IncomingMessage, res: ServerResponse) => void = (_req, res) => res.end();
  const server = createServer((req, res) => handler(req, res));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const issuer = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const resource = `${issuer}/api/`;
  const clientId = 'ath-gateway';
  const clientSecret = 'as-client-secret-' + Math.random().toString(36).slice(2);
  const apiScopes = [...options.scopes];
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });

  const state: TestAuthorizationServer = {
    issuer,
    clientId,
    clientSecret,
    resource,
    decision: { kind: 'approve', accountId: 'user-1' },
    authorizationRequests: [],
    tokenRequests: [],
    issuedTokens: [],
    refreshRequests: () => state.tokenRequests.filter((r) => r.grantType === 'refresh_token'),
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };

  const provider = new Provider(issuer, {
    clients: [
      {
        client_id: clientId,
        client_secret: clientSecret,
        redirect_uris: [options.redirectUri],
        grant_types: ['authorization_code', 'refresh_token'],
        response_types: ['code'],
        token_endpoint_auth_method: options.clientAuthMethod ?? 'client_secret_basic',
      },
    ],
    jwks: { keys: [{ ...privateKey.export({ format: 'jwk' }), alg: 'RS256', use: 'sig', kid: 'as-key-1' }] },
    cookies: { keys: ['test-cookie-key-1'] },
    scopes: ['openid', 'offline_access'],
    findAccount: (_ctx: unknown, id: string) => ({ accountId: id, claims: () => ({ sub: id }) }),
    pkce: { required: () => true },
    features: {
      devInteractions: { enabled: false },
      resourceIndicators: {
        enabled: true,
        defaultResource: () => resource,
        useGrantedResource: () => true,
        getResourceServerInfo: (_ctx: unknown, indicator: string) => {
          if (indicator !== resource) throw new errors.InvalidTarget();
          return {
            scope: apiScopes.join(' '),
            audience: resource,
            accessTokenTTL: options.accessTokenTtl ?? 60,
            accessTokenFormat: 'opaque',
          };
        },
      },
    },
    issueRefreshToken: (_ctx: unknown, client: { grantTypeAllowed(type: string): boolean }) => client.grantTypeAllowed('refresh_token'),
    rotateRefreshToken: () => true,
    ttl: { AccessToken: 60, AuthorizationCode: 60, RefreshToken: 86_400, Grant: 86_400, Interaction: 600, Session: 600, IdToken: 600 },
  });

  provider.use(async (ctx, next) => {
    if (ctx.path !== '/token') return next();
    const record: TokenRequestRecord = {
      grantType: '',
      contentType: ctx.get('content-type'),
      authorization: ctx.get('authorization'),
      params: {},
      status: 0,
    };
    await next();
    for (const [k, v] of Object.entries(ctx.oidc?.params ?? {})) if (typeof v === 'string') record.params[k] = v;
    record.grantType = record.params['grant_type'] ?? '';
    record.status = ctx.status;
    const body = ctx.body as { access_token?: unknown; refresh_token?: unknown } | undefined;
    for (const t of [body?.access_token, body?.refresh_token]) if (typeof t === 'string') state.issuedTokens.push(t);
    state.tokenRequests.push(record);
  });

  const oidc = provider.callback();
  handler = (req, res) => {
    const url = new URL(req.url ?? '/', issuer);
    if (url.pathname === '/auth') state.authorizationRequests.push(url.searchParams);
    if (url.pathname.startsWith('/interaction/')) {
      interact(provider, state, resource, req, res).catch((err: unknown) => {
        res.statusCode = 500;
        res.end(String(err));
      });
      return;
    }
    oidc(req, res);
  };
  return state;
}

/** The scripted user: logs in as `decision.accountId` and consents (to all or some scopes), or denies. */
async function interact(
  provider: Provider,
  state: TestAuthorizationServer,
  resource: string,
  req: IncomingMessage,
  res: ServerResponse,
): Promise<void> {
  const details = await provider.interactionDetails(req, res);
  const decision = state.decision;
  if (decision.kind === 'deny') {
    await provider.interactionFinished(req, res, { error: 'access_denied', error_description: 'The user denied access' }, {
      mergeWithLastSubmission: false,
    });
    return;
  }
  const scope = details.params['scope'];
  const requested = (typeof scope === 'string' ? scope : '')
    .split(' ')
    .filter(Boolean);
  const target = typeof details.params['resource'] === 'string' ? details.params['resource'] : resource;
  const grant = new provider.Grant({ accountId: decision.accountId, clientId: String(details.params['client_id']) });
  const oidcScopes = requested.filter((s) => OIDC_SCOPES.has(s));
  if (oidcScopes.length) grant.addOIDCScope(oidcScopes.join(' '));
  const api = requested.filter((s) => !OIDC_SCOPES.has(s));
  const granted = api.filter((s) => !decision.grantScopes || decision.grantScopes.includes(s));
  const rejected = api.filter((s) => !granted.includes(s));
  if (granted.length) grant.addResourceScope(target, granted.join(' '));
  if (rejected.length) grant.rejectResourceScope(target, rejected.join(' '));
  const grantId = await grant.save();
  await provider.interactionFinished(req, res, { login: { accountId: decision.accountId }, consent: { grantId } }, {
    mergeWithLastSubmission: false,
  });
}

/**
 * A minimal browser: follows redirects from `url` with a cookie jar until a Location starts with
 * `stopAt` (the gateway callback), which it returns without requesting it.
 */
export async function followToCallback(url: string, stopAt: string, jar = new Map<string, string>()): Promise<URL> {
  let current = url;
  for (let hop = 0; hop < 12; hop++) {
    if (current.startsWith(stopAt)) return new URL(current);
    const cookie = [...jar].map(([k, v]) => `${k}=${v}`).join('; ');
    const res = await fetch(current, { redirect: 'manual', headers: cookie ? { cookie } : {}, signal: AbortSignal.timeout(5000) });
    for (const line of res.headers.getSetCookie()) {
      const [pair = '', ...attrs] = line.split(';');
      const eq = pair.indexOf('=');
      const name = pair.slice(0, eq).trim();
      const value = pair.slice(eq + 1).trim();
      const expired = attrs.some((a) => /^\s*max-age=0\s*$/i.test(a) || /^\s*expires=Thu, 01 Jan 1970/i.test(a));
      if (expired || value === '') jar.delete(name);
      else jar.set(name, value);
    }
    const body = await res.text();
    const location = res.headers.get('location');
    if (!location) throw new Error(`browser: no redirect from ${current} (HTTP ${res.status}): ${body.slice(0, 200)}`);
    current = new URL(location, current).toString();
  }
  throw new Error('browser: too many redirects');
}
