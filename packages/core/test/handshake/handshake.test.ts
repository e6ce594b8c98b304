import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { compactVerify, importJWK, exportJWK } from 'jose';
import {
  validateAuthorizationConfirmationRequest,
  validateHandshakeAuthorizationResponse,
  validateHandshakeComplete,
  validateHandshakeResponse,
  validateIdentityResult,
  validateScopeResult,
  type AuthorizationConfirmationRequest,
  type HandshakeComplete,
  type HandshakeResponse,
} from '@athkit/schemas';
import { AthEngine } from '../../src/engine/index.js';
import { MemoryStore } from '../../src/memory-store.js';
import { defaultApprovalPolicy } from '../../src/policy.js';
import { signAttestation, generateAgentKeyPair } from '../../src/attestation/index.js';
import { decryptWithSessionKey, deriveSessionKey, encryptWithSessionKey } from '../../src/handshake/index.js';
import {
  BASE,
  SERVER_DID,
  confirmation,
  createHsHarness,
  credential,
  handshakeRequest,
  nonce,
  proofBody,
  rejection,
  scopeRequest,
  tokenRequest,
  type HsAgent,
  type HsHarness,
  type HsUser,
} from './harness.js';

const te = new TextDecoder();

describe('9-step handshake (checklist section M, Part 4 binding)', () => {
  let h: HsHarness;
  let a1: HsAgent;
  let a2: HsAgent;
  let alice: HsUser;
  let bob: HsUser;

  beforeAll(async () => {
    h = await createHsHarness({ restrictions: {} });
    a1 = await h.agent('a1');
    a2 = await h.agent('a2');
    alice = await h.user('alice');
    bob = await h.user('bob');
  });
  afterAll(() => h.close());

  /** Steps 1-4 for `agent`; returns the step-2 response and nonce A. */
  async function authenticated(agent: HsAgent = a1): Promise<{ res: HandshakeResponse; nonceA: string }> {
    const body = handshakeRequest(agent, h.clock);
    const res = await h.hs.start(body);
    await h.hs.proof(res.handshake_id, await proofBody(agent, res, body['nonce'] as string, h.clock));
    return { res, nonceA: body['nonce'] as string };
  }

  /** Steps 1-6; returns the step-5 answer and the step-6 message. */
  async function awaiting(
    agent: HsAgent = a1,
    user: HsUser = alice,
    opts: { scopes?: string[]; ttl?: number } = {},
  ) {
    const { res, nonceA } = await authenticated(agent);
    const cred = await credential(user, agent.agentId, h.clock);
    const auth = (await h.engine.authorize(
      await scopeRequest(agent, res.handshake_id, cred, h.clock, opts),
    )) as Record<string, unknown>;
    const message = h.pushed.at(-1)!;
    expect(message.handshake_id).toBe(res.handshake_id);
    return { res, nonceA, auth, message, sessionId: auth['ath_session_id'] as string };
  }

  describe('steps 1-2: POST /ath/handshake', () => {
    it('C-250: a missing field or another type is 400 INVALID_REQUEST', async () => {
      for (const field of [
        'type',
        'client_did',
        'client_pubkey',
        'versions',
        'capabilities',
        'nonce',
        'timestamp',
        'client_id',
      ]) {
        const body = handshakeRequest(a1, h.clock);
        delete body[field];
        expect((await rejection(() => h.hs.start(body))).code, field).toBe('INVALID_REQUEST');
      }
      const wrongType = await rejection(() =>
        h.hs.start(handshakeRequest(a1, h.clock, { type: 'identity_proof' })),
      );
      expect(wrongType.code).toBe('INVALID_REQUEST');
      expect(wrongType.status).toBe(400);
    });

    it('C-251: the highest common version is chosen; no common version is 400 unsupported_version', async () => {
      const res = await h.hs.start(handshakeRequest(a1, h.clock, { versions: ['0.1', '0.2'] }));
      expect(res.version).toBe('0.1');
      const err = await rejection(() => h.hs.start(handshakeRequest(a1, h.clock, { versions: ['9.9'] })));
      expect(err.code).toBe('INVALID_REQUEST');
      expect(err.details?.['reason']).toBe('unsupported_version');
    });

    it('C-252: capabilities are negotiated to a subset including ES256; RS1 only is 400', async () => {
      const res = await h.hs.start(
        handshakeRequest(a1, h.clock, { capabilities: ['ES256', 'EdDSA', 'TLS1.3'] }),
      );
      expect(res.capabilities).toContain('ES256');
      expect(res.capabilities.every((c: string) => ['ES256', 'TLS1.3'].includes(c))).toBe(true);
      const err = await rejection(() => h.hs.start(handshakeRequest(a1, h.clock, { capabilities: ['RS1'] })));
      expect(err.code).toBe('INVALID_REQUEST');
      expect(err.details?.['reason']).toBe('unsupported_algorithm');
    });

    it('C-253: step-1 timestamps beyond ±300 s are 400 (Unix seconds)', async () => {
      const now = Math.floor(h.clock.now() / 1000);
      for (const timestamp of [now - 301, now + 301, h.clock.now()]) {
        const err = await rejection(() => h.hs.start(handshakeRequest(a1, h.clock, { timestamp })));
        expect(err.code).toBe('INVALID_REQUEST');
      }
      await expect(h.hs.start(handshakeRequest(a1, h.clock, { timestamp: now - 299 }))).resolves.toBeTruthy();
    });

    it('C-254: a replayed (client_did, nonce) and a nonce under 128 bits are 400', async () => {
      const body = handshakeRequest(a1, h.clock);
      await h.hs.start(body);
      const replay = await rejection(() => h.hs.start({ ...body }));
      expect(replay.code).toBe('INVALID_REQUEST');
      expect(replay.details?.['reason']).toBe('replayed_nonce');
      expect((await rejection(() => h.hs.start(handshakeRequest(a1, h.clock, { nonce: 'abc' })))).code).toBe(
        'INVALID_REQUEST',
      );
      // The same nonce from another agent is that agent's own (did, nonce) pair.
      await expect(h.hs.start(handshakeRequest(a2, h.clock, { nonce: body['nonce'] }))).resolves.toBeTruthy();
    });

    it('C-255/C-256: 201 body with a fresh nonce B and a server JWS over the transcript, verifiable with the published key', async () => {
      const body = handshakeRequest(a1, h.clock);
      const res = await h.hs.start(body);
      expect(
        validateHandshakeResponse(res).valid,
        JSON.stringify(validateHandshakeResponse(res).violations),
      ).toBe(true);
      expect(res.type).toBe('handshake_response');
      expect(res.server_did).toBe(SERVER_DID);
      expect(res.nonce).not.toBe(body['nonce']);
      expect(Buffer.from(res.nonce, 'base64url').length).toBeGreaterThanOrEqual(16);
      expect(Math.abs(res.timestamp - h.clock.now() / 1000)).toBeLessThanOrEqual(5);
      const again = await h.hs.start(handshakeRequest(a1, h.clock));
      expect(again.nonce).not.toBe(res.nonce);
      expect(again.handshake_id).not.toBe(res.handshake_id);

      // C-256: the key in the response is the key ath-app.json publishes (server_jwks).
      const published = h.hs.discovery().server_jwks.keys[0];
      expect(res.server_pubkey).toEqual(published);
      expect(h.hs.discovery().ath_endpoints.handshake).toBe(`${BASE}/ath/handshake`);
      const key = await importJWK({ ...published }, 'ES256');
      const { payload, protectedHeader } = await compactVerify(res.signature, key);
      expect(protectedHeader.alg).toBe('ES256');
      expect(protectedHeader.kid).toBe(published.kid);
      const t = JSON.parse(te.decode(payload)) as Record<string, unknown>;
      expect(t).toMatchObject({
        typ: 'ath-hs-server',
        handshake_id: res.handshake_id,
        client_did: a1.agentId,
        server_did: SERVER_DID,
        nonce_a: body['nonce'],
        nonce_b: res.nonce,
        version: '0.1',
      });
    });

    it('C-257: client_did must be the registered agent_id and client_pubkey its published key', async () => {
      const k2 = await exportJWK((await generateAgentKeyPair()).publicKey);
      const wrongKey = await rejection(() =>
        h.hs.start(handshakeRequest(a1, h.clock, { client_pubkey: k2 })),
      );
      expect(wrongKey.code).toBe('INVALID_ATTESTATION');
      expect(wrongKey.status).toBe(401);
      expect(wrongKey.details?.['reason']).toBe('key_mismatch');
      const a2Key = await rejection(() =>
        h.hs.start(handshakeRequest(a1, h.clock, { client_pubkey: a2.publicJwk })),
      );
      expect(a2Key.code).toBe('INVALID_ATTESTATION');
      const wrongDid = await rejection(() =>
        h.hs.start(handshakeRequest(a1, h.clock, { client_did: a2.agentId })),
      );
      expect(wrongDid.code).toBe('INVALID_ATTESTATION');
      expect(wrongDid.details?.['reason']).toBe('did_mismatch');
      const unknown = await rejection(() =>
        h.hs.start(handshakeRequest(a1, h.clock, { client_id: 'ath_nobody' })),
      );
      expect(unknown.code).toBe('AGENT_NOT_REGISTERED');
      // The published key as PEM is the same key.
      const spki = await crypto.subtle.exportKey(
        'spki',
        await crypto.subtle.importKey(
          'jwk',
          { kty: 'EC', crv: 'P-256', x: a1.publicJwk.x!, y: a1.publicJwk.y! },
          { name: 'ECDSA', namedCurve: 'P-256' },
          true,
          ['verify'],
        ),
      );
      const pem = `-----BEGIN PUBLIC KEY-----\n${Buffer.from(spki).toString('base64')}\n-----END PUBLIC KEY-----`;
      await expect(h.hs.start(handshakeRequest(a1, h.clock, { client_pubkey: pem }))).resolves.toBeTruthy();
    });

    it('C-274: keys weaker than P-256 (P-384/secp192 JWKs, RSA PEM) are refused', async () => {
      const p192 = { ...a1.publicJwk, crv: 'P-192' };
      expect(
        (await rejection(() => h.hs.start(handshakeRequest(a1, h.clock, { client_pubkey: p192 })))).code,
      ).toBe('INVALID_REQUEST');
      const rsa = await crypto.subtle.generateKey(
        {
          name: 'RSASSA-PKCS1-v1_5',
          modulusLength: 1024,
          publicExponent: new Uint8Array([1, 0, 1]),
          hash: 'SHA-256',
        },
        true,
        ['sign', 'verify'],
      );
      const spki = Buffer.from(await crypto.subtle.exportKey('spki', rsa.publicKey)).toString('base64');
      const err = await rejection(() =>
        h.hs.start(
          handshakeRequest(a1, h.clock, {
            client_pubkey: `-----BEGIN PUBLIC KEY-----\n${spki}\n-----END PUBLIC KEY-----`,
          }),
        ),
      );
      expect(err.code).toBe('INVALID_ATTESTATION');
      expect(err.details?.['reason']).toBe('invalid_client_pubkey');
    });
  });

  describe('steps 3-4: POST /ath/handshake/{id}/proof', () => {
    it('C-261: a valid proof answers identity_result with the supported scopes', async () => {
      const body = handshakeRequest(a1, h.clock);
      const res = await h.hs.start(body);
      const result = await h.hs.proof(
        res.handshake_id,
        await proofBody(a1, res, body['nonce'] as string, h.clock),
      );
      expect(validateIdentityResult(result).valid).toBe(true);
      expect(result).toMatchObject({
        type: 'identity_result',
        success: true,
        error: null,
        metadata: {
          scopes_supported: ['goods:read', 'order:create', 'order:cancel'],
          token_max_ttl: 3600,
          require_user_confirmation: true,
        },
      });
    });

    it('C-258: a proof by another key, over nonce A, or for another handshake is 401 identity_result; the handshake is terminated', async () => {
      const other = await generateAgentKeyPair();
      const cases: ((res: HandshakeResponse, nA: string) => Promise<Record<string, unknown>>)[] = [
        (res, nA) => proofBody(a1, res, nA, h.clock, { key: other.privateKey }),
        (res, nA) => proofBody(a1, res, nA, h.clock, { claims: { nonce_b: nA } }),
        (res, nA) => proofBody(a1, res, nA, h.clock, { claims: { handshake_id: 'ath_hs_other' } }),
        (res, nA) => proofBody(a1, res, nA, h.clock, { aud: `${BASE}/ath/handshake/ath_hs_other` }),
      ];
      for (const make of cases) {
        const body = handshakeRequest(a1, h.clock);
        const res = await h.hs.start(body);
        const err = await rejection(async () =>
          h.hs.proof(res.handshake_id, await make(res, body['nonce'] as string)),
        );
        expect(err.code).toBe('INVALID_ATTESTATION');
        expect(err.status).toBe(401);
        expect(err.details).toMatchObject({ type: 'identity_result', success: false });
        // Terminated: a correct proof now, or any later step, finds no handshake.
        const retry = await rejection(async () =>
          h.hs.proof(res.handshake_id, await proofBody(a1, res, body['nonce'] as string, h.clock)),
        );
        expect(retry.code).toBe('SESSION_NOT_FOUND');
        const cred = await credential(alice, a1.agentId, h.clock);
        expect(
          (
            await rejection(async () =>
              h.engine.authorize(await scopeRequest(a1, res.handshake_id, cred, h.clock)),
            )
          ).code,
        ).toBe('SESSION_NOT_FOUND');
      }
    });

    it('C-253: a proof whose timestamp or iat is beyond ±300 s is 401', async () => {
      const body = handshakeRequest(a1, h.clock);
      const res = await h.hs.start(body);
      const err = await rejection(async () =>
        h.hs.proof(
          res.handshake_id,
          await proofBody(a1, res, body['nonce'] as string, h.clock, {
            timestamp: Math.floor(h.clock.now() / 1000) - 301,
          }),
        ),
      );
      expect(err.code).toBe('INVALID_ATTESTATION');
    });

    it('C-259: a second proof, a scope request before the proof and an unknown id are 400 SESSION_NOT_FOUND', async () => {
      const body = handshakeRequest(a1, h.clock);
      const res = await h.hs.start(body);
      const cred = await credential(alice, a1.agentId, h.clock);
      expect(
        (
          await rejection(async () =>
            h.engine.authorize(await scopeRequest(a1, res.handshake_id, cred, h.clock)),
          )
        ).code,
      ).toBe('SESSION_NOT_FOUND');
      await h.hs.proof(res.handshake_id, await proofBody(a1, res, body['nonce'] as string, h.clock));
      const twice = await rejection(async () =>
        h.hs.proof(res.handshake_id, await proofBody(a1, res, body['nonce'] as string, h.clock)),
      );
      expect(twice.code).toBe('SESSION_NOT_FOUND');
      expect(
        (await rejection(async () => h.hs.proof('ath_hs_unknown', await proofBody(a1, res, 'x', h.clock))))
          .code,
      ).toBe('SESSION_NOT_FOUND');
    });

    it('C-260: the proof 301 s after step 1 is 400 SESSION_EXPIRED (ManualClock)', async () => {
      const body = handshakeRequest(a1, h.clock);
      const res = await h.hs.start(body);
      h.clock.advance(301_000);
      try {
        const err = await rejection(async () =>
          h.hs.proof(res.handshake_id, await proofBody(a1, res, body['nonce'] as string, h.clock)),
        );
        expect(err.code).toBe('SESSION_EXPIRED');
        expect(err.status).toBe(400);
      } finally {
        h.clock.advance(-301_000);
      }
    });
  });

  describe('step 5: POST /ath/authorize with handshake_id', () => {
    it('answers authorization_url + ath_session_id + request_id and sends the step-6 request to the user (C-264)', async () => {
      const { auth, message, res } = await awaiting();
      expect(validateHandshakeAuthorizationResponse(auth).valid).toBe(true);
      expect(auth['handshake_id']).toBe(res.handshake_id);
      expect(validateAuthorizationConfirmationRequest(message).valid).toBe(true);
      expect(message).toMatchObject({
        type: 'authorization_confirmation_request',
        request_id: auth['request_id'],
        client_did: a1.agentId,
        client_info: { name: 'Agent a1', developer: { name: 'Assistant Labs', id: 'labs' } },
        requested_scopes: ['goods:read', 'order:create'],
      });
      expect(message.expires_at).toBeGreaterThan(message.timestamp);
      // The step-6 message is signed by the server key.
      const key = await importJWK({ ...h.hs.discovery().server_jwks.keys[0] }, 'ES256');
      await expect(compactVerify(message.signature, key)).resolves.toBeTruthy();
      // Nothing the agent receives lets it produce the user's approval: no signature, no user key.
      expect(JSON.stringify(auth)).not.toContain(message.signature);
    });

    it('C-262(a): a scope outside the supported / approved set is 403 SCOPE_NOT_APPROVED', async () => {
      const { res } = await authenticated();
      const cred = await credential(alice, a1.agentId, h.clock, { scope: 'goods:read order:cancel' });
      const err = await rejection(async () =>
        h.engine.authorize(
          await scopeRequest(a1, res.handshake_id, cred, h.clock, { scopes: ['goods:read', 'order:cancel'] }),
        ),
      );
      expect(err.code).toBe('SCOPE_NOT_APPROVED');
      const unknown = await rejection(async () =>
        h.engine.authorize(
          await scopeRequest(a1, res.handshake_id, cred, h.clock, { scopes: ['wallet:drain'] }),
        ),
      );
      expect(unknown.code).toBe('SCOPE_NOT_APPROVED');
    });

    it('C-262(b)/(c): bad user signature, expired, other client, wider scope, bad agent presentation → 403 USER_DENIED with reason', async () => {
      const stranger = await generateAgentKeyPair();
      const cases: [string, (hsId: string) => Promise<Record<string, unknown>>][] = [
        [
          'invalid_credential_signature',
          async (id) =>
            scopeRequest(
              a1,
              id,
              await credential(alice, a1.agentId, h.clock, { key: stranger.privateKey }),
              h.clock,
            ),
        ],
        [
          'credential_expired',
          async (id) =>
            scopeRequest(
              a1,
              id,
              await credential(alice, a1.agentId, h.clock, { exp: Math.floor(h.clock.now() / 1000) - 10 }),
              h.clock,
            ),
        ],
        [
          'credential_other_client',
          async (id) => scopeRequest(a1, id, await credential(alice, a2.agentId, h.clock), h.clock),
        ],
        [
          'credential_other_audience',
          async (id) =>
            scopeRequest(
              a1,
              id,
              await credential(alice, a1.agentId, h.clock, { aud: 'did:web:evil.test' }),
              h.clock,
            ),
        ],
        [
          'scope_not_preauthorized',
          async (id) =>
            scopeRequest(
              a1,
              id,
              await credential(alice, a1.agentId, h.clock, { scope: 'goods:read' }),
              h.clock,
            ),
        ],
        [
          'invalid_presentation_signature',
          async (id) =>
            scopeRequest(a1, id, await credential(alice, a1.agentId, h.clock), h.clock, {
              presentationKey: stranger.privateKey,
            }),
        ],
        [
          'invalid_presentation_signature',
          async (id) =>
            scopeRequest(a1, id, await credential(alice, a1.agentId, h.clock), h.clock, {
              presentationHandshake: 'ath_hs_other',
            }),
        ],
      ];
      for (const [reason, make] of cases) {
        const { res } = await authenticated();
        const err = await rejection(async () => h.engine.authorize(await make(res.handshake_id)));
        expect(err.code, reason).toBe('USER_DENIED');
        expect(err.status).toBe(403);
        expect(err.details?.['reason']).toBe(reason);
      }
    });

    it('the handshake of another client is refused (AGENT_IDENTITY_MISMATCH)', async () => {
      const { res } = await authenticated(a2);
      const cred = await credential(alice, a1.agentId, h.clock);
      expect(
        (
          await rejection(async () =>
            h.engine.authorize(await scopeRequest(a1, res.handshake_id, cred, h.clock)),
          )
        ).code,
      ).toBe('AGENT_IDENTITY_MISMATCH');
    });
  });

  describe('steps 7-9', () => {
    it('seed 000 end to end: approve, scope_result, handshake_complete; both sides derive the same key (C-266, C-267b, C-263)', async () => {
      const { res, nonceA, message, sessionId } = await awaiting();
      // Step 8 while pending.
      expect(
        await h.hs.status(res.handshake_id, {
          clientId: a1.reg.client_id,
          clientSecret: a1.reg.client_secret,
        }),
      ).toMatchObject({ status: 'pending' });
      // C-267(a): token before the decision is 400 SESSION_NOT_FOUND.
      expect(
        (
          await rejection(async () =>
            h.engine.exchangeToken((await tokenRequest(a1, sessionId, h.clock)).body),
          )
        ).code,
      ).toBe('SESSION_NOT_FOUND');
      // Step 7.
      await h.hs.confirm(
        res.handshake_id,
        await confirmation(message, { did: alice.did, key: alice.privateKey, kid: alice.kid }, h.clock, {
          approved: true,
        }),
      );
      const result = await h.hs.status(res.handshake_id, {
        clientId: a1.reg.client_id,
        clientSecret: a1.reg.client_secret,
      });
      expect(validateScopeResult(result).valid, JSON.stringify(result)).toBe(true);
      expect(result).toMatchObject({
        type: 'scope_result',
        scopes_granted: ['goods:read', 'order:create'],
        scopes_denied: [],
        ttl_granted: 3600,
        restrictions: {},
      });
      // Step 9.
      const { eph, body } = await tokenRequest(a1, sessionId, h.clock);
      const done = (await h.engine.exchangeToken(body)) as HandshakeComplete;
      expect(
        validateHandshakeComplete(done).valid,
        JSON.stringify(validateHandshakeComplete(done).violations),
      ).toBe(true);
      expect(done).toMatchObject({
        type: 'handshake_complete',
        key_exchange_alg: 'ECDH-P256',
        cipher_suite: 'AES-256-GCM',
        ttl_granted: 3600,
      });
      expect(done.expires_in).toBeLessThanOrEqual(3600); // C-263: 7200 requested, clamped
      expect(done.effective_scopes).toEqual(['goods:read', 'order:create']);
      const clientKey = await deriveSessionKey({
        privateKey: eph.privateKey,
        peerPublicJwk: done.key_exchange_params,
        nonceA,
        nonceB: res.nonce,
        handshakeId: res.handshake_id,
      });
      const serverKey = h.sessionKeys.find((k) => k.handshakeId === res.handshake_id)!;
      expect(clientKey.keyId).toBe(serverKey.keyId);
      const sealed = await encryptWithSessionKey(
        clientKey.key,
        '{"item":"coffee","qty":2}',
        'POST /api/orders',
      );
      expect(te.decode(await decryptWithSessionKey(serverKey.key, sealed, 'POST /api/orders'))).toBe(
        '{"item":"coffee","qty":2}',
      );
      await expect(decryptWithSessionKey(serverKey.key, sealed, 'POST /api/other')).rejects.toThrow();
      // C-269: the token works (C-167 headers) and revocation works on it.
      const grant = await h.engine.validateAccess({
        authorization: `Bearer ${done.access_token}`,
        agentIdHeader: a1.agentId,
        providerId: 'shop',
        requiredScope: 'order:create',
      });
      expect(grant.scopes).toEqual(['goods:read', 'order:create']);
      await h.engine.revoke({
        client_id: a1.reg.client_id,
        client_secret: a1.reg.client_secret,
        token: done.access_token,
      });
      expect(
        (
          await rejection(() =>
            h.engine.validateAccess({
              authorization: `Bearer ${done.access_token}`,
              agentIdHeader: a1.agentId,
              providerId: 'shop',
              requiredScope: 'goods:read',
            }),
          )
        ).code,
      ).toBe('TOKEN_REVOKED');
      // Step 8 after completion still reads the result; the session is single use.
      expect(
        await h.hs.status(res.handshake_id, {
          clientId: a1.reg.client_id,
          clientSecret: a1.reg.client_secret,
        }),
      ).toMatchObject({ type: 'scope_result' });
      expect(
        (
          await rejection(async () =>
            h.engine.exchangeToken((await tokenRequest(a1, sessionId, h.clock)).body),
          )
        ).code,
      ).toBe('SESSION_NOT_FOUND');
    });

    it('C-265(c)/C-266: the user approves a subset: granted ⊆ approved, the rest denied as user_declined', async () => {
      const { res, message, sessionId } = await awaiting();
      await h.hs.confirm(
        res.handshake_id,
        await confirmation(message, { did: alice.did, key: alice.privateKey, kid: alice.kid }, h.clock, {
          approved: true,
          scopes: ['goods:read'],
        }),
      );
      const result = await h.hs.status(res.handshake_id, {
        clientId: a1.reg.client_id,
        clientSecret: a1.reg.client_secret,
      });
      expect(result).toMatchObject({
        scopes_granted: ['goods:read'],
        scopes_denied: [{ scope: 'order:create', reason: 'user_declined' }],
      });
      const done = (await h.engine.exchangeToken(
        (await tokenRequest(a1, sessionId, h.clock)).body,
      )) as HandshakeComplete;
      expect(done.effective_scopes).toEqual(['goods:read']);
    });

    it('C-265(d): the user denies: steps 8 and 9 are 403 USER_DENIED', async () => {
      const { res, message, sessionId } = await awaiting();
      await h.hs.confirm(
        res.handshake_id,
        await confirmation(message, { did: alice.did, key: alice.privateKey, kid: alice.kid }, h.clock, {
          approved: false,
        }),
      );
      const s8 = await rejection(() =>
        h.hs.status(res.handshake_id, { clientId: a1.reg.client_id, clientSecret: a1.reg.client_secret }),
      );
      expect(s8.code).toBe('USER_DENIED');
      const s9 = await rejection(async () =>
        h.engine.exchangeToken((await tokenRequest(a1, sessionId, h.clock)).body),
      );
      expect(s9.code).toBe('USER_DENIED');
    });

    it('C-265(a)/(b): an approval signed by another user, or by the agent, is rejected and the request stays pending', async () => {
      const { res, message } = await awaiting();
      const forgedByBob = await confirmation(
        message,
        { did: alice.did, key: bob.privateKey, kid: alice.kid },
        h.clock,
        { approved: true },
      );
      const forgedByAgent = await confirmation(
        message,
        { did: alice.did, key: a1.privateKey, kid: a1.kid },
        h.clock,
        { approved: true },
      );
      const agentAsIssuer = await confirmation(
        message,
        { did: a1.agentId, key: a1.privateKey, kid: a1.kid },
        h.clock,
        { approved: true },
      );
      for (const body of [forgedByBob, forgedByAgent, agentAsIssuer]) {
        const err = await rejection(() => h.hs.confirm(res.handshake_id, body));
        expect(err.code).toBe('USER_DENIED');
        expect(err.details?.['reason']).toBe('invalid_user_signature');
      }
      // A real signature over different content than the body is refused too.
      const signed = await confirmation(
        message,
        { did: alice.did, key: alice.privateKey, kid: alice.kid },
        h.clock,
        { approved: true, scopes: ['goods:read'] },
      );
      const tampered = { ...signed, approved_scopes: ['goods:read', 'order:create'] };
      expect((await rejection(() => h.hs.confirm(res.handshake_id, tampered))).details?.['reason']).toBe(
        'confirmation_mismatch',
      );
      expect(
        await h.hs.status(res.handshake_id, {
          clientId: a1.reg.client_id,
          clientSecret: a1.reg.client_secret,
        }),
      ).toMatchObject({ status: 'pending' });
      // Then the real user decides once; a replay of the decision is refused.
      const good = await confirmation(
        message,
        { did: alice.did, key: alice.privateKey, kid: alice.kid },
        h.clock,
        { approved: true },
      );
      await h.hs.confirm(res.handshake_id, good);
      expect((await rejection(() => h.hs.confirm(res.handshake_id, good))).code).toBe('USER_DENIED');
    });

    it('C-266: step 8 needs the client credentials of the handshake owner', async () => {
      const { res } = await awaiting();
      expect(
        (
          await rejection(() =>
            h.hs.status(res.handshake_id, { clientId: a1.reg.client_id, clientSecret: 'wrong' }),
          )
        ).code,
      ).toBe('AGENT_NOT_REGISTERED');
      expect(
        (
          await rejection(() =>
            h.hs.status(res.handshake_id, { clientId: a2.reg.client_id, clientSecret: a2.reg.client_secret }),
          )
        ).code,
      ).toBe('AGENT_IDENTITY_MISMATCH');
      expect(
        (
          await rejection(() =>
            h.hs.status('ath_hs_nope', { clientId: a1.reg.client_id, clientSecret: a1.reg.client_secret }),
          )
        ).code,
      ).toBe('SESSION_NOT_FOUND');
    });

    it('C-268: two handshakes give different server keys and session keys; a reused epk is refused', async () => {
      const keys: string[] = [];
      const serverEpks: string[] = [];
      let firstEpk: Record<string, unknown> | undefined;
      for (let i = 0; i < 2; i++) {
        const { res, message, sessionId } = await awaiting();
        await h.hs.confirm(
          res.handshake_id,
          await confirmation(message, { did: alice.did, key: alice.privateKey, kid: alice.kid }, h.clock, {
            approved: true,
          }),
        );
        const req = await tokenRequest(a1, sessionId, h.clock);
        if (i === 0) firstEpk = req.body['key_exchange'] as Record<string, unknown>;
        else {
          const reuse = { ...req.body, key_exchange: firstEpk };
          const err = await rejection(() => h.engine.exchangeToken(reuse));
          expect(err.code).toBe('INVALID_REQUEST');
          expect(err.details?.['reason']).toBe('epk_reused');
          req.body['agent_attestation'] = await signAttestation({
            privateKey: a1.privateKey,
            kid: a1.kid,
            agentId: a1.agentId,
            audience: `${BASE}/ath/token`,
            clock: h.clock,
          });
        }
        const done = (await h.engine.exchangeToken(req.body)) as HandshakeComplete;
        serverEpks.push(JSON.stringify(done.key_exchange_params));
        keys.push(h.sessionKeys.find((k) => k.handshakeId === res.handshake_id)!.keyId);
      }
      expect(new Set(serverEpks).size).toBe(2);
      expect(new Set(keys).size).toBe(2);
    });

    it('C-267: a handshake session cannot be exchanged without key_exchange, nor with an invalid epk', async () => {
      const { res, message, sessionId } = await awaiting();
      await h.hs.confirm(
        res.handshake_id,
        await confirmation(message, { did: alice.did, key: alice.privateKey, kid: alice.kid }, h.clock, {
          approved: true,
        }),
      );
      const { body } = await tokenRequest(a1, sessionId, h.clock);
      delete body['key_exchange'];
      expect((await rejection(() => h.engine.exchangeToken(body))).code).toBe('INVALID_REQUEST');
      const bad = await tokenRequest(a1, sessionId, h.clock, {
        kty: 'EC',
        crv: 'P-256',
        x: 'A'.repeat(43),
        y: 'A'.repeat(43),
      });
      expect((await rejection(() => h.engine.exchangeToken(bad.body))).details?.['reason']).toBe(
        'invalid_epk',
      );
      expect((await h.store.getSession(sessionId))!.status).toBe('consented');
    });
  });

  it('C-264: the browser channel: the consent page decides; the user must be the one who pre-authorized', async () => {
    const { res, sessionId } = await awaiting(a1, alice);
    const session = (await h.store.getSession(sessionId))!;
    await h.engine.completeConsent(session, {
      kind: 'granted',
      userId: bob.did,
      consentedScopes: ['goods:read', 'order:create'],
    });
    const err = await rejection(() =>
      h.hs.status(res.handshake_id, { clientId: a1.reg.client_id, clientSecret: a1.reg.client_secret }),
    );
    expect(err.code).toBe('USER_DENIED');
    expect(err.details?.['reason']).toBe('user_mismatch');
  });
});

