import http from 'node:http';
import type { AddressInfo } from 'node:net';
import Fastify, { type FastifyBaseLogger, type FastifyInstance, type FastifyServerOptions } from 'fastify';
import type Provider from 'oidc-provider';
import { createAuthServer, registerInteractions } from './auth-server.js';
import { createTokenVerifier, registerMailApi, type VerifyResult } from './mail-api.js';
import { MailStore } from './mailbox.js';

export interface MailServiceOptions {
  /** Port of the authorization server (the issuer). 0 or absent: any free port. */
  port?: number;
  /** Port of the mail API. 0 or absent: any free port. */
  apiPort?: number;
  /** Interface both listeners bind to; also the host of the issuer and API URLs unless overridden. */
  host?: string;
  /** The gateway's redirect URIs (`<gatewayBase>/ath/callback`); exact match, at least one. */
  gatewayRedirectUris: readonly string[];
  clientId: string;
  clientSecret: string;
  /** Shown on the login and consent pages. Default "ATH Gateway". */
  clientName?: string;
  /** How the client authenticates at the token endpoint. Default `client_secret_basic`. */
  tokenEndpointAuthMethod?: 'client_secret_basic' | 'client_secret_post';
  /** Access-token lifetime. Default 600 s. */
  accessTokenTtlSeconds?: number;
  /** Refresh-token (and grant) lifetime. Default 14 days. */
  refreshTokenTtlSeconds?: number;
  /** Public issuer URL when it differs from `http://<host>:<port>` (behind a proxy). */
  issuer?: string;
  /** Public API base URL when it differs from `http://<host>:<apiPort>`. */
  apiBase?: string;
  /** A pino (or compatible) logger; absent: no logging. Never receives tokens, codes or passwords. */
  logger?: FastifyBaseLogger;
}

export interface MailService {
  /** The authorization server's issuer identifier, e.g. `http://127.0.0.1:9000`. */
  readonly issuer: string;
  /** Base URL of the mail API (routes are `<apiBase>/v1/...`), no trailing slash. */
  readonly apiBase: string;
  /** RFC 8707 resource indicator of the mail API; the `aud` of its access tokens. */
  readonly resource: string;
  /** The client the service accepts (the gateway), for display. The secret is not repeated here. */
  readonly clientId: string;
  close(): Promise<void>;
}

const DEFAULT_ACCESS_TOKEN_TTL = 600;
const DEFAULT_REFRESH_TOKEN_TTL = 14 * 24 * 3600;

function fastifyOptions(logger: FastifyBaseLogger | undefined, component: string): FastifyServerOptions {
  return {
    ...(logger ? { loggerInstance: logger.child({ component }) } : { logger: false }),
    trustProxy: false,
    bodyLimit: 64 * 1024,
    forceCloseConnections: true,
    return503OnClosing: true,
  };
}

function validate(options: MailServiceOptions): void {
  if (!options.clientId) throw new TypeError('clientId is required');
  if (!options.clientSecret) throw new TypeError('clientSecret is required');
  if (!options.gatewayRedirectUris.length) throw new TypeError('gatewayRedirectUris needs at least one URI');
  for (const uri of options.gatewayRedirectUris) {
    const url = URL.parse(uri);
    if (!url || !/^https?:$/.test(url.protocol) || url.hash)
      throw new TypeError(`invalid redirect URI: ${uri}`);
  }
  const ttl = options.accessTokenTtlSeconds;
  if (ttl !== undefined && (!Number.isInteger(ttl) || ttl < 1))
    throw new TypeError('accessTokenTtlSeconds must be a positive integer');
}

const urlHost = (host: string) => (host.includes(':') ? `[${host}]` : host);
const trimSlash = (url: string) => url.replace(/\/+$/, '');

/**
 * Starts Example Mail: its authorization server (oidc-provider, at the issuer's root) and its mail API
 * (`/v1/...`) on two listeners, like `accounts.mail.example` and `api.mail.example` would be.
 */
export async function createMailService(options: MailServiceOptions): Promise<MailService> {
  validate(options);
  const host = options.host ?? '127.0.0.1';
  const logger = options.logger;

  // Both listeners start first: the issuer and the resource URL contain the ports they got.
  let provider: Provider | undefined;
  let providerCallback: ((req: http.IncomingMessage, res: http.ServerResponse) => void) | undefined;
  let verify: ((token: string) => Promise<VerifyResult>) | undefined;

  const asApp: FastifyInstance = Fastify({
    ...fastifyOptions(logger, 'authorization-server'),
    // oidc-provider is a Koa app: everything but the login/consent pages (and `/`) goes to it.
    serverFactory: (handler) =>
      http.createServer((req, res) => {
        const path = (req.url ?? '/').split('?')[0] ?? '/';
        if (path === '/' || path.startsWith('/interaction/')) handler(req, res);
        else if (providerCallback) providerCallback(req, res);
        else {
          res.statusCode = 503;
          res.end();
        }
      }),
  });
  const apiApp: FastifyInstance = Fastify(fastifyOptions(logger, 'mail-api'));

  const getProvider = () => {
    if (!provider) throw new Error('authorization server not ready');
    return provider;
  };
  const getVerifier = () => {
    if (!verify) throw new Error('mail API not ready');
    return verify;
  };

  const redirectUris = [...options.gatewayRedirectUris];
  const store = new MailStore();
  registerInteractions(asApp, getProvider, { redirectUris });
  registerMailApi(apiApp, { store, verify: getVerifier });

  let authStore: { close(): void } | undefined;
  try {
    await asApp.listen({ port: options.port ?? 0, host });
    await apiApp.listen({ port: options.apiPort ?? 0, host });
    const asPort = (asApp.server.address() as AddressInfo).port;
    const apiPort = (apiApp.server.address() as AddressInfo).port;
    const issuer = trimSlash(options.issuer ?? `http://${urlHost(host)}:${asPort}`);
    const apiBase = trimSlash(options.apiBase ?? `http://${urlHost(host)}:${apiPort}`);
    const resource = new URL(`${apiBase}/`).href;

    const accessTokenTtlSeconds = options.accessTokenTtlSeconds ?? DEFAULT_ACCESS_TOKEN_TTL;
    const auth = await createAuthServer({
      issuer,
      resource,
      clientId: options.clientId,
      clientSecret: options.clientSecret,
      clientName: options.clientName ?? 'ATH Gateway',
      redirectUris,
      tokenEndpointAuthMethod: options.tokenEndpointAuthMethod ?? 'client_secret_basic',
      accessTokenTtlSeconds,
      refreshTokenTtlSeconds: options.refreshTokenTtlSeconds ?? DEFAULT_REFRESH_TOKEN_TTL,
      logger: logger?.child({ component: 'oidc-provider' }),
    });
    provider = auth.provider;
    authStore = auth.store;
    providerCallback = provider.callback();
    // The API is a separate party: it learns the AS's keys from its JWKS endpoint over HTTP.
    verify = createTokenVerifier({ issuer, resource, jwksUri: `${issuer}/jwks` });

    let closed: Promise<void> | undefined;
    return {
      issuer,
      apiBase,
      resource,
      clientId: options.clientId,
      close() {
        closed ??= Promise.all([asApp.close(), apiApp.close()]).then(() => authStore?.close());
        return closed;
      },
    };
  } catch (err) {
    await Promise.allSettled([asApp.close(), apiApp.close()]);
    authStore?.close();
    throw err;
  }
}
