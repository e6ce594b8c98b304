import { exportPublicJwk, generateAgentKeyPair } from '@athkit/core/attestation';
import { PROTOCOL_VERSION, validateAgentIdentityDocument, type AgentIdentityDocument, type DeveloperInfo } from '@athkit/schemas';
import type { AgentCryptoKey } from './attestation.js';
import { base64url, fromBase64, toBase64 } from './encoding.js';
import { AthClientError } from './errors.js';
import { assertSecureUrl } from './http.js';

/** An agent's ES256 key pair and the `kid` it is published under. */
export interface AgentKey {
  privateKey: AgentCryptoKey;
  publicKey: AgentCryptoKey;
  kid: string;
}

/** A public EC P-256 JWK as published in agent.json. */
export interface PublicJwk {
  kty: string;
  crv: string;
  x: string;
  y: string;
  kid?: string;
  [k: string]: unknown;
}

const subtle = (): typeof globalThis.crypto.subtle => globalThis.crypto.subtle;
const EC = { name: 'ECDSA', namedCurve: 'P-256' } as const;

/** RFC 7638 JWK thumbprint (SHA-256, base64url) of an EC public key: the default `kid`. */
export async function jwkThumbprint(jwk: { crv?: string; kty?: string; x?: string; y?: string }): Promise<string> {
  const canonical = JSON.stringify({ crv: jwk.crv, kty: jwk.kty, x: jwk.x, y: jwk.y });
  const digest = await subtle().digest('SHA-256', new TextEncoder().encode(canonical));
  return base64url(new Uint8Array(digest));
}

/** A new extractable ES256 (P-256) key pair; `kid` defaults to the key's JWK thumbprint. */
export async function generateAgentKey(options: { kid?: string } = {}): Promise<AgentKey> {
  const { privateKey, publicKey } = await generateAgentKeyPair();
  const kid = options.kid ?? (await jwkThumbprint(await exportPublicJwk(publicKey)));
  return { privateKey, publicKey, kid };
}

/** The public JWK to publish (`{kty, crv, x, y, kid}`), never the private part. */
export async function publicJwk(key: AgentKey): Promise<PublicJwk> {
  return (await exportPublicJwk(key.publicKey, key.kid)) as PublicJwk;
}

export type KeyFormat = 'pem' | 'jwk';

/**
 * Serialises the private key: `pem` = PKCS#8 PEM, `jwk` = a private JWK with `kid`, `alg` and
 * `use`. Keep the result secret (CL-17).
 */
export async function exportAgentKey(key: AgentKey, format: KeyFormat = 'pem'): Promise<string> {
  if (format === 'jwk') {
    const jwk = (await subtle().exportKey('jwk', key.privateKey)) as Record<string, unknown>;
    const { kty, crv, x, y, d } = jwk;
    return `${JSON.stringify({ kty, crv, x, y, d, kid: key.kid, alg: 'ES256', use: 'sig' }, null, 2)}\n`;
  }
  const der = new Uint8Array(await subtle().exportKey('pkcs8', key.privateKey));
  const lines = toBase64(der).match(/.{1,64}/g) ?? [];
  return `-----BEGIN PRIVATE KEY-----\n${lines.join('\n')}\n-----END PRIVATE KEY-----\n`;
}

async function fromPrivateJwk(jwk: Record<string, unknown>, kid: string | undefined): Promise<AgentKey> {
  if (jwk['kty'] !== 'EC' || jwk['crv'] !== 'P-256' || typeof jwk['d'] !== 'string') {
    throw new AthClientError('invalid_argument', 'the key is not a private EC P-256 JWK (kty "EC", crv "P-256" and "d" are required)');
  }
  const [x, y, d] = [String(jwk['x']), String(jwk['y']), jwk['d']];
  const privateKey = (await subtle().importKey('jwk', { kty: 'EC', crv: 'P-256', x, y, d }, EC, true, ['sign']));
  const publicKey = (await subtle().importKey('jwk', { kty: 'EC', crv: 'P-256', x, y }, EC, true, ['verify']));
  const jwkKid = typeof jwk['kid'] === 'string' ? jwk['kid'] : undefined;
  return { privateKey, publicKey, kid: kid ?? jwkKid ?? (await jwkThumbprint({ kty: 'EC', crv: 'P-256', x, y })) };
}

/**
 * Reads a private key written by {@link exportAgentKey} (or any PKCS#8 PEM / private JWK for
 * P-256). `kid` overrides the one stored in a JWK; otherwise a PEM key gets its thumbprint.
 */
export async function importAgentKey(text: string, options: { kid?: string } = {}): Promise<AgentKey> {
  const trimmed = text.trim();
  try {
    if (trimmed.startsWith('{')) return await fromPrivateJwk(JSON.parse(trimmed) as Record<string, unknown>, options.kid);
    if (trimmed.includes('-----BEGIN EC PRIVATE KEY-----')) {
      throw new AthClientError(
        'invalid_argument',
        'SEC1 "EC PRIVATE KEY" PEM is not supported; convert it with `openssl pkcs8 -topk8 -nocrypt -in key.pem`',
      );
    }
    const match = /-----BEGIN PRIVATE KEY-----([\s\S]*?)-----END PRIVATE KEY-----/.exec(trimmed);
    if (!match) throw new AthClientError('invalid_argument', 'not a PKCS#8 PEM private key or a private JWK');
    const der = fromBase64(match[1]!.replace(/\s+/g, ''));
    const imported = (await subtle().importKey('pkcs8', der, EC, true, ['sign']));
    const jwk = (await subtle().exportKey('jwk', imported)) as Record<string, unknown>;
    return await fromPrivateJwk(jwk, options.kid);
  } catch (err) {
    if (err instanceof AthClientError) throw err;
    throw new AthClientError('invalid_argument', `the private key could not be read: ${err instanceof Error ? err.message : String(err)}`, {
      cause: err,
    });
  }
}

export interface IdentityDocumentOptions {
  /** The URL the document is served at (CL-01). https, or http on loopback for local development. */
  agentId: string;
  name: string;
  developer: DeveloperInfo;
  key: AgentKey;
  capabilities?: string[];
  /** Additional members (the schema allows them). */
  extra?: Record<string, unknown>;
}

/**
 * The AgentIdentityDocument to publish at the agent_id URL (CL-02), validated against the schema.
 * Serve it with `Cache-Control: max-age=300`.
 */
export async function createIdentityDocument(options: IdentityDocumentOptions): Promise<AgentIdentityDocument> {
  let url: URL;
  try {
    url = new URL(options.agentId);
  } catch {
    throw new AthClientError('invalid_argument', `agent_id must be an absolute URL, got ${options.agentId}`);
  }
  assertSecureUrl(url);
  const document = {
    ...options.extra,
    ath_version: PROTOCOL_VERSION,
    agent_id: options.agentId,
    name: options.name,
    developer: options.developer,
    public_key: await publicJwk(options.key),
    ...(options.capabilities ? { capabilities: options.capabilities } : {}),
  };
  const result = validateAgentIdentityDocument(document);
  if (!result.valid) {
    throw new AthClientError(
      'invalid_argument',
      `the identity document is invalid: ${result.violations.map((v) => `${v.pointer || '(root)'} ${v.message}`).join('; ')}`,
      { violations: result.violations },
    );
  }
  return result.value;
}
