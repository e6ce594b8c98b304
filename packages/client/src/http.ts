import { validateATHError, type Validator } from '@athkit/schemas';
import { AthClientError } from './errors.js';

/** The subset of `fetch` the client needs; inject your own (tests, proxies, instrumentation). */
export type FetchLike = (input: string, init: RequestInit) => Promise<Response>;

/** Milliseconds since the epoch; inject to control time in tests. */
export interface Clock {
  now(): number;
}

export const systemClock: Clock = { now: () => Date.now() };

/** Options every request function takes. */
export interface HttpOptions {
  /** Default: `globalThis.fetch`. */
  fetch?: FetchLike;
  /** Whole-request timeout (headers and body) in milliseconds. Default 10 000. */
  timeoutMs?: number;
  /** Cancels the request. */
  signal?: AbortSignal;
  /** Extra request headers (never overriding the ATH ones). */
  headers?: Record<string, string>;
}

export const DEFAULT_TIMEOUT_MS = 10_000;
const MAX_ERROR_SNIPPET = 200;

interface Signals {
  timeout: AbortSignal;
  user: AbortSignal | undefined;
}
const responseSignals = new WeakMap<Response, Signals>();

function isLoopbackHost(hostname: string): boolean {
  return hostname === 'localhost' || hostname === '[::1]' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(hostname);
}

/**
 * Parses and checks a server URL: https, or plain http only on loopback (CL-19; local development
 * and tests). Returns the URL without a trailing slash, query or fragment.
 */
export function normalizeBaseUrl(value: string | URL): string {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new AthClientError('invalid_argument', `not an absolute URL: ${String(value)}`);
  }
  assertSecureUrl(url);
  if (url.search !== '' || url.hash !== '' || url.username !== '' || url.password !== '') {
    throw new AthClientError('invalid_argument', `a server base URL has no query, fragment or userinfo: ${url.href}`);
  }
  return url.pathname === '/' ? url.origin : `${url.origin}${url.pathname.replace(/\/+$/, '')}`;
}

/** Throws `insecure_url` unless the URL is https, or http on a loopback host. */
export function assertSecureUrl(url: URL): void {
  if (url.protocol === 'https:') return;
  if (url.protocol === 'http:' && isLoopbackHost(url.hostname)) return;
  throw new AthClientError(
    'insecure_url',
    `refusing ${url.protocol}//${url.host}: ATH traffic must use https (plain http is allowed only on loopback)`,
  );
}

function anySignal(signals: AbortSignal[]): AbortSignal {
  if (typeof AbortSignal.any === 'function') return AbortSignal.any(signals);
  const controller = new AbortController();
  for (const s of signals) {
    if (s.aborted) {
      controller.abort(s.reason);
      break;
    }
    s.addEventListener('abort', () => controller.abort(s.reason), { once: true });
  }
  return controller.signal;
}

function transportError(err: unknown, signals: Signals, what: string): AthClientError {
  if (signals.user?.aborted) return new AthClientError('aborted', `${what}: aborted`, { cause: err });
  if (signals.timeout.aborted || (err instanceof Error && err.name === 'TimeoutError')) {
    return new AthClientError('timeout', `${what}: no complete response within the timeout`, { cause: err });
  }
  const cause = err instanceof Error && err.cause instanceof Error ? `: ${err.cause.message}` : '';
  const message = err instanceof Error ? err.message : String(err);
  return new AthClientError('network', `${what}: ${message}${cause}`, { cause: err });
}

/**
 * Sends one request with a timeout covering the whole exchange. Redirects are never followed, so a
 * credential cannot be forwarded to another origin. Transport failures become `network`,
 * `timeout` or `aborted`.
 */
export async function send(url: string, init: RequestInit, options: HttpOptions = {}): Promise<Response> {
  assertSecureUrl(new URL(url));
  const timeout = AbortSignal.timeout(options.timeoutMs ?? DEFAULT_TIMEOUT_MS);
  const signals: Signals = { timeout, user: options.signal };
  const signal = options.signal ? anySignal([options.signal, timeout]) : timeout;
  const doFetch: FetchLike = options.fetch ?? ((input, requestInit) => globalThis.fetch(input, requestInit));
  const headers = new Headers(options.headers);
  for (const [k, v] of new Headers(init.headers)) headers.set(k, v);
  if (!headers.has('accept')) headers.set('accept', 'application/json');
  const what = `${init.method ?? 'GET'} ${url}`;
  try {
    const response = await doFetch(url, { ...init, headers, signal, redirect: 'manual' });
    responseSignals.set(response, signals);
    return response;
  } catch (err) {
    throw transportError(err, signals, what);
  }
}

