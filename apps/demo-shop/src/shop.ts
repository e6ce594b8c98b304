import { createHash, randomBytes } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import type { AthEngine, AuditRecord, Clock, Store } from '@athkit/core';
import { athFastify } from '@athkit/fastify';
import { openStore } from '@athkit/storage';
import Fastify, { type FastifyBaseLogger, type FastifyInstance, type FastifyRequest } from 'fastify';
import { pino, type DestinationStream, type Logger } from 'pino';
import { ShopDb } from './db.js';
import { homePage, loginPage } from './html.js';
import { verifyPassword } from './passwords.js';

export const APP_ID = 'com.ath-shop.ecommerce';
/** The scopes of seed 002. */
export const SHOP_SCOPES = ['products:read', 'cart:read', 'cart:write', 'orders:read', 'orders:write'];

export interface ShopOptions {
  /** Directory for shop.db (products, carts, orders, users) and ath.db (the ATH store). */
  dataDir: string;
  /** Interface to listen on (default 127.0.0.1). */
  host?: string;
  /** Port (default 0: any free port). */
  port?: number;
  /** Public origin when it differs from http://host:port (e.g. behind a TLS proxy). */
  publicUrl?: string;
  /** Secure cookies (default: true; Chromium accepts them on http://127.0.0.1 and localhost). */
  cookieSecure?: boolean;
  /** `host:port` of agent identity servers that may be fetched over plain http (development, tests). */
  allowInsecureAgents?: string[];
  /** A pino logger, or false for none (default: pino at info with secrets redacted). */
  logger?: Logger | false;
  /** Access token lifetime (default 3600). */
  tokenTtlSeconds?: number;
  clock?: Clock;
}

export interface Shop {
  app: FastifyInstance;
  /** The shop's public origin, e.g. http://127.0.0.1:41234 */
  url: string;
  engine: AthEngine;
  db: ShopDb;
  store: Store;
  close(): Promise<void>;
}

const SESSION_COOKIE = 'shop_session';
const SESSION_TTL_MS = 8 * 3600 * 1000;

/** Keys whose values never reach the logs. */
export const REDACT_PATHS = [
  'req.headers.authorization',
  'req.headers.cookie',
  'req.headers["x-ath-agent-attestation"]',
  'res.headers["set-cookie"]',
  '*.client_secret',
  '*.access_token',
  '*.agent_attestation',
  '*.password',
  '*.token',
  '*.code',
  '*.code_verifier',
];

/** pino with redaction; request URLs are logged without their query (the consent `state` lives there). */
export function createLogger(options: { level?: string; destination?: DestinationStream } = {}): Logger {
  return pino(
    {
    level: options.level ?? 'info',
    redact: { paths: REDACT_PATHS, censor: '[redacted]' },
    serializers: {
      req: (req: { method?: string; url?: string }) => ({ method: req.method, url: (req.url ?? '').split('?')[0] }),
      res: (res: { statusCode?: number }) => ({ statusCode: res.statusCode }),
    },
    },
    options.destination ?? process.stdout,
  );
}

const sha256 = (value: string) => createHash('sha256').update(value).digest('base64url');

