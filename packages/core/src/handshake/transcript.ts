import { CompactSign, compactVerify, decodeProtectedHeader, importJWK, type CryptoKey, type JWK } from 'jose';
import { sha256 } from '../digest.js';
import type { ServerSigningKey } from './keys.js';

export const SERVER_TRANSCRIPT_TYP = 'ath-hs-server';
export const PRESENTATION_TYP = 'ath-hs-presentation';
export const CONFIRMATION_TYP = 'ath-hs-confirmation';
export const PUSH_TYP = 'ath-hs-push';

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** Step 2: the payload the server signs (AMB-32: the whole transcript, not the bare nonce). */
export interface ServerTranscript {
  typ: typeof SERVER_TRANSCRIPT_TYP;
  handshake_id: string;
  client_did: string;
  server_did: string;
  nonce_a: string;
  nonce_b: string;
  version: string;
  /** The client it is meant for (= client_did). */
  aud: string;
  iat: number;
}

/** Compact ES256 JWS with `kid` over a JSON payload. */
export async function signJson(
  privateKey: CryptoKey,
  kid: string | undefined,
  payload: object,
  typ?: string,
): Promise<string> {
  const header: { alg: 'ES256'; kid?: string; typ?: string } = { alg: 'ES256' };
  if (kid !== undefined) header.kid = kid;
  if (typ !== undefined) header.typ = typ;
  return new CompactSign(encoder.encode(JSON.stringify(payload))).setProtectedHeader(header).sign(privateKey);
}

export function signServerTranscript(key: ServerSigningKey, transcript: ServerTranscript): Promise<string> {
  return signJson(key.privateKey, key.kid, transcript, 'ath-hs+jws');
}

/** A verification key: a public JWK, or an imported key (as identity documents yield). */
export type VerificationKey = JWK | { kid: string | null; key: CryptoKey };

/**
 * Verifies a compact ES256 JWS with one of `keys` and returns its JSON payload; null when no key
 * verifies or the payload is not a JSON object. A `kid` in the header selects the key; without one
 * each key is tried (a user has a few enrolled keys at most). Never throws for bad input.
 */
export async function verifyJsonJws(
  jws: string,
  keys: readonly VerificationKey[],
): Promise<Record<string, unknown> | null> {
  let kid: string | undefined;
  try {
    const header = decodeProtectedHeader(jws);
    if (header.alg !== 'ES256') return null;
    kid = typeof header.kid === 'string' ? header.kid : undefined;
  } catch {
    return null;
  }
  const imported = (k: VerificationKey): k is { kid: string | null; key: CryptoKey } =>
    typeof (k as { key?: unknown }).key === 'object' && (k as { key?: unknown }).key !== null;
  const kidOf = (k: VerificationKey): string | undefined => (imported(k) ? (k.kid ?? undefined) : k.kid);
  const byKid = kid === undefined ? [] : keys.filter((k) => kidOf(k) === kid);
  const pick = byKid.length ? byKid : keys.filter((k) => kidOf(k) === undefined || kid === undefined);
  for (const k of pick) {
    try {
      const key = imported(k) ? k.key : await importJWK(publicOnly(k), 'ES256');
      if (key instanceof Uint8Array) continue;
      const { payload } = await compactVerify(jws, key, { algorithms: ['ES256'] });
      const value = JSON.parse(decoder.decode(payload)) as unknown;
      return value !== null && typeof value === 'object' && !Array.isArray(value)
        ? (value as Record<string, unknown>)
        : null;
    } catch {
      // try the next key
    }
  }
  return null;
}

function publicOnly(jwk: JWK): JWK {
  return { kty: jwk.kty, crv: jwk.crv, x: jwk.x, y: jwk.y };
}

/** base64url(SHA-256(credential)): what the agent's presentation signature binds (step 5). */
export function credentialDigest(credential: string): Promise<string> {
  return sha256(credential);
}

/** Step 5, agent side: the agent's signature over the user credential, bound to this handshake. */
export async function signPresentation(input: {
  privateKey: CryptoKey;
  kid?: string;
  clientDid: string;
  serverDid: string;
  handshakeId: string;
  credential: string;
  now: number;
}): Promise<string> {
  return signJson(
    input.privateKey,
    input.kid,
    {
      typ: PRESENTATION_TYP,
      iss: input.clientDid,
      aud: input.serverDid,
      handshake_id: input.handshakeId,
      credential_sha256: await credentialDigest(input.credential),
      iat: Math.floor(input.now / 1000),
    },
    'ath-hs+jws',
  );
}
