import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createShop, DEMO_USERS, hashPassword, ShopDb, verifyPassword, type Shop } from '../src/index.js';

let shop: Shop;
let dataDir: string;
beforeAll(async () => {
  dataDir = mkdtempSync(join(tmpdir(), 'ath-shop-'));
  shop = await createShop({ dataDir, logger: false });
});
afterAll(async () => {
  await shop.close();
  rmSync(dataDir, { recursive: true, force: true });
});

const login = (username: string, password: string, returnTo = '/') =>
  shop.app.inject({
    method: 'POST',
    url: '/login',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    payload: new URLSearchParams({ username, password, return_to: returnTo }).toString(),
  });

describe('ATH Shop', () => {
  it('listens on 127.0.0.1 with a real port and serves its discovery document', async () => {
    expect(shop.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    const res = await fetch(`${shop.url}/.well-known/ath-app.json`, { signal: AbortSignal.timeout(5000) });
    expect(res.status).toBe(200);
    expect(((await res.json()) as { app_id: string }).app_id).toBe('com.ath-shop.ecommerce');
  });

  it('passwords are scrypt hashes, never stored in clear', async () => {
    const hash = shop.db.passwordHash('alice')!;
    expect(hash).toMatch(/^scrypt\$/);
    expect(hash).not.toContain(DEMO_USERS['alice']!.password);
    expect(await verifyPassword('alice-password', hash)).toBe(true);
    expect(await verifyPassword('wrong', hash)).toBe(false);
    expect(await verifyPassword('x', 'garbage')).toBe(false);
    expect(await hashPassword('x')).not.toBe(await hashPassword('x'));
  });

  it('login sets an HttpOnly session cookie and follows only local return_to paths', async () => {
    const ok = await login('alice', 'alice-password', '/ath/authorize/start?state=x');
    expect(ok.statusCode).toBe(303);
    expect(ok.headers.location).toBe('/ath/authorize/start?state=x');
    expect(String(ok.headers['set-cookie'])).toMatch(/^shop_session=[\w-]+; Path=\/; Max-Age=\d+; HttpOnly; SameSite=Lax; Secure$/);
    for (const evil of ['https://evil.test/', '//evil.test/', '/\\evil.test']) {
      expect((await login('alice', 'alice-password', evil)).headers.location).toBe('/');
    }
    const bad = await login('alice', 'nope');
    expect(bad.statusCode).toBe(401);
    expect(bad.body).toContain('Unknown user or wrong password.');
    expect(bad.headers['set-cookie']).toBeUndefined();
  });

  it('the home page shows the signed-in user and escapes under a strict CSP', async () => {
    const cookie = String((await login('bob', 'bob-password')).headers['set-cookie']).split(';')[0]!;
    const res = await shop.app.inject({ method: 'GET', url: '/', headers: { cookie } });
    expect(res.statusCode).toBe(200);
    expect(res.body).toContain('Signed in as <strong>bob</strong>');
    expect(String(res.headers['content-security-policy'])).toContain("default-src 'none'");
    const page = await shop.app.inject({ method: 'GET', url: '/login?return_to="><script>x</script>' });
    expect(page.body).not.toContain('<script>x');
  });

  it('the API is ATH-protected (C-167): no token → 401 TOKEN_INVALID, unknown API path → token first', async () => {
    for (const [method, url] of [
      ['GET', '/api/products'],
      ['GET', '/api/cart'],
      ['POST', '/api/cart'],
      ['GET', '/api/orders'],
      ['POST', '/api/orders'],
      ['DELETE', '/api/orders'],
      ['GET', '/api/admin'],
    ] as const) {
      const res = await shop.app.inject({ method, url });
      expect(res.statusCode, `${method} ${url}`).toBe(401);
      expect(res.json().code).toBe('TOKEN_INVALID');
    }
  });

  it('data survives a restart (SQLite files in the data directory)', async () => {
    const db = await ShopDb.open(dataDir);
    try {
      expect(db.products().length).toBe(5);
      expect(db.passwordHash('alice')).toBe(shop.db.passwordHash('alice'));
    } finally {
      db.close();
    }
  });
});
