import { spawn, execFileSync } from 'node:child_process';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createSqliteStore } from '../src/index.js';
import { tempDir } from './helpers.js';

const here = fileURLToPath(new URL('.', import.meta.url));
const repoRoot = resolve(here, '../../..');
const child = join(here, 'fixtures', 'crash-child.mjs');

/** Runs the child until it acknowledges, then SIGKILLs it at once. Resolves with the ack line. */
function runAndKill(filename: string, round: number): Promise<string> {
  return new Promise((resolvePromise, reject) => {
    const proc = spawn(process.execPath, [child, filename, String(round)], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, NODE_OPTIONS: '' },
    });
    let out = '';
    let err = '';
    let ack: string | undefined;
    proc.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      out += chunk;
      const line = out.split('\n').find((l) => l.startsWith('ack '));
      if (line && ack === undefined) {
        ack = line;
        proc.kill('SIGKILL');
      }
    });
    proc.stderr.setEncoding('utf8').on('data', (chunk: string) => (err += chunk));
    proc.on('error', reject);
    proc.on('exit', (code, signal) => {
      if (ack !== undefined && signal === 'SIGKILL') resolvePromise(ack);
      else reject(new Error(`child exited (code ${code}, signal ${signal}) without acknowledging: ${err}`));
    });
  });
}

describe('SQLite crash durability', () => {
  const tmp = tempDir();
  beforeAll(() => {
    // The child runs outside vitest, so it needs the compiled package (this also builds core and schemas).
    execFileSync(
      process.execPath,
      [join(repoRoot, 'node_modules/typescript/bin/tsc'), '-b', 'packages/storage/tsconfig.lib.json'],
      {
        cwd: repoRoot,
        stdio: 'pipe',
      },
    );
  });
  afterAll(() => tmp.remove());

  it('an acknowledged registration and revocation survive SIGKILL of the writer', async () => {
    const filename = join(tmp.dir, 'crash.db');
    for (let round = 0; round < 4; round++) {
      expect(await runAndKill(filename, round)).toBe(`ack ${round} true true`);
      const store = await createSqliteStore({ filename });
      try {
        for (let r = 0; r <= round; r++) {
          const agent = await store.getAgent(`ath_crash_${r}`);
          expect(agent?.agentId).toBe(`https://agents.example.com/crash/${r}`);
          expect((await store.getToken(`token-hash-${r}`))?.revokedAt).toBe(1_768_471_800_000 + 1000);
        }
      } finally {
        await store.close();
      }
    }
  });
});
