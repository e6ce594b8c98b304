/**
 * Threats F12 "Size and slowness", the parts proxy-http.test.ts does not cover (that file has the
 * 50 MB body → 413 and the hanging API → 504): slow-loris clients (headers or body at a few bytes
 * a second) → 408 within `limits.headersTimeoutMs` / `limits.requestTimeoutMs`, and the upstream
 * never gets a complete request; a huge (1 GB) upstream response is streamed with backpressure, so
 * the gateway never holds more than a bounded amount of it, whatever the agent's reading speed.
 */
import { request as httpRequest, type IncomingMessage } from 'node:http';
import { connect, type Socket } from 'node:net';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { parseConfig } from '../src/config.js';
import { createLogger } from '../src/observability.js';
import { echo, type UpstreamHandler } from './support/upstream-server.js';
import { Stack } from './support/stack.js';

const MB = 1024 * 1024;
const REQUEST_TIMEOUT_MS = 1500;
const HEADERS_TIMEOUT_MS = 1000;

const statusOf = (response: string) => Number(/^HTTP\/1\.1 (\d{3})/.exec(response)?.[1] ?? 0);
const bodyOf = (response: string) => response.slice(response.indexOf('\r\n\r\n') + 4);
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

interface SlowResult {
  response: string;
  ms: number;
  sent: number;
}

/**
 * A slow-loris client over a raw socket: writes `head` at once, then `drip` one byte every
 * `intervalMs` until the gateway answers or closes the connection (or `giveUpMs` passes).
 */
function slowClient(url: string, head: string, drip: string, intervalMs: number, giveUpMs = 10_000): Promise<SlowResult> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve) => {
    const started = performance.now();
    const chunks: Buffer[] = [];
    let sent = 0;
    let timer: NodeJS.Timeout | undefined;
    const socket: Socket = connect(Number(port), hostname, () => {
      if (head) socket.write(head);
      timer = setInterval(() => {
        if (sent < drip.length && socket.writable) socket.write(drip[sent++]!);
      }, intervalMs);
    });
    const giveUp = setTimeout(() => socket.destroy(), giveUpMs);
    const done = () => {
      clearInterval(timer);
      clearTimeout(giveUp);
      resolve({ response: Buffer.concat(chunks).toString('latin1'), ms: performance.now() - started, sent });
    };
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.on('error', () => undefined); // a reset after the 408 is fine; the bytes read so far count
    socket.on('close', done);
  });
}

/** An ATHError body as the gateway writes it for a slow client. */
function expectTimeoutAnswer(result: SlowResult, label: string): void {
  expect(statusOf(result.response), `${label}: ${result.response.slice(0, 80)}`).toBe(408);
  expect(result.response, label).toMatch(/\r\nconnection: close\r\n/i);
  const body = JSON.parse(bodyOf(result.response)) as { code: string; message: string; details?: { reason?: string } };
  expect(body.code, label).toBe('INVALID_REQUEST');
  expect(body.details?.reason, label).toBe('request_timeout');
  // Within the timeout plus Node's checking interval (a quarter of headersTimeoutMs) and slack; never the 10 s give-up.
  expect(result.ms, label).toBeLessThan(REQUEST_TIMEOUT_MS + 3000);
}

