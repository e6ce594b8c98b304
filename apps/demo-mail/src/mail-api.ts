import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { createRemoteJWKSet, errors as joseErrors, jwtVerify, type JWTPayload } from 'jose';
import { MailboxFullError, type Folder, type MailStore } from './mailbox.js';
import type { MailScope } from './scopes.js';
import { findUser, type DemoUser } from './users.js';

export interface TokenVerifierOptions {
  issuer: string;
  /** Expected `aud`: the API's resource indicator. */
  resource: string;
  /** The authorization server's JWKS endpoint. */
  jwksUri: string;
}

export interface Principal {
  user: DemoUser;
  scopes: ReadonlySet<string>;
  clientId: string | undefined;
  expiresAt: number;
  scope: string;
}

export type VerifyResult =
  | { ok: true; principal: Principal }
  | { ok: false; status: 401 | 503; error: 'invalid_token' | 'temporarily_unavailable'; description: string };

/** Verifies RFC 9068 JWT access tokens against the authorization server's published keys. */
export function createTokenVerifier(options: TokenVerifierOptions): (token: string) => Promise<VerifyResult> {
  const jwks = createRemoteJWKSet(new URL(options.jwksUri), {
    timeoutDuration: 5_000,
    cooldownDuration: 10_000,
  });
  return async (token) => {
    let payload: JWTPayload;
    try {
      ({ payload } = await jwtVerify(token, jwks, {
        issuer: options.issuer,
        audience: options.resource,
        typ: 'at+jwt',
        algorithms: ['RS256'],
        requiredClaims: ['sub', 'exp', 'iat'],
      }));
    } catch (err) {
      if (err instanceof joseErrors.JWTExpired)
        return { ok: false, status: 401, error: 'invalid_token', description: 'the access token expired' };
      if (
        err instanceof joseErrors.JWTClaimValidationFailed ||
        err instanceof joseErrors.JWTInvalid ||
        err instanceof joseErrors.JWSInvalid ||
        err instanceof joseErrors.JWSSignatureVerificationFailed ||
        err instanceof joseErrors.JWKSNoMatchingKey ||
        err instanceof joseErrors.JWKSMultipleMatchingKeys ||
        err instanceof joseErrors.JOSEAlgNotAllowed ||
        err instanceof joseErrors.JOSENotSupported
      ) {
        return { ok: false, status: 401, error: 'invalid_token', description: 'the access token is invalid' };
      }
      // JWKS unreachable or malformed: not the client's fault.
      return {
        ok: false,
        status: 503,
        error: 'temporarily_unavailable',
        description: 'cannot verify access tokens right now',
      };
    }
    const user = typeof payload.sub === 'string' ? findUser(payload.sub) : undefined;
    if (!user)
      return { ok: false, status: 401, error: 'invalid_token', description: 'the access token is invalid' };
    const scope = typeof payload['scope'] === 'string' ? payload['scope'] : '';
    return {
      ok: true,
      principal: {
        user,
        scope,
        scopes: new Set(scope.split(' ').filter(Boolean)),
        clientId: typeof payload['client_id'] === 'string' ? payload['client_id'] : undefined,
        expiresAt: payload.exp ?? 0,
      },
    };
  };
}

const REALM = 'example-mail';
const BEARER = /^Bearer ([A-Za-z0-9\-._~+/]+=*)$/i;

declare module 'fastify' {
  interface FastifyRequest {
    principal?: Principal;
  }
  interface FastifyContextConfig {
    /** The scope a route needs; absent: any valid token. */
    scope?: MailScope;
  }
}

function challenge(
  reply: FastifyReply,
  status: number,
  params: Record<string, string>,
  body: Record<string, string>,
) {
  const attrs = Object.entries({ realm: REALM, ...params })
    .map(([k, v]) => `${k}="${v}"`)
    .join(', ');
  return reply.code(status).header('www-authenticate', `Bearer ${attrs}`).send(body);
}

const messageSchema = {
  type: 'object',
  required: ['to', 'subject', 'body'],
  additionalProperties: false,
  properties: {
    to: { type: 'string', minLength: 3, maxLength: 254, pattern: '^[^\\s@<>",]+@[^\\s@<>",]+$' },
    subject: { type: 'string', maxLength: 200 },
    body: { type: 'string', maxLength: 20_000 },
  },
} as const;

/**
 * The mail API under `/v1`. Every route needs `Authorization: Bearer <JWT access token>`; the route's
 * `config.scope` names the scope it needs. 401/403 answers carry an RFC 6750 `WWW-Authenticate`.
 */
