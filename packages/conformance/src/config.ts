/** Parsing of the YAML/JSON files the CLI takes: --expected-failures and --api-map. */
import { parse } from 'yaml';
import type { ApiMap, ExpectedFailure } from './types.js';

/**
 * Expected failures: a list of ids (`- C-057`), or entries `{ id, reason }`, or a map
 * `{ expected_failures: [...] }`. An id is a scenario id (B.alg-none) or a checklist id (C-057).
 */
export function parseExpectedFailures(text: string): ExpectedFailure[] {
  const doc: unknown = parse(text);
  const list = Array.isArray(doc) ? doc : (doc as { expected_failures?: unknown } | null)?.expected_failures;
  if (!Array.isArray(list)) throw new Error('expected-failures file: expected a list (or expected_failures: [...])');
  return list.map((e, i) => {
    if (typeof e === 'string') return { id: e };
    const o = e as { id?: unknown; reason?: unknown };
    if (typeof o?.id !== 'string') throw new Error(`expected-failures entry ${i}: needs an id`);
    return typeof o.reason === 'string' ? { id: o.id, reason: o.reason } : { id: o.id };
  });
}

/**
 * API map (native mode): `{ operations: [{ method, path, scope, body? }], unmapped?: { method, path } }`
 * where paths are relative to ath-app.json's api_base.
 */
export function parseApiMap(text: string): ApiMap {
  const doc = parse(text) as Partial<ApiMap> | null;
  if (!doc || !Array.isArray(doc.operations)) throw new Error('api map: expected { operations: [...] }');
  for (const [i, op] of doc.operations.entries()) {
    if (typeof op?.method !== 'string' || typeof op.path !== 'string' || typeof op.scope !== 'string') {
      throw new Error(`api map: operations[${i}] needs method, path and scope`);
    }
  }
  if (doc.unmapped && (typeof doc.unmapped.method !== 'string' || typeof doc.unmapped.path !== 'string')) {
    throw new Error('api map: unmapped needs method and path');
  }
  return { operations: doc.operations, ...(doc.unmapped ? { unmapped: doc.unmapped } : {}) };
}
