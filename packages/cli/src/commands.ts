import { spawn } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import {
  AthClientError,
  NativeClient,
  createIdentityDocument,
  discoveryRequest,
  generateAgentKey,
  processDiscoveryResponse,
  processServiceDiscoveryResponse,
  publicJwk,
  serviceDiscoveryRequest,
  type GatewayClient,
  type PendingAuthorization,
  type StoredToken,
} from '@athkit/client';
import { listenForRedirect, readOptionalFile, serveIdentityDocument, writeAgentKey } from '@athkit/client/node';
import { CONFIG_KEYS, type ConfigKey, type Context } from './context.js';
import { ConfigError, EXIT, UsageError } from './errors.js';
import { user } from './user-commands.js';

export type OptionSpec = { type: 'string' | 'boolean'; short?: string; multiple?: boolean; description: string; value?: string };
export type Values = Record<string, string | boolean | string[] | undefined>;

export interface Command {
  summary: string;
  usage: string;
  description?: string;
  options: Record<string, OptionSpec>;
  run(ctx: Context, values: Values, positionals: string[]): Promise<number>;
}

const SERVER: OptionSpec = { type: 'string', description: 'ATH server URL (default: config "server")', value: 'url' };
const TIMEOUT: OptionSpec = { type: 'string', description: 'per-request timeout in seconds (default 10)', value: 'seconds' };
const SHOW_SECRET: OptionSpec = { type: 'boolean', description: 'print secrets (client_secret, access token) in full' };
const PROVIDER: OptionSpec = { type: 'string', description: 'provider_id (gateway mode; default: config "provider")', value: 'id' };

const str = (v: Values[string]): string | undefined => (typeof v === 'string' ? v : undefined);
const flag = (v: Values[string]): boolean => v === true;

function seconds(v: Values[string], name: string): number | undefined {
  const s = str(v);
  if (s === undefined) return undefined;
  const n = Number(s);
  if (!Number.isFinite(n) || n <= 0) throw new UsageError(`--${name} must be a positive number of seconds`);
  return n;
}

function scopeList(v: Values[string], ctx: Context): string[] {
  const raw = str(v) ?? ctx.config.scopes;
  const scopes = (raw ?? '').split(/[\s,]+/).filter(Boolean);
  if (scopes.length === 0) throw new UsageError('--scopes is required (comma-separated), or set a default with `ath config set scopes a,b`');
  return scopes;
}

/** Secrets are hidden unless --show-secret (a short prefix helps tell them apart). */
export function mask(secret: string, show: boolean): string {
  return show ? secret : `${secret.slice(0, Math.min(8, Math.floor(secret.length / 4)))}… (hidden; --show-secret to print)`;
}

function out(ctx: Context, values: Values, json: unknown, human: string): void {
  ctx.io.stdout(flag(values['json']) ? `${JSON.stringify(json, null, 2)}\n` : human.endsWith('\n') ? human : `${human}\n`);
}

function providerFor(client: NativeClient | GatewayClient, values: Values, ctx: Context): string {
  if (client instanceof NativeClient) return client.providerId;
  const provider = str(values['provider']) ?? ctx.config.provider;
  if (!provider) throw new UsageError('gateway mode needs --provider <id> (or `ath config set provider <id>`)');
  return provider;
}

function tokenJson(token: StoredToken, show: boolean): Record<string, unknown> {
  return {
    access_token: show ? token.accessToken : mask(token.accessToken, false),
    token_type: token.tokenType,
    provider_id: token.providerId,
    agent_id: token.agentId,
    scopes: token.scopes,
    expires_at: new Date(token.expiresAt).toISOString(),
  };
}

function tokenHuman(token: StoredToken, show: boolean): string {
  return [
    `access token for ${token.providerId}: ${mask(token.accessToken, show)}`,
    `scopes:     ${token.scopes.join(' ')}`,
    `expires at: ${new Date(token.expiresAt).toISOString()}`,
  ].join('\n');
}

