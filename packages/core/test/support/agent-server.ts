/**
 * "AD" of threats 3.0: a real HTTP server on 127.0.0.1 (port 0) that publishes agent identity
 * documents for test agents with freshly generated ES256 keys, counts fetches per path, and can be
 * switched per agent into every failure mode the SSRF/cache tests need. Also `startCanary`, a
 * listener whose every connection is a test failure.
 *
 *   const ad = await startAgentServer();
 *   const a = await ad.addAgent('a', { kid: 'k1' });      // a.agentId = http://127.0.0.1:D/agents/a/.well-known/agent.json
 *   const jwt = await a.mint({ aud: 'https://gw.test' });  // a valid attestation signed with a's key
 *   a.setMode({ kind: 'status', status: 404 });
 *   expect(a.fetches).toBe(1);
 *   await ad.close();
 *
 * The server speaks plain http, so the fetcher under test needs `allowInsecure: [ad.hostPort]`.
 */
import http from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import type { CryptoKey, JWK } from 'jose';
import { exportSPKI } from 'jose';
import {
  exportPublicJwk,
  generateAgentKeyPair,
  signAttestation,
  type SignAttestationOptions,
} from '../../src/attestation/index.js';
import type { Clock } from '../../src/clock.js';

/** What an agent's document URL answers. Default `{ kind: 'ok' }`. */
export type AgentDocumentMode =
  /** The valid document (with the agent's current key, in its key format). */
  | { kind: 'ok'; cacheControl?: string }
  /** An empty response with this status (404, 500, ...). */
  | { kind: 'status'; status: number }
  /** `application/json` whose body is not JSON. */
  | { kind: 'non-json' }
  /** The valid document, served with another content type (e.g. text/html). */
  | { kind: 'content-type'; contentType: string }
  /** The valid document with these members removed or replaced (undefined removes). */
  | { kind: 'patch'; patch: Record<string, unknown> }
  /** A JSON array nested `depth` levels deep (threats B7). */
  | { kind: 'deep-nesting'; depth: number }
  /** Streams `bytes` bytes (default 100 MB) as fast as the client reads (threats B5). */
  | { kind: 'huge'; bytes?: number; declareLength?: boolean }
  /** Streams forever. */
  | { kind: 'endless' }
  /** Declares Content-Length `declared` but sends `bytes` bytes (raw socket). */
  | { kind: 'lying-length'; declared: number; bytes: number }
  /** Sends nothing for `delayMs` (Infinity: never), then the document (threats B6, C-032). */
  | { kind: 'slow-headers'; delayMs: number }
  /** Sends headers at once, then one body byte every `intervalMs`, forever. */
  | { kind: 'trickle'; intervalMs: number }
  /** A redirect to `location` (threats B4, C-034). */
  | { kind: 'redirect'; location: string; status?: number }
  /** Anything else, verbatim. */
  | { kind: 'raw'; status: number; contentType: string | null; body: string | Uint8Array };

export type KeyFormat = 'jwk' | 'jwks' | 'pem';

export interface AddAgentOptions {
  /** kid published with the key and put in minted headers; null for none. Default 'k1'. */
  kid?: string | null;
  /** How `public_key` is published. Default 'jwk'. */
  keyFormat?: KeyFormat;
}

export interface TestAgent {
  readonly name: string;
  readonly path: string;
  readonly agentId: string;
  readonly kid: string | null;
  readonly keyFormat: KeyFormat;
  readonly privateKey: CryptoKey;
  readonly publicKey: CryptoKey;
  readonly publicJwk: JWK;
  /** Requests received for this agent's path. */
  readonly fetches: number;
  mode: AgentDocumentMode;
  setMode(mode: AgentDocumentMode): void;
  /** The document the 'ok' mode serves right now. */
  document(): Promise<Record<string, unknown>>;
  /** Replaces the key pair (and optionally the kid); documents published from now on carry the new key. */
  rotateKey(options?: { kid?: string | null }): Promise<void>;
  /** Signs a valid attestation with the agent's current key (fresh jti unless given). */
  mint(
    options: { aud: string | string[]; clock?: Clock } & Partial<
      Omit<SignAttestationOptions, 'privateKey' | 'agentId' | 'audience'>
    >,
  ): Promise<string>;
}

export interface AgentServer {
  readonly host: string;
  readonly port: number;
  /** `127.0.0.1:D`, the allow-list entry for this server. */
  readonly hostPort: string;
  readonly origin: string;
  addAgent(name: string, options?: AddAgentOptions): Promise<TestAgent>;
  /** Requests received for a path (any agent or none). */
  fetchCount(path: string): number;
  /** Every request received, in order (method, path, headers). */
  readonly requests: readonly RecordedRequest[];
  readonly totalFetches: number;
  close(): Promise<void>;
}

