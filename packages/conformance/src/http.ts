/**
 * The suite's only way out to the network: a small node:http/https client with a per-request
 * timeout, a run-wide request budget and a destination guard (loopback, plus the target origin
 * when --allow-remote is given). Paths are sent verbatim (`rawPath`), so traversal probes such as
 * `/v1/../admin` reach the target un-normalised.
 */
import http from 'node:http';
import https from 'node:https';
import { isIP } from 'node:net';

export interface HttpResponse {
  readonly status: number;
  readonly headers: http.IncomingHttpHeaders;
  readonly text: string;
  /** Parsed body when it is JSON, else undefined. */
  readonly json: unknown;
  readonly url: string;
  readonly method: string;
  header(name: string): string | undefined;
  /** Every Set-Cookie header. */
  readonly setCookies: readonly string[];
}

export interface RequestOptions {
  method?: string;
  headers?: Record<string, string>;
  /** A string or bytes body; objects are sent as JSON with content-type application/json. */
  body?: string | Uint8Array | Record<string, unknown> | unknown[];
  /** Sent verbatim as the request target instead of the URL's normalised path + query. */
  rawPath?: string;
  timeoutMs?: number;
}

export class BudgetExceeded extends Error {
  override readonly name = 'BudgetExceeded';
}

export class DestinationRefused extends Error {
  override readonly name = 'DestinationRefused';
}

/** 127.0.0.0/8, ::1 and localhost. */
export function isLoopbackHost(hostname: string): boolean {
  const h = hostname.replace(/^\[|\]$/g, '').toLowerCase();
  if (h === 'localhost' || h === '::1') return true;
  if (isIP(h) === 4) return h.startsWith('127.');
  if (h.startsWith('::ffff:')) return isLoopbackHost(h.slice(7));
  return false;
}

export interface HttpClientOptions {
  timeoutMs: number;
  maxRequests: number;
  /** Origins besides loopback that may be contacted (the target when --allow-remote). */
  allowedOrigins?: readonly string[];
}

const MAX_BODY = 4 * 1024 * 1024;

export class HttpClient {
  private sent = 0;
  constructor(private readonly options: HttpClientOptions) {}

  get requestCount(): number {
    return this.sent;
  }

  assertAllowed(url: URL): void {
    if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new DestinationRefused(`refusing ${url.protocol} URL`);
    if (isLoopbackHost(url.hostname)) return;
    if (this.options.allowedOrigins?.includes(url.origin)) return;
    throw new DestinationRefused(`refusing to contact ${url.origin}: only loopback and the target are allowed`);
  }

  async request(target: string, opts: RequestOptions = {}): Promise<HttpResponse> {
    const url = new URL(target);
    this.assertAllowed(url);
    if (this.sent >= this.options.maxRequests) {
      throw new BudgetExceeded(`request budget of ${this.options.maxRequests} exhausted`);
    }
    this.sent++;
    const method = (opts.method ?? 'GET').toUpperCase();
    const headers: Record<string, string> = { 'user-agent': 'ath-conformance/0.1', ...opts.headers };
    let payload: Uint8Array | undefined;
    if (opts.body !== undefined) {
      if (typeof opts.body === 'string') payload = Buffer.from(opts.body, 'utf8');
      else if (opts.body instanceof Uint8Array) payload = opts.body;
      else {
        payload = Buffer.from(JSON.stringify(opts.body), 'utf8');
        if (!Object.keys(headers).some((h) => h.toLowerCase() === 'content-type')) headers['content-type'] = 'application/json';
      }
      headers['content-length'] = String(payload.byteLength);
    }
    const lib = url.protocol === 'https:' ? https : http;
    const timeoutMs = opts.timeoutMs ?? this.options.timeoutMs;
    return new Promise<HttpResponse>((resolve, reject) => {
      const req = lib.request(
        {
          protocol: url.protocol,
          hostname: url.hostname.replace(/^\[|\]$/g, ''),
          port: url.port || undefined,
          path: opts.rawPath ?? `${url.pathname}${url.search}`,
          method,
          headers,
          agent: false,
        },
        (res) => {
          const chunks: Buffer[] = [];
          let size = 0;
          res.on('data', (c: Buffer) => {
            size += c.length;
            if (size > MAX_BODY) {
              req.destroy(new Error(`response from ${url.origin} larger than ${MAX_BODY} bytes`));
              return;
            }
            chunks.push(c);
          });
          res.on('end', () => {
            clearTimeout(timer);
            const text = Buffer.concat(chunks).toString('utf8');
            let json: unknown;
            try {
              json = text.length ? JSON.parse(text) : undefined;
            } catch {
              json = undefined;
            }
            const raw = res.headers['set-cookie'];
            resolve({
              status: res.statusCode ?? 0,
              headers: res.headers,
              text,
              json,
              url: url.toString(),
              method,
              header: (name: string) => {
                const v = res.headers[name.toLowerCase()];
                return Array.isArray(v) ? v.join(', ') : v;
              },
              setCookies: raw ?? [],
            });
          });
          res.on('error', reject);
        },
      );
      const timer = setTimeout(() => req.destroy(new Error(`timeout after ${timeoutMs} ms: ${method} ${url.origin}${url.pathname}`)), timeoutMs);
      req.on('error', (e) => {
        clearTimeout(timer);
        reject(e);
      });
      if (payload) req.write(payload);
      req.end();
    });
  }
}