async function openBrowser(url: string): Promise<void> {
  const [cmd, args] =
    process.platform === 'darwin' ? ['open', [url]] : process.platform === 'win32' ? ['cmd', ['/c', 'start', '""', url]] : ['xdg-open', [url]];
  await new Promise<void>((resolve) => {
    const child = spawn(cmd, args, { stdio: 'ignore', detached: true });
    child.on('error', () => resolve());
    child.unref();
    resolve();
  });
}

// ------------------------------------------------------------------------------------------ keygen

const keygen: Command = {
  summary: 'create the agent key pair (ES256)',
  usage: 'ath keygen [--format pem|jwk] [--kid <kid>] [--out <file>] [--force]',
  description: 'Writes a new P-256 private key (mode 0600) and prints its kid and public JWK. The kid defaults to the key thumbprint.',
  options: {
    format: { type: 'string', description: 'pem (PKCS#8, default) or jwk', value: 'pem|jwk' },
    kid: { type: 'string', description: 'key id to publish (default: RFC 7638 thumbprint)', value: 'kid' },
    out: { type: 'string', description: 'key file (default <ATH_HOME>/agent-key.pem); remembered as key_file', value: 'file' },
    force: { type: 'boolean', description: 'replace an existing key (servers must then see the new identity document)' },
  },
  async run(ctx, values) {
    const format = str(values['format']) ?? 'pem';
    if (format !== 'pem' && format !== 'jwk') throw new UsageError('--format must be pem or jwk');
    const outFile = str(values['out']);
    if (outFile) ctx.config.key_file = outFile;
    const file = ctx.keyFile;
    if (!flag(values['force']) && (await readOptionalFile(file)) !== null) {
      throw new ConfigError(`a key already exists at ${file}`, 'use --force to replace it (publish the new identity document right away)');
    }
    const kid = str(values['kid']);
    const key = await generateAgentKey(kid ? { kid } : {});
    await writeAgentKey(file, key, { format, overwrite: flag(values['force']) });
    if (outFile) await ctx.save();
    const jwk = await publicJwk(key);
    out(ctx, values, { key_file: file, kid: key.kid, public_jwk: jwk }, `wrote ${file} (mode 0600)\nkid: ${key.kid}\npublic key: ${JSON.stringify(jwk)}`);
    return EXIT.OK;
  },
};

// ---------------------------------------------------------------------------------------- identity

const identity: Command = {
  summary: 'print or serve the identity document (agent.json)',
  usage: 'ath identity [--serve [--host <h>] [--port <p>]]',
  description:
    'Prints the AgentIdentityDocument to publish at the agent_id URL. --serve serves it with node:http until interrupted; without agent_id configured, the served loopback URL becomes the agent_id (local development only).',
  options: {
    serve: { type: 'boolean', description: 'serve the document until interrupted (Ctrl-C)' },
    host: { type: 'string', description: 'listen address (default 127.0.0.1, or the agent_id host)', value: 'host' },
    port: { type: 'string', description: 'listen port (default: the agent_id port, or any free port)', value: 'port' },
  },
  async run(ctx, values) {
    const key = await ctx.key();
    const name = ctx.require('name', 'run `ath config set name "My Agent"`');
    const developer = ctx.developer();
    if (!flag(values['serve'])) {
      const agentId = ctx.require('agent_id', 'run `ath config set agent_id https://your-agent.example/.well-known/agent.json`');
      const doc = await createIdentityDocument({ agentId, name, developer, key });
      ctx.io.stdout(`${JSON.stringify(doc, null, 2)}\n`);
      return EXIT.OK;
    }
    const configured = ctx.config.agent_id ? new URL(ctx.config.agent_id) : undefined;
    const local = configured && configured.protocol === 'http:';
    const host = str(values['host']) ?? (local ? configured.hostname : '127.0.0.1');
    const portText = str(values['port']) ?? (local ? configured.port : '0');
    const port = Number(portText || '80');
    if (!Number.isInteger(port) || port < 0 || port > 65535) throw new UsageError('--port must be 0-65535');
    const served = await serveIdentityDocument({
      key,
      name,
      developer,
      host,
      port,
      ...(configured ? { agentId: configured.href, path: configured.pathname } : {}),
    });
    out(ctx, values, { agent_id: served.agentId, url: served.url, document: served.document }, `serving ${served.url}\nagent_id: ${served.agentId}\n(Ctrl-C to stop)`);
    await new Promise<void>((resolve) => {
      process.once('SIGINT', resolve);
      process.once('SIGTERM', resolve);
    });
    await served.close();
    return EXIT.OK;
  },
};

