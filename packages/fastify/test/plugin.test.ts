import { AthEngine, MemoryStore } from '@athkit/core';
import Fastify from 'fastify';
import { describe, expect, it, vi } from 'vitest';
import { AthFastifyOptionsError, athFastify, type AthFastifyOptions } from '../src/index.js';

const base = (): AthFastifyOptions => ({
  baseUrl: 'https://svc.test',
  service: { app_id: 'svc', name: 'Svc', api_base: '/api' },
  scopes: ['a:read', 'a:write'],
  store: new MemoryStore(),
  authenticateUser: () => null,
  loginUrl: '/login',
});

async function registerError(options: unknown): Promise<Error> {
  const app = Fastify();
  try {
    await app.register(athFastify, options as AthFastifyOptions);
    await app.ready();
  } catch (err) {
    return err as Error;
  } finally {
    await app.close().catch(() => undefined);
  }
  throw new Error('expected the registration to fail');
}

describe('options are validated at register time with readable errors', () => {
  it.each([
    ['baseUrl', { baseUrl: undefined }],
    ['baseUrl', { baseUrl: 'not a url' }],
    ['baseUrl', { baseUrl: 'https://svc.test/prefix' }],
    ['service.app_id', { service: { app_id: 'has space', name: 'x', api_base: '/api' } }],
    ['scopes', { scopes: [] }],
    ['scopes.1', { scopes: ['ok', 'not ok'] }],
    ['store', { store: {} }],
    ['authenticateUser', { authenticateUser: 'alice' }],
    ['tokenTtlSeconds', { tokenTtlSeconds: 7200 }],
    ['identity.allowInsecure.0', { identity: { allowInsecure: ['http://x'] } }],
    ['policy', { policy: { autoApprove: 'yes' } }],
    ['rateLimits.perAgent.batch', { rateLimits: { perAgent: { limit: 10, windowSeconds: 60, batch: 11 } } }],
  ])('names %s', async (key, patch) => {
    const err = await registerError({ ...base(), ...patch });
    expect(err).toBeInstanceOf(AthFastifyOptionsError);
    expect(err.message).toContain(`${key}:`);
  });

  it('names an unknown (misspelt) option', async () => {
    const err = await registerError({ ...base(), scope: ['x'] });
    expect(err).toBeInstanceOf(AthFastifyOptionsError);
    expect(err.message).toContain('"scope"');
  });

  it('a guarded route with an empty scope is a registration error', async () => {
    const app = Fastify();
    await app.register(athFastify, base());
    await expect(async () => {
      app.get('/api/x', { config: { ath: { scope: '' } } }, () => 'x');
      await app.ready();
    }).rejects.toThrow(/config\.ath\.scope/);
    await app.close().catch(() => undefined);
  });
});

describe('fastify integration', () => {
  it('decorates app.ath with the engine; start() on ready, close() on close', async () => {
    const app = Fastify();
    await app.register(athFastify, base());
    expect(app.ath).toBeInstanceOf(AthEngine);
    const start = vi.spyOn(app.ath, 'start');
    const close = vi.spyOn(app.ath, 'close');
    await app.ready();
    expect(start).toHaveBeenCalledTimes(1);
    await app.close();
    expect(close).toHaveBeenCalledTimes(1);
  });

  it("the user's routes keep fastify's defaults: draft-07 schema via fastify's ajv, fastify's error format, text/plain parser", async () => {
    const app = Fastify();
    await app.register(athFastify, base());
    app.post(
      '/things',
      {
        schema: {
          body: {
            $schema: 'http://json-schema.org/draft-07/schema#',
            type: 'object',
            required: ['name'],
            properties: { name: { type: 'string', minLength: 2 }, tags: { type: 'array', items: { type: 'string' } } },
            dependencies: { tags: ['name'] },
          },
        },
      },
      (request) => ({ got: request.body }),
    );
    app.post('/echo', (request) => ({ text: request.body }));
    await app.ready();
    const bad = await app.inject({ method: 'POST', url: '/things', payload: { name: 'x' } });
    expect(bad.statusCode).toBe(400);
    expect(bad.json()).toMatchObject({ statusCode: 400, code: 'FST_ERR_VALIDATION', error: 'Bad Request' });
    expect(bad.json().message).toContain('body/name');
    expect(bad.headers['strict-transport-security']).toBeUndefined();
    const good = await app.inject({ method: 'POST', url: '/things', payload: { name: 'xy' } });
    expect(good.json()).toEqual({ got: { name: 'xy' } });
    const text = await app.inject({ method: 'POST', url: '/echo', headers: { 'content-type': 'text/plain' }, payload: 'hi' });
    expect(text.json()).toEqual({ text: 'hi' });
    const malformed = await app.inject({ method: 'POST', url: '/echo', headers: { 'content-type': 'application/json' }, payload: '{' });
    expect(malformed.json()).toMatchObject({ code: 'FST_ERR_CTP_INVALID_JSON_BODY' });
    await app.close();
  });

  it("the user's own error handler and 404 handler still apply outside /ath", async () => {
    const app = Fastify();
    app.setNotFoundHandler(async (_req, reply) => reply.code(404).send({ mine: true }));
    app.setErrorHandler(async (_err, _req, reply) => reply.code(418).send({ teapot: true }));
    await app.register(athFastify, base());
    app.get('/boom', () => {
      throw new Error('boom');
    });
    await app.ready();
    expect((await app.inject({ method: 'GET', url: '/nowhere' })).json()).toEqual({ mine: true });
    expect((await app.inject({ method: 'GET', url: '/boom' })).statusCode).toBe(418);
    expect((await app.inject({ method: 'GET', url: '/ath/nowhere' })).json()).toMatchObject({ code: 'NOT_FOUND' });
    await app.close();
  });

  it('denyUnmappedApi: false leaves api_base alone', async () => {
    const app = Fastify();
    await app.register(athFastify, { ...base(), denyUnmappedApi: false });
    app.get('/api/open', () => ({ open: true }));
    await app.ready();
    expect((await app.inject({ method: 'GET', url: '/api/open' })).json()).toEqual({ open: true });
    expect((await app.inject({ method: 'GET', url: '/api/none' })).statusCode).toBe(404);
    await app.close();
  });

  it('a policy function is used as the approval policy', async () => {
    const policy = vi.fn(() => ({ status: 'denied' as const, approvals: [] }));
    const app = Fastify();
    await app.register(athFastify, { ...base(), policy });
    await app.ready();
    expect(app.ath.ctx.policy).toBe(policy);
    await app.close();
  });
});
