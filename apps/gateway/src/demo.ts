import { randomBytes } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import type { Logger } from 'pino';
import { parseConfig, type GatewayConfig } from './config.js';
import { createLogger } from './observability.js';
import { createGateway, type Gateway } from './server.js';

/** The part of `@athkit/demo-mail` the demo uses (loaded at run time: the demo is a monorepo convenience, not a dependency). */
interface DemoMailModule {
  createMailService(options: {
    host?: string;
    port?: number;
    apiPort?: number;
    gatewayRedirectUris: readonly string[];
    clientId: string;
    clientSecret: string;
    clientName?: string;
  }): Promise<{ issuer: string; apiBase: string; resource: string; close(): Promise<void> }>;
  MAIL_SCOPES: readonly string[];
  SCOPE_MAP: readonly { methods: readonly string[]; path: string; scope: string }[];
  DEMO_CREDENTIALS?: readonly { username: string; password: string }[];
}

export interface DemoStackOptions {
  /** Where the SQLite database, the provider overrides and the dev secrets live (default `./data`). */
  dataDir?: string;
  host?: string;
  /** Gateway port (default 8080; 0 = any). */
  port?: number;
  /** Example Mail authorization server and API ports (default 9000 / 9002; 0 = any). */
  mailPort?: number;
  mailApiPort?: number;
  /**
   * Agent identity-document hosts (`host:port`) the dev gateway may fetch over plain http (default
   * 127.0.0.1:9100 and localhost:9100). The banner's `ath identity --serve` uses the first one.
   */
  agentHosts?: string[];
  logger?: Logger;
  /** Module specifier of Example Mail (default `@athkit/demo-mail`). */
  demoMail?: string;
}

export interface DemoStack {
  gateway: Gateway;
  config: GatewayConfig;
  mail: { issuer: string; apiBase: string; resource: string };
  gatewayUrl: string;
  adminKey: string;
  /** The banner `npm run demo:gateway` prints. */
  banner: string;
  close(): Promise<void>;
}

interface DemoSecrets {
  cookieKey: string;
  vaultKey: string;
  adminKey: string;
  mailClientSecret: string;
}

/** Dev secrets kept in `<dataDir>/dev-secrets.json` (0600) so a restart keeps sessions and stored upstream tokens readable. */
async function demoSecrets(dataDir: string): Promise<DemoSecrets> {
  const file = join(dataDir, 'dev-secrets.json');
  try {
    return JSON.parse(await readFile(file, 'utf8')) as DemoSecrets;
  } catch {
    const secrets: DemoSecrets = {
      cookieKey: randomBytes(32).toString('base64url'),
      vaultKey: randomBytes(32).toString('base64url'),
      adminKey: randomBytes(32).toString('base64url'),
      mailClientSecret: randomBytes(24).toString('base64url'),
    };
    await writeFile(file, JSON.stringify(secrets, null, 2) + '\n', { mode: 0o600 });
    return secrets;
  }
}

/**
 * The banner's `ath` CLI flow (one line for bash/zsh, run inside this checkout: `npx ath` is
 * `packages/cli`). Each run gets a fresh ATH_HOME, key and agent_id (the directory name is in the
 * path), so running it again against the same gateway registers a new agent instead of failing
 * with 409 AGENT_ALREADY_REGISTERED. The identity server is a background job of the user's shell
 * (`{ … & }`, not a detached subshell), so `kill %%` stops it before the next run reuses the port.
 */
function cliFlow(gatewayUrl: string, agentHost: string | undefined): string {
  if (!agentHost) return 'Try it with the ath CLI: configure agentHosts (the identity-document host:port the gateway may fetch over http).';
  return `Try it with the ath CLI in a second terminal inside this checkout (agents are auto-approved in this demo;
the identity server keeps running as a background job: stop it with \`kill %%\` when done; sign in as alice):
  export ATH_HOME=$(mktemp -d) && npx ath keygen && npx ath config set agent_id "http://${agentHost}/$(basename "$ATH_HOME")/agent.json" && npx ath config set name "Demo agent" && npx ath config set developer_name Demo && npx ath config set developer_id demo && { npx ath identity --serve & } && sleep 2 && npx ath discover ${gatewayUrl} --save && npx ath register --provider mail --scopes mail:read,mail:send && npx ath authorize --provider mail --scopes mail:read --open && npx ath call GET /v1/messages --provider mail
`;
}

