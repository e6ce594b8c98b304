import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { checkConfig, ConfigError, loadConfig, parseConfig, parseConfigText, serializeConfig, type GatewayConfig } from './config.js';
import { createGateway, type Gateway } from './server.js';

export const HELP = `ath-gateway — the athkit reference ATH gateway

Usage:
  ath-gateway start [--config FILE]          start the gateway (FILE default: $ATH_GATEWAY_CONFIG, else ./gateway.yaml
                                             if present, else environment variables only)
  ath-gateway check-config FILE [--print]    validate a config file (secrets never printed); --print shows it redacted
  ath-gateway admin [--url URL] [--key KEY] COMMAND ...
                                             the admin API (URL default $ATH_GATEWAY_URL or http://127.0.0.1:8080,
                                             KEY default $ATH_GATEWAY_ADMIN_KEY)
      providers list | get ID | put FILE | delete ID
      agents list [--state pending|approved|denied|suspended] | get ID | approve ID | deny ID | suspend ID | delete ID
      tokens list [--client-id ID] [--user-id ID] [--live] | revoke (--token T | --hash H)
      audit [--event NAME] [--agent-id URL] [--since ISO] [--limit N]
  ath-gateway --help

Exit codes: 0 ok, 1 failure (invalid config, admin API error), 2 usage error.
SIGTERM/SIGINT: new proxied calls get 503, in-flight ones finish (limits.drainMs), then the process exits.
`;

export interface CliIo {
  out(text: string): void;
  err(text: string): void;
  env: Readonly<Record<string, string | undefined>>;
  fetch?: typeof fetch;
}

const defaultIo: CliIo = {
  out: (t) => process.stdout.write(t.endsWith('\n') ? t : t + '\n'),
  err: (t) => process.stderr.write(t.endsWith('\n') ? t : t + '\n'),
  env: process.env,
};

class UsageError extends Error {}

/** Loads the config for `start`: --config, $ATH_GATEWAY_CONFIG, ./gateway.yaml, or the environment alone. */
export async function resolveStartConfig(file: string | undefined, env: Readonly<Record<string, string | undefined>>): Promise<GatewayConfig> {
  const path = file ?? env['ATH_GATEWAY_CONFIG'] ?? (existsSync('gateway.yaml') ? 'gateway.yaml' : undefined);
  return path ? loadConfig(path, env) : parseConfig({}, env, 'environment');
}

/** Runs `ath-gateway start` until SIGTERM/SIGINT; returns the running gateway (tests stop it themselves). */
export async function startCommand(file: string | undefined, io: CliIo = defaultIo, signals = true): Promise<Gateway> {
  const config = await resolveStartConfig(file, io.env);
  const gw = await createGateway(config, { env: io.env });
  for (const w of config.warnings) gw.logger.warn(w);
  const address = await gw.listen();
  gw.logger.info({ address, publicUrl: config.publicUrl, providers: gw.providers.list().map((p) => p.provider_id) }, 'ath-gateway listening');
  if (signals) {
    let stopping = false;
    for (const signal of ['SIGTERM', 'SIGINT'] as const) {
      process.on(signal, () => {
        if (stopping) return;
        stopping = true;
        gw.logger.info({ signal }, 'draining and shutting down');
        gw.shutdown().then(
          () => process.exit(0),
          (err: unknown) => {
            gw.logger.error({ err }, 'shutdown failed');
            process.exit(1);
          },
        );
      });
    }
  }
  return gw;
}

