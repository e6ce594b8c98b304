import { createServer, STATUS_CODES, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { Readable, Transform, type Duplex, type TransformCallback } from 'node:stream';
import {
  AthEngine,
  AthError,
  AthUnavailableError,
  bindingCookieName,
  gatewayDiscovery,
  systemClock,
  Vault,
  type AuditRecord,
  type Clock,
  type DocumentFetcher,
  type RandomSource,
  type RevocationCaller,
  type Store,
} from '@athkit/core';
import {
  accessRequest,
  athEndpoints,
  athHeaders,
  engineRateLimits,
  GATEWAY_CONTINUE_PATH,
  HSTS,
  onlyValue,
  replyAthError,
  sendAthError,
  sendCompletionPage,
  sendGatewayConsentPage,
  wellKnownDocument,
  type BrowserKit,
} from '@athkit/fastify';
import { openStore } from '@athkit/storage';
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import { adminRoutes, adminAuthenticator } from './admin.js';
import { splitProxyUrl, buildUpstreamTarget, type UpstreamTarget } from './canonical-path.js';
import { ProviderRegistry, type LiveProvider } from './catalog.js';
import { toApprovalPolicy, type GatewayConfig } from './config.js';
import { OAuthBridge } from './oauth-bridge.js';
import { ClientGone } from './client-gone.js';
import { createLogger, GatewayMetrics, safeUrl } from './observability.js';
import { UpstreamProxy, type ProxyResponse } from './proxy.js';

export interface GatewayOptions {
  /** An open store; default: `openStore(config.storage)` (closed again by {@link Gateway.close}). */
  store?: Store;
  /** A pino logger; default: one at `config.logLevel` on stdout, with redaction. */
  logger?: Logger;
  clock?: Clock;
  random?: RandomSource;
  /** Identity-document fetching (tests); default: the SSRF-safe fetcher with `allowInsecureAgentHosts`. */
  identity?: { fetcher?: DocumentFetcher; cacheTtlMs?: number };
  /** fetch used for the upstream authorization servers (default global fetch). */
  fetch?: typeof fetch;
  /** Environment for provider secrets added through the admin API (default process.env). */
  env?: Readonly<Record<string, string | undefined>>;
  /** Node process metrics in /metrics (default true). */
  defaultMetrics?: boolean;
  /** Receives every audit event too (tests). */
  auditSink?: (event: AuditRecord) => void;
  /** The proxy's upstream timeouts (default: provider timeout_ms; body idle 30 s). */
  upstreamBodyTimeoutMs?: number;
}

export interface Gateway {
  readonly app: FastifyInstance;
  readonly engine: AthEngine;
  readonly store: Store;
  readonly bridge: OAuthBridge;
  readonly proxy: UpstreamProxy;
  readonly providers: ProviderRegistry;
  readonly metrics: GatewayMetrics;
  readonly config: GatewayConfig;
  readonly logger: Logger;
  /** Listens on `config.listen` (or the given port/host); returns the bound origin (http://host:port). */
  listen(options?: { port?: number; host?: string }): Promise<string>;
  /** Graceful stop (SIGTERM): new proxied calls get 503, in-flight ones finish (up to `limits.drainMs`), then close. */
  shutdown(): Promise<void>;
  close(): Promise<void>;
}

const PROXY_PREFIX = '/ath/proxy/';
/** The proxy's route as fastify names it (metrics label). */
const PROXY_ROUTE = '/ath/proxy/*';

/** What the proxy fast path knows from a request URL alone (see fastRoutes in createGateway). */
interface FastRoute {
  providerId: string;
  provider: LiveProvider;
  requiredScope: string | null;
  target: UpstreamTarget;
}
const MAX_FAST_ROUTES = 4096;
const MAX_FAST_ROUTE_URL = 1024;

/**
 * What the proxy fast path hands to the fastify route when it cannot answer itself. `startedAt`
 * (performance.now()) is when the fast path took the call: its duration counts from there.
 */
type Handoff = { startedAt: number } & ({ kind: 'error'; error: unknown } | { kind: 'response'; response: ProxyResponse });
const HANDOFF = Symbol('ath.proxyHandoff');
type HandoffCarrier = IncomingMessage & { [HANDOFF]?: Handoff };

/** Counts body bytes and fails the stream with 413 past `limit` (chunked bodies have no Content-Length to check first). */
class BodyLimit extends Transform {
  private seen = 0;
  constructor(private readonly limit: number) {
    super();
  }
  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.seen += chunk.length;
    if (this.seen > this.limit) callback(new AthError('PAYLOAD_TOO_LARGE', 'Request body is too large'));
    else callback(null, chunk);
  }
}

