/**
 * IP address classification for the SSRF guard of identity-document fetches (threats B1–B3).
 *
 * Pure functions without dependencies. The policy is fail-closed: an address is allowed only when
 * it is a well-formed, globally routable unicast address. Anything we cannot parse, and every IPv6
 * address outside 2000::/3, counts as forbidden.
 */

export type AddressClass =
  | 'public'
  | 'invalid'
  | 'unspecified'
  | 'loopback'
  | 'private'
  | 'cgnat'
  | 'link-local'
  | 'multicast'
  | 'broadcast'
  | 'reserved'
  | 'documentation'
  | 'benchmarking'
  | 'unique-local'
  | 'site-local'
  | 'nat64'
  | 'tunnel';

/** Parses a strict dotted-quad IPv4 address (what resolvers and WHATWG URL hostnames produce). */
export function parseIPv4(ip: string): number | null {
  const parts = ip.split('.');
  if (parts.length !== 4) return null;
  let value = 0;
  for (const part of parts) {
    if (!/^(0|[1-9][0-9]{0,2})$/.test(part)) return null;
    const n = Number(part);
    if (n > 255) return null;
    value = value * 256 + n;
  }
  return value;
}

/**
 * Parses an IPv6 address (optionally in brackets, optionally with a zone id, optionally with an
 * embedded dotted-quad tail) into its eight 16-bit groups.
 */
export function parseIPv6(ip: string): number[] | null {
  let text = ip;
  if (text.startsWith('[') && text.endsWith(']')) text = text.slice(1, -1);
  const zone = text.indexOf('%');
  if (zone !== -1) text = text.slice(0, zone);
  if (!/^[0-9a-fA-F:.]+$/.test(text)) return null;

  // An embedded IPv4 tail (::ffff:1.2.3.4) is rewritten as the two hex groups it stands for.
  if (text.includes('.')) {
    const lastColon = text.lastIndexOf(':');
    const v4 = parseIPv4(text.slice(lastColon + 1));
    if (v4 === null) return null;
    text = `${text.slice(0, lastColon + 1)}${(v4 >>> 16).toString(16)}:${(v4 & 0xffff).toString(16)}`;
  }

  const halves = text.split('::');
  if (halves.length > 2) return null;
  const parseGroups = (s: string): number[] | null => {
    if (s === '') return [];
    const out: number[] = [];
    for (const g of s.split(':')) {
      if (!/^[0-9a-fA-F]{1,4}$/.test(g)) return null;
      out.push(parseInt(g, 16));
    }
    return out;
  };
  const head = parseGroups(halves[0]!);
  const rest = halves.length === 2 ? parseGroups(halves[1]!) : [];
  if (head === null || rest === null) return null;
  const explicit = head.length + rest.length;
  if (halves.length === 1) return explicit === 8 ? head : null;
  if (explicit > 7) return null;
  return [...head, ...new Array<number>(8 - explicit).fill(0), ...rest];
}

function inV4(value: number, base: string, bits: number): boolean {
  const b = parseIPv4(base)!;
  const size = 2 ** (32 - bits);
  return Math.floor(value / size) === Math.floor(b / size);
}

function classifyV4(v: number): AddressClass {
  if (inV4(v, '0.0.0.0', 8)) return 'unspecified';
  if (inV4(v, '10.0.0.0', 8) || inV4(v, '172.16.0.0', 12) || inV4(v, '192.168.0.0', 16)) return 'private';
  if (inV4(v, '100.64.0.0', 10)) return 'cgnat';
  if (inV4(v, '127.0.0.0', 8)) return 'loopback';
  if (inV4(v, '169.254.0.0', 16)) return 'link-local';
  if (inV4(v, '192.0.0.0', 24)) return 'reserved'; // IETF protocol assignments
  if (inV4(v, '192.0.2.0', 24) || inV4(v, '198.51.100.0', 24) || inV4(v, '203.0.113.0', 24))
    return 'documentation';
  if (inV4(v, '192.88.99.0', 24)) return 'tunnel'; // deprecated 6to4 relay anycast
  if (inV4(v, '198.18.0.0', 15)) return 'benchmarking';
  if (inV4(v, '224.0.0.0', 4)) return 'multicast';
  if (v === 0xffffffff) return 'broadcast';
  if (inV4(v, '240.0.0.0', 4)) return 'reserved';
  return 'public';
}

function classifyV6(g: number[]): AddressClass {
  const [g0, g1, g2, g3, g4, g5, g6, g7] = g as [
    number,
    number,
    number,
    number,
    number,
    number,
    number,
    number,
  ];
  const firstSixZero = g0 === 0 && g1 === 0 && g2 === 0 && g3 === 0 && g4 === 0;
  if (firstSixZero && g5 === 0) {
    if (g6 === 0 && g7 === 0) return 'unspecified';
    if (g6 === 0 && g7 === 1) return 'loopback';
    return 'reserved'; // deprecated IPv4-compatible ::a.b.c.d
  }
  // IPv4-mapped ::ffff:a.b.c.d: the socket would really talk to the embedded IPv4 address.
  if (firstSixZero && g5 === 0xffff) return classifyV4(g6 * 65536 + g7);
  if (g0 === 0x64 && g1 === 0xff9b) return 'nat64'; // 64:ff9b::/96 and 64:ff9b:1::/48
  if (g0 === 0x2001 && g1 === 0) return 'tunnel'; // Teredo 2001::/32
  if (g0 === 0x2002) return 'tunnel'; // 6to4 2002::/16 embeds an arbitrary IPv4 address
  if (g0 === 0x2001 && g1 === 0xdb8) return 'documentation';
  if (g0 === 0x3fff && g1 < 0x1000) return 'documentation'; // 3fff::/20 (RFC 9637)
  if (g0 === 0x2001 && g1 >= 0x10 && g1 <= 0x2f) return 'reserved'; // ORCHID v1/v2
  if (g0 === 0x2001 && g1 < 0x200) return 'reserved'; // rest of the IETF protocol block 2001::/23
  if ((g0 & 0xfe00) === 0xfc00) return 'unique-local';
  if ((g0 & 0xffc0) === 0xfe80) return 'link-local';
  if ((g0 & 0xffc0) === 0xfec0) return 'site-local';
  if ((g0 & 0xff00) === 0xff00) return 'multicast';
  // Only 2000::/3 is global unicast; everything else (100::/64 discard, 5f00::/16 SRv6, ...) is not.
  if ((g0 & 0xe000) !== 0x2000) return 'reserved';
  return 'public';
}

/** Classifies an IPv4 or IPv6 address literal; 'invalid' when it is neither. */
export function classifyAddress(ip: string): AddressClass {
  const v4 = parseIPv4(ip);
  if (v4 !== null) return classifyV4(v4);
  const v6 = parseIPv6(ip);
  if (v6 !== null) return classifyV6(v6);
  return 'invalid';
}

/** True unless the address is a well-formed, globally routable unicast address. */
export function isForbiddenAddress(ip: string): boolean {
  return classifyAddress(ip) !== 'public';
}

/** True when the string is an IPv4 dotted quad or an IPv6 literal (with or without brackets). */
export function isIpLiteral(host: string): boolean {
  return parseIPv4(host) !== null || parseIPv6(host) !== null;
}
