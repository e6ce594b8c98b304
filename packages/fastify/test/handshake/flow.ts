/** Agent- and user-side HTTP steps of the 9-step handshake, shared by the handshake tests. */
import { expect } from 'vitest';
import { CONFIRMATION_TYP, signAttestation, signJson, signPresentation } from '@athkit/core';
import {
  validateATHError,
  type AuthorizationConfirmationRequest,
  type HandshakeResponse,
} from '@athkit/schemas';
import { SignJWT, exportJWK, type CryptoKey } from 'jose';
import type { DocAgent, Service } from './service.js';

export type Json = Record<string, unknown>;
export interface Registration {
  client_id: string;
  client_secret: string;
}
export const now = () => Math.floor(Date.now() / 1000);
export const nonce = () => Buffer.from(crypto.getRandomValues(new Uint8Array(16))).toString('base64url');

export async function call(
  method: string,
  url: string,
  body?: unknown,
  headers: Record<string, string> = {},
) {
  const res = await fetch(url, {
    method,
    headers: { ...(body !== undefined ? { 'content-type': 'application/json' } : {}), ...headers },
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
  });
  const text = await res.text();
  return { status: res.status, headers: res.headers, body: (text ? JSON.parse(text) : null) as Json };
}

export function expectError(res: { status: number; body: Json }, status: number, code: string): Json {
  expect({ status: res.status, body: res.body }).toMatchObject({ status, body: { code } });
  expect(validateATHError(res.body).valid).toBe(true);
  return res.body;
}

export interface User {
  did: string;
  key: CryptoKey;
  kid: string;
}

export async function registerAgent(s: Service, a: DocAgent) {
  const res = await call('POST', `${s.base}/ath/agents/register`, {
    agent_id: a.agentId,
    agent_attestation: await signAttestation({
      privateKey: a.privateKey,
      kid: a.kid,
      agentId: a.agentId,
      audience: s.base,
    }),
    developer: { name: 'Assistant Labs', id: 'assistant-labs' },
    requested_providers: [{ provider_id: 'shop', scopes: ['goods:read', 'order:create'] }],
  });
  expect(res.status, JSON.stringify(res.body)).toBe(201);
  return res.body as { client_id: string; client_secret: string };
}

export async function enrolUser(s: Service, name: string, push?: string): Promise<User> {
  const pair = await crypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, true, [
    'sign',
    'verify',
  ]);
  const res = await call(
    'POST',
    `${s.base}/ath/handshake/devices`,
    { public_key: await exportJWK(pair.publicKey), ...(push ? { push_endpoint: push } : {}) },
    { cookie: `user=${name}` },
  );
  expect(res.status, JSON.stringify(res.body)).toBe(201);
  return { did: res.body['user_did'] as string, key: pair.privateKey, kid: res.body['kid'] as string };
}

export async function credential(s: Service, user: User, a: DocAgent, scope = 'goods:read order:create') {
  const doc = (await call('GET', `${s.base}/.well-known/ath-app.json`)).body;
  return new SignJWT({ scope })
    .setProtectedHeader({ alg: 'ES256', kid: user.kid })
    .setIssuer(user.did)
    .setSubject(a.agentId)
    .setAudience(doc['server_did'] as string)
    .setIssuedAt()
    .setExpirationTime('2h')
    .setJti(nonce())
    .sign(user.key);
}

/** Steps 1-5 over HTTP. */
export async function toStep5(
  s: Service,
  a: DocAgent,
  r: Registration,
  user: User,
  scopes = ['goods:read', 'order:create'],
) {
  const nonceA = nonce();
  const hello = await call('POST', `${s.base}/ath/handshake`, {
    type: 'handshake_request',
    client_id: r.client_id,
    client_did: a.agentId,
    client_pubkey: a.publicJwk,
    versions: ['0.1'],
    capabilities: ['ES256', 'TLS1.3'],
    nonce: nonceA,
    timestamp: now(),
  });
  expect(hello.status, JSON.stringify(hello.body)).toBe(201);
  const res = hello.body as unknown as HandshakeResponse;
  expect(hello.headers.get('location')).toBe(`/ath/handshake/${res.handshake_id}`);
  const proof = await call('POST', `${s.base}/ath/handshake/${res.handshake_id}/proof`, {
    type: 'identity_proof',
    signature: await signAttestation({
      privateKey: a.privateKey,
      kid: a.kid,
      agentId: a.agentId,
      audience: `${s.base}/ath/handshake/${res.handshake_id}`,
      extraClaims: { nonce_a: nonceA, nonce_b: res.nonce, handshake_id: res.handshake_id },
    }),
    timestamp: now(),
  });
  expect(proof.status, JSON.stringify(proof.body)).toBe(200);
  const cred = await credential(s, user, a);
  const auth = await call('POST', `${s.base}/ath/authorize`, {
    client_id: r.client_id,
    agent_attestation: await signAttestation({
      privateKey: a.privateKey,
      kid: a.kid,
      agentId: a.agentId,
      audience: s.base,
    }),
    provider_id: 'shop',
    scopes,
    state: nonce(),
    handshake_id: res.handshake_id,
    ttl: 7200,
    user_authorization: {
      credential: cred,
      signature: await signPresentation({
        privateKey: a.privateKey,
        kid: a.kid,
        clientDid: a.agentId,
        serverDid: res.server_did,
        handshakeId: res.handshake_id,
        credential: cred,
        now: Date.now(),
      }),
    },
  });
  expect(auth.status, JSON.stringify(auth.body)).toBe(200);
  return { res, nonceA, auth: auth.body };
}

export async function signedConfirmation(
  message: AuthorizationConfirmationRequest,
  signer: { did: string; key: CryptoKey; kid: string },
  scopes = message.requested_scopes,
) {
  const iat = now();
  return {
    type: 'authorization_confirmation_response',
    request_id: message.request_id,
    approved: true,
    approved_scopes: scopes,
    signature: await signJson(signer.key, signer.kid, {
      typ: CONFIRMATION_TYP,
      iss: signer.did,
      aud: message.server_did,
      handshake_id: message.handshake_id,
      request_id: message.request_id,
      approved: true,
      approved_scopes: scopes,
      iat,
      exp: iat + 300,
      jti: nonce(),
    }),
    timestamp: iat,
  };
}

export const basic = (r: Registration) => ({
  authorization: `Basic ${Buffer.from(`${r.client_id}:${r.client_secret}`).toString('base64')}`,
});
