import { exportJWK, SignJWT, type CryptoKey, type JWK } from 'jose';
import { systemClock, type Clock } from '../clock.js';
import { base64url, cryptoRandom, type RandomSource } from '../random.js';

export interface SignAttestationOptions {
  privateKey: CryptoKey;
  /** Header `kid`; needed when the identity document publishes several keys. */
  kid?: string;
  /** The agent_id; becomes `sub`. */
  agentId: string;
  audience: string | string[];
  /** Default: the origin of agentId (the "agent's domain"). */
  issuer?: string;
  /** Default 300 s. Verifiers reject more than 3600 s (C-035). */
  lifetimeSeconds?: number;
  clock?: Clock;
  random?: RandomSource;
  /** Default: 192 random bits, base64url. */
  jti?: string;
  /** Additional claims; the registered claims above always win. */
  extraClaims?: Record<string, unknown>;
}

/** Creates an ATH attestation JWT: ES256, `{alg, typ: 'JWT', kid}`, claims iss/sub/aud/iat/exp/jti. */
export async function signAttestation(options: SignAttestationOptions): Promise<string> {
  const clock = options.clock ?? systemClock;
  const iat = Math.floor(clock.now() / 1000);
  const jti = options.jti ?? base64url((options.random ?? cryptoRandom).bytes(24));
  const header =
    options.kid === undefined ? { alg: 'ES256', typ: 'JWT' } : { alg: 'ES256', typ: 'JWT', kid: options.kid };
  return new SignJWT({
    ...options.extraClaims,
    iss: options.issuer ?? new URL(options.agentId).origin,
    sub: options.agentId,
    aud: options.audience,
    iat,
    exp: iat + (options.lifetimeSeconds ?? 300),
    jti,
  })
    .setProtectedHeader(header)
    .sign(options.privateKey);
}

/** A fresh, extractable ECDSA P-256 key pair (Web Crypto) for an agent. */
export async function generateAgentKeyPair(): Promise<{ privateKey: CryptoKey; publicKey: CryptoKey }> {
  return globalThis.crypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, true, [
    'sign',
    'verify',
  ]);
}

/** The public JWK to publish as `public_key` in agent.json: `{kty, crv, x, y[, kid]}`, never `d`. */
export async function exportPublicJwk(key: CryptoKey, kid?: string): Promise<JWK> {
  const { kty, crv, x, y } = await exportJWK(key);
  const jwk: JWK = { kty, crv, x, y };
  if (kid !== undefined) jwk.kid = kid;
  return jwk;
}
