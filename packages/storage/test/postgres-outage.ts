import pg from 'pg';
import { StoreUnavailableError, type RevocationEvent } from '@athkit/core';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { createPostgresStore, DEFAULT_STATEMENT_TIMEOUT_MS } from '../src/index.js';
import { agentRecord, tokenRecord } from './store-contract.js';
import { dropSchema, freshSchemaName, waitFor } from './helpers.js';

/**
 * Threats I3 on PostgreSQL (registered by postgres-store.test.ts): lost connections are reported
 * and healed without reopening the store. Only this file's own backends are terminated (found by
 * a unique application_name), so other suites on the same server are not disturbed.
 */
export function describePostgresOutage(url: string): void {
  const schemas: string[] = [];
  const closers: (() => Promise<void>)[] = [];
  afterEach(async () => {
    for (const c of closers.splice(0).reverse()) await c();
  });
  afterAll(async () => {
    for (const s of schemas) await dropSchema(url, s);
  });

  async function terminate(applicationName: string, onlyListen: boolean): Promise<number> {
    const c = new pg.Client({ connectionString: url });
    await c.connect();
    try {
      const r = await c.query(
        `select pg_terminate_backend(pid) from pg_stat_activity
          where application_name = $1 and pid <> pg_backend_pid() ${onlyListen ? `and query ilike 'listen %'` : ''}`,
        [applicationName],
      );
      return r.rowCount ?? 0;
    } finally {
      await c.end();
    }
  }

  async function open(): Promise<{
    schema: string;
    app: string;
    reader: Awaited<ReturnType<typeof createPostgresStore>>;
    writer: Awaited<ReturnType<typeof createPostgresStore>>;
  }> {
    const schema = freshSchemaName();
    schemas.push(schema);
    const app = `athkit_outage_${schema}`;
    const reader = await createPostgresStore({
      connectionString: url,
      schema,
      poolConfig: { application_name: app },
    });
    const writer = await createPostgresStore({ connectionString: url, schema });
    closers.push(
      () => writer.close(),
      () => reader.close(),
    );
    return { schema, app, reader, writer };
  }

  describe('PostgreSQL outage (threats I3)', () => {
    it('the revocation feed reports its lost connection, listens again on its own, then delivers again', async () => {
      const { app, reader, writer } = await open();
      const events: RevocationEvent[] = [];
      await reader.watchRevocations((e) => events.push(e));
      expect(await terminate(app, true)).toBe(1);
      expect(await waitFor(() => events.some((e) => e.kind === 'feed' && !e.live), 2000)).toBe(true);
      expect(await waitFor(() => events.some((e) => e.kind === 'feed' && e.live), 10_000)).toBe(true);
      expect(events).toEqual([
        { kind: 'feed', live: false },
        { kind: 'feed', live: true },
      ]);
      const t = tokenRecord(agentRecord());
      await writer.createToken(t);
      expect(await writer.revokeToken(t.tokenHash, 42)).toBe(true);
      expect(await waitFor(() => events.length === 3, 2000)).toBe(true);
      expect(events[2]).toEqual({ kind: 'token', tokenHash: t.tokenHash });
    });

    it('a listener added while the feed is down is told so at once', async () => {
      const { app, reader } = await open();
      const first: RevocationEvent[] = [];
      await reader.watchRevocations((e) => first.push(e));
      expect(await terminate(app, true)).toBe(1);
      expect(await waitFor(() => first.some((e) => e.kind === 'feed' && !e.live), 2000)).toBe(true);
      if (first.some((e) => e.kind === 'feed' && e.live)) return; // already healed: nothing left to observe
      const late: RevocationEvent[] = [];
      await reader.watchRevocations((e) => late.push(e));
      expect(late[0]).toEqual({ kind: 'feed', live: false });
      expect(await waitFor(() => late.some((e) => e.kind === 'feed' && e.live), 10_000)).toBe(true);
    });

    it.each([
      ['a statement_timeout of 300 ms', 300],
      [`the default (${DEFAULT_STATEMENT_TIMEOUT_MS} ms)`, undefined],
    ])('a statement the server cannot finish fails as StoreUnavailableError after %s, and the store works again after', async (_, statementTimeout) => {
      // Another session holds the agents table, so the store's read waits on the server.
      const schema = freshSchemaName();
      schemas.push(schema);
      const bound = statementTimeout ?? DEFAULT_STATEMENT_TIMEOUT_MS;
      const store = await createPostgresStore({ connectionString: url, schema, ...(statementTimeout ? { poolConfig: { statement_timeout: statementTimeout } } : {}) });
      closers.push(() => store.close());
      const a = agentRecord();
      await store.createAgent(a);
      const locker = new pg.Client({ connectionString: url });
      await locker.connect();
      closers.push(() => locker.end());
      await locker.query('begin');
      await locker.query(`lock table "${schema}".agents in access exclusive mode`);
      const started = Date.now();
      const failure = await store.getAgent(a.clientId).then(
        () => null,
        (e: unknown) => e,
      );
      const waited = Date.now() - started;
      await locker.query('rollback');
      expect(failure).toBeInstanceOf(StoreUnavailableError);
      expect(waited).toBeGreaterThanOrEqual(bound - 50);
      expect(waited).toBeLessThan(bound + 5000);
      expect((await store.getAgent(a.clientId))?.clientId).toBe(a.clientId);
    }, 30_000);

    it('a revocation cancelled by statement_timeout rolls back: nothing of it is committed later, and the connection is clean for the next write', async () => {
      const schema = freshSchemaName();
      schemas.push(schema);
      const store = await createPostgresStore({ connectionString: url, schema, poolConfig: { statement_timeout: 300, max: 1 } });
      closers.push(() => store.close());
      const observer = new pg.Client({ connectionString: url });
      await observer.connect();
      closers.push(() => observer.end());
      const a = agentRecord();
      await store.createAgent(a);
      const t1 = tokenRecord(a);
      await store.createToken(t1);
      const locker = new pg.Client({ connectionString: url });
      await locker.connect();
      closers.push(() => locker.end());
      await locker.query('begin');
      await locker.query(`select 1 from "${schema}".tokens where token_hash = $1 for update`, [t1.tokenHash]);
      await expect(store.revokeToken(t1.tokenHash, 123)).rejects.toBeInstanceOf(StoreUnavailableError);
      await locker.query('rollback');

      // One pooled connection (max: 1): the next write runs on the very connection that timed out.
      const t2 = tokenRecord(a);
      await store.createToken(t2);
      const rows = await observer.query<{ token_hash: string; revoked_at: string | null }>(`select token_hash, revoked_at from "${schema}".tokens order by token_hash`);
      const seen = Object.fromEntries(rows.rows.map((r) => [r.token_hash, r.revoked_at]));
      expect(seen).toEqual({ [t1.tokenHash]: null, [t2.tokenHash]: null }); // t2 committed, t1 not revoked
      const open = await observer.query(`select count(*)::int n from pg_stat_activity where state like 'idle in transaction%' and query ilike '%"${schema}"%'`);
      expect(open.rows[0].n).toBe(0);
    }, 30_000);

    it('after its connections are killed, calls fail only as StoreUnavailableError and recover without reopening', async () => {
      const { app, reader } = await open();
      await reader.watchRevocations(() => undefined);
      const a = agentRecord();
      await reader.createAgent(a);
      await Promise.all(Array.from({ length: 4 }, () => reader.getAgent(a.clientId))); // several pooled connections
      expect(await terminate(app, false)).toBeGreaterThanOrEqual(2);
      const outcomes: string[] = [];
      const start = Date.now();
      let ok = false;
      while (!ok && Date.now() - start < 10_000) {
        try {
          ok = (await reader.getAgent(a.clientId))?.clientId === a.clientId;
          outcomes.push('ok');
        } catch (e) {
          outcomes.push(e instanceof StoreUnavailableError ? 'unavailable' : `other: ${String(e)}`);
          await new Promise((r) => setTimeout(r, 20));
        }
      }
      expect(ok).toBe(true);
      expect(outcomes.filter((o) => o !== 'ok' && o !== 'unavailable')).toEqual([]);
    });
  });
}
