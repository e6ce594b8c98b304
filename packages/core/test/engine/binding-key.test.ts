import { createHmac } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AgentRegistrationResponse } from '@athkit/schemas';
import { useNetworkGuard } from '@athkit/testkit';
import { AthEngine, keyedDigest, MemoryStore } from '../../src/index.js';
import { BASE, createHarness, PROVIDERS, rejection, type Harness, type TestAgent } from '../support/engine-harness.js';
import { expectAthError, granted, sha256b64url, startFlow } from './helpers.js';

const KEY = new Uint8Array(32).fill(7);
const hmac = (key: Uint8Array, value: string) => createHmac('sha256', key).update(value).digest('base64url');

describe('bindingKey: the browser-binding cookie digest is keyed (C-104, threats D3)', () => {
  useNetworkGuard();
  let h: Harness;
  let agent: TestAgent;
  let reg: AgentRegistrationResponse;

  beforeAll(async () => {
    h = await createHarness({ bindingKey: KEY });
    agent = await h.agent('bk');
    reg = await h.register(agent);
  });
  afterAll(() => h.close());

  it('the session stores HMAC-SHA256(key, cookie), not SHA-256(cookie); the same browser completes', async () => {
    const flow = await startFlow(h, reg, agent);
    const cookie = flow.cookies[flow.cookieName]!;
    const stored = (await h.store.getSession(flow.sessionId))!.bindingHash;
    expect(stored).toBe(hmac(KEY, cookie));
    expect(stored).not.toBe(await sha256b64url(cookie));
    const session = await h.engine.openCallback(flow.state, flow.cookies);
    await h.engine.completeConsent(session, granted(['p:read']));
    expect((await h.store.getSession(flow.sessionId))!.status).toBe('consented');
  });

  it('a digest planted in the store without the key binds nothing: the planter\'s cookie is refused', async () => {
    const flow = await startFlow(h, reg, agent);
    const planted = 'attacker-chosen-cookie-value-0123456789';
    // Someone with write access to the store (not to the key) rebinds the session to their value.
    const session = (await h.store.getSession(flow.sessionId))!;
    await h.store.updateSession(session.id, { status: ['pending'] }, { bindingHash: await sha256b64url(planted), updatedAt: h.clock.now() });
    expectAthError(await rejection(() => h.engine.openCallback(flow.state, { [flow.cookieName]: planted })), 'STATE_MISMATCH');
    expectAthError(await rejection(() => h.engine.launch(flow.authorizationUrl.searchParams, { [flow.cookieName]: planted })), 'STATE_MISMATCH');
  });

  it('instances sharing a store need the same key: another key refuses the browser that started the flow', async () => {
    const flow = await startFlow(h, reg, agent);
    const other = new AthEngine({ store: h.store, baseUrl: BASE, providers: PROVIDERS, clock: h.clock, bindingKey: new Uint8Array(32).fill(8) });
    expectAthError(await rejection(() => other.openCallback(flow.state, flow.cookies)), 'STATE_MISMATCH');
    await expect(h.engine.openCallback(flow.state, flow.cookies)).resolves.toMatchObject({ id: flow.sessionId });
  });

  it('keyedDigest: HMAC with a key of ≥ 32 bytes, SHA-256 without one, a short key refused', async () => {
    expect(await keyedDigest(KEY)('v')).toBe(hmac(KEY, 'v'));
    expect(await keyedDigest(undefined)('v')).toBe(await sha256b64url('v'));
    expect(() => keyedDigest(new Uint8Array(16))).toThrow(TypeError);
    expect(() => new AthEngine({ store: new MemoryStore(), baseUrl: 'https://x.test', providers: [], bindingKey: new Uint8Array(8) })).toThrow(TypeError);
  });
});
