#!/usr/bin/env node
/**
 * `npm run demo`: seed 002's story. By default headless Chromium plays the user; with
 * `--interactive` on a terminal, you approve in your own browser.
 */
import { runDemo } from './demo.js';

// `npm run demo -- --interactive` hands the flag to npm itself, which passes it on as npm_config_interactive.
const wantsInteractive =
  process.argv.includes('--interactive') || process.env['npm_config_interactive'] === 'true';
const interactive = wantsInteractive && process.stdin.isTTY === true;
if (wantsInteractive && !interactive)
  console.log('(--interactive needs a terminal on stdin: headless Chromium approves instead)\n');

const abort = new AbortController();
const onSignal = (): void => abort.abort();
const signals = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;
for (const signal of signals) process.once(signal, onSignal);

try {
  await runDemo({ interactive, signal: abort.signal });
} catch (err) {
  if (abort.signal.aborted) {
    console.error('\nStopped.');
    process.exitCode = 130;
  } else {
    console.error(`\nThe demo failed: ${err instanceof Error ? err.message : String(err)}`);
    process.exitCode = 1;
  }
} finally {
  for (const signal of signals) process.off(signal, onSignal);
}
