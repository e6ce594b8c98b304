import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { formatTable, runConformance, type Report } from '../src/index.js';
import { freePort, startTarget, type TestTarget } from './support/target.js';

let agentPort: number;
let target: TestTarget;

beforeAll(async () => {
  agentPort = await freePort();
  target = await startTarget({ agentHostPort: `127.0.0.1:${agentPort}` });
});
afterAll(async () => {
  await target.close();
});

function explain(report: Report): string {
  return formatTable(report);
}

describe('against the reference target (native)', () => {
  it('basic profile: zero unexpected failures', async () => {
    const report = await runConformance({ target: target.url, mode: 'native', profile: 'basic', agentPort, apiMap: target.apiMap });
    expect(report.summary.FAIL, explain(report)).toBe(0);
    expect(report.summary.PASS).toBeGreaterThan(50);
    // full-profile scenarios are listed as SKIP with the reason
    expect(report.results.find((r) => r.id === 'G.happy-path')).toMatchObject({ status: 'SKIP', message: 'needs --profile full' });
  }, 120_000);

  it('full profile (cookie-jar consent driver): zero unexpected failures', async () => {
    const report = await runConformance({
      target: target.url,
      mode: 'native',
      profile: 'full',
      agentPort,
      apiMap: target.apiMap,
      nativeLogin: target.login,
    });
    expect(report.summary.FAIL, explain(report)).toBe(0);
    const skipped = report.results.filter((r) => r.status === 'SKIP').map((r) => `${r.id}: ${r.message}`);
    // only the gateway-only / alias-dependent checks may skip
    expect(skipped.every((s) => s.startsWith('H.provider-mismatch') || s.startsWith('C.auto-approval-provider')), skipped.join('\n')).toBe(true);
  }, 180_000);
});
