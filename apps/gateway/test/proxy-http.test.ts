/**
 * The proxy through the gateway's HTTP layer (threats F, checklist H): fidelity (every method,
 * binary and streamed bodies, queries, upstream errors), and attacks sent over raw sockets where a
 * client library would normalise (path escapes, smuggling, Host), size limits, timeouts.
 */
import { createHash, randomBytes } from 'node:crypto';
import { request as httpRequest } from 'node:http';
import { connect } from 'node:net';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { echo } from './support/upstream-server.js';
import { Stack } from './support/stack.js';
import { createLogger } from '../src/observability.js';

/** Sends raw bytes and returns the raw response text (the request should ask for Connection: close). */
function raw(url: string, data: string | Buffer): Promise<string> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const socket = connect(Number(port), hostname, () => socket.write(data));
    const chunks: Buffer[] = [];
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.on('error', reject);
    socket.on('close', () => resolve(Buffer.concat(chunks).toString('latin1')));
    socket.setTimeout(5000, () => socket.destroy());
  });
}
const statusOf = (response: string) => Number(/^HTTP\/1\.1 (\d{3})/.exec(response)?.[1] ?? 0);

// Every case runs twice: with debug logs and the default per-agent rate limit every call takes the
// fastify route; at info level without a per-agent limit, GETs whose token and upstream token are
// cached take the proxy fast path (server.ts). Both must behave alike.
describe.each([
  { path: 'fastify route', logLevel: 'debug' as const, perAgent: { limit: 600, windowSeconds: 60 } },
  { path: 'fast path for cached GETs', logLevel: 'info' as const, perAgent: false as const },
])('proxy over HTTP ($path)', ({ logLevel, perAgent }) => {
  let s: Stack;
  let token = '';
  let readOnly = '';
  beforeAll(async () => {
    s = await Stack.start({ logLevel, config: { limits: { proxyBodyBytes: 2 * 1024 * 1024 }, rateLimits: { perAgent, perIp: false } } });
    token = (await s.fullFlow(['mail:read', 'mail:send'])).token;
    readOnly = (await s.fullFlow(['mail:read'])).token;
  });
  afterAll(() => s.close());
  beforeEach(() => {
    s.upstream.handler = echo;
  });
  const hdr = () => `Authorization: Bearer ${token}\r\nX-ATH-Agent-ID: ${s.agent.agentId}\r\n`;

  it('forwards every mapped method with body bytes, content-type and query unchanged (C-159)', async () => {
    for (const method of ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE']) {
      const withBody = !['GET', 'HEAD'].includes(method);
      const body = withBody ? JSON.stringify({ method, n: 1, ü: 'ß' }) : undefined;
      const res = await s.proxy(`/v1/messages/42?a=1&b=%2F&c`, token, {
        method,
        ...(body ? { body, headers: { 'content-type': 'application/json; charset=utf-8' } } : {}),
      });
      expect(res.status, method).toBe(200);
      if (method === 'HEAD') continue;
      const rec = (await res.json()) as { method: string; rawPath: string; headers: Record<string, string>; bodyLength: number; bodySha256: string };
      expect(rec.method).toBe(method);
      expect(rec.rawPath).toBe('/api/v1/messages/42?a=1&b=%2F&c');
      if (body) {
        expect(rec.headers['content-type']).toBe('application/json; charset=utf-8');
        expect(rec.bodySha256).toBe(createHash('sha256').update(body).digest('hex'));
      }
    }
    const head = s.upstream.requests.filter((r) => r.method === 'HEAD');
    expect(head.length).toBeGreaterThan(0);
  });

  it('binary request bodies arrive byte for byte; binary responses come back unchanged', async () => {
    const data = randomBytes(1024 * 1024);
    const res = await s.proxy('/v1/messages/bin', token, { method: 'PUT', body: data, headers: { 'content-type': 'application/octet-stream' } });
    const rec = (await res.json()) as { bodyLength: number; bodySha256: string };
    expect(rec.bodyLength).toBe(data.length);
    expect(rec.bodySha256).toBe(createHash('sha256').update(data).digest('hex'));

    s.upstream.handler = (_req, res) => res.writeHead(200, { 'content-type': 'image/png' }).end(data);
    const down = await s.proxy('/v1/messages/img', token);
    expect(Buffer.from(await down.arrayBuffer()).equals(data)).toBe(true);
  });

  it('streams both ways: chunked upload without length, and a response the agent reads before it ends', async () => {
    // Upload in chunks with no Content-Length.
    const chunks = Array.from({ length: 8 }, () => randomBytes(64 * 1024));
    const status = await new Promise<{ status: number; body: string }>((resolve, reject) => {
      const u = new URL(`${s.url}/ath/proxy/mail/v1/messages/stream`);
      const req = httpRequest(
        { host: u.hostname, port: u.port, path: u.pathname, method: 'POST', headers: { authorization: `Bearer ${token}`, 'x-ath-agent-id': s.agent.agentId, 'content-type': 'application/octet-stream' } },
        (res) => {
          let text = '';
          res.on('data', (c: Buffer) => (text += c.toString()));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
        },
      );
      req.on('error', reject);
      let i = 0;
      const next = () => {
        if (i === chunks.length) return req.end();
        req.write(chunks[i++]!);
        setTimeout(next, 5);
      };
      next();
    });
    expect(status.status).toBe(200);
    const rec = JSON.parse(status.body) as { bodyLength: number; bodySha256: string; headers: Record<string, string> };
    expect(rec.bodyLength).toBe(8 * 64 * 1024);
    expect(rec.bodySha256).toBe(createHash('sha256').update(Buffer.concat(chunks)).digest('hex'));

    // Download: the first chunk reaches the agent while the upstream is still holding the rest.
    let release!: () => void;
    const held = new Promise<void>((r) => (release = r));
    s.upstream.handler = (_req, res) => {
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.write('first;');
      void held.then(() => res.end('second'));
    };
    const res = await s.proxy('/v1/messages/slow', token);
    const reader = res.body!.getReader();
    const first = await reader.read();
    expect(Buffer.from(first.value).toString()).toBe('first;');
    release();
    let rest = '';
    for (let r = await reader.read(); !r.done; r = await reader.read()) rest += Buffer.from(r.value).toString();
    expect(rest).toBe('second');
  });

  it('upstream errors and redirects pass through unchanged (C-163, F8)', async () => {
    s.upstream.handler = (_req, res) => res.writeHead(404, { 'content-type': 'application/json' }).end('{"e":1}');
    let res = await s.proxy('/v1/messages/1', token);
    expect(res.status).toBe(404);
    expect(await res.text()).toBe('{"e":1}');
    s.upstream.handler = (_req, res) => res.writeHead(500, { 'content-type': 'text/plain' }).end('boom');
    res = await s.proxy('/v1/messages/1', token);
    expect(res.status).toBe(500);
    expect(await res.text()).toBe('boom');
    s.upstream.handler = (_req, res) => res.writeHead(302, { location: 'http://127.0.0.2:1/steal', 'set-cookie': 'x=1' }).end();
    res = await s.proxy('/v1/messages/1', token, { redirect: 'manual' });
    expect(res.status).toBe(302);
    expect(res.headers.get('location')).toBe('http://127.0.0.2:1/steal');
    expect(res.headers.get('set-cookie')).toBeNull();
  });

  it('path escapes over raw sockets: 400/403/404 and the upstream sees nothing (F1, F2, F5, C-162)', async () => {
    const variants = [
      '/ath/proxy/mail/v1/messages/../admin',
      '/ath/proxy/mail/v1/messages/%2e%2e/admin',
      '/ath/proxy/mail/v1/messages/.%2E/admin',
      '/ath/proxy/mail/v1/messages/%2E%2e/admin',
      '/ath/proxy/mail/v1/messages/..%2fadmin',
      '/ath/proxy/mail/v1/messages/%2f../admin',
      '/ath/proxy/mail/v1/messages/..\\admin',
      '/ath/proxy/mail/v1/messages/..;/admin',
      '/ath/proxy/mail/v1/messages/%c0%ae%c0%ae/admin',
      '/ath/proxy/mail/v1/messages/%EF%BC%8E%EF%BC%8E/admin',
      '/ath/proxy/mail/v1/messages/%00',
      '/ath/proxy/mail/v1/messages%2F..%2Fadmin',
      '/ath/proxy/mail//127.0.0.2:9/x',
      '/ath/proxy/mail/\\127.0.0.2:9/x',
      '/ath/proxy/mail/@127.0.0.2:9/x',
      '/ath/proxy/mail@127.0.0.2:9/x',
      '/ath/proxy/MAIL/v1/messages',
      '/ath/proxy/%6dail/v1/messages',
      '/ath/proxy/mail%2Fx/v1/messages',
      '/ath/proxy/mail/v1/messages?_method=DELETE',
      '/ath/proxy/mail/v1//messages',
    ];
    const before = s.upstream.hits;
    for (const path of variants) {
      const response = await raw(s.url, `GET ${path} HTTP/1.1\r\nHost: x\r\n${hdr()}Connection: close\r\n\r\n`);
      expect([400, 403, 404], path).toContain(statusOf(response));
      expect(response, path).toMatch(/"code":"[A-Z_]+"/);
    }
    expect(s.upstream.hits).toBe(before);
  });

  it('C-156/C-166 (threats F10): an unknown provider is PROVIDER_MISMATCH after the token checks, never a provider oracle', async () => {
    const before = s.upstream.hits;
    const res = await fetch(`${s.url}/ath/proxy/calendar/v1/x`, { headers: { authorization: `Bearer ${token}`, 'x-ath-agent-id': s.agent.agentId } });
    expect(res.status).toBe(403);
    expect(((await res.json()) as { code: string }).code).toBe('PROVIDER_MISMATCH');
    // Without a valid token the caller learns nothing about which providers exist.
    const anonymous = await fetch(`${s.url}/ath/proxy/calendar/v1/x`);
    expect(anonymous.status).toBe(401);
    expect(((await anonymous.json()) as { code: string }).code).toBe('TOKEN_INVALID');
    const wrongAgent = await fetch(`${s.url}/ath/proxy/calendar/v1/x`, { headers: { authorization: `Bearer ${token}`, 'x-ath-agent-id': 'https://other.example/agent.json' } });
    expect(((await wrongAgent.json()) as { code: string }).code).toBe('AGENT_IDENTITY_MISMATCH');
    expect(s.upstream.hits).toBe(before);
  });

  it('hop-by-hop, ATH, forwarding and override headers never reach the upstream; Host is the upstream host (F6, F7, C-160)', async () => {
    const response = await raw(
      s.url,
      `POST /ath/proxy/mail/v1/messages/9?q=1 HTTP/1.1\r\nHost: 127.0.0.2:9\r\n${hdr()}` +
        'Connection: close, X-Hop-Secret\r\nX-Hop-Secret: 1\r\nKeep-Alive: timeout=5\r\nTE: trailers\r\nTrailer: X-T\r\n' +
        'Proxy-Authorization: Basic eA==\r\nProxy-Connection: keep-alive\r\nCookie: ath_bind_x=1\r\nX-Forwarded-For: 1.2.3.4\r\n' +
        'X-Forwarded-Host: evil\r\nX-Forwarded-Proto: http\r\nForwarded: for=1.2.3.4\r\nX-Real-IP: 1.2.3.4\r\n' +
        'X-HTTP-Method-Override: DELETE\r\nX-ATH-Extra: 1\r\nX-Custom: kept\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello',
    );
    expect(statusOf(response)).toBe(200);
    const rec = s.upstream.requests.at(-1)!;
    expect(rec.rawPath).toBe('/api/v1/messages/9?q=1');
    expect(rec.headers['host']).toBe(new URL(s.upstream.origin).host);
    expect(rec.headers['x-custom']).toBe('kept');
    expect(rec.bodyLength).toBe(5);
    for (const h of ['x-hop-secret', 'keep-alive', 'te', 'trailer', 'proxy-authorization', 'proxy-connection', 'cookie', 'x-forwarded-for', 'x-forwarded-host', 'x-forwarded-proto', 'forwarded', 'x-real-ip', 'x-http-method-override', 'x-ath-extra', 'x-ath-agent-id']) {
      expect(rec.headers[h], h).toBeUndefined();
    }
    expect(rec.headerNames.filter((n) => n === 'authorization')).toHaveLength(1);
    expect(rec.headers['authorization']).not.toContain(token);
  });

  it('request smuggling shapes are refused by the parser (F7)', async () => {
    const before = s.upstream.hits;
    const both = await raw(s.url, `POST /ath/proxy/mail/v1/messages/1 HTTP/1.1\r\nHost: x\r\n${hdr()}Content-Length: 4\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n0\r\n\r\n`);
    expect(statusOf(both)).toBe(400);
    const x = await raw(s.url, `POST /ath/proxy/mail/v1/messages/1 HTTP/1.1\r\nHost: x\r\n${hdr()}Transfer-Encoding: xchunked\r\nConnection: close\r\n\r\n0\r\n\r\n`);
    expect(statusOf(x)).toBe(400);
    const dup = await raw(s.url, `GET /ath/proxy/mail/v1/messages HTTP/1.1\r\nHost: x\r\n${hdr()}X-ATH-Agent-ID: other\r\nConnection: close\r\n\r\n`);
    expect(statusOf(dup)).toBe(400);
    expect(s.upstream.hits).toBe(before);
  });

  it('an absolute-form request target never reaches another host (F6)', async () => {
    const before = s.upstream.hits;
    const response = await raw(s.url, `GET http://127.0.0.2:9/ath/proxy/mail/v1/messages HTTP/1.1\r\nHost: 127.0.0.2:9\r\n${hdr()}Connection: close\r\n\r\n`);
    const status = statusOf(response);
    if (status === 200) expect(s.upstream.requests.at(-1)!.headers['host']).toBe(new URL(s.upstream.origin).host);
    else expect([400, 404]).toContain(status);
    expect(s.upstream.hits - before).toBeLessThanOrEqual(1);
  });

  it('oversized bodies → 413 before the upstream gets more than the limit (F12, H1)', async () => {
    const before = s.upstream.hits;
    const declared = await raw(s.url, `POST /ath/proxy/mail/v1/messages/1 HTTP/1.1\r\nHost: x\r\n${hdr()}Content-Length: 52428800\r\nConnection: close\r\n\r\n` + 'x'.repeat(1000));
    expect(statusOf(declared)).toBe(413);
    expect(s.upstream.hits).toBe(before);

    // Chunked past the limit: the gateway stops forwarding at the limit.
    const result = await new Promise<{ status: number }>((resolve) => {
      const u = new URL(`${s.url}/ath/proxy/mail/v1/messages/big`);
      const req = httpRequest(
        { host: u.hostname, port: u.port, path: u.pathname, method: 'POST', headers: { authorization: `Bearer ${token}`, 'x-ath-agent-id': s.agent.agentId } },
        (res) => {
          res.resume();
          res.on('error', () => resolve({ status: res.statusCode ?? -1 }));
          res.on('end', () => resolve({ status: res.statusCode ?? 0 }));
        },
      );
      req.on('error', () => resolve({ status: -1 }));
      const chunk = randomBytes(256 * 1024);
      let sent = 0;
      const pump = () => {
        while (sent < 4 * 1024 * 1024) {
          sent += chunk.length;
          if (!req.write(chunk)) return void req.once('drain', pump);
        }
        req.end();
      };
      pump();
    });
    expect([413, -1]).toContain(result.status);
    const big = s.upstream.requests.filter((r) => r.rawPath === '/api/v1/messages/big');
    for (const r of big) expect(r.bodyLength).toBeLessThanOrEqual(2 * 1024 * 1024);
  });

  it('token, agent, provider and scope are checked in that order and the upstream is not called (C-151…C-158, C-166)', async () => {
    const before = s.upstream.hits;
    const call = async (path: string, headers: Record<string, string>, method = 'GET') => {
      const res = await fetch(`${s.url}/ath/proxy/${path}`, { method, headers });
      return { status: res.status, code: ((await res.json()) as { code: string }).code };
    };
    expect(await call('mail/v1/messages', {})).toEqual({ status: 401, code: 'TOKEN_INVALID' });
    expect(await call('mail/v1/messages', { authorization: 'Bearer nope', 'x-ath-agent-id': s.agent.agentId })).toEqual({ status: 401, code: 'TOKEN_INVALID' });
    expect(await call('mail/v1/messages', { authorization: `Bearer ${token}` })).toEqual({ status: 403, code: 'AGENT_IDENTITY_MISMATCH' });
    expect(await call('mail/v1/messages', { authorization: `Bearer ${token}`, 'x-ath-agent-id': s.agents[1]!.agentId })).toEqual({ status: 403, code: 'AGENT_IDENTITY_MISMATCH' });
    expect(await call('mail/v1/unmapped', { authorization: `Bearer ${token}`, 'x-ath-agent-id': s.agent.agentId }, 'DELETE')).toEqual({ status: 403, code: 'SCOPE_NOT_APPROVED' });
    expect(await call('mail/v1/messages/send', { authorization: `Bearer ${readOnly}`, 'x-ath-agent-id': s.agent.agentId }, 'POST')).toEqual({ status: 403, code: 'SCOPE_NOT_APPROVED' });
    expect(await call(`mail/v1/messages?access_token=${token}`, { 'x-ath-agent-id': s.agent.agentId })).toEqual({ status: 401, code: 'TOKEN_INVALID' });
    expect(s.upstream.hits).toBe(before);
  });

  it('upstream down → 502, upstream hanging → 504, neither naming the upstream (C-165, F12, F14)', async () => {
    s.upstream.handler = () => undefined; // never answers
    const hang = await s.proxy('/v1/messages/1', token);
    expect(hang.status).toBe(504);
    const body = await hang.text();
    expect(body).toContain('UPSTREAM_TIMEOUT');
    expect(body).not.toContain(new URL(s.upstream.origin).port);
  });

  it('an agent that goes away before the upstream answers aborts the upstream request (no wait for the 2 s timeout)', async () => {
    expect((await s.proxy('/v1/messages/warm', token)).status).toBe(200); // fills the caches the fast path reads
    let arrivedAt = 0;
    let upstreamClosed!: () => void;
    const closed = new Promise<number>((resolve) => (upstreamClosed = () => resolve(performance.now())));
    const arrived = new Promise<void>((resolve) => {
      s.upstream.handler = (_req, res) => {
        arrivedAt = performance.now();
        res.on('close', upstreamClosed); // never answered: only an abort (or the timeout) closes it
        resolve();
      };
    });
    const { hostname, port } = new URL(s.url);
    const agent = connect(Number(port), hostname, () =>
      agent.write(`GET /ath/proxy/mail/v1/messages/gone HTTP/1.1\r\nHost: ${hostname}:${port}\r\n${hdr()}\r\n`),
    );
    agent.on('error', () => undefined);
    await arrived;
    agent.destroy();
    const closedAt = await closed;
    // provider timeout_ms is 2000: a close this early can only be the abort.
    expect(closedAt - arrivedAt).toBeLessThan(1500);
    // The gateway is unharmed and the next call on the same path works.
    s.upstream.handler = echo;
    expect((await s.proxy('/v1/messages/gone', token)).status).toBe(200);
  });

  it('a call answered 204 after 300 ms is timed from its start, also when the fast path hands the answer to fastify', async () => {
    expect((await s.proxy('/v1/messages/warm', token)).status).toBe(200);
    const durationSum = async () => {
      const text = await (await fetch(`${s.url}/metrics`)).text();
      return Number(/^ath_gateway_http_request_duration_seconds_sum\{route="\/ath\/proxy\/\*"\} (\S+)$/m.exec(text)?.[1]);
    };
    const before = await durationSum();
    s.upstream.handler = (_req, res) => setTimeout(() => res.writeHead(204).end(), 300);
    expect((await s.proxy('/v1/messages/slow', token)).status).toBe(204);
    expect((await durationSum()) - before).toBeGreaterThanOrEqual(0.3);
  });

  it(`GETs with cached tokens ${logLevel === 'info' ? 'take' : 'never take'} the fast path (ath_gateway_proxy_fast_path_total)`, async () => {
    const counters = async () => {
      const text = await (await fetch(`${s.url}/metrics`)).text();
      const read = (re: RegExp) => Number(re.exec(text)?.[1] ?? 0);
      return {
        fast: read(/^ath_gateway_proxy_fast_path_total (\d+)$/m),
        answered: read(/^ath_gateway_http_requests_total\{route="\/ath\/proxy\/\*",method="GET",status="200"\} (\d+)$/m),
        timed: read(/^ath_gateway_http_request_duration_seconds_count\{route="\/ath\/proxy\/\*"\} (\d+)$/m),
      };
    };
    const before = await counters();
    for (let i = 0; i < 3; i++) expect((await s.proxy('/v1/messages', token)).status).toBe(200);
    const after = await counters();
    if (logLevel === 'info') expect(after.fast - before.fast).toBeGreaterThanOrEqual(2); // the first call may fill the caches
    else expect(after.fast).toBe(0);
    // Either way each call is counted and timed once, after its response finished.
    expect(after.answered - before.answered).toBe(3);
    expect(after.timed - before.timed).toBe(3);
  });

  it('a provider changed through the admin API applies to the next call: scope map and api_base (no stale route)', async () => {
    const uncached = async (path: string) => {
      // Twice: the change drops the provider's upstream tokens, so the first call refills the caches.
      const first = await s.proxy(path, token);
      const second = await s.proxy(path, token);
      expect(second.status).toBe(first.status);
      return second;
    };
    expect((await uncached('/v1/me')).status).toBe(200);
    const def = (await s.admin('GET', '/providers/mail')).body as { scope_map: { path: string }[]; api_base: string };
    try {
      expect((await s.admin('PUT', '/providers/mail', { ...def, scope_map: def.scope_map.filter((r) => r.path !== '/v1/me') })).status).toBe(200);
      const unmapped = await uncached('/v1/me');
      expect(unmapped.status).toBe(403);
      expect(((await unmapped.json()) as { code: string }).code).toBe('SCOPE_NOT_APPROVED');

      expect((await s.admin('PUT', '/providers/mail', { ...def, api_base: `${s.upstream.origin}/moved/` })).status).toBe(200);
      const moved = await uncached('/v1/me');
      expect(moved.status).toBe(200);
      expect(((await moved.json()) as { rawPath: string }).rawPath).toBe('/moved/v1/me');
    } finally {
      expect((await s.admin('PUT', '/providers/mail', def)).status).toBe(200);
    }
    const back = await uncached('/v1/me');
    expect(((await back.json()) as { rawPath: string }).rawPath).toBe('/api/v1/me');
  });

  it('serves Prometheus metrics with request, handshake and upstream counters', async () => {
    const res = await fetch(`${s.url}/metrics`);
    const text = await res.text();
    expect(text).toContain('ath_gateway_http_requests_total');
    expect(text).toMatch(/ath_gateway_handshake_outcomes_total\{step="token",outcome="ok"\} \d+/);
    expect(text).toMatch(/ath_gateway_proxy_upstream_responses_total\{provider="mail",status="200"\} \d+/);
    expect(text).toMatch(/ath_gateway_proxy_upstream_responses_total\{provider="mail",status="UPSTREAM_TIMEOUT"\} 1/);
    expect((await fetch(`${s.url}/healthz`)).status).toBe(200);
    expect(await (await fetch(`${s.url}/readyz`)).json()).toEqual({ status: 'ready' });
  });
});

