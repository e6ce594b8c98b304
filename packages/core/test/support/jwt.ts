/**
 * Hand-made JWS helpers for attestation tests (threats 3.0 `rawSign`): they produce tokens that
 * jose refuses to build (duplicate header members, unknown crit, odd encodings) and claim sets with
 * members missing or out of range.
 */
import type { CryptoKey } from 'jose';

const encoder = new TextEncoder();

export function b64url(input: string | Uint8Array): string {
  const bytes = typeof input === 'string' ? encoder.encode(input) : input;
  return Buffer.from(bytes).toString('base64url');
}

const json = (value: string | Record<string, unknown>): string =>
  typeof value === 'string' ? value : JSON.stringify(value);

/**
 * Signs `header.payload` with an ES256 private key. Header and payload may be given as raw JSON
 * text, so duplicate members survive. The signature is the JOSE (r||s) form.
 */
export async function rawSign(
  header: string | Record<string, unknown>,
  payload: string | Record<string, unknown>,
  privateKey: CryptoKey,
): Promise<string> {
  const input = `${b64url(json(header))}.${b64url(json(payload))}`;
  const signature = await globalThis.crypto.subtle.sign(
    { name: 'ECDSA', hash: 'SHA-256' },
    privateKey,
    encoder.encode(input),
  );
  return `${input}.${b64url(new Uint8Array(signature))}`;
}

/** HMAC-SHA256 compact JWS with an arbitrary secret (algorithm-confusion tests, threats A3). */
export async function hmacSign(
  header: Record<string, unknown>,
  payload: Record<string, unknown>,
  secret: Uint8Array,
): Promise<string> {
  const key = await globalThis.crypto.subtle.importKey(
    'raw',
    secret,
    { name: 'HMAC', hash: 'SHA-256' },
    false,
    ['sign'],
  );
  const input = `${b64url(json(header))}.${b64url(json(payload))}`;
  const signature = await globalThis.crypto.subtle.sign('HMAC', key, encoder.encode(input));
  return `${input}.${b64url(new Uint8Array(signature))}`;
}

/** The standard attestation claim set for `agentId` at clock time `nowMs`, with overrides (undefined deletes). */
export function claimsFor(
  agentId: string,
  aud: string | string[],
  nowMs: number,
  overrides: Record<string, unknown> = {},
): Record<string, unknown> {
  const iat = Math.floor(nowMs / 1000);
  const claims: Record<string, unknown> = {
    iss: new URL(agentId).origin,
    sub: agentId,
    aud,
    iat,
    exp: iat + 300,
    jti: `jti-${crypto.randomUUID()}`,
  };
  for (const [k, v] of Object.entries(overrides)) {
    if (v === undefined) delete claims[k];
    else claims[k] = v;
  }
  return claims;
}

/** Splits a compact JWS into its three segments. */
export function segments(jwt: string): [string, string, string] {
  const parts = jwt.split('.');
  if (parts.length !== 3) throw new Error('not a compact JWS');
  return parts as [string, string, string];
}
