import { readdirSync, readFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import Ajv2020 from 'ajv/dist/2020.js';
import addFormats from 'ajv-formats';
import { validators, type DefName } from '../src/index.js';
import { examplesDir, hasUpstream, schemaDir, upstreamDir } from './paths.js';

const readSchema = (file: string) => JSON.parse(readFileSync(file, 'utf8')) as { $defs: Record<string, unknown> };
const schema = readSchema(join(schemaDir, 'ath.schema.json'));
const extensionDir = join(schemaDir, 'extensions');
// Extension schemas (e.g. the 9-step handshake) follow the same rule: every $def has both kinds of example.
const extensionDefs = existsSync(extensionDir)
  ? readdirSync(extensionDir)
      .filter((f) => f.endsWith('.schema.json'))
      .flatMap((f) => Object.keys(readSchema(join(extensionDir, f)).$defs))
  : [];
const defNames = [...Object.keys(schema.$defs), ...extensionDefs] as DefName[];

function examples(def: string, kind: 'valid' | 'invalid'): { file: string; value: unknown }[] {
  const dir = join(examplesDir, def, kind);
  if (!existsSync(dir)) return [];
  return readdirSync(dir)
    .filter((f) => f.endsWith('.json'))
    .sort()
    .map((file) => ({ file, value: JSON.parse(readFileSync(join(dir, file), 'utf8')) as unknown }));
}

describe('schema examples', () => {
  it('every $def has a validator and both valid and invalid examples', () => {
    const missing = defNames.flatMap((def) => [
      ...(def in validators ? [] : [`${def}: no generated validator`]),
      ...(examples(def, 'valid').length ? [] : [`${def}: no valid example`]),
      ...(examples(def, 'invalid').length ? [] : [`${def}: no invalid example`]),
    ]);
    expect(missing).toEqual([]);
  });

  it('every example folder names an existing $def', () => {
    expect(readdirSync(examplesDir).filter((d) => !defNames.includes(d as DefName))).toEqual([]);
  });

  for (const def of defNames) {
    describe(def, () => {
      const validate = validators[def];
      for (const { file, value } of examples(def, 'valid')) {
        it(`valid/${file} passes`, () => {
          const result = validate(value);
          expect(result.violations).toEqual([]);
          expect(result.valid).toBe(true);
        });
      }
      for (const { file, value } of examples(def, 'invalid')) {
        it(`invalid/${file} fails`, () => {
          const result = validate(value);
          expect(result.valid).toBe(false);
          expect(result.violations.length).toBeGreaterThan(0);
        });
      }
    });
  }
});

describe('upstream compatibility', () => {
  if (!hasUpstream) {
    it.skip('skipped: ../shared/spec/upstream/schema.json not found', () => {});
    console.log('skipped: upstream compatibility (../shared/spec/upstream/schema.json not found)');
    return;
  }
  const upstream = JSON.parse(readFileSync(join(upstreamDir, 'schema.json'), 'utf8')) as {
    $id: string;
    $defs: Record<string, unknown>;
  };
  const ajv = new Ajv2020.default({ strict: false, allErrors: true });
  addFormats.default(ajv);
  ajv.addSchema(upstream);

  const shared = defNames.filter((d) => d in upstream.$defs);
  it('every upstream $def exists in our schema', () => {
    expect(Object.keys(upstream.$defs).filter((d) => !defNames.includes(d as DefName))).toEqual([]);
  });
  for (const def of shared) {
    const check = ajv.getSchema(`${upstream.$id}#/$defs/${def}`)!;
    // ext-* examples use our extension error codes, which upstream's closed enum cannot know.
    for (const { file, value } of examples(def, 'valid').filter((e) => !e.file.startsWith('ext-'))) {
      it(`${def} valid/${file} is valid upstream`, () => {
        expect(check(value), JSON.stringify(check.errors)).toBe(true);
      });
    }
  }

  it('fields, types and required lists match upstream for every shared $def', () => {
    type Obj = { required?: string[]; properties?: Record<string, { type?: unknown; format?: unknown; const?: unknown }> };
    const diffs: string[] = [];
    for (const def of shared) {
      const ours = schema.$defs[def] as Obj;
      const theirs = upstream.$defs[def] as Obj;
      if (JSON.stringify([...(ours.required ?? [])].sort()) !== JSON.stringify([...(theirs.required ?? [])].sort()))
        diffs.push(`${def}: required differs`);
      const props = new Set([...Object.keys(ours.properties ?? {}), ...Object.keys(theirs.properties ?? {})]);
      for (const p of props) {
        const a = ours.properties?.[p];
        const b = theirs.properties?.[p];
        if (!a || !b) diffs.push(`${def}.${p}: present on one side only`);
        else if (b.type !== undefined && a.type !== undefined && JSON.stringify(a.type) !== JSON.stringify(b.type))
          diffs.push(`${def}.${p}: type differs`);
        else if (b.format !== undefined && a.format !== b.format) diffs.push(`${def}.${p}: format differs`);
        else if (b.const !== undefined && a.const !== b.const) diffs.push(`${def}.${p}: const differs`);
      }
    }
    expect(diffs).toEqual([]);
  });
});