describe('rate limits and shutdown', () => {
  it('per-agent limit on the proxy: 429 RATE_LIMITED with Retry-After; another agent is unaffected (C-217, H8)', async () => {
    const s = await Stack.start({ config: { rateLimits: { perAgent: { limit: 3, windowSeconds: 60 } } } });
    try {
      const a = (await s.fullFlow(['mail:read'])).token;
      const b = (await s.fullFlow(['mail:read'], s.agents[1])).token;
      const statuses: number[] = [];
      for (let i = 0; i < 5; i++) statuses.push((await s.proxy('/v1/messages', a)).status);
      expect(statuses).toEqual([200, 200, 200, 429, 429]);
      const limited = await s.proxy('/v1/messages', a);
      expect(Number(limited.headers.get('retry-after'))).toBeGreaterThan(0);
      expect(((await limited.json()) as { code: string }).code).toBe('RATE_LIMITED');
      expect((await s.proxy('/v1/messages', b, { agent: s.agents[1]! })).status).toBe(200);
    } finally {
      await s.close();
    }
  });

  it('with a per-agent batch the limit holds exactly, and calls served from held units take the fast path (C-217)', async () => {
    // A day-long window: the counts below assume the whole test falls in one window.
    const s = await Stack.start({
      config: { rateLimits: { perAgent: { limit: 12, windowSeconds: 86_400, batch: 4 }, perIp: false } },
      gateway: { logger: createLogger('info', { write: () => true } as unknown as NodeJS.WritableStream) },
    });
    try {
      const { token } = await s.fullFlow(['mail:read']);
      const fastPath = async () => Number(/^ath_gateway_proxy_fast_path_total (\d+)$/m.exec(await (await fetch(`${s.url}/metrics`)).text())?.[1] ?? 0);
      const before = await fastPath();
      const statuses: number[] = [];
      for (let i = 0; i < 14; i++) statuses.push((await s.proxy('/v1/messages', token)).status);
      expect(statuses).toEqual([...Array<number>(12).fill(200), 429, 429]);
      // Three batches of 4: each batch's first call goes through fastify (a store write), the other
      // three are served from held units by the fast path.
      expect((await fastPath()) - before).toBe(9);
      // The shared count: 3 granted batches + 1 refused one, 4 units each (probed with one more unit);
      // the second refusal came from the instance's memory of the first, without a store write.
      const probe = await s.gw.store.hitRateLimit(`api:agent:${s.agent.clientId}`, 12, 86_400_000, Date.now(), 1);
      expect(probe.count - 1).toBe(16);
    } finally {
      await s.close();
    }
  });

  it('per-IP limit on registration (C-219)', async () => {
    const s = await Stack.start({ config: { rateLimits: { perIp: { limit: 2, windowSeconds: 60 } } } });
    try {
      const send = () => s.post('/ath/agents/register', {});
      expect((await send()).status).toBe(400);
      expect((await send()).status).toBe(400);
      const third = await send();
      expect(third.status).toBe(429);
      expect(third.headers.get('retry-after')).toBeTruthy();
    } finally {
      await s.close();
    }
  });

  it('SIGTERM-style shutdown drains in-flight proxied calls; new ones get 503 (I7)', async () => {
    const s = await Stack.start();
    try {
      const { token } = await s.fullFlow(['mail:read']);
      let release!: () => void;
      const held = new Promise<void>((r) => (release = r));
      let arrived!: () => void;
      const reached = new Promise<void>((r) => (arrived = r));
      s.upstream.handler = (_req, res) => {
        arrived();
        void held.then(() => res.writeHead(200, { 'content-type': 'text/plain' }).end('done'));
      };
      const inflight = s.proxy('/v1/messages', token);
      await reached;
      const stopping = s.gw.shutdown();
      const rejected = await s.proxy('/v1/messages', token).catch(() => null);
      if (rejected) expect(rejected.status).toBe(503);
      release();
      const res = await inflight;
      expect(res.status).toBe(200);
      expect(await res.text()).toBe('done');
      await stopping;
    } finally {
      await s.close();
    }
  });
});
