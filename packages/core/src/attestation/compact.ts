import { base64url } from 'jose';
import { attestationFailure } from '../identity/failure.js';

/** Attestations are small; anything larger is refused before any decoding (threats A6). */
export const MAX_ATTESTATION_LENGTH = 8192;

/**
 * Exactly three unpadded base64url segments; an ES256 signature is 64 bytes = 86 characters.
 * Padding, whitespace, 5-segment JWEs and truncated or extended signatures all fail here (A4, A6).
 */
const COMPACT_JWS = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]{86}$/;

export interface AttestationHeader {
  alg: string;
  kid?: string;
  [name: string]: unknown;
}

const decoder = new TextDecoder('utf-8', { fatal: true });

function malformed(message: string): never {
  throw attestationFailure('malformed_token', message);
}

/** Splits a compact JWS after checking its size and shape. */
export function splitCompact(jwt: unknown): [header: string, payload: string] {
  if (typeof jwt !== 'string' || jwt.length > MAX_ATTESTATION_LENGTH || !COMPACT_JWS.test(jwt)) {
    malformed('agent_attestation must be a compact ES256 JWS of at most 8192 characters');
  }
  const first = jwt.indexOf('.');
  return [jwt.slice(0, first), jwt.slice(first + 1, jwt.indexOf('.', first + 1))];
}

/** Decodes one base64url JSON segment to an object (and its text); any failure is a malformed token. */
export function decodeJsonSegment(segment: string): { value: Record<string, unknown>; text: string } {
  let value: unknown;
  let text: string;
  try {
    text = decoder.decode(base64url.decode(segment));
    value = JSON.parse(text);
  } catch {
    malformed('agent_attestation is not valid base64url JSON');
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value))
    malformed('agent_attestation segments must be JSON objects');
  return { value: value as Record<string, unknown>, text };
}

/**
 * Parses the protected header strictly. jose resolves duplicate members last-wins; a component
 * with first-wins semantics could then see a different `alg` (threats A6), so duplicates are
 * refused outright, as is any `crit` (we understand no extensions) and any `alg` but ES256.
 * `jku`, `x5u`, `x5c` and `jwk` are ignored: keys only ever come from the identity document (A5).
 */
export function parseHeader(segment: string): Readonly<AttestationHeader> {
  const known = headerCache.get(segment);
  if (known !== undefined) return known;
  const header = Object.freeze(parseHeaderUncached(segment));
  // An agent sends the same header segment on every token, so parse it once. Bounded in count and
  // entry size (kid values are attacker-chosen); a full cache is simply dropped.
  if (segment.length <= MAX_CACHED_HEADER_LENGTH) {
    if (headerCache.size >= HEADER_CACHE_SIZE) headerCache.clear();
    headerCache.set(segment, header);
  }
  return header;
}

const HEADER_CACHE_SIZE = 512;
const MAX_CACHED_HEADER_LENGTH = 256;
const headerCache = new Map<string, Readonly<AttestationHeader>>();

function parseHeaderUncached(segment: string): AttestationHeader {
  const { value: header, text } = decodeJsonSegment(segment);
  if (hasDuplicateKeys(text)) malformed('agent_attestation header has duplicate members');
  if (header['alg'] !== 'ES256')
    throw attestationFailure('unsupported_alg', 'agent_attestation must be signed with ES256');
  if ('crit' in header) malformed('agent_attestation header must not carry crit');
  if ('cty' in header) malformed('agent_attestation must not be a nested JWT');
  const kid = header['kid'];
  if (kid !== undefined && typeof kid !== 'string') malformed('agent_attestation kid must be a string');
  return header as AttestationHeader;
}

/**
 * True when any object in `json` (already known to be valid JSON) repeats a member name.
 * A linear scan over string tokens: a string followed by ':' inside an object is a member name.
 */
export function hasDuplicateKeys(json: string): boolean {
  const stack: (Set<string> | null)[] = [];
  for (let i = 0; i < json.length; i++) {
    const c = json[i];
    if (c === '{') stack.push(new Set());
    else if (c === '[') stack.push(null);
    else if (c === '}' || c === ']') stack.pop();
    else if (c === '"') {
      const start = i;
      for (i++; json[i] !== '"'; i++) if (json[i] === '\\') i++;
      let j = i + 1;
      while (json[j] === ' ' || json[j] === '\t' || json[j] === '\n' || json[j] === '\r') j++;
      const members = stack[stack.length - 1];
      if (json[j] === ':' && members) {
        const raw = json.slice(start, i + 1);
        const name = raw.includes('\\') ? (JSON.parse(raw) as string) : raw.slice(1, -1);
        if (members.has(name)) return true;
        members.add(name);
      }
    }
  }
  return false;
}