function cookieValue(header: string | undefined, name: string): string | null {
  for (const part of (header ?? '').split(';')) {
    const eq = part.indexOf('=');
    if (eq > 0 && part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
  }
  return null;
}

/** Only local paths are valid return targets (no open redirect). */
function safeReturnTo(value: unknown): string {
  return typeof value === 'string' && value.startsWith('/') && !value.startsWith('//') && !value.includes('\\') ? value : '/';
}

/** Starts ATH Shop: the shop, its REST API under /api protected by ATH, and the ATH endpoints. */
export async function createShop(options: ShopOptions): Promise<Shop> {
  const host = options.host ?? '127.0.0.1';
  const logger = options.logger === false ? undefined : (options.logger ?? createLogger());
  const now = () => (options.clock ?? { now: Date.now }).now();

  // Listen first, so the public origin (with the real port) is known before ATH is configured.
  const server = http.createServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, host, () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  const url = options.publicUrl ?? `http://${host.includes(':') ? `[${host}]` : host}:${port}`;
  const cookieSecure = options.cookieSecure ?? true;

  const db = await ShopDb.open(options.dataDir);
  const store = await openStore(`sqlite:${join(options.dataDir, 'ath.db')}`);

  const loggerInstance: FastifyBaseLogger | undefined = logger;
  const app = Fastify({
    ...(loggerInstance ? { loggerInstance } : { logger: false }),
    serverFactory: (handler) => server.on('request', handler),
    bodyLimit: 64 * 1024,
  });
  app.addContentTypeParser('application/x-www-form-urlencoded', { parseAs: 'string' }, (_req, body, done) => {
    done(null, new URLSearchParams(body as string));
  });

  const currentUser = (request: FastifyRequest): string | null => {
    const sid = cookieValue(request.headers.cookie, SESSION_COOKIE);
    return sid ? db.webSessionUser(sha256(sid), now()) : null;
  };

  await app.register(athFastify, {
    baseUrl: url,
    service: { app_id: APP_ID, name: 'ATH Shop E-Commerce API', api_base: '/api' },
    scopes: SHOP_SCOPES,
    policy: { autoApprove: true },
    store,
    authenticateUser: currentUser,
    loginUrl: '/login',
    cookieSecure,
    ...(options.allowInsecureAgents ? { identity: { allowInsecure: options.allowInsecureAgents } } : {}),
    ...(options.tokenTtlSeconds ? { tokenTtlSeconds: options.tokenTtlSeconds } : {}),
    ...(options.clock ? { clock: options.clock } : {}),
    ...(logger ? { auditSink: (event: AuditRecord) => logger.info({ audit: event }, `audit ${event.event}`) } : {}),
  });

  // --- the web shop ---
  app.get('/', async (request, reply) => {
    const user = currentUser(request);
    return homePage(reply, user, db.products(), user ? db.cart(user) : [], user ? db.orders(user) : []);
  });
  app.get('/login', async (request, reply) => {
    const q = request.query as Record<string, unknown>;
    return loginPage(reply, safeReturnTo(q['return_to']), null);
  });
  app.post('/login', async (request, reply) => {
    const form = request.body instanceof URLSearchParams ? request.body : new URLSearchParams();
    const username = form.get('username') ?? '';
    const password = form.get('password') ?? '';
    const returnTo = safeReturnTo(form.get('return_to'));
    const hash = db.passwordHash(username);
    const ok = hash !== null && (await verifyPassword(password, hash));
    if (!ok) return loginPage(reply, returnTo, 'Unknown user or wrong password.', 401);
    const sid = randomBytes(32).toString('base64url');
    db.createWebSession(sha256(sid), username, now() + SESSION_TTL_MS);
    reply.header(
      'set-cookie',
      `${SESSION_COOKIE}=${sid}; Path=/; Max-Age=${SESSION_TTL_MS / 1000}; HttpOnly; SameSite=Lax${cookieSecure ? '; Secure' : ''}`,
    );
    return reply.redirect(returnTo, 303);
  });
  app.post('/logout', async (request, reply) => {
    const sid = cookieValue(request.headers.cookie, SESSION_COOKIE);
    if (sid) db.deleteWebSession(sha256(sid));
    reply.header('set-cookie', `${SESSION_COOKIE}=; Path=/; Max-Age=0; HttpOnly; SameSite=Lax${cookieSecure ? '; Secure' : ''}`);
    return reply.redirect('/', 303);
  });

  // --- the REST API, each operation guarded by its seed-002 scope ---
  app.get('/api/products', { config: { ath: { scope: 'products:read' } } }, () => ({ products: db.products() }));
  app.get('/api/cart', { config: { ath: { scope: 'cart:read' } } }, (request) => ({ items: db.cart(request.ath!.userId) }));
  app.post(
    '/api/cart',
    {
      config: { ath: { scope: 'cart:write' } },
      schema: {
        body: {
          type: 'object',
          required: ['product_id'],
          additionalProperties: false,
          properties: { product_id: { type: 'integer', minimum: 1 }, quantity: { type: 'integer', minimum: 1, maximum: 99 } },
        },
      },
    },
    async (request, reply) => {
      const body = request.body as { product_id: number; quantity?: number };
      if (!db.product(body.product_id)) return reply.code(404).send({ error: 'unknown product' });
      return reply.code(200).send({ items: db.addToCart(request.ath!.userId, body.product_id, body.quantity ?? 1) });
    },
  );
  app.get('/api/orders', { config: { ath: { scope: 'orders:read' } } }, (request) => ({ orders: db.orders(request.ath!.userId) }));
  app.post('/api/orders', { config: { ath: { scope: 'orders:write' } } }, async (request, reply) => {
    const order = db.placeOrder(request.ath!.userId, request.ath!.agentId, new Date(now()));
    if (!order) return reply.code(409).send({ error: 'the cart is empty' });
    return reply.code(201).send({ order });
  });

  await app.ready();
  logger?.info({ url }, 'ATH Shop listening');

  return {
    app,
    url,
    engine: app.ath,
    db,
    store,
    async close() {
      await app.close();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await store.close();
      db.close();
    },
  };
}
