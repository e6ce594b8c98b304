#!/usr/bin/env node
// Attestation verification benchmark (DESIGN.md performance target: >= 0.85 x bare jose jwtVerify).
//
// Compares, in one process and in alternating rounds:
//   bare     jose jwtVerify(token, key, { algorithms: ['ES256'] })
//   athkit   AttestationVerifier.verify(token, ...) with a warm identity cache and a MemoryStore
//            replay check (every token has a fresh jti)
// Both use the same CryptoKey; tokens are pre-signed so only verification is timed. Each side is
// measured sequentially (one verification at a time) and with 32 verifications in flight, the two
// sides interleaved in small chunks so that noise on a shared machine affects both equally.
//
// Runs against the BUILT package: `npx tsc -b packages/core/tsconfig.lib.json` first.
// Usage: node tools/bench/attestation.mjs [--tokens 2000] [--rounds 5] [--chunk 100]

import { jwtVerify } from 'jose';

const core = await import('../../packages/core/dist/index.js');
const pick = async (name, subpath) =>
  core[name] ?? (await import(`../../packages/core/dist/${subpath}/index.js`))[name];
const AttestationVerifier = await pick('AttestationVerifier', 'attestation');
const IdentityResolver = await pick('IdentityResolver', 'identity');
const signAttestation = await pick('signAttestation', 'attestation');
const generateAgentKeyPair = await pick('generateAgentKeyPair', 'attestation');
const exportPublicJwk = await pick('exportPublicJwk', 'attestation');
const acceptedAudiences = await pick('acceptedAudiences', 'attestation');
const { MemoryStore } = core;

const arg = (name, fallback) => {
  const i = process.argv.indexOf(`--${name}`);
  return i === -1 ? fallback : Number(process.argv[i + 1]);
};
const TOKENS = arg('tokens', 2000);
const ROUNDS = arg('rounds', 5);
const CONCURRENCY = 32;
const CHUNK = arg('chunk', 100);

const AGENT_ID = 'https://agent.bench.example/.well-known/agent.json';
const BASE = 'https://gw.bench.example';
const { privateKey, publicKey } = await generateAgentKeyPair();
const document = {
  ath_version: '0.1',
  agent_id: AGENT_ID,
  name: 'bench agent',
  developer: { name: 'bench', id: 'bench' },
  public_key: await exportPublicJwk(publicKey, 'k1'),
};
// In-memory fetcher: the cache is warm during timing, so the network path is never exercised.
const fetcher = {
  fetch: async () => ({ status: 200, contentType: 'application/json', body: JSON.stringify(document) }),
};
const resolver = new IdentityResolver({ fetcher });
const store = new MemoryStore();
const verifier = new AttestationVerifier({ resolver, replay: store });
const audiences = acceptedAudiences(BASE, '/ath/agents/register', 'origin-or-endpoint');
const expect = { audiences, agentId: AGENT_ID };
const identity = await resolver.resolve(AGENT_ID);
const key = identity.keys[0].key; // the very CryptoKey the verifier uses

const mintBatch = (n) =>
  Promise.all(
    Array.from({ length: n }, () =>
      signAttestation({ privateKey, kid: 'k1', agentId: AGENT_ID, audience: BASE }),
    ),
  );

/**
 * Times `fn` over `tokens` with `inFlight` verifications outstanding; returns elapsed nanoseconds.
 * inFlight = 1 is a plain sequential loop.
 */
async function timed(tokens, fn, inFlight) {
  const start = process.hrtime.bigint();
  if (inFlight === 1) {
    for (const t of tokens) await fn(t);
  } else {
    let next = 0;
    const worker = async () => {
      while (next < tokens.length) await fn(tokens[next++]);
    };
    await Promise.all(Array.from({ length: inFlight }, worker));
  }
  return Number(process.hrtime.bigint() - start);
}

const bare = (t) => jwtVerify(t, key, { algorithms: ['ES256'] });
const athkit = (t) => verifier.verify(t, expect);

/**
 * One measurement: both sides verify TOKENS fresh tokens each, interleaved in chunks of CHUNK
 * (alternating which side goes first), so machine noise (other processes, GC, CPU frequency) hits
 * both sides alike. Returns ops/s per side.
 */
async function measure(inFlight) {
  const tokens = { bare: await mintBatch(TOKENS), athkit: await mintBatch(TOKENS) };
  const ns = { bare: 0, athkit: 0 };
  for (let i = 0, turn = 0; i < TOKENS; i += CHUNK, turn++) {
    for (const side of turn % 2 === 0 ? ['bare', 'athkit'] : ['athkit', 'bare']) {
      ns[side] += await timed(tokens[side].slice(i, i + CHUNK), side === 'bare' ? bare : athkit, inFlight);
    }
  }
  return { bare: TOKENS / (ns.bare / 1e9), athkit: TOKENS / (ns.athkit / 1e9) };
}

// Sanity check and warm-up (JIT, key caches).
await athkit((await mintBatch(1))[0]);
await measure(1);
await measure(CONCURRENCY);

const rows = [];
for (let round = 1; round <= ROUNDS; round++) {
  const seq = await measure(1);
  const conc = await measure(CONCURRENCY);
  rows.push({
    round,
    bare_seq: seq.bare,
    athkit_seq: seq.athkit,
    bare_conc: conc.bare,
    athkit_conc: conc.athkit,
  });
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const fmt = (n) => Math.round(n).toLocaleString('en-US').padStart(8);
console.log(`attestation verification, ${TOKENS} tokens per measurement, ${ROUNDS} rounds (ops/s)`);
console.log('round |  bare seq | athkit seq | ratio | bare conc | athkit conc | ratio');
for (const r of rows) {
  console.log(
    `${String(r.round).padStart(5)} | ${fmt(r.bare_seq)}  | ${fmt(r.athkit_seq)}   | ${(r.athkit_seq / r.bare_seq).toFixed(3)} | ${fmt(r.bare_conc)}  | ${fmt(r.athkit_conc)}    | ${(r.athkit_conc / r.bare_conc).toFixed(3)}`,
  );
}
const seqRatio = median(rows.map((r) => r.athkit_seq / r.bare_seq));
const concRatio = median(rows.map((r) => r.athkit_conc / r.bare_conc));
console.log(
  `median ratio athkit/bare: sequential ${seqRatio.toFixed(3)}, concurrent(${CONCURRENCY}) ${concRatio.toFixed(3)} (target >= 0.85)`,
);
await store.close?.();
process.exit(0);