// ---------------------------------------------------------------------------------------- discover

const discover: Command = {
  summary: 'show what an ATH server offers (ath-app.json or ath.json)',
  usage: 'ath discover [<url>] [--save]',
  description: 'Fetches /.well-known/ath-app.json (native service) and, if absent, /.well-known/ath.json (gateway). --save stores the URL and mode as the default server.',
  options: {
    save: { type: 'boolean', description: 'remember the URL and mode as config "server" and "mode"' },
    timeout: TIMEOUT,
  },
  async run(ctx, values, positionals) {
    const server = positionals[0] ?? ctx.server(undefined);
    const timeout = seconds(values['timeout'], 'timeout');
    const http = timeout !== undefined ? { timeoutMs: timeout * 1000 } : {};
    let result: { mode: 'native' | 'gateway'; document: Record<string, unknown>; human: string };
    try {
      const doc = await processServiceDiscoveryResponse(await serviceDiscoveryRequest(server, http));
      result = {
        mode: 'native',
        document: doc,
        human: `native service "${doc.name}" (app_id ${doc.app_id}), ATH ${doc.ath_version}\napi_base: ${doc.api_base}\nscopes:   ${doc.auth.scopes_supported.join(' ')}`,
      };
    } catch (err) {
      if (!(err instanceof AthClientError && err.status === 404)) throw err;
      const doc = await processDiscoveryResponse(await discoveryRequest(server, http));
      result = {
        mode: 'gateway',
        document: doc,
        human: [
          `gateway ${doc.gateway_id}, ATH ${doc.ath_version}`,
          `registration: ${doc.agent_registration_endpoint}`,
          'providers:',
          ...doc.supported_providers.map((p) => `  ${p.provider_id} (${p.display_name}): ${p.available_scopes.join(' ')}${p.agent_approval_required ? ' [approval required]' : ''}`),
        ].join('\n'),
      };
    }
    if (flag(values['save'])) {
      ctx.config.server = server;
      ctx.config.mode = result.mode;
      await ctx.save();
    }
    out(ctx, values, { server, mode: result.mode, document: result.document }, result.human);
    return EXIT.OK;
  },
};

// ---------------------------------------------------------------------------------------- register

