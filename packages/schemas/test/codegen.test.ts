import { execFileSync, spawnSync } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { repoRoot } from './paths.js';

const codegen = (root: string, ...args: string[]) =>
  spawnSync(process.execPath, [join(root, 'tools', 'codegen', 'index.mjs'), ...args], { cwd: root, encoding: 'utf8' });

describe('codegen', () => {
  it('committed generated code matches schemas/ (codegen:check)', () => {
    const run = codegen(repoRoot, '--check');
    expect(run.stderr).toBe('');
    expect(run.status).toBe(0);
  });

  describe('drift detection', () => {
    // A scratch copy of just what codegen reads and writes, so the real tree is never modified.
    const scratch = mkdtempSync(join(tmpdir(), 'athkit-codegen-'));
    afterAll(() => rmSync(scratch, { recursive: true, force: true }));
    for (const part of ['tools/codegen', 'schemas', 'packages/schemas/src/generated', 'packages/schemas/json']) {
      cpSync(join(repoRoot, part), join(scratch, part), { recursive: true });
    }
    cpSync(join(repoRoot, '.prettierrc.json'), join(scratch, '.prettierrc.json'));
    writeFileSync(join(scratch, 'package.json'), '{"type":"module"}');
    symlinkSync(join(repoRoot, 'node_modules'), join(scratch, 'node_modules'), 'dir');

    it('fails with a readable summary when a schema field changes without codegen', () => {
      const file = join(scratch, 'schemas/ath/0.1/ath.schema.json');
      const schema = JSON.parse(readFileSync(file, 'utf8')) as {
        $defs: { TokenResponse: { properties: Record<string, unknown> } };
      };
      schema.$defs.TokenResponse.properties['refresh_hint'] = { type: 'string', description: 'drift probe' };
      writeFileSync(file, JSON.stringify(schema, null, 2));
      const run = codegen(scratch, '--check');
      expect(run.status).toBe(1);
      expect(run.stderr).toContain('codegen:check failed');
      expect(run.stderr).toContain('stale    packages/schemas/src/generated/types.ts');
      expect(run.stderr).toContain('Run `npm run codegen`');
    });

    it('passes again after codegen runs, and flags files it did not produce', () => {
      execFileSync(process.execPath, [join(scratch, 'tools/codegen/index.mjs')], { cwd: scratch });
      expect(codegen(scratch, '--check').status).toBe(0);
      mkdirSync(join(scratch, 'packages/schemas/src/generated/old'), { recursive: true });
      writeFileSync(join(scratch, 'packages/schemas/src/generated/old/leftover.ts'), '');
      const run = codegen(scratch, '--check');
      expect(run.status).toBe(1);
      expect(run.stderr).toContain('extra    packages/schemas/src/generated/old/leftover.ts');
    });
  });
});
