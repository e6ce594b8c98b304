/**
 * The browser ConfirmationChannel of the 9-step handshake (steps 6-7 through the consent page) in
 * real headless Chromium (Debian chromium + playwright-core, never a downloaded browser).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Browser, Page } from 'playwright-core';
import { generateEphemeralKeyPair, signAttestation } from '@athkit/core';
import { browserTestsEnabled, launchChromium } from '@athkit/testkit';
import { agentDocs, startService, type DocAgent, type Service } from './service.js';
import {
  basic,
  call,
  enrolUser,
  expectError,
  registerAgent,
  toStep5,
  type Json,
  type Registration,
} from './flow.js';

describe.runIf(browserTestsEnabled)(
  '9-step handshake, browser confirmation channel in headless Chromium (C-264, C-265)',
  () => {
    let docs: Awaited<ReturnType<typeof agentDocs>>;
    let svc: Service;
    let browser: Browser;
    let agent: DocAgent;
    let reg: Registration;

    beforeAll(async () => {
      docs = await agentDocs();
      svc = await startService({ agentHostPort: docs.hostPort, push: false });
      agent = await docs.add('browser-assistant');
      reg = await registerAgent(svc, agent);
      browser = await launchChromium();
    }, 60_000);
    afterAll(async () => {
      await browser?.close();
      await svc?.close();
      await docs?.close();
    });

    async function userDecides(
      authorizationUrl: string,
      user: string,
      action: (page: Page) => Promise<void>,
    ) {
      const context = await browser.newContext();
      try {
        await context.addCookies([{ name: 'user', value: user, url: svc.base }]);
        const page = await context.newPage();
        const response = await page.goto(authorizationUrl);
        expect(response?.status()).toBe(200);
        await expect(page.locator('h1').textContent()).resolves.toContain('AI Shopping Assistant');
        await action(page);
        await page.waitForLoadState('load');
        return await page.content();
      } finally {
        await context.close();
      }
    }

    const status = (id: string) => call('GET', `${svc.base}/ath/handshake/${id}`, undefined, basic(reg));

    it('C-265(c)/C-266: the user unticks order:create on the consent page; step 8 grants goods:read only; step 9 works', async () => {
      const alice = await enrolUser(svc, 'alice');
      const { res, auth } = await toStep5(svc, agent, reg, alice);
      expect(auth['confirmation_channel']).toBe('browser');
      expect((await status(res.handshake_id)).body).toMatchObject({ status: 'pending' });

      const html = await userDecides(auth['authorization_url'] as string, 'alice', async (page) => {
        await page.locator('input[name="scope"][value="order:create"]').uncheck();
        await page.locator('button[value="approve"]').click();
      });
      expect(html).toMatch(/approved|granted|authori[sz]ed/i);

      const result = (await status(res.handshake_id)).body;
      expect(result).toMatchObject({
        type: 'scope_result',
        scopes_granted: ['goods:read'],
        scopes_denied: [{ scope: 'order:create', reason: 'user_declined' }],
        ttl_granted: 3600,
      });
      const eph = await generateEphemeralKeyPair();
      const token = await call('POST', `${svc.base}/ath/token`, {
        grant_type: 'authorization_code',
        client_id: reg.client_id,
        client_secret: reg.client_secret,
        agent_attestation: await signAttestation({
          privateKey: agent.privateKey,
          kid: agent.kid,
          agentId: agent.agentId,
          audience: `${svc.base}/ath/token`,
        }),
        code: auth['request_id'],
        ath_session_id: auth['ath_session_id'],
        key_exchange: { alg: 'ECDH-P256', epk: eph.publicJwk },
      });
      expect(token.status, JSON.stringify(token.body)).toBe(200);
      const headers = {
        authorization: `Bearer ${token.body['access_token'] as string}`,
        'x-ath-agent-id': agent.agentId,
      };
      expect((await call('GET', `${svc.base}/api/goods`, undefined, headers)).status).toBe(200);
      expectError(
        await call('POST', `${svc.base}/api/orders`, { sku: 'mug' }, headers),
        403,
        'SCOPE_NOT_APPROVED',
      );
    });

    it('C-265(d): the user clicks Deny: step 8 is 403 USER_DENIED', async () => {
      const bob = await enrolUser(svc, 'bob');
      const { res, auth } = await toStep5(svc, agent, reg, bob);
      await userDecides(auth['authorization_url'] as string, 'bob', (page) =>
        page.locator('button[value="deny"]').click(),
      );
      expectError(await status(res.handshake_id), 403, 'USER_DENIED');
    });

    it('the consent page signed in as another user than the one who pre-authorized: USER_DENIED user_mismatch', async () => {
      const carol = await enrolUser(svc, 'carol');
      const { res, auth } = await toStep5(svc, agent, reg, carol);
      await userDecides(auth['authorization_url'] as string, 'mallory', (page) =>
        page.locator('button[value="approve"]').click(),
      );
      const body: Json = expectError(await status(res.handshake_id), 403, 'USER_DENIED');
      expect(body['details']).toMatchObject({ reason: 'user_mismatch' });
    });
  },
);