const register: Command = {
  summary: 'register the agent with the server (Phase A)',
  usage: 'ath register --scopes <a,b> [--provider <id>] [--redirect-uri <uri>]... [--purpose <text>]',
  description:
    'Registers with a fresh attestation and stores client_id and client_secret (0600) under ATH_HOME. If the agent is already registered (409), the stored credentials are reused.',
  options: {
    server: SERVER,
    provider: PROVIDER,
    scopes: { type: 'string', description: 'scopes to ask for, comma-separated (default: config "scopes")', value: 'a,b' },
    'redirect-uri': { type: 'string', multiple: true, description: 'a redirect URI to register (only with a callback; loopback http allowed)', value: 'uri' },
    purpose: { type: 'string', description: 'what the agent is for', value: 'text' },
    'show-secret': SHOW_SECRET,
    timeout: TIMEOUT,
  },
  async run(ctx, values) {
    const client = await ctx.client(str(values['server']), seconds(values['timeout'], 'timeout'));
    const scopes = scopeList(values['scopes'], ctx);
    const redirectUris = (values['redirect-uri'] as string[] | undefined) ?? (ctx.config.redirect_uri ? [ctx.config.redirect_uri] : undefined);
    const purpose = str(values['purpose']);
    const common = { developer: ctx.developer(), ...(purpose ? { purpose } : {}), ...(redirectUris ? { redirectUris } : {}) };
    const result =
      client instanceof NativeClient
        ? await client.register({ ...common, scopes })
        : await client.register({ ...common, providers: [{ provider_id: providerFor(client, values, ctx), scopes: scopes as [string, ...string[]] }] });
    if (!ctx.config.server || str(values['server'])) {
      ctx.config.server = client.baseUrl;
      ctx.config.mode = client instanceof NativeClient ? 'native' : 'gateway';
      await ctx.save();
    }
    const c = result.credentials;
    const show = flag(values['show-secret']);
    const approvals = c.approvedProviders ?? [];
    out(
      ctx,
      values,
      {
        server: c.server,
        client_id: c.clientId,
        client_secret: mask(c.clientSecret, show),
        agent_status: c.agentStatus ?? null,
        approved_providers: approvals,
        approval_expires: c.approvalExpires ?? null,
        reused: result.reused,
      },
      [
        result.reused ? `already registered at ${c.server}: using the stored credentials` : `registered at ${c.server}`,
        `client_id:     ${c.clientId}`,
        `client_secret: ${mask(c.clientSecret, show)}`,
        `status:        ${c.agentStatus ?? 'unknown'}`,
        ...approvals.map(
          (p) => `  ${p.provider_id}: approved ${p.approved_scopes.join(' ') || '(none)'}${p.denied_scopes.length ? `; denied ${p.denied_scopes.join(' ')}${p.denial_reason ? ` (${p.denial_reason})` : ''}` : ''}`,
        ),
      ].join('\n'),
    );
    return EXIT.OK;
  },
};

// ------------------------------------------------------------------------------------------ status

const status: Command = {
  summary: 'show the registration status (polls while pending with --wait)',
  usage: 'ath status [--wait [--wait-timeout <s>]]',
  options: {
    server: SERVER,
    wait: { type: 'boolean', description: 'poll until the agent is approved or denied' },
    interval: { type: 'string', description: 'seconds between polls (default 5)', value: 'seconds' },
    'wait-timeout': { type: 'string', description: 'give up waiting after this many seconds (default 600)', value: 'seconds' },
    timeout: TIMEOUT,
  },
  async run(ctx, values) {
    const client = await ctx.client(str(values['server']), seconds(values['timeout'], 'timeout'));
    const interval = seconds(values['interval'], 'interval') ?? 5;
    const waitTimeout = seconds(values['wait-timeout'], 'wait-timeout') ?? 600;
    const s = flag(values['wait'])
      ? await client.waitForApproval({ intervalMs: interval * 1000, timeoutMs: waitTimeout * 1000 })
      : await client.status();
    out(
      ctx,
      values,
      s,
      [
        `agent ${s.agent_id}`,
        `client_id: ${s.client_id}`,
        `status:    ${s.agent_status} (approval expires ${s.approval_expires})`,
        ...s.approved_providers.map((p) => `  ${p.provider_id}: approved ${p.approved_scopes.join(' ') || '(none)'}${p.denied_scopes.length ? `; denied ${p.denied_scopes.join(' ')}` : ''}`),
      ].join('\n'),
    );
    return s.agent_status === 'denied' ? EXIT.NOT_AUTHORIZED : EXIT.OK;
  },
};

// --------------------------------------------------------------------------------------- authorize

