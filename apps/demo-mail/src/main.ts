#!/usr/bin/env node
/**
 * `npm run start -w @athkit/demo-mail`: Example Mail on localhost with dev defaults.
 *
 * Environment (all optional):
 *   DEMO_MAIL_HOST            interface and URL host            (127.0.0.1)
 *   DEMO_MAIL_PORT            authorization server port         (9000)
 *   DEMO_MAIL_API_PORT        mail API port                     (9002)
 *   DEMO_MAIL_CLIENT_ID       the gateway's client_id           (ath-gateway)
 *   DEMO_MAIL_CLIENT_SECRET   the gateway's client secret       (dev-mail-client-secret)
 *   DEMO_MAIL_REDIRECT_URIS   comma-separated redirect URIs     (http://127.0.0.1:8080/ath/callback)
 *   DEMO_MAIL_TOKEN_AUTH      client_secret_basic | client_secret_post (client_secret_basic)
 *   DEMO_MAIL_ACCESS_TOKEN_TTL access-token lifetime, seconds   (600)
 *   DEMO_MAIL_LOG_LEVEL       pino level                        (info)
 */
import { pino } from 'pino';
import { createMailService } from './service.js';
import { DEMO_CREDENTIALS } from './users.js';
import { SCOPE_MAP } from './scopes.js';

const env = process.env;
const int = (name: string, fallback: number): number => {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 0) throw new TypeError(`${name} must be a non-negative integer`);
  return n;
};

const clientSecret = env['DEMO_MAIL_CLIENT_SECRET'] || 'dev-mail-client-secret';
const authMethod =
  env['DEMO_MAIL_TOKEN_AUTH'] === 'client_secret_post' ? 'client_secret_post' : 'client_secret_basic';
const logger = pino({
  level: env['DEMO_MAIL_LOG_LEVEL'] || 'info',
  redact: ['req.headers.authorization', 'req.headers.cookie'],
  // Errors as type, code and message: no stack trace in a log line.
  serializers: {
    err: (e: unknown) =>
      e instanceof Error ? { type: e.name, message: e.message, code: (e as { code?: unknown }).code } : { type: typeof e, message: String(e) },
  },
});

const service = await createMailService({
  host: env['DEMO_MAIL_HOST'] || '127.0.0.1',
  port: int('DEMO_MAIL_PORT', 9000),
  apiPort: int('DEMO_MAIL_API_PORT', 9002),
  clientId: env['DEMO_MAIL_CLIENT_ID'] || 'ath-gateway',
  clientSecret,
  tokenEndpointAuthMethod: authMethod,
  gatewayRedirectUris: (env['DEMO_MAIL_REDIRECT_URIS'] || 'http://127.0.0.1:8080/ath/callback')
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean),
  accessTokenTtlSeconds: int('DEMO_MAIL_ACCESS_TOKEN_TTL', 600),
  logger,
});

const secretShown = env['DEMO_MAIL_CLIENT_SECRET']
  ? '(from DEMO_MAIL_CLIENT_SECRET)'
  : 'dev-mail-client-secret  (dev default)';
console.log(`
Example Mail is running (plain http on loopback: development only).

  Issuer (authorization server)  ${service.issuer}
    discovery                    ${service.issuer}/.well-known/openid-configuration
  Mail API base                  ${service.apiBase}   (routes under /v1)
  Resource indicator (aud)       ${service.resource}

  Client accepted                client_id=${service.clientId}  client_secret=${secretShown}
                                 token endpoint auth: ${authMethod}
                                 redirect_uris: ${(env['DEMO_MAIL_REDIRECT_URIS'] || 'http://127.0.0.1:8080/ath/callback').split(',').join(', ')}

  Demo users                     ${DEMO_CREDENTIALS.map((c) => `${c.username} / ${c.password}`).join('   ')}

  Scope map
${SCOPE_MAP.map((r) => `    ${r.methods.join(',').padEnd(9)} ${r.path.padEnd(20)} ${r.scope}`).join('\n')}
    GET       /v1/me               any valid token
`);

let stopping = false;
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => {
    if (stopping) return;
    stopping = true;
    service.close().then(
      () => process.exit(0),
      (err: unknown) => {
        logger.error({ err }, 'shutdown failed');
        process.exit(1);
      },
    );
  });
}
