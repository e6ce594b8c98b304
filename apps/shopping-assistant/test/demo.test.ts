/**
 * The demo end to end, as `npm run demo` runs it (headless Chromium plays the user), and once in
 * interactive mode with the "person" answering the printed URL.
 */
import { describe, expect, it } from 'vitest';
import { useNetworkGuard } from '@athkit/testkit';
import { approveInChromium, runDemo, SCOPES, type DemoResult } from '../src/index.js';

useNetworkGuard();

const tcpHandles = (): number => process.getActiveResourcesInfo().filter((r) => r.startsWith('TCP')).length;

function callsOf(result: DemoResult, step: number): string[] {
  const found = result.steps.find((s) => s.number === step);
  return (found?.calls ?? []).map((c) => `${c.method} ${new URL(c.url).pathname} ${c.status}`);
}

describe('npm run demo (headless)', () => {
  it('runs seed 002 from discovery to a revoked token, printing every call with secrets masked', async () => {
    const before = tcpHandles();
    const lines: string[] = [];
    const result = await runDemo({ out: (line) => lines.push(line) });
    const printed = lines.join('\n');

    // Every step, in the seed's order, each with its real HTTP calls.
    expect(result.steps.map((s) => s.number)).toEqual([1, 2, 3, 4, 5, 6, 7]);
    expect(callsOf(result, 1)).toEqual(['GET /.well-known/ath-app.json 200']);
    expect(callsOf(result, 2)).toEqual(['POST /ath/agents/register 201']);
    expect(callsOf(result, 3)).toEqual(['POST /ath/authorize 200']);
    expect(callsOf(result, 4)).toEqual([]);
    expect(callsOf(result, 5)).toEqual(['POST /ath/token 200']);
    expect(callsOf(result, 6)).toEqual([
      'GET /api/products 200',
      'POST /api/cart 200',
      'POST /api/orders 201',
    ]);
    expect(callsOf(result, 7)).toEqual(['POST /ath/revoke 200', 'GET /api/products 401']);
    for (const title of [
      'Step 1: Discovery',
      'Step 2: Registration',
      'Step 3: Authorization',
      'Step 4: Consent',
      'Step 5: Token exchange',
      'Step 6: Use the API',
      'Step 7: Revoke',
    ]) {
      expect(printed).toContain(title);
    }
    expect(printed).toContain(`GET ${result.shopUrl}/.well-known/ath-app.json`);
    expect(printed).toContain(`POST ${result.shopUrl}/ath/agents/register`);
    expect(printed).toContain('"purpose": "AI Shopping Agent"');
    expect(printed).toContain('"code": "exchange"');
    expect(printed).toContain(`X-ATH-Agent-ID: ${result.agentId}`);
    expect(printed).toContain('"code": "TOKEN_REVOKED"');
    expect(printed).toMatch(
      /browser: POST http:\/\/127\.0\.0\.1:\d+\/login .*username=alice&password=•••••• → 303/,
    );
    expect(printed).toMatch(/→ 401 TOKEN_REVOKED/);

    // Secrets are masked: no client_secret, access token, attestation or password in full.
    const register = result.steps[1]!.calls[0]!;
    const token = result.steps.find((s) => s.number === 5)!.calls[0]!;
    const secret = (register.responseBody as { client_secret: string }).client_secret;
    const accessToken = (token.responseBody as { access_token: string }).access_token;
    const attestation = (register.requestBody as { agent_attestation: string }).agent_attestation;
    expect(secret).toMatch(/^ath_secret_/);
    expect(accessToken).toMatch(/^ath_tk_/);
    for (const hidden of [secret, accessToken, attestation, 'alice-password'])
      expect(printed).not.toContain(hidden);
    expect(printed).toContain(`"client_secret": "${secret.slice(0, 'ath_secret_'.length + 4)}…"`);
    expect(printed).toContain(`Authorization: Bearer ${accessToken.slice(0, 'ath_tk_'.length + 4)}…`);
    expect(printed).toContain('"agent_attestation": "eyJhbGciOiJFUzI1NiIs..."');

    // The final state: all three scopes, one order of 2 × 12.90 for alice, the token refused.
    expect(result.consent).toMatchObject({
      heading: 'Shopping Assistant wants to access your ATH Shop E-Commerce API account',
      outcome: 'Access granted',
    });
    expect(result.consent?.scopes).toEqual(SCOPES);
    expect(result.effectiveScopes).toEqual(SCOPES);
    expect(result.order).toMatchObject({ total_cents: 2 * 1290, items: [{ product_id: 1, quantity: 2 }] });
    expect(result.ordersInShop).toEqual([result.order]);
    expect(result.afterRevoke).toEqual({ status: 401, code: 'TOKEN_REVOKED' });
    expect(lines.at(-1)).toBe('Done: 9 HTTP calls by the agent; alice has 1 order(s) at the shop.');

    // Everything it started is closed again (client sockets see the servers' FIN a moment later).
    await expect.poll(tcpHandles, { timeout: 5_000 }).toBeLessThanOrEqual(before);
  }, 90_000);
});

describe('npm run demo -- --interactive', () => {
  it('prints the consent URL, polls /ath/token while the person decides, then finishes the story', async () => {
    const lines: string[] = [];
    let person: Promise<unknown> | undefined;
    const result = await runDemo({
      interactive: true,
      pollIntervalMs: 100,
      out: (line) => {
        lines.push(line);
        // The person copies the printed URL into their browser (here: Chromium again).
        const url = /^ {4}(http:\/\/127\.0\.0\.1:\d+\/ath\/authorize\/start\?\S+)$/.exec(line)?.[1];
        if (url) person = approveInChromium(url, { username: 'alice', password: 'alice-password' });
      },
    });
    await person;
    const printed = lines.join('\n');
    expect(printed).toContain('Open this URL in your browser, log in and approve:');
    expect(printed).toMatch(/POST http:\/\/127\.0\.0\.1:\d+\/ath\/token → 400 authorization_pending/);
    expect(result.consent).toBeNull();
    expect(result.steps.map((s) => s.number)).toEqual([1, 2, 3, 4, 5, 6, 7]);
    expect(callsOf(result, 5)).toEqual(['POST /ath/token 200']);
    expect(result.effectiveScopes).toEqual(SCOPES);
    expect(result.afterRevoke).toEqual({ status: 401, code: 'TOKEN_REVOKED' });
  }, 90_000);
});
