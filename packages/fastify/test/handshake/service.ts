/**
 * A real native service on 127.0.0.1 (athFastify + athHandshake), a real agent-document server, and
 * a user's device endpoint that receives step-6 pushes: the 9-step handshake end to end over HTTP.
 */
import http from 'node:http';
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import {
  MemoryStore,
  MemoryUserDirectory,
  exportPublicJwk,
  generateAgentKeyPair,
  type SessionKey,
  type TokenRestrictions,
} from '@athkit/core';
import type { AuthorizationConfirmationRequest } from '@athkit/schemas';
import Fastify, { type FastifyInstance } from 'fastify';
import type { CryptoKey, JWK } from 'jose';
import { athFastify, athHandshake } from '../../src/index.js';

export const SCOPES = ['goods:read', 'order:create', 'order:cancel'];

async function freePort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const { port } = s.address() as AddressInfo;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

export interface DocAgent {
  agentId: string;
  privateKey: CryptoKey;
  publicJwk: JWK;
  kid: string;
}

/** Serves agent.json documents. */
export async function agentDocs(): Promise<{
  hostPort: string;
  add(name: string): Promise<DocAgent>;
  close(): Promise<void>;
}> {
  const docs = new Map<string, string>();
  const server = http.createServer((req, res) => {
    const doc = docs.get(req.url ?? '');
    if (!doc) res.writeHead(404).end();
    else res.writeHead(200, { 'content-type': 'application/json' }).end(doc);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const hostPort = `127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    hostPort,
    async add(name) {
      const { privateKey, publicKey } = await generateAgentKeyPair();
      const path = `/agents/${name}/.well-known/agent.json`;
      const agentId = `http://${hostPort}${path}`;
      const publicJwk = await exportPublicJwk(publicKey, 'k1');
      docs.set(
        path,
        JSON.stringify({
          ath_version: '0.1',
          agent_id: agentId,
          name: `AI Shopping Assistant (${name})`,
          developer: { name: 'Assistant Labs', id: 'assistant-labs' },
          public_key: publicJwk,
        }),
      );
      return { agentId, privateKey, publicJwk, kid: 'k1' };
    },
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

/** The user's device: receives step-6 pushes and lets the test (or demo) decide. */
export interface Device {
  url: string;
  hostPort: string;
  received: AuthorizationConfirmationRequest[];
  /** Called for each push after the 202 answer. */
  onPush: ((message: AuthorizationConfirmationRequest) => Promise<void> | void) | null;
  close(): Promise<void>;
}

export async function startDevice(): Promise<Device> {
  const device: Device = {
    url: '',
    hostPort: '',
    received: [],
    onPush: null,
    close: () => Promise.resolve(),
  };
  const server = http.createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', () => {
      let message: AuthorizationConfirmationRequest;
      try {
        message = JSON.parse(body) as AuthorizationConfirmationRequest;
      } catch {
        res.writeHead(400).end();
        return;
      }
      device.received.push(message);
      res.writeHead(202).end();
      // The user decides later, on their device: never inside the service's request.
      setImmediate(() => void Promise.resolve(device.onPush?.(message)).catch(() => undefined));
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  device.hostPort = `127.0.0.1:${(server.address() as AddressInfo).port}`;
  device.url = `http://${device.hostPort}/push`;
  device.close = () =>
    new Promise<void>((r) => {
      server.closeAllConnections();
      server.close(() => r());
    });
  return device;
}

export interface Service {
  app: FastifyInstance;
  base: string;
  store: MemoryStore;
  users: MemoryUserDirectory;
  sessionKeys: Map<string, SessionKey>;
  close(): Promise<void>;
}

/** Users sign in with a `user=<name>` cookie. */
export const signedIn = (cookie: string | undefined): string | null =>
  /(?:^|;\s*)user=([a-z]+)/.exec(cookie ?? '')?.[1] ?? null;

export async function startService(options: {
  agentHostPort: string;
  deviceHostPort?: string;
  restrictions?: (userDid: string) => TokenRestrictions;
  rateLimit?: { limit: number; windowSeconds: number };
  push?: boolean;
}): Promise<Service> {
  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  const store = new MemoryStore();
  const users = new MemoryUserDirectory();
  const sessionKeys = new Map<string, SessionKey>();
  const app = Fastify();
  await app.register(athFastify, {
    baseUrl: base,
    service: { app_id: 'shop', name: 'Demo Shop', api_base: '/api' },
    scopes: SCOPES,
    policy: { autoApprove: ['goods:read', 'order:create'], deny: ['order:cancel'] },
    store,
    authenticateUser: (request) => signedIn(request.headers.cookie),
    loginUrl: '/login',
    identity: { allowInsecure: [options.agentHostPort] },
    cookieSecure: false,
  });
  await app.register(athHandshake, {
    users:
      options.push === false
        ? { userKeys: (u) => users.userKeys(u), enrol: (u, d) => users.enrol(u, d) }
        : users,
    authenticateUser: (request) => signedIn(request.headers.cookie),
    allowInsecurePush: options.deviceHostPort ? [options.deviceHostPort] : [],
    ...(options.rateLimit ? { rateLimit: options.rateLimit } : {}),
    ...(options.restrictions ? { restrictions: ({ userDid }) => options.restrictions!(userDid) } : {}),
    onSessionKey: (i) => sessionKeys.set(i.tokenHash, i.sessionKey),
  });
  app.get('/api/goods', { config: { ath: { scope: 'goods:read' } } }, () => ({
    goods: [
      { sku: 'coffee-1kg', name: 'Coffee beans 1 kg', price: 18.5 },
      { sku: 'mug', name: 'Mug', price: 7 },
    ],
  }));
  app.post('/api/orders', { config: { ath: { scope: 'order:create' } } }, (request) => ({
    order_id: 'ord_1',
    user: request.ath?.userId,
    items: request.body,
  }));
  await app.listen({ port, host: '127.0.0.1' });
  return {
    app,
    base,
    store,
    users,
    sessionKeys,
    close: () => app.close(),
  };
}
