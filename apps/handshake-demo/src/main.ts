#!/usr/bin/env node
/** `npm run demo:handshake`: seed 000, the 9-step trusted handshake, end to end on localhost. */
import { runDemo } from './demo.js';

try {
  const result = await runDemo();
  console.log(
    `\nDone: handshake ${result.handshakeId}, granted ${result.grantedScopes.join(' ')}, token ${result.expiresIn} s.`,
  );
} catch (err) {
  console.error(`\nThe demo failed: ${err instanceof Error ? err.message : String(err)}`);
  process.exitCode = 1;
}
