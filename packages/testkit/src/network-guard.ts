/**
 * Test safety net (threats 3.0): while installed, any outbound TCP connection to an address outside
 * 127.0.0.0/8 and ::1 throws, and is recorded as a violation so the test fails even when the code
 * under test swallows the error. IP literals are checked directly; for hostnames the `lookup` used
 * by the socket is wrapped, so the check applies to the address really dialled.
 *
 * Usage in a test file that does network I/O:
 *
 *   const guard = useNetworkGuard(); // installs in beforeAll, asserts after each test
 *
 * Unix sockets (IPC paths) are not affected.
 */
import dns from 'node:dns';
import net from 'node:net';
import { afterAll, afterEach, beforeAll } from 'vitest';

export interface NetworkGuard {
  /** Destinations that were refused since the last reset. */
  readonly violations: readonly string[];
  /** Throws when anything was refused; then clears the list. */
  assertNoViolations(): void;
  reset(): void;
  uninstall(): void;
}

/** True for 127.0.0.0/8, ::1 and their IPv4-mapped forms. */
export function isLoopbackAddress(address: string): boolean {
  const v4 = address.startsWith('::ffff:') ? address.slice(7) : address;
  if (net.isIPv4(v4)) return v4.startsWith('127.');
  return address === '::1' || address === '0:0:0:0:0:0:0:1';
}

type LookupCallback = (
  err: NodeJS.ErrnoException | null,
  address: string | dns.LookupAddress[],
  family?: number,
) => void;
type LookupFn = (hostname: string, options: dns.LookupOptions, callback: LookupCallback) => void;

const ORIGINAL = Symbol.for('athkit.networkGuard.originalConnect');
type PatchedPrototype = net.Socket & { [ORIGINAL]?: net.Socket['connect'] };

export function installNetworkGuard(): NetworkGuard {
  const proto = net.Socket.prototype as PatchedPrototype;
  if (proto[ORIGINAL]) throw new Error('network guard already installed');
  // eslint-disable-next-line @typescript-eslint/unbound-method -- only ever invoked with .apply/.call on a socket
  const original = proto.connect;
  proto[ORIGINAL] = original;
  const violations: string[] = [];

  const refuse = (destination: string): Error => {
    violations.push(destination);
    return new Error(
      `network guard: outbound connection to ${destination} refused (tests may only use loopback)`,
    );
  };

  proto.connect = function guardedConnect(this: net.Socket, ...args: unknown[]): net.Socket {
    // net.connect() passes its already-normalised [options, callback] array as the only argument.
    let options: Record<string, unknown>;
    let callback: unknown;
    const first = args[0];
    if (Array.isArray(first)) [options, callback] = first as [Record<string, unknown>, unknown];
    else if (typeof first === 'object' && first !== null)
      [options, callback] = [first as Record<string, unknown>, args[1]];
    else if (typeof first === 'string' && !/^[0-9]+$/.test(first))
      return original.apply(this, args as never); // IPC path
    else {
      options = { port: first, host: typeof args[1] === 'string' ? args[1] : undefined };
      callback = args.find((a) => typeof a === 'function');
    }
    if (typeof options['path'] === 'string') return original.apply(this, args as never);

    const host = typeof options['host'] === 'string' ? options['host'] : 'localhost';
    if (net.isIP(host)) {
      if (!isLoopbackAddress(host)) throw refuse(`${host}:${String(options['port'])}`);
      return original.apply(this, args as never);
    }
    const lookup = (typeof options['lookup'] === 'function' ? options['lookup'] : dns.lookup) as LookupFn;
    const guardedLookup: LookupFn = (hostname, lookupOptions, cb) =>
      lookup(hostname, lookupOptions, (err, address, family) => {
        if (err) return cb(err, address, family);
        const list = Array.isArray(address) ? address.map((a) => a.address) : [address];
        const bad = list.find((a) => !isLoopbackAddress(a));
        if (bad !== undefined) return cb(refuse(`${hostname} -> ${bad}`), address, family);
        cb(null, address, family);
      });
    const connect = original as (
      this: net.Socket,
      options: net.NetConnectOpts,
      listener?: () => void,
    ) => net.Socket;
    return connect.call(
      this,
      { ...options, lookup: guardedLookup } as net.NetConnectOpts,
      (callback ?? undefined) as (() => void) | undefined,
    );
  };

  return {
    violations,
    assertNoViolations() {
      if (violations.length === 0) return;
      const list = violations.splice(0).join(', ');
      throw new Error(`network guard: non-loopback connections attempted: ${list}`);
    },
    reset() {
      violations.length = 0;
    },
    uninstall() {
      if (proto[ORIGINAL] === original) {
        proto.connect = original;
        delete proto[ORIGINAL];
      }
    },
  };
}

/** Installs the guard for the current test file and fails any test that triggered it. */
export function useNetworkGuard(): NetworkGuard {
  let guard: NetworkGuard | undefined;
  const proxy: NetworkGuard = {
    get violations() {
      return guard?.violations ?? [];
    },
    assertNoViolations: () => guard?.assertNoViolations(),
    reset: () => guard?.reset(),
    uninstall: () => guard?.uninstall(),
  };
  beforeAll(() => {
    guard = installNetworkGuard();
  });
  afterEach(() => guard?.assertNoViolations());
  afterAll(() => guard?.uninstall());
  return proxy;
}
