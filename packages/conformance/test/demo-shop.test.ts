/**
 * The suite against the demo shop (apps/demo-shop, fastify plugin), native mode, full profile.
 * The demo shop is developed in parallel; this test runs only when it can be loaded.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { formatTable, runConformance, type ApiMap } from '../src/index.js';
import { freePort } from './support/target.js';

interface Shop {
  url: string;
  close(): Promise<void>;
}
type CreateShop = (o: { dataDir: string; allowInsecureAgents?: string[]; logger?: false }) => Promise<Shop>;

const API_MAP: ApiMap = {
  operations: [
    { method: 'GET', path: '/products', scope: 'products:read' },
    { method: 'GET', path: '/cart', scope: 'cart:read' },
    { method: 'GET', path: '/orders', scope: 'orders:read' },
  ],
  unmapped: { method: 'DELETE', path: '/ath-conformance-unmapped' },
};

let createShop: CreateShop | null = null;
let shop: Shop | null = null;
let agentPort = 0;
const dataDir = mkdtempSync(join(tmpdir(), 'ath-conformance-shop-'));

beforeAll(async () => {
  try {
    const name: string = '@athkit/demo-shop';
    const mod = (await import(name)) as { createShop?: CreateShop };
    createShop = mod.createShop ?? null;
  } catch {
    createShop = null;
  }
  if (!createShop) return;
  agentPort = await freePort();
  shop = await createShop({ dataDir, allowInsecureAgents: [`127.0.0.1:${agentPort}`], logger: false });
}, 60_000);
afterAll(async () => {
  await shop?.close();
  rmSync(dataDir, { recursive: true, force: true });
});

describe('demo shop (native, full profile)', () => {
  it('has no unexpected failures', async (t) => {
    if (!shop) return t.skip();
    const report = await runConformance({
      target: shop.url,
      mode: 'native',
      profile: 'full',
      agentPort,
      apiMap: API_MAP,
      nativeLogin: { url: `${shop.url}/login`, username: 'alice', password: 'alice-password' },
    });
    expect(report.summary.FAIL, formatTable(report)).toBe(0);
  }, 180_000);
});
