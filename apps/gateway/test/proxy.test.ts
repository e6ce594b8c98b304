import { createHash, randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import { connect, type AddressInfo } from 'node:net';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { AthError, errorHeaders, StoreUnavailableError, toAthError } from '@athkit/core';
import { request } from 'undici';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { buildUpstreamTarget, splitProxyUrl } from '../src/canonical-path.js';
import type { UpstreamTokenSource } from '../src/oauth-bridge.js';
import { downstreamResponseHeaders, upstreamRequestHeaders, UpstreamProxy } from '../src/proxy.js';
import { echo, RecordingUpstream, type RecordedRequest, type UpstreamHandler } from './support/upstream-server.js';

const UPSTREAM_TOKEN = 'upstream-access-token-0123456789';
const ATH_TOKEN = 'ath_tk_agentsTokenMustNeverGoUpstream0000000000';

/** A token source that counts calls; `rejected` switches to a fresh token once. */
class StubTokens implements UpstreamTokenSource {
  calls: { grantId: string; rejected: string | undefined }[] = [];
  current = UPSTREAM_TOKEN;
  getUpstreamAccessToken(grantId: string, options: { rejected?: string } = {}): Promise<string> {
    this.calls.push({ grantId, rejected: options.rejected });
    if (options.rejected === this.current) this.current = 'fresh-upstream-token';
    return Promise.resolve(this.current);
  }
}

/**
 * A minimal front server standing in for the assembled gateway route: raw URL → splitProxyUrl →
 * buildUpstreamTarget → proxy.forward(req as body) → status/headers/body piped back.
 */
class Front {
  server!: Server;
  origin = '';
  apiBase!: URL;
  constructor(readonly proxy: UpstreamProxy) {}

  async start(): Promise<this> {
    this.server = createServer((req, res) => {
      void this.handle(req)
        .then(async (out) => {
          res.writeHead(out.status, out.headers);
          await pipeline(out.body, res);
        })
        .catch((err: unknown) => {
          const e = toAthError(err);
          if (res.headersSent) return res.destroy();
          res.writeHead(e.status, { 'content-type': 'application/json' }).end(JSON.stringify(e.toJSON()));
        });
    });
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    this.origin = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
    return this;
  }

  private handle(req: IncomingMessage) {
    const { target } = splitProxyUrl(req.url ?? '');
    const hasBody = req.headers['content-length'] !== undefined || req.headers['transfer-encoding'] !== undefined;
    return this.proxy.forward({
      grant: { grantId: 'grant-1' },
      target: buildUpstreamTarget(this.apiBase, target),
      method: req.method ?? 'GET',
      headers: req.headers,
      body: hasBody ? req : null,
    });
  }

  close(): Promise<void> {
    return new Promise((resolve) => {
      this.server.closeAllConnections();
      this.server.close(() => resolve());
    });
  }
}

/** Sends a raw HTTP/1.1 request and returns the whole raw response (the server closes the connection). */
function rawRequest(origin: string, text: string): Promise<string> {
  const { hostname, port } = new URL(origin);
  return new Promise((resolve, reject) => {
    const socket = connect(Number(port), hostname, () => socket.write(text)); // no half-close: the server closes (Connection: close)
    const chunks: Buffer[] = [];
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.on('end', () => resolve(Buffer.concat(chunks).toString('latin1')));
    socket.on('error', reject);
    socket.setTimeout(5000, () => socket.destroy(new Error('raw request timed out')));
  });
}

let upstream: RecordingUpstream;
let canary: RecordingUpstream;
let tokens: StubTokens;
let proxy: UpstreamProxy;
let front: Front;

beforeAll(async () => {
  upstream = await new RecordingUpstream().start();
  canary = await new RecordingUpstream('127.0.0.2').start();
  tokens = new StubTokens();
  proxy = new UpstreamProxy({ tokens, timeoutMs: 2000, connectTimeoutMs: 2000 });
  front = await new Front(proxy).start();
});
afterAll(async () => {
  await front.close();
  await proxy.close();
  await upstream.close();
  await canary.close();
});
beforeEach(() => {
  upstream.handler = echo;
  upstream.requests.length = 0;
  tokens.calls.length = 0;
  tokens.current = UPSTREAM_TOKEN;
  front.apiBase = new URL(`${upstream.origin}/api/`);
});

async function call(path: string, init: { method?: string; headers?: Record<string, string>; body?: Buffer | string | Readable } = {}) {
  const res = await request(front.origin + '/ath/proxy/mail' + path, {
    method: (init.method ?? 'GET') as 'GET',
    headers: { authorization: `Bearer ${ATH_TOKEN}`, 'x-ath-agent-id': 'https://agent.test/.well-known/agent.json', ...init.headers },
    body: init.body ?? null,
    headersTimeout: 10_000,
  });
  const body = Buffer.from(await res.body.arrayBuffer());
  return { status: res.statusCode, headers: res.headers, body, text: body.toString() };
}

const last = (): RecordedRequest => upstream.requests.at(-1)!;

/** A loopback port that was just listening and is now closed: connecting to it is refused. */
async function closedPort(): Promise<number> {
  const dead = createServer();
  await new Promise<void>((resolve) => dead.listen(0, '127.0.0.1', resolve));
  const port = (dead.address() as AddressInfo).port;
  await new Promise<void>((resolve) => dead.close(() => resolve()));
  return port;
}

/** An upstream that rejects every token but the refreshed one as `invalid_token` (threats F14). */
const acceptsOnlyTheFreshToken: UpstreamHandler = (req, res) => {
  if (req.headers['authorization'] === 'Bearer fresh-upstream-token') return void res.writeHead(200).end('fresh');
  res.writeHead(401, { 'www-authenticate': 'Bearer error="invalid_token"' }).end('expired');
};

describe('forwarding (C-150, C-159)', () => {
  it('GET: raw path, raw query, upstream token, upstream Host, response passed through', async () => {
    const res = await call('/v1/items?x=1&y=%2F..%2F&z=a+b&w=%252e&empty=&flag');
    expect(res.status).toBe(200);
    expect(res.headers['x-upstream']).toBe('yes');
    const rec = last();
    expect(rec.method).toBe('GET');
    expect(rec.rawPath).toBe('/api/v1/items?x=1&y=%2F..%2F&z=a+b&w=%252e&empty=&flag');
    expect(rec.headers['authorization']).toBe(`Bearer ${UPSTREAM_TOKEN}`);
    expect(rec.headers['host']).toBe(new URL(upstream.origin).host);
    expect(rec.headerNames.filter((n) => n === 'authorization')).toHaveLength(1);
    expect(JSON.parse(res.text)).toEqual(JSON.parse(JSON.stringify(rec)));
    expect(tokens.calls).toEqual([{ grantId: 'grant-1', rejected: undefined }]);
  });

  it('double-encoded dot segments are forwarded byte for byte, never decoded (threats F1)', async () => {
    await call('/v1/messages/%252e%252e');
    expect(last().rawPath).toBe('/api/v1/messages/%252e%252e');
  });

  it.each(['POST', 'PUT', 'PATCH', 'DELETE'])('%s with a JSON body: same method, bytes, content-type and query', async (method) => {
    const body = JSON.stringify({ to: 'bob@example.com', text: 'héllo ✓' });
    const res = await call('/v1/messages?draft=1', { method, body, headers: { 'content-type': 'application/json; charset=utf-8' } });
    expect(res.status).toBe(200);
    const rec = last();
    expect(rec.method).toBe(method);
    expect(rec.rawPath).toBe('/api/v1/messages?draft=1');
    expect(rec.headers['content-type']).toBe('application/json; charset=utf-8');
    expect(rec.bodyLength).toBe(Buffer.byteLength(body));
    expect(rec.bodySha256).toBe(createHash('sha256').update(body).digest('hex'));
    expect(rec.headers['content-length']).toBe(String(Buffer.byteLength(body)));
  });

  it('HEAD and DELETE without a body', async () => {
    const head = await call('/v1/items', { method: 'HEAD' });
    expect(head.status).toBe(200);
    expect(head.body).toHaveLength(0);
    expect(last().method).toBe('HEAD');
    await call('/v1/items/1', { method: 'DELETE' });
    expect(last()).toMatchObject({ method: 'DELETE', bodyLength: 0 });
    expect(last().headers['content-length']).toBeUndefined();
  });

  it('any other method the route lets through is forwarded unchanged', async () => {
    await call('/v1/items', { method: 'OPTIONS' });
    expect(last().method).toBe('OPTIONS');
  });

  it('binary bodies, byte for byte', async () => {
    const bytes = randomBytes(1024 * 1024 + 7);
    const res = await call('/v1/blob', { method: 'PUT', body: bytes, headers: { 'content-type': 'application/octet-stream' } });
    expect(res.status).toBe(200);
    expect(last()).toMatchObject({ bodyLength: bytes.length, bodySha256: createHash('sha256').update(bytes).digest('hex') });
    expect(last().headers['content-type']).toBe('application/octet-stream');
  });

  it('a large chunked request body (32 MiB) is streamed through', async () => {
    const chunk = randomBytes(64 * 1024);
    const count = 512;
    const hash = createHash('sha256');
    for (let i = 0; i < count; i++) hash.update(chunk);
    function* gen() {
      for (let i = 0; i < count; i++) yield chunk;
    }
    const res = await call('/v1/upload', { method: 'POST', body: Readable.from(gen()), headers: { 'content-type': 'application/octet-stream' } });
    expect(res.status).toBe(200);
    expect(last().bodyLength).toBe(count * chunk.length);
    expect(last().bodySha256).toBe(hash.digest('hex'));
    expect(last().headers['transfer-encoding']).toBe('chunked');
  }, 30_000);

  it('a large response (64 MiB) is streamed with backpressure, not buffered', async () => {
    const total = 64 * 1024 * 1024;
    const chunk = Buffer.alloc(64 * 1024, 0x61);
    let written = 0;
    upstream.handler = (_req, res) => {
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': String(total) });
      const pump = () => {
        while (written < total) {
          written += chunk.length;
          if (!res.write(chunk)) return void res.once('drain', pump);
        }
        res.end();
      };
      pump();
    };
    const res = await request(front.origin + '/ath/proxy/mail/v1/big', { headersTimeout: 10_000 });
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-length']).toBe(String(total));
    await new Promise((resolve) => setTimeout(resolve, 300)); // the agent does not read yet
    expect(written).toBeLessThan(total / 2); // the upstream was held back, nothing buffered it all
    let received = 0;
    for await (const c of res.body) received += (c as Buffer).length;
    expect(received).toBe(total);
  }, 30_000);
});

describe('upstream responses are not rewritten (C-163)', () => {
  it('404 JSON and 500 text/plain pass through with status, type and body', async () => {
    upstream.handler = (_req, res) => res.writeHead(404, { 'content-type': 'application/json' }).end('{"e":1}');
    const a = await call('/v1/missing');
    expect(a.status).toBe(404);
    expect(a.headers['content-type']).toBe('application/json');
    expect(a.text).toBe('{"e":1}');
    upstream.handler = (_req, res) => res.writeHead(500, { 'content-type': 'text/plain' }).end('upstream broke');
    const b = await call('/v1/broken');
    expect(b.status).toBe(500);
    expect(b.headers['content-type']).toBe('text/plain');
    expect(b.text).toBe('upstream broke');
  });

  it('3xx is returned as is and never followed (threats F8): the canary sees nothing', async () => {
    upstream.handler = (_req, res) => res.writeHead(302, { location: `${canary.origin}/steal` }).end();
    const res = await call('/v1/redirect');
    expect(res.status).toBe(302);
    expect(res.headers['location']).toBe(`${canary.origin}/steal`);
    expect(canary.hits).toBe(0);
    upstream.handler = (_req, res) => res.writeHead(307, { location: '/api/v1/elsewhere' }).end();
    expect((await call('/v1/redirect', { method: 'POST', body: 'x' })).status).toBe(307);
    expect(upstream.requests.filter((r) => r.rawPath.includes('elsewhere'))).toHaveLength(0);
  });

  it('hop-by-hop response headers, those named in Connection, Proxy-* and Set-Cookie are dropped (threats F7)', async () => {
    upstream.handler = (_req, res) => {
      res.setHeader('connection', 'X-Up-Secret');
      res.setHeader('x-up-secret', '1');
      res.setHeader('keep-alive', 'timeout=5');
      res.setHeader('proxy-authenticate', 'Basic realm=x');
      res.setHeader('trailer', 'Expires');
      res.setHeader('set-cookie', ['a=1; HttpOnly', 'b=2']);
      res.setHeader('x-keep', 'yes');
      res.setHeader('cache-control', 'private');
      res.setHeader('content-type', 'text/plain');
      res.end('ok');
    };
    const res = await call('/v1/h');
    expect(res.text).toBe('ok');
    expect(res.headers['x-keep']).toBe('yes');
    expect(res.headers['cache-control']).toBe('private');
    for (const h of ['x-up-secret', 'proxy-authenticate', 'trailer', 'set-cookie']) expect(res.headers[h]).toBeUndefined();
  });
});

describe('request header hygiene (threats F7, C-160)', () => {
  it('over a raw socket: only end-to-end headers, one upstream Authorization and a fresh Host reach the API', async () => {
    const body = '{"a":1}';
    const raw =
      `POST /ath/proxy/mail/v1/messages?q=1 HTTP/1.1\r\n` +
      `Host: 127.0.0.2:9\r\n` +
      `Connection: close, X-Hop-Secret\r\n` +
      `X-Hop-Secret: 1\r\n` +
      `Keep-Alive: timeout=5\r\n` +
      `TE: trailers\r\n` +
      `Trailer: Expires\r\n` +
      `Upgrade: websocket\r\n` +
      `Proxy-Authorization: Basic eDp5\r\n` +
      `Proxy-Connection: keep-alive\r\n` +
      `Cookie: __Host-ath_bind_x=secret; other=1\r\n` +
      `X-Forwarded-For: 1.2.3.4\r\n` +
      `X-Forwarded-Host: evil.test\r\n` +
      `X-Forwarded-Proto: http\r\n` +
      `Forwarded: for=1.2.3.4\r\n` +
      `X-Real-IP: 1.2.3.4\r\n` +
      `Authorization: Bearer ${ATH_TOKEN}\r\n` +
      `Authorization: Bearer second-token\r\n` +
      `X-ATH-Agent-ID: https://agent.test/.well-known/agent.json\r\n` +
      `X-ATH-Anything: 1\r\n` +
      `X-HTTP-Method-Override: DELETE\r\n` +
      `X-HTTP-Method: DELETE\r\n` +
      `X-Method-Override: DELETE\r\n` +
      `X-Custom: keep-me\r\n` +
      `Accept: application/json\r\n` +
      `Content-Type: application/json\r\n` +
      `Content-Length: ${body.length}\r\n` +
      `\r\n` +
      body;
    const response = await rawRequest(front.origin, raw);
    expect(response).toMatch(/^HTTP\/1\.1 200 /);
    const rec = last();
    expect(rec.method).toBe('POST');
    expect(rec.rawPath).toBe('/api/v1/messages?q=1');
    expect(rec.bodyLength).toBe(body.length);
    expect(Object.keys(rec.headers).sort()).toEqual(['accept', 'authorization', 'connection', 'content-length', 'content-type', 'host', 'x-custom']);
    expect(rec.headers['connection']).toBe('keep-alive'); // undici's own, to the upstream only
    expect(rec.headers['authorization']).toBe(`Bearer ${UPSTREAM_TOKEN}`);
    expect(rec.headerNames.filter((n) => n === 'authorization')).toHaveLength(1);
    expect(rec.headers['host']).toBe(new URL(upstream.origin).host);
    expect(rec.headers['content-length']).toBe(String(body.length));
    expect(JSON.stringify(rec)).not.toContain(ATH_TOKEN);
    expect(canary.hits).toBe(0);
  });

  it('upstreamRequestHeaders: arrays kept, Connection-named headers and prefixes dropped, content-length only with a body', () => {
    const out = upstreamRequestHeaders(
      {
        connection: ['keep-alive', 'X-A, x-b'],
        'x-a': '1',
        'x-b': '2',
        'x-c': ['3', '4'],
        'proxy-foo': 'x',
        'x-ath-agent-id': 'a',
        'x-forwarded-port': '80',
        'content-length': '10',
        host: 'evil',
        authorization: 'Bearer ath',
        undefinedHeader: undefined,
      },
      'api.example.com',
      'tok',
      false,
    );
    expect(out).toEqual({ 'x-c': ['3', '4'], host: 'api.example.com', authorization: 'Bearer tok' });
    expect(upstreamRequestHeaders({ 'content-length': '10' }, 'h', 't', true)['content-length']).toBe('10');
  });

  it('downstreamResponseHeaders', () => {
    expect(
      downstreamResponseHeaders({
        connection: 'close, X-Z',
        'x-z': '1',
        'transfer-encoding': 'chunked',
        'proxy-connection': 'x',
        'set-cookie': ['a=1'],
        'content-length': '5',
        etag: '"1"',
      }),
    ).toEqual({ 'content-length': '5', etag: '"1"' });
  });
});

describe('upstream failures (C-165, threats F8/F12/F14)', () => {
  it('a hanging upstream → 504 UPSTREAM_TIMEOUT within the timeout, no token or URL in the body', async () => {
    upstream.handler = () => {}; // never answers
    const started = Date.now();
    const quick = new UpstreamProxy({ tokens, timeoutMs: 300 });
    const f = await new Front(quick).start();
    f.apiBase = front.apiBase;
    try {
      const res = await request(f.origin + '/ath/proxy/mail/v1/hang');
      const text = await res.body.text();
      expect(res.statusCode).toBe(504);
      expect(JSON.parse(text)).toEqual({ code: 'UPSTREAM_TIMEOUT', message: 'The upstream API did not answer in time', details: { reason: 'timeout' } });
      expect(Date.now() - started).toBeLessThan(3000);
      expect(text).not.toContain(UPSTREAM_TOKEN);
      expect(text).not.toContain(new URL(upstream.origin).port);
    } finally {
      await f.close();
      await quick.close();
    }
  });

  it('the per-request timeout (provider timeout_ms) overrides the default', async () => {
    upstream.handler = () => {};
    const err = await proxy
      .forward({
        grant: { grantId: 'g' },
        target: { origin: upstream.origin, path: '/api/x', host: new URL(upstream.origin).host },
        method: 'GET',
        headers: {},
        timeoutMs: 200,
      })
      .catch((e: unknown) => e);
    expect((err as AthError).code).toBe('UPSTREAM_TIMEOUT');
    expect((err as AthError).status).toBe(504);
  });

  it('a refused connection → 502 OAUTH_ERROR, no address, port or token', async () => {
    const port = await closedPort();
    front.apiBase = new URL(`http://127.0.0.1:${port}/api/`);
    const res = await call('/v1/items');
    expect(res.status).toBe(502);
    expect(JSON.parse(res.text)).toEqual({
      code: 'OAUTH_ERROR',
      message: 'The upstream API is unreachable',
      details: { reason: 'connection_refused' },
    });
    expect(res.text).not.toContain(String(port));
    expect(res.text).not.toContain(UPSTREAM_TOKEN);
  });

  it('a connection dropped by the upstream → 502 OAUTH_ERROR', async () => {
    upstream.handler = (req) => req.socket.destroy();
    const res = await call('/v1/drop');
    expect(res.status).toBe(502);
    expect(JSON.parse(res.text).code).toBe('OAUTH_ERROR');
  });

  it('a token without an upstream grant → 502 OAUTH_ERROR, the upstream is not called', async () => {
    const err = (await proxy
      .forward({ grant: { grantId: null }, target: { origin: upstream.origin, path: '/api/x', host: 'h' }, method: 'GET', headers: {} })
      .catch((e: unknown) => e)) as AthError;
    expect(err.code).toBe('OAUTH_ERROR');
    expect(upstream.hits).toBe(0);
  });

  it('token source errors (refresh failed) surface unchanged and nothing is sent upstream', async () => {
    const failing: UpstreamTokenSource = {
      getUpstreamAccessToken: () => Promise.reject(new AthError('OAUTH_ERROR', 'refresh failed', { reason: 'refresh_failed' })),
    };
    const p = new UpstreamProxy({ tokens: failing });
    const err = (await p
      .forward({ grant: { grantId: 'g' }, target: { origin: upstream.origin, path: '/api/x', host: 'h' }, method: 'GET', headers: {} })
      .catch((e: unknown) => e)) as AthError;
    await p.close();
    expect(err.details).toEqual({ reason: 'refresh_failed' });
    expect(upstream.hits).toBe(0);
  });

  it('401 invalid_token on a GET → one refresh and one retry with the new token (threats F14)', async () => {
    upstream.handler = acceptsOnlyTheFreshToken;
    const res = await call('/v1/items');
    expect(res.status).toBe(200);
    expect(res.text).toBe('fresh');
    expect(upstream.hits).toBe(2);
    expect(tokens.calls).toEqual([
      { grantId: 'grant-1', rejected: undefined },
      { grantId: 'grant-1', rejected: UPSTREAM_TOKEN },
    ]);
  });

  it('401 invalid_token on a POST with a body is passed through, never retried', async () => {
    upstream.handler = (_req, res) => res.writeHead(401, { 'www-authenticate': 'Bearer error="invalid_token"' }).end('expired');
    const res = await call('/v1/messages', { method: 'POST', body: 'x' });
    expect(res.status).toBe(401);
    expect(res.text).toBe('expired');
    expect(upstream.hits).toBe(1);
  });

  it('a 401 that is not invalid_token is passed through without a refresh', async () => {
    upstream.handler = (_req, res) => res.writeHead(401, { 'www-authenticate': 'Basic realm="x"' }).end('no');
    const res = await call('/v1/items');
    expect(res.status).toBe(401);
    expect(tokens.calls).toHaveLength(1);
  });
});

/**
 * The fast path's writer (UpstreamProxy.relay): the response goes into the front server's own
 * ServerResponse as it arrives. `writesThrough` declines 204/304 as the gateway does; those and the
 * F14 retry come back as a ProxyResponse, which this front pipes like the forward() front above.
 */
describe('relay: the upstream response written straight into the agent response', () => {
  interface Seen {
    outcomes: string[];
    bodyFailures: Error[];
  }
  let relayFront: Server;
  let relayOrigin = '';
  let seen: Seen;
  let abortAtOnce = false;
  /** The proxy the relay front uses (the shared one unless a test sets its own). */
  let relayProxy: UpstreamProxy | null = null;

  beforeAll(async () => {
    relayFront = createServer((req, res) => {
      const { target } = splitProxyUrl(req.url ?? '');
      const call = (relayProxy ?? proxy).relay(
        {
          grant: { grantId: 'grant-1' },
          target: buildUpstreamTarget(front.apiBase, target),
          method: req.method ?? 'GET',
          headers: req.headers,
          body: null,
          responseHeaders: { 'strict-transport-security': 'max-age=1' },
        },
        UPSTREAM_TOKEN,
        res,
        {
          writesThrough: (status) => status !== 204 && status !== 304,
          done: (err, outcome) => {
            if (!outcome) {
              seen.outcomes.push(`error:${err instanceof AthError ? err.code : (err as Error).name}`);
              const e = toAthError(err);
              return void res.writeHead(e.status, { 'content-type': 'application/json', ...errorHeaders(e) }).end(JSON.stringify(e.toJSON()));
            }
            if (outcome.relayed) return void seen.outcomes.push(`relayed:${outcome.status}`);
            seen.outcomes.push(`response:${outcome.response.status}`);
            res.writeHead(outcome.response.status, outcome.response.headers);
            void pipeline(outcome.response.body, res).catch(() => undefined);
          },
          bodyFailed: (err) => seen.bodyFailures.push(err),
        },
      );
      if (abortAtOnce) {
        call.abort();
        setTimeout(() => res.writeHead(499).end(), 200);
      }
      res.on('close', () => {
        if (!res.writableFinished) call.abort();
      });
    });
    await new Promise<void>((resolve) => relayFront.listen(0, '127.0.0.1', resolve));
    relayOrigin = `http://127.0.0.1:${(relayFront.address() as AddressInfo).port}`;
  });
  afterAll(
    () =>
      new Promise<void>((resolve) => {
        relayFront.closeAllConnections();
        relayFront.close(() => resolve());
      }),
  );
  beforeEach(() => {
    seen = { outcomes: [], bodyFailures: [] };
    abortAtOnce = false;
    relayProxy = null;
  });

  const get = async (path: string) => {
    const res = await request(relayOrigin + '/ath/proxy/mail' + path, { headersTimeout: 10_000 });
    const body = Buffer.from(await res.body.arrayBuffer());
    return { status: res.statusCode, headers: res.headers, body, text: body.toString() };
  };

  it('status, filtered headers (plus the gateway header) and binary body arrive unchanged; the request is the one forward() sends', async () => {
    const data = randomBytes(3 * 1024 * 1024 + 7);
    upstream.handler = (_req, res) =>
      res
        .writeHead(201, { 'content-type': 'image/png', 'set-cookie': 'a=1', 'x-keep': ['1', '2'], connection: 'x-hop', 'x-hop': 'no', 'proxy-foo': 'no' })
        .end(data);
    const res = await get('/v1/items?x=%2F&y');
    expect(res.status).toBe(201);
    expect(res.body.equals(data)).toBe(true);
    expect(res.headers['content-type']).toBe('image/png');
    expect(res.headers['x-keep']).toEqual(['1', '2']);
    expect(res.headers['strict-transport-security']).toBe('max-age=1');
    for (const h of ['set-cookie', 'x-hop', 'proxy-foo']) expect(res.headers[h], h).toBeUndefined();
    expect(seen.outcomes).toEqual(['relayed:201']);
    const rec = last();
    expect(rec.rawPath).toBe('/api/v1/items?x=%2F&y');
    expect(rec.headers['authorization']).toBe(`Bearer ${UPSTREAM_TOKEN}`);
    expect(rec.headers['x-ath-agent-id']).toBeUndefined();
  });

  it('a status the caller declines (204, 304) comes back as a ProxyResponse for the caller to send', async () => {
    upstream.handler = (_req, res) => res.writeHead(304, { etag: '"v1"' }).end();
    const res = await get('/v1/items');
    expect(res.status).toBe(304);
    expect(res.headers['etag']).toBe('"v1"');
    expect(seen.outcomes).toEqual(['response:304']);
  });

  it('401 invalid_token → the body is dropped, one refresh, one retry, and the retried response comes back (threats F14)', async () => {
    upstream.handler = acceptsOnlyTheFreshToken;
    const res = await get('/v1/items');
    expect(res.status).toBe(200);
    expect(res.text).toBe('fresh');
    expect(upstream.requests).toHaveLength(2);
    expect(tokens.calls).toEqual([{ grantId: 'grant-1', rejected: UPSTREAM_TOKEN }]);
    expect(seen.outcomes).toEqual(['response:200']);
  });

  it('F14 on the relay: a failed refresh reaches the caller as it is (a store outage stays 503, not an upstream 502)', async () => {
    upstream.handler = acceptsOnlyTheFreshToken;
    const outage: UpstreamTokenSource = {
      getUpstreamAccessToken: () => Promise.reject(new StoreUnavailableError({ cause: new Error('connect ECONNREFUSED') })),
    };
    relayProxy = new UpstreamProxy({ tokens: outage });
    try {
      const res = await get('/v1/items');
      expect(res.status).toBe(503);
      expect(res.headers['retry-after']).toBe('1');
      expect(JSON.parse(res.text)).toMatchObject({ code: 'INTERNAL_ERROR' });
      expect(seen.outcomes).toEqual(['error:StoreUnavailableError']);
    } finally {
      await relayProxy.close();
    }
  });

  it('F14 on the relay: a rejected response whose body does not end is drained up to a cap, then retried', async () => {
    upstream.handler = (req, res) => {
      if (req.headers['authorization'] === 'Bearer fresh-upstream-token') return void res.writeHead(200).end('fresh');
      res.writeHead(401, { 'www-authenticate': 'Bearer error="invalid_token"' });
      res.write(Buffer.alloc(256 * 1024, 0x61)); // and never ends
    };
    const res = await get('/v1/items');
    expect(res.status).toBe(200);
    expect(res.text).toBe('fresh');
  });

  it('F14 on the relay: an agent that goes away during the retry aborts the retried upstream request', async () => {
    let retriedClosed!: () => void;
    const closed = new Promise<void>((resolve) => (retriedClosed = resolve));
    upstream.handler = (req, res) => {
      if (req.headers['authorization'] !== 'Bearer fresh-upstream-token') {
        return void res.writeHead(401, { 'www-authenticate': 'Bearer error="invalid_token"' }).end('expired');
      }
      res.on('close', retriedClosed); // the retried request hangs until the gateway drops it
    };
    const started = Date.now();
    const controller = new AbortController();
    const pending = request(relayOrigin + '/ath/proxy/mail/v1/items', { signal: controller.signal }).catch(() => undefined);
    while (upstream.requests.length < 2) await new Promise((resolve) => setTimeout(resolve, 10));
    controller.abort();
    await pending;
    await closed;
    // Well before the 2 s upstream timeout of this proxy.
    expect(Date.now() - started).toBeLessThan(1500);
    expect(seen.outcomes).toEqual([]);
  });

  it('upstream down before the head → the ATH error, nothing written to the sink', async () => {
    const port = await closedPort();
    front.apiBase = new URL(`http://127.0.0.1:${port}/api/`);
    const res = await get('/v1/items');
    expect(res.status).toBe(502);
    expect(JSON.parse(res.text)).toEqual({ code: 'OAUTH_ERROR', message: 'The upstream API is unreachable', details: { reason: 'connection_refused' } });
    expect(seen.outcomes).toEqual(['error:OAUTH_ERROR']);
  });

  it('upstream failing mid-body → bodyFailed, and the agent sees a cut response, not a complete one', async () => {
    upstream.handler = (_req, res) => {
      res.writeHead(200, { 'content-length': '100000' });
      res.write(Buffer.alloc(1000, 0x61));
      setTimeout(() => res.socket?.destroy(), 50);
    };
    const err = await get('/v1/items').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(Error);
    expect(seen.outcomes).toEqual(['relayed:200']);
    expect(seen.bodyFailures).toHaveLength(1);
  });

  it('abort() before the request reached a socket: nothing is sent upstream and nothing is reported', async () => {
    abortAtOnce = true;
    const res = await get('/v1/items');
    expect(res.status).toBe(499);
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(upstream.requests).toHaveLength(0);
    expect(seen.outcomes).toEqual([]);
    expect(seen.bodyFailures).toEqual([]);
  });
});
