import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync, chmodSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { generateAgentKey, publicJwk, type StoredCredentials } from '../../src/index.js';
import { FileCredentialStore, listenForRedirect, loadOrCreateAgentKey, readAgentKey, serveIdentityDocument, writeAgentKey, writePrivateFile } from '../../src/node/index.js';
import { freePort, useNetworkGuard } from '@athkit/testkit';

useNetworkGuard();
const dir = mkdtempSync(join(tmpdir(), 'athkit-client-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const mode = (p: string): number => statSync(p).mode & 0o777;

describe('key files', () => {
  it('writes 0600 files in 0700 directories and reads them back', async () => {
    const key = await generateAgentKey();
    const path = join(dir, 'keys', 'agent.pem');
    await writeAgentKey(path, key);
    expect(mode(path)).toBe(0o600);
    expect(mode(join(dir, 'keys'))).toBe(0o700);
    expect(await publicJwk(await readAgentKey(path))).toEqual(await publicJwk(key));
    await expect(writeAgentKey(path, key)).rejects.toThrow(/refusing to overwrite/);
    await writeAgentKey(path, await generateAgentKey(), { overwrite: true });
    expect(mode(path)).toBe(0o600);
    const jwkPath = join(dir, 'keys', 'agent.jwk');
    await writeAgentKey(jwkPath, key);
    expect(JSON.parse(readFileSync(jwkPath, 'utf8'))).toMatchObject({ kty: 'EC', kid: key.kid, alg: 'ES256' });
  });

  it('refuses a key file others can read', async () => {
    const path = join(dir, 'open.pem');
    await writeAgentKey(path, await generateAgentKey());
    chmodSync(path, 0o644);
    await expect(readAgentKey(path)).rejects.toThrow(/chmod 600/);
  });

  it('loadOrCreateAgentKey creates once, then loads', async () => {
    const path = join(dir, 'auto', 'key.pem');
    const a = await loadOrCreateAgentKey(path);
    const b = await loadOrCreateAgentKey(path);
    expect(b.kid).toBe(a.kid);
  });
});

describe('FileCredentialStore', () => {
  it('one 0700 directory per agent, one 0600 file per server', async () => {
    const store = new FileCredentialStore(join(dir, 'creds'));
    const creds = (agentId: string, server: string): StoredCredentials => ({ agentId, server, clientId: 'c', clientSecret: 's' });
    await store.save(creds('https://a.test/agent.json', 'https://gw.test'));
    await store.save(creds('https://a.test/agent.json', 'https://shop.test'));
    await store.save(creds('https://b.test/agent.json', 'https://gw.test'));
    const file = store.file('https://a.test/agent.json', 'https://gw.test');
    expect(mode(file)).toBe(0o600);
    expect(mode(store.agentDir('https://a.test/agent.json'))).toBe(0o700);
    expect(mode(join(dir, 'creds'))).toBe(0o700);
    expect(store.agentDir('https://a.test/agent.json')).not.toBe(store.agentDir('https://b.test/agent.json'));
    expect((await store.list('https://a.test/agent.json')).map((c) => c.server).sort()).toEqual(['https://gw.test', 'https://shop.test']);
    expect(await store.load('https://a.test/agent.json', 'https://gw.test')).toMatchObject({ clientSecret: 's' });
    expect(await store.load('https://a.test/agent.json', 'https://other.test')).toBeNull();
    // A file moved to another name is not mistaken for another server's credentials.
    writeFileSync(store.file('https://a.test/agent.json', 'https://x.test'), readFileSync(file));
    expect(await store.load('https://a.test/agent.json', 'https://x.test')).toBeNull();
    await store.remove('https://a.test/agent.json', 'https://gw.test');
    expect(await store.load('https://a.test/agent.json', 'https://gw.test')).toBeNull();
  });
});

describe('FileCredentialStore with a key (CL-15, CL-16)', () => {
  const creds = (server: string): StoredCredentials => ({
    agentId: 'https://a.test/agent.json',
    server,
    clientId: 'c',
    clientSecret: 'client-secret-value-0123456789',
    tokens: { mail: { accessToken: 'ath_tk_secret-token-value', expiresAt: 1, scopes: ['mail:read'] } },
  } as unknown as StoredCredentials);
  const key = Buffer.alloc(32, 3);

  it('files are sealed: no secret or token on disk, and they open with the key only', async () => {
    const store = new FileCredentialStore(join(dir, 'sealed'), { key });
    expect(store.encrypted).toBe(true);
    await store.save(creds('https://gw.test'));
    const file = store.file('https://a.test/agent.json', 'https://gw.test');
    const text = readFileSync(file, 'utf8');
    expect(mode(file)).toBe(0o600);
    expect(text).not.toContain('client-secret-value');
    expect(text).not.toContain('secret-token-value');
    expect(JSON.parse(text)).toMatchObject({ format: 'athkit-credentials-sealed-v1', agentId: 'https://a.test/agent.json', server: 'https://gw.test' });
    expect(await store.load('https://a.test/agent.json', 'https://gw.test')).toEqual(creds('https://gw.test'));
    expect(await new FileCredentialStore(join(dir, 'sealed'), { key: key.toString('base64url') }).list('https://a.test/agent.json')).toEqual([creds('https://gw.test')]);

    for (const other of [new FileCredentialStore(join(dir, 'sealed')), new FileCredentialStore(join(dir, 'sealed'), { key: Buffer.alloc(32, 4) })]) {
      const err = await other.load('https://a.test/agent.json', 'https://gw.test').catch((e: unknown) => e);
      expect(err).toMatchObject({ code: 'credentials_locked' });
      expect(String((err as Error).message)).not.toContain('client-secret-value');
    }
  });

  it('a sealed file renamed and relabelled for another server does not open (agent and server are authenticated)', async () => {
    const store = new FileCredentialStore(join(dir, 'sealed2'), { key });
    await store.save(creds('https://gw.test'));
    const moved = JSON.parse(readFileSync(store.file('https://a.test/agent.json', 'https://gw.test'), 'utf8')) as Record<string, unknown>;
    writeFileSync(store.file('https://a.test/agent.json', 'https://evil.test'), JSON.stringify({ ...moved, server: 'https://evil.test' }));
    expect(await store.load('https://a.test/agent.json', 'https://evil.test').catch((e: unknown) => e)).toMatchObject({ code: 'credentials_locked' });
  });

  it('a plain file is read and sealed in place; a key that is not 32 bytes is refused when used', async () => {
    await new FileCredentialStore(join(dir, 'plain')).save(creds('https://gw.test'));
    const store = new FileCredentialStore(join(dir, 'plain'), { key });
    const file = store.file('https://a.test/agent.json', 'https://gw.test');
    expect(readFileSync(file, 'utf8')).toContain('client-secret-value');
    expect(await store.load('https://a.test/agent.json', 'https://gw.test')).toEqual(creds('https://gw.test'));
    expect(readFileSync(file, 'utf8')).not.toContain('client-secret-value');
    const short = new FileCredentialStore(join(dir, 'plain'), { key: Buffer.alloc(16) });
    expect(await short.save(creds('https://gw.test')).catch((e: unknown) => e)).toMatchObject({ code: 'invalid_argument' });
  });
});

describe('writePrivateFile', () => {
  it('exclusive: of concurrent writers exactly one wins, whole, and the others get EEXIST; no temp files are left', async () => {
    const path = join(dir, 'once', 'key');
    const contents = Array.from({ length: 12 }, (_, i) => `${String(i).repeat(4096)}\n`);
    const results = await Promise.allSettled(contents.map((c) => writePrivateFile(path, c, { exclusive: true })));
    const won = results.flatMap((r, i) => (r.status === 'fulfilled' ? [i] : []));
    expect(won).toHaveLength(1);
    for (const r of results) if (r.status === 'rejected') expect((r.reason as NodeJS.ErrnoException).code).toBe('EEXIST');
    expect(readFileSync(path, 'utf8')).toBe(contents[won[0]!]);
    expect(mode(path)).toBe(0o600);
    expect(readdirSync(join(dir, 'once'))).toEqual(['key']);
  });
});

describe('serveIdentityDocument', () => {
  it('serves the document at the agent_id with Cache-Control: max-age=300 (CL-02)', async () => {
    const key = await generateAgentKey();
    const served = await serveIdentityDocument({ key, name: 'A', developer: { name: 'D', id: 'd' } });
    try {
      expect(served.agentId).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/\.well-known\/agent\.json$/);
      const res = await fetch(served.agentId);
      expect(res.headers.get('cache-control')).toBe('max-age=300');
      expect(await res.json()).toMatchObject({ agent_id: served.agentId, public_key: { kid: key.kid } });
      expect((await fetch(new URL('/other', served.agentId))).status).toBe(404);
      expect((await fetch(served.agentId, { method: 'POST' })).status).toBe(405);
    } finally {
      await served.close();
    }
  });
});

describe('listenForRedirect', () => {
  it('resolves with the first redirect on the path that carries state', async () => {
    const port = await freePort();
    const listener = await listenForRedirect(`http://127.0.0.1:${port}/cb`, { timeoutMs: 5000 });
    try {
      expect((await fetch(`http://127.0.0.1:${port}/other?state=x`)).status).toBe(404);
      const page = await fetch(`http://127.0.0.1:${port}/cb?state=s1&code=c1`);
      expect(await page.text()).toMatch(/Authorization complete/);
      const url = await listener.result;
      expect(url.searchParams.get('code')).toBe('c1');
    } finally {
      await listener.close();
    }
  });

  it('refuses a non-loopback redirect URI', async () => {
    await expect(listenForRedirect('https://agent.example/cb')).rejects.toMatchObject({ code: 'invalid_argument' });
  });
});
