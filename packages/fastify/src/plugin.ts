import {
  AthEngine,
  AthError,
  bindingCookieName,
  CALLBACK_PATH,
  LAUNCH_PATH,
  defaultApprovalPolicy,
  serviceDiscovery,
  type AccessGrant,
  type ApprovalPolicy,
  type RevocationCaller,
} from '@athkit/core';
import type {
  FastifyInstance,
  FastifyPluginAsync,
  FastifyPluginCallback,
  FastifyReply,
  onRequestAsyncHookHandler,
  RouteOptions,
} from 'fastify';
import fp from 'fastify-plugin';
import { athEndpoints, engineRateLimits, onlyValue, wellKnownDocument, type BrowserKit } from './endpoints.js';
export { MAX_JSON_DEPTH } from './endpoints.js';
import { accessRequest, athHeaders, sendAthError } from './http.js';
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

const MAX_FORM_SCOPES = 100;

/** The native browser steps: the consent page behind authorization_url, its form target, and the callback. */
function nativeBrowserRoutes(engine: AthEngine, opts: ResolvedOptions) {
  return (_instance: FastifyInstance, kit: BrowserKit): void => {
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

    // The consent launch page behind authorization_url (AMB-03): binds this browser, then asks the signed-in user.
    kit.endpoint('GET', LAUNCH_PATH.slice(4), async (request, reply) => {
      const query = new URL(request.url, 'http://localhost').searchParams;
      const state = query.get('state');
      const launch = await engine.launch(query, await kit.bindingCookies(request, state));
      if (launch.setBinding) {
        kit.setCookie(reply, launch.cookieName, launch.setBinding, Math.max(1, Math.ceil((launch.session.expiresAt - kit.now()) / 1000)));
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
    kit.endpoint(
      'POST',
      CONSENT_PATH.slice(4),
      async (request, reply) => {
        const form = request.body instanceof URLSearchParams ? request.body : new URLSearchParams();
        kit.checkOrigin(request);
        const state = onlyValue(form, 'state');
        const session = await engine.openCallback(state, await kit.bindingCookies(request, state));
        const userId = await opts.authenticateUser(request);
        if (!userId) return loginRedirect(reply, `${LAUNCH_PATH}?${new URLSearchParams({ state: state! }).toString()}`);
        const decision = kit.decision(form);
        const scopes = form.getAll('scope');
        if (scopes.length > MAX_FORM_SCOPES) {
          throw new AthError('INVALID_REQUEST', 'decision must be approve or deny', { field: 'decision' });
        }
        const result = await engine.completeConsent(
          session,
          decision === 'approve' ? { kind: 'granted', userId, consentedScopes: scopes } : { kind: 'denied' },
        );
        kit.setCookie(reply, await bindingCookieName(state!), '', 0);
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
    kit.endpoint('GET', CALLBACK_PATH.slice(4), async (request, reply) => {
      const state = new URL(request.url, 'http://localhost').searchParams.get('state');
      await engine.openCallback(state, await kit.bindingCookies(request, state));
      athHeaders(reply);
      return reply.redirect(`${LAUNCH_PATH}?${new URLSearchParams({ state: state! }).toString()}`, 303);
    });
  };
}

/** The inner, encapsulated plugin: ATH endpoints under /ath with their own parsers, error and 404 handlers. */
function athRoutes(engine: AthEngine, opts: ResolvedOptions): FastifyPluginCallback {
  return athEndpoints(engine, {
    baseUrl: opts.baseUrl,
    bodyLimit: opts.bodyLimit,
    cookieSecure: opts.cookieSecure,
    ...(opts.clock ? { clock: opts.clock } : {}),
    revocationCaller: async (request): Promise<RevocationCaller> => {
      // Users and administrators revoke with the service's own authentication (C-187).
      const admin = opts.authenticateAdmin ? await opts.authenticateAdmin(request) : null;
      if (admin) return { kind: 'admin', actor: admin };
      const user = await opts.authenticateUser(request);
      if (user) return { kind: 'user', userId: user };
      return { kind: 'agent' };
    },
    browserRoutes: nativeBrowserRoutes(engine, opts),
  });
}

/** The route guard of the service's own API (C-151…C-158, C-166, C-167): one engine call, its error rendered as is. */
const GUARD = Symbol('athkit.guard');

function guard(engine: AthEngine, providerId: string, requiredScope: string | null): onRequestAsyncHookHandler {
  const athGuard: onRequestAsyncHookHandler = async function athGuard(request, reply) {
    try {
      const grant = await engine.validateAccess(accessRequest(request, providerId, requiredScope));
      await engine.enforceRateLimit('api', `agent:${grant.clientId}`); // C-217: per agent, shared through the store
      request.ath = grant;
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
    providers: [{ provider_id: appId, display_name: opts.service.name, available_scopes: [...opts.scopes], api_base: opts.service.api_base }],
    policy,
    ...(opts.identity ? { identity: opts.identity } : {}),
    ...(opts.clock ? { clock: opts.clock } : {}),
    ...(opts.random ? { random: opts.random } : {}),
    ...(opts.auditSink ? { auditSink: opts.auditSink } : {}),
    ...(opts.tokenTtlSeconds !== undefined ? { tokenTtlSeconds: opts.tokenTtlSeconds } : {}),
    ...(opts.bindingKey ? { bindingKey: opts.bindingKey } : {}),
    ...(opts.rateLimits ? { rateLimits: engineRateLimits(opts.rateLimits) } : {}),
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

  await app.register(wellKnownDocument('/.well-known/ath-app.json', () => discovery)); // C-005…C-010
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
