import { SCENARIOS, automatedChecklist } from './registry.js';

/** Regenerate with `UPDATE_README=1 npx vitest run --project conformance traceability`. */
export const TABLE_BEGIN = '<!-- traceability:begin -->';
export const TABLE_END = '<!-- traceability:end -->';

/** The README traceability table: checklist id → scenario(s) → spec section, plus per-profile counts. */
export function traceabilityMarkdown(): string {
  const byId = new Map<string, { scenarios: string[]; spec: Set<string>; profiles: Set<string>; modes: Set<string>; threats: Set<string> }>();
  for (const s of SCENARIOS) {
    for (const c of s.checklist) {
      const row = byId.get(c) ?? { scenarios: [], spec: new Set(), profiles: new Set(), modes: new Set(), threats: new Set() };
      row.scenarios.push(`\`${s.id}\``);
      row.spec.add(s.spec);
      row.profiles.add(s.profile);
      for (const m of s.modes) row.modes.add(m);
      for (const t of s.threats ?? []) row.threats.add(t);
      byId.set(c, row);
    }
  }
  const ids = [...byId.keys()].sort();
  const counts = (['basic', 'full'] as const).flatMap((p) =>
    (['native', 'gateway'] as const).map((m) => `| ${p} | ${m} | ${automatedChecklist(p, m).length} |`),
  );
  return [
    TABLE_BEGIN,
    '',
    `${SCENARIOS.length} scenarios; ${ids.length} checklist items automated in total.`,
    '',
    '| profile | mode | checklist items automated |',
    '|---|---|---|',
    ...counts,
    '',
    '| checklist | scenario(s) | profile | modes | threats | spec |',
    '|---|---|---|---|---|---|',
    ...ids.map((id) => {
      const r = byId.get(id)!;
      const profile = r.profiles.has('basic') ? 'basic' : 'full';
      return `| ${id} | ${r.scenarios.join(', ')} | ${profile} | ${[...r.modes].sort().join(', ')} | ${[...r.threats].sort().join(', ')} | ${[...r.spec].join(' / ')} |`;
    }),
    '',
    TABLE_END,
  ].join('\n');
}