describe('C-270: restrictions returned are enforced (AMB-35)', () => {
  let h: HsHarness;
  let a1: HsAgent;
  let alice: HsUser;
  beforeAll(async () => {
    h = await createHsHarness({
      restrictions: { ip_whitelist: ['10.1.0.0/16', '2001:db8::/32'], rate_limit: '2/second' },
    });
    a1 = await h.agent('r1');
    alice = await h.user('alice');
  });
  afterAll(() => h.close());

  it('ip_whitelist → 403 SCOPE_NOT_APPROVED ip_restricted; rate_limit 2/second → 429 RATE_LIMITED', async () => {
    const body = handshakeRequest(a1, h.clock);
    const res = await h.hs.start(body);
    await h.hs.proof(res.handshake_id, await proofBody(a1, res, body['nonce'] as string, h.clock));
    const auth = (await h.engine.authorize(
      await scopeRequest(a1, res.handshake_id, await credential(alice, a1.agentId, h.clock), h.clock),
    )) as Record<string, unknown>;
    const message = h.pushed.at(-1) as AuthorizationConfirmationRequest;
    await h.hs.confirm(
      res.handshake_id,
      await confirmation(message, { did: alice.did, key: alice.privateKey, kid: alice.kid }, h.clock, {
        approved: true,
      }),
    );
    const result = await h.hs.status(res.handshake_id, {
      clientId: a1.reg.client_id,
      clientSecret: a1.reg.client_secret,
    });
    expect(result).toMatchObject({
      restrictions: { ip_whitelist: ['10.1.0.0/16', '2001:db8::/32'], rate_limit: '2/second' },
    });
    const done = (await h.engine.exchangeToken(
      (await tokenRequest(a1, auth['ath_session_id'] as string, h.clock)).body,
    )) as HandshakeComplete;
    const call = (clientIp?: string) =>
      h.engine.validateAccess({
        authorization: `Bearer ${done.access_token}`,
        agentIdHeader: a1.agentId,
        providerId: 'shop',
        requiredScope: 'goods:read',
        ...(clientIp ? { clientIp } : {}),
      });
    const outside = await rejection(() => call('127.0.0.1'));
    expect(outside.code).toBe('SCOPE_NOT_APPROVED');
    expect(outside.details?.['reason']).toBe('ip_restricted');
    h.clock.advance(1000);
    await call('10.1.2.3');
    await call('2001:db8::7');
    const third = await rejection(() => call('10.1.2.3'));
    expect(third.code).toBe('RATE_LIMITED');
    expect(third.status).toBe(429);
    h.clock.advance(1000);
    // Without a client address the adapter is handed the allow-list to check.
    const grant = await call();
    expect(grant.ipAllowList).toEqual(['10.1.0.0/16', '2001:db8::/32']);
    expect(() => h.hs.checkClientIp(grant.ipAllowList!, '192.0.2.1')).toThrow(
      expect.objectContaining({ code: 'SCOPE_NOT_APPROVED' }) as Error,
    );
  });
});

