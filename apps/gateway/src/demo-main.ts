#!/usr/bin/env node
/**
 * `npm run demo:gateway -w @athkit/gateway`: Example Mail + the gateway (dev mode, SQLite under ./data).
 * Environment: ATH_DEMO_DATA_DIR (./data), ATH_DEMO_PORT (8080), ATH_DEMO_MAIL_PORT (9000), ATH_DEMO_MAIL_API_PORT (9002).
 */
import { createDemoStack } from './demo.js';

const int = (name: string, fallback: number) => {
  const v = process.env[name];
  return v ? Number(v) : fallback;
};
const stack = await createDemoStack({
  dataDir: process.env['ATH_DEMO_DATA_DIR'] ?? './data',
  port: int('ATH_DEMO_PORT', 8080),
  mailPort: int('ATH_DEMO_MAIL_PORT', 9000),
  mailApiPort: int('ATH_DEMO_MAIL_API_PORT', 9002),
});
console.log(stack.banner);
let stopping = false;
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => {
    if (stopping) return;
    stopping = true;
    stack.close().then(
      () => process.exit(0),
      () => process.exit(1),
    );
  });
}
