import { createHash, timingSafeEqual } from 'node:crypto';
import { AthError, type AgentRecord, type AgentState, type AthEngine, type AuditEventType, type Clock, type Store, type TokenRecord } from '@athkit/core';
import { athHeaders, sendAthError } from '@athkit/fastify';
import type { FastifyPluginCallback, FastifyReply, FastifyRequest } from 'fastify';
import type { ProviderRegistry } from './catalog.js';
import { ConfigError, providerToJson, type GatewayConfig } from './config.js';
import type { Secret } from './secret.js';

const digest = (value: string) => createHash('sha256').update(value).digest();

/** `Authorization: Bearer <admin key>`, compared in constant time on SHA-256 digests; false when no key is configured. */
export function adminAuthenticator(key: Secret | null): (authorization: string | undefined) => boolean {
  const expected = key ? digest(key.reveal()) : null;
  return (authorization) => {
    if (!expected || typeof authorization !== 'string') return false;
    const m = /^Bearer[ ]+(\S+)[ ]*$/i.exec(authorization);
    const presented = digest(m?.[1] ?? '');
    return timingSafeEqual(presented, expected) && m !== null;
  };
}

/** An agent as the admin API shows it (never the client secret hash). */
export function agentView(a: AgentRecord): Record<string, unknown> {
  return {
    client_id: a.clientId,
    agent_id: a.agentId,
    state: a.state,
    name: a.name,
    developer: a.developer,
    purpose: a.purpose,
    redirect_uris: a.redirectUris,
    requested_providers: a.requestedProviders,
    approvals: a.approvals,
    approval_expires: new Date(a.approvalExpiresAt).toISOString(),
    created_at: new Date(a.createdAt).toISOString(),
    updated_at: new Date(a.updatedAt).toISOString(),
  };
}

export function tokenView(t: TokenRecord, now: number): Record<string, unknown> {
  return {
    token_hash: t.tokenHash,
    client_id: t.clientId,
    agent_id: t.agentId,
    user_id: t.userId,
    provider_id: t.providerId,
    scopes: t.scopes,
    resource: t.resource,
    created_at: new Date(t.createdAt).toISOString(),
    expires_at: new Date(t.expiresAt).toISOString(),
    revoked_at: t.revokedAt === null ? null : new Date(t.revokedAt).toISOString(),
    live: t.revokedAt === null && t.expiresAt > now,
  };
}

const STATES = new Set<AgentState>(['approved', 'pending', 'denied', 'suspended']);

function intParam(value: unknown, name: string, max: number, fallback: number): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0 || n > max) throw new AthError('INVALID_REQUEST', `${name} must be an integer 0…${max}`, { field: name });
  return n;
}

export interface AdminDeps {
  engine: AthEngine;
  store: Store;
  registry: ProviderRegistry;
  config: GatewayConfig;
  isAdmin: (authorization: string | undefined) => boolean;
  clock: Clock;
}

/**
 * The admin API under /admin (bearer admin key). JSON in, JSON out, ATH error bodies.
 * providers: GET / POST / GET :id / PUT :id / DELETE :id — live, persisted (see ProviderRegistry);
 * agents: GET (?state) / GET :id / POST :id/approve|deny|suspend / DELETE :id — suspend, deny and
 * delete revoke the agent's live tokens (engine.admin); tokens: GET (?client_id&user_id&live) /
 * POST revoke {token | token_hash}; audit: GET (?event&agent_id&since&until&limit).
 */
