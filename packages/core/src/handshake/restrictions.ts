import { AthError } from '../errors.js';
import { parseIPv4, parseIPv6 } from '../identity/ip.js';
import type { Store, TokenRecord, TokenRestrictions } from '../store.js';

const WINDOWS: Record<string, number> = { second: 1000, minute: 60_000, hour: 3_600_000 };

/** `N/second|minute|hour` → limit and window; null when malformed. */
export function parseRateLimit(value: string): { limit: number; windowMs: number } | null {
  const m = /^([1-9][0-9]{0,8})\/(second|minute|hour)$/.exec(value);
  if (!m) return null;
  return { limit: Number(m[1]), windowMs: WINDOWS[m[2]!]! };
}

function toBits(ip: string): { v: 4 | 6; bits: bigint } | null {
  const v4 = parseIPv4(ip);
  if (v4 !== null) return { v: 4, bits: BigInt(v4) };
  const v6 = parseIPv6(ip);
  if (v6 === null) return null;
  // ::ffff:a.b.c.d is the IPv4 address for matching purposes.
  if (v6.slice(0, 5).every((g) => g === 0) && v6[5] === 0xffff)
    return { v: 4, bits: (BigInt(v6[6]!) << 16n) | BigInt(v6[7]!) };
  return { v: 6, bits: v6.reduce((acc, g) => (acc << 16n) | BigInt(g), 0n) };
}

/** True when `ip` equals an entry or falls inside one of its CIDR blocks (IPv4 and IPv6). */
export function ipAllowed(ip: string, list: readonly string[]): boolean {
  const addr = toBits(ip);
  if (!addr) return false;
  for (const entry of list) {
    const [base, prefixText] = entry.split('/');
    const net = toBits(base ?? '');
    if (!net || net.v !== addr.v) continue;
    const width = addr.v === 4 ? 32 : 128;
    const prefix = prefixText === undefined ? width : Number(prefixText);
    if (!Number.isInteger(prefix) || prefix < 0 || prefix > width) continue;
    const shift = BigInt(width - prefix);
    if (addr.bits >> shift === net.bits >> shift) return true;
  }
  return false;
}

/** Rejects restrictions we could not enforce (AMB-35: never return a restriction that is not enforced). */
export function checkRestrictions(r: TokenRestrictions): TokenRestrictions {
  const out: TokenRestrictions = {};
  if (r.rate_limit !== undefined) {
    if (!parseRateLimit(r.rate_limit)) throw new RangeError(`unsupported rate_limit ${r.rate_limit}`);
    out.rate_limit = r.rate_limit;
  }
  if (r.ip_whitelist !== undefined) {
    for (const e of r.ip_whitelist)
      if (!toBits(e.split('/')[0] ?? '')) throw new RangeError(`invalid ip_whitelist entry ${e}`);
    out.ip_whitelist = [...r.ip_whitelist];
  }
  const unknown = Object.keys(r).filter((k) => k !== 'rate_limit' && k !== 'ip_whitelist');
  if (unknown.length) throw new RangeError(`unsupported restriction(s) ${unknown.join(', ')}`);
  return out;
}

/** 403 SCOPE_NOT_APPROVED with details.reason ip_restricted (C-270). */
export function ipRestricted(): AthError {
  return new AthError('SCOPE_NOT_APPROVED', 'This token may not be used from this address', {
    reason: 'ip_restricted',
  });
}

/**
 * Enforces a token's restrictions on one call (C-270, AMB-35): the IP allow-list when the caller's
 * address is known (403), then the per-token rate (429 with retry_after). Returns the allow-list
 * still to be checked by the adapter when the address was not given.
 */
export async function enforceTokenRestrictions(
  store: Pick<Store, 'hitRateLimit'>,
  record: TokenRecord,
  clientIp: string | undefined,
  now: number,
): Promise<readonly string[] | null> {
  const r = record.restrictions;
  if (!r) return null;
  let unchecked: readonly string[] | null = null;
  if (r.ip_whitelist) {
    if (clientIp === undefined) unchecked = r.ip_whitelist;
    else if (!ipAllowed(clientIp, r.ip_whitelist)) throw ipRestricted();
  }
  if (r.rate_limit) {
    const rule = parseRateLimit(r.rate_limit);
    if (rule) {
      const hit = await store.hitRateLimit(
        `token-restriction:${record.tokenHash}`,
        rule.limit,
        rule.windowMs,
        now,
      );
      if (!hit.allowed) {
        throw new AthError('RATE_LIMITED', 'The rate limit of this token was exceeded', {
          retry_after: Math.max(1, Math.ceil(hit.resetInMs / 1000)),
          reason: 'token_rate_limit',
        });
      }
    }
  }
  return unchecked;
}
