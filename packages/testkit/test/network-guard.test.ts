import net from 'node:net';
import { describe, expect, it } from 'vitest';
import type { AddressInfo } from 'node:net';
import { isLoopbackAddress, useNetworkGuard } from '../src/index.js';

const guard = useNetworkGuard();

describe('network guard (threats 3.0 safety net)', () => {
  it('refuses a connection to a non-loopback IP literal before any packet is sent, and records it', () => {
    expect(() => net.connect({ host: '192.0.2.1', port: 9 })).toThrow(/network guard/);
    expect(() => new net.Socket().connect(9, '198.51.100.1')).toThrow(/network guard/);
    expect(guard.violations).toEqual(['192.0.2.1:9', '198.51.100.1:9']);
    guard.reset();
  });

  it('checks the address a hostname resolves to', async () => {
    const socket = net.connect({
      host: 'somewhere.test',
      port: 9,
      lookup: (_h: string, _o: unknown, cb: (e: null, a: string, f: number) => void) =>
        cb(null, '203.0.113.5', 4),
    });
    const error = await new Promise<Error>((resolve) => socket.once('error', resolve));
    expect(error.message).toMatch(/network guard/);
    expect(guard.violations).toEqual(['somewhere.test -> 203.0.113.5']);
    guard.reset();
  });

  it('lets loopback connections through', async () => {
    const server = net.createServer((s) => s.end());
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const socket = net.connect({ host: '127.0.0.1', port: (server.address() as AddressInfo).port });
    await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject));
    socket.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
    expect(guard.violations).toEqual([]);
  });

  it('classifies loopback forms', () => {
    expect(isLoopbackAddress('127.0.0.2')).toBe(true);
    expect(isLoopbackAddress('::1')).toBe(true);
    expect(isLoopbackAddress('::ffff:127.0.0.1')).toBe(true);
    expect(isLoopbackAddress('10.0.0.1')).toBe(false);
    expect(isLoopbackAddress('::ffff:10.0.0.1')).toBe(false);
  });
});