async function finish(
  client: NativeClient | GatewayClient,
  pending: PendingAuthorization,
  values: Values,
  redirect: Awaited<ReturnType<typeof listenForRedirect>> | undefined,
): Promise<StoredToken> {
  const waitTimeout = (seconds(values['wait-timeout'], 'wait-timeout') ?? 600) * 1000;
  const interval = (seconds(values['interval'], 'interval') ?? 2) * 1000;
  if (redirect) {
    try {
      const timer = new Promise<never>((_, reject) => {
        setTimeout(() => reject(new AthClientError('wait_timeout', 'the browser did not come back in time')), waitTimeout).unref();
      });
      const url = await Promise.race([redirect.result, timer]);
      return await client.exchange(pending, { redirectUrl: url });
    } finally {
      await redirect.close();
    }
  }
  return client.waitForToken(pending, { intervalMs: interval, timeoutMs: waitTimeout });
}

const authorize: Command = {
  summary: 'ask the user for consent and get an access token (Phase B)',
  usage: 'ath authorize --scopes <a,b> [--provider <id>] [--open] [--listen [--redirect-uri <uri>]] [--no-wait]',
  description:
    'Prints the consent URL for the user to open in their own browser, then waits: by polling the token endpoint (default), or with --listen on a registered loopback redirect URI. The token is stored (0600) under ATH_HOME.',
  options: {
    server: SERVER,
    provider: PROVIDER,
    scopes: { type: 'string', description: 'scopes to ask for, comma-separated (default: config "scopes")', value: 'a,b' },
    open: { type: 'boolean', description: 'open the consent URL in the default browser' },
    listen: { type: 'boolean', description: 'wait on the redirect URI (loopback http, registered) instead of polling' },
    'redirect-uri': { type: 'string', description: 'the registered redirect URI (default: config "redirect_uri")', value: 'uri' },
    'no-wait': { type: 'boolean', description: 'print the URL and exit; finish later with `ath token`' },
    interval: { type: 'string', description: 'seconds between token polls (default 2)', value: 'seconds' },
    'wait-timeout': { type: 'string', description: 'give up after this many seconds (default 600)', value: 'seconds' },
    'show-secret': SHOW_SECRET,
    timeout: TIMEOUT,
  },
  async run(ctx, values) {
    const client = await ctx.client(str(values['server']), seconds(values['timeout'], 'timeout'));
    const provider = providerFor(client, values, ctx);
    const scopes = scopeList(values['scopes'], ctx);
    const listen = flag(values['listen']);
    const redirectUri = str(values['redirect-uri']) ?? (listen ? ctx.config.redirect_uri : undefined);
    if (listen && !redirectUri) throw new UsageError('--listen needs --redirect-uri <http://127.0.0.1:PORT/callback> (registered with `ath register --redirect-uri`)');
    if (listen && flag(values['no-wait'])) throw new UsageError('--listen and --no-wait exclude each other');
    const redirect = listen ? await listenForRedirect(redirectUri!) : undefined;
    let pending: PendingAuthorization;
    try {
      const options = { scopes, ...(redirectUri ? { redirectUri } : {}) };
      pending = client instanceof NativeClient ? await client.authorize(options) : await client.authorize({ ...options, provider });
    } catch (err) {
      await redirect?.close();
      throw err;
    }
    const json = flag(values['json']);
    if (flag(values['no-wait'])) {
      out(
        ctx,
        values,
        { authorization_url: pending.authorizationUrl, ath_session_id: pending.sessionId, provider_id: pending.providerId, scopes: pending.scopes },
        `Open this URL in your browser to approve:\n${pending.authorizationUrl}\nThen run \`ath token\`${pending.redirectUri ? ' --redirect-url <the URL you were sent to>' : ''}.`,
      );
      return EXIT.OK;
    }
    const say = json ? ctx.io.stderr : ctx.io.stdout;
    say(`Open this URL in your browser to approve:\n${pending.authorizationUrl}\n`);
    if (flag(values['open'])) await openBrowser(pending.authorizationUrl);
    say(redirect ? `Waiting for the browser to return to ${redirect.redirectUri} …\n` : 'Waiting for approval …\n');
    const token = await finish(client, pending, values, redirect);
    const show = flag(values['show-secret']);
    out(ctx, values, tokenJson(token, show), tokenHuman(token, show));
    return EXIT.OK;
  },
};

