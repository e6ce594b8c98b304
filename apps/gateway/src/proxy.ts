import type { EventEmitter } from 'node:events';
import type { Readable } from 'node:stream';
import { AthError, type AccessGrant } from '@athkit/core';
import { Agent, type Dispatcher } from 'undici';
import type { UpstreamTarget } from './canonical-path.js';
import type { UpstreamTokenSource } from './oauth-bridge.js';
import { RelayHandler, type RelayHooks, type ResponseSink } from './relay.js';

/** Incoming request headers as Node gives them (lower-case names). */
export type IncomingHeaders = Readonly<Record<string, string | readonly string[] | undefined>>;
export type OutgoingHeaders = Record<string, string | string[]>;

export interface ProxyRequest {
  /** The validated call (engine.validateAccess): its grant holds the upstream tokens. */
  grant: Pick<AccessGrant, 'grantId'>;
  /** From buildUpstreamTarget: origin + canonical path + raw query. */
  target: UpstreamTarget;
  method: string;
  headers: IncomingHeaders;
  /** The request body, streamed as is; null/undefined for none. */
  body?: Readable | null;
  /**
   * Aborts the upstream request (e.g. when the agent disconnects): an AbortSignal, an emitter of
   * `abort`, or any object with `aborted` and add/removeEventListener for `abort` (as undici takes).
   */
  signal?: AbortSignal | EventEmitter | AbortTarget;
  /** Overrides the proxy's default upstream timeout (the provider's `timeout_ms`). */
  timeoutMs?: number;
  /** Headers the response starts with (e.g. the gateway's own HSTS); upstream headers of the same name replace them. */
  responseHeaders?: OutgoingHeaders;
}

/** The smallest signal undici accepts: `abort` listeners added and removed, and an `aborted` flag. */
export interface AbortTarget {
  readonly aborted: boolean;
  addEventListener(type: 'abort', listener: () => void): void;
  removeEventListener(type: 'abort', listener: () => void): void;
}

/** What any HTTP framework can send back: upstream status, filtered headers, body stream. */
export interface ProxyResponse {
  status: number;
  headers: OutgoingHeaders;
  body: Readable;
}

export interface UpstreamProxyOptions {
  tokens: UpstreamTokenSource;
  /** Default: a dedicated undici Agent (keep-alive pools per origin). */
  dispatcher?: Dispatcher;
  /** Time to the upstream response headers (default 30 s) → 504 UPSTREAM_TIMEOUT. */
  timeoutMs?: number;
  /** Maximum idle time between body chunks, both directions (default 30 s). */
  bodyTimeoutMs?: number;
  /** TCP/TLS connect timeout (default 10 s) → 504 UPSTREAM_TIMEOUT. */
  connectTimeoutMs?: number;
  /** Refresh and retry once when a body-less GET/HEAD gets 401 `invalid_token` (default true, threats F14). */
  retryOnInvalidToken?: boolean;
}

// Hop-by-hop (RFC 9110 §7.6.1) and headers the gateway owns.
const HOP_BY_HOP = ['connection', 'keep-alive', 'te', 'trailer', 'transfer-encoding', 'upgrade', 'proxy-connection', 'http2-settings'];
const REQUEST_DROP = new Set([
  ...HOP_BY_HOP,
  'host',
  'expect',
  'authorization',
  'cookie',
  'forwarded',
  'x-real-ip',
  'x-http-method-override',
  'x-http-method',
  'x-method-override',
]);
const REQUEST_DROP_PREFIXES = ['proxy-', 'x-ath-', 'x-forwarded-'];
const RESPONSE_DROP = new Set([...HOP_BY_HOP, 'set-cookie']);
const RESPONSE_DROP_PREFIXES = ['proxy-'];

const NO_TOKENS: ReadonlySet<string> = new Set();
const KEEP_ALIVE_TOKENS: ReadonlySet<string> = new Set(['keep-alive']);
const CLOSE_TOKENS: ReadonlySet<string> = new Set(['close']);

/** The header names a Connection header lists (constant sets for the usual bare `keep-alive` / `close`). */
function connectionTokens(value: string | readonly string[] | undefined): ReadonlySet<string> {
  if (value === undefined) return NO_TOKENS;
  if (typeof value === 'string' && value.length <= 10) {
    const v = value.toLowerCase();
    if (v === 'keep-alive') return KEEP_ALIVE_TOKENS;
    if (v === 'close') return CLOSE_TOKENS;
  }
  const out = new Set<string>();
  for (const v of typeof value === 'string' ? [value] : value) {
    for (const token of v.split(',')) if (token.trim()) out.add(token.trim().toLowerCase());
  }
  return out;
}

/** Whether `name` (lower case) starts with one of `prefixes`; a first-character test keeps the common case cheap. */
function hasPrefix(name: string, prefixes: readonly string[]): boolean {
  const c = name.charCodeAt(0);
  if (c !== 0x70 /* p */ && c !== 0x78 /* x */) return false;
  for (const p of prefixes) if (name.startsWith(p)) return true;
  return false;
}

