/**
 * The brief's rule "never log a stack trace", for the plugin's own 5xx log line: whatever logger the
 * app gives fastify, an unexpected failure is logged with its type, code and message only.
 */
import { MemoryStore } from '@athkit/core';
import Fastify from 'fastify';
import { describe, expect, it } from 'vitest';
import { athFastify } from '../src/index.js';

describe('5xx log lines', () => {
  it('an unexpected store failure (here: reading a token) is a generic 500 and logs type and message, never a stack', async () => {
    const lines: string[] = [];
    const store = new MemoryStore();
    const failure = Object.assign(new Error('disk on fire'), { code: 'EIO' });
    for (const method of ['getAgent', 'getToken', 'revokeToken'] as const) {
      (store as unknown as Record<string, () => never>)[method] = () => {
        throw failure;
      };
    }
    const app = Fastify({ logger: { level: 'info', stream: { write: (line: string) => void lines.push(line) } } });
    await app.register(athFastify, {
      baseUrl: 'https://svc.test',
      service: { app_id: 'svc', name: 'Svc', api_base: '/api' },
      scopes: ['a:read'],
      store,
      authenticateUser: () => null,
      loginUrl: '/login',
    });
    app.get('/api/x', { config: { ath: { scope: 'a:read' } } }, () => 'x');
    try {
      const res = await app.inject({
        method: 'GET',
        url: '/api/x',
        headers: { authorization: 'Bearer ath_tk_xxxxxxxx', 'x-ath-agent-id': 'https://agent.test/.well-known/agent.json' },
      });
      expect(res.statusCode).toBe(500);
      expect(res.json()).toEqual({ code: 'INTERNAL_ERROR', message: expect.any(String) });
      expect(res.body).not.toContain('disk on fire');
      const logged = lines.find((l) => l.includes('ATH request failed'));
      expect(logged, lines.join('')).toBeDefined();
      const entry = JSON.parse(logged!) as { error: Record<string, unknown> };
      expect(entry.error).toEqual({ type: 'Error', message: 'disk on fire', code: 'EIO' });
      expect(logged).not.toContain('stack');
      expect(logged).not.toMatch(/\bat .*\.(ts|js):\d+/);
    } finally {
      await app.close();
    }
  });
});
