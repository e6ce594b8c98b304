import {
  AthEngine,
  AthError,
  bindingCookieName,
  BINDING_COOKIE_PREFIX,
  CALLBACK_PATH,
  LAUNCH_PATH,
  defaultApprovalPolicy,
  serviceDiscovery,
  type AccessGrant,
  type AgentStatusAuth,
  type ApprovalPolicy,
  type RevocationCaller,
} from '@athkit/core';
import type {
  FastifyInstance,
  FastifyPluginAsync,
  FastifyPluginCallback,
  FastifyReply,
  FastifyRequest,
  HTTPMethods,
  onRequestAsyncHookHandler,
  RouteOptions,
} from 'fastify';
import fp from 'fastify-plugin';
import { athHeaders, headerCount, jsonDepthExceeds, parseCookies, sendAthError, singleHeader } from './http.js';
import { resolveOptions, type AthFastifyOptions, type ResolvedOptions } from './options.js';
import { CONSENT_PATH, sendCompletionPage, sendConsentPage } from './pages.js';

/** Route option `config.ath` of a route of the service's own API (native mode, C-167). */
export interface AthRouteConfig {
  /** The scope this operation needs; the call must carry a valid ATH token holding it. */
  scope: string;
}

declare module 'fastify' {
  interface FastifyInstance {
    /** The AthEngine behind this registration (admin operations, tests). */
    ath: AthEngine;
  }
  interface FastifyRequest {
    /** The validated token binding on routes guarded with `config.ath`; null elsewhere. */
    ath: AccessGrant | null;
  }
  interface FastifyContextConfig {
    /** `{ scope }` guards the route with an ATH token; `false` marks a public route under api_base. */
    ath?: AthRouteConfig | false;
  }
}

/** Nesting deeper than this in a JSON body is refused before parsing (400). */
export const MAX_JSON_DEPTH = 32;
const MAX_FORM_SCOPES = 100;

type BodyKind = 'json' | 'json-or-form' | 'form';

function methodsOtherThan(instance: FastifyInstance, allowed: readonly string[]): HTTPMethods[] {
  return instance.supportedMethods.filter((m): m is HTTPMethods => !allowed.includes(m));
}

/** Registers `handler` for `method` on `url`, and 405 METHOD_NOT_ALLOWED (with Allow) for every other method. */
function endpoint(
  instance: FastifyInstance,
  method: 'GET' | 'POST',
  url: string,
  bodyLimit: number,
  handler: (request: FastifyRequest, reply: FastifyReply) => Promise<unknown>,
  body: BodyKind = 'json',
): void {
  const allow = method === 'GET' ? ['GET', 'HEAD'] : ['POST'];
  instance.route({
    method,
    url,
    bodyLimit,
    handler,
    ...(method === 'POST'
      ? {
          preValidation: (request: FastifyRequest, _reply: FastifyReply, done: (err?: Error) => void) => {
            const isForm = request.body instanceof URLSearchParams;
            if ((isForm && body === 'json') || (!isForm && body === 'form' && request.body !== undefined)) {
              done(
                new AthError('INVALID_REQUEST', `Unsupported content type; send ${body === 'form' ? 'a form' : 'application/json'}`, {
                  reason: 'unsupported_media_type',
                }),
              );
              return;
            }
            done();
          },
        }
      : {}),
  });
  instance.route({
    method: methodsOtherThan(instance, allow),
    url,
    exposeHeadRoute: false,
    // onRequest runs before the body is read, so the 405 wins over any body or content-type problem.
    onRequest: (_request, _reply, done) => done(new AthError('METHOD_NOT_ALLOWED', `Use ${allow.join(' or ')}`, { allow })),
    handler: (_request, reply) => reply.send(),
  });
}