function hasRequestBody(request: FastifyRequest): boolean {
  const h = request.headers;
  if (h['transfer-encoding'] !== undefined) return true;
  const length = h['content-length'];
  return length !== undefined && length !== '0';
}

/**
 * Node's 'clientError' (the request could not be read: parse error, header overflow, or a slow
 * client past `limits.headersTimeoutMs` / `requestTimeoutMs`): an ATHError body instead of fastify's
 * own shape, then the connection is closed. Nothing of the request is logged or echoed (Node's
 * parse errors carry the raw bytes in `err.rawPacket`).
 */
function clientError(err: NodeJS.ErrnoException, socket: Duplex): void {
  if (err.code === 'ECONNRESET' || socket.destroyed) return;
  // As Node's own handler: never write into a response that has already started on this socket.
  const inFlight = (socket as Duplex & { _httpMessage?: ServerResponse | null })._httpMessage;
  if (socket.writable && !inFlight?.headersSent) {
    const [status, reason, message] =
      err.code === 'ERR_HTTP_REQUEST_TIMEOUT'
        ? [408, 'request_timeout', 'The request was not received in time']
        : err.code === 'HPE_HEADER_OVERFLOW'
          ? [431, 'header_overflow', 'Request headers are too large']
          : [400, 'malformed', 'Malformed request'];
    const body = JSON.stringify(new AthError('INVALID_REQUEST', message, { reason }));
    socket.write(
      `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\n` +
        `Content-Type: application/json; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\n` +
        `Cache-Control: no-store\r\nPragma: no-cache\r\nX-Content-Type-Options: nosniff\r\n` +
        `Strict-Transport-Security: ${HSTS}\r\nConnection: close\r\n\r\n${body}`,
    );
  }
  socket.destroy();
}

/** Draining (threats I7): the same 503 INTERNAL_ERROR + Retry-After as an unreachable store (I3), and the connection closes. */
function sendUnavailable(reply: FastifyReply): FastifyReply {
  reply.header('connection', 'close');
  return replyAthError(reply, new AthUnavailableError('The gateway is shutting down; retry on another instance'));
}

/**
 * Assembles the reference ATH gateway on fastify 5: the ATH endpoints (shared with @athkit/fastify),
 * the gateway consent interstitial and OAuth callback, the proxy, the admin API, health and metrics.
 * Every protocol decision is @athkit/core's; this is glue.
 */
