/**
 * Seed 000 ("SDK Native Integration Mode"), played end to end on localhost:
 *
 *   - the e-commerce platform: a small native ATH service (fastify + athFastify + athHandshake) with
 *     seed 000's own scopes goods:read and order:create (apps/demo-shop keeps products:read /
 *     orders:write; this demo uses the seed's names so every message reads like the seed);
 *   - the user's phone: a UserWallet and a local device endpoint that receives the step-6 push;
 *   - the AI shopping assistant: a NativeClient with its agent.json on a local identity server.
 *
 * Every protocol message is printed. Plain http on 127.0.0.1 stands in for TLS 1.3 (C-273 needs a
 * real TLS deployment; loopback http is allowed only for this kind of local demo, AMB-16).
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import {
  exportPublicJwk,
  generateAgentKeyPair,
  MemoryStore,
  MemoryUserDirectory,
  type SessionKey,
} from '@athkit/core';
import { NativeClient, UserWallet, type HandshakeStepEvent } from '@athkit/client';
import { athFastify, athHandshake } from '@athkit/fastify';
import type { AuthorizationConfirmationRequest, ServerJwks } from '@athkit/schemas';
import Fastify from 'fastify';

export const SEED_SCOPES = ['goods:read', 'order:create'];
/** Seed 000: "valid for 2 hours" (AMB-17 clamps the token to ≤ 1 h). */
export const PRE_AUTHORIZATION_SECONDS = 7200;

export interface DemoOptions {
  /** Where lines go (default console.log). */
  log?: (line: string) => void;
  /** The user's decision on the phone (default: approve everything). */
  decide?: (request: AuthorizationConfirmationRequest) => { approve: boolean; scopes?: string[] };
}

export interface DemoResult {
  handshakeId: string;
  grantedScopes: string[];
  ttlRequested: number;
  ttlGranted: number;
  expiresIn: number;
  goods: unknown;
  order: unknown;
  /** Both sides' session key ids (equal when the key agreement worked). */
  agentKeyId: string;
  serviceKeyId: string | null;
  steps: HandshakeStepEvent[];
}

const GOODS = [
  { sku: 'coffee-1kg', name: 'Coffee beans, 1 kg', price: 18.5 },
  { sku: 'mug-white', name: 'White mug', price: 7.0 },
  { sku: 'filter-100', name: 'Paper filters (100)', price: 3.2 },
];

/** Shortens JWTs/JWS and keys so a message fits on a screen. */
function pretty(value: unknown): string {
  return JSON.stringify(
    value,
    (_k, v: unknown) => {
      if (typeof v === 'string' && /^[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]*\.[A-Za-z0-9_-]{10,}$/.test(v))
        return `${v.slice(0, 24)}…(JWS)`;
      if (typeof v === 'string' && v.length > 72) return `${v.slice(0, 60)}…`;
      return v;
    },
    2,
  );
}

async function listen(server: http.Server): Promise<string> {
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return `127.0.0.1:${(server.address() as AddressInfo).port}`;
}

function close(server: http.Server): Promise<void> {
  return new Promise((r) => {
    server.closeAllConnections();
    server.close(() => r());
  });
}

