// Shared pieces of the gateway benchmark: an in-process fake upstream authorization server (a fetch
// function: discovery, token endpoint), an in-process identity-document fetcher, and a handshake
// driver that calls the gateway's own engine and OAuth bridge (the same code the HTTP routes call).
import { randomBytes } from 'node:crypto';
import { exportPublicJwk, generateAgentKeyPair, signAttestation } from '@athkit/core';
import { createGateway, parseConfig } from '../dist/index.js';
import { pino } from 'pino';

export const ISSUER = 'https://as.bench.test';

/** A fetch for oauth4webapi that answers like a fast authorization server, without any I/O. */
export function fakeAsFetch() {
  let n = 0;
  return async (input, init) => {
    const url = new URL(typeof input === 'string' ? input : input.url);
    const json = (body) => new Response(JSON.stringify(body), { status: 200, headers: { 'content-type': 'application/json' } });
    if (url.pathname.startsWith('/.well-known/')) {
      return json({
        issuer: ISSUER,
        authorization_endpoint: `${ISSUER}/authorize`,
        token_endpoint: `${ISSUER}/token`,
        code_challenge_methods_supported: ['S256'],
        authorization_response_iss_parameter_supported: true,
      });
    }
    if (url.pathname === '/token') {
      void init;
      n++;
      return json({ access_token: `upstream-at-${n}-${randomBytes(8).toString('hex')}`, token_type: 'Bearer', expires_in: 3600, scope: 'bench:read' });
    }
    return new Response('not found', { status: 404 });
  };
}

export async function agentKeys() {
  const { privateKey, publicKey } = await generateAgentKeyPair();
  return { privateKey, jwk: await exportPublicJwk(publicKey, 'k1') };
}

export const agentIdOf = (i) => `https://agent-${i}.bench.test/.well-known/agent.json`;

/** Identity documents for agent-N.bench.test, all with the same key, served from memory. */
export function fakeIdentityFetcher(jwk) {
  return {
    async fetch(url) {
      const agentId = url.toString();
      return {
        status: 200,
        contentType: 'application/json',
        body: JSON.stringify({ ath_version: '0.1', agent_id: agentId, name: 'Bench agent', developer: { name: 'Bench', id: 'bench' }, public_key: jwk }),
      };
    },
  };
}

export function benchConfig({ storage, port = 0, upstream = 'http://127.0.0.1:9/', rateLimited = false }) {
  return parseConfig(
    {
      dev: true,
      publicUrl: 'https://gw.bench.test',
      listen: { host: '127.0.0.1', port },
      storage,
      secrets: { cookieKey: Buffer.alloc(32, 1).toString('base64url'), vaultKey: Buffer.alloc(32, 2).toString('base64url'), adminKey: 'b'.repeat(40) },
      approval: { autoApprove: true },
      logLevel: 'warn',
      // Limits off unless asked for. The limited gateway takes per-agent units 30 at a time, as the
      // default limit (600/min) does: one store write per 30 proxied calls.
      rateLimits: rateLimited ? { perAgent: { limit: 1_000_000_000, windowSeconds: 60, batch: 30 }, perIp: { limit: 1_000_000_000, windowSeconds: 60 } } : { perAgent: false, perIp: false },
      providers: [
        {
          provider_id: 'bench',
          display_name: 'Bench API',
          available_scopes: ['bench:read'],
          oauth: { issuer: ISSUER, client_id: 'gw', client_secret_env: 'BENCH_SECRET' },
          api_base: upstream,
          scope_map: [{ methods: ['GET'], path: '/ping', scope: 'bench:read' }],
        },
      ],
    },
    { BENCH_SECRET: 'bench-secret' },
  );
}

export async function benchGateway(options) {
  const keys = options.keys ?? (await agentKeys());
  const gw = await createGateway(benchConfig(options), {
    logger: pino({ level: 'warn' }),
    env: { BENCH_SECRET: 'bench-secret' },
    fetch: fakeAsFetch(),
    identity: { fetcher: fakeIdentityFetcher(keys.jwk) },
    defaultMetrics: false,
  });
  return { gw, keys };
}

const BASE = 'https://gw.bench.test';

/** The attestations one handshake needs (signed by the agent, i.e. outside the gateway). */
export async function attestationsFor(keys, i) {
  const sign = (audience) => signAttestation({ privateKey: keys.privateKey, kid: 'k1', agentId: agentIdOf(i), audience });
  return { register: await sign(BASE), authorize: await sign(BASE), token: await sign(`${BASE}/ath/token`) };
}

/** Phase A for agent i (the agent's one-time registration; not part of the handshake target). */
export function registerAgent(gw, i, att) {
  return gw.engine.register({
    agent_id: agentIdOf(i),
    agent_attestation: att.register,
    developer: { name: 'Bench', id: 'bench' },
    requested_providers: [{ provider_id: 'bench', scopes: ['bench:read'] }],
  });
}

/**
 * One full handshake through the gateway's engine and bridge, exactly the calls its routes make:
 * [register, unless a registration is passed] → authorize → launch (browser binding) → the user
 * continues → upstream callback (state + cookie, code exchange with the fake AS) → token.
 */
export async function handshake(gw, i, att, registration) {
  const reg = registration ?? (await registerAgent(gw, i, att));
  const auth = await gw.engine.authorize({
    client_id: reg.client_id,
    agent_attestation: att.authorize,
    provider_id: 'bench',
    scopes: ['bench:read'],
    state: 'bench-state-' + 'x'.repeat(32),
  });
  const query = new URL(auth.authorization_url).searchParams;
  const launch = await gw.engine.launch(query, {});
  await gw.bridge.authorizationUrl(launch);
  const cookies = { [launch.cookieName]: launch.setBinding };
  const callback = new URLSearchParams({ code: `code-${i}`, state: query.get('state'), iss: ISSUER });
  await gw.bridge.handleCallback(gw.engine, callback, cookies);
  const tok = await gw.engine.exchangeToken({
    grant_type: 'authorization_code',
    client_id: reg.client_id,
    client_secret: reg.client_secret,
    agent_attestation: att.token,
    code: 'placeholder',
    ath_session_id: auth.ath_session_id,
  });
  return { token: tok.access_token, agentId: agentIdOf(i) };
}