export interface RecordedRequest {
  method: string;
  path: string;
  headers: http.IncomingHttpHeaders;
}

interface AgentState {
  name: string;
  path: string;
  agentId: string;
  kid: string | null;
  keyFormat: KeyFormat;
  privateKey: CryptoKey;
  publicKey: CryptoKey;
  publicJwk: JWK;
  mode: AgentDocumentMode;
}

async function publicKeyMember(state: AgentState): Promise<unknown> {
  const jwk = state.kid === null ? { ...state.publicJwk } : { ...state.publicJwk, kid: state.kid };
  if (state.keyFormat === 'jwks') return { keys: [jwk] };
  if (state.keyFormat === 'pem') return exportSPKI(state.publicKey);
  return jwk;
}

async function documentFor(state: AgentState): Promise<Record<string, unknown>> {
  return {
    ath_version: '0.1',
    agent_id: state.agentId,
    name: `Test agent ${state.name}`,
    developer: { name: 'athkit tests', id: 'dev-athkit-tests' },
    capabilities: ['testing'],
    public_key: await publicKeyMember(state),
  };
}

export async function startAgentServer(options: { host?: string; port?: number } = {}): Promise<AgentServer> {
  const host = options.host ?? '127.0.0.1';
  const agents = new Map<string, AgentState>();
  const counts = new Map<string, number>();
  const timers = new Set<NodeJS.Timeout>();
  const sockets = new Set<Socket>();
  const requests: RecordedRequest[] = [];
  let total = 0;

  const later = (ms: number, fn: () => void): void => {
    const t = setTimeout(() => {
      timers.delete(t);
      fn();
    }, ms);
    timers.add(t);
  };

  const sendDocument = async (
    state: AgentState,
    res: http.ServerResponse,
    contentType: string,
    cacheControl?: string,
  ) => {
    const body = JSON.stringify(await documentFor(state));
    const headers: Record<string, string> = { 'content-type': contentType };
    if (cacheControl !== undefined) headers['cache-control'] = cacheControl;
    res.writeHead(200, headers).end(body);
  };

  /** Writes `total` bytes (Infinity: forever) in 16 KiB chunks, respecting backpressure. */
  const stream = (res: http.ServerResponse, bytes: number) => {
    const chunk = Buffer.alloc(16_384, 0x20);
    let sent = 0;
    const pump = () => {
      while (sent < bytes && !res.destroyed) {
        const n = Math.min(chunk.length, bytes - sent);
        sent += n;
        if (!res.write(n === chunk.length ? chunk : chunk.subarray(0, n)))
          return void res.once('drain', pump);
      }
      if (!res.destroyed) res.end();
    };
    pump();
  };

  const server = http.createServer((req, res) => {
    const path = (req.url ?? '/').split('?', 1)[0]!;
    total++;
    requests.push({ method: req.method ?? '', path, headers: req.headers });
    counts.set(path, (counts.get(path) ?? 0) + 1);
    const state = [...agents.values()].find((a) => a.path === path);
    if (!state) return void res.writeHead(404).end();
    void handle(state, req, res).catch(() => res.destroy());
  });

  const handle = async (
    state: AgentState,
    req: http.IncomingMessage,
    res: http.ServerResponse,
  ): Promise<void> => {
    const mode = state.mode;
    switch (mode.kind) {
      case 'ok':
        return sendDocument(state, res, 'application/json', mode.cacheControl);
      case 'status':
        return void res.writeHead(mode.status).end();
      case 'non-json':
        return void res.writeHead(200, { 'content-type': 'application/json' }).end('<html>not json</html>');
      case 'content-type':
        return sendDocument(state, res, mode.contentType);
      case 'patch': {
        const doc = await documentFor(state);
        for (const [k, v] of Object.entries(mode.patch)) {
          if (v === undefined) delete doc[k];
          else doc[k] = v;
        }
        return void res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(doc));
      }
      case 'deep-nesting':
        return void res
          .writeHead(200, { 'content-type': 'application/json' })
          .end('['.repeat(mode.depth) + ']'.repeat(mode.depth));
      case 'huge': {
        const bytes = mode.bytes ?? 100 * 1024 * 1024;
        const headers: Record<string, string | number> = { 'content-type': 'application/json' };
        if (mode.declareLength) headers['content-length'] = bytes;
        res.writeHead(200, headers);
        return stream(res, bytes);
      }
      case 'endless':
        res.writeHead(200, { 'content-type': 'application/json' });
        return stream(res, Infinity);
      case 'lying-length': {
        // Node's server refuses to send a body longer than its Content-Length, so write raw bytes.
        const socket = req.socket;
        socket.write(
          `HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: ${mode.declared}\r\n\r\n`,
        );
        const chunk = Buffer.alloc(16_384, 0x20);
        let sent = 0;
        const pump = () => {
          while (sent < mode.bytes && !socket.destroyed) {
            sent += chunk.length;
            if (!socket.write(chunk)) return void socket.once('drain', pump);
          }
          socket.end();
        };
        return pump();
      }
      case 'slow-headers':
        if (mode.delayMs !== Infinity)
          later(mode.delayMs, () => void sendDocument(state, res, 'application/json').catch(() => {}));
        return;
      case 'trickle':
        res.writeHead(200, { 'content-type': 'application/json' });
        res.write('{');
        {
          const tick = () => {
            if (res.destroyed) return;
            res.write(' ');
            later(mode.intervalMs, tick);
          };
          later(mode.intervalMs, tick);
        }
        return;
      case 'redirect':
        return void res.writeHead(mode.status ?? 302, { location: mode.location }).end();
      case 'raw': {
        const headers: Record<string, string> = {};
        if (mode.contentType !== null) headers['content-type'] = mode.contentType;
        return void res.writeHead(mode.status, headers).end(mode.body);
      }
    }
  };

  server.on('connection', (socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, host, () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  const hostPort = `${host}:${port}`;
  const origin = `http://${hostPort}`;

  const addAgent = async (name: string, agentOptions: AddAgentOptions = {}): Promise<TestAgent> => {
    if ([...agents.values()].some((a) => a.name === name)) throw new Error(`agent ${name} exists`);
    const { privateKey, publicKey } = await generateAgentKeyPair();
    const path = `/agents/${name}/.well-known/agent.json`;
    const state: AgentState = {
      name,
      path,
      agentId: `${origin}${path}`,
      kid: agentOptions.kid === undefined ? 'k1' : agentOptions.kid,
      keyFormat: agentOptions.keyFormat ?? 'jwk',
      privateKey,
      publicKey,
      publicJwk: await exportPublicJwk(publicKey),
      mode: { kind: 'ok' },
    };
    agents.set(name, state);
    return {
      name,
      path,
      agentId: state.agentId,
      get kid() {
        return state.kid;
      },
      keyFormat: state.keyFormat,
      get privateKey() {
        return state.privateKey;
      },
      get publicKey() {
        return state.publicKey;
      },
      get publicJwk() {
        return state.publicJwk;
      },
      get fetches() {
        return counts.get(path) ?? 0;
      },
      get mode() {
        return state.mode;
      },
      set mode(mode: AgentDocumentMode) {
        state.mode = mode;
      },
      setMode(mode) {
        state.mode = mode;
      },
      document: () => documentFor(state),
      async rotateKey(rotate = {}) {
        const next = await generateAgentKeyPair();
        state.privateKey = next.privateKey;
        state.publicKey = next.publicKey;
        state.publicJwk = await exportPublicJwk(next.publicKey);
        if (rotate.kid !== undefined) state.kid = rotate.kid;
      },
      mint({ aud, ...rest }) {
        return signAttestation({
          ...(state.kid === null ? {} : { kid: state.kid }),
          ...rest,
          privateKey: state.privateKey,
          agentId: state.agentId,
          audience: aud,
        });
      },
    };
  };

  return {
    host,
    port,
    hostPort,
    origin,
    addAgent,
    fetchCount: (path) => counts.get(path) ?? 0,
    requests,
    get totalFetches() {
      return total;
    },
    async close() {
      for (const t of timers) clearTimeout(t);
      timers.clear();
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

export interface Canary {
  readonly host: string;
  readonly port: number;
  readonly hostPort: string;
  readonly url: string;
  /** TCP connections accepted (an https attempt counts even though it never becomes a request). */
  readonly hits: number;
  close(): Promise<void>;
}

/**
 * A listener that must never be reached (threats 3.0 "CAN"). Binds `host` (default 127.0.0.1;
 * 127.0.0.2 works on Linux without setup) and `port` (default 0). Every accepted TCP connection
 * counts as a hit; HTTP requests get a 200 so a follow-through would be visible as success.
 */
export async function startCanary(options: { host?: string; port?: number } = {}): Promise<Canary> {
  const host = options.host ?? '127.0.0.1';
  let hits = 0;
  const sockets = new Set<Socket>();
  const server = http.createServer((_req, res) =>
    res.writeHead(200, { 'content-type': 'application/json' }).end('{"canary":true}'),
  );
  server.on('connection', (socket) => {
    hits++;
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, host, () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  return {
    host,
    port,
    hostPort: `${host}:${port}`,
    url: `http://${host}:${port}`,
    get hits() {
      return hits;
    },
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