export async function runDemo(options: DemoOptions = {}): Promise<DemoResult> {
  const log = options.log ?? ((line: string) => console.log(line));
  const section = (title: string) => log(`\n=== ${title} ===`);
  const cleanups: (() => Promise<void>)[] = [];
  try {
    // --- the assistant's published identity (agent.json) ---
    const agentKeys = await generateAgentKeyPair();
    const agentDocs = new Map<string, string>();
    const agentServer = http.createServer((req, res) => {
      const doc = agentDocs.get(req.url ?? '');
      if (doc) res.writeHead(200, { 'content-type': 'application/json' }).end(doc);
      else res.writeHead(404).end();
    });
    const agentHost = await listen(agentServer);
    cleanups.push(() => close(agentServer));
    const agentId = `http://${agentHost}/assistant/.well-known/agent.json`;
    agentDocs.set(
      '/assistant/.well-known/agent.json',
      JSON.stringify({
        ath_version: '0.1',
        agent_id: agentId,
        name: 'AI Shopping Assistant',
        developer: { name: 'Assistant Labs', id: 'assistant-labs' },
        public_key: await exportPublicJwk(agentKeys.publicKey, 'assistant-k1'),
      }),
    );

    // --- the user's phone: the device endpoint for step-6 pushes ---
    const wallet = await UserWallet.generate();
    let serverJwks: ServerJwks | null = null;
    const confirmations: Promise<void>[] = [];
    const device = http.createServer((req, res) => {
      let body = '';
      req.on('data', (c: Buffer) => (body += c.toString()));
      req.on('end', () => {
        res.writeHead(202).end();
        confirmations.push(
          (async () => {
            const request = await wallet.verifyRequest(JSON.parse(body), serverJwks!);
            section('Step 6  E-commerce platform → user (push to the phone; never via the agent)');
            log(pretty(request));
            log('  ✓ the push is signed by the shop key published in ath-app.json (server_jwks)');
            const decision = options.decide?.(request) ?? { approve: true };
            section(
              `Step 7  User → e-commerce platform (taps "${decision.approve ? 'Approve' : 'Deny'}", signed with the user's device key)`,
            );
            const answer = await wallet.confirm(request, decision);
            log(pretty(answer));
          })().catch((err: unknown) =>
            log(`  ✗ device: ${err instanceof Error ? err.message : String(err)}`),
          ),
        );
      });
    });
    const deviceHost = await listen(device);
    cleanups.push(() => close(device));

    // --- the e-commerce platform (native ATH + the 9-step extension) ---
    const portProbe = http.createServer();
    const shopHost = await listen(portProbe);
    await close(portProbe);
    const shopUrl = `http://${shopHost}`;
    const users = new MemoryUserDirectory();
    const serviceKeys = new Map<string, SessionKey>();
    const signedIn = (cookie: string | undefined) =>
      /(?:^|;\s*)demo_user=([a-z]+)/.exec(cookie ?? '')?.[1] ?? null;
    const shop = Fastify();
    await shop.register(athFastify, {
      baseUrl: shopUrl,
      service: { app_id: 'seed-shop', name: 'Seed 000 Shop', api_base: '/api' },
      scopes: SEED_SCOPES,
      policy: { autoApprove: true },
      store: new MemoryStore(),
      authenticateUser: (request) => signedIn(request.headers.cookie),
      loginUrl: '/login',
      identity: { allowInsecure: [agentHost] },
      cookieSecure: false,
    });
    await shop.register(athHandshake, {
      users,
      authenticateUser: (request) => signedIn(request.headers.cookie),
      allowInsecurePush: [deviceHost],
      restrictions: { rate_limit: '100/minute' },
      onSessionKey: (info) => serviceKeys.set(info.tokenHash, info.sessionKey),
    });
    shop.get('/api/goods', { config: { ath: { scope: 'goods:read' } } }, () => ({ goods: GOODS }));
    shop.post('/api/orders', { config: { ath: { scope: 'order:create' } } }, (request) => ({
      order_id: 'ord_000_1',
      status: 'created',
      placed_for: request.ath?.userId,
      placed_by: request.ath?.agentId,
      items: (request.body as { items?: unknown } | undefined)?.items ?? [],
    }));
    await shop.listen({ host: '127.0.0.1', port: Number(shopHost.split(':')[1]) });
    cleanups.push(() => shop.close());
    log(`E-commerce platform: ${shopUrl}   (scopes ${SEED_SCOPES.join(', ')})`);

    // --- prerequisite: the user enrols the phone, then pre-authorizes the assistant ---
    section('Prerequisite  User enrols the phone key with the shop (signed in to the shop)');
    const enrolment = await wallet.enrol(shopUrl, {
      headers: { cookie: 'demo_user=alice' },
      pushEndpoint: `http://${deviceHost}/push`,
    });
    log(pretty(enrolment));
    serverJwks = (
      (await (await fetch(`${shopUrl}/.well-known/ath-app.json`)).json()) as { server_jwks: ServerJwks }
    ).server_jwks;

    section('Prerequisite  User pre-authorizes the assistant: goods:read, order:create, valid for 2 hours');
    const credential = await wallet.preAuthorize({
      clientDid: agentId,
      audience: enrolment.server_did,
      scopes: SEED_SCOPES,
      expiresInSeconds: PRE_AUTHORIZATION_SECONDS,
    });
    const claims = JSON.parse(Buffer.from(credential.split('.')[1]!, 'base64url').toString()) as Record<
      string,
      unknown
    >;
    log(
      pretty({
        user_authorization_credential: `${credential.slice(0, 24)}…(JWT signed by the user)`,
        claims,
      }),
    );
    log(
      '  The assistant stores this credential; it cannot widen it (the user signed it) and it is not consent by itself (AMB-33).',
    );

    // --- the assistant: discovery + registration (Phase A) ---
    section('Assistant  discovers the shop and registers (Phase A)');
    const assistant = await NativeClient.discover(shopUrl, {
      agent: { agentId, privateKey: agentKeys.privateKey, kid: 'assistant-k1' },
      pollIntervalMs: 50,
    });
    const registration = await assistant.register({
      scopes: SEED_SCOPES,
      developer: { name: 'Assistant Labs', id: 'assistant-labs' },
      purpose: 'Shops on behalf of the user',
    });
    log(
      pretty({
        ath_endpoints: assistant.service['ath_endpoints'],
        server_did: assistant.service['server_did'],
        client_id: registration.credentials.clientId,
        agent_status: registration.credentials.agentStatus,
      }),
    );

    // --- the 9 steps ---
    const steps: HandshakeStepEvent[] = [];
    const titles: Record<string, string> = {
      handshake_request: 'Step 1  Agent initiates the handshake request',
      handshake_response:
        'Step 2  E-commerce platform returns its identity (DID, key, nonce B, signature over nonce A)',
      identity_proof: 'Step 3  Agent sends its identity proof (signs nonce B + transcript)',
      identity_result: 'Step 4  E-commerce platform verified the proof; supported scopes',
      scope_request: 'Step 5  Agent sends the scope request with the user credential',
      'scope_request accepted': 'Step 5  (accepted: the shop now asks the user on an independent channel)',
      scope_result: 'Step 8  E-commerce platform returns the scope approval result',
      'token request + key_exchange': 'Step 9  Handshake complete: agent sends its ephemeral ECDH key',
      handshake_complete: 'Step 9  Session established: access token + server ephemeral key',
    };
    const session = await assistant.handshake({
      scopes: SEED_SCOPES,
      credential,
      ttl: PRE_AUTHORIZATION_SECONDS,
      context: { purpose: 'Weekly groceries' },
      onStep: (event) => {
        steps.push(event);
        section(
          `${titles[event.name] ?? event.name}   [${event.direction}${event.method ? `, ${event.method} ${new URL(event.url!).pathname}` : ''}]`,
        );
        log(pretty(event.message));
      },
    });
    await Promise.all(confirmations);
    const ttlGranted = session.scopeResult.ttl_granted;
    log(
      `\n  TTL: the assistant asked for ${PRE_AUTHORIZATION_SECONDS} s (the seed's "2 hours"); the shop granted ${ttlGranted} s and the token expires in ${session.complete.expires_in} s.` +
        `\n  ATH caps access tokens at 1 hour (AMB-17, C-263): longer requests are clamped, not rejected.`,
    );
    const serviceKey = serviceKeys.size ? [...serviceKeys.values()].at(-1)! : null;
    log(
      `  Session key: K = HKDF-SHA256(ECDH-P256, nonce_a‖nonce_b, "ATH/0.1 session ${session.handshakeId}"); key id agent=${session.sessionKey.keyId} shop=${serviceKey?.keyId ?? '?'} (${serviceKey?.keyId === session.sessionKey.keyId ? 'equal' : 'DIFFERENT'})`,
    );

    // --- using the session ---
    section('Assistant  queries goods (Bearer + X-ATH-Agent-ID over the session)');
    const goods = await assistant.json('GET', '/goods');
    log(pretty(goods));
    section('Assistant  creates an order');
    const items = [{ sku: 'coffee-1kg', qty: 2 }];
    const sealed = await session.encrypt(JSON.stringify({ items }), 'POST /api/orders');
    log(
      `  (optional AES-256-GCM with the session key: ${pretty(sealed)}; TLS + Bearer stay mandatory, AMB-34)`,
    );
    const order = await assistant.json('POST', '/orders', { items });
    log(pretty(order));

    section('Teardown  the assistant revokes its token');
    log(`  revoked: ${await assistant.revoke()}`);

    return {
      handshakeId: session.handshakeId,
      grantedScopes: session.scopeResult.scopes_granted,
      ttlRequested: PRE_AUTHORIZATION_SECONDS,
      ttlGranted,
      expiresIn: session.complete.expires_in,
      goods,
      order,
      agentKeyId: session.sessionKey.keyId,
      serviceKeyId: serviceKey?.keyId ?? null,
      steps,
    };
  } finally {
    for (const c of cleanups.reverse()) await c().catch(() => undefined);
  }
}
