import type { ScopeIntersection } from '@athkit/schemas';

/** De-duplicates while keeping the caller's order (AMB-10: arrays are de-duplicated, compared exactly). */
export function uniqueScopes(scopes: readonly string[]): string[] {
  return [...new Set(scopes)];
}

/** An RFC 6749 §3.3 `scope` string (space-delimited) as a list; absent → null. */
export function parseScopeString(scope: string | null | undefined): string[] | null {
  if (scope === null || scope === undefined) return null;
  return uniqueScopes(scope.split(' ').filter((s) => s.length > 0));
}

/**
 * effective = agent_approved ∩ user_consented ∩ requested (checklist C-134/C-135), in the order the
 * agent requested them. `consented === null` means the authorization server did not say, which
 * RFC 6749 §5.1 reads as "as requested" (AMB-10, C-110).
 */
export function intersectScopes(input: {
  approved: readonly string[];
  consented: readonly string[] | null;
  requested: readonly string[];
}): ScopeIntersection {
  const approved = new Set(input.approved);
  const consented = input.consented === null ? [...input.requested] : [...input.consented];
  const consentedSet = new Set(consented);
  return {
    agent_approved: uniqueScopes(input.approved),
    user_consented: uniqueScopes(consented),
    effective: uniqueScopes(input.requested).filter((s) => approved.has(s) && consentedSet.has(s)),
  };
}
