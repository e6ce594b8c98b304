import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, expect, it, vi } from 'vitest';

const here = dirname(fileURLToPath(import.meta.url));
const scratch = join(here, '.readme-example.mjs');
afterAll(() => rmSync(scratch, { force: true }));

it('the README example runs and prints what its comments promise', async () => {
  const readme = readFileSync(join(here, '..', 'README.md'), 'utf8');
  const code = /```js\n([\s\S]*?)```/.exec(readme)?.[1];
  expect(code).toBeTruthy();
  writeFileSync(scratch, code!);
  const lines: unknown[][] = [];
  const spy = vi.spyOn(console, 'log').mockImplementation((...args: unknown[]) => void lines.push(args));
  try {
    await import(/* @vite-ignore */ scratch);
  } finally {
    spy.mockRestore();
  }
  expect(lines).toEqual([
    ['approved'],
    [['products:read']],
    [{ products: ['tea', 'coffee'], for: 'alice' }],
    ['SCOPE_NOT_APPROVED'],
    ['TOKEN_REVOKED'],
  ]);
});
