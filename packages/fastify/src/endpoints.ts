import {
  AthError,
  bindingCookieName,
  BINDING_COOKIE_PREFIX,
  type AgentStatusAuth,
  type AthEngine,
  type Clock,
  type RateLimitBucket,
  type RateLimitRule,
  type RateLimitRules,
  type RevocationCaller,
} from '@athkit/core';
import type { FastifyInstance, FastifyPluginCallback, FastifyReply, FastifyRequest, HTTPMethods } from 'fastify';
import { athHeaders, basicCredentials, jsonDepthExceeds, parseCookies, sendAthError, singleHeader } from './http.js';

/**
 * The ATH endpoint code shared by the native-mode plugin and the reference gateway: content-type
 * parsers (JSON with a depth check, forms), 404/405/413 as ATH errors, HSTS and Cache-Control,
 * the browser-binding cookie, per-IP rate limits, and the four JSON endpoints (register, agent
 * status, authorize, token, revoke). The browser steps (launch page, consent, callback) differ by
 * mode and are registered by the caller through `browserRoutes`.
 */

/** Nesting deeper than this in a JSON body is refused before parsing (400). */
export const MAX_JSON_DEPTH = 32;

export type BodyKind = 'json' | 'json-or-form' | 'form';

/** Rate limits as deployments configure them: per caller IP on the ATH endpoints, per agent on the API. */
export interface AthRateLimits {
  /** Each ATH endpoint (register, status, authorize, token, revoke), counted per caller IP. */
  perIp?: RateLimitRule;
  /** Guarded API / proxied calls, counted per agent (client_id); `batch` > 1 saves store writes (see RateLimitRule). */
  perAgent?: RateLimitRule;
}

/** The engine's per-bucket rules for {@link AthRateLimits}. */
export function engineRateLimits(limits: AthRateLimits | undefined): RateLimitRules {
  const rules: RateLimitRules = {};
  if (limits?.perIp) {
    for (const bucket of ['register', 'status', 'authorize', 'token', 'revoke'] as const) rules[bucket] = limits.perIp;
  }
  if (limits?.perAgent) rules.api = limits.perAgent;
  return rules;
}

function methodsOtherThan(instance: FastifyInstance, allowed: readonly string[]): HTTPMethods[] {
  return instance.supportedMethods.filter((m): m is HTTPMethods => !allowed.includes(m));
}

