/** The native consent page driven by real headless Chromium (playwright-core). */
import { existsSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { formatTable, runConformance } from '../src/index.js';
import { freePort, startTarget, type TestTarget } from './support/target.js';

const CHROMIUM = '/usr/bin/chromium';
let target: TestTarget;
let agentPort: number;

beforeAll(async () => {
  agentPort = await freePort();
  target = await startTarget({ agentHostPort: `127.0.0.1:${agentPort}` });
});
afterAll(async () => {
  await target.close();
});

describe.skipIf(!existsSync(CHROMIUM))('consent driver: chromium', () => {
  it('completes consent, partial grants and denial in a real browser', async () => {
    const report = await runConformance({
      target: target.url,
      mode: 'native',
      profile: 'full',
      agentPort,
      apiMap: target.apiMap,
      nativeLogin: target.login,
      consentDriver: 'chromium',
      chromiumPath: CHROMIUM,
      only: ['F.redirect-completion', 'F.page-completion', 'F.user-denied', 'G.happy-path', 'G.scope-intersection', 'H.happy-path', 'J.revoke-own'],
    });
    expect(report.summary.FAIL, formatTable(report)).toBe(0);
    expect(report.summary.PASS, formatTable(report)).toBe(7);
  }, 120_000);
});
