import type { VerifiedAttestation } from '../attestation/index.js';
import { AthError } from '../errors.js';
import type { EngineContext } from './context.js';

/**
 * Verifies an attestation; an attestation failure is audited (`attestation_failed`, C-058) and
 * rethrown (401). Anything else (a store outage) propagates untouched and becomes a 500 (C-204).
 */
export async function verifyOrAudit(
  ctx: EngineContext,
  jwt: string,
  expect: { agentId: string; audiences: ReadonlySet<string> | readonly string[] },
): Promise<VerifiedAttestation> {
  try {
    if (!jwt) throw new AthError('INVALID_ATTESTATION', 'agent_attestation is required', { reason: 'missing' });
    return await ctx.verifier.verify(jwt, expect);
  } catch (err) {
    if (err instanceof AthError && err.code === 'INVALID_ATTESTATION') {
      await ctx.auditor.emit('attestation_failed', {
        agent_id: expect.agentId,
        denial_reason: typeof err.details?.['reason'] === 'string' ? err.details['reason'] : 'invalid',
      });
    }
    throw err;
  }
}

/** `sub` of a JWT, unverified: used only to pick whose published key must then verify it. */
export function unverifiedSubject(jwt: string): string | null {
  const payload = jwt.split('.')[1];
  if (!payload || payload.length > 8192) return null;
  try {
    const json = JSON.parse(atob(payload.replace(/-/g, '+').replace(/_/g, '/'))) as { sub?: unknown };
    return typeof json.sub === 'string' ? json.sub : null;
  } catch {
    return null;
  }
}
