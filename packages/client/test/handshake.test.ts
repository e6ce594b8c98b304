import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateServerSigningKey, signServerTranscript, type ServerSigningKey } from '@athkit/core';
import { exportJWK } from 'jose';
import { AthClientError, NativeClient, UserWallet, handshakeDiscovery } from '../src/index.js';

/**
 * Client-side 9-step checks (checklist Part 3, CL-21…CL-28) against a scripted service: the agent
 * aborts before step 3 when the service's key or transcript signature is not the published one
 * (CL-23). The full happy path runs in apps/handshake-demo (npm run demo:handshake).
 */
describe('NativeClient.handshake: server checks (CL-23)', () => {
  let server: http.Server;
  let base: string;
  let published: ServerSigningKey;
  let signer: ServerSigningKey;
  let tamper: 'none' | 'key' | 'nonce' | 'did' = 'none';
  const requests: Record<string, unknown>[] = [];

  beforeAll(async () => {
    published = await generateServerSigningKey('srv-1');
    signer = published;
    server = http.createServer((req, res) => {
      let body = '';
      req.on('data', (c: Buffer) => (body += c.toString()));
      req.on('end', () => {
        void (async () => {
          if (req.url === '/.well-known/ath-app.json') {
            res.writeHead(200, { 'content-type': 'application/json' }).end(
              JSON.stringify({
                ath_version: '0.1',
                app_id: 'shop',
                name: 'Shop',
                auth: {
                  type: 'oauth2',
                  authorization_endpoint: `${base}/a`,
                  token_endpoint: `${base}/ath/token`,
                  scopes_supported: ['goods:read'],
                },
                api_base: `${base}/api`,
                ath_endpoints: { handshake: `${base}/ath/handshake` },
                server_did: 'did:web:shop.test',
                server_jwks: { keys: [published.publicJwk] },
              }),
            );
            return;
          }
          if (req.url === '/ath/handshake') {
            const hello = JSON.parse(body) as Record<string, unknown>;
            requests.push(hello);
            const key = tamper === 'key' ? await generateServerSigningKey('srv-evil') : signer;
            const nonceB = 'B'.repeat(43);
            const signature = await signServerTranscript(key, {
              typ: 'ath-hs-server',
              handshake_id: 'ath_hs_1',
              client_did: hello['client_did'] as string,
              server_did: 'did:web:shop.test',
              nonce_a: tamper === 'nonce' ? 'A'.repeat(43) : (hello['nonce'] as string),
              nonce_b: nonceB,
              version: '0.1',
              aud: hello['client_did'] as string,
              iat: Math.floor(Date.now() / 1000),
            });
            res.writeHead(201, { 'content-type': 'application/json' }).end(
              JSON.stringify({
                type: 'handshake_response',
                handshake_id: 'ath_hs_1',
                server_did: tamper === 'did' ? 'did:web:evil.test' : 'did:web:shop.test',
                server_pubkey: key.publicJwk,
                version: '0.1',
                capabilities: ['ES256'],
                nonce: nonceB,
                signature,
                timestamp: Math.floor(Date.now() / 1000),
                expires_in: 300,
              }),
            );
            return;
          }
          res.writeHead(500).end();
        })();
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(() => new Promise<void>((r) => server.close(() => r())));

  async function client(): Promise<NativeClient> {
    const pair = await crypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, true, [
      'sign',
      'verify',
    ]);
    const c = await NativeClient.discover(base, {
      agent: {
        agentId: 'https://assistant.test/.well-known/agent.json',
        privateKey: pair.privateKey,
        kid: 'k1',
      },
    });
    await c.store.save({
      agentId: c.agent.agentId,
      server: c.baseUrl,
      clientId: 'ath_c1',
      clientSecret: 's1',
      agentStatus: 'approved',
    } as never);
    return c;
  }

  it('handshakeDiscovery reads ath_endpoints.handshake, server_jwks and server_did; missing → handshake_unsupported', () => {
    expect(() => handshakeDiscovery({})).toThrow(
      expect.objectContaining({ code: 'handshake_unsupported' }) as Error,
    );
  });

  for (const [mode, what] of [
    ['key', 'a key that is not in server_jwks'],
    ['nonce', 'a transcript over another nonce A'],
    ['did', 'another server_did'],
  ] as const) {
    it(`CL-23: step 2 with ${what} aborts before step 3 (handshake_failed)`, async () => {
      tamper = mode;
      const c = await client();
      const err = await c.handshake({ scopes: ['goods:read'], credential: 'x.y.z' }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(AthClientError);
      expect((err as AthClientError).code).toBe('handshake_failed');
    });
  }

  it('CL-22: nonce A is fresh, ≥ 128 bits, timestamps in Unix seconds; client_pubkey is the public key only', async () => {
    tamper = 'none';
    const c = await client();
    await c.handshake({ scopes: ['goods:read'], credential: 'x.y.z' }).catch(() => undefined);
    await c.handshake({ scopes: ['goods:read'], credential: 'x.y.z' }).catch(() => undefined);
    const [a, b] = requests.slice(-2);
    expect(a!['nonce']).not.toBe(b!['nonce']);
    expect(Buffer.from(a!['nonce'] as string, 'base64url').length).toBeGreaterThanOrEqual(16);
    expect(Math.abs((a!['timestamp'] as number) - Date.now() / 1000)).toBeLessThan(5);
    expect(a!['client_pubkey']).not.toHaveProperty('d');
  });

  it('UserWallet: the credential is user-signed; confirmations only for requested scopes', async () => {
    const wallet = await UserWallet.generate('alice');
    const jwt = await wallet.preAuthorize({
      clientDid: 'https://assistant.test/a.json',
      audience: 'did:web:shop.test',
      scopes: ['goods:read'],
      expiresInSeconds: 7200,
    });
    expect(jwt.split('.')).toHaveLength(3);
    const exported = await wallet.exportPrivateJwk();
    const again = await UserWallet.fromPrivateJwk(exported, 'alice');
    expect(again.kid).toBe(wallet.kid);
    expect(
      await exportJWK(
        (await crypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, true, ['sign'])).publicKey,
      ),
    ).toHaveProperty('x');
    const request = {
      type: 'authorization_confirmation_request' as const,
      request_id: 'r1',
      handshake_id: 'h1',
      client_did: 'https://assistant.test/a.json',
      client_info: { name: 'A', developer: { name: 'D', id: 'd' } },
      requested_scopes: ['goods:read'] as [string],
      expires_at: 1,
      timestamp: 1,
      confirmation_endpoint: 'https://shop.test/ath/handshake/h1/confirmation',
      server_did: 'did:web:shop.test',
      signature: 'a.b.c',
    };
    await expect(
      wallet.confirmation(request, { approve: true, scopes: ['order:create'] }),
    ).rejects.toMatchObject({ code: 'invalid_argument' });
    const denied = await wallet.confirmation(request, { approve: false });
    expect(denied).toMatchObject({ approved: false, approved_scopes: [] });
    await expect(wallet.verifyRequest(request, { keys: [published.publicJwk] })).rejects.toMatchObject({
      code: 'invalid_response',
    });
  });
});
