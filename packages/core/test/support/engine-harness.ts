import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { AgentRegistrationResponse } from '@athkit/schemas';
import { ManualClock } from '../../src/clock.js';
import { AthEngine, type AthEngineOptions } from '../../src/engine/index.js';
import { MemoryStore } from '../../src/memory-store.js';
import { defaultApprovalPolicy } from '../../src/policy.js';
import type { ProviderConfig } from '../../src/providers.js';
import { exportPublicJwk, generateAgentKeyPair, signAttestation } from '../../src/attestation/index.js';
import type { AuditRecord, SessionRecord } from '../../src/store.js';
import type { CryptoKey } from 'jose';

/** The implementer origin the engine believes it serves (never contacted: the engine makes no calls to itself). */
export const BASE = 'https://ath.test';

/** Fixture providers of checklist 0.3: P (approved for A1), P2 (exists, never approved), Q does not exist. */
export const PROVIDERS: ProviderConfig[] = [
  { provider_id: 'p', display_name: 'Provider P', available_scopes: ['p:read', 'p:write', 'p:admin'], upstream_client_id: 'ath-gw', api_base: 'https://api.p.test/v1' },
  { provider_id: 'p2', display_name: 'Provider P2', available_scopes: ['p2:read'] },
  { provider_id: 'open', display_name: 'Open provider', available_scopes: ['o:read'], agent_approval_required: false, api_base: 'https://api.open.test/' },
];

export interface TestAgent {
  name: string;
  agentId: string;
  privateKey: CryptoKey;
  kid: string;
  /** A fresh attestation (new jti) for `aud`, with claim overrides. */
  att(aud?: string | string[], overrides?: { iat?: number; exp?: number; jti?: string; iss?: string; sub?: string }): Promise<string>;
}

/**
 * A real HTTP server on 127.0.0.1:0 serving agent identity documents (the "AD" of threats 3.0),
 * counting fetches per agent.
 */
export class AgentDocServer {
  readonly docs = new Map<string, unknown>();
  readonly fetches = new Map<string, number>();
  private server!: Server;
  origin = '';

