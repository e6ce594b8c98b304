import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, expect, it } from 'vitest';
import {
  readmeExample,
  runReadmeExample,
  startTestServer,
  type TestServer,
  useNetworkGuard,
} from '@athkit/testkit';

const readme = join(dirname(fileURLToPath(import.meta.url)), '..', 'README.md');
let server: TestServer;

useNetworkGuard();
beforeAll(async () => {
  server = await startTestServer();
});
afterAll(async () => {
  await server.close();
});

it('the README agent is under 40 lines and runs the whole flow', async () => {
  expect(readmeExample(readme).trim().split('\n').length).toBeLessThan(40);
  const consents: Promise<unknown>[] = [];
  const { lines } = await runReadmeExample(readme, {
    env: { SHOP_URL: server.url },
    // The user: opens the printed URL and consents to products:read only.
    onLog: (args) => {
      if (args[0] === 'Open this URL to approve:')
        consents.push(server.consent(String(args[1]), { scopes: ['products:read'] }));
    },
  });
  await Promise.all(consents);
  expect(lines[0]).toEqual(['registration:', 'approved']);
  expect(lines[1]?.[0]).toBe('Open this URL to approve:');
  expect(lines[2]).toEqual(['granted:', ['products:read']]);
  expect(lines[3]).toEqual(['first product:', 'Tea']);
  expect(lines).toHaveLength(4);
  // It revoked its token at the end.
  expect(server.requests.some((r) => r.path === '/ath/revoke')).toBe(true);
});
