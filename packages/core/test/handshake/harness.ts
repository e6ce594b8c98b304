/**
 * A self-contained 9-step harness: an engine for one native app ("shop", seed 000's scopes), a real
 * agent-document server on 127.0.0.1, agents, a user with an enrolled device key, and the agent- and
 * user-side message builders. Every decision under test is the engine's.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { SignJWT, exportJWK, type CryptoKey, type JWK } from 'jose';
import type { AgentRegistrationResponse, HandshakeResponse } from '@athkit/schemas';
import { ManualClock } from '../../src/clock.js';
import { AthEngine, type AthEngineOptions } from '../../src/engine/index.js';
import { MemoryStore } from '../../src/memory-store.js';
import { defaultApprovalPolicy } from '../../src/policy.js';
import { exportPublicJwk, generateAgentKeyPair, signAttestation } from '../../src/attestation/index.js';
import {
  CONFIRMATION_TYP,
  MemoryUserDirectory,
  generateEphemeralKeyPair,
  signJson,
  signPresentation,
  type HandshakeOptions,
  type HandshakeService,
} from '../../src/handshake/index.js';
import { base64url } from '../../src/random.js';
import type { AuthorizationConfirmationRequest } from '@athkit/schemas';

export const BASE = 'https://shop.test';
export const SERVER_DID = 'did:web:shop.test';
export const T0 = Date.UTC(2026, 10, 22, 12, 0, 0);
export const SCOPES = ['goods:read', 'order:create', 'order:cancel'];

export interface HsAgent {
  agentId: string;
  privateKey: CryptoKey;
  publicJwk: JWK;
  kid: string;
  reg: AgentRegistrationResponse;
}

export interface HsUser {
  did: string;
  privateKey: CryptoKey;
  kid: string;
}

export const nonce = (): string => base64url(crypto.getRandomValues(new Uint8Array(16)));

class DocServer {
  readonly docs = new Map<string, unknown>();
  private server!: Server;
  origin = '';
  async start(): Promise<this> {
    this.server = createServer((req, res) => {
      const doc = this.docs.get(req.url ?? '');
      if (doc === undefined) res.writeHead(404).end();
      else res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(doc));
    });
    await new Promise<void>((r) => this.server.listen(0, '127.0.0.1', r));
    this.origin = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
    return this;
  }
  stop(): Promise<void> {
    return new Promise((r) => this.server.close(() => r()));
  }
}

export interface HsHarness {
  engine: AthEngine;
  hs: HandshakeService;
  store: MemoryStore;
  clock: ManualClock;
  users: MemoryUserDirectory;
  pushed: AuthorizationConfirmationRequest[];
  sessionKeys: { handshakeId: string; keyId: string; key: CryptoKey }[];
  agent(name: string): Promise<HsAgent>;
  user(name: string): Promise<HsUser>;
  close(): Promise<void>;
}

export async function createHsHarness(
  options: Partial<HandshakeOptions> = {},
  engineOptions: Partial<AthEngineOptions> = {},
): Promise<HsHarness> {
  const docs = await new DocServer().start();
  const clock = new ManualClock(T0);
  const store = new MemoryStore();
  const users = new MemoryUserDirectory();
  const pushed: AuthorizationConfirmationRequest[] = [];
  const sessionKeys: HsHarness['sessionKeys'] = [];
  const engine = new AthEngine({
    store,
    baseUrl: BASE,
    providers: [{ provider_id: 'shop', display_name: 'Shop', available_scopes: SCOPES }],
    policy: defaultApprovalPolicy({ autoApprove: ['goods:read', 'order:create'], deny: ['order:cancel'] }),
    identity: { allowInsecure: [docs.origin.slice('http://'.length)] },
    clock,
    ...engineOptions,
  });
  const hs = await engine.enableHandshake({
    users,
    channels: [],
    onConfirmationRequest: (m) => pushed.push(m),
    onSessionKey: (i) =>
      sessionKeys.push({ handshakeId: i.handshakeId, keyId: i.sessionKey.keyId, key: i.sessionKey.key }),
    ...options,
  });
  let n = 0;
  return {
    engine,
    hs,
    store,
    clock,
    users,
    pushed,
    sessionKeys,
    async agent(name) {
      const { privateKey, publicKey } = await generateAgentKeyPair();
      const kid = `${name}-k1`;
      const path = `/${name}-${n++}/.well-known/agent.json`;
      const agentId = `${docs.origin}${path}`;
      const publicJwk = await exportPublicJwk(publicKey, kid);
      docs.docs.set(path, {
        ath_version: '0.1',
        agent_id: agentId,
        name: `Agent ${name}`,
        developer: { name: 'Assistant Labs', id: 'labs' },
        public_key: publicJwk,
      });
      const reg = await engine.register({
        agent_id: agentId,
        agent_attestation: await signAttestation({ privateKey, kid, agentId, audience: BASE, clock }),
        developer: { name: 'Assistant Labs', id: 'labs' },
        requested_providers: [{ provider_id: 'shop', scopes: SCOPES }],
        purpose: 'shopping',
      });
      return { agentId, privateKey, publicJwk, kid, reg };
    },
    async user(name) {
      const pair = await crypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, true, [
        'sign',
        'verify',
      ]);
      const did = `user:${name}`;
      const { kid } = await users.enrol(did, { publicKey: await exportJWK(pair.publicKey) });
      return { did, privateKey: pair.privateKey, kid };
    },
    async close() {
      await docs.stop();
    },
  };
}

/** Step 1 body. */
export function handshakeRequest(
  agent: HsAgent,
  clock: ManualClock,
  overrides: Record<string, unknown> = {},
): Record<string, unknown> {
  return {
    type: 'handshake_request',
    client_id: agent.reg.client_id,
    client_did: agent.agentId,
    client_pubkey: agent.publicJwk,
    versions: ['0.1'],
    capabilities: ['ES256', 'TLS1.3'],
    nonce: nonce(),
    timestamp: Math.floor(clock.now() / 1000),
    ...overrides,
  };
}

