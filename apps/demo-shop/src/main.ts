#!/usr/bin/env node
/**
 * `npm run demo:shop`: ATH Shop on localhost. Environment: PORT (default 3000), HOST (127.0.0.1),
 * SHOP_DATA_DIR (./data), PUBLIC_URL, ATH_ALLOW_INSECURE (comma-separated host:port of local agent
 * identity servers that may be fetched over plain http), COOKIE_SECURE (default true; set false for a
 * plain-http origin other than localhost/127.0.0.1), LOG_LEVEL.
 */
import { resolve } from 'node:path';
import { createLogger, createShop } from './shop.js';
import { DEMO_USERS } from './db.js';

const env = process.env;
const logger = createLogger({ level: env['LOG_LEVEL'] ?? 'info' });
const shop = await createShop({
  dataDir: resolve(env['SHOP_DATA_DIR'] ?? 'data'),
  host: env['HOST'] ?? '127.0.0.1',
  port: Number(env['PORT'] ?? 3000),
  ...(env['PUBLIC_URL'] ? { publicUrl: env['PUBLIC_URL'] } : {}),
  ...(env['ATH_ALLOW_INSECURE'] ? { allowInsecureAgents: env['ATH_ALLOW_INSECURE'].split(',').map((s) => s.trim()) } : {}),
  ...(env['COOKIE_SECURE'] === 'false' ? { cookieSecure: false } : {}),
  logger,
});

const [user, { password }] = Object.entries(DEMO_USERS)[0]!;
console.log(`\nATH Shop is running at ${shop.url}`);
console.log(`  discovery: ${shop.url}/.well-known/ath-app.json`);
console.log(`  demo login: ${user} / ${password}   (also: ${Object.keys(DEMO_USERS).slice(1).join(', ')})\n`);

let closing = false;
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => {
    if (closing) return;
    closing = true;
    shop.close().then(
      () => process.exit(0),
      () => process.exit(1),
    );
  });
}
