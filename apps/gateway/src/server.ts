import { Readable, Transform, type TransformCallback } from 'node:stream';
import {
  AthEngine,
  AthError,
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
  athEndpoints,
  athHeaders,
  engineRateLimits,
  GATEWAY_CONTINUE_PATH,
  headerCount,
  HSTS,
  onlyValue,
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
import { splitProxyUrl, buildUpstreamTarget } from './canonical-path.js';
import { ProviderRegistry } from './catalog.js';
import { toApprovalPolicy, type GatewayConfig } from './config.js';
import { OAuthBridge } from './oauth-bridge.js';
import { createLogger, GatewayMetrics, safeUrl } from './observability.js';
import { UpstreamProxy } from './proxy.js';

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

function sendUnavailable(reply: FastifyReply): FastifyReply {
  athHeaders(reply);
  return reply
    .code(503)
    .header('retry-after', '1')
    .header('connection', 'close')
    .type('application/json; charset=utf-8')
    .send(JSON.stringify({ code: 'INTERNAL_ERROR', message: 'The gateway is shutting down; retry on another instance' }));
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

  const fastifyLogger: FastifyBaseLogger = logger;
  const app = Fastify({
    loggerInstance: fastifyLogger,
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: config.limits.athBodyBytes,
    trustProxy: false,
    return503OnClosing: true,
    routerOptions: { maxParamLength: 2048 },
    requestTimeout: 120_000,
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
    const seconds = reply.elapsedTime / 1000;
    metrics.requests.inc({ route, method: request.method, status: String(reply.statusCode) });
    metrics.duration.observe({ route }, seconds);
    if (logger.isLevelEnabled('debug') || reply.statusCode >= 500) {
      logger[reply.statusCode >= 500 ? 'warn' : 'debug'](
        { method: request.method, url: safeUrl(request.raw.url), status: reply.statusCode, ms: Math.round(reply.elapsedTime * 100) / 100 },
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
        const decision = onlyValue(form, 'decision');
        if (decision !== 'approve' && decision !== 'deny') {
          throw new AthError('INVALID_REQUEST', 'decision must be approve or deny', { field: 'decision' });
        }
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
  let drained: (() => void) | null = null;
  const finishOne = () => {
    inflight--;
    metrics.inflight.set(inflight);
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
          if (draining) return sendUnavailable(reply);
          const { providerId, target } = splitProxyUrl(request.raw.url ?? '', PROXY_PREFIX);
          const provider = registry.live(providerId);
          if (!provider) throw new AthError('NOT_FOUND', 'Not found');
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
          if (headerCount(request, 'x-ath-agent-id') > 1 || headerCount(request, 'authorization') > 1) {
            throw new AthError('INVALID_REQUEST', 'Authorization and X-ATH-Agent-ID must each be sent once', { reason: 'duplicate_header' });
          }
          // token → agent → provider → scope (C-166), all in core.
          const grant = await engine.validateAccess({
            authorization: request.headers.authorization,
            agentIdHeader: request.headers['x-ath-agent-id'],
            providerId,
            requiredScope: provider.scopeMap.requiredScope(request.method, target),
          });
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
          const abort = new AbortController();
          inflight++;
          metrics.inflight.set(inflight);
          let finished = false;
          const finish = () => {
            if (finished) return;
            finished = true;
            finishOne();
          };
          reply.raw.once('close', () => {
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
              signal: abort.signal,
              timeoutMs: provider.config.timeout_ms,
            });
            metrics.upstream.inc({ provider: providerId, status: String(out.status) });
            reply.code(out.status);
            for (const [name, value] of Object.entries(out.headers)) reply.header(name, value);
            return reply.send(out.body);
          } catch (err) {
            if (abort.signal.aborted) return reply; // the agent went away: nothing to answer, nothing to log
            const athErr = err instanceof AthError ? err : null;
            metrics.upstream.inc({ provider: providerId, status: athErr?.code ?? 'error' });
            if (athErr?.code === 'PAYLOAD_TOO_LARGE') reply.header('connection', 'close');
            throw err;
          }
        },
      });
      done();
    },
    { prefix: '/ath/proxy' },
  );

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