export async function createGateway(config: GatewayConfig, options: GatewayOptions = {}): Promise<Gateway> {
  const logger = options.logger ?? createLogger(config.logLevel);
  const clock = options.clock ?? systemClock;
  const ownsStore = !options.store;
  const store = options.store ?? (await openStore(config.storage.reveal()));
  const metrics = new GatewayMetrics({ defaultMetrics: options.defaultMetrics ?? true });
  const env = options.env ?? process.env;
  let registry: ProviderRegistry;
  try {
    registry = await ProviderRegistry.open(config.providers, { file: config.providersFile, env, dev: config.dev });
  } catch (err) {
    if (ownsStore) await store.close();
    throw err;
  }

  const engine = new AthEngine({
    store,
    baseUrl: config.publicUrl,
    providers: registry,
    policy: toApprovalPolicy(config),
    tokenTtlSeconds: config.tokenTtlSeconds,
    sessionTtlSeconds: config.sessionTtlSeconds,
    // secrets.cookieKey keys the browser-binding cookie's digest on the session (threats D3).
    bindingKey: Buffer.from(config.secrets.cookieKey.reveal(), 'base64url'),
    identity: { allowInsecure: config.allowInsecureAgentHosts, ...(options.identity ?? {}) },
    clock,
    ...(options.random ? { random: options.random } : {}),
    rateLimits: engineRateLimits({
      ...(config.rateLimits.perIp ? { perIp: config.rateLimits.perIp } : {}),
      ...(config.rateLimits.perAgent ? { perAgent: config.rateLimits.perAgent } : {}),
    }),
    auditSink: (event) => {
      logger.info({ audit: event }, `audit ${event.event}`);
      options.auditSink?.(event);
    },
  });
  const bridge = new OAuthBridge({
    store,
    vault: await Vault.create(config.secrets.vaultKey.reveal()),
    baseUrl: config.publicUrl,
    providers: (id) => registry.live(id)?.config,
    clock,
    ...(options.random ? { random: options.random } : {}),
    ...(options.fetch ? { fetch: options.fetch } : {}),
    onWarning: (message) => logger.warn(message),
  });
  registry.onChange((id) => bridge.forget(id));
  const proxy = new UpstreamProxy({ tokens: bridge, ...(options.upstreamBodyTimeoutMs ? { bodyTimeoutMs: options.upstreamBodyTimeoutMs } : {}) });
  const cookieSecure = new URL(config.publicUrl).protocol === 'https:';

  // The proxy fast path (set below): bodiless GETs under /ath/proxy/ that the caches alone allow
  // skip fastify's routing and hooks; everything else (and every error) goes through fastify.
  let fastProxy: (req: IncomingMessage, res: ServerResponse) => boolean = () => false;
  const fastifyLogger: FastifyBaseLogger = logger;
  const app = Fastify({
    // fastify's own HTTP/1 server set-up (lib/server.js), with the fast path in front of its handler.
    serverFactory: (handler, options): Server => {
      // fastify passes its options with the defaults filled in.
      const opts = options as unknown as { keepAliveTimeout: number; connectionTimeout: number; maxRequestsPerSocket: number };
      const { requestTimeoutMs, headersTimeoutMs } = config.limits;
      const server = createServer(
        {
          // Slow clients (threats F12): headers, then the whole request (body included), must arrive
          // in time, or Node fails the connection with ERR_HTTP_REQUEST_TIMEOUT → clientError → 408.
          // Node checks the deadlines every connectionsCheckingInterval (default 30 s, too coarse).
          requestTimeout: requestTimeoutMs,
          headersTimeout: headersTimeoutMs,
          connectionsCheckingInterval: Math.max(250, Math.min(5000, Math.floor(headersTimeoutMs / 4))),
        },
        (req, res) => {
          if (!fastProxy(req, res)) handler(req, res);
        },
      );
      server.keepAliveTimeout = opts.keepAliveTimeout;
      server.setTimeout(opts.connectionTimeout);
      if (opts.maxRequestsPerSocket > 0) server.maxRequestsPerSocket = opts.maxRequestsPerSocket;
      return server;
    },
    loggerInstance: fastifyLogger,
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: config.limits.athBodyBytes,
    trustProxy: false,
    return503OnClosing: true,
    routerOptions: { maxParamLength: 2048 },
    requestTimeout: config.limits.requestTimeoutMs,
    clientErrorHandler: clientError,
    frameworkErrors: (err, request, reply) => {
      void sendAthError(request, reply, new AthError('INVALID_REQUEST', 'Malformed request', { reason: err.code === 'FST_ERR_BAD_URL' ? 'bad_url' : 'malformed' }));
    },
  });
  app.setErrorHandler((err, request, reply) => sendAthError(request, reply, err));
  app.setNotFoundHandler((request, reply) => sendAthError(request, reply, new AthError('NOT_FOUND', 'Not found')));

  // HSTS on every response (C-212); no CORS headers anywhere (C-222).
  app.addHook('onRequest', (_request, reply, done) => {
    reply.header('strict-transport-security', HSTS);
    done();
  });
  app.addHook('onResponse', (request, reply, done) => {
    const route = request.routeOptions.url ?? 'unmatched';
    // A call the proxy fast path handed over started before fastify saw it.
    const handedOver = (request.raw as HandoffCarrier)[HANDOFF];
    const ms = handedOver ? performance.now() - handedOver.startedAt : reply.elapsedTime;
    metrics.countRequest(route, request.method, reply.statusCode, ms / 1000);
    if (logger.isLevelEnabled('debug') || reply.statusCode >= 500) {
      logger[reply.statusCode >= 500 ? 'warn' : 'debug'](
        { method: request.method, url: safeUrl(request.raw.url), status: reply.statusCode, ms: Math.round(ms * 100) / 100 },
        'request',
      );
    }
    done();
  });

  // --- handshake outcome metrics: step by route ---------------------------------------------
  const STEP_BY_ROUTE: Record<string, string> = {
    '/ath/agents/register': 'register',
    '/ath/authorize': 'authorize',
    '/ath/authorize/start': 'launch',
    [GATEWAY_CONTINUE_PATH]: 'continue',
    '/ath/callback': 'callback',
    '/ath/token': 'token',
    '/ath/revoke': 'revoke',
  };
  app.addHook('onSend', (request, reply, payload, done) => {
    const step = STEP_BY_ROUTE[request.routeOptions.url ?? ''];
    if (step && request.method !== 'HEAD') {
      let outcome = 'ok';
      if (reply.statusCode >= 400 && typeof payload === 'string') {
        try {
          const code = (JSON.parse(payload) as { code?: unknown }).code;
          outcome = typeof code === 'string' ? code : String(reply.statusCode);
        } catch {
          outcome = String(reply.statusCode);
        }
      }
      metrics.handshakes.inc({ step, outcome });
    }
    done(null, payload);
  });

  const isAdmin = adminAuthenticator(config.secrets.adminKey);

  // --- discovery ---------------------------------------------------------------------------
  await app.register(wellKnownDocument('/.well-known/ath.json', () => gatewayDiscovery(config.publicUrl, config.gatewayId, registry)));

  // --- ATH endpoints (shared with @athkit/fastify) + the gateway's browser steps --------------
  const browserRoutes = (_instance: FastifyInstance, kit: BrowserKit): void => {
    const providerName = (providerId: string) => registry.get(providerId)?.display_name ?? providerId;
    const remaining = (expiresAt: number) => Math.max(1, Math.ceil((expiresAt - kit.now()) / 1000));

    // authorization_url: binds this browser, then the interstitial naming the agent (threats D10).
    kit.endpoint('GET', '/authorize/start', async (request, reply) => {
      const query = new URL(request.url, 'http://localhost').searchParams;
      const state = query.get('state');
      const launch = await engine.launch(query, await kit.bindingCookies(request, state));
      const upstream = await bridge.authorizationUrl(launch);
      if (launch.setBinding) kit.setCookie(reply, launch.cookieName, launch.setBinding, remaining(launch.session.expiresAt));
      const redirect = launch.session.userRedirectUri;
      return sendGatewayConsentPage(reply, {
        gatewayName: 'ATH Gateway',
        state: state!,
        consent: launch.consent,
        upstreamOrigin: new URL(upstream).origin,
        redirectOrigin: redirect ? new URL(redirect).origin : null,
      });
    });

    // The interstitial's form: only the bound browser, only from our origin; then PKCE + state + resource upstream.
    kit.endpoint(
      'POST',
      GATEWAY_CONTINUE_PATH.slice(4),
      async (request, reply) => {
        const form = request.body instanceof URLSearchParams ? request.body : new URLSearchParams();
        kit.checkOrigin(request);
        const state = onlyValue(form, 'state');
        const decision = kit.decision(form);
        const cookies = await kit.bindingCookies(request, state);
        const session = await engine.openCallback(state, cookies);
        if (decision === 'approve') {
          const launch = await engine.launch(new URLSearchParams({ state: state! }), cookies);
          athHeaders(reply);
          return reply.redirect(await bridge.authorizationUrl(launch), 303);
        }
        const result = await engine.completeConsent(session, { kind: 'denied' });
        kit.setCookie(reply, await bindingCookieName(state!), '', 0);
        if (result.kind === 'redirect') {
          athHeaders(reply);
          return reply.redirect(result.location, 303);
        }
        return sendCompletionPage(reply, 'denied', providerName(session.providerId));
      },
      'form',
    );

    // The upstream AS's redirect: state + cookie, iss check, code exchange (OAuthBridge), consent recorded once.
    kit.endpoint('GET', '/callback', async (request, reply) => {
      const query = new URL(request.url, 'http://localhost').searchParams;
      const state = query.get('state');
      const cookies = await kit.bindingCookies(request, state);
      const result = await bridge.handleCallback(engine, query, cookies);
      kit.setCookie(reply, await bindingCookieName(state!), '', 0);
      if (result.kind === 'redirect') {
        athHeaders(reply);
        return reply.redirect(result.location, 302);
      }
      return sendCompletionPage(reply, result.outcome === 'granted' ? 'granted' : 'denied', providerName(result.session.providerId));
    });
  };

  await app.register(
    athEndpoints(engine, {
      baseUrl: config.publicUrl,
      bodyLimit: config.limits.athBodyBytes,
      cookieSecure,
      clock,
      revocationCaller: (request): Promise<RevocationCaller> =>
        Promise.resolve(isAdmin(request.headers.authorization) ? { kind: 'admin', actor: 'admin-key' } : { kind: 'agent' }),
      browserRoutes,
    }),
    { prefix: '/ath' },
  );

  // --- proxy ----------------------------------------------------------------------------------
  let draining = false;
  let inflight = 0;
  metrics.inflightFrom(() => inflight); // read when /metrics is scraped, not set per call
  let drained: (() => void) | null = null;
  const finishOne = () => {
    inflight--;
    if (inflight === 0 && drained) drained();
  };

  await app.register(
    (instance, _opts, done) => {
      // Bodies are never parsed here: the raw stream goes upstream as is.
      instance.removeAllContentTypeParsers();
      instance.addContentTypeParser('*', (_request, payload, next) => next(null, payload));
      instance.setErrorHandler((err, request, reply) => sendAthError(request, reply, err));
      // A client that goes away mid-body makes Node emit 'error' on the request stream; the upstream
      // request is aborted through its own signal, so the error itself needs no further handling.
      instance.addHook('onRequest', (request, _reply, next) => {
        request.raw.on('error', () => undefined);
        next();
      });
      instance.route({
        method: instance.supportedMethods.filter((m) => m !== 'CONNECT'),
        url: '/*',
        exposeHeadRoute: false,
        handler: async (request, reply) => {
          const handoff = (request.raw as HandoffCarrier)[HANDOFF];
          if (handoff) {
            // The fast path forwarded this call already (its in-flight count and metrics are done).
            if (handoff.kind === 'error') throw handoff.error;
            reply.code(handoff.response.status);
            for (const [name, value] of Object.entries(handoff.response.headers)) reply.header(name, value);
            return reply.send(handoff.response.body);
          }
          if (draining) return sendUnavailable(reply);
          const { providerId, target } = splitProxyUrl(request.raw.url ?? '', PROXY_PREFIX);
          const provider = registry.live(providerId);
          if (!provider) {
            // C-156/C-166: the token and agent are checked before the provider, so a valid token on
            // an unknown provider is 403 PROVIDER_MISMATCH (and a bad token or agent header is its own
            // error), never a 404 that would tell an unauthenticated caller which providers exist.
            await engine.validateAccess(accessRequest(request, providerId, null));
            throw new AthError('NOT_FOUND', 'Not found'); // only for a token bound to a provider since removed
          }
          const length = request.headers['content-length'];
          if (length !== undefined && Number(length) > config.limits.proxyBodyBytes) {
            reply.header('connection', 'close');
            throw new AthError('PAYLOAD_TOO_LARGE', 'Request body is too large');
          }
          const te = request.headers['transfer-encoding'];
          if (te !== undefined && te.trim().toLowerCase() !== 'chunked') {
            // RFC 9112 §6.1: only `chunked` framing is accepted; anything else could be read differently upstream (F7).
            reply.header('connection', 'close');
            throw new AthError('INVALID_REQUEST', 'Unsupported Transfer-Encoding', { reason: 'transfer_encoding' });
          }
          // token → agent → provider → scope (C-166), all in core.
          const grant = await engine.validateAccess(accessRequest(request, providerId, provider.scopeMap.requiredScope(request.method, target)));
          await engine.enforceRateLimit('api', `agent:${grant.clientId}`);
          const upstreamTarget = buildUpstreamTarget(provider.apiBase, target);

          let body: Readable | null = null;
          if (hasRequestBody(request)) {
            const source = request.body instanceof Readable ? request.body : request.raw;
            const limited = new BodyLimit(config.limits.proxyBodyBytes);
            source.on('error', (err) => limited.destroy(err));
            limited.on('error', () => undefined); // surfaced by undici as a failed upstream request
            body = source.pipe(limited);
          }
          const abort = new ClientGone();
          inflight++;
          let finished = false;
          const finish = () => {
            if (finished) return;
            finished = true;
            finishOne();
          };
          reply.raw.on('close', () => {
            if (!reply.raw.writableFinished) abort.abort();
            finish();
          });
          try {
            const out = await proxy.forward({
              grant,
              target: upstreamTarget,
              method: request.method,
              headers: request.headers,
              body,
              signal: abort,
              timeoutMs: provider.config.timeout_ms,
            });
            metrics.countUpstream(providerId, out.status);
            reply.code(out.status);
            for (const [name, value] of Object.entries(out.headers)) reply.header(name, value);
            return reply.send(out.body);
          } catch (err) {
            if (abort.aborted) return reply; // the agent went away: nothing to answer, nothing to log
            const athErr = err instanceof AthError ? err : null;
            metrics.countUpstream(providerId, athErr?.code ?? 'error');
            if (athErr?.code === 'PAYLOAD_TOO_LARGE') reply.header('connection', 'close');
            throw err;
          }
        },
      });
      done();
    },
    { prefix: '/ath/proxy' },
  );

  // --- proxy fast path -------------------------------------------------------------------------
  // The same checks as the route above, for the common case only: a GET without a body whose
  // token, scope and upstream token are all in the in-memory caches (engine.peekAccess,
  // bridge.peekUpstreamAccessToken), the per-agent rate limit (if any) admits it from units this
  // instance holds (engine.takeHeldRateLimit, no store write), and no debug logging. Anything else
  // returns false before any side effect, and fastify handles the request from the start. Once
  // the upstream call is made, an error or a body-less status (204/304) is handed to the fastify
  // route (HANDOFF) so error shapes, headers, logs and metrics stay the same.
  const handOff = (req: IncomingMessage, res: ServerResponse, value: Handoff) => {
    (req as HandoffCarrier)[HANDOFF] = value;
    app.routing(req, res);
  };
  // Per raw proxy URL, what the fast path needs from it: provider, the scope a GET needs and the
  // upstream target. Pure functions of the URL and the provider's config, so they are computed once;
  // emptied when any provider changes, bounded, and only filled by calls that passed the token
  // checks (so callers without a token cannot churn it).
  const fastRoutes = new Map<string, FastRoute>();
  registry.onChange(() => fastRoutes.clear());
  const routeOf = (url: string): FastRoute | undefined => {
    try {
      const { providerId, target } = splitProxyUrl(url, PROXY_PREFIX);
      const provider = registry.live(providerId);
      if (!provider) return undefined;
      return {
        providerId,
        provider,
        requiredScope: provider.scopeMap.requiredScope('GET', target),
        target: buildUpstreamTarget(provider.apiBase, target),
      };
    } catch {
      return undefined;
    }
  };
  const rememberRoute = (url: string, route: FastRoute) => {
    if (url.length > MAX_FAST_ROUTE_URL) return;
    if (fastRoutes.size >= MAX_FAST_ROUTES) fastRoutes.clear();
    fastRoutes.set(url, route);
  };
  const rateLimited = engine.isRateLimited('api');
  // Body-less statuses go through fastify, which applies its rules for them.
  const writesThrough = (status: number) => status !== 204 && status !== 304;
  // Upstream failed mid-body: the agent sees a cut response (as fastify's stream sending does).
  const bodyFailed = (bodyErr: Error) => logger.warn({ err: bodyErr }, 'upstream response body failed');
  fastProxy = (req, res) => {
    if (draining || req.method !== 'GET') return false;
    const url = req.url;
    if (url === undefined || !url.startsWith(PROXY_PREFIX)) return false;
    const headers = req.headers;
    if (headers['content-length'] !== undefined || headers['transfer-encoding'] !== undefined) return false;
    if (logger.isLevelEnabled('debug')) return false;
    const known = fastRoutes.get(url);
    const route = known ?? routeOf(url);
    if (!route) return false;
    const grant = engine.peekAccess({
      rawHeaders: req.rawHeaders,
      authorization: headers.authorization,
      agentIdHeader: headers['x-ath-agent-id'],
      providerId: route.providerId,
      requiredScope: route.requiredScope,
    });
    const grantId = grant?.grantId;
    if (!grantId) return false;
    const token = bridge.peekUpstreamAccessToken(grantId);
    if (token === undefined) return false;
    // Last, as it is the one check that takes something: a per-agent unit this instance holds.
    if (rateLimited && !engine.takeHeldRateLimit('api', `agent:${grant.clientId}`)) return false;
    if (!known) rememberRoute(url, route);

    // From here on this call is ours.
    const started = performance.now();
    metrics.countFastPath();
    let relayed = false;
    inflight++;
    // No 'error' listener on req: it is a bodiless GET, and Node only emits a request stream's
    // error when something listens (IncomingMessage onError), so a vanished client cannot throw here.
    const call = proxy.relay(
      {
        grant: { grantId },
        target: route.target,
        method: 'GET',
        headers,
        body: null,
        timeoutMs: route.provider.config.timeout_ms,
        responseHeaders: { 'strict-transport-security': HSTS },
      },
      token,
      res,
      {
        writesThrough,
        done: (err, outcome) => {
          if (!outcome) {
            metrics.countUpstream(route.providerId, err instanceof AthError ? err.code : 'error');
            return handOff(req, res, { startedAt: started, kind: 'error', error: err });
          }
          if (outcome.relayed) {
            relayed = true;
            return metrics.countUpstream(route.providerId, outcome.status);
          }
          metrics.countUpstream(route.providerId, outcome.response.status);
          handOff(req, res, { startedAt: started, kind: 'response', response: outcome.response });
        },
        bodyFailed,
      },
    );
    // One listener does the bookkeeping: 'close' follows 'finish' (or a vanished client), once.
    res.on('close', () => {
      if (!res.writableFinished) call.abort();
      else if (relayed) {
        const status = res.statusCode;
        const ms = performance.now() - started;
        metrics.countRequest(PROXY_ROUTE, 'GET', status, ms / 1000);
        if (status >= 500) logger.warn({ method: 'GET', url: safeUrl(url), status, ms: Math.round(ms * 100) / 100 }, 'request');
      }
      finishOne();
    });
    return true;
  };

  // --- admin API, health, metrics -------------------------------------------------------------
  await app.register(adminRoutes({ engine, store, registry, config, isAdmin, clock }), { prefix: '/admin' });

  app.get('/healthz', async (_request, reply) => reply.header('cache-control', 'no-store').send({ status: 'ok' }));
  app.get('/readyz', async (_request, reply) => {
    reply.header('cache-control', 'no-store');
    if (draining) return reply.code(503).send({ status: 'draining' });
    try {
      await store.getAgent('ath_readiness_probe');
      return reply.send({ status: 'ready' });
    } catch {
      return reply.code(503).send({ status: 'storage unavailable' });
    }
  });
  app.get('/metrics', async (_request, reply) => {
    reply.header('cache-control', 'no-store').type(metrics.registry.contentType);
    return reply.send(await metrics.registry.metrics());
  });

  app.addHook('onReady', async () => engine.start());

  let closing: Promise<void> | null = null;
  const close = () => {
    closing ??= (async () => {
      draining = true;
      await app.close();
      await engine.close();
      await proxy.close();
      if (ownsStore) await store.close();
    })();
    return closing;
  };

  return {
    app,
    engine,
    store,
    bridge,
    proxy,
    providers: registry,
    metrics,
    config,
    logger,
    async listen(opts = {}) {
      const address = await app.listen({ port: opts.port ?? config.listen.port, host: opts.host ?? config.listen.host });
      return address;
    },
    async shutdown() {
      draining = true;
      if (inflight > 0) {
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, config.limits.drainMs);
          drained = () => {
            clearTimeout(timer);
            resolve();
          };
        });
      }
      await close();
    },
    close,
  };
}
