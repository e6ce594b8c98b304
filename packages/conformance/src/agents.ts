/**
 * The suite's agents: a node:http server on the agent host (127.0.0.1 by default) publishing one
 * identity document per test agent, counting fetches, and switchable per agent into the failure
 * modes of checklist C-026/C-032/C-034 (404, non-JSON, missing key, wrong agent_id, hang, redirect).
 * Also mints attestations: valid ones and every hand-made variation of checklist section B.
 */
import http from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { randomBytes } from 'node:crypto';
import { CompactSign, exportJWK, generateKeyPair, type CryptoKey, type JWK } from 'jose';

export type DocumentMode =
  | { kind: 'ok' }
  | { kind: 'status'; status: number }
  | { kind: 'non-json' }
  | { kind: 'patch'; patch: Record<string, unknown> }
  | { kind: 'hang' }
  | { kind: 'redirect'; location: string };

export interface AttestationOverrides {
  /** Claims to set (replacing the defaults). */
  claims?: Record<string, unknown>;
  /** Claims to remove. */
  omit?: readonly string[];
  /** Header members to set; `kid` null removes it. */
  header?: Record<string, unknown>;
  /** Sign with this agent's key instead (wrong-key tests). */
  signWith?: Agent;
}

const b64u = (data: Uint8Array | string): string => Buffer.from(data).toString('base64url');
export const randomToken = (bytes = 24): string => randomBytes(bytes).toString('base64url');

export class Agent {
  fetches = 0;
  mode: DocumentMode = { kind: 'ok' };
  /** The key currently published (rotate() replaces it; the old one stays in `previousKeys`). */
  private publicJwk: JWK;
  readonly previousKeys: CryptoKey[] = [];

  constructor(
    readonly name: string,
    readonly agentId: string,
    public privateKey: CryptoKey,
    publicJwk: JWK,
    public kid: string,
  ) {
    this.publicJwk = publicJwk;
  }

  static async create(name: string, agentId: string): Promise<Agent> {
    const { privateKey, publicKey } = await generateKeyPair('ES256', { extractable: true });
    const { kty, crv, x, y } = await exportJWK(publicKey);
    return new Agent(name, agentId, privateKey, { kty, crv, x, y, kid: 'k1' }, 'k1');
  }

  /** Publishes a fresh key (kid k2, k3, ...) and signs with it from now on. */
  async rotate(): Promise<void> {
    const { privateKey, publicKey } = await generateKeyPair('ES256', { extractable: true });
    const { kty, crv, x, y } = await exportJWK(publicKey);
    this.previousKeys.push(this.privateKey);
    this.kid = `k${this.previousKeys.length + 1}`;
    this.privateKey = privateKey;
    this.publicJwk = { kty, crv, x, y, kid: this.kid };
  }

  document(): Record<string, unknown> {
    return {
      ath_version: '0.1',
      agent_id: this.agentId,
      name: `ATH conformance agent ${this.name}`,
      developer: { name: 'ath-conformance', id: 'ath-conformance-suite' },
      public_key: this.publicJwk,
    };
  }

  get publicKeyJwk(): JWK {
    return this.publicJwk;
  }

  /** Default claims: iss = agent origin, sub = agent_id, aud, iat = now, exp = now + 300, fresh jti. */
  claims(aud: unknown): Record<string, unknown> {
    const now = Math.floor(Date.now() / 1000);
    return { iss: new URL(this.agentId).origin, sub: this.agentId, aud, iat: now, exp: now + 300, jti: randomToken(24) };
  }

  /** A valid attestation (or a variation of one) for `aud`. */
  async attest(aud: unknown, overrides: AttestationOverrides = {}): Promise<string> {
    const payload = { ...this.claims(aud), ...overrides.claims };
    for (const k of overrides.omit ?? []) delete payload[k];
    const signer = overrides.signWith ?? this;
    const header: Record<string, unknown> = { alg: 'ES256', typ: 'JWT', kid: signer.kid, ...overrides.header };
    if (header['kid'] === null) delete header['kid'];
    return new CompactSign(new TextEncoder().encode(JSON.stringify(payload)))
      .setProtectedHeader(header as { alg: string })
      .sign(signer.privateKey);
  }

  /** `alg: none` with an empty signature (checklist C-013a, threats A2). */
  unsigned(aud: unknown, alg = 'none'): string {
    return `${b64u(JSON.stringify({ alg, typ: 'JWT' }))}.${b64u(JSON.stringify(this.claims(aud)))}.`;
  }

