import {
  AthError,
  DEVICES_PATH,
  HANDSHAKE_PATH,
  type AthEngine,
  type HandshakeOptions,
  type HandshakeService,
  type RateLimitRule,
} from '@athkit/core';
import type { FastifyInstance, FastifyPluginAsync, FastifyPluginCallback, FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import { endpoint, useJsonParser, wellKnownDocument } from '../endpoints.js';
import { athHeaders, basicCredentials, sendAthError, singleHeader } from '../http.js';

declare module 'fastify' {
  interface FastifyInstance {
    /** The 9-step handshake service, once athHandshake is registered. */
    athHandshake: HandshakeService;
  }
}

/** Options of `app.register(athHandshake, options)`, registered after athFastify. */
export interface AthHandshakeOptions extends HandshakeOptions {
  /** Per-client / per-IP limit of the handshake endpoints (C-271). Default 60 per 60 s. */
  rateLimit?: RateLimitRule;
  /** The signed-in user of the service (its own login) for POST /ath/handshake/devices; null when nobody is. */
  authenticateUser?: (request: FastifyRequest) => Promise<string | null> | string | null;
  /** Body limit of the handshake endpoints in bytes (default 65536). */
  bodyLimit?: number;
}

const APP_JSON = '/.well-known/ath-app.json';

/** HTTP Basic client credentials (RFC 6749 §2.3.1) of step 8. */
function basicAuth(request: FastifyRequest): {
  clientId: string | undefined;
  clientSecret: string | undefined;
} {
  const header = singleHeader(request, 'authorization');
  return (
    (typeof header === 'string' ? basicCredentials(header) : null) ?? {
      clientId: undefined,
      clientSecret: undefined,
    }
  );
}

function clientIdOf(body: unknown): string | null {
  const id =
    body !== null && typeof body === 'object' ? (body as Record<string, unknown>)['client_id'] : undefined;
  return typeof id === 'string' && id.length <= 256 ? id : null;
}

/** The handshake endpoints under /ath/handshake, encapsulated with their own JSON parser, errors and 404s. */
function handshakeRoutes(
  engine: AthEngine,
  service: HandshakeService,
  opts: AthHandshakeOptions,
): FastifyPluginCallback {
  return (instance, _options, done) => {
    const bodyLimit = opts.bodyLimit ?? 65_536;
    useJsonParser(instance, bodyLimit);
    instance.setErrorHandler((err, request, reply) => sendAthError(request, reply, err));
    instance.setNotFoundHandler(async (request, reply) =>
      sendAthError(request, reply, new AthError('NOT_FOUND', 'No such ATH endpoint')),
    );
    const limit = async (request: FastifyRequest, key: string | null) => {
      await engine.enforceRateLimit('handshake', `ip:${request.ip}`);
      if (key) await engine.enforceRateLimit('handshake', key);
    };

    // Steps 1 → 2.
    endpoint(instance, 'POST', '/', bodyLimit, async (request, reply) => {
      const clientId = clientIdOf(request.body);
      await limit(request, clientId ? `client:${clientId}` : null);
      const result = await service.start(request.body);
      athHeaders(reply);
      reply.header('location', `${HANDSHAKE_PATH}/${result.handshake_id}`);
      return reply.code(201).send(result);
    });

    // Device enrolment by the signed-in user (the key behind user credentials and confirmations).
    endpoint(
      instance,
      'POST',
      DEVICES_PATH.slice(HANDSHAKE_PATH.length),
      bodyLimit,
      async (request, reply) => {
        await limit(request, null);
        const user = opts.authenticateUser ? await opts.authenticateUser(request) : null;
        if (!user)
          throw new AthError('USER_DENIED', 'Sign in to the service to enrol a device', {
            reason: 'not_signed_in',
          });
        const result = await service.enrolDevice(user, request.body);
        athHeaders(reply);
        return reply.code(201).send(result);
      },
    );

    // Steps 3 → 4.
    endpoint(instance, 'POST', '/:id/proof', bodyLimit, async (request, reply) => {
      const { id } = request.params as { id: string };
      await limit(request, `handshake:${id}`);
      const result = await service.proof(id, request.body);
      athHeaders(reply);
      return reply.code(200).send(result);
    });

    // Step 7, push variant: the user's device answers; agent credentials are never accepted here.
    endpoint(instance, 'POST', '/:id/confirmation', bodyLimit, async (request, reply) => {
      const { id } = request.params as { id: string };
      await limit(request, `handshake:${id}`);
      if (
        singleHeader(request, 'authorization') !== undefined ||
        singleHeader(request, 'x-ath-agent-id') !== undefined ||
        singleHeader(request, 'x-ath-agent-attestation') !== undefined
      ) {
        throw new AthError(
          'USER_DENIED',
          'Only the user may confirm; agent credentials are not accepted here',
          {
            reason: 'agent_credentials_not_accepted',
          },
        );
      }
      const result = await service.confirm(id, request.body);
      athHeaders(reply);
      return reply.code(200).send(result);
    });

    // Step 8.
    endpoint(instance, 'GET', '/:id', bodyLimit, async (request, reply) => {
      const { id } = request.params as { id: string };
      const auth = basicAuth(request);
      await limit(request, auth.clientId ? `client:${auth.clientId}` : null);
      const result = await service.status(id, auth);
      athHeaders(reply);
      return reply.code(200).send(result);
    });
    done();
  };
}

const athHandshakePlugin: FastifyPluginAsync<AthHandshakeOptions> = async (app, options) => {
  const engine = (app as FastifyInstance & { ath?: AthEngine }).ath;
  if (!engine)
    throw new Error('@athkit/fastify athHandshake: register athFastify first (it provides fastify.ath)');
  const { rateLimit, authenticateUser: _user, bodyLimit: _limit, ...handshakeOptions } = options;
  const service = await engine.enableHandshake({
    ...handshakeOptions,
    rateLimit: rateLimit ?? { limit: 60, windowSeconds: 60 },
  });
  app.decorate('athHandshake', service);

  // AMB-21/AMB-23 (C-256): ath-app.json advertises the extension and the server key.
  const extension = service.discovery();
  app.addHook('onSend', async (request, reply, payload) => {
    if (reply.statusCode !== 200 || typeof payload !== 'string' || request.url.split('?')[0] !== APP_JSON)
      return payload;
    const doc = JSON.parse(payload) as Record<string, unknown>;
    const endpoints =
      doc['ath_endpoints'] && typeof doc['ath_endpoints'] === 'object' ? doc['ath_endpoints'] : {};
    return JSON.stringify({
      ...doc,
      ath_endpoints: { ...endpoints, ...extension.ath_endpoints },
      server_jwks: extension.server_jwks,
      server_did: extension.server_did,
    });
  });

  // C-270: a handshake token's IP allow-list is enforced by the engine in the route guard (it gets the socket address).

  // did:web resolution of server_did: the same key, as a DID document.
  await app.register(wellKnownDocument('/.well-known/did.json', () => service.didDocument()));
  await app.register(handshakeRoutes(engine, service, options), { prefix: HANDSHAKE_PATH });
};

/**
 * `app.register(athHandshake, { users })` after `app.register(athFastify, …)`: the optional 9-step
 * handshake (seed 000) with the HTTP binding of checklist Part 4. POST /ath/handshake (steps 1-2),
 * POST /ath/handshake/{id}/proof (3-4), POST /ath/authorize with handshake_id (5), the consent page
 * or POST /ath/handshake/{id}/confirmation (6-7), GET /ath/handshake/{id} (8) and POST /ath/token
 * with key_exchange (9).
 */
export const athHandshake = fp(athHandshakePlugin, { fastify: '5.x', name: '@athkit/fastify/handshake' });
