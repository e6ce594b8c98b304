import { join, relative } from 'node:path';
import { existsSync } from 'node:fs';
import SqliteDatabase from 'better-sqlite3';
import { afterEach, describe, expect, it } from 'vitest';
import { MemoryStore } from '@athkit/core';
import { createMemoryStore, createSqliteStore, MIGRATIONS, openStore, SqlStore } from '../src/index.js';
import { tempDir } from './helpers.js';
import { agentRecord, tokenRecord } from './store-contract.js';

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});
function tmp(): string {
  const t = tempDir();
  cleanups.push(t.remove);
  return t.dir;
}

function versions(filename: string): { version: number; name: string }[] {
  const raw = new SqliteDatabase(filename, { readonly: true });
  try {
    return raw.prepare('select version, name from schema_migrations order by version').all() as {
      version: number;
      name: string;
    }[];
  } finally {
    raw.close();
  }
}

describe('SQLite migrations', () => {
  it('records the applied versions, and reopening a migrated file is a no-op', async () => {
    const filename = join(tmp(), 'ath.db');
    const first = await createSqliteStore({ filename });
    const a = agentRecord();
    await first.createAgent(a);
    await first.close();
    const expected = MIGRATIONS.map((m) => ({ version: m.version, name: m.name }));
    expect(versions(filename)).toEqual(expected);
    const raw = new SqliteDatabase(filename);
    const changesBefore = raw.prepare('select count(*) as n from sqlite_master').get();
    raw.close();
    const second = await createSqliteStore({ filename });
    expect(await second.getAgent(a.clientId)).toEqual(a);
    await second.close();
    expect(versions(filename)).toEqual(expected);
    const raw2 = new SqliteDatabase(filename);
    expect(raw2.prepare('select count(*) as n from sqlite_master').get()).toEqual(changesBefore);
    expect(raw2.pragma('journal_mode', { simple: true })).toBe('wal');
    raw2.close();
  });

  it('several stores opening one fresh file at once migrate it exactly once', async () => {
    const filename = join(tmp(), 'nested', 'dir', 'ath.db');
    const stores = await Promise.all(Array.from({ length: 4 }, () => createSqliteStore({ filename })));
    for (const s of stores) cleanups.push(() => s.close());
    expect(versions(filename)).toEqual(MIGRATIONS.map((m) => ({ version: m.version, name: m.name })));
    const a = agentRecord();
    await stores[0]!.createAgent(a);
    expect(await stores[3]!.getAgent(a.clientId)).toEqual(a);
  });
});

describe('SQLite store behaviour', () => {
  it('wraps driver errors in a plain "storage failure" that keeps the cause', async () => {
    const store = await createSqliteStore({ filename: join(tmp(), 'ath.db') });
    await store.close();
    const err = await store.getAgent('ath_x').then(
      () => null,
      (e: unknown) => e as Error,
    );
    expect(err).toBeInstanceOf(Error);
    expect(err!.message).toBe('storage failure');
    expect(err!.cause).toBeDefined();
    await store.close(); // idempotent
  });

  it('tells only listeners of the same instance about revocations (documented limitation)', async () => {
    const filename = join(tmp(), 'ath.db');
    const a = await createSqliteStore({ filename });
    const b = await createSqliteStore({ filename });
    cleanups.push(
      () => a.close(),
      () => b.close(),
    );
    const t = tokenRecord(agentRecord());
    await a.createToken(t);
    const seenA: unknown[] = [];
    const seenB: unknown[] = [];
    await a.watchRevocations((e) => seenA.push(e));
    await b.watchRevocations((e) => seenB.push(e));
    expect(await a.revokeToken(t.tokenHash, 1)).toBe(true);
    expect(seenA).toEqual([{ kind: 'token', tokenHash: t.tokenHash }]);
    expect(seenB).toEqual([]);
    expect((await b.getToken(t.tokenHash))!.revokedAt).toBe(1);
  });

  it('a throwing listener does not fail the revocation', async () => {
    const store = await createSqliteStore({ filename: ':memory:' });
    cleanups.push(() => store.close());
    const t = tokenRecord(agentRecord());
    await store.createToken(t);
    const seen: unknown[] = [];
    await store.watchRevocations(() => {
      throw new Error('listener bug');
    });
    await store.watchRevocations((e) => seen.push(e));
    expect(await store.revokeToken(t.tokenHash, 5)).toBe(true);
    expect(seen).toHaveLength(1);
  });
});

describe('openStore', () => {
  it('memory: gives a MemoryStore; createMemoryStore too', async () => {
    const s = await openStore('memory:');
    expect(s).toBeInstanceOf(MemoryStore);
    expect(createMemoryStore()).toBeInstanceOf(MemoryStore);
    await s.close();
  });

  it('sqlite::memory:, relative and absolute paths', async () => {
    const inMemory = await openStore('sqlite::memory:');
    expect(inMemory).toBeInstanceOf(SqlStore);
    expect((inMemory as SqlStore).dialect).toBe('sqlite');
    await inMemory.createAgent(agentRecord());
    await inMemory.close();

    const dir = tmp();
    const absolute = join(dir, 'abs', 'ath.db');
    const s1 = await openStore(`sqlite:${absolute}`);
    const a = agentRecord();
    await s1.createAgent(a);
    await s1.close();
    const s2 = await openStore(`sqlite://${absolute}`); // sqlite:///abs/path
    expect(await s2.getAgent(a.clientId)).toEqual(a);
    await s2.close();
    const rel = relative(process.cwd(), absolute);
    expect(rel.startsWith('/')).toBe(false);
    const s3 = await openStore(`sqlite:${rel}`);
    expect(await s3.getAgent(a.clientId)).toEqual(a);
    await s3.close();
    expect(existsSync(absolute)).toBe(true);
  });

  it('rejects unknown schemes without echoing the URL', async () => {
    const err = await openStore('mysql://root:hunter2@db/ath').then(
      () => null,
      (e: unknown) => e as Error,
    );
    expect(err?.message).toMatch(/unsupported store URL/);
    expect(err?.message).not.toContain('hunter2');
    await expect(openStore('sqlite:')).rejects.toThrow(/without a path/);
  });
});