async function adminCommand(args: string[], io: CliIo): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    strict: true,
    options: {
      url: { type: 'string' },
      key: { type: 'string' },
      state: { type: 'string' },
      'client-id': { type: 'string' },
      'user-id': { type: 'string' },
      live: { type: 'boolean' },
      token: { type: 'string' },
      hash: { type: 'string' },
      event: { type: 'string' },
      'agent-id': { type: 'string' },
      since: { type: 'string' },
      limit: { type: 'string' },
    },
  });
  const base = (values.url ?? io.env['ATH_GATEWAY_URL'] ?? 'http://127.0.0.1:8080').replace(/\/+$/, '');
  const key = values.key ?? io.env['ATH_GATEWAY_ADMIN_KEY'];
  if (!key) throw new UsageError('no admin key: pass --key or set ATH_GATEWAY_ADMIN_KEY');
  const [area, action, id] = positionals;
  const doFetch = io.fetch ?? fetch;
  const call = async (method: string, path: string, body?: unknown): Promise<number> => {
    const res = await doFetch(`${base}/admin${path}`, {
      method,
      headers: { authorization: `Bearer ${key}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
    });
    const text = await res.text();
    if (text) io[res.ok ? 'out' : 'err'](res.headers.get('content-type')?.includes('json') ? JSON.stringify(JSON.parse(text), null, 2) : text);
    else if (res.ok) io.out(`${res.status} ok`);
    return res.ok ? 0 : 1;
  };
  const need = (v: string | undefined, what: string): string => {
    if (!v) throw new UsageError(`missing ${what}`);
    return encodeURIComponent(v);
  };
  const query = (pairs: Record<string, string | undefined>) => {
    const q = new URLSearchParams();
    for (const [k, v] of Object.entries(pairs)) if (v !== undefined) q.set(k, v);
    return q.size ? `?${q.toString()}` : '';
  };
  switch (area) {
    case 'providers':
      if (action === 'list') return call('GET', '/providers');
      if (action === 'get') return call('GET', `/providers/${need(id, 'provider id')}`);
      if (action === 'delete') return call('DELETE', `/providers/${need(id, 'provider id')}`);
      if (action === 'put') {
        const file = need(id, 'provider file');
        const provider = parseConfigText(await readFile(decodeURIComponent(file), 'utf8'), decodeURIComponent(file)) as { provider_id?: string };
        if (typeof provider?.provider_id !== 'string') throw new UsageError('the provider file needs a provider_id');
        return call('PUT', `/providers/${encodeURIComponent(provider.provider_id)}`, provider);
      }
      break;
    case 'agents':
      if (action === 'list') return call('GET', `/agents${query({ state: values.state })}`);
      if (action === 'get') return call('GET', `/agents/${need(id, 'client id')}`);
      if (action === 'delete') return call('DELETE', `/agents/${need(id, 'client id')}`);
      if (action === 'approve' || action === 'deny' || action === 'suspend') return call('POST', `/agents/${need(id, 'client id')}/${action}`, {});
      break;
    case 'tokens':
      if (action === 'list') {
        return call('GET', `/tokens${query({ client_id: values['client-id'], user_id: values['user-id'], live: values.live ? '1' : undefined })}`);
      }
      if (action === 'revoke') {
        if (values.token) return call('POST', '/tokens/revoke', { token: values.token });
        if (values.hash) return call('POST', '/tokens/revoke', { token_hash: values.hash });
        throw new UsageError('tokens revoke needs --token or --hash');
      }
      break;
    case 'audit':
      return call('GET', `/audit${query({ event: values.event, agent_id: values['agent-id'], since: values.since, limit: values.limit })}`);
    default:
      break;
  }
  throw new UsageError(`unknown admin command: ${positionals.join(' ') || '(none)'}`);
}

/** The `ath-gateway` command; returns the exit code (`start` keeps running and returns 0 once listening). */
export async function main(argv: string[], io: CliIo = defaultIo): Promise<number> {
  const [command, ...rest] = argv;
  try {
    if (!command || command === '--help' || command === '-h' || command === 'help') {
      io.out(HELP);
      return command ? 0 : 2;
    }
    if (command === 'start') {
      const { values } = parseArgs({ args: rest, options: { config: { type: 'string', short: 'c' } }, strict: true });
      await startCommand(values.config, io);
      return 0;
    }
    if (command === 'check-config') {
      const { values, positionals } = parseArgs({ args: rest, allowPositionals: true, options: { print: { type: 'boolean' } }, strict: true });
      const file = positionals[0];
      if (!file) throw new UsageError('check-config needs a FILE');
      const result = await checkConfig(file, io.env);
      if (!result.ok) {
        io.err(`invalid configuration ${file}:\n${result.errors.map((e) => `  - ${e}`).join('\n')}`);
        return 1;
      }
      io.out(result.summary);
      if (values.print) io.out(serializeConfig(result.config));
      return 0;
    }
    if (command === 'admin') return await adminCommand(rest, io);
    throw new UsageError(`unknown command: ${command}`);
  } catch (err) {
    if (err instanceof UsageError || (err as { code?: string }).code?.startsWith('ERR_PARSE_ARGS')) {
      io.err(`ath-gateway: ${(err as Error).message}\nRun ath-gateway --help for usage.`);
      return 2;
    }
    if (err instanceof ConfigError) {
      io.err(err.message);
      return 1;
    }
    io.err(`ath-gateway: ${(err as Error).message}`);
    return 1;
  }
}
