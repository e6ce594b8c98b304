import { join } from 'node:path';
import SqliteDatabase from 'better-sqlite3';
import { sql } from 'kysely';
import { afterEach, describe, expect, it } from 'vitest';
import { createSqliteStore, type SqlStore } from '../src/index.js';
import { CompiledQueries } from '../src/compiled-queries.js';
import { tempDir } from './helpers.js';
import { agentRecord, tokenRecord } from './store-contract.js';

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function open(): Promise<{ store: SqlStore; filename: string; reader: SqliteDatabase.Database }> {
  const t = tempDir();
  cleanups.push(t.remove);
  const filename = join(t.dir, 'ath.db');
  const store = await createSqliteStore({ filename });
  cleanups.push(() => store.close());
  // A second handle, as another process would see the file: committed rows only.
  const reader = new SqliteDatabase(filename, { readonly: true });
  cleanups.push(() => {
    reader.close();
  });
  return { store, filename, reader };
}

/** Lets every pending microtask run, but no timer or immediate (so an open group stays open). */
async function microtasks(): Promise<void> {
  for (let i = 0; i < 100; i++) await Promise.resolve();
}

const jtiRows = (reader: SqliteDatabase.Database, jti: string): number =>
  (reader.prepare('select count(*) as n from jti where jti = ?').get(jti) as { n: number }).n;