  async start(): Promise<this> {
    this.server = createServer((req, res) => {
      const path = req.url ?? '';
      this.fetches.set(path, (this.fetches.get(path) ?? 0) + 1);
      const doc = this.docs.get(path);
      if (doc === undefined) {
        res.writeHead(404).end();
        return;
      }
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(doc));
    });
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    this.origin = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
    return this;
  }

  get hostPort(): string {
    return this.origin.slice('http://'.length);
  }

  async stop(): Promise<void> {
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

export interface Harness {
  engine: AthEngine;
  store: MemoryStore;
  clock: ManualClock;
  docs: AgentDocServer;
  audit: AuditRecord[];
  /** Creates an agent whose document the doc server publishes. */
  agent(name: string): Promise<TestAgent>;
  /** Registers an agent for provider P with {p:read, p:write} (REG1 of checklist 0.3). */
  register(agent: TestAgent, extra?: Record<string, unknown>): Promise<AgentRegistrationResponse>;
  /** authorize → launch (browser binding) → consent → the token exchange body builder. */
  consentFlow(
    reg: AgentRegistrationResponse,
    agent: TestAgent,
    options?: { scopes?: string[]; userId?: string; consented?: string[] | null; redirect?: string },
  ): Promise<{ sessionId: string; code: string; session: SessionRecord }>;
  tokenBody(reg: AgentRegistrationResponse, agent: TestAgent, sessionId: string, code?: string): Promise<Record<string, unknown>>;
  close(): Promise<void>;
}

export async function createHarness(options: Partial<AthEngineOptions> = {}): Promise<Harness> {
  const docs = await new AgentDocServer().start();
  const clock = new ManualClock(Date.UTC(2026, 10, 22, 12, 0, 0));
  const store = (options.store as MemoryStore | undefined) ?? new MemoryStore();
  const audit: AuditRecord[] = [];
  const engine = new AthEngine({
    store,
    baseUrl: BASE,
    providers: PROVIDERS,
    policy: defaultApprovalPolicy({ autoApprove: ['p:read', 'p:write', 'o:read'], deny: ['p:admin'] }),
    identity: { allowInsecure: [docs.hostPort] },
    clock,
    auditSink: (e) => audit.push(e),
    ...options,
  });

  const h: Harness = {
    engine,
    store,
    clock,
    docs,
    audit,
    async agent(name) {
      const { privateKey, publicKey } = await generateAgentKeyPair();
      const kid = `${name}-k1`;
      const path = `/${name}/.well-known/agent.json`;
      const agentId = `${docs.origin}${path}`;
      docs.docs.set(path, {
        ath_version: '0.1',
        agent_id: agentId,
        name: `Agent ${name}`,
        developer: { name: 'Example Corp', id: 'dev-1' },
        public_key: await exportPublicJwk(publicKey, kid),
      });
      return {
        name,
        agentId,
        privateKey,
        kid,
        att: (aud = BASE, overrides = {}) => {
          const iat = overrides.iat ?? Math.floor(clock.now() / 1000);
          return signAttestation({
            privateKey,
            kid,
            agentId: overrides.sub ?? agentId,
            audience: aud,
            clock: { now: () => iat * 1000 },
            lifetimeSeconds: (overrides.exp ?? iat + 300) - iat,
            ...(overrides.jti ? { jti: overrides.jti } : {}),
            ...(overrides.iss ? { issuer: overrides.iss } : {}),
          });
        },
      };
    },
    async register(agent, extra = {}) {
      return engine.register({
        agent_id: agent.agentId,
        agent_attestation: await agent.att(),
        developer: { name: 'Example Corp', id: 'dev-1' },
        requested_providers: [{ provider_id: 'p', scopes: ['p:read', 'p:write'] }],
        purpose: 'testing',
        ...extra,
      });
    },
    async consentFlow(reg, agent, o = {}) {
      const res = await engine.authorize({
        client_id: reg.client_id,
        agent_attestation: await agent.att(),
        provider_id: 'p',
        scopes: o.scopes ?? ['p:read', 'p:write'],
        state: 'agent-state-0123456789abcdef',
        ...(o.redirect ? { user_redirect_uri: o.redirect } : {}),
      });
      const url = new URL(res.authorization_url);
      const launched = await engine.launch(url.searchParams, {});
      const cookies = { [launched.cookieName]: launched.setBinding! };
      const session = await engine.openCallback(url.searchParams.get('state'), cookies);
      const result = await engine.completeConsent(session, {
        kind: 'granted',
        userId: o.userId ?? 'user-1',
        consentedScopes: o.consented === undefined ? (o.scopes ?? ['p:read', 'p:write']) : o.consented,
      });
      const code = result.kind === 'redirect' ? new URL(result.location).searchParams.get('code')! : 'exchange';
      return { sessionId: res.ath_session_id, code, session };
    },
    async tokenBody(reg, agent, sessionId, code = 'exchange') {
      return {
        grant_type: 'authorization_code',
        client_id: reg.client_id,
        client_secret: reg.client_secret,
        agent_attestation: await agent.att(`${BASE}/ath/token`),
        code,
        ath_session_id: sessionId,
      };
    },
    async close() {
      await engine.close();
      await docs.stop();
    },
  };
  return h;
}

/** Runs `fn` and returns the AthError it throws (fails the test if it does not throw one). */
export async function rejection(fn: () => Promise<unknown>): Promise<{ code: string; status: number; details?: Record<string, unknown>; message: string }> {
  try {
    await fn();
  } catch (err) {
    const e = err as { code?: string; status?: number; details?: Record<string, unknown>; message: string };
    if (typeof e.code !== 'string') throw err;
    return e as { code: string; status: number; details?: Record<string, unknown>; message: string };
  }
  throw new Error('expected an AthError, but the call succeeded');
}
