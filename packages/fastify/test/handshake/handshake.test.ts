import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  decryptWithSessionKey,
  deriveSessionKey,
  encryptWithSessionKey,
  generateEphemeralKeyPair,
  signAttestation,
} from '@athkit/core';
import { validateATHError, type HandshakeComplete } from '@athkit/schemas';
import { agentDocs, startDevice, startService, type DocAgent, type Device, type Service } from './service.js';
import {
  basic,
  call,
  enrolUser,
  expectError,
  nonce,
  now,
  registerAgent,
  signedConfirmation,
  toStep5,
  type Json,
  type Registration,
  type User,
} from './flow.js';

describe('athHandshake over HTTP (checklist section M, Part 4 binding)', () => {
  let docs: Awaited<ReturnType<typeof agentDocs>>;
  let device: Device;
  let svc: Service;
  let agent: DocAgent;
  let reg: Registration;
  let alice: User;

  beforeAll(async () => {
    docs = await agentDocs();
    device = await startDevice();
    svc = await startService({
      agentHostPort: docs.hostPort,
      deviceHostPort: device.hostPort,
      rateLimit: { limit: 200, windowSeconds: 60 },
    });
    agent = await docs.add('assistant');
    reg = await registerAgent(svc, agent);
    alice = await enrolUser(svc, 'alice', device.url);
  });
  afterAll(async () => {
    await svc.close();
    await device.close();
    await docs.close();
  });

  it('C-256/AMB-21/AMB-23: ath-app.json advertises ath_endpoints.handshake, server_jwks and server_did; did.json has the same key', async () => {
    const doc = (await call('GET', `${svc.base}/.well-known/ath-app.json`)).body;
    expect(doc).toMatchObject({
      app_id: 'shop',
      ath_endpoints: { register: `${svc.base}/ath/agents/register`, handshake: `${svc.base}/ath/handshake` },
      server_did: `did:web:127.0.0.1%3A${new URL(svc.base).port}`,
    });
    const jwks = doc['server_jwks'] as { keys: Json[] };
    expect(jwks.keys).toHaveLength(1);
    expect(jwks.keys[0]).not.toHaveProperty('d');
    const did = (await call('GET', `${svc.base}/.well-known/did.json`)).body;
    expect(did['id']).toBe(doc['server_did']);
    expect((did['verificationMethod'] as Json[])[0]!['publicKeyJwk']).toEqual(jwks.keys[0]);
  });

  it('seed 000 over HTTP with the push channel: steps 1-9, then the API with Bearer + X-ATH-Agent-ID; same session key on both sides', async () => {
    device.onPush = async (message) => {
      await call('POST', message.confirmation_endpoint, await signedConfirmation(message, alice));
    };
    const { res, nonceA, auth } = await toStep5(svc, agent, reg, alice);
    expect(auth).toMatchObject({ confirmation_channel: 'push', handshake_id: res.handshake_id });
    const pushed = device.received.at(-1)!;
    expect(pushed).toMatchObject({
      type: 'authorization_confirmation_request',
      request_id: auth['request_id'],
      client_did: agent.agentId,
    });
    // Step 8: poll until the user's device answered.
    let scope: Json = {};
    for (let i = 0; i < 200; i++) {
      scope = (await call('GET', `${svc.base}/ath/handshake/${res.handshake_id}`, undefined, basic(reg)))
        .body;
      if (scope['type'] === 'scope_result') break;
      await new Promise((r) => setTimeout(r, 10));
    }
    expect(scope).toMatchObject({
      type: 'scope_result',
      scopes_granted: ['goods:read', 'order:create'],
      ttl_granted: 3600,
    });
    // Step 9.
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
    const done = token.body as unknown as HandshakeComplete;
    expect(done).toMatchObject({
      type: 'handshake_complete',
      cipher_suite: 'AES-256-GCM',
      key_exchange_alg: 'ECDH-P256',
    });
    expect(done.expires_in).toBeLessThanOrEqual(3600);
    const headers = { authorization: `Bearer ${done.access_token}`, 'x-ath-agent-id': agent.agentId };
    expect((await call('GET', `${svc.base}/api/goods`, undefined, headers)).status).toBe(200);
    const order = await call('POST', `${svc.base}/api/orders`, { sku: 'coffee-1kg', qty: 1 }, headers);
    expect(order.status).toBe(200);
    expect(order.body).toMatchObject({ user: alice.did });
    // AMB-34: both sides hold the same K.
    const mine = await deriveSessionKey({
      privateKey: eph.privateKey,
      peerPublicJwk: done.key_exchange_params,
      nonceA,
      nonceB: res.nonce,
      handshakeId: res.handshake_id,
    });
    const theirs = [...svc.sessionKeys.values()].find((k) => k.keyId === mine.keyId);
    expect(theirs).toBeDefined();
    const sealed = await encryptWithSessionKey(mine.key, JSON.stringify({ sku: 'mug' }));
    expect(new TextDecoder().decode(await decryptWithSessionKey(theirs!.key, sealed))).toBe('{"sku":"mug"}');
  });

  it('C-265(b): the agent cannot post the confirmation (its credentials are refused; its key is not the user’s)', async () => {
    device.onPush = null;
    const { res } = await toStep5(svc, agent, reg, alice);
    const message = device.received.at(-1)!;
    const asAgent = await signedConfirmation(message, {
      did: alice.did,
      key: agent.privateKey,
      kid: agent.kid,
    });
    const withCreds = await call('POST', message.confirmation_endpoint, asAgent, basic(reg));
    expect(expectError(withCreds, 403, 'USER_DENIED')['details']).toMatchObject({
      reason: 'agent_credentials_not_accepted',
    });
    const withAgentId = await call('POST', message.confirmation_endpoint, asAgent, {
      'x-ath-agent-id': agent.agentId,
    });
    expectError(withAgentId, 403, 'USER_DENIED');
    const plain = await call('POST', message.confirmation_endpoint, asAgent);
    expect(expectError(plain, 403, 'USER_DENIED')['details']).toMatchObject({
      reason: 'invalid_user_signature',
    });
    expect(
      (await call('GET', `${svc.base}/ath/handshake/${res.handshake_id}`, undefined, basic(reg))).body,
    ).toMatchObject({ status: 'pending' });
  });

  it('C-202/C-200: 405 with Allow, unknown handshake paths 404, malformed JSON 400, all ATHError', async () => {
    const get = await call('GET', `${svc.base}/ath/handshake`);
    expectError(get, 405, 'METHOD_NOT_ALLOWED');
    expect(get.headers.get('allow')).toBe('POST');
    expectError(await call('PUT', `${svc.base}/ath/handshake/abc/proof`, {}), 405, 'METHOD_NOT_ALLOWED');
    expectError(await call('GET', `${svc.base}/ath/handshake/abc/nope`), 404, 'NOT_FOUND');
    const bad = await fetch(`${svc.base}/ath/handshake`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: '{"type":',
    });
    expect(bad.status).toBe(400);
    expect(validateATHError(await bad.json()).valid).toBe(true);
    expectError(
      await call('GET', `${svc.base}/ath/handshake/ath_hs_unknown`, undefined, basic(reg)),
      400,
      'SESSION_NOT_FOUND',
    );
    expectError(
      await call('POST', `${svc.base}/ath/handshake/devices`, { public_key: {} }),
      403,
      'USER_DENIED',
    );
  });

  it('C-271: a burst of step-1 requests from one client gets 429 RATE_LIMITED with Retry-After', async () => {
    const limited = await startService({
      agentHostPort: docs.hostPort,
      rateLimit: { limit: 3, windowSeconds: 60 },
    });
    try {
      const a = await docs.add('burst');
      const r = await registerAgent(limited, a);
      const statuses: number[] = [];
      let last: Awaited<ReturnType<typeof call>> | undefined;
      for (let i = 0; i < 6; i++) {
        last = await call('POST', `${limited.base}/ath/handshake`, {
          type: 'handshake_request',
          client_id: r.client_id,
          client_did: a.agentId,
          client_pubkey: a.publicJwk,
          versions: ['0.1'],
          capabilities: ['ES256'],
          nonce: nonce(),
          timestamp: now(),
        });
        statuses.push(last.status);
      }
      expect(statuses.slice(0, 3)).toEqual([201, 201, 201]);
      expect(statuses.slice(3)).toEqual([429, 429, 429]);
      expectError(last!, 429, 'RATE_LIMITED');
      expect(Number(last!.headers.get('retry-after'))).toBeGreaterThan(0);
    } finally {
      await limited.close();
    }
  });

  it('C-270 over HTTP: an ip_whitelist without 127.0.0.1 → 403 ip_restricted; rate_limit 2/second → 429', async () => {
    const restricted = await startService({
      agentHostPort: docs.hostPort,
      push: false,
      restrictions: (user) =>
        user === 'carol' ? { ip_whitelist: ['10.0.0.0/8'] } : { rate_limit: '2/second' },
    });
    try {
      for (const name of ['carol', 'dave']) {
        const a = await docs.add(`r-${name}`);
        const r = await registerAgent(restricted, a);
        const user = await enrolUser(restricted, name);
        const { auth } = await toStep5(restricted, a, r, user);
        expect(auth['confirmation_channel']).toBe('browser');
        // The browser channel: the signed-in user approves on the consent page.
        const url = new URL(auth['authorization_url'] as string);
        const page = await fetch(`${restricted.base}${url.pathname}${url.search}`, {
          headers: { cookie: `user=${name}` },
        });
        expect(page.status).toBe(200);
        const binding = (page.headers.get('set-cookie') ?? '').split(';')[0]!;
        const form = new URLSearchParams({ state: url.searchParams.get('state')!, decision: 'approve' });
        form.append('scope', 'goods:read');
        form.append('scope', 'order:create');
        const consent = await fetch(`${restricted.base}/ath/consent`, {
          method: 'POST',
          headers: {
            'content-type': 'application/x-www-form-urlencoded',
            cookie: `user=${name}; ${binding}`,
            origin: restricted.base,
          },
          body: form.toString(),
        });
        expect(consent.status).toBe(200);
        const eph = await generateEphemeralKeyPair();
        const token = await call('POST', `${restricted.base}/ath/token`, {
          grant_type: 'authorization_code',
          client_id: r.client_id,
          client_secret: r.client_secret,
          agent_attestation: await signAttestation({
            privateKey: a.privateKey,
            kid: a.kid,
            agentId: a.agentId,
            audience: `${restricted.base}/ath/token`,
          }),
          code: auth['request_id'],
          ath_session_id: auth['ath_session_id'],
          key_exchange: { alg: 'ECDH-P256', epk: eph.publicJwk },
        });
        expect(token.status, JSON.stringify(token.body)).toBe(200);
        const headers = {
          authorization: `Bearer ${token.body['access_token'] as string}`,
          'x-ath-agent-id': a.agentId,
        };
        if (name === 'carol') {
          expect(token.body['restrictions']).toEqual({ ip_whitelist: ['10.0.0.0/8'] });
          const denied = await call('GET', `${restricted.base}/api/goods`, undefined, headers);
          expect(expectError(denied, 403, 'SCOPE_NOT_APPROVED')['details']).toMatchObject({
            reason: 'ip_restricted',
          });
        } else {
          const statuses: number[] = [];
          for (let i = 0; i < 5; i++)
            statuses.push((await call('GET', `${restricted.base}/api/goods`, undefined, headers)).status);
          expect(statuses.filter((s) => s === 429).length).toBeGreaterThanOrEqual(2);
          expect(statuses.filter((s) => s === 200).length).toBeLessThanOrEqual(4);
        }
      }
    } finally {
      await restricted.close();
    }
  });
});
