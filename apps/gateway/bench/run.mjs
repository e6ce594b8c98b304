// `npm run bench -w @athkit/gateway`: proxy throughput/latency (direct, bare undici proxy, gateway),
// full handshakes/s, and RSS per active token. Each server runs in its own child process; autocannon
// runs here. Writes bench/results/latest.json and prints a table. Bounded to a few minutes.
import { fork } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import autocannon from 'autocannon';

const here = dirname(fileURLToPath(import.meta.url));
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 12);
const DURATION = Number(process.env.BENCH_DURATION ?? 2);
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 32);
const BLOCKS = Math.min(ROUNDS, Number(process.env.BENCH_BLOCKS ?? 3));
const TOKENS = Number(process.env.BENCH_TOKENS ?? 100_000);
const children = [];

function start(script, args = [], execArgv = []) {
  return new Promise((resolve, reject) => {
    const child = fork(join(here, script), args, { execArgv, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    children.push(child);
    child.once('message', (m) => resolve({ child, ...m }));
    child.once('exit', (code) => code && reject(new Error(`${script} exited with ${code}`)));
  });
}

function cannon(url, headers) {
  return new Promise((resolve, reject) => {
    autocannon({ url, headers, connections: CONNECTIONS, duration: DURATION, pipelining: 1 }, (err, r) => {
      if (err) return reject(err);
      if (r.non2xx || r.errors) return reject(new Error(`${url}: ${r.non2xx} non-2xx, ${r.errors} errors`));
      resolve({ rps: r.requests.average, p50: r.latency.p50, p99: r.latency.p99 });
    });
  });
}
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

const t0 = Date.now();
try {
  const upstream = await start('upstream.mjs');
  // The proxies are started afresh for each block of rounds: on these VMs two identical processes
  // can differ by up to ~18 % for their whole life (seen with the A/A control below), so one process
  // each would turn placement luck into a result. The upstream (the reference) lives throughout.
  async function startProxies() {
    const bare = await start('bare-proxy.mjs', [upstream.url]);
    // A/A control: a second, identical bare proxy. Its ratio to the first is the noise floor of this
    // host and run; a gateway ratio within that distance of the target is not a clear result.
    const control = await start('bare-proxy.mjs', [upstream.url]);
    const dispatch = await start('bare-dispatch-proxy.mjs', [upstream.url]);
    const gateway = await start('gateway-server.mjs', [upstream.url]);
    const limited = await start('gateway-server.mjs', [upstream.url, 'limited']);
    // The bare proxy gets the very request the gateway gets (same Authorization and X-ATH-Agent-ID
    // bytes, which it forwards unchecked), so both sides of the ratio parse and send the same headers.
    const athHeaders = { authorization: `Bearer ${gateway.token}`, 'x-ath-agent-id': gateway.agentId };
    const targets = {
      direct: { url: `${upstream.url}/ping`, headers: {} },
      bare: { url: `${bare.url}/ath/proxy/bench/ping`, headers: athHeaders },
      control: { url: `${control.url}/ath/proxy/bench/ping`, headers: athHeaders },
      dispatch: { url: `${dispatch.url}/ath/proxy/bench/ping`, headers: athHeaders },
      gateway: { url: `${gateway.url}/ath/proxy/bench/ping`, headers: athHeaders },
      limited: { url: `${limited.url}/ath/proxy/bench/ping`, headers: { authorization: `Bearer ${limited.token}`, 'x-ath-agent-id': limited.agentId } },
    };
    return { targets, stop: () => [bare, control, dispatch, gateway, limited].forEach((c) => c.child.kill()) };
  }
  // Warm-up, then alternating rounds so drift hits every target alike. The order rotates each round:
  // on a 2-core host a target's result depends on which one ran just before it (measured: the same
  // gateway build at 0.82 or 0.69 of bare by position alone), so every target takes every position.
  const samples = { direct: [], bare: [], control: [], dispatch: [], gateway: [], limited: [] };
  const names = Object.keys(samples);
  for (let block = 0, round = 0; block < BLOCKS; block++) {
    const { targets, stop } = await startProxies();
    for (const t of Object.values(targets)) await new Promise((r) => autocannon({ ...t, connections: CONNECTIONS, duration: 1 }, r));
    for (const end = Math.round((ROUNDS * (block + 1)) / BLOCKS); round < end; round++) {
      for (let i = 0; i < names.length; i++) {
        const name = names[(i + round) % names.length];
        samples[name].push(await cannon(targets[name].url, targets[name].headers));
      }
    }
    stop();
  }
  upstream.child.kill();
  const proxy = Object.fromEntries(
    Object.entries(samples).map(([k, v]) => [k, { rps: median(v.map((s) => s.rps)), p50: median(v.map((s) => s.p50)), p99: median(v.map((s) => s.p99)), rounds: v }]),
  );

  // The host's speed drifts by tens of percent within seconds (measured on the 2-vCPU VMs we run
  // on), so each ratio is the median over rounds of the two targets measured in the same round,
  // not the ratio of two medians taken at different times.
  function paired(name, f) {
    return median(samples[name].map((s, i) => f(s, samples.bare[i])));
  }

  const hs = await start('handshakes.mjs', ['10', '1000']);
  const hsMemory = await start('handshakes.mjs', ['5', '1000', 'memory']);
  const mem = await start('memory.mjs', [String(TOKENS)], ['--expose-gc']);

  const report = {
    date: new Date().toISOString(),
    node: process.version,
    cpus: (await import('node:os')).cpus().length,
    settings: { rounds: ROUNDS, blocks: BLOCKS, durationSeconds: DURATION, connections: CONNECTIONS },
    proxy,
    ratios: {
      gatewayOverBare: paired('gateway', (g, b) => g.rps / b.rps),
      controlOverBare: paired('control', (c, b) => c.rps / b.rps),
      dispatchOverBare: paired('dispatch', (d, b) => d.rps / b.rps),
      gatewayOverDispatch: median(samples.gateway.map((g, i) => g.rps / samples.dispatch[i].rps)),
      gatewayOverBareOfMedians: proxy.gateway.rps / proxy.bare.rps,
      // p99 stays the difference of the medians: autocannon's latencies are whole milliseconds, and
      // a per-round difference of two such values is mostly rounding.
      p99AddedMs: proxy.gateway.p99 - proxy.bare.p99,
      p99AddedPairedMs: paired('gateway', (g, b) => g.p99 - b.p99),
    },
    handshakes: { windows: hs.rates, first: hs.rates[0], tenth: hs.rates.at(-1), median: median(hs.rates), tenthOverFirst: hs.rates.at(-1) / hs.rates[0], memoryStoreMedian: median(hsMemory.rates), overMemoryStore: median(hs.rates) / median(hsMemory.rates) },
    memory: { tokens: mem.tokens, cached: mem.cached, rssBefore: mem.rssBefore, rssAfter: mem.rssAfter, perToken: mem.perToken },
    seconds: (Date.now() - t0) / 1000,
  };
  const targetsMet = {
    'gateway ≥ 0.85 × bare proxy': report.ratios.gatewayOverBare >= 0.85,
    'p99 added ≤ 1 ms': report.ratios.p99AddedMs <= 1,
    'handshakes ≥ 1,000/s': report.handshakes.median >= 1000,
    '10th window ≥ 0.9 × 1st': report.handshakes.tenthOverFirst >= 0.9,
    '≤ 2 KiB RSS per token': mem.perToken <= 2048,
  };
  report.targets = targetsMet;
  mkdirSync(join(here, 'results'), { recursive: true });
  writeFileSync(join(here, 'results', 'latest.json'), JSON.stringify(report, null, 2) + '\n');

  const f = (n, d = 0) => n.toLocaleString('en-US', { maximumFractionDigits: d, minimumFractionDigits: d });
  const rows = [
    ['| path | req/s | p50 ms | p99 ms |', '|---|---:|---:|---:|'],
    ...[
      ['direct', 'upstream direct'],
      ['bare', 'bare undici pass-through proxy (floor)'],
      ['control', 'second bare proxy (A/A control)'],
      ['dispatch', 'bare undici dispatch proxy (the fast path\'s technique)'],
      ['gateway', 'ath-gateway proxy (SQLite, rate limits off)'],
      ['limited', 'ath-gateway proxy + per-agent rate limit (batch 30, as the default: a store write per 30 calls)'],
    ].map(([k, label]) => [`| ${label} | ${f(proxy[k].rps)} | ${f(proxy[k].p50, 1)} | ${f(proxy[k].p99, 1)} |`]),
  ].flat();
  console.log(`\nath-gateway benchmark (${report.cpus} CPUs, Node ${process.version}, ${CONNECTIONS} connections, median of ${ROUNDS} × ${DURATION}s rounds, proxies restarted for each of ${BLOCKS} blocks)\n`);
  console.log(rows.join('\n'));
  console.log(`\n| metric | result | target |\n|---|---:|---|`);
  console.log(`| gateway / bare throughput (median of ${ROUNDS} paired rounds) | ${f(report.ratios.gatewayOverBare, 2)} | ≥ 0.85 ${targetsMet['gateway ≥ 0.85 × bare proxy'] ? '✓' : '✗'} |`);
  console.log(`| noise floor: second bare proxy / bare (same pairing) | ${f(report.ratios.controlOverBare, 2)} | 1.00 ideally |`);
  console.log(`| gateway / bare dispatch proxy (same technique, median of paired rounds; p99 added ${f(proxy.gateway.p99 - proxy.dispatch.p99, 1)} ms) | ${f(report.ratios.gatewayOverDispatch, 2)} | — |`);
  console.log(`| bare dispatch proxy / bare (what the technique alone gains) | ${f(report.ratios.dispatchOverBare, 2)} | — |`);
  console.log(`| gateway / bare as a ratio of the two medians | ${f(report.ratios.gatewayOverBareOfMedians, 2)} | — |`);
  console.log(`| p99 added vs bare (difference of the medians; median of paired rounds: ${f(report.ratios.p99AddedPairedMs, 1)} ms) | ${f(report.ratios.p99AddedMs, 1)} ms | ≤ 1 ms ${targetsMet['p99 added ≤ 1 ms'] ? '✓' : '✗'} |`);
  console.log(`| full handshakes/s (SQLite, median of 10 × 1,000) | ${f(report.handshakes.median)} | ≥ 1,000 ${targetsMet['handshakes ≥ 1,000/s'] ? '✓' : '✗'} |`);
  console.log(`| same handshakes on the memory store (baseline, median of 5) | ${f(report.handshakes.memoryStoreMedian)} (SQLite = ${f(report.handshakes.overMemoryStore, 2)} ×) | — |`);
  console.log(`| 10th window / 1st | ${f(report.handshakes.tenthOverFirst, 2)} (${f(report.handshakes.first)} → ${f(report.handshakes.tenth)}/s) | ≥ 0.9 ${targetsMet['10th window ≥ 0.9 × 1st'] ? '✓' : '✗'} |`);
  console.log(`| RSS per active token (${f(mem.tokens)} tokens) | ${f(mem.perToken)} B | ≤ 2,048 B ${targetsMet['≤ 2 KiB RSS per token'] ? '✓' : '✗'} |`);
  console.log(`\nreport: bench/results/latest.json (${f(report.seconds)} s)`);
} finally {
  for (const c of children) if (c.exitCode === null) c.kill();
}
