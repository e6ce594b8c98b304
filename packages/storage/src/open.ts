import { MemoryStore, type Store } from '@athkit/core';
import { safeError } from './errors.js';
import { createPostgresStore } from './postgres.js';
import { createSqliteStore } from './sqlite.js';

/** A fresh in-memory store (tests, development; nothing survives the process). */
export function createMemoryStore(): MemoryStore {
  return new MemoryStore();
}

/**
 * Opens a store from a URL:
 * - `memory:` — in process memory;
 * - `sqlite:<path>` — a SQLite file, relative to the working directory or absolute
 *   (`sqlite:./data/ath.db`, `sqlite:/var/lib/ath/ath.db`, `sqlite:///var/lib/ath/ath.db`),
 *   or `sqlite::memory:`;
 * - `postgres://…` / `postgresql://…` — PostgreSQL; an optional `schema=<name>` query parameter
 *   selects (and creates) the schema holding the tables.
 */
export async function openStore(url: string): Promise<Store> {
  if (url === 'memory:' || url === 'memory://') return createMemoryStore();
  if (url.startsWith('sqlite:')) {
    let path = url.slice('sqlite:'.length);
    if (path.startsWith('//')) path = path.slice(2);
    if (path === '') throw safeError('sqlite: URL without a path');
    return createSqliteStore({ filename: path });
  }
  if (url.startsWith('postgres://') || url.startsWith('postgresql://')) {
    let parsed: URL;
    try {
      parsed = new URL(url);
    } catch {
      throw safeError('invalid PostgreSQL URL');
    }
    const schema = parsed.searchParams.get('schema') ?? undefined;
    parsed.searchParams.delete('schema');
    return createPostgresStore({
      connectionString: parsed.toString(),
      ...(schema !== undefined ? { schema } : {}),
    });
  }
  throw safeError('unsupported store URL (expected memory:, sqlite:<path> or postgres://…)');
}
