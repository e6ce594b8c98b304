/** The README traceability table is generated from the scenario registry and must be current. */
import { readFileSync, writeFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { SCENARIOS, SUITE_VERSION, traceabilityMarkdown } from '../src/index.js';
import { TABLE_BEGIN, TABLE_END } from '../src/traceability.js';

const readmePath = new URL('../README.md', import.meta.url);

describe('traceability', () => {
  it('README table matches the registry (UPDATE_README=1 rewrites it)', () => {
    const readme = readFileSync(readmePath, 'utf8');
    const start = readme.indexOf(TABLE_BEGIN);
    const end = readme.indexOf(TABLE_END);
    expect(start, 'README lacks the traceability markers').toBeGreaterThanOrEqual(0);
    expect(end).toBeGreaterThan(start);
    const current = readme.slice(start, end + TABLE_END.length);
    const wanted = traceabilityMarkdown();
    if (process.env['UPDATE_README'] === '1' && current !== wanted) {
      writeFileSync(readmePath, readme.slice(0, start) + wanted + readme.slice(end + TABLE_END.length));
      return;
    }
    expect(current, 'README traceability table is out of date: run UPDATE_README=1 npx vitest run --project conformance traceability').toBe(wanted);
  });

  it('every scenario cites valid checklist ids and a spec source', () => {
    for (const s of SCENARIOS) {
      expect(s.checklist.length, s.id).toBeGreaterThan(0);
      for (const c of s.checklist) expect(c, s.id).toMatch(/^C-\d{3}$/);
      for (const t of s.threats ?? []) expect(t, s.id).toMatch(/^[A-I]\d{1,2}$/);
      expect(s.spec.length, s.id).toBeGreaterThan(0);
      expect(s.id.startsWith(`${s.section}.`), s.id).toBe(true);
    }
  });

  it('every cited checklist id exists in the checklist', () => {
    let checklist: string;
    try {
      checklist = readFileSync('/work/shared/spec/checklist.md', 'utf8');
    } catch {
      return; // the checklist is not shipped with the repository
    }
    for (const s of SCENARIOS) for (const c of s.checklist) expect(checklist.includes(`**${c}**`), `${s.id} cites ${c}`).toBe(true);
  });

  it('SUITE_VERSION follows package.json', () => {
    const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string };
    expect(SUITE_VERSION).toBe(pkg.version);
  });
});
