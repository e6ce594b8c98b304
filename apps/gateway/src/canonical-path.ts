import { AthError } from '@athkit/core';

/**
 * The one canonical form of a proxied request target (threats F1–F5): the SAME string is matched
 * against the scope map and forwarded upstream byte for byte. Nothing is ever decoded for
 * forwarding; percent-escapes are decoded once, only to refuse segments that some server on the
 * way could read as a dot segment, a separator or a NUL.
 */
export interface CanonicalTarget {
  /** The raw path as received, starting with `/` (e.g. `/v1/messages/42`). */
  readonly path: string;
  /** The raw path split on `/`, without the leading empty element; a trailing slash gives a final `''`. */
  readonly segments: readonly string[];
  /** The raw query string without `?`, or null when the request had none. */
  readonly query: string | null;
}

/** Where a validated request goes: `origin` + `path` (path includes the raw query). */
export interface UpstreamTarget {
  readonly origin: string;
  /** Base path + canonical path + `?query`, exactly the bytes sent on the request line. */
  readonly path: string;
  /** The upstream `Host` header value. */
  readonly host: string;
}

export const PROVIDER_ID_PATTERN = /^[a-z0-9][a-z0-9-]{0,63}$/;

// RFC 3986 pchar minus ';' (path parameters, `..;/`): unreserved, pct-encoded, sub-delims but ';', ':' and '@'.
const SEGMENT_CHARS = /^[A-Za-z0-9\-._~!$&'()*+,=:@%]*$/;
// RFC 3986 query: pchar / '/' / '?'. ';' is ordinary here (the path rule does not apply to queries).
const QUERY_CHARS = /^[A-Za-z0-9\-._~!$&'()*+,;=:@%/?]*$/;
const BAD_ESCAPE = /%(?![0-9A-Fa-f]{2})/;
const METHOD_OVERRIDE_PARAMS = new Set(['_method', 'x-http-method-override', 'x-http-method', 'x-method-override']);

const utf8 = new TextDecoder('utf-8', { fatal: true });

function invalid(reason: string): AthError {
  // The reason is ours; the offending bytes are not echoed back (they may be anything).
  return new AthError('INVALID_REQUEST', `Invalid proxy path: ${reason}`, { reason });
}

function percentDecodeBytes(segment: string): Uint8Array {
  const out: number[] = [];
  for (let i = 0; i < segment.length; i++) {
    const c = segment.charCodeAt(i);
    if (c === 0x25) {
      out.push(parseInt(segment.slice(i + 1, i + 3), 16));
      i += 2;
    } else out.push(c);
  }
  return Uint8Array.from(out);
}

// Characters that are path-safe as they stand: RFC 3986 pchar minus ';' and without '%' (so a
// segment made only of them decodes to itself, and ASCII is its own NFKC form).
const PLAIN = new Uint8Array(128);
for (const c of "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~!$&'()*+,=:@") PLAIN[c.charCodeAt(0)] = 1;

function isPlain(segment: string): boolean {
  for (let i = 0; i < segment.length; i++) {
    const c = segment.charCodeAt(i);
    if (c >= 128 || PLAIN[c] === 0) return false;
  }
  return true;
}

/** Validates one raw path segment (non-empty) as described on {@link canonicalizeTarget}. */
function checkSegment(segment: string): void {
  // Common case, same verdict as the full check below: nothing to decode or normalise.
  if (isPlain(segment)) {
    if (segment === '.' || segment === '..') throw invalid('dot segments are not allowed');
    return;
  }
  if (!SEGMENT_CHARS.test(segment)) {
    throw invalid(segment.includes(';') ? 'path parameters (;) are not allowed' : 'illegal character in path');
  }
  if (BAD_ESCAPE.test(segment)) throw invalid('malformed percent-escape');
  const bytes = percentDecodeBytes(segment);
  let decoded: string;
  try {
    decoded = utf8.decode(bytes); // fatal: overlong forms such as %c0%ae are refused here
  } catch {
    throw invalid('percent-escapes are not valid UTF-8');
  }
  for (const form of [decoded, decoded.normalize('NFKC')]) {
    if (form === '.' || form === '..') throw invalid('dot segments are not allowed');
    if (form.includes('/') || form.includes('\\')) throw invalid('encoded slash or backslash');
    // C0 controls (NUL, CR, LF, TAB…) and DEL, whatever their encoding.
    // eslint-disable-next-line no-control-regex
    if (/[\u0000-\u001f\u007f]/.test(form)) throw invalid('control character in path');
  }
}

/**
 * Validates a raw request path (the part after `/ath/proxy/{provider_id}`) and raw query.
 * Refused with 400 INVALID_REQUEST:
 * - anything but RFC 3986 pchar and `/` raw (raw `\`, spaces, raw non-ASCII such as `．`);
 * - `;` in the path (`..;/`, matrix parameters);
 * - empty segments (`//`), except one trailing slash, which stays distinct from no slash;
 * - segments that are `.` or `..` once percent-decoded (`%2e`, `.%2E`) or after NFKC (fullwidth `．`,
 *   also encoded), overlong UTF-8 (`%c0%ae`), encoded `/` `\` (`%2f`, `%5c`, fullwidth), NUL and
 *   other control characters;
 * - malformed percent-escapes; a query with characters outside RFC 3986 or a method-override
 *   parameter (`_method`, threats F4).
 * A double-encoded `%252e%252e` is a valid literal segment: it is never decoded twice.
 */
export function canonicalizeTarget(rawPath: string, rawQuery: string | null = null): CanonicalTarget {
  if (!rawPath.startsWith('/')) throw invalid('path must start with /');
  const segments = rawPath.slice(1).split('/');
  for (let i = 0; i < segments.length; i++) {
    const segment = segments[i]!;
    if (segment === '') {
      if (i === segments.length - 1) continue; // trailing slash (or the root path `/`)
      throw invalid('empty path segment');
    }
    checkSegment(segment);
  }
  if (rawQuery !== null) checkQuery(rawQuery);
  return { path: rawPath, segments, query: rawQuery };
}

function checkQuery(rawQuery: string): void {
  if (!QUERY_CHARS.test(rawQuery)) throw invalid('illegal character in query');
  if (BAD_ESCAPE.test(rawQuery)) throw invalid('malformed percent-escape in query');
  // Every override parameter name contains "method"; without escapes no key can decode to one.
  if (!rawQuery.includes('%') && !rawQuery.toLowerCase().includes('method')) return;
  for (const key of new URLSearchParams(rawQuery).keys()) {
    if (METHOD_OVERRIDE_PARAMS.has(key.trim().toLowerCase())) throw invalid('method override parameters are not allowed');
  }
}

/**
 * Splits a raw request URL of the form `/ath/proxy/{provider_id}{path}?{query}` without decoding
 * anything. The provider segment must be a literal provider id (`%6dail`, `MAIL`, `mail@x` → 404
 * NOT_FOUND, threats F10); the rest goes through {@link canonicalizeTarget}.
 */
export function splitProxyUrl(rawUrl: string, prefix = '/ath/proxy/'): { providerId: string; target: CanonicalTarget } {
  if (!rawUrl.startsWith(prefix)) throw new AthError('NOT_FOUND', 'Not found');
  const q = rawUrl.indexOf('?');
  const pathPart = q === -1 ? rawUrl : rawUrl.slice(0, q);
  const query = q === -1 ? null : rawUrl.slice(q + 1);
  const rest = pathPart.slice(prefix.length);
  const slash = rest.indexOf('/');
  const providerId = slash === -1 ? rest : rest.slice(0, slash);
  if (!PROVIDER_ID_PATTERN.test(providerId)) throw new AthError('NOT_FOUND', 'Unknown provider');
  return { providerId, target: canonicalizeTarget(slash === -1 ? '/' : rest.slice(slash), query) };
}

/**
 * The upstream request target: the parsed `api_base` plus the validated raw path and raw query.
 * Asserts (as a last line of defence) that WHATWG URL parsing of the result keeps the origin and
 * the base-path prefix, i.e. that nothing in the path could move the request elsewhere.
 */
export function buildUpstreamTarget(apiBase: URL, target: CanonicalTarget): UpstreamTarget {
  let base = checkedPaths.get(apiBase);
  if (!base || base.href !== apiBase.href) {
    base = { href: apiBase.href, origin: apiBase.origin, host: apiBase.host, basePath: apiBase.pathname.replace(/\/+$/, ''), paths: new Map() };
    checkedPaths.set(apiBase, base);
  }
  let path = base.paths.get(target.path);
  if (path === undefined) {
    path = base.basePath + target.path;
    const parsed = new URL(path, base.origin);
    if (parsed.origin !== base.origin || parsed.pathname !== path || !parsed.pathname.startsWith(base.basePath + '/')) {
      throw invalid('path escapes the provider API base');
    }
    if (base.paths.size >= MAX_CHECKED_PATHS) base.paths.clear();
    base.paths.set(target.path, path);
  }
  return {
    origin: base.origin,
    path: target.query === null ? path : `${path}?${target.query}`,
    host: base.host,
  };
}

// Per API base: the paths that already passed the URL-parsing check above (a pure function of base
// and path, so a hit skips re-parsing; bounded).
const MAX_CHECKED_PATHS = 4096;
const checkedPaths = new WeakMap<URL, { href: string; origin: string; host: string; basePath: string; paths: Map<string, string> }>();