/** JSON POST with fresh headers. */
export function postJson(url: string, body: unknown, options: HttpOptions = {}, headers: Record<string, string> = {}): Promise<Response> {
  return send(url, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(body) }, options);
}

function describe(response: Response): string {
  return response.url ? `${response.url}` : 'the server';
}

async function readText(response: Response): Promise<string> {
  try {
    return await response.text();
  } catch (err) {
    const signals = responseSignals.get(response) ?? { timeout: AbortSignal.abort(), user: undefined };
    if (!signals.timeout.aborted && !signals.user?.aborted && !(err instanceof Error && /abort|timeout/i.test(err.name))) {
      throw new AthClientError('network', `reading the response from ${describe(response)} failed: ${err instanceof Error ? err.message : String(err)}`, { status: response.status, cause: err });
    }
    throw transportError(err, signals, `reading the response from ${describe(response)}`);
  }
}

function snippet(text: string): string {
  const flat = text.replace(/\s+/g, ' ').trim();
  return flat.length > MAX_ERROR_SNIPPET ? `${flat.slice(0, MAX_ERROR_SNIPPET)}…` : flat;
}

/** Seconds from a Retry-After header (delta-seconds or HTTP date), or undefined. */
export function parseRetryAfter(value: string | null, now = Date.now()): number | undefined {
  if (value === null || value.trim() === '') return undefined;
  if (/^\s*\d+\s*$/.test(value)) return Number(value.trim());
  const date = Date.parse(value);
  return Number.isNaN(date) ? undefined : Math.max(0, Math.ceil((date - now) / 1000));
}

/**
 * Turns a non-success response into an AthClientError: the server's ATHError (code, status,
 * message, details, Retry-After) when the body is one, otherwise `server_error` (5xx) or
 * `invalid_response` with the status and a short excerpt of the body.
 */
export async function errorFromResponse(response: Response, what: string): Promise<AthClientError> {
  let text: string;
  try {
    text = await readText(response);
  } catch (err) {
    return err as AthClientError;
  }
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    body = undefined;
  }
  if (validateATHError.is(body)) {
    return new AthClientError(body.code, body.message, {
      status: response.status,
      ...(body.details !== undefined ? { details: body.details } : {}),
      // 429, and 503 (a server that cannot decide right now: its store is unreachable, or it drains).
      ...(response.status === 429 || response.status === 503 || body.code === 'RATE_LIMITED'
        ? { retryAfter: parseRetryAfter(response.headers.get('retry-after')) ?? numeric(body.details?.['retry_after']) }
        : {}),
    });
  }
  const excerpt = text ? `: ${snippet(text)}` : '';
  if (response.status >= 500) {
    const retryAfter = response.status === 503 ? parseRetryAfter(response.headers.get('retry-after')) : undefined;
    return new AthClientError('server_error', `${what}: the server failed with HTTP ${response.status}${excerpt}`, {
      status: response.status,
      ...(retryAfter !== undefined ? { retryAfter } : {}),
    });
  }
  return new AthClientError('invalid_response', `${what}: unexpected HTTP ${response.status} without an ATH error body${excerpt}`, {
    status: response.status,
  });
}

function numeric(value: unknown): number | undefined {
  return typeof value === 'number' && Number.isFinite(value) ? value : undefined;
}

/** Reads and parses a JSON body; anything else is `invalid_response`. */
export async function readJson(response: Response, what: string): Promise<unknown> {
  const text = await readText(response);
  try {
    return JSON.parse(text) as unknown;
  } catch {
    throw new AthClientError('invalid_response', `${what}: the response is not valid JSON${text ? `: ${snippet(text)}` : ' (empty body)'}`, {
      status: response.status,
    });
  }
}

/**
 * The shared half of every processXResponse: the expected status, a JSON body, and the schema.
 * Any other status becomes the server's ATHError (or a typed transport/response error).
 */
export async function processJson<T>(response: Response, expectedStatus: number, validator: Validator<T>, what: string): Promise<T> {
  if (response.status !== expectedStatus) throw await errorFromResponse(response, what);
  const body = await readJson(response, what);
  const result = validator(body);
  if (!result.valid) {
    const list = result.violations
      .slice(0, 5)
      .map((v) => `${v.pointer || '(root)'} ${v.message}`)
      .join('; ');
    throw new AthClientError('invalid_response', `${what}: the response is not a valid ${validator.def}: ${list}`, {
      status: response.status,
      violations: result.violations,
    });
  }
  return result.value;
}

/** Drains a success body that carries nothing we need (revoke). */
export async function discardBody(response: Response): Promise<void> {
  await readText(response);
}
