import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { describe, it } from 'vitest';

export const SKIP_LINE = 'skipped: set ATH_TEST_PG_URL to run the PostgreSQL store suites';

/**
 * The PostgreSQL URL for this test file, or undefined (after printing the one skip line).
 * Under CI=true a missing variable is a failure: a failing test is registered instead.
 */
export function pgTestUrl(): string | undefined {
  const url = process.env.ATH_TEST_PG_URL;
  if (url) return url;
  if (process.env.CI === 'true') {
    describe('PostgreSQL store', () => {
      it('has a database (ATH_TEST_PG_URL is required when CI=true)', () => {
        throw new Error('ATH_TEST_PG_URL is not set, and CI=true forbids skipping the PostgreSQL suites');
      });
    });
  } else {
    console.log(SKIP_LINE);
    describe.skip('PostgreSQL store', () => {
      it('needs ATH_TEST_PG_URL', () => undefined);
    });
  }
  return undefined;
}

export function freshSchemaName(): string {
  return `athkit_test_${randomBytes(6).toString('hex')}`;
}

export async function dropSchema(url: string, schema: string): Promise<void> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    await client.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
  } finally {
    await client.end();
  }
}

/** A fresh directory under os.tmpdir(); `remove()` deletes it. */
export function tempDir(prefix = 'athkit-storage-'): { dir: string; remove: () => void } {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  return { dir, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

export const sha256 = (value: string): string => createHash('sha256').update(value).digest('base64url');

/** Polls `check` every 10 ms until it returns true or `timeoutMs` passes. */
export async function waitFor(check: () => boolean, timeoutMs = 2000): Promise<boolean> {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    if (check()) return true;
    await new Promise((r) => setTimeout(r, 10));
  }
  return check();
}