// ------------------------------------------------------------------------------------------- token

const token: Command = {
  summary: 'finish a pending authorization, or show the current token',
  usage: 'ath token [--provider <id>] [--redirect-url <url>] [--show-secret]',
  description:
    'With a pending authorization (from `ath authorize --no-wait`), exchanges it: with --redirect-url (the URL the browser was sent to; state is checked) or by polling until the user has approved. Otherwise prints the stored token (hidden unless --show-secret).',
  options: {
    server: SERVER,
    provider: PROVIDER,
    'redirect-url': { type: 'string', description: 'the URL the browser was redirected to after consent', value: 'url' },
    interval: { type: 'string', description: 'seconds between polls (default 2)', value: 'seconds' },
    'wait-timeout': { type: 'string', description: 'give up after this many seconds (default 600)', value: 'seconds' },
    'show-secret': SHOW_SECRET,
    timeout: TIMEOUT,
  },
  async run(ctx, values) {
    const client = await ctx.client(str(values['server']), seconds(values['timeout'], 'timeout'));
    const provider = providerFor(client, values, ctx);
    const show = flag(values['show-secret']);
    const pending = await client.pendingAuthorization(provider);
    let result: StoredToken;
    if (pending) {
      const redirectUrl = str(values['redirect-url']);
      if (redirectUrl) result = await client.exchange(pending, { redirectUrl });
      else if (pending.redirectUri) throw new UsageError('this authorization returns through a redirect: pass --redirect-url <the URL the browser was sent to>');
      else {
        if (!flag(values['json'])) ctx.io.stdout('Waiting for approval …\n');
        result = await finish(client, pending, values, undefined);
      }
    } else {
      result = await client.token(provider);
    }
    out(ctx, values, tokenJson(result, show), tokenHuman(result, show));
    return EXIT.OK;
  },
};

// -------------------------------------------------------------------------------------------- call

const call: Command = {
  summary: 'call the API with the stored token',
  usage: 'ath call <METHOD> <path> [--data <json>|@file] [--header "Name: value"]... [--provider <id>]',
  description:
    'Native mode: <api_base><path>. Gateway mode: <gateway>/ath/proxy/<provider><path>. Sends Authorization: Bearer and X-ATH-Agent-ID. Prints the response body; --include adds the status line and headers.',
  options: {
    server: SERVER,
    provider: PROVIDER,
    data: { type: 'string', short: 'd', description: 'request body (JSON text, or @file)', value: 'body' },
    header: { type: 'string', short: 'H', multiple: true, description: 'extra request header', value: 'Name: value' },
    include: { type: 'boolean', short: 'i', description: 'print the status line and response headers' },
    timeout: TIMEOUT,
  },
  async run(ctx, values, positionals) {
    const [method, path] = positionals;
    if (!method || !path) throw new UsageError('usage: ath call <METHOD> <path>');
    if (!/^[A-Za-z]+$/.test(method)) throw new UsageError(`not an HTTP method: ${method}`);
    const client = await ctx.client(str(values['server']), seconds(values['timeout'], 'timeout'));
    const provider = providerFor(client, values, ctx);
    let body = str(values['data']);
    if (body?.startsWith('@')) body = await readFile(body.slice(1), 'utf8');
    const headers: Record<string, string> = {};
    for (const h of (values['header'] as string[] | undefined) ?? []) {
      const i = h.indexOf(':');
      if (i <= 0) throw new UsageError(`--header must look like "Name: value", got ${h}`);
      headers[h.slice(0, i).trim()] = h.slice(i + 1).trim();
    }
    const init = { headers, ...(body !== undefined ? { body } : {}) };
    const response = client instanceof NativeClient ? await client.call(method, path, init) : await client.call(provider, method, path, init);
    const text = await response.text();
    if (flag(values['json'])) {
      let parsed: unknown = text;
      try {
        parsed = JSON.parse(text);
      } catch {
        // not JSON: keep the text
      }
      ctx.io.stdout(`${JSON.stringify({ status: response.status, headers: Object.fromEntries(response.headers), body: parsed }, null, 2)}\n`);
    } else {
      if (flag(values['include'])) {
        ctx.io.stdout(`HTTP ${response.status} ${response.statusText}\n${[...response.headers].map(([k, v]) => `${k}: ${v}`).join('\n')}\n\n`);
      }
      ctx.io.stdout(text.endsWith('\n') || text === '' ? text : `${text}\n`);
    }
    if (!response.ok) {
      ctx.io.stderr(`ath: the API answered HTTP ${response.status}\n`);
      return EXIT.API_ERROR;
    }
    return EXIT.OK;
  },
};

