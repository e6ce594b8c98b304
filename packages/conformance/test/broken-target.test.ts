/**
 * The suite's checks can fail: each fault switches off one protection in the reference target,
 * and the named scenario must FAIL while the control scenarios still PASS.
 */
import { describe, expect, it } from 'vitest';
import { formatTable, runConformance } from '../src/index.js';
import { freePort, startTarget, type Fault } from './support/target.js';

const CONTROLS = ['B.baseline', 'E.happy-path', 'D.own-only'];

const VARIANTS: { fault: Fault; catches: string; description: string }[] = [
  { fault: 'replay', catches: 'B.replay-register', description: 'accepts a replayed jti' },
  { fault: 'replay', catches: 'B.replay-authorize', description: 'accepts a replayed jti (authorize)' },
  { fault: 'ignore-aud', catches: 'B.audience', description: 'ignores aud' },
  { fault: 'ignore-aud', catches: 'G.attestation', description: 'ignores aud (token endpoint wants its exact URL)' },
  { fault: 'revoke-unauthenticated', catches: 'J.unauthenticated', description: 'returns 200 for unauthenticated revoke' },
  { fault: 'conflict-before-attestation', catches: 'B.replay-register', description: 'returns 409 before verifying the attestation' },
  { fault: 'leak-secret', catches: 'D.own-status', description: 'leaks client_secret in GET agent' },
  { fault: 'unmapped-api', catches: 'H.unmapped-denied', description: 'accepts an unmapped native API path' },
  { fault: 'wrong-status', catches: 'K.status-table', description: 'wrong status for an error code (SCOPE_NOT_APPROVED → 400)' },
];

describe('broken targets are caught', () => {
  for (const v of VARIANTS) {
    it(`${v.fault}: ${v.description} → ${v.catches} FAILs`, async () => {
      const agentPort = await freePort();
      const target = await startTarget({ agentHostPort: `127.0.0.1:${agentPort}`, fault: v.fault });
      try {
        const report = await runConformance({
          target: target.url,
          mode: 'native',
          profile: 'full',
          agentPort,
          apiMap: target.apiMap,
          nativeLogin: target.login,
          only: [v.catches, ...CONTROLS],
        });
        const byId = new Map(report.results.map((r) => [r.id, r]));
        expect(byId.get(v.catches)?.status, formatTable(report)).toBe('FAIL');
        for (const c of CONTROLS) expect(byId.get(c)?.status, formatTable(report)).toBe('PASS');
        expect(report.ok).toBe(false);

        // The same failure listed as expected does not count.
        const tolerated = await runConformance({
          target: target.url,
          mode: 'native',
          profile: 'full',
          agentPort,
          apiMap: target.apiMap,
          nativeLogin: target.login,
          only: [v.catches],
          expectedFailures: [{ id: v.catches, reason: 'known' }],
        });
        expect(tolerated.results[0]?.status).toBe('XFAIL');
        expect(tolerated.ok).toBe(true);
      } finally {
        await target.close();
      }
    }, 60_000);
  }

  it('an expected failure that passes is reported as XPASS', async () => {
    const agentPort = await freePort();
    const target = await startTarget({ agentHostPort: `127.0.0.1:${agentPort}` });
    try {
      const report = await runConformance({
        target: target.url,
        mode: 'native',
        agentPort,
        only: ['C-057'],
        expectedFailures: [{ id: 'C-057' }],
      });
      expect(report.results.map((r) => r.status)).toEqual(['XPASS']);
      expect(report.ok).toBe(true);
    } finally {
      await target.close();
    }
  });

  it('refuses a non-loopback target unless --allow-remote', async () => {
    await expect(runConformance({ target: 'https://example.com', mode: 'native' })).rejects.toThrow(/allow-remote/);
  });
});