/** Step 3 body: an attestation with the handshake claims, aud = the handshake URL. */
export async function proofBody(
  agent: HsAgent,
  res: HandshakeResponse,
  nonceA: string,
  clock: ManualClock,
  overrides: { key?: CryptoKey; claims?: Record<string, unknown>; aud?: string; timestamp?: number } = {},
): Promise<Record<string, unknown>> {
  const signature = await signAttestation({
    privateKey: overrides.key ?? agent.privateKey,
    kid: agent.kid,
    agentId: agent.agentId,
    audience: overrides.aud ?? `${BASE}/ath/handshake/${res.handshake_id}`,
    clock,
    extraClaims: { nonce_a: nonceA, nonce_b: res.nonce, handshake_id: res.handshake_id, ...overrides.claims },
  });
  return {
    type: 'identity_proof',
    signature,
    credentials: [],
    timestamp: overrides.timestamp ?? Math.floor(clock.now() / 1000),
  };
}

/** Step 0: the user's pre-authorization credential. */
export async function credential(
  user: HsUser,
  clientDid: string,
  clock: ManualClock,
  overrides: { key?: CryptoKey; scope?: string; exp?: number; aud?: string; sub?: string } = {},
): Promise<string> {
  const iat = Math.floor(clock.now() / 1000);
  return new SignJWT({ scope: overrides.scope ?? 'goods:read order:create' })
    .setProtectedHeader({ alg: 'ES256', kid: user.kid, typ: 'JWT' })
    .setIssuer(user.did)
    .setSubject(overrides.sub ?? clientDid)
    .setAudience(overrides.aud ?? SERVER_DID)
    .setIssuedAt(iat)
    .setExpirationTime(overrides.exp ?? iat + 7200)
    .setJti(nonce())
    .sign(overrides.key ?? user.privateKey);
}

/** Step 5 body (POST /ath/authorize extended). */
export async function scopeRequest(
  agent: HsAgent,
  handshakeId: string,
  cred: string,
  clock: ManualClock,
  overrides: {
    scopes?: string[];
    ttl?: number;
    presentationKey?: CryptoKey;
    presentationHandshake?: string;
  } = {},
): Promise<Record<string, unknown>> {
  return {
    client_id: agent.reg.client_id,
    agent_attestation: await signAttestation({
      privateKey: agent.privateKey,
      kid: agent.kid,
      agentId: agent.agentId,
      audience: BASE,
      clock,
    }),
    provider_id: 'shop',
    scopes: overrides.scopes ?? ['goods:read', 'order:create'],
    state: nonce(),
    handshake_id: handshakeId,
    ttl: overrides.ttl ?? 7200,
    user_authorization: {
      credential: cred,
      signature: await signPresentation({
        privateKey: overrides.presentationKey ?? agent.privateKey,
        kid: agent.kid,
        clientDid: agent.agentId,
        serverDid: SERVER_DID,
        handshakeId: overrides.presentationHandshake ?? handshakeId,
        credential: cred,
        now: clock.now(),
      }),
    },
    context: { purpose: 'weekly groceries' },
  };
}

/** Step 7 body, signed with `key` (the user's, or an attacker's). */
export async function confirmation(
  request: AuthorizationConfirmationRequest,
  signer: { did: string; key: CryptoKey; kid?: string },
  clock: ManualClock,
  decision: { approved: boolean; scopes?: string[] },
): Promise<Record<string, unknown>> {
  const iat = Math.floor(clock.now() / 1000);
  const approved_scopes = decision.approved ? (decision.scopes ?? request.requested_scopes) : [];
  const payload = {
    typ: CONFIRMATION_TYP,
    iss: signer.did,
    aud: request.server_did,
    handshake_id: request.handshake_id,
    request_id: request.request_id,
    approved: decision.approved,
    approved_scopes,
    iat,
    exp: iat + 300,
    jti: nonce(),
  };
  return {
    type: 'authorization_confirmation_response',
    request_id: request.request_id,
    approved: decision.approved,
    approved_scopes,
    signature: await signJson(signer.key, signer.kid, payload),
    timestamp: iat,
  };
}

/** Step 9 body with a fresh ephemeral key (returned for the client-side derivation). */
export async function tokenRequest(agent: HsAgent, sessionId: string, clock: ManualClock, epk?: JWK) {
  const eph = await generateEphemeralKeyPair();
  return {
    eph,
    body: {
      grant_type: 'authorization_code',
      client_id: agent.reg.client_id,
      client_secret: agent.reg.client_secret,
      agent_attestation: await signAttestation({
        privateKey: agent.privateKey,
        kid: agent.kid,
        agentId: agent.agentId,
        audience: `${BASE}/ath/token`,
        clock,
      }),
      code: 'handshake',
      ath_session_id: sessionId,
      key_exchange: { alg: 'ECDH-P256', epk: epk ?? eph.publicJwk },
    } as Record<string, unknown>,
  };
}

export async function rejection(
  fn: () => Promise<unknown>,
): Promise<{ code: string; status: number; details?: Record<string, unknown> }> {
  try {
    await fn();
  } catch (err) {
    return err as { code: string; status: number; details?: Record<string, unknown> };
  }
  throw new Error('expected a rejection');
}
