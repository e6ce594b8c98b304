import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect, it } from 'vitest';
import { runReadmeExample, useNetworkGuard } from '@athkit/testkit';

const readme = join(dirname(fileURLToPath(import.meta.url)), '..', 'README.md');

useNetworkGuard();

it('the README example runs and prints what its comments promise', async () => {
  const { lines } = await runReadmeExample(readme);
  expect(lines[0]?.[0]).toMatchObject({ effective: ['products:read'] });
  expect(lines[1]).toEqual(['alice', ['products:read']]);
  expect(lines[2]).toEqual([401, 'TOKEN_REVOKED']);
});