/**
 * The embedded default: Example Mail (its own OAuth authorization server and mail API) plus the
 * gateway in dev mode on SQLite under `./data`, configured to proxy Example Mail. Prints nothing;
 * `banner` says how to try it with the `ath` CLI.
 */
export async function createDemoStack(options: DemoStackOptions = {}): Promise<DemoStack> {
  const host = options.host ?? '127.0.0.1';
  const dataDir = resolve(options.dataDir ?? './data');
  await mkdir(dataDir, { recursive: true });
  const secrets = await demoSecrets(dataDir);
  const port = options.port ?? 8080;
  const agentHosts = options.agentHosts ?? ['127.0.0.1:9100', 'localhost:9100'];
  const demo = (await import(options.demoMail ?? '@athkit/demo-mail')) as DemoMailModule;

  // The gateway's public URL must be known before Example Mail registers its redirect URI.
  let gatewayPort = port;
  if (gatewayPort === 0) {
    const { createServer } = await import('node:net');
    const probe = createServer();
    await new Promise<void>((r) => probe.listen(0, host, r));
    gatewayPort = (probe.address() as { port: number }).port;
    await new Promise<void>((r) => probe.close(() => r()));
  }
  const gatewayUrl = `http://${host}:${gatewayPort}`;
  const mail = await demo.createMailService({
    host,
    port: options.mailPort ?? 9000,
    apiPort: options.mailApiPort ?? 9002,
    gatewayRedirectUris: [`${gatewayUrl}/ath/callback`],
    clientId: 'ath-gateway',
    clientSecret: secrets.mailClientSecret,
    clientName: 'ATH Gateway (demo)',
  });
  const env = { ...process.env, DEMO_MAIL_CLIENT_SECRET: secrets.mailClientSecret };
  let config: GatewayConfig;
  let gateway: Gateway;
  try {
    config = parseConfig(
      {
        dev: true,
        publicUrl: gatewayUrl,
        listen: { host, port: gatewayPort },
        storage: `sqlite:${join(dataDir, 'gateway.db')}`,
        secrets: { cookieKey: secrets.cookieKey, vaultKey: secrets.vaultKey, adminKey: secrets.adminKey },
        approval: { autoApprove: true },
        allowInsecureAgentHosts: agentHosts,
        logLevel: 'info',
        providers: [
          {
            provider_id: 'mail',
            display_name: 'Example Mail',
            categories: ['email'],
            available_scopes: ['openid', 'offline_access', ...demo.MAIL_SCOPES],
            oauth: { issuer: mail.issuer, client_id: 'ath-gateway', client_secret_env: 'DEMO_MAIL_CLIENT_SECRET', resource: mail.resource },
            api_base: `${mail.apiBase}/`,
            scope_map: [
              ...demo.SCOPE_MAP.map((r) => ({ methods: [...r.methods], path: r.path, scope: r.scope })),
              { methods: ['GET'], path: '/v1/me', scope: 'mail:read' },
            ],
          },
        ],
      },
      env,
      'demo',
    );
    gateway = await createGateway(config, { env, logger: options.logger ?? createLogger('info') });
    await gateway.listen();
  } catch (err) {
    await mail.close();
    throw err;
  }

  const users = (demo.DEMO_CREDENTIALS ?? []).map((c) => `${c.username} / ${c.password}`).join(', ');
  const banner = `
ATH gateway demo (dev mode, plain http on loopback: development only)

  Gateway            ${gatewayUrl}
    discovery        ${gatewayUrl}/.well-known/ath.json
    metrics, health  ${gatewayUrl}/metrics  ${gatewayUrl}/healthz  ${gatewayUrl}/readyz
    admin API        ${gatewayUrl}/admin   (Authorization: Bearer <adminKey in ${join(dataDir, 'dev-secrets.json')}>)
    storage          ${config.storage.toString()}
  Example Mail
    issuer           ${mail.issuer}
    API              ${mail.apiBase}   (proxied at ${gatewayUrl}/ath/proxy/mail/v1/...)
    demo users       ${users || '(see apps/demo-mail)'}

${cliFlow(gatewayUrl, agentHosts[0])}
Admin: npx ath-gateway admin --url ${gatewayUrl} --key <adminKey> agents list
`;
  let closed: Promise<void> | undefined;
  return {
    gateway,
    config,
    mail: { issuer: mail.issuer, apiBase: mail.apiBase, resource: mail.resource },
    gatewayUrl,
    adminKey: secrets.adminKey,
    banner,
    close() {
      closed ??= (async () => {
        await gateway.shutdown();
        await mail.close();
      })();
      return closed;
    },
  };
}
