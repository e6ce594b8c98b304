/**
 * `aud` policy (AMB-09, C-016/C-017, C-125). For register, authorize and GET-agent the implementer
 * origin (with or without a trailing slash) or the exact endpoint URL is accepted; /ath/token
 * requires its exact URL so a token-endpoint attestation cannot be replayed elsewhere and vice
 * versa. Comparison is exact string equality: no case folding, no http/https equivalence.
 */
export type AudienceMode = 'origin-or-endpoint' | 'exact';

/**
 * The set of `aud` strings accepted for one endpoint. `baseUrl` is the implementer's public base
 * (normally an origin such as `https://gw.example.com`; a path prefix is kept, so the "origin"
 * forms then mean the base URL itself). `endpointPath` is e.g. `/ath/agents/register`.
 */
export function acceptedAudiences(
  baseUrl: string,
  endpointPath: string,
  mode: AudienceMode,
): ReadonlySet<string> {
  const url = new URL(baseUrl);
  if (url.search !== '' || url.hash !== '' || url.username !== '' || url.password !== '') {
    throw new TypeError('baseUrl must not contain a query, fragment or userinfo');
  }
  const base = url.pathname === '/' ? url.origin : `${url.origin}${url.pathname.replace(/\/+$/, '')}`;
  const endpoint = `${base}${endpointPath.startsWith('/') ? endpointPath : `/${endpointPath}`}`;
  return new Set(mode === 'exact' ? [endpoint] : [base, `${base}/`, endpoint]);
}

/** True when `aud` (a string, or an array of strings) contains one accepted value. */
export function audienceMatches(aud: unknown, accepted: ReadonlySet<string>): boolean {
  if (typeof aud === 'string') return accepted.has(aud);
  if (!Array.isArray(aud)) return false;
  for (const value of aud) if (typeof value === 'string' && accepted.has(value)) return true;
  return false;
}
