import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeJwt, decodeProtectedHeader } from 'jose';
import { main } from '../src/main.js';
import { parseDuration } from '../src/user-commands.js';

/** `ath user …` (seed 000 step 0 on the user's side) against a minimal native service stub. */
describe('ath user (9-step handshake, user side)', () => {
  let home: string;
  let server: http.Server;
  let base: string;
  const devices: unknown[] = [];

  async function run(...argv: string[]): Promise<{ code: number; out: string; err: string }> {
    let out = '';
    let err = '';
    const code = await main(argv, {
      stdout: (t) => (out += t),
      stderr: (t) => (err += t),
      env: { ATH_HOME: home },
    });
    return { code, out, err };
  }

  beforeAll(async () => {
    home = mkdtempSync(join(tmpdir(), 'ath-user-'));
    server = http.createServer((req, res) => {
      let body = '';
      req.on('data', (c: Buffer) => (body += c.toString()));
      req.on('end', () => {
        if (req.url === '/.well-known/ath-app.json') {
          res.writeHead(200, { 'content-type': 'application/json' }).end(
            JSON.stringify({
              ath_version: '0.1',
              app_id: 'shop',
              name: 'Shop',
              auth: {
                type: 'oauth2',
                authorization_endpoint: `${base}/a`,
                token_endpoint: `${base}/t`,
                scopes_supported: ['goods:read'],
              },
              api_base: `${base}/api`,
              ath_endpoints: { handshake: `${base}/ath/handshake` },
              server_did: 'did:web:shop.test',
              server_jwks: { keys: [] },
            }),
          );
        } else if (req.url === '/ath/handshake/devices' && req.headers.cookie === 'session=alice') {
          devices.push(JSON.parse(body));
          res
            .writeHead(201, { 'content-type': 'application/json' })
            .end(JSON.stringify({ user_did: 'alice', kid: 'dev-1', server_did: 'did:web:shop.test' }));
        } else
          res
            .writeHead(403, { 'content-type': 'application/json' })
            .end(JSON.stringify({ code: 'USER_DENIED', message: 'sign in' }));
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    await new Promise<void>((r) => server.close(() => r()));
    rmSync(home, { recursive: true, force: true });
  });

  it('init writes a 0600 key file once; show prints it', async () => {
    const init = await run('user', 'init', '--json');
    expect(init.code, init.err).toBe(0);
    expect(JSON.parse(init.out)).toMatchObject({ kid: expect.any(String) as string });
    expect(statSync(join(home, 'user-key.json')).mode & 0o777).toBe(0o600);
    expect((await run('user', 'init')).code).toBe(3);
    expect((await run('user', 'show')).out).toContain('(not enrolled)');
  });

  it('enrol posts the public key (never d) with the service session and records user_did', async () => {
    const res = await run(
      'user',
      'enrol',
      base,
      '--cookie',
      'session=alice',
      '--push',
      'https://phone.example/push',
    );
    expect(res.code, res.err).toBe(0);
    expect(res.out).toContain('enrolled as alice');
    expect(devices.at(-1)).toMatchObject({
      push_endpoint: 'https://phone.example/push',
      public_key: { kty: 'EC', crv: 'P-256' },
    });
    expect(JSON.stringify(devices.at(-1))).not.toContain('"d"');
    expect((await run('user', 'enrol', base)).code).toBe(6); // not signed in: the service's 403 USER_DENIED
  });

  it('authorize prints a user-signed credential for the agent (seed 000: 2 hours), aud = server_did', async () => {
    const res = await run(
      'user',
      'authorize',
      '--service',
      base,
      '--agent',
      'https://assistant.example/.well-known/agent.json',
      '--scopes',
      'goods:read order:create',
      '--expires',
      '2h',
      '--json',
    );
    expect(res.code, res.err).toBe(0);
    const { credential } = JSON.parse(res.out) as { credential: string };
    expect(decodeProtectedHeader(credential).alg).toBe('ES256');
    const claims = decodeJwt(credential);
    expect(claims).toMatchObject({
      iss: 'alice',
      sub: 'https://assistant.example/.well-known/agent.json',
      aud: 'did:web:shop.test',
      scope: 'goods:read order:create',
    });
    expect(claims.exp! - claims.iat!).toBe(7200);
    expect(typeof claims.jti).toBe('string');
  });

  it('usage errors exit 2', async () => {
    expect((await run('user', 'nope')).code).toBe(2);
    expect((await run('user', 'confirm', 'x.json')).code).toBe(2);
    expect(parseDuration('90m')).toBe(5400);
    expect(() => parseDuration('2 hours')).toThrow();
  });
});