/** `name` in lower case; Node already gives lower-case names, so this rarely allocates. */
function lower(name: string): string {
  for (let i = 0; i < name.length; i++) {
    const c = name.charCodeAt(i);
    if (c >= 0x41 && c <= 0x5a) return name.toLowerCase();
  }
  return name;
}

/**
 * The headers sent upstream (threats F7, C-160): everything the agent sent except hop-by-hop
 * headers (and those named in Connection), Authorization, X-ATH-*, Cookie, X-Forwarded-*,
 * Forwarded, X-Real-IP, Proxy-*, Expect and method-override headers; then `Authorization: Bearer
 * <upstream token>` and the upstream Host. Content-Length is kept only with a body.
 */
export function upstreamRequestHeaders(
  incoming: IncomingHeaders,
  host: string,
  accessToken: string,
  hasBody: boolean,
): OutgoingHeaders {
  const named = connectionTokens(incoming['connection']);
  const out: OutgoingHeaders = {};
  for (const rawName in incoming) {
    const value = incoming[rawName];
    if (value === undefined) continue;
    const name = lower(rawName);
    if (REQUEST_DROP.has(name) || named.has(name) || hasPrefix(name, REQUEST_DROP_PREFIXES)) continue;
    if (!hasBody && name === 'content-length') continue;
    out[name] = typeof value === 'string' ? value : [...value];
  }
  out['host'] = host;
  out['authorization'] = `Bearer ${accessToken}`;
  return out;
}

/** Upstream response headers minus hop-by-hop ones (and those named in Connection), Proxy-* and Set-Cookie (C-150, threats F7). */
export function downstreamResponseHeaders(
  upstream: Readonly<Record<string, string | string[] | undefined>>,
  out: OutgoingHeaders = {},
): OutgoingHeaders {
  const named = connectionTokens(upstream['connection']);
  for (const rawName in upstream) {
    const value = upstream[rawName];
    if (value === undefined) continue;
    const name = lower(rawName);
    if (RESPONSE_DROP.has(name) || named.has(name) || hasPrefix(name, RESPONSE_DROP_PREFIXES)) continue;
    out[name] = value;
  }
  return out;
}

const TIMEOUT_CODES = new Set(['UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_CONNECT_TIMEOUT', 'UND_ERR_BODY_TIMEOUT', 'ETIMEDOUT']);

/** Upstream failures as ATH errors that carry no upstream URL, address or token (threats F8). */
function upstreamFailure(err: unknown): AthError {
  if (err instanceof AthError) return err;
  const code = (err as { code?: unknown } | null)?.code;
  if (typeof code === 'string' && TIMEOUT_CODES.has(code)) {
    return new AthError('UPSTREAM_TIMEOUT', 'The upstream API did not answer in time', { reason: 'timeout' });
  }
  if ((err as { name?: unknown } | null)?.name === 'AbortError') {
    return new AthError('OAUTH_ERROR', 'The upstream request was aborted', { reason: 'aborted' });
  }
  return new AthError('OAUTH_ERROR', 'The upstream API is unreachable', {
    reason: code === 'ECONNREFUSED' ? 'connection_refused' : 'connection_failed',
  });
}

/**
 * The proxy's forwarder (undici, never global fetch): one request upstream per call, bodies
 * streamed both ways with backpressure, method, raw path, raw query and body bytes unchanged, no
 * redirects followed (a 3xx is returned as is, threats F8), upstream status/headers/body passed
 * through (C-163). Protocol checks happen before this (engine.validateAccess, scope map,
 * canonical path).
 */
export class UpstreamProxy {
  private readonly tokens: UpstreamTokenSource;
  private readonly dispatcher: Dispatcher;
  private readonly ownsDispatcher: boolean;
  private readonly timeoutMs: number;
  private readonly bodyTimeoutMs: number;
  private readonly retryOnInvalidToken: boolean;

  constructor(options: UpstreamProxyOptions) {
    this.tokens = options.tokens;
    this.timeoutMs = options.timeoutMs ?? 30_000;
    this.bodyTimeoutMs = options.bodyTimeoutMs ?? 30_000;
    this.retryOnInvalidToken = options.retryOnInvalidToken ?? true;
    this.ownsDispatcher = !options.dispatcher;
    this.dispatcher =
      options.dispatcher ??
      new Agent({
        connect: { timeout: options.connectTimeoutMs ?? 10_000 },
        keepAliveTimeout: 10_000,
        headersTimeout: this.timeoutMs,
        bodyTimeout: this.bodyTimeoutMs,
      });
  }

  async forward(req: ProxyRequest): Promise<ProxyResponse> {
    if (!req.grant.grantId) {
      throw new AthError('OAUTH_ERROR', 'No upstream authorization is linked to this token', { reason: 'no_grant' });
    }
    const grantId = req.grant.grantId;
    const hasBody = req.body !== undefined && req.body !== null;
    // A cached upstream token needs no promise (the common case on the hot path).
    const token = this.tokens.peekUpstreamAccessToken?.(grantId) ?? (await this.tokens.getUpstreamAccessToken(grantId));
    const response = await this.sendAsync(req, token, hasBody);
    if (this.mustRetry(req, hasBody, response.statusCode, response.headers)) return this.retryRejected(req, grantId, token, response);
    return this.answer(req, response);
  }

