import { describe, expect, it } from 'vitest';
import { runDemo } from '../src/index.js';

describe('npm run demo:handshake (seed 000 end to end; NativeClient.handshake + UserWallet + athHandshake)', () => {
  it('plays steps 0-9 with the push channel, clamps the 2-hour TTL to 1 hour, and uses the session', async () => {
    const lines: string[] = [];
    const result = await runDemo({ log: (l) => lines.push(l) });
    const out = lines.join('\n');
    for (const step of [
      'Step 1',
      'Step 2',
      'Step 3',
      'Step 4',
      'Step 5',
      'Step 6',
      'Step 7',
      'Step 8',
      'Step 9',
    ])
      expect(out).toContain(step);
    expect(result.steps.map((s) => s.step)).toEqual([1, 2, 3, 4, 5, 5, 8, 9, 9]);
    expect(result.grantedScopes).toEqual(['goods:read', 'order:create']);
    // C-263 / AMB-17: 7200 requested, ≤ 3600 granted, said so in the output.
    expect(result.ttlRequested).toBe(7200);
    expect(result.ttlGranted).toBe(3600);
    expect(result.expiresIn).toBeLessThanOrEqual(3600);
    expect(out).toContain('clamped');
    // AMB-34: the same key on both sides.
    expect(result.serviceKeyId).toBe(result.agentKeyId);
    expect(result.order).toMatchObject({ status: 'created', placed_for: 'alice' });
    expect((result.goods as { goods: unknown[] }).goods).toHaveLength(3);
    // Nothing secret in the output.
    expect(out).not.toMatch(/ath_tk_/);
    expect(out).not.toMatch(/"d":/);
  });

  it('C-265(c): when the user approves only goods:read, the assistant gets only goods:read', async () => {
    const lines: string[] = [];
    await expect(
      runDemo({ log: (l) => lines.push(l), decide: () => ({ approve: true, scopes: ['goods:read'] }) }),
    ).rejects.toMatchObject({ code: 'SCOPE_NOT_APPROVED' });
    expect(lines.join('\n')).toContain('user_declined');
  });

  it('C-265(d): when the user denies, the handshake ends with USER_DENIED', async () => {
    await expect(runDemo({ log: () => undefined, decide: () => ({ approve: false }) })).rejects.toMatchObject(
      { code: 'USER_DENIED' },
    );
  });
});