interface StoredCookie {
  name: string;
  value: string;
  raw: string;
}

/**
 * A minimal cookie jar: one bucket per host:port, name → value; attributes are kept verbatim (raw)
 * so scenarios can inspect HttpOnly/Secure/SameSite. Secure cookies are kept even on plain http
 * loopback targets (test deployments), as browsers do for localhost.
 */
export class CookieJar {
  private readonly byHost = new Map<string, Map<string, StoredCookie>>();

  store(url: string, setCookies: readonly string[]): void {
    const host = new URL(url).host;
    let bucket = this.byHost.get(host);
    if (!bucket) this.byHost.set(host, (bucket = new Map<string, StoredCookie>()));
    for (const raw of setCookies) {
      const first = raw.split(';', 1)[0] ?? '';
      const eq = first.indexOf('=');
      if (eq <= 0) continue;
      const name = first.slice(0, eq).trim();
      const value = first.slice(eq + 1).trim();
      const expired = /;\s*max-age=0\b/i.test(raw) || /;\s*expires=[^;]*1970/i.test(raw);
      if (expired || value === '') bucket.delete(name);
      else bucket.set(name, { name, value, raw });
    }
  }

  header(url: string): string | undefined {
    const bucket = this.byHost.get(new URL(url).host);
    if (!bucket || bucket.size === 0) return undefined;
    return [...bucket.values()].map((c) => `${c.name}=${c.value}`).join('; ');
  }

  cookies(url: string): StoredCookie[] {
    return [...(this.byHost.get(new URL(url).host)?.values() ?? [])];
  }

  clone(): CookieJar {
    const jar = new CookieJar();
    for (const [host, bucket] of this.byHost) jar.byHost.set(host, new Map(bucket));
    return jar;
  }
}

/** A "browser": an HttpClient plus a cookie jar, following redirects only while a predicate allows. */
export class Browser {
  readonly jar: CookieJar;
  constructor(
    private readonly http: HttpClient,
    jar?: CookieJar,
  ) {
    this.jar = jar ?? new CookieJar();
  }

  async request(url: string, opts: RequestOptions = {}): Promise<HttpResponse> {
    const cookie = this.jar.header(url);
    const res = await this.http.request(url, { ...opts, headers: { ...(cookie ? { cookie } : {}), ...opts.headers } });
    this.jar.store(url, res.setCookies);
    return res;
  }

  /**
   * Follows redirects (GET) while `follow(nextUrl)` is true, at most `max` hops. Returns every
   * response in order; the last one is where it stopped.
   */
  async navigate(
    url: string,
    opts: RequestOptions & { follow?: (next: URL) => boolean; max?: number } = {},
  ): Promise<HttpResponse[]> {
    const chain: HttpResponse[] = [];
    let current = url;
    let request: RequestOptions = opts;
    for (let hop = 0; hop <= (opts.max ?? 8); hop++) {
      const res = await this.request(current, request);
      chain.push(res);
      const location = res.header('location');
      if (res.status < 300 || res.status >= 400 || !location) break;
      const next = new URL(location, current);
      if (!(opts.follow ?? (() => true))(next)) break;
      current = next.toString();
      request = { method: 'GET' };
    }
    return chain;
  }
}
