import pg from 'pg';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { createPostgresStore, MIGRATIONS, openStore, REVOCATION_CHANNEL, SqlStore } from '../src/index.js';
import { agentRecord, grantRecord, tokenRecord } from './store-contract.js';
import { dropSchema, freshSchemaName, waitFor } from './helpers.js';

/** PostgreSQL-only behaviour (migrations, schemas, pools, LISTEN/NOTIFY); registered by postgres-store.test.ts. */
export function describePostgresSpecific(url: string): void {
  const schemas: string[] = [];
  const closers: (() => Promise<void>)[] = [];
  const schema = (): string => {
    const s = freshSchemaName();
    schemas.push(s);
    return s;
  };
  afterEach(async () => {
    for (const c of closers.splice(0).reverse()) await c();
  });
  afterAll(async () => {
    for (const s of schemas) await dropSchema(url, s);
  });

  async function query<T>(text: string, values: unknown[] = []): Promise<T[]> {
    const c = new pg.Client({ connectionString: url });
    await c.connect();
    try {
      return (await c.query(text, values)).rows as T[];
    } finally {
      await c.end();
    }
  }

  describe('PostgreSQL migrations', () => {
    it('creates the schema, records the versions, and reopening is a no-op', async () => {
      const s = schema();
      const first = await createPostgresStore({ connectionString: url, schema: s });
      await first.createAgent(agentRecord());
      await first.close();
      const rows = await query<{ version: number; name: string; applied_at: string }>(
        `select version, name, applied_at from "${s}".schema_migrations order by version`,
      );
      expect(rows.map((r) => ({ version: r.version, name: r.name }))).toEqual(
        MIGRATIONS.map((m) => ({ version: m.version, name: m.name })),
      );
      const tables = await query<{ table_name: string }>(
        `select table_name from information_schema.tables where table_schema = $1 order by table_name`,
        [s],
      );
      expect(tables.map((t) => t.table_name)).toEqual([
        'agents',
        'audit',
        'grants',
        'handshakes',
        'jti',
        'rate_limits',
        'schema_migrations',
        'sessions',
        'tokens',
      ]);
      const second = await createPostgresStore({ connectionString: url, schema: s });
      await second.close();
      const again = await query<{ applied_at: string }>(
        `select applied_at from "${s}".schema_migrations order by version`,
      );
      expect(again).toEqual(rows.map((r) => ({ applied_at: r.applied_at })));
    });

    it('instances starting at once on a fresh schema migrate it exactly once', async () => {
      const s = schema();
      const stores = await Promise.all(
        Array.from({ length: 4 }, () => createPostgresStore({ connectionString: url, schema: s })),
      );
      for (const st of stores) closers.push(() => st.close());
      const rows = await query(`select version from "${s}".schema_migrations`);
      expect(rows).toHaveLength(MIGRATIONS.length);
    });

    it('keeps every table in its schema (nothing in public)', async () => {
      const before = await query<{ n: string }>(
        `select count(*) as n from information_schema.tables where table_schema = 'public' and table_name in ('agents','tokens','sessions','schema_migrations')`,
      );
      const st = await createPostgresStore({ connectionString: url, schema: schema() });
      closers.push(() => st.close());
      const after = await query<{ n: string }>(
        `select count(*) as n from information_schema.tables where table_schema = 'public' and table_name in ('agents','tokens','sessions','schema_migrations')`,
      );
      expect(after).toEqual(before);
    });

    it('refuses an invalid schema name', async () => {
      await expect(
        createPostgresStore({ connectionString: url, schema: 'bad"; drop table x; --' }),
      ).rejects.toThrow('invalid PostgreSQL schema name');
    });
  });

  describe('PostgreSQL store', () => {
    it('works on a pool supplied by the caller without changing its type parsers, and leaves it open', async () => {
      const pool = new pg.Pool({ connectionString: url, max: 3 });
      const s = schema();
      const store = await createPostgresStore({ pool, schema: s });
      const a = agentRecord();
      await store.createAgent(a);
      const got = await store.getAgent(a.clientId);
      expect(got).toEqual(a);
      expect(typeof got!.createdAt).toBe('number');
      const g = grantRecord({ leaseUntil: 1_768_471_800_123 });
      await store.putGrant(g);
      expect(await store.getGrant(g.id)).toEqual(g);
      const stop = await store.watchRevocations(() => undefined);
      await stop();
      await store.close();
      // The caller's pool still works and still returns bigint as strings (pg's default).
      const r = await pool.query(`select created_at from "${s}".agents where client_id = $1`, [a.clientId]);
      expect(r.rows[0].created_at).toBe(String(a.createdAt));
      await pool.end();
    });

    it('openStore(postgres://…?schema=) opens a PostgreSQL store in that schema', async () => {
      const s = schema();
      const u = new URL(url);
      u.searchParams.set('schema', s);
      const store = await openStore(u.toString());
      closers.push(() => store.close());
      expect(store).toBeInstanceOf(SqlStore);
      expect((store as SqlStore).dialect).toBe('postgres');
      const a = agentRecord();
      await store.createAgent(a);
      const rows = await query(`select client_id from "${s}".agents`);
      expect(rows).toEqual([{ client_id: a.clientId }]);
      const alsoPg = await openStore(
        url.replace(/^postgres:/, 'postgresql:') + (url.includes('?') ? '&' : '?') + `schema=${s}`,
      );
      closers.push(() => alsoPg.close());
      expect(await alsoPg.getAgent(a.clientId)).toEqual(a);
    });

    it('revocations reach another instance within a second, and not other schemas', async () => {
      const s = schema();
      const writer = await createPostgresStore({ connectionString: url, schema: s });
      const reader = await createPostgresStore({ connectionString: url, schema: s });
      const stranger = await createPostgresStore({ connectionString: url, schema: schema() });
      closers.push(
        () => writer.close(),
        () => reader.close(),
        () => stranger.close(),
      );
      const seen: unknown[] = [];
      const strangerSeen: unknown[] = [];
      await reader.watchRevocations((e) => seen.push(e));
      await stranger.watchRevocations((e) => strangerSeen.push(e));
      const t = tokenRecord(agentRecord());
      await writer.createToken(t);
      const started = Date.now();
      expect(await writer.revokeToken(t.tokenHash, 42)).toBe(true);
      expect(await waitFor(() => seen.length === 1, 1000)).toBe(true);
      expect(Date.now() - started).toBeLessThan(1000);
      expect(seen).toEqual([{ kind: 'token', tokenHash: t.tokenHash }]);
      expect(strangerSeen).toEqual([]);
    });

    it('a rolled-back revocation sends no notification (NOTIFY is in the same transaction)', async () => {
      const s = schema();
      const reader = await createPostgresStore({ connectionString: url, schema: s });
      closers.push(() => reader.close());
      const seen: unknown[] = [];
      await reader.watchRevocations((e) => seen.push(e));
      const c = new pg.Client({ connectionString: url });
      await c.connect();
      try {
        await c.query('begin');
        await c.query(`select pg_notify($1, $2)`, [
          REVOCATION_CHANNEL,
          JSON.stringify({ s, o: 'x', e: { kind: 'token', tokenHash: 'rolled-back' } }),
        ]);
        await c.query('rollback');
        await c.query(`select pg_notify($1, $2)`, [
          REVOCATION_CHANNEL,
          JSON.stringify({ s, o: 'x', e: { kind: 'agent', clientId: 'committed' } }),
        ]);
      } finally {
        await c.end();
      }
      expect(await waitFor(() => seen.length >= 1)).toBe(true);
      expect(seen).toEqual([{ kind: 'agent', clientId: 'committed' }]);
    });

    it('close() releases the pool and the listening connection', async () => {
      const s = schema();
      const store = await createPostgresStore({
        connectionString: url,
        schema: s,
        poolConfig: { application_name: `athkit_close_${s}` },
      });
      await store.watchRevocations(() => undefined);
      await store.getAgent('x');
      const count = async (): Promise<number> =>
        Number(
          (
            await query<{ n: string }>(
              `select count(*) as n from pg_stat_activity where application_name = $1`,
              [`athkit_close_${s}`],
            )
          )[0]!.n,
        );
      expect(await count()).toBeGreaterThanOrEqual(2);
      await store.close();
      let n = await count();
      for (let i = 0; i < 100 && n > 0; i++) {
        await new Promise((r) => setTimeout(r, 20));
        n = await count();
      }
      expect(n).toBe(0);
      await expect(store.getAgent('x')).rejects.toThrow('storage failure');
    });
  });
}
