import { execFileSync } from 'node:child_process';
import { createServer } from 'node:net';
import type { AddressInfo } from 'node:net';
import { chmodSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ath, start } from './support/cli.js';
import { startTestServer, type TestServer, useNetworkGuard } from '@athkit/testkit';
import { FileCredentialStore } from '@athkit/client/node';

useNetworkGuard();

const root = join(import.meta.dirname, '..', '..', '..');
let server: TestServer;
const homes: string[] = [];
const newHome = (): string => {
  const h = mkdtempSync(join(tmpdir(), 'ath-cli-'));
  homes.push(h);
  return h;
};
const mode = (p: string): number => statSync(p).mode & 0o777;

beforeAll(async () => {
  execFileSync('npx', ['tsc', '-b', 'packages/cli/tsconfig.lib.json'], { cwd: root, stdio: 'pipe' });
  server = await startTestServer();
}, 180_000);
afterAll(async () => {
  for (const h of homes) rmSync(h, { recursive: true, force: true });
  await server.close();
});

/** A home with a key, agent identity served by `ath identity --serve`, and config filled in. */
async function configuredHome(): Promise<{ home: string; stop: () => Promise<void>; agentId: string }> {
  const home = newHome();
  expect((await ath(['keygen'], home)).code).toBe(0);
  for (const [k, v] of [
    ['name', 'CLI Agent'],
    ['developer_name', 'Example Corp'],
    ['developer_id', 'example-corp'],
  ]) {
    expect((await ath(['config', 'set', k!, v!], home)).code).toBe(0);
  }
  const serving = start(['identity', '--serve', '--json'], home);
  const m = await serving.waitFor(/"agent_id": "([^"]+)"/);
  const agentId = m[1]!;
  expect((await ath(['config', 'set', 'agent_id', agentId], home)).code).toBe(0);
  return {
    home,
    agentId,
    stop: async () => {
      serving.child.kill('SIGTERM');
      expect((await serving.done).code).toBe(0);
    },
  };
}

