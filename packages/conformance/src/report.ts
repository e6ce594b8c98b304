import type { Report, ScenarioResult } from './types.js';

const pad = (s: string, n: number) => (s.length >= n ? s : s + ' '.repeat(n - s.length));

/** One line per scenario: STATUS  id  checklist ids  — reason. */
export function formatResultLine(r: ScenarioResult): string {
  const reason = r.message ? ` — ${r.message}` : '';
  const notes = r.notes.length ? ` [${r.notes.join('; ')}]` : '';
  return `${pad(r.status, 5)}  ${pad(r.id, 30)} ${pad(r.checklist.join(','), 22)}${reason}${notes}`;
}

export function formatTable(report: Report): string {
  const lines = [
    `ATH conformance ${report.suiteVersion} — ${report.target} (${report.mode}, ${report.profile} profile)`,
    '',
    `${pad('RESULT', 5)}  ${pad('SCENARIO', 30)} ${pad('CHECKLIST', 22)}`,
    ...report.results.map(formatResultLine),
    '',
    `${report.summary.PASS} passed, ${report.summary.FAIL} failed, ${report.summary.SKIP} skipped, ${report.summary.XFAIL} expected failures, ${report.summary.XPASS} unexpected passes — ${report.requestCount} requests in ${(report.durationMs / 1000).toFixed(1)} s`,
    report.ok ? 'OK: nothing unexpected failed' : `NOT OK: ${report.summary.unexpectedFailures} unexpected failure(s)`,
  ];
  return lines.join('\n');
}

const xml = (s: string) =>
  s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;').replace(/[^\t\n\r\u0020-\uffff]/g, ''); // XML 1.0 has no other control characters

/** JUnit XML: one testsuite per checklist section, one testcase per scenario. */
export function toJUnit(report: Report): string {
  const bySection = new Map<string, ScenarioResult[]>();
  for (const r of report.results) bySection.set(r.section, [...(bySection.get(r.section) ?? []), r]);
  const suites = [...bySection].map(([section, results]) => {
    const failures = results.filter((r) => r.status === 'FAIL').length;
    const skipped = results.filter((r) => r.status === 'SKIP' || r.status === 'XFAIL').length;
    const time = results.reduce((t, r) => t + r.durationMs, 0) / 1000;
    const cases = results.map((r) => {
      const name = xml(`${r.id} [${r.checklist.join(',')}] ${r.title}`);
      const t = (r.durationMs / 1000).toFixed(3);
      let inner = '';
      if (r.status === 'FAIL') inner = `<failure message="${xml(r.message ?? '')}">${xml(r.message ?? '')}</failure>`;
      else if (r.status === 'SKIP') inner = `<skipped message="${xml(r.message ?? '')}"/>`;
      else if (r.status === 'XFAIL') inner = `<skipped message="${xml(r.message ?? '')}"/>`;
      if (r.notes.length || r.status === 'XPASS') inner += `<system-out>${xml([r.status === 'XPASS' ? r.message ?? '' : '', ...r.notes].filter(Boolean).join('\n'))}</system-out>`;
      return `    <testcase classname="ath.${xml(section)}" name="${name}" time="${t}">${inner}</testcase>`;
    });
    return `  <testsuite name="ATH ${xml(section)}" tests="${results.length}" failures="${failures}" errors="0" skipped="${skipped}" time="${time.toFixed(3)}">\n${cases.join('\n')}\n  </testsuite>`;
  });
  return `<?xml version="1.0" encoding="UTF-8"?>\n<testsuites name="ath-conformance" tests="${report.summary.total}" failures="${report.summary.FAIL}">\n${suites.join('\n')}\n</testsuites>\n`;
}