describe('engine without the handshake (unchanged behaviour)', () => {
  it('a handshake_id in an authorize body is ignored when the extension is off', async () => {
    const h = await createHsHarness();
    try {
      const a = await h.agent('plain');
      const engine = new AthEngine({
        store: new MemoryStore(),
        baseUrl: BASE,
        providers: [{ provider_id: 'shop', display_name: 'Shop', available_scopes: ['goods:read'] }],
        policy: defaultApprovalPolicy({ autoApprove: true }),
        identity: { allowInsecure: [new URL(a.agentId).host] },
        clock: h.clock,
      });
      const reg = await engine.register({
        agent_id: a.agentId,
        agent_attestation: await signAttestation({
          privateKey: a.privateKey,
          kid: a.kid,
          agentId: a.agentId,
          audience: BASE,
          clock: h.clock,
        }),
        developer: { name: 'x', id: 'x' },
        requested_providers: [{ provider_id: 'shop', scopes: ['goods:read'] }],
      });
      const res = await engine.authorize({
        client_id: reg.client_id,
        agent_attestation: await signAttestation({
          privateKey: a.privateKey,
          kid: a.kid,
          agentId: a.agentId,
          audience: BASE,
          clock: h.clock,
        }),
        provider_id: 'shop',
        scopes: ['goods:read'],
        state: nonce(),
        handshake_id: 'ath_hs_whatever',
      });
      expect(Object.keys(res).sort()).toEqual(['ath_session_id', 'authorization_url']);
      expect(engine.handshake).toBeNull();
    } finally {
      await h.close();
    }
  });
});