describe('ath: help, usage and configuration', () => {
  it('--help lists every command and the exit codes; each command has --help', async () => {
    const home = newHome();
    const top = await ath(['--help'], home);
    expect(top.code).toBe(0);
    for (const c of ['keygen', 'identity', 'discover', 'register', 'authorize', 'token', 'call', 'status', 'revoke', 'config']) {
      expect(top.stdout).toContain(`  ${c}`);
      const help = await ath([c, '--help'], home);
      expect(help.code, c).toBe(0);
      expect(help.stdout).toContain(`Usage: ath ${c}`);
      expect(help.stdout).toContain('Exit codes:');
    }
    expect(top.stdout).toMatch(/7 {2}no usable token/);
  });

  it('usage errors exit 2 with a readable message', async () => {
    const home = newHome();
    const unknown = await ath(['frobnicate'], home);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toMatch(/unknown command "frobnicate"/);
    const badOption = await ath(['keygen', '--colour'], home);
    expect(badOption.code).toBe(2);
    expect(badOption.stderr).toMatch(/--colour/);
    expect((await ath([], home)).code).toBe(2);
    const json = await ath(['call', 'GET', '--json'], home);
    expect(json.code).toBe(2);
    expect(JSON.parse(json.stderr)).toMatchObject({ error: { code: 'usage' } });
  });

  it('missing configuration exits 3 with a hint', async () => {
    const home = newHome();
    const r = await ath(['register', '--scopes', 'x', '--server', server.url], home);
    expect(r.code).toBe(3);
    expect(r.stderr).toMatch(/agent_id is not configured/);
    expect(r.stderr).toMatch(/hint: run `ath config set agent_id/);
  });

  it('keygen writes a 0600 key in a 0700 directory and refuses to overwrite', async () => {
    const home = newHome();
    const r = await ath(['keygen', '--json', '--kid', 'k1'], home);
    expect(r.code).toBe(0);
    const out = JSON.parse(r.stdout) as { key_file: string; kid: string; public_jwk: Record<string, string> };
    expect(out.kid).toBe('k1');
    expect(out.public_jwk).not.toHaveProperty('d');
    expect(mode(out.key_file)).toBe(0o600);
    expect(mode(join(home, 'ath'))).toBe(0o700);
    const again = await ath(['keygen'], home);
    expect(again.code).toBe(3);
    expect(again.stderr).toMatch(/already exists/);
    expect((await ath(['keygen', '--force', '--format', 'jwk'], home)).code).toBe(0);
    expect(readFileSync(out.key_file, 'utf8')).toMatch(/"d":/);
  });

  it('config set/get/list/unset; config.json is 0600', async () => {
    const home = newHome();
    expect((await ath(['config', 'set', 'server', server.url], home)).code).toBe(0);
    const get = await ath(['config', 'get', 'server'], home);
    expect(get.stdout.trim()).toBe(server.url);
    expect(mode(join(home, 'ath', 'config.json'))).toBe(0o600);
    expect(JSON.parse((await ath(['config', '--json'], home)).stdout)).toMatchObject({ server: server.url });
    expect((await ath(['config', 'set', 'colour', 'red'], home)).code).toBe(2);
    expect((await ath(['config', 'unset', 'server'], home)).code).toBe(0);
    expect((await ath(['config', 'get', 'server'], home)).code).toBe(3);
  });

  it('identity prints a schema-valid document with the public key only', async () => {
    const { home, agentId, stop } = await configuredHome();
    try {
      const r = await ath(['identity'], home);
      expect(r.code).toBe(0);
      const doc = JSON.parse(r.stdout) as Record<string, unknown>;
      expect(doc).toMatchObject({ ath_version: '0.1', agent_id: agentId, name: 'CLI Agent', developer: { id: 'example-corp' } });
      expect(r.stdout).not.toMatch(/"d"/);
      const served = await (await fetch(agentId)).json();
      expect(served).toEqual(doc);
    } finally {
      await stop();
    }
  });
});

describe('ath: a full flow against an in-process ATH server', () => {
  it('discover → register → authorize (polling) → token → call → status → revoke', async () => {
    const { home, agentId, stop } = await configuredHome();
    try {
      const discovered = await ath(['discover', server.url, '--save'], home);
      expect(discovered.code).toBe(0);
      expect(discovered.stdout).toMatch(/native service "Test Shop" \(app_id shop\)/);

      const reg = await ath(['register', '--scopes', 'products:read,orders:write,admin', '--json'], home);
      expect(reg.code, reg.stderr).toBe(0);
      const regOut = JSON.parse(reg.stdout) as Record<string, unknown>;
      expect(regOut).toMatchObject({ agent_status: 'approved', reused: false });
      expect(String(regOut['client_secret'])).toMatch(/hidden/);
      // The secret is stored 0600, one directory per agent, sealed with credentials.key (CL-15).
      const onDisk = execFileSync('find', [join(home, 'ath', 'credentials'), '-name', '*.json', '-exec', 'cat', '{}', ';']).toString();
      expect(JSON.parse(onDisk)).toMatchObject({ format: 'athkit-credentials-sealed-v1', agentId, server: server.url });
      expect(mode(join(home, 'ath', 'credentials.key'))).toBe(0o600);
      const key = readFileSync(join(home, 'ath', 'credentials.key'), 'utf8').trim();
      const creds = (await new FileCredentialStore(join(home, 'ath', 'credentials'), { key }).load(agentId, server.url))!;
      expect(creds.clientSecret).toMatch(/.{16,}/);
      expect(onDisk).not.toContain(creds.clientSecret);
      expect(reg.stdout).not.toContain(creds.clientSecret);
      const again = await ath(['register', '--scopes', 'products:read'], home);
      expect(again.code).toBe(0);
      expect(again.stdout).toMatch(/already registered/);

      const authorizing = start(['authorize', '--scopes', 'products:read,orders:write', '--interval', '0.05'], home);
      const url = (await authorizing.waitFor(/(http:\/\/127\.0\.0\.1:\d+\/ath\/authorize\/start\?\S+)/))[1]!;
      await authorizing.waitFor(/Waiting for approval/);
      await server.consent(url, { scopes: ['products:read'] });
      const authorized = await authorizing.done;
      expect(authorized.code, authorized.stderr).toBe(0);
      expect(authorized.stdout).toMatch(/scopes: +products:read\n/);
      expect(authorized.stdout).toMatch(/hidden/);

      const tok = await ath(['token', '--json', '--show-secret'], home);
      expect(tok.code).toBe(0);
      const token = JSON.parse(tok.stdout) as { access_token: string; scopes: string[] };
      expect(token.access_token).toMatch(/^ath_/);
      expect(token.scopes).toEqual(['products:read']);

      const products = await ath(['call', 'GET', '/products'], home);
      expect(products.code, products.stderr).toBe(0);
      expect(JSON.parse(products.stdout)).toEqual([{ id: 'p1', name: 'Tea', price: 4 }]);
      const refused = await ath(['call', 'POST', '/orders', '--data', '{"product":"p1"}'], home);
      expect(refused.code).toBe(4);
      expect(refused.stderr).toMatch(/SCOPE_NOT_APPROVED, HTTP 403/);
      const missing = await ath(['call', 'GET', '/products/none', '--json'], home);
      expect(missing.code).toBe(8);
      expect(JSON.parse(missing.stdout)).toMatchObject({ status: 404 });

      const st = await ath(['status', '--json'], home);
      expect(st.code).toBe(0);
      expect(JSON.parse(st.stdout)).toMatchObject({ agent_id: agentId, agent_status: 'approved' });
      expect(st.stdout).not.toContain('client_secret');

      const rev = await ath(['revoke'], home);
      expect(rev.code).toBe(0);
      expect(rev.stdout).toMatch(/revoked the token for shop/);
      const after = await ath(['call', 'GET', '/products'], home);
      expect(after.code).toBe(7);
      expect(after.stderr).toMatch(/authorize/);
    } finally {
      await stop();
    }
  });

  it('authorize --no-wait, then token after the user consented', async () => {
    const { home, stop } = await configuredHome();
    try {
      expect((await ath(['register', '--server', server.url, '--scopes', 'products:read'], home)).code).toBe(0);
      const r = await ath(['authorize', '--scopes', 'products:read', '--no-wait', '--json'], home);
      expect(r.code).toBe(0);
      const { authorization_url } = JSON.parse(r.stdout) as { authorization_url: string };
      const early = await ath(['token', '--wait-timeout', '0.2', '--interval', '0.05'], home);
      expect(early.code).toBe(6);
      expect(early.stderr).toMatch(/not completed the authorization in time/);
      await server.consent(authorization_url);
      const tok = await ath(['token'], home);
      expect(tok.code, tok.stderr).toBe(0);
      expect(tok.stdout).toMatch(/access token for shop/);
    } finally {
      await stop();
    }
  });

  it('a user denial exits 6', async () => {
    const { home, stop } = await configuredHome();
    try {
      expect((await ath(['register', '--server', server.url, '--scopes', 'products:read'], home)).code).toBe(0);
      const authorizing = start(['authorize', '--scopes', 'products:read', '--interval', '0.05', '--json'], home);
      const url = (await authorizing.waitFor(/(http:\/\/127\.0\.0\.1:\d+\/ath\/authorize\/start\?\S+)/))[1]!;
      await server.consent(url, { decision: 'denied' });
      const done = await authorizing.done;
      expect(done.code).toBe(6);
      expect(JSON.parse(done.stderr.split('\n').filter(Boolean).pop()!)).toMatchObject({ error: { code: 'USER_DENIED', status: 403 } });
    } finally {
      await stop();
    }
  });

  it('an unreachable server exits 5', async () => {
    const { home, stop } = await configuredHome();
    try {
      const r = await ath(['discover', 'http://127.0.0.1:9'], home);
      expect(r.code).toBe(5);
      expect(r.stderr).toMatch(/network/);
    } finally {
      await stop();
    }
  });
});

describe('ath authorize --listen', () => {
  it('waits on a registered loopback redirect URI and checks state', async () => {
    const { home, stop } = await configuredHome();
    try {
      const port = await new Promise<number>((resolve) => {
        const probe = createServer();
        probe.listen(0, '127.0.0.1', () => {
          const p = (probe.address() as AddressInfo).port;
          probe.close(() => resolve(p));
        });
      });
      const redirect = `http://127.0.0.1:${port}/callback`;
      expect((await ath(['register', '--server', server.url, '--scopes', 'products:read', '--redirect-uri', redirect], home)).code).toBe(0);
      const authorizing = start(['authorize', '--scopes', 'products:read', '--listen', '--redirect-uri', redirect], home);
      const url = (await authorizing.waitFor(/(http:\/\/127\.0\.0\.1:\d+\/ath\/authorize\/start\?\S+)/))[1]!;
      await authorizing.waitFor(/Waiting for the browser/);
      const location = await server.consent(url);
      expect(location).toMatch(new RegExp(`^${redirect}\\?code=`));
      const page = await fetch(location!);
      expect(await page.text()).toMatch(/Authorization complete/);
      const done = await authorizing.done;
      expect(done.code, done.stderr).toBe(0);
      expect(done.stdout).toMatch(/access token for shop/);
    } finally {
      await stop();
    }
  });
});