describe('SQLite group commit', () => {
  it('acknowledges a write only once it is committed (visible to another handle)', async () => {
    const { store, reader } = await open();
    let acknowledged = false;
    const write = store
      .markJtiUsed('https://a.example/.well-known/agent.json', 'jti-1', Date.now() + 60_000)
      .then((v) => {
        acknowledged = true;
        return v;
      });
    await microtasks();
    // The statement has run inside the open group, but nothing is committed nor acknowledged yet.
    expect(acknowledged).toBe(false);
    expect(jtiRows(reader, 'jti-1')).toBe(0);
    expect(await write).toBe(true);
    expect(jtiRows(reader, 'jti-1')).toBe(1);
  });

  it('statements of one turn share one commit, and each gets its own result', async () => {
    const { store, reader } = await open();
    const agent = 'https://a.example/.well-known/agent.json';
    const before = reader.pragma('data_version', { simple: true });
    const results = await Promise.all([
      store.markJtiUsed(agent, 'same', Date.now() + 60_000),
      store.markJtiUsed(agent, 'same', Date.now() + 60_000),
      store.markJtiUsed(agent, 'other', Date.now() + 60_000),
    ]);
    expect(results).toEqual([true, false, true]);
    expect(jtiRows(reader, 'same') + jtiRows(reader, 'other')).toBe(2);
    // data_version moves once per commit made by another connection.
    expect(Number(reader.pragma('data_version', { simple: true })) - Number(before)).toBe(1);
  });

  it("a statement's own error fails only that statement; the rest of the group commits", async () => {
    const { store, reader } = await open();
    const token = tokenRecord(agentRecord());
    await store.createToken(token);
    const [dup, jti] = await Promise.allSettled([
      store.createToken(token),
      store.markJtiUsed('https://a.example/.well-known/agent.json', 'after-dup', Date.now() + 60_000),
    ]);
    expect(dup.status).toBe('rejected');
    expect(String((dup as PromiseRejectedResult).reason)).not.toMatch(/UNIQUE|constraint|tokens/i);
    expect(jti).toEqual({ status: 'fulfilled', value: true });
    expect(jtiRows(reader, 'after-dup')).toBe(1);
  });

  it('a read issued while a group is open sees the group and settles after its commit', async () => {
    const { store, reader } = await open();
    const a = agentRecord();
    const created = store.createAgent(a);
    await microtasks();
    let readDone = false;
    const read = store.getAgent(a.clientId).then((r) => {
      readDone = true;
      return r;
    });
    await microtasks();
    expect(readDone).toBe(false);
    expect(await created).toEqual({ created: true });
    expect(await read).toEqual(a);
    expect((reader.prepare('select count(*) as n from agents').get() as { n: number }).n).toBe(1);
  });

  it('an explicit transaction waits for the open group and then runs alone', async () => {
    const { store, reader } = await open();
    const pending = store.markJtiUsed(
      'https://a.example/.well-known/agent.json',
      'before-trx',
      Date.now() + 60_000,
    );
    await microtasks();
    const seen = await store.kysely.transaction().execute(async (trx) => {
      // The group committed before the transaction began.
      const n = await sql<{ n: number }>`select count(*) as n from jti where jti = 'before-trx'`.execute(trx);
      await sql`insert into jti (agent_id, jti, expires_at) values ('x', 'in-trx', 1)`.execute(trx);
      return n.rows[0]!.n;
    });
    expect(seen).toBe(1);
    expect(await pending).toBe(true);
    expect(jtiRows(reader, 'in-trx')).toBe(1);
  });

  it('explicit transactions started together run one after the other, both committed', async () => {
    const { store, reader } = await open();
    const tx = (name: string) =>
      store.kysely.transaction().execute(async (trx) => {
        await sql`insert into jti (agent_id, jti, expires_at) values ('x', ${name}, 1)`.execute(trx);
        await Promise.resolve();
        await sql`insert into jti (agent_id, jti, expires_at) values ('x', ${name + '-2'}, 1)`.execute(trx);
      });
    const results = await Promise.allSettled([tx('t1'), tx('t2'), store.markJtiUsed('x', 'plain', 1), tx('t3')]);
    expect(results.map((r) => r.status)).toEqual(['fulfilled', 'fulfilled', 'fulfilled', 'fulfilled']);
    for (const j of ['t1', 't1-2', 't2', 't2-2', 't3', 't3-2', 'plain']) expect(jtiRows(reader, j)).toBe(1);
  });

  it('refuses transaction-control SQL outside transaction(), which would end the open group behind its back', async () => {
    const { store, reader } = await open();
    const write = store.markJtiUsed('x', 'kept', 1);
    await microtasks();
    await expect(sql`commit`.execute(store.kysely)).rejects.toThrow(/transaction\(\)/);
    expect(await write).toBe(true);
    expect(jtiRows(reader, 'kept')).toBe(1);
  });

  it('two stores of one process on one file never wait on each other for the write lock', async () => {
    const { store, filename, reader } = await open();
    const second = await createSqliteStore({ filename, busyTimeoutMs: 60_000 });
    cleanups.push(() => second.close());
    const agent = 'https://a.example/.well-known/agent.json';
    const started = Date.now();
    const results = await Promise.all(
      Array.from({ length: 40 }, (_, i) =>
        (i % 2 ? second : store).markJtiUsed(agent, `j${i % 10}`, Date.now() + 60_000),
      ),
    );
    expect(results.filter(Boolean)).toHaveLength(10);
    expect(jtiRows(reader, 'j0')).toBe(1);
    // A deadlock would hold until the 60 s busy timeout.
    expect(Date.now() - started).toBeLessThan(30_000);
  });
});

describe('compiled queries', () => {
  it('refuses a shape whose value kysely writes into the SQL text', async () => {
    const { store } = await open();
    const compiled = new CompiledQueries(store.kysely);
    await expect(
      compiled.execute('bad', ['x'] as const, (db, [v]) =>
        db.selectFrom('jti').selectAll().where(sql.lit(v), '=', 'x'),
      ),
    ).rejects.toThrow(/bound parameter/);
  });

  it('re-runs one compiled shape with new values', async () => {
    const { store } = await open();
    const compiled = new CompiledQueries(store.kysely);
    const get = (jti: string) =>
      compiled.execute('get', [jti] as const, (db, [v]) =>
        db.selectFrom('jti').select('jti').where('jti', '=', v),
      );
    await store.markJtiUsed('a', 'one', 1);
    await store.markJtiUsed('a', 'two', 1);
    expect((await get('one')).rows).toEqual([{ jti: 'one' }]);
    expect((await get('two')).rows).toEqual([{ jti: 'two' }]);
    expect((await get('three')).rows).toEqual([]);
  });
});