  /** HS256 keyed with the published public JWK (as JSON text) — algorithm confusion (C-013b, threats A3). */
  async hmacWithPublicKey(aud: unknown): Promise<string> {
    const secret = new TextEncoder().encode(JSON.stringify(this.publicJwk));
    return new CompactSign(new TextEncoder().encode(JSON.stringify(this.claims(aud))))
      .setProtectedHeader({ alg: 'HS256', typ: 'JWT', kid: this.kid })
      .sign(secret);
  }

  /** RS256 with a throwaway RSA key (C-013c). */
  async rs256(aud: unknown): Promise<string> {
    const { privateKey } = await generateKeyPair('RS256', { modulusLength: 2048 });
    return new CompactSign(new TextEncoder().encode(JSON.stringify(this.claims(aud))))
      .setProtectedHeader({ alg: 'RS256', typ: 'JWT', kid: this.kid })
      .sign(privateKey);
  }
}

/** Flips one character of the payload segment after signing (C-025). */
export function tamper(jwt: string): string {
  const [h, p, s] = jwt.split('.') as [string, string, string];
  const claims = JSON.parse(Buffer.from(p, 'base64url').toString('utf8')) as Record<string, unknown>;
  claims['jti'] = `${String(claims['jti'])}x`;
  return `${h}.${b64u(JSON.stringify(claims))}.${s}`;
}

export interface AgentHostOptions {
  host: string;
  /** 0 = any free port. */
  port: number;
  /** Distinguishes this run's agents from earlier runs against a persistent target. */
  runId: string;
}

export class AgentHost {
  private server: http.Server | null = null;
  private readonly agents = new Map<string, Agent>();
  private readonly sockets = new Set<Socket>();
  private counter = 0;
  /** Requests to paths that are not an agent document (e.g. the canary path). */
  readonly strayHits: string[] = [];
  port = 0;

  constructor(private readonly options: AgentHostOptions) {}

  get origin(): string {
    return `http://${this.options.host.includes(':') ? `[${this.options.host}]` : this.options.host}:${this.port}`;
  }

  /** `host:port`, the entry a target must allow for plain-http identity documents. */
  get hostPort(): string {
    return new URL(this.origin).host;
  }

  async start(): Promise<void> {
    const server = http.createServer((req, res) => this.handle(req, res));
    server.on('connection', (s) => {
      this.sockets.add(s);
      s.on('close', () => this.sockets.delete(s));
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.options.port, this.options.host, () => resolve());
    });
    this.server = server;
    this.port = (server.address() as AddressInfo).port;
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
    this.server = null;
  }

  /** A canary URL on this host: any request to it is recorded in `strayHits`. */
  canaryUrl(tag: string): string {
    return `${this.origin}/canary/${this.options.runId}/${tag}`;
  }

  async create(label = 'agent'): Promise<Agent> {
    const name = `${this.options.runId}-${label}-${++this.counter}`;
    const agentId = `${this.origin}/agents/${name}/.well-known/agent.json`;
    const agent = await Agent.create(name, agentId);
    this.agents.set(new URL(agentId).pathname, agent);
    return agent;
  }

  private handle(req: http.IncomingMessage, res: http.ServerResponse): void {
    const path = (req.url ?? '/').split('?')[0] ?? '/';
    const agent = this.agents.get(path);
    if (!agent) {
      this.strayHits.push(path);
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found');
      return;
    }
    agent.fetches++;
    const mode = agent.mode;
    switch (mode.kind) {
      case 'ok':
        res.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'max-age=86400' });
        res.end(JSON.stringify(agent.document()));
        return;
      case 'status':
        res.writeHead(mode.status, { 'content-type': 'text/plain' }).end('');
        return;
      case 'non-json':
        res.writeHead(200, { 'content-type': 'application/json' }).end('{"this is": not json');
        return;
      case 'patch': {
        const doc = { ...agent.document(), ...mode.patch };
        for (const [k, v] of Object.entries(mode.patch)) if (v === undefined) delete doc[k];
        res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(doc));
        return;
      }
      case 'hang':
        return; // never answers; the socket is destroyed on close()
      case 'redirect':
        res.writeHead(302, { location: mode.location }).end();
        return;
    }
  }
}
