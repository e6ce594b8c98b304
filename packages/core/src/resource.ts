import { AthError } from './errors.js';

/**
 * RFC 8707 resource indicators an agent may name at POST /ath/authorize (threats D9, C-086).
 *
 * Always: an absolute URI without a fragment. When the provider declares an API base
 * (`ProviderConfig.api_base`), the indicator must also name that API or something below it:
 *
 * - same scheme, host and port as the API base, and a path equal to the base path or below it on
 *   a segment boundary (`https://api.x/v1` admits `https://api.x/v1/mail`, never `https://api.x/v10`);
 *   a trailing slash on either side does not matter;
 * - written in normalized form (its WHATWG URL serialization, except that an empty path may omit
 *   the `/`): so no dot-segments (`.`, `..`, `%2e` forms), no upper-case scheme or host, no explicit
 *   default port, no backslashes, whitespace or unescaped non-ASCII; and no user info. The
 *   comparison is on that exact string, so the value sent upstream is the value that was checked;
 * - no path bytes some server could read differently from us: no `;` (path parameters, `..;/`) and
 *   no percent-escape of `.`, `/`, `\`, `%`, `;` or a control character. Other escapes are kept
 *   as they are and compared literally (never decoded), which can only make a match fail.
 *
 * The query is not part of the decision (RFC 8707 allows one).
 */
export type ResourceProblem = 'not_absolute' | 'fragment' | 'not_normalized' | 'ambiguous_path' | 'outside_api_base';

const MESSAGES: Record<ResourceProblem, string> = {
  not_absolute: 'resource must be an absolute URI (RFC 8707)',
  fragment: 'resource must not contain a fragment (RFC 8707)',
  not_normalized:
    'resource must be in normalized form (lower-case scheme and host, no default port, no dot-segments, no user info)',
  ambiguous_path: "resource path must not contain ';' or percent-encoded '.', '/', '\\', '%', ';' or control characters",
  outside_api_base: "resource must be the provider's API base or a path below it",
};

// %2E . / %2F / / %5C \ / %25 % / %3B ; / %00-%1F and %7F controls.
const AMBIGUOUS_ESCAPE = /%(?:2e|2f|5c|25|3b|[01][0-9a-f]|7f)/i;

/** Why `resource` is not acceptable for a provider with `apiBase` (none = only RFC 8707 syntax); null when it is. */
export function resourceProblem(resource: string, apiBase?: string): ResourceProblem | null {
  let url: URL;
  try {
    url = new URL(resource);
  } catch {
    return 'not_absolute';
  }
  if (resource.includes('#')) return 'fragment';
  if (apiBase === undefined) return null;

  if (!(url.href === resource || (url.pathname === '/' && url.search === '' && url.href === `${resource}/`))) {
    return 'not_normalized';
  }
  if (url.username !== '' || url.password !== '') return 'not_normalized';
  if (url.pathname.includes(';') || AMBIGUOUS_ESCAPE.test(url.pathname)) return 'ambiguous_path';
  return isUnderApiBase(url, apiBase) ? null : 'outside_api_base';
}

/** Same scheme, host and port; path equal to the base path or below it on a segment boundary. Fails closed on an unusable base. */
function isUnderApiBase(url: URL, apiBase: string): boolean {
  let base: URL;
  try {
    base = new URL(apiBase);
  } catch {
    return false;
  }
  if (base.protocol !== 'https:' && base.protocol !== 'http:') return false;
  if (url.protocol !== base.protocol || url.host !== base.host) return false;
  const basePath = base.pathname.replace(/\/+$/, ''); // '/v1/' → '/v1', '/' → ''
  const path = url.pathname.replace(/\/$/, '');
  return path === basePath || url.pathname.startsWith(`${basePath}/`);
}

/** Throws 400 INVALID_REQUEST naming the field `resource` (AMB-04) when {@link resourceProblem} finds one. */
export function checkResourceIndicator(resource: string, apiBase?: string): void {
  const problem = resourceProblem(resource, apiBase);
  if (problem) throw new AthError('INVALID_REQUEST', MESSAGES[problem], { field: 'resource', reason: problem });
}
