// RSS per active token: N tokens issued into the SQLite store and held warm in the gateway's hot-path
// token cache (each validated once, as a proxied call would). Tokens are written through the store
// (same records the token endpoint writes) to keep the run short.
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { attestationsFor, benchGateway, handshake } from './common.mjs';
const N = Number(process.argv[2] ?? 100_000);
const dir = mkdtempSync(join(tmpdir(), 'ath-bench-mem-'));
const { gw, keys } = await benchGateway({ storage: `sqlite:${join(dir, 'gw.db')}` });
const first = await handshake(gw, 0, await attestationsFor(keys, 0));
const hash = (t) => createHash('sha256').update(t).digest('base64url');
const template = await gw.store.getToken(hash(first.token));
const settle = async () => {
  for (let i = 0; i < 3; i++) {
    globalThis.gc?.();
    await new Promise((r) => setTimeout(r, 50));
  }
  return process.memoryUsage().rss;
};
const before = await settle();
const tokens = [];
const now = Date.now();
for (let i = 0; i < N; i++) {
  const token = `ath_tk_${randomBytes(32).toString('base64url')}`;
  tokens.push(token);
  await gw.store.createToken({ ...template, tokenHash: hash(token), sessionId: `bench-${i}`, createdAt: now, expiresAt: now + 3_600_000, revokedAt: null });
}
for (const token of tokens) {
  await gw.engine.validateAccess({ authorization: `Bearer ${token}`, agentIdHeader: first.agentId, providerId: 'bench', requiredScope: 'bench:read' });
}
const after = await settle();
const cached = gw.engine.tokenCache.size;
// The agent's raw token strings are the agents' (kept here only to validate); subtract them.
const tokenStrings = tokens.reduce((n, t) => n + t.length + 16, 0);
await gw.close();
rmSync(dir, { recursive: true, force: true });
process.send({ tokens: N, cached, rssBefore: before, rssAfter: after, perToken: (after - before - tokenStrings) / N });
