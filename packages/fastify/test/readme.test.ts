import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect, it } from 'vitest';
import { runReadmeExample } from '@athkit/testkit';

const readme = join(dirname(fileURLToPath(import.meta.url)), '..', 'README.md');

it('the README example runs and prints what its comments promise', async () => {
  const { lines } = await runReadmeExample(readme);
  expect(lines).toEqual([
    ['approved'],
    [['products:read']],
    [{ products: ['tea', 'coffee'], for: 'alice' }],
    ['SCOPE_NOT_APPROVED'],
    ['TOKEN_REVOKED'],
  ]);
});