// ------------------------------------------------------------------------------------------ revoke

const revoke: Command = {
  summary: 'revoke the stored token',
  usage: 'ath revoke [--provider <id>]',
  options: { server: SERVER, provider: PROVIDER, timeout: TIMEOUT },
  async run(ctx, values) {
    const client = await ctx.client(str(values['server']), seconds(values['timeout'], 'timeout'));
    const provider = providerFor(client, values, ctx);
    const done = client instanceof NativeClient ? await client.revoke() : await client.revoke(provider);
    out(ctx, values, { revoked: done, provider_id: provider }, done ? `revoked the token for ${provider}` : `no token for ${provider}: nothing to revoke`);
    return EXIT.OK;
  },
};

// ------------------------------------------------------------------------------------------ config

const config: Command = {
  summary: 'show or change settings (stored in <ATH_HOME>/config.json, 0600)',
  usage: 'ath config [list | get <key> | set <key> <value> | unset <key> | path]',
  description: `Keys:\n${Object.entries(CONFIG_KEYS)
    .map(([k, d]) => `  ${k.padEnd(18)} ${d}`)
    .join('\n')}`,
  options: {},
  async run(ctx, values, positionals) {
    const [action = 'list', key, value] = positionals;
    const known = (k: string | undefined): ConfigKey => {
      if (!k) throw new UsageError(`ath config ${action} needs a key`);
      if (!(k in CONFIG_KEYS)) throw new UsageError(`unknown config key ${k}; known keys: ${Object.keys(CONFIG_KEYS).join(', ')}`);
      return k as ConfigKey;
    };
    switch (action) {
      case 'list':
        out(ctx, values, { home: ctx.home, ...ctx.config }, [`# ${ctx.configFile}`, ...Object.entries(ctx.config).map(([k, v]) => `${k} = ${v}`)].join('\n'));
        return EXIT.OK;
      case 'path':
        out(ctx, values, { home: ctx.home, config: ctx.configFile }, ctx.configFile);
        return EXIT.OK;
      case 'get': {
        const v = ctx.config[known(key)];
        if (v === undefined) return EXIT.CONFIG;
        out(ctx, values, { [key!]: v }, v);
        return EXIT.OK;
      }
      case 'set': {
        const k = known(key);
        if (value === undefined) throw new UsageError(`ath config set ${k} needs a value`);
        if ((k === 'agent_id' || k === 'server' || k === 'redirect_uri') && !URL.canParse(value)) throw new UsageError(`${k} must be an absolute URL`);
        if (k === 'mode' && value !== 'native' && value !== 'gateway') throw new UsageError('mode must be native or gateway');
        ctx.config[k] = value;
        if (k === 'server') delete ctx.config.mode;
        await ctx.save();
        out(ctx, values, { [k]: value }, `${k} = ${value}`);
        return EXIT.OK;
      }
      case 'unset': {
        const k = known(key);
        delete ctx.config[k];
        await ctx.save();
        out(ctx, values, { [k]: null }, `${k} unset`);
        return EXIT.OK;
      }
      default:
        throw new UsageError(`unknown config action ${action}`);
    }
  },
};

export const COMMANDS: Record<string, Command> = { keygen, identity, config, discover, register, status, authorize, token, call, revoke, user };
