import { randomToken } from './encoding.js';
import { AthClientError } from './errors.js';

/** A new `state`: 32 bytes (256 bits) from the platform CSPRNG, base64url (CL-09). */
export function generateState(): string {
  return randomToken(32);
}

/**
 * Reads the redirect the user's browser was sent to after consent (AMB-02): checks that `state`
 * is exactly the one this agent generated (CL-09) and returns the single-use completion `code`.
 * `error=access_denied` becomes `USER_DENIED`; a missing code or any other error is
 * `invalid_redirect`.
 */
export function parseRedirect(redirectUrl: string | URL, expectedState: string): { code: string } {
  let url: URL;
  try {
    url = new URL(redirectUrl);
  } catch {
    throw new AthClientError('invalid_redirect', 'the redirect is not an absolute URL');
  }
  const params = url.searchParams;
  const state = params.get('state');
  if (state === null || state !== expectedState || params.getAll('state').length !== 1) {
    throw new AthClientError('state_mismatch', 'the redirect does not carry the state this agent sent; ignoring it (possible CSRF)');
  }
  const error = params.get('error');
  if (error === 'access_denied') throw new AthClientError('USER_DENIED', 'the user denied the authorization');
  if (error !== null) throw new AthClientError('invalid_redirect', `the authorization ended with error "${error}"`);
  const code = params.get('code');
  if (!code) throw new AthClientError('invalid_redirect', 'the redirect carries no completion code');
  return { code };
}