export function registerMailApi(
  app: FastifyInstance,
  deps: { store: MailStore; verify: () => (token: string) => Promise<VerifyResult> },
): void {
  const { store } = deps;

  app.addHook('onSend', (_request, reply, payload, done) => {
    reply.header('cache-control', 'no-store');
    done(null, payload);
  });

  app.setNotFoundHandler((_request, reply) => reply.code(404).send({ error: 'not_found' }));

  app.setErrorHandler(
    (err: { statusCode?: number; validation?: unknown; message?: string }, request, reply) => {
      const status = err.statusCode && err.statusCode >= 400 && err.statusCode < 500 ? err.statusCode : 500;
      if (status === 500) request.log.error({ err }, 'mail api error');
      const description = err.validation
        ? (err.message ?? 'invalid request')
        : status === 500
          ? 'internal error'
          : (err.message ?? 'bad request');
      return reply
        .code(status)
        .send({ error: status === 500 ? 'server_error' : 'invalid_request', error_description: description });
    },
  );

  async function authenticateRequest(request: FastifyRequest, reply: FastifyReply) {
    const header = request.headers.authorization;
    if (!header) {
      return challenge(
        reply,
        401,
        {},
        { error: 'unauthorized', error_description: 'a bearer access token is required' },
      );
    }
    const match = BEARER.exec(header);
    if (!match) {
      return challenge(
        reply,
        401,
        { error: 'invalid_token', error_description: 'malformed authorization header' },
        { error: 'invalid_token', error_description: 'malformed authorization header' },
      );
    }
    const result = await deps.verify()(match[1]!);
    if (!result.ok) {
      if (result.status === 503)
        return reply
          .code(503)
          .header('retry-after', '5')
          .send({ error: result.error, error_description: result.description });
      return challenge(
        reply,
        401,
        { error: result.error, error_description: result.description },
        { error: result.error, error_description: result.description },
      );
    }
    const needed = request.routeOptions.config.scope;
    if (needed && !result.principal.scopes.has(needed)) {
      return challenge(
        reply,
        403,
        {
          error: 'insufficient_scope',
          error_description: `this request needs the ${needed} scope`,
          scope: needed,
        },
        {
          error: 'insufficient_scope',
          error_description: `this request needs the ${needed} scope`,
          scope: needed,
        },
      );
    }
    request.principal = result.principal;
    return undefined;
  }

  const principal = (request: FastifyRequest): Principal => {
    if (!request.principal) throw new Error('unauthenticated request reached a handler');
    return request.principal;
  };

  app.register(
    (api, _opts, done) => {
      api.addHook('onRequest', authenticateRequest);

      api.get('/me', (request) => {
        const { user, scope, clientId, expiresAt } = principal(request);
        return { ...user, token: { scope, client_id: clientId, expires_at: expiresAt } };
      });

      api.get<{ Querystring: { folder?: Folder; limit?: number } }>(
        '/messages',
        {
          config: { scope: 'mail:read' },
          schema: {
            querystring: {
              type: 'object',
              properties: {
                folder: { type: 'string', enum: ['inbox', 'sent'] },
                limit: { type: 'integer', minimum: 1, maximum: 200 },
              },
            },
          },
        },
        (request) => store.list(principal(request).user.id, request.query.folder, request.query.limit),
      );

      api.get<{ Params: { id: string } }>(
        '/messages/:id',
        { config: { scope: 'mail:read' } },
        (request, reply) => {
          const message = store.get(principal(request).user.id, request.params.id);
          return (
            message ?? reply.code(404).send({ error: 'not_found', error_description: 'no such message' })
          );
        },
      );

      api.post<{ Body: { to: string; subject: string; body: string } }>(
        '/messages/send',
        { config: { scope: 'mail:send' }, schema: { body: messageSchema } },
        (request, reply) => {
          try {
            return reply.code(201).send(store.send(principal(request).user, request.body));
          } catch (err) {
            if (err instanceof MailboxFullError)
              return reply
                .code(507)
                .send({ error: 'mailbox_full', error_description: 'the mailbox is full' });
            throw err;
          }
        },
      );

      api.delete<{ Params: { id: string } }>(
        '/messages/:id',
        { config: { scope: 'mail:delete' } },
        (request, reply) => {
          return store.delete(principal(request).user.id, request.params.id)
            ? reply.code(204).send()
            : reply.code(404).send({ error: 'not_found', error_description: 'no such message' });
        },
      );

      done();
    },
    { prefix: '/v1' },
  );
}
