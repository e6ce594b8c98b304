// Full handshakes/s on the SQLite store (or, as a same-run baseline, the memory store) (DESIGN.md: authorize → consent → callback → token): 10
// windows of 1,000, each handshake = authorize → launch → continue → callback (code exchange against
// the in-process fake AS) → token, driven in-process through the gateway's engine and OAuth bridge (no
// sockets). Each window's agents sign their attestations and register (Phase A, once per agent)
// before the window's clock starts.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { attestationsFor, benchGateway, handshake, registerAgent } from './common.mjs';
const WINDOWS = Number(process.argv[2] ?? 10);
const PER = Number(process.argv[3] ?? 1000);
// `memory` runs the same handshakes on the in-memory store: the engine's own cost, measured in the
// same run as a baseline for what SQLite adds.
const STORE = process.argv[4] ?? 'sqlite';
// Handshakes in flight. Each one waits on Web Crypto jobs (thread pool) and SQLite group commits
// between its steps, so with 16 in flight the process used ~1.1 of 2 cores and measured latency, not
// capacity (measured 2026-11-22: 16 → 868–925/s, 64 → 1,225–1,494/s on the same host and build).
const CONCURRENCY = Number(process.env.BENCH_HS_CONCURRENCY ?? 64);
const dir = mkdtempSync(join(tmpdir(), 'ath-bench-hs-'));
const { gw, keys } = await benchGateway({ storage: STORE === 'memory' ? 'memory:' : `sqlite:${join(dir, 'gw.db')}` });
const rates = [];
let next = 0;
for (let w = 0; w < WINDOWS; w++) {
  const atts = [];
  for (let k = 0; k < PER; k++) atts.push(await attestationsFor(keys, next + k));
  const regs = [];
  for (let k = 0; k < PER; k++) regs.push(await registerAgent(gw, next + k, atts[k]));
  const base = next;
  next += PER;
  let k = 0;
  const start = performance.now();
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (k < PER) {
        const mine = k++;
        await handshake(gw, base + mine, atts[mine], regs[mine]);
      }
    }),
  );
  rates.push(PER / ((performance.now() - start) / 1000));
}
await gw.close();
rmSync(dir, { recursive: true, force: true });
process.send({ rates });