/** The agent's credentials at GET /ath/agents/{clientId}: HTTP Basic (RFC 6749 §2.3.1), or an attestation header (C-064). */
function statusAuth(request: FastifyRequest): AgentStatusAuth {
  const authorization = singleHeader(request, 'authorization');
  const attestation = singleHeader(request, 'x-ath-agent-attestation');
  if (authorization === null || attestation === null) return { kind: 'none' };
  if (authorization !== undefined) {
    const m = /^Basic[ ]+([A-Za-z0-9+/]+=*)[ ]*$/i.exec(authorization);
    if (!m) return { kind: 'none' };
    const decoded = Buffer.from(m[1]!, 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    if (colon <= 0) return { kind: 'none' };
    return { kind: 'basic', clientId: formDecode(decoded.slice(0, colon)), clientSecret: formDecode(decoded.slice(colon + 1)) };
  }
  if (attestation) return { kind: 'attestation', attestation: attestation.trim() };
  return { kind: 'none' };
}

function formDecode(value: string): string {
  try {
    return decodeURIComponent(value.replace(/\+/g, ' '));
  } catch {
    return value;
  }
}

/** A form body as the plain object the engine's schema validators expect; repeated or dangerous keys are refused. */
function formToObject(form: URLSearchParams): Record<string, string> {
  const out: Record<string, string> = Object.create(null) as Record<string, string>;
  for (const [k, v] of form) {
    if (k === '__proto__' || k === 'constructor' || k === 'prototype' || k in out) {
      throw new AthError('INVALID_REQUEST', 'Malformed form body', { reason: 'malformed_body', field: k });
    }
    out[k] = v;
  }
  return { ...out };
}

function onlyValue(form: URLSearchParams, name: string): string | null {
  const all = form.getAll(name);
  return all.length === 1 ? all[0]! : null;
}

/** The inner, encapsulated plugin: ATH endpoints under /ath with their own parsers, error and 404 handlers. */
function athRoutes(engine: AthEngine, opts: ResolvedOptions): FastifyPluginCallback {
  return (instance, _options, pluginDone) => {
    const { bodyLimit } = opts;
    // Browsers accept `__Host-` cookies only with Secure; an insecure deployment drops the prefix.
    const cookieWireName = (engineName: string) =>
      opts.cookieSecure || !engineName.startsWith(BINDING_COOKIE_PREFIX) ? engineName : engineName.slice('__Host-'.length);

    instance.removeAllContentTypeParsers();
    const defaultJson = instance.getDefaultJsonParser('error', 'error');
    instance.addContentTypeParser('application/json', { parseAs: 'string', bodyLimit }, (request, body, done) => {
      if (jsonDepthExceeds(body as string, MAX_JSON_DEPTH)) {
        done(new AthError('INVALID_REQUEST', 'JSON body is nested too deeply', { reason: 'too_deep' }), undefined);
        return;
      }
      void defaultJson(request, body as string, done);
    });
    instance.addContentTypeParser('application/x-www-form-urlencoded', { parseAs: 'string', bodyLimit }, (_request, body, done) => {
      done(null, new URLSearchParams(body as string));
    });
    instance.setErrorHandler((err, request, reply) => sendAthError(request, reply, err));
    instance.addHook('onRequest', (request, _reply, done) => {
      done(request.is404 ? new AthError('NOT_FOUND', 'No such ATH endpoint') : undefined);
    });
    instance.setNotFoundHandler(async (request, reply) => sendAthError(request, reply, new AthError('NOT_FOUND', 'No such ATH endpoint')));

    /** The one binding cookie the engine may look at, read under the name this deployment uses. */
    const bindingCookies = async (request: FastifyRequest, state: string | null): Promise<Record<string, string | undefined>> => {
      if (!state) return {};
      const engineName = await bindingCookieName(state);
      return { [engineName]: parseCookies(request.headers.cookie).get(cookieWireName(engineName)) };
    };
    const setCookie = (reply: FastifyReply, engineName: string, value: string, maxAge: number) => {
      const attrs = [`${cookieWireName(engineName)}=${value}`, 'Path=/', `Max-Age=${maxAge}`, 'HttpOnly', 'SameSite=Lax'];
      if (opts.cookieSecure) attrs.push('Secure');
      reply.header('set-cookie', attrs.join('; '));
    };
    const loginRedirect = (reply: FastifyReply, returnTo: string) => {
      let location: string;
      if (typeof opts.loginUrl === 'function') location = opts.loginUrl(returnTo);
      else {
        const url = new URL(opts.loginUrl, opts.baseUrl + '/');
        url.searchParams.set(opts.returnToParam, returnTo);
        location = url.origin === opts.baseUrl ? url.pathname + url.search : url.toString();
      }
      athHeaders(reply);
      return reply.redirect(location, 302);
    };
    const now = () => (opts.clock ?? { now: Date.now }).now();

    endpoint(instance, 'POST', '/agents/register', bodyLimit, async (request, reply) => {
      const result = await engine.register(request.body);
      athHeaders(reply);
      return reply.code(201).send(result);
    });

    endpoint(instance, 'GET', '/agents/:clientId', bodyLimit, async (request, reply) => {
      const { clientId } = request.params as { clientId: string };
      const result = await engine.agentStatus(clientId, statusAuth(request));
      athHeaders(reply);
      return reply.code(200).send(result);
    });

    endpoint(instance, 'POST', '/authorize', bodyLimit, async (request, reply) => {
      const result = await engine.authorize(request.body);
      athHeaders(reply);
      return reply.code(200).send(result);
    });

    // The consent launch page behind authorization_url (AMB-03): binds this browser, then asks the signed-in user.
    endpoint(instance, 'GET', LAUNCH_PATH.slice(4), bodyLimit, async (request, reply) => {
      const query = new URL(request.url, 'http://localhost').searchParams;
      const state = query.get('state');
      const launch = await engine.launch(query, await bindingCookies(request, state));
      if (launch.setBinding) {
        setCookie(reply, launch.cookieName, launch.setBinding, Math.max(1, Math.ceil((launch.session.expiresAt - now()) / 1000)));
      }
      const userId = await opts.authenticateUser(request);
      if (!userId) return loginRedirect(reply, `${LAUNCH_PATH}?${query.toString()}`);
      const redirect = launch.session.userRedirectUri;
      return sendConsentPage(reply, {
        serviceName: opts.service.name,
        userId,
        state: state!,
        consent: launch.consent,
        redirectOrigin: redirect ? new URL(redirect).origin : null,
      });
    });

    // The consent form's target: the user's decision, recorded once by the engine (AMB-02).
    endpoint(
      instance,
      'POST',
      CONSENT_PATH.slice(4),
      bodyLimit,
      async (request, reply) => {
        const form = request.body instanceof URLSearchParams ? request.body : new URLSearchParams();
        const origin = singleHeader(request, 'origin');
        if (origin === null || (origin !== undefined && origin !== 'null' && origin !== opts.baseUrl)) {
          throw new AthError('STATE_MISMATCH', 'The consent form was submitted from another origin');
        }
        const state = onlyValue(form, 'state');
        const session = await engine.openCallback(state, await bindingCookies(request, state));
        const userId = await opts.authenticateUser(request);
        if (!userId) return loginRedirect(reply, `${LAUNCH_PATH}?${new URLSearchParams({ state: state! }).toString()}`);
        const decision = onlyValue(form, 'decision');
        const scopes = form.getAll('scope');
        if ((decision !== 'approve' && decision !== 'deny') || scopes.length > MAX_FORM_SCOPES) {
          throw new AthError('INVALID_REQUEST', 'decision must be approve or deny', { field: 'decision' });
        }
        const result = await engine.completeConsent(
          session,
          decision === 'approve' ? { kind: 'granted', userId, consentedScopes: scopes } : { kind: 'denied' },
        );
        setCookie(reply, await bindingCookieName(state!), '', 0);
        if (result.kind === 'redirect') {
          athHeaders(reply);
          return reply.redirect(result.location, 303);
        }
        return sendCompletionPage(reply, result.outcome === 'granted' ? 'granted' : 'denied', opts.service.name);
      },
      'form',
    );

    // Native mode has no upstream authorization server, so nothing is ever completed here: a valid,
    // bound, pending state is sent back to the consent page; anything else is the engine's error
    // (400 STATE_MISMATCH / SESSION_EXPIRED, never a redirect). Decisions are only taken by POST /ath/consent.
    endpoint(instance, 'GET', CALLBACK_PATH.slice(4), bodyLimit, async (request, reply) => {
      const state = new URL(request.url, 'http://localhost').searchParams.get('state');
      await engine.openCallback(state, await bindingCookies(request, state));
      athHeaders(reply);
      return reply.redirect(`${LAUNCH_PATH}?${new URLSearchParams({ state: state! }).toString()}`, 303);
    });

    endpoint(
      instance,
      'POST',
      '/token',
      bodyLimit,
      async (request, reply) => {
        const body = request.body instanceof URLSearchParams ? formToObject(request.body) : request.body;
        const result = await engine.exchangeToken(body);
        athHeaders(reply);
        return reply.code(200).send(result);
      },
      'json-or-form',
    );

    endpoint(instance, 'POST', '/revoke', bodyLimit, async (request, reply) => {
      const body = request.body;
      let caller: RevocationCaller = { kind: 'agent' };
      const hasClientCredentials =
        typeof body === 'object' && body !== null && ('client_id' in body || 'client_secret' in body);
      if (!hasClientCredentials) {
        // Users and administrators revoke with the service's own authentication (C-187).
        const admin = opts.authenticateAdmin ? await opts.authenticateAdmin(request) : null;
        const user = admin ? null : await opts.authenticateUser(request);
        if (admin) caller = { kind: 'admin', actor: admin };
        else if (user) caller = { kind: 'user', userId: user };
      }
      await engine.revoke(body, caller);
      athHeaders(reply);
      return reply.code(200).send({});
    });
    pluginDone();
  };
}

/** GET /.well-known/ath-app.json in its own encapsulated context (C-005…C-010). */
function wellKnown(document: object): FastifyPluginCallback {
  return (instance, _options, done) => {
    instance.setErrorHandler((err, request, reply) => sendAthError(request, reply, err));
    endpoint(instance, 'GET', '/.well-known/ath-app.json', 1024, (_request, reply) => {
      athHeaders(reply, 'public, max-age=300');
      return Promise.resolve(reply.code(200).send(document));
    });
    done();
  };
}

/** The route guard of the service's own API (C-151…C-158, C-166, C-167): one engine call, its error rendered as is. */
const GUARD = Symbol('athkit.guard');

function guard(engine: AthEngine, providerId: string, requiredScope: string | null): onRequestAsyncHookHandler {
  const athGuard: onRequestAsyncHookHandler = async function athGuard(request, reply) {
    try {
      // Two agent headers (or two Authorization headers) are ambiguous, not a mismatch (threats F9).
      if (headerCount(request, 'x-ath-agent-id') > 1 || headerCount(request, 'authorization') > 1) {
        throw new AthError('INVALID_REQUEST', 'Authorization and X-ATH-Agent-ID must each be sent once', {
          reason: 'duplicate_header',
        });
      }
      request.ath = await engine.validateAccess({
        authorization: request.headers.authorization,
        agentIdHeader: request.headers['x-ath-agent-id'],
        providerId,
        requiredScope,
      });
    } catch (err) {
      return sendAthError(request, reply, err);
    }
  };
  return Object.assign(athGuard, { [GUARD]: true });
}

function isUnder(url: string, base: string): boolean {
  return url === base || url.startsWith(base + '/');
}

const athFastifyPlugin: FastifyPluginAsync<AthFastifyOptions> = async (app, rawOptions) => {
  const opts = resolveOptions(rawOptions);
  const appId = opts.service.app_id;
  const policy: ApprovalPolicy =
    typeof opts.policy === 'function' ? opts.policy : defaultApprovalPolicy(opts.policy ?? {});
  const engine = new AthEngine({
    store: opts.store,
    baseUrl: opts.baseUrl,
    providers: [{ provider_id: appId, display_name: opts.service.name, available_scopes: [...opts.scopes] }],
    policy,
    ...(opts.identity ? { identity: opts.identity } : {}),
    ...(opts.clock ? { clock: opts.clock } : {}),
    ...(opts.random ? { random: opts.random } : {}),
    ...(opts.auditSink ? { auditSink: opts.auditSink } : {}),
    ...(opts.tokenTtlSeconds !== undefined ? { tokenTtlSeconds: opts.tokenTtlSeconds } : {}),
  });
  const discovery = serviceDiscovery(opts.baseUrl, {
    app_id: appId,
    name: opts.service.name,
    api_base: opts.service.api_base,
    scopes_supported: [...opts.scopes],
    ...(opts.service.registration_endpoint ? { registration_endpoint: opts.service.registration_endpoint } : {}),
  });

  app.decorate('ath', engine);
  app.decorateRequest('ath', null);
  app.addHook('onReady', async () => engine.start());
  app.addHook('onClose', async () => engine.close());

  app.addHook('onRoute', (route: RouteOptions) => {
    const config = route.config?.ath;
    const url = route.url;
    let scope: string | null | undefined;
    if (config === false) return;
    if (config && typeof config === 'object') {
      if (typeof config.scope !== 'string' || config.scope.length === 0) {
        throw new Error(`@athkit/fastify: route ${url}: config.ath.scope must be a non-empty string`);
      }
      scope = config.scope;
    } else if (opts.denyUnmappedApi && opts.apiBasePath && typeof url === 'string' && isUnder(url, opts.apiBasePath)) {
      scope = null; // under api_base without a scope: deny by default (C-158)
    }
    if (scope === undefined) return;
    const existing = route.onRequest === undefined ? [] : Array.isArray(route.onRequest) ? route.onRequest : [route.onRequest];
    if (existing.some((h) => GUARD in h)) return; // HEAD routes copy their GET route's hooks
    route.onRequest = [guard(engine, appId, scope), ...existing];
  });

  await app.register(wellKnown(discovery));
  await app.register(athRoutes(engine, opts), { prefix: '/ath' });
  if (opts.denyUnmappedApi && opts.apiBasePath) {
    // Unknown paths and methods under api_base: token checks first, then 403 SCOPE_NOT_APPROVED (C-158).
    const unmapped = guard(engine, appId, null);
    await app.register(
      (instance, _options, done) => {
        instance.addHook('onRequest', (request, reply) => (request.is404 ? unmapped.call(instance, request, reply) : Promise.resolve()));
        instance.setNotFoundHandler((request, reply) => sendAthError(request, reply, new AthError('NOT_FOUND', 'No such API endpoint')));
        done();
      },
      { prefix: opts.apiBasePath },
    );
  }
};

/**
 * `app.register(athFastify, options)`: ATH for a service that implements it natively. Mounts
 * ath-app.json and the /ath endpoints, the consent page, and the `config.ath` route guard.
 */
export const athFastify = fp(athFastifyPlugin, { fastify: '5.x', name: '@athkit/fastify' });
export default athFastify;
