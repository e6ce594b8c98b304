import { readFileSync, writeFileSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, expect, it, vi } from 'vitest';
import { useNetworkGuard } from './support/network-guard.js';
import { startTestServer, type TestServer } from './support/ath-server.js';

const here = dirname(fileURLToPath(import.meta.url));
const scratch = join(here, '.readme-agent.mjs');
let server: TestServer;

useNetworkGuard();
beforeAll(async () => {
  server = await startTestServer();
});
afterAll(async () => {
  rmSync(scratch, { force: true });
  delete process.env['SHOP_URL'];
  await server.close();
});

it('the README agent is under 40 lines and runs the whole flow', async () => {
  const readme = readFileSync(join(here, '..', 'README.md'), 'utf8');
  const code = /```js\n([\s\S]*?)```/.exec(readme)?.[1];
  expect(code).toBeTruthy();
  expect(code!.trim().split('\n').length).toBeLessThan(40);
  writeFileSync(scratch, code!);
  process.env['SHOP_URL'] = server.url;

  const lines: unknown[][] = [];
  const consents: Promise<unknown>[] = [];
  const spy = vi.spyOn(console, 'log').mockImplementation((...args: unknown[]) => {
    lines.push(args);
    // The user: opens the printed URL and consents to products:read only.
    if (args[0] === 'Open this URL to approve:') consents.push(server.consent(String(args[1]), { scopes: ['products:read'] }));
  });
  try {
    await import(/* @vite-ignore */ scratch);
  } finally {
    spy.mockRestore();
  }
  await Promise.all(consents);
  expect(lines[0]).toEqual(['registration:', 'approved']);
  expect(lines[1]?.[0]).toBe('Open this URL to approve:');
  expect(lines[2]).toEqual(['granted:', ['products:read']]);
  expect(lines[3]).toEqual(['first product:', 'Tea']);
  expect(lines).toHaveLength(4);
  // It revoked its token at the end.
  expect(server.requests.some((r) => r.path === '/ath/revoke')).toBe(true);
});
