/**
 * A real engine + a real authorization server, wired the way the gateway will wire them: an agent
 * (identity document served on 127.0.0.1) registers and authorizes through AthEngine; the launch
 * page is engine.launch; the browser is followToCallback; the callback is OAuthBridge.handleCallback.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import {
  AthEngine,
  defaultApprovalPolicy,
  exportPublicJwk,
  generateAgentKeyPair,
  ManualClock,
  MemoryStore,
  signAttestation,
  Vault,
  type CallbackResult,
  type LaunchResult,
  type Store,
} from '@athkit/core';
import { OAuthBridge, type BridgeProvider, type OAuthBridgeOptions } from '../../src/oauth-bridge.js';
import { Secret } from '../../src/secret.js';
import { followToCallback, startAuthorizationServer, type AuthorizationServerOptions, type ConsentDecision, type TestAuthorizationServer } from './authorization-server.js';

export const GW = 'https://gw.test';
export const CALLBACK = `${GW}/ath/callback`;
export const API_SCOPES = ['mail:read', 'mail:send'];

export interface FlowResult {
  launch: LaunchResult;
  authorizationUrl: string;
  callbackUrl: URL;
  result: CallbackResult;
  sessionId: string;
}

export class Harness {
  as!: TestAuthorizationServer;
  store: Store = new MemoryStore();
  clock = new ManualClock();
  vault!: Vault;
  engine!: AthEngine;
  bridge!: OAuthBridge;
  provider!: BridgeProvider;
  clientId = '';
  private docServer!: Server;
  private agentId = '';
  private privateKey!: Awaited<ReturnType<typeof generateAgentKeyPair>>["privateKey"];
  readonly vaultKey = Buffer.alloc(32, 7).toString('base64url');

  static async start(
    asOptions: Partial<AuthorizationServerOptions> = {},
    providerOverrides: Partial<BridgeProvider['oauth']> = {},
    store?: Store,
  ): Promise<Harness> {
    const h = new Harness();
    if (store) h.store = store;
    h.as = await startAuthorizationServer({ redirectUri: CALLBACK, scopes: API_SCOPES, ...asOptions });
    h.vault = await Vault.create(h.vaultKey);
    h.provider = {
      provider_id: 'mail',
      oauth: {
        issuer: h.as.issuer,
        client_id: h.as.clientId,
        client_secret: new Secret(h.as.clientSecret),
        token_endpoint_auth_method: asOptions.clientAuthMethod ?? 'client_secret_basic',
        ...providerOverrides,
      },
    };
    h.engine = new AthEngine({
      store: h.store,
      baseUrl: GW,
      clock: h.clock,
      providers: [
        {
          provider_id: 'mail',
          display_name: 'Mail',
          available_scopes: ['openid', ...API_SCOPES],
          upstream_client_id: h.as.clientId,
        },
      ],
      policy: defaultApprovalPolicy({ autoApprove: true }),
      identity: { allowInsecure: [] },
    });
    h.bridge = h.newBridge();
    await h.registerAgent();
    return h;
  }

  /** Another "instance": a second bridge on the same store (its own in-process single-flight map). */
  newBridge(options: Partial<OAuthBridgeOptions> = {}): OAuthBridge {
    return new OAuthBridge({
      store: this.store,
      vault: this.vault,
      baseUrl: GW,
      providers: [this.provider],
      clock: this.clock,
      timeoutMs: 5000,
      leaseMs: 5000,
      ...options,
    });
  }

  private async registerAgent(): Promise<void> {
    const { privateKey, publicKey } = await generateAgentKeyPair();
    this.privateKey = privateKey;
    let doc: unknown = null;
    this.docServer = createServer((_req, res) => {
      res.setHeader('content-type', 'application/json').end(JSON.stringify(doc));
    });
    await new Promise<void>((resolve) => this.docServer.listen(0, '127.0.0.1', resolve));
    const hostPort = `127.0.0.1:${(this.docServer.address() as AddressInfo).port}`;
    this.agentId = `http://${hostPort}/.well-known/agent.json`;
    doc = {
      ath_version: '0.1',
      agent_id: this.agentId,
      name: 'Test agent',
      developer: { name: 'Dev', id: 'dev-1' },
      public_key: await exportPublicJwk(publicKey, 'k1'),
    };
    // The engine was built before the port was known: rebuild it with the allow-list entry.
    this.engine = new AthEngine({
      store: this.store,
      baseUrl: GW,
      clock: this.clock,
      providers: this.engine.ctx.providers,
      policy: this.engine.ctx.policy,
      identity: { allowInsecure: [hostPort] },
    });
    const reg = await this.engine.register({
      agent_id: this.agentId,
      agent_attestation: await this.att(GW),
      developer: { name: 'Dev', id: 'dev-1' },
      requested_providers: [{ provider_id: 'mail', scopes: ['openid', ...API_SCOPES] }],
    });
    this.clientId = reg.client_id;
  }

  att(aud: string): Promise<string> {
    return signAttestation({ privateKey: this.privateKey, kid: 'k1', agentId: this.agentId, audience: aud, clock: this.clock });
  }

  /** POST /ath/authorize + the launch page: the upstream authorization URL the browser is sent to. */
  async start(scopes: string[], extra: { resource?: string } = {}): Promise<{ launch: LaunchResult; authorizationUrl: string; sessionId: string }> {
    const res = await this.engine.authorize({
      client_id: this.clientId,
      agent_attestation: await this.att(GW),
      provider_id: 'mail',
      scopes,
      state: 'agent-state-' + 'x'.repeat(32),
      ...extra,
    });
    const launch = await this.engine.launch(new URL(res.authorization_url).searchParams, {});
    return { launch, authorizationUrl: await this.bridge.authorizationUrl(launch), sessionId: res.ath_session_id };
  }

  /** The whole consent round trip, with the AS user scripted by `decision`. */
  async flow(scopes: string[], decision: ConsentDecision = { kind: 'approve', accountId: 'user-1' }, extra: { resource?: string } = {}): Promise<FlowResult> {
    const { launch, authorizationUrl, sessionId } = await this.start(scopes, extra);
    this.as.decision = decision;
    const callbackUrl = await followToCallback(authorizationUrl, CALLBACK);
    const result = await this.bridge.handleCallback(this.engine, callbackUrl.searchParams, { [launch.cookieName]: launch.setBinding! });
    return { launch, authorizationUrl, callbackUrl, result, sessionId };
  }

  async close(): Promise<void> {
    await this.store.close();
    await this.as.close();
    await new Promise<void>((resolve) => this.docServer.close(() => resolve()));
  }
}