  /**
   * {@link forward} for the hot path, once the caller holds the upstream token (from
   * `peekUpstreamAccessToken`): the upstream response is written into `sink` as it arrives (no
   * promise, no Readable, no pipe), except for the statuses `writesThrough` declines and the F14
   * retry, which come back to `done` as a {@link ProxyResponse} exactly as `forward` would
   * resolve them. Errors before the sink got anything go to `done` as `forward` would reject.
   * Call `abort()` on the returned handler when the agent goes away.
   */
  relay(
    req: ProxyRequest & { grant: { grantId: string } },
    token: string,
    sink: ResponseSink,
    hooks: Pick<RelayHooks, 'writesThrough' | 'done' | 'bodyFailed'>,
  ): RelayHandler {
    const hasBody = req.body !== undefined && req.body !== null;
    const handler: RelayHandler = new RelayHandler(sink, {
      writesThrough: hooks.writesThrough,
      responseHeaders: (upstream) => downstreamResponseHeaders(upstream, req.responseHeaders),
      mustRetry: (status, headers) => this.mustRetry(req, hasBody, status, headers),
      // The retried request is aborted with the call.
      retry: () => this.retryWithFreshToken({ ...req, signal: handler.retrySignal() }, req.grant.grantId, token),
      upstreamError: upstreamFailure,
      done: hooks.done,
      bodyFailed: hooks.bodyFailed,
    });
    let headers: OutgoingHeaders;
    try {
      headers = upstreamRequestHeaders(req.headers, req.target.host, token, hasBody);
    } catch (err) {
      hooks.done(upstreamFailure(err));
      return handler;
    }
    this.dispatcher.dispatch(this.dispatchOptions(req, headers, hasBody), handler);
    return handler;
  }

  /** Threats F14: a body-less GET/HEAD whose upstream token was rejected is refreshed and retried once. */
  private mustRetry(req: ProxyRequest, hasBody: boolean, status: number, headers: Readonly<Record<string, string | string[] | undefined>>): boolean {
    return (
      this.retryOnInvalidToken &&
      !hasBody &&
      status === 401 &&
      (req.method === 'GET' || req.method === 'HEAD') &&
      /invalid_token/i.test(String(headers['www-authenticate'] ?? ''))
    );
  }

  private async retryRejected(req: ProxyRequest, grantId: string, rejected: string, response: Dispatcher.ResponseData): Promise<ProxyResponse> {
    await response.body.dump().catch(() => undefined);
    return this.retryWithFreshToken(req, grantId, rejected);
  }

  private async retryWithFreshToken(req: ProxyRequest, grantId: string, rejected: string): Promise<ProxyResponse> {
    const token = await this.tokens.getUpstreamAccessToken(grantId, { rejected });
    const retried = await this.sendAsync(req, token, false);
    return this.answer(req, retried);
  }

  private answer(req: ProxyRequest, response: Dispatcher.ResponseData): ProxyResponse {
    return {
      status: response.statusCode,
      headers: downstreamResponseHeaders(response.headers, req.responseHeaders),
      body: response.body,
    };
  }

  /** {@link send} as a promise, for the paths that await anyway. */
  private sendAsync(req: ProxyRequest, token: string, hasBody: boolean): Promise<Dispatcher.ResponseData> {
    return new Promise((resolve, reject) => this.send(req, token, hasBody, (err, data) => (err ? reject(err) : resolve(data!))));
  }

  /** One upstream request through undici's callback API (no promise); errors arrive as ATH errors. */
  private send(req: ProxyRequest, token: string, hasBody: boolean, done: (err: AthError | null, data?: Dispatcher.ResponseData) => void): void {
    let headers: OutgoingHeaders;
    try {
      headers = upstreamRequestHeaders(req.headers, req.target.host, token, hasBody);
    } catch (err) {
      return done(upstreamFailure(err));
    }
    this.dispatcher.request(
      {
        ...this.dispatchOptions(req, headers, hasBody),
        // undici reads a signal through aborted and add/removeEventListener only (api-request.js).
        signal: req.signal ?? null,
      },
      (err, data) => (err ? done(upstreamFailure(err)) : done(null, data)),
    );
  }

  private dispatchOptions(req: ProxyRequest, headers: OutgoingHeaders, hasBody: boolean): Dispatcher.DispatchOptions {
    return {
      origin: req.target.origin,
      path: req.target.path,
      method: req.method,
      headers,
      body: hasBody ? req.body! : null,
      headersTimeout: req.timeoutMs ?? this.timeoutMs,
      bodyTimeout: this.bodyTimeoutMs,
    };
  }

  async close(): Promise<void> {
    if (this.ownsDispatcher) await this.dispatcher.close();
  }
}
