import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { readmeExample, runReadmeExample } from '../src/index.js';

const dir = mkdtempSync(join(tmpdir(), 'athkit-testkit-readme-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const README = [
  '# Example',
  '```sh',
  'npm install thing',
  '```',
  '```js',
  "import { basename } from 'node:path';",
  "console.log('first', basename('/a/b.txt'));",
  "console.log('env', process.env.TESTKIT_README_URL);",
  '```',
  '```js',
  "console.log('second');",
  '```',
  '',
].join('\n');

describe('README runner', () => {
  const readme = join(dir, 'README.md');
  writeFileSync(readme, README);

  it('extracts a fenced block by language and position', () => {
    expect(readmeExample(readme)).toContain("console.log('first'");
    expect(readmeExample(readme, { index: 1 })).toBe("console.log('second');\n");
    expect(readmeExample(readme, { lang: 'sh' })).toBe('npm install thing\n');
    expect(() => readmeExample(readme, { lang: 'ts' })).toThrow(/no ```ts block #0/);
    expect(() => readmeExample(readme, { index: 2 })).toThrow(/no ```js block #2/);
  });

  it('runs the example with console.log captured, env set, and cleans up after itself', async () => {
    const seen: unknown[][] = [];
    delete process.env['TESTKIT_README_URL'];
    const { code, lines } = await runReadmeExample(readme, {
      env: { TESTKIT_README_URL: 'http://127.0.0.1:1' },
      onLog: (args) => seen.push(args),
    });
    expect(code).toContain('basename');
    expect(lines).toEqual([
      ['first', 'b.txt'],
      ['env', 'http://127.0.0.1:1'],
    ]);
    expect(seen).toEqual(lines);
    expect(process.env['TESTKIT_README_URL']).toBeUndefined();
    expect(readdirSync(dir)).toEqual(['README.md']);
  });

  it('runs the same README twice (a fresh module each time) and removes the scratch file on failure', async () => {
    expect((await runReadmeExample(readme, { index: 1 })).lines).toEqual([['second']]);
    expect((await runReadmeExample(readme, { index: 1 })).lines).toEqual([['second']]);
    const failing = join(dir, 'FAILING.md');
    writeFileSync(failing, "```js\nthrow new Error('boom');\n```\n");
    const scratch = join(dir, 'scratch.mjs');
    await expect(runReadmeExample(failing, { scratch })).rejects.toThrow('boom');
    expect(existsSync(scratch)).toBe(false);
  });
});
