import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const workspaces = ['packages', 'apps'].flatMap((group) =>
  readdirSync(join(root, group)).map((name) => join(root, group, name)),
);
const readJson = (path: string): Record<string, unknown> =>
  JSON.parse(readFileSync(path, 'utf8')) as Record<string, unknown>;

function sourceFiles(dir: string): string[] {
  let entries;
  try {
    entries = readdirSync(dir, { withFileTypes: true });
  } catch {
    return [];
  }
  return entries.flatMap((e) =>
    e.isDirectory()
      ? sourceFiles(join(dir, e.name))
      : /\.[cm]?[jt]s$/.test(e.name)
        ? [join(dir, e.name)]
        : [],
  );
}

describe('@athkit/testkit stays test-only', () => {
  it('is private, so it is never published', () => {
    expect(readJson(join(root, 'packages', 'testkit', 'package.json'))['private']).toBe(true);
  });

  it('is imported by no src/ file and listed by no package as a runtime dependency', () => {
    const offenders = workspaces
      .filter((dir) => !dir.endsWith(join('packages', 'testkit')))
      .flatMap((dir) => sourceFiles(join(dir, 'src')))
      .filter((file) => readFileSync(file, 'utf8').includes('@athkit/testkit'));
    expect(offenders).toEqual([]);
    for (const dir of workspaces) {
      let pkg;
      try {
        pkg = readJson(join(dir, 'package.json'));
      } catch {
        continue;
      }
      for (const field of ['dependencies', 'peerDependencies', 'optionalDependencies']) {
        expect(
          Object.keys((pkg[field] as Record<string, string> | undefined) ?? {}),
          `${dir} ${field}`,
        ).not.toContain('@athkit/testkit');
      }
    }
  });
});