/** Registers `handler` for `method` on `url`, and 405 METHOD_NOT_ALLOWED (with Allow) for every other method. */
export function endpoint(
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
export function statusAuth(request: FastifyRequest): AgentStatusAuth {
  const authorization = singleHeader(request, 'authorization');
  const attestation = singleHeader(request, 'x-ath-agent-attestation');
  if (authorization === null || attestation === null) return { kind: 'none' };
  if (authorization !== undefined) {
    const credentials = basicCredentials(authorization);
    return credentials ? { kind: 'basic', ...credentials } : { kind: 'none' };
  }
  if (attestation) return { kind: 'attestation', attestation: attestation.trim() };
  return { kind: 'none' };
}

/** A form body as the plain object the engine's schema validators expect; repeated or dangerous keys are refused. */
export function formToObject(form: URLSearchParams): Record<string, string> {
  const out: Record<string, string> = Object.create(null) as Record<string, string>;
  for (const [k, v] of form) {
    if (k === '__proto__' || k === 'constructor' || k === 'prototype' || k in out) {
      throw new AthError('INVALID_REQUEST', 'Malformed form body', { reason: 'malformed_body', field: k });
    }
    out[k] = v;
  }
  return { ...out };
}

/** The single value of a form field; null when absent or repeated. */
export function onlyValue(form: URLSearchParams, name: string): string | null {
  const all = form.getAll(name);
  return all.length === 1 ? all[0]! : null;
}

/**
 * Replaces the instance's content-type parsers with one for JSON that refuses nesting deeper than
 * {@link MAX_JSON_DEPTH} before parsing (400), within `bodyLimit`.
 */
export function useJsonParser(instance: FastifyInstance, bodyLimit: number): void {
  instance.removeAllContentTypeParsers();
  const defaultJson = instance.getDefaultJsonParser('error', 'error');
  instance.addContentTypeParser('application/json', { parseAs: 'string', bodyLimit }, (request, body, done) => {
    if (jsonDepthExceeds(body as string, MAX_JSON_DEPTH)) {
      done(new AthError('INVALID_REQUEST', 'JSON body is nested too deeply', { reason: 'too_deep' }), undefined);
      return;
    }
    void defaultJson(request, body as string, done);
  });
}

/** What the mode-specific browser routes get from the shared endpoint code. */
export interface BrowserKit {
  /** {@link endpoint} bound to the ATH instance and body limit. */
  endpoint(
    method: 'GET' | 'POST',
    url: string,
    handler: (request: FastifyRequest, reply: FastifyReply) => Promise<unknown>,
    body?: BodyKind,
  ): void;
  /** The one binding cookie the engine may look at for `state`, read under the name this deployment uses. */
  bindingCookies(request: FastifyRequest, state: string | null): Promise<Record<string, string | undefined>>;
  /** Sets (or with maxAge 0 clears) the binding cookie the engine named. */
  setCookie(reply: FastifyReply, engineName: string, value: string, maxAge: number): void;
  /** Refuses a form posted from another origin (an absent Origin and `null` are accepted, as browsers send them). */
  checkOrigin(request: FastifyRequest): void;
  /** The consent form's single `decision` field: approve or deny, else 400 INVALID_REQUEST. */
  decision(form: URLSearchParams): 'approve' | 'deny';
  /** Counts the request in `bucket` per caller IP (429 RATE_LIMITED when over). */
  limit(request: FastifyRequest, bucket: RateLimitBucket): Promise<void>;
  now(): number;
}

export interface AthEndpointsOptions {
  /** Public origin (the engine's baseUrl), for the Origin check of posted forms. */
  baseUrl: string;
  bodyLimit: number;
  /** `__Host-` prefixed Secure cookie (true), or plain-http development (false). */
  cookieSecure: boolean;
  clock?: Clock;
  /** Who revokes when the body carries no client credentials (C-187): a user, an admin, or an agent (rejected by the engine). */
  revocationCaller(request: FastifyRequest): Promise<RevocationCaller>;
  /** Mode-specific routes: the launch page, the consent step and the callback. */
  browserRoutes(instance: FastifyInstance, kit: BrowserKit): void;
}

/**
 * The inner, encapsulated plugin: ATH endpoints (register it with `prefix: '/ath'`) with their own
 * parsers, error and 404 handlers.
 */
export function athEndpoints(engine: AthEngine, opts: AthEndpointsOptions): FastifyPluginCallback {
  return (instance, _options, pluginDone) => {
    const { bodyLimit } = opts;
    // Browsers accept `__Host-` cookies only with Secure; an insecure deployment drops the prefix.
    const cookieWireName = (engineName: string) =>
      opts.cookieSecure || !engineName.startsWith(BINDING_COOKIE_PREFIX) ? engineName : engineName.slice('__Host-'.length);

    useJsonParser(instance, bodyLimit);
    instance.addContentTypeParser('application/x-www-form-urlencoded', { parseAs: 'string', bodyLimit }, (_request, body, done) => {
      done(null, new URLSearchParams(body as string));
    });
    instance.setErrorHandler((err, request, reply) => sendAthError(request, reply, err));
    instance.addHook('onRequest', (request, _reply, done) => {
      done(request.is404 ? new AthError('NOT_FOUND', 'No such ATH endpoint') : undefined);
    });
    instance.setNotFoundHandler(async (request, reply) => sendAthError(request, reply, new AthError('NOT_FOUND', 'No such ATH endpoint')));

    const kit: BrowserKit = {
      endpoint: (method, url, handler, body) => endpoint(instance, method, url, bodyLimit, handler, body),
      bindingCookies: async (request, state) => {
        if (!state) return {};
        const engineName = await bindingCookieName(state);
        return { [engineName]: parseCookies(request.headers.cookie).get(cookieWireName(engineName)) };
      },
      setCookie: (reply, engineName, value, maxAge) => {
        const attrs = [`${cookieWireName(engineName)}=${value}`, 'Path=/', `Max-Age=${maxAge}`, 'HttpOnly', 'SameSite=Lax'];
        if (opts.cookieSecure) attrs.push('Secure');
        reply.header('set-cookie', attrs.join('; '));
      },
      checkOrigin: (request) => {
        const origin = singleHeader(request, 'origin');
        if (origin === null || (origin !== undefined && origin !== 'null' && origin !== opts.baseUrl)) {
          throw new AthError('STATE_MISMATCH', 'The form was submitted from another origin');
        }
      },
      decision: (form) => {
        const decision = onlyValue(form, 'decision');
        if (decision !== 'approve' && decision !== 'deny') {
          throw new AthError('INVALID_REQUEST', 'decision must be approve or deny', { field: 'decision' });
        }
        return decision;
      },
      limit: (request, bucket) => engine.enforceRateLimit(bucket, `ip:${request.ip}`),
      now: () => (opts.clock ?? { now: Date.now }).now(),
    };

    kit.endpoint('POST', '/agents/register', async (request, reply) => {
      await kit.limit(request, 'register');
      const result = await engine.register(request.body);
      athHeaders(reply);
      return reply.code(201).send(result);
    });

    kit.endpoint('GET', '/agents/:clientId', async (request, reply) => {
      await kit.limit(request, 'status');
      const { clientId } = request.params as { clientId: string };
      const result = await engine.agentStatus(clientId, statusAuth(request));
      athHeaders(reply);
      return reply.code(200).send(result);
    });

    kit.endpoint('POST', '/authorize', async (request, reply) => {
      await kit.limit(request, 'authorize');
      const result = await engine.authorize(request.body);
      athHeaders(reply);
      return reply.code(200).send(result);
    });

    opts.browserRoutes(instance, kit);

    kit.endpoint(
      'POST',
      '/token',
      async (request, reply) => {
        await kit.limit(request, 'token');
        const body = request.body instanceof URLSearchParams ? formToObject(request.body) : request.body;
        const result = await engine.exchangeToken(body);
        athHeaders(reply);
        return reply.code(200).send(result);
      },
      'json-or-form',
    );

    kit.endpoint('POST', '/revoke', async (request, reply) => {
      await kit.limit(request, 'revoke');
      const body = request.body;
      let caller: RevocationCaller = { kind: 'agent' };
      const hasClientCredentials =
        typeof body === 'object' && body !== null && ('client_id' in body || 'client_secret' in body);
      if (!hasClientCredentials) caller = await opts.revocationCaller(request);
      await engine.revoke(body, caller);
      athHeaders(reply);
      return reply.code(200).send({});
    });
    pluginDone();
  };
}

/** A JSON document at a fixed GET path in its own encapsulated context (ath.json, ath-app.json). */
export function wellKnownDocument(path: string, document: () => object): FastifyPluginCallback {
  return (instance, _options, done) => {
    instance.setErrorHandler((err, request, reply) => sendAthError(request, reply, err));
    endpoint(instance, 'GET', path, 1024, (_request, reply) => {
      athHeaders(reply, 'public, max-age=300');
      return Promise.resolve(reply.code(200).send(document()));
    });
    done();
  };
}