describe('ath: credentials at rest (CL-15, CL-16)', () => {
  const registered = async (env: Record<string, string> = {}) => {
    const configured = await configuredHome();
    expect((await ath(['discover', server.url, '--save'], configured.home, env)).code).toBe(0);
    const reg = await ath(['register', '--scopes', 'products:read'], configured.home, env);
    expect(reg.code, reg.stderr).toBe(0);
    return configured;
  };

  it('ATH_CREDENTIALS_KEY seals the files instead of a key file; without it, or with another key, they do not open (exit 3, with a hint)', async () => {
    const key = Buffer.alloc(32, 7).toString('base64url');
    const { home, stop } = await registered({ ATH_CREDENTIALS_KEY: key });
    try {
      expect(() => statSync(join(home, 'ath', 'credentials.key'))).toThrow();
      expect((await ath(['register', '--scopes', 'products:read'], home, { ATH_CREDENTIALS_KEY: key })).stdout).toMatch(/already registered/);
      for (const env of [{}, { ATH_CREDENTIALS_KEY: Buffer.alloc(32, 8).toString('base64url') }] as Record<string, string>[]) {
        const locked = await ath(['register', '--scopes', 'products:read'], home, env);
        expect(locked.code).toBe(3);
        expect(locked.stderr).toMatch(/credentials_locked/);
        expect(locked.stderr).toMatch(/ATH_CREDENTIALS_KEY/);
      }
      const bad = await ath(['register', '--scopes', 'products:read'], home, { ATH_CREDENTIALS_KEY: 'short-and-secret' });
      expect(bad.code).toBe(3);
      expect(bad.stderr).toMatch(/ATH_CREDENTIALS_KEY must be 32 random bytes/);
      expect(bad.stderr).not.toContain('short-and-secret');
    } finally {
      await stop();
    }
  });

  it('a credential key file others can read is refused (exit 3, chmod hint)', async () => {
    const { home, stop } = await registered();
    try {
      chmodSync(join(home, 'ath', 'credentials.key'), 0o644);
      const r = await ath(['register', '--scopes', 'products:read'], home);
      expect(r.code).toBe(3);
      expect(r.stderr).toMatch(/readable by other users/);
      expect(r.stderr).toMatch(/chmod 600/);
    } finally {
      await stop();
    }
  });

  it('a plain file written before sealing is read, and sealed the next time it is used', async () => {
    const { home, agentId, stop } = await registered();
    try {
      const key = readFileSync(join(home, 'ath', 'credentials.key'), 'utf8').trim();
      const sealedStore = new FileCredentialStore(join(home, 'ath', 'credentials'), { key });
      const creds = (await sealedStore.load(agentId, server.url))!;
      // Written the old way (no key): clear JSON.
      await new FileCredentialStore(join(home, 'ath', 'credentials')).save(creds);
      const file = sealedStore.file(agentId, server.url);
      expect(readFileSync(file, 'utf8')).toContain(creds.clientSecret);
      expect((await ath(['register', '--scopes', 'products:read'], home)).stdout).toMatch(/already registered/);
      expect(readFileSync(file, 'utf8')).not.toContain(creds.clientSecret);
      expect(await sealedStore.load(agentId, server.url)).toEqual(creds);
    } finally {
      await stop();
    }
  });
});