describe('F12: slow clients and huge responses', () => {
  let s: Stack;
  let token = '';
  beforeAll(async () => {
    s = await Stack.start({
      // With no per-agent rate limit and logging at info (Stack's own logger is at debug), bodiless
      // GETs take the proxy fast path and every other method the fastify route: the backpressure
      // test covers both.
      config: { limits: { requestTimeoutMs: REQUEST_TIMEOUT_MS, headersTimeoutMs: HEADERS_TIMEOUT_MS }, rateLimits: { perAgent: false } },
      gateway: { logger: createLogger('info', { write: () => true } as unknown as NodeJS.WritableStream) },
    });
    // Stack's provider answers 504 after 2 s without upstream response headers, and undici counts
    // that from the request's start, slow upload included: give the upstream well over the
    // request timeout, so a slow body can only end in the 408 under test.
    const mail = await s.admin('GET', '/providers/mail');
    expect((await s.admin('PUT', '/providers/mail', { ...mail.body, timeout_ms: 10_000 })).status).toBe(200);
    token = (await s.fullFlow(['mail:read', 'mail:send'])).token;
  });
  afterAll(() => s.close());
  beforeEach(() => {
    s.upstream.handler = echo;
  });
  const auth = () => `Authorization: Bearer ${token}\r\nX-ATH-Agent-ID: ${s.agent.agentId}\r\n`;

  it('F12: the timeouts are configurable, with defaults (requestTimeoutMs 30 s, headersTimeoutMs 10 s)', () => {
    const base = { dev: true, publicUrl: 'http://127.0.0.1:8080' };
    expect(parseConfig(base).limits).toMatchObject({ requestTimeoutMs: 30_000, headersTimeoutMs: 10_000 });
    expect(parseConfig({ ...base, limits: { drainMs: 5 } }).limits).toMatchObject({ requestTimeoutMs: 30_000, headersTimeoutMs: 10_000 });
    expect(s.gw.config.limits).toMatchObject({ requestTimeoutMs: REQUEST_TIMEOUT_MS, headersTimeoutMs: HEADERS_TIMEOUT_MS });
    expect(() => parseConfig({ ...base, limits: { requestTimeoutMs: 5000, headersTimeoutMs: 6000 } })).toThrow(
      /limits\.headersTimeoutMs: must not exceed limits\.requestTimeoutMs/,
    );
    expect(() => parseConfig({ ...base, limits: { requestTimeoutMs: 10 } })).toThrow(/limits\.requestTimeoutMs:/);
  });

  it('F12: slow-loris headers (a few bytes a second, or none at all) → 408 within headersTimeoutMs; the upstream sees nothing', async () => {
    const before = s.upstream.hits;
    // A complete, authorised request if it ever arrived in full, trickled out one byte at a time;
    // the trickle is faster than the timeout, so only a whole-message deadline stops it.
    const request = `POST /ath/proxy/mail/v1/messages/1 HTTP/1.1\r\nHost: x\r\n${auth()}Content-Length: 2\r\n\r\nhi`;
    const [trickle, crawl, silent] = await Promise.all([
      slowClient(s.url, 'POST /ath/proxy/mail/v1/messages/1 HTTP/1.1\r\nHost: x\r\n', request.slice(request.indexOf('Authorization')), 250),
      slowClient(s.url, '', request, 1000), // 1 B/s from the first byte
      slowClient(s.url, '', '', 1000), // connects and sends nothing
    ]);
    expectTimeoutAnswer(trickle, 'trickled headers');
    expectTimeoutAnswer(crawl, '1 B/s headers');
    expectTimeoutAnswer(silent, 'silent connection');
    expect(trickle.sent).toBeLessThan(request.length);
    expect(trickle.ms).toBeGreaterThanOrEqual(HEADERS_TIMEOUT_MS - 50);
    await sleep(200);
    expect(s.upstream.hits).toBe(before);
  });

  it('F12: a slow-loris body on an authorised proxied call → 408 within requestTimeoutMs; the upstream never gets a complete request', async () => {
    const before = s.upstream.hits;
    const body = JSON.stringify({ to: 'someone@example.com', subject: 'x'.repeat(64) });
    const head = (framing: string) => `POST /ath/proxy/mail/v1/messages/send HTTP/1.1\r\nHost: x\r\n${auth()}Content-Type: application/json\r\n${framing}\r\n`;
    const chunked = `${body.length.toString(16)}\r\n${body}\r\n0\r\n\r\n`;
    const [withLength, withChunks] = await Promise.all([
      slowClient(s.url, head(`Content-Length: ${body.length}\r\n`), body, 1000),
      slowClient(s.url, head('Transfer-Encoding: chunked\r\n'), chunked, 1000),
    ]);
    expectTimeoutAnswer(withLength, 'Content-Length body at 1 B/s');
    expectTimeoutAnswer(withChunks, 'chunked body at 1 B/s');
    expect(withLength.ms).toBeGreaterThanOrEqual(REQUEST_TIMEOUT_MS - 50);
    await sleep(300);
    // The gateway streams bodies on as they arrive, so the upstream may have seen the headers and a
    // few bytes; the cut-off request never ended there (RecordingUpstream records a request, and
    // its handler acts, only at the end of its body).
    expect(s.upstream.hits).toBe(before);

    // The same connection shape at normal speed still works (the timeout is on slowness, not on bodies).
    const ok = await new Promise<number>((resolve, reject) => {
      const socket = connect(Number(new URL(s.url).port), '127.0.0.1', () => socket.write(head(`Content-Length: ${body.length}\r\nConnection: close\r\n`) + body));
      let text = '';
      socket.on('data', (c: Buffer) => (text += c.toString('latin1')));
      socket.on('error', reject);
      socket.on('close', () => resolve(statusOf(text)));
    });
    expect(ok).toBe(200);
    expect(s.upstream.hits).toBe(before + 1);
  });

  it('F12: a slow-loris body on an ATH endpoint → 408 (the same server-wide deadline)', async () => {
    const body = JSON.stringify({ grant_type: 'authorization_code', client_id: 'x' });
    const result = await slowClient(s.url, `POST /ath/token HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n`, body, 1000);
    expectTimeoutAnswer(result, '/ath/token body at 1 B/s');
  });

  /**
   * A 1 GB upstream body, generated as a stream (one 64 KiB buffer written over and over, only when
   * the socket drains). The agent reads a few MB and stops; the upstream must then stall, having
   * written no more than a bounded amount beyond what the agent read (kernel socket buffers on both
   * hops plus stream high-water marks: a few MB on loopback). A gateway that buffered responses
   * would let the upstream run on to the full 1 GB.
   */
  const huge = (progress: { written: number; done: boolean }): UpstreamHandler => {
    const total = 1024 * MB;
    const chunk = Buffer.alloc(64 * 1024, 0x61);
    return (_req, res) => {
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': String(total) });
      const pump = () => {
        while (progress.written < total) {
          const n = Math.min(chunk.length, total - progress.written);
          progress.written += n;
          if (!res.write(n === chunk.length ? chunk : chunk.subarray(0, n))) return void res.once('drain', pump);
        }
        progress.done = true;
        res.end();
      };
      res.on('close', () => res.off('drain', pump));
      pump();
    };
  };

  /** GETs (fast path) or POSTs (fastify route) `path`, reads `readBytes` and pauses; returns when the upstream has stalled. */
  async function readThenPause(method: 'GET' | 'POST', path: string, readBytes: number) {
    // A first call fills the token caches the fast path reads (engine.peekAccess, the upstream token).
    expect((await s.proxy('/v1/messages', token)).status).toBe(200);
    const progress = { written: 0, done: false };
    s.upstream.handler = huge(progress);
    const u = new URL(`${s.url}/ath/proxy/mail${path}`);
    let read = 0;
    let stopped = false;
    let res!: IncomingMessage;
    const req = httpRequest({
      host: u.hostname,
      port: u.port,
      path: u.pathname,
      method,
      headers: { authorization: `Bearer ${token}`, 'x-ath-agent-id': s.agent.agentId, ...(method === 'POST' ? { 'content-type': 'text/plain', 'content-length': '2' } : {}) },
    });
    req.on('error', () => undefined); // destroyed by the test at the end
    await new Promise<void>((resolve, reject) => {
      req.on('response', (r) => {
        res = r;
        if (r.statusCode !== 200) return reject(new Error(`status ${r.statusCode}`));
        r.on('data', (c: Buffer) => {
          read += c.length;
          if (read >= readBytes && !stopped) {
            stopped = true;
            r.pause();
            resolve();
          }
        });
      });
      req.end(method === 'POST' ? 'hi' : undefined);
    });
    // Wait until the upstream makes no more progress (backpressure reached it), or clearly runs away.
    let last = -1;
    for (let i = 0; i < 100 && progress.written !== last && !progress.done; i++) {
      last = progress.written;
      await sleep(200);
    }
    return { progress, read: () => read, res, req };
  }

  for (const method of ['GET', 'POST'] as const) {
    it(`F12: a 1 GB upstream body is streamed with backpressure: when the agent stops reading, the upstream stalls (${method}, ${method === 'GET' ? 'fast path' : 'fastify route'})`, async () => {
      const { progress, read, res, req } = await readThenPause(method, '/v1/messages/huge', 4 * MB);
      try {
        expect(progress.done).toBe(false);
        const ahead = progress.written - read();
        expect(ahead, `upstream wrote ${progress.written} bytes, the agent read ${read()}`).toBeLessThan(64 * MB);
        // Reading on resumes the flow: the upstream moves again.
        const stalledAt = progress.written;
        res.resume();
        for (let i = 0; i < 50 && progress.written < stalledAt + 8 * MB; i++) await sleep(20);
        expect(progress.written).toBeGreaterThanOrEqual(stalledAt + 8 * MB);
      } finally {
        req.destroy();
      }
      // The agent went away: the upstream response is torn down rather than buffered to the end.
      const after = progress.written;
      await sleep(300);
      expect(progress.done).toBe(false);
      expect(progress.written - after).toBeLessThan(64 * MB);
    });
  }

  it('F12: an agent that reads the whole 1 GB gets every byte, and the upstream is never more than a bounded amount ahead of it', async () => {
    const progress = { written: 0, done: false };
    s.upstream.handler = huge(progress);
    const res = await s.proxy('/v1/messages/whole', token);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-length')).toBe(String(1024 * MB));
    let read = 0;
    let maxAhead = 0;
    const reader = res.body!.getReader();
    for (let r = await reader.read(); !r.done; r = await reader.read()) {
      read += r.value.byteLength;
      maxAhead = Math.max(maxAhead, progress.written - read);
    }
    expect(read).toBe(1024 * MB);
    expect(progress.done).toBe(true);
    expect(maxAhead).toBeLessThan(64 * MB);
  }, 60_000);
});
