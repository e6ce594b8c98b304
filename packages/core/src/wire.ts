import type { Validator } from '@athkit/schemas';
import { AthError } from './errors.js';

/**
 * Checks a request body against its schema $def. The attestation field is special: a missing or
 * blank attestation is an attestation failure (401, C-042/C-071), not a malformed request, and it
 * is reported at the attestation step so the check order of AMB-26 holds. So when the only
 * violations concern that field, the body is accepted with the field set to '' and the attestation
 * verifier rejects it in turn.
 */
export function parseWire<T>(validator: Validator<T>, body: unknown, attestationField?: string): T {
  if (body === null || typeof body !== 'object' || Array.isArray(body)) {
    throw new AthError('INVALID_REQUEST', 'Request body must be a JSON object');
  }
  const result = validator(body);
  if (result.valid) return result.value;
  const pointer = attestationField ? `/${attestationField}` : null;
  const others = result.violations.filter((v) => v.pointer !== pointer);
  if (others.length === 0 && attestationField) {
    return { ...(body as Record<string, unknown>), [attestationField]: '' } as T;
  }
  throw new AthError('INVALID_REQUEST', `Invalid ${validator.def}`, {
    violations: others.slice(0, 20).map((v) => ({ pointer: v.pointer, message: v.message })),
  });
}