export function adminRoutes(deps: AdminDeps): FastifyPluginCallback {
  const { engine, store, registry, isAdmin, clock } = deps;
  return (instance, _opts, done) => {
    instance.setErrorHandler((err, request, reply) => {
      if (err instanceof ConfigError) {
        return sendAthError(request, reply, new AthError('INVALID_REQUEST', 'Invalid provider definition', { issues: [...err.issues] }));
      }
      return sendAthError(request, reply, err);
    });
    instance.setNotFoundHandler((request, reply) => sendAthError(request, reply, new AthError('NOT_FOUND', 'No such admin endpoint')));
    instance.addHook('onRequest', (request, reply, next) => {
      athHeaders(reply);
      if (!isAdmin(request.headers.authorization)) {
        reply.header('www-authenticate', 'Bearer realm="ath-gateway-admin"');
        void sendAthError(request, reply, new AthError('TOKEN_INVALID', 'Admin credentials required'));
        return;
      }
      next();
    });
    const ok = (reply: FastifyReply, body: unknown, status = 200) => reply.code(status).send(body);
    const actor = (request: FastifyRequest) => `admin-api@${request.ip}`;

    // providers
    instance.get('/providers', async (_request, reply) => ok(reply, { providers: registry.configs().map(providerToJson) }));
    instance.get('/providers/:id', async (request, reply) => {
      const p = registry.live((request.params as { id: string }).id);
      if (!p) throw new AthError('NOT_FOUND', 'No such provider');
      return ok(reply, providerToJson(p.config));
    });
    instance.post('/providers', async (request, reply) => {
      const body = request.body as { provider_id?: unknown } | undefined;
      if (typeof body?.provider_id === 'string' && registry.live(body.provider_id)) {
        throw new AthError('AGENT_ALREADY_REGISTERED', 'A provider with this provider_id exists; use PUT to replace it');
      }
      const { provider } = await registry.upsert(request.body);
      return ok(reply, providerToJson(provider), 201);
    });
    instance.put('/providers/:id', async (request, reply) => {
      const id = (request.params as { id: string }).id;
      const body = request.body as Record<string, unknown> | undefined;
      if (typeof body !== 'object' || body === null) throw new AthError('INVALID_REQUEST', 'Body must be a provider object');
      if (body['provider_id'] !== undefined && body['provider_id'] !== id) {
        throw new AthError('INVALID_REQUEST', 'provider_id in the body differs from the URL', { field: 'provider_id' });
      }
      const { provider, created } = await registry.upsert({ ...body, provider_id: id });
      return ok(reply, providerToJson(provider), created ? 201 : 200);
    });
    instance.delete('/providers/:id', async (request, reply) => {
      if (!(await registry.remove((request.params as { id: string }).id))) throw new AthError('NOT_FOUND', 'No such provider');
      return reply.code(204).send();
    });

    // agents
    instance.get('/agents', async (request, reply) => {
      const q = request.query as Record<string, string | undefined>;
      const state = q['state'];
      if (state !== undefined && !STATES.has(state as AgentState)) throw new AthError('INVALID_REQUEST', 'Unknown state', { field: 'state' });
      const agents = await store.listAgents({
        ...(state ? { state: state as AgentState } : {}),
        limit: intParam(q['limit'], 'limit', 1000, 100),
        offset: intParam(q['offset'], 'offset', 1_000_000, 0),
      });
      return ok(reply, { agents: agents.map(agentView) });
    });
    instance.get('/agents/:clientId', async (request, reply) => {
      const agent = await store.getAgent((request.params as { clientId: string }).clientId);
      if (!agent) throw new AthError('NOT_FOUND', 'No such agent');
      return ok(reply, agentView(agent));
    });
    instance.post('/agents/:clientId/approve', async (request, reply) => {
      const { clientId } = request.params as { clientId: string };
      const body = (request.body ?? {}) as { approvals?: unknown };
      const approvals = Array.isArray(body.approvals) ? (body.approvals as NonNullable<Parameters<typeof engine.admin.approve>[1]>['approvals']) : undefined;
      const agent = await engine.admin.approve(clientId, { actor: actor(request), ...(approvals ? { approvals } : {}) });
      return ok(reply, agentView(agent));
    });
    instance.post('/agents/:clientId/deny', async (request, reply) =>
      ok(reply, agentView(await engine.admin.deny((request.params as { clientId: string }).clientId, actor(request)))),
    );
    instance.post('/agents/:clientId/suspend', async (request, reply) =>
      ok(reply, agentView(await engine.admin.suspend((request.params as { clientId: string }).clientId, actor(request)))),
    );
    instance.delete('/agents/:clientId', async (request, reply) => {
      await engine.admin.remove((request.params as { clientId: string }).clientId, actor(request));
      return reply.code(204).send();
    });

    // tokens
    instance.get('/tokens', async (request, reply) => {
      const q = request.query as Record<string, string | undefined>;
      const now = clock.now();
      const tokens = await store.listTokens({
        ...(q['client_id'] ? { clientId: q['client_id'] } : {}),
        ...(q['user_id'] ? { userId: q['user_id'] } : {}),
        ...(q['live'] === '1' || q['live'] === 'true' ? { liveAt: now } : {}),
        limit: intParam(q['limit'], 'limit', 1000, 100),
        offset: intParam(q['offset'], 'offset', 1_000_000, 0),
      });
      return ok(reply, { tokens: tokens.map((t) => tokenView(t, now)) });
    });
    instance.post('/tokens/revoke', async (request, reply) => {
      const body = (request.body ?? {}) as { token?: unknown; token_hash?: unknown };
      if (typeof body.token === 'string') {
        await engine.revoke({ token: body.token }, { kind: 'admin', actor: actor(request) });
      } else if (typeof body.token_hash === 'string') {
        await engine.admin.revokeTokenHash(body.token_hash, actor(request));
      } else throw new AthError('INVALID_REQUEST', 'Send token or token_hash', { field: 'token' });
      return ok(reply, { revoked: true });
    });

    // audit
    instance.get('/audit', async (request, reply) => {
      const q = request.query as Record<string, string | undefined>;
      const events = await store.queryAudit({
        ...(q['event'] ? { event: q['event'] as AuditEventType } : {}),
        ...(q['agent_id'] ? { agentId: q['agent_id'] } : {}),
        ...(q['since'] ? { since: q['since'] } : {}),
        ...(q['until'] ? { until: q['until'] } : {}),
        limit: intParam(q['limit'], 'limit', 10_000, 100),
      });
      return ok(reply, { events });
    });
    done();
  };
}
