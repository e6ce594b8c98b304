/**
 * What the demo prints: every HTTP call the agent makes goes through a `fetch` that records the
 * method, URL, request body and response, with secrets masked before anything is printed.
 */
import type { FetchLike } from '@athkit/client';

/** JSON keys whose values are secrets: only a recognisable prefix is printed. */
const SECRET_KEYS = new Set(['client_secret', 'access_token', 'token', 'password', 'code_verifier']);
/** JSON keys holding signed JWTs: shortened like the seed's `eyJhbGciOiJFUzI1NiIs...`. */
const JWT_KEYS = new Set(['agent_attestation']);

/** `ath_secret_AbCdEf…` → `ath_secret_AbCd…`; anything without an `ath_…_` prefix keeps 4 characters. */
export function maskSecret(value: string): string {
  const prefix = /^ath_(?:[a-z]+_)?/.exec(value)?.[0] ?? '';
  return `${prefix}${value.slice(prefix.length, prefix.length + 4)}…`;
}

/** The first 20 characters of a JWT and an ellipsis. */
export function shortenJwt(value: string): string {
  return value.length > 20 ? `${value.slice(0, 20)}...` : value;
}

/**
 * A deep copy of a JSON value with secrets masked, attestations shortened, `*_url` queries shortened
 * and long lists of objects cut to 3 items.
 */
export function maskJson(value: unknown, key?: string): unknown {
  if (typeof value === 'string' && key !== undefined) {
    const isUrl = /^https?:\/\//.test(value);
    if (SECRET_KEYS.has(key) && !isUrl) return maskSecret(value); // (`token` is also an endpoint's name in discovery)
    if (JWT_KEYS.has(key)) return shortenJwt(value);
    if (isUrl && key.endsWith('_url')) return shortUrl(value);
    return value;
  }
  if (Array.isArray(value)) {
    const shown =
      value.length > 4 && value.some((v) => v !== null && typeof v === 'object') ? value.slice(0, 3) : value;
    const items = shown.map((v) => maskJson(v));
    return value.length > shown.length ? [...items, `… ${value.length - shown.length} more`] : items;
  }
  if (value !== null && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, maskJson(v, k)]));
  }
  return value;
}

/** Request headers worth showing, with the bearer token masked. */
export function maskHeaders(headers: Headers): Record<string, string> {
  const shown: Record<string, string> = {};
  const auth = headers.get('authorization');
  if (auth)
    shown['Authorization'] = auth.startsWith('Bearer ')
      ? `Bearer ${maskSecret(auth.slice(7))}`
      : `${auth.split(' ')[0] ?? ''} …`;
  const agent = headers.get('x-ath-agent-id');
  if (agent) shown['X-ATH-Agent-ID'] = agent;
  const attestation = headers.get('x-ath-agent-attestation');
  if (attestation) shown['X-ATH-Agent-Attestation'] = shortenJwt(attestation);
  return shown;
}

/** Long query values (state, code_challenge, …) shortened so a URL fits on a line. */
export function shortUrl(url: string): string {
  const u = new URL(url);
  if (u.search === '') return u.href;
  const query = [...u.searchParams].map(
    ([k, v]) => `${k}=${v.length > 16 ? `${encodeURIComponent(v.slice(0, 10))}…` : encodeURIComponent(v)}`,
  );
  return `${u.origin}${u.pathname}?${query.join('&')}`;
}

export interface TracedCall {
  method: string;
  url: string;
  /** Shown request headers (masked). */
  headers: Record<string, string>;
  /** The parsed JSON request body, or the raw text, or undefined. */
  requestBody: unknown;
  status: number;
  /** The parsed JSON response body, or the raw text ('' when empty). */
  responseBody: unknown;
}

const parse = (text: string): unknown => {
  if (text === '') return undefined;
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return text;
  }
};

/** A `fetch` that hands every completed call to `onCall` (bodies unmasked: mask when printing). */
export function tracingFetch(
  onCall: (call: TracedCall) => void,
  base: FetchLike = (input, init) => globalThis.fetch(input, init),
): FetchLike {
  return async (input, init) => {
    const response = await base(input, init);
    const text = await response.clone().text();
    onCall({
      method: init.method ?? 'GET',
      url: input,
      headers: maskHeaders(new Headers(init.headers)),
      requestBody: typeof init.body === 'string' ? parse(init.body) : undefined,
      status: response.status,
      responseBody: parse(text),
    });
    return response;
  };
}

const indent = (text: string, by: string): string =>
  text
    .split('\n')
    .map((l) => by + l)
    .join('\n');

/** The seed's layout: the request line, headers, the body, then the response status and body. */
export function formatCall(call: TracedCall): string {
  const lines = [`${call.method} ${shortUrl(call.url)}`];
  for (const [name, value] of Object.entries(call.headers)) lines.push(`${name}: ${value}`);
  if (call.requestBody !== undefined) lines.push(JSON.stringify(maskJson(call.requestBody), null, 2));
  lines.push(`→ ${call.status}`);
  if (call.responseBody !== undefined) lines.push(JSON.stringify(maskJson(call.responseBody), null, 2));
  return indent(lines.join('\n'), '  ');
}
