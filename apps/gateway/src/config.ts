import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { isIP } from 'node:net';
import { extname } from 'node:path';
import { defaultApprovalPolicy, resourceProblem, type ApprovalPolicy, type ProviderConfig } from '@athkit/core';
import YAML from 'yaml';
import { z } from 'zod';
import { PROVIDER_ID_PATTERN } from './canonical-path.js';
import { checkScopeRules, type ScopeRule } from './scope-map.js';
import { Secret, redactUrlCredentials } from './secret.js';

export { Secret } from './secret.js';

/** Upper bounds fixed by the protocol (AMB-17 / C-138, C-090). */
export const MAX_TOKEN_TTL_SECONDS = 3600;
export const MAX_SESSION_TTL_SECONDS = 600;
export const DEFAULT_STORAGE = 'sqlite:./data/gateway.db';
/** Slow-client timeouts (threats F12): the whole request, body included, and its headers alone. */
export const DEFAULT_REQUEST_TIMEOUT_MS = 30_000;
export const DEFAULT_HEADERS_TIMEOUT_MS = 10_000;

export interface RateLimit {
  /** Requests allowed per window. */
  limit: number;
  windowSeconds: number;
  /**
   * perAgent only: units an instance takes from the shared count per store write (see core's
   * RateLimitRule.batch). Default {@link defaultAgentBatch}: limit / 20, from 1 to 100.
   */
  batch?: number;
}

/**
 * The default per-agent batch: a twentieth of the limit (at most 100), so a store write serves
 * that many proxied calls, and with several instances an agent can be refused at most ~5 % of the
 * limit early per extra instance; 1 (exact, a write per call) for limits under 40.
 */
export function defaultAgentBatch(limit: number): number {
  return Math.min(100, Math.max(1, Math.floor(limit / 20)));
}

export interface UpstreamOAuthConfig {
  /** Issuer identifier; metadata is discovered from it (RFC 8414 / OIDC) and `iss` is checked against it (RFC 9207). */
  issuer?: string;
  authorization_endpoint?: string;
  token_endpoint?: string;
  userinfo_endpoint?: string;
  client_id: string;
  /** Name of the environment variable holding the client secret. */
  client_secret_env: string;
  /** The secret itself, read from `client_secret_env` at load time. Never printed. */
  client_secret: Secret;
  token_endpoint_auth_method: 'client_secret_basic' | 'client_secret_post';
  /**
   * RFC 8707 resource indicator sent upstream when the agent did not name one. Not required to be
   * under `api_base` (an AS may use its own identifiers); a load-time warning says when it is not,
   * since agents themselves may only name `api_base` or a path below it (threats D9).
   */
  resource?: string;
}

export interface GatewayProviderConfig {
  provider_id: string;
  display_name: string;
  categories?: string[];
  available_scopes: string[];
  agent_approval_required?: boolean;
  oauth: UpstreamOAuthConfig;
  /** Base URL of the provider's API; proxied paths are appended to its path. */
  api_base: string;
  /** Upstream API timeout (connect + response headers), milliseconds. */
  timeout_ms: number;
  scope_map: ScopeRule[];
}

export interface GatewayConfig {
  dev: boolean;
  /** The gateway's public origin (engine baseUrl), no trailing slash. */
  publicUrl: string;
  listen: { host: string; port: number };
  /** Store URL (`sqlite:…`, `memory:`, `postgres://…`); shown with its password masked. */
  storage: Secret;
  secrets: { cookieKey: Secret; vaultKey: Secret; adminKey: Secret | null };
  /** `gateway_id` in ath.json. */
  gatewayId: string;
  /** Where admin-API provider changes are persisted (JSON); null = runtime memory only. */
  providersFile: string | null;
  /**
   * Body limits, the SIGTERM drain window, and the slow-client timeouts (threats F12): a request
   * whose headers (`headersTimeoutMs`) or whole request, body included (`requestTimeoutMs`), has not
   * arrived in time is answered 408 and its connection closed.
   */
  limits: { athBodyBytes: number; proxyBodyBytes: number; drainMs: number; requestTimeoutMs: number; headersTimeoutMs: number };
  tokenTtlSeconds: number;
  sessionTtlSeconds: number;
  /** `false` turns a limit off (e.g. when a load balancer in front already limits). */
  rateLimits: { perAgent: RateLimit | false; perIp: RateLimit | false };
  approval: { autoApprove?: true | string[]; deny: string[]; denyReason?: string };
  /** `host:port` entries whose agent identity documents may be fetched over plain http (dev, tests). */
  allowInsecureAgentHosts: string[];
  logLevel: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
  providers: GatewayProviderConfig[];
  /** Notes for the operator (e.g. ephemeral dev secrets). */
  warnings: string[];
}

/** Thrown by {@link loadConfig}: `issues` name the bad key, never its value. */
export class ConfigError extends Error {
  override readonly name = 'ConfigError';
  constructor(
    readonly issues: readonly string[],
    source?: string,
  ) {
    super(`invalid gateway configuration${source ? ` (${source})` : ''}:\n${issues.map((i) => `  - ${i}`).join('\n')}`);
  }
}

// --- environment overrides -------------------------------------------------------------------

type EnvKind = 'string' | 'int' | 'bool' | 'list';
/** ATH_GATEWAY_* variables and the keys they override. */
export const ENV_OVERRIDES: readonly { env: string; path: readonly string[]; kind: EnvKind }[] = [
  { env: 'ATH_GATEWAY_DEV', path: ['dev'], kind: 'bool' },
  { env: 'ATH_GATEWAY_PUBLIC_URL', path: ['publicUrl'], kind: 'string' },
  { env: 'ATH_GATEWAY_HOST', path: ['listen', 'host'], kind: 'string' },
  { env: 'ATH_GATEWAY_PORT', path: ['listen', 'port'], kind: 'int' },
  { env: 'ATH_GATEWAY_STORAGE', path: ['storage'], kind: 'string' },
  { env: 'ATH_GATEWAY_COOKIE_KEY', path: ['secrets', 'cookieKey'], kind: 'string' },
  { env: 'ATH_GATEWAY_VAULT_KEY', path: ['secrets', 'vaultKey'], kind: 'string' },
  { env: 'ATH_GATEWAY_ADMIN_KEY', path: ['secrets', 'adminKey'], kind: 'string' },
  { env: 'ATH_GATEWAY_PROVIDERS_FILE', path: ['providersFile'], kind: 'string' },
  { env: 'ATH_GATEWAY_TOKEN_TTL_SECONDS', path: ['tokenTtlSeconds'], kind: 'int' },
  { env: 'ATH_GATEWAY_SESSION_TTL_SECONDS', path: ['sessionTtlSeconds'], kind: 'int' },
  { env: 'ATH_GATEWAY_RATE_LIMIT_PER_AGENT', path: ['rateLimits', 'perAgent', 'limit'], kind: 'int' },
  { env: 'ATH_GATEWAY_RATE_LIMIT_PER_IP', path: ['rateLimits', 'perIp', 'limit'], kind: 'int' },
  { env: 'ATH_GATEWAY_ALLOW_INSECURE_AGENT_HOSTS', path: ['allowInsecureAgentHosts'], kind: 'list' },
  { env: 'ATH_GATEWAY_LOG_LEVEL', path: ['logLevel'], kind: 'string' },
];

const SECRET_PATHS = new Set(['secrets.cookieKey', 'secrets.vaultKey', 'secrets.adminKey', 'storage']);

function convert(kind: EnvKind, value: string): unknown {
  switch (kind) {
    case 'int':
      return /^-?\d+$/.test(value.trim()) ? Number(value.trim()) : value;
    case 'bool':
      return /^(1|true|yes|on)$/i.test(value.trim()) ? true : /^(0|false|no|off)$/i.test(value.trim()) ? false : value;
    case 'list':
      return value
        .split(',')
        .map((s) => s.trim())
        .filter(Boolean);
    default:
      return value;
  }
}

function applyEnv(raw: Record<string, unknown>, env: Readonly<Record<string, string | undefined>>): Map<string, string> {
  const sources = new Map<string, string>();
  for (const { env: name, path, kind } of ENV_OVERRIDES) {
    const value = env[name];
    if (value === undefined || value === '') continue;
    let node = raw;
    for (const key of path.slice(0, -1)) {
      const next = node[key];
      if (typeof next !== 'object' || next === null || Array.isArray(next)) node[key] = {};
      node = node[key] as Record<string, unknown>;
    }
    node[path[path.length - 1]!] = convert(kind, value);
    sources.set(path.join('.'), name);
  }
  return sources;
}

// --- schema ----------------------------------------------------------------------------------

const LOOPBACK_HOSTS = new Set(['localhost', '[::1]']);
function isLoopbackHost(hostname: string): boolean {
  if (LOOPBACK_HOSTS.has(hostname)) return true;
  return isIP(hostname) === 4 && hostname.startsWith('127.');
}

/** https, or http on a loopback host (sidecars, tests), or any http in dev mode; no credentials, no fragment. */
function httpUrl(dev: boolean, what = 'URL') {
  return z.string().superRefine((value, ctx) => {
    let url: URL;
    try {
      url = new URL(value);
    } catch {
      ctx.addIssue({ code: 'custom', message: `must be an absolute ${what}` });
      return;
    }
    if (url.protocol !== 'https:' && url.protocol !== 'http:') {
      ctx.addIssue({ code: 'custom', message: `must be an https ${what}` });
    } else if (url.protocol === 'http:' && !dev && !isLoopbackHost(url.hostname)) {
      ctx.addIssue({ code: 'custom', message: `must use https (plain http only for loopback hosts or in dev mode)` });
    }
    if (url.username || url.password) ctx.addIssue({ code: 'custom', message: 'must not contain credentials' });
    if (value.includes('#')) ctx.addIssue({ code: 'custom', message: 'must not contain a fragment' });
  });
}

// RFC 6749 §3.3 scope-token.
const scopeToken = z.string().regex(/^[\x21\x23-\x5B\x5D-\x7E]+$/, 'must be an RFC 6749 scope token (no spaces or quotes)');
const positiveInt = (max?: number) => (max ? z.number().int().min(1).max(max) : z.number().int().min(1));
const KEY_MESSAGE = 'must be 32 random bytes encoded as base64url (43 characters)';
const key32 = z.string().superRefine((value, ctx) => {
  if (!/^[A-Za-z0-9_-]{43}$/.test(value) || Buffer.from(value, 'base64url').length !== 32) {
    ctx.addIssue({ code: 'custom', message: KEY_MESSAGE });
  }
});
const hostPort = z
  .string()
  .regex(/^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):\d{1,5}$/, 'must be host:port (e.g. 127.0.0.1:8443)');

function storageUrl(dev: boolean) {
  return z.string().superRefine((value, ctx) => {
    if (value === 'memory:' || value === 'memory://') {
      if (!dev) ctx.addIssue({ code: 'custom', message: 'memory: storage is only allowed in dev mode' });
      return;
    }
    if (/^sqlite:.+/.test(value)) return;
    if (/^postgres(ql)?:\/\//.test(value)) {
      try {
        new URL(value);
        return;
      } catch {
        ctx.addIssue({ code: 'custom', message: 'is not a valid PostgreSQL URL' });
        return;
      }
    }
    ctx.addIssue({ code: 'custom', message: 'must be sqlite:<path>, postgres://… or (dev only) memory:' });
  });
}

function providerSchema(dev: boolean) {
  const url = httpUrl(dev);
  const oauth = z
    .strictObject({
      issuer: url.optional(),
      authorization_endpoint: url.optional(),
      token_endpoint: url.optional(),
      userinfo_endpoint: url.optional(),
      client_id: z.string().min(1, 'is required'),
      // Accepted by the parser only to give a precise error below; never kept.
      client_secret: z.unknown().optional(),
      client_secret_env: z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'must be an environment variable name'),
      token_endpoint_auth_method: z.enum(['client_secret_basic', 'client_secret_post']).default('client_secret_basic'),
      resource: httpUrl(dev, 'resource URI').optional(),
    })
    .superRefine((o, ctx) => {
      if (o.client_secret !== undefined) {
        ctx.addIssue({
          code: 'custom',
          path: ['client_secret'],
          message: 'inline client secrets are not allowed; name an environment variable in client_secret_env',
        });
      }
      if (!o.issuer && !(o.authorization_endpoint && o.token_endpoint)) {
        ctx.addIssue({
          code: 'custom',
          path: ['issuer'],
          message: 'set issuer (metadata discovery) or both authorization_endpoint and token_endpoint',
        });
      }
    });
  const rule = z.strictObject({
    methods: z.array(z.string()).min(1, 'must name at least one method'),
    path: z.string(),
    scope: scopeToken,
  });
  return z
    .strictObject({
      provider_id: z.string().regex(PROVIDER_ID_PATTERN, 'must match ^[a-z0-9][a-z0-9-]{0,63}$'),
      display_name: z.string().min(1, 'is required'),
      categories: z.array(z.string().min(1)).optional(),
      available_scopes: z.array(scopeToken).min(1, 'must list at least one scope'),
      agent_approval_required: z.boolean().optional(),
      oauth,
      api_base: httpUrl(dev).refine((v) => !v.includes('?'), 'must not contain a query'),
      timeout_ms: z.number().int().min(100).max(300_000).default(30_000),
      scope_map: z.array(rule).default([]),
    })
    .superRefine((p, ctx) => {
      for (const problem of checkScopeRules(p.scope_map, p.available_scopes)) {
        ctx.addIssue({ code: 'custom', path: ['scope_map', problem.index, problem.field], message: problem.message });
      }
    });
}

function configSchema(dev: boolean) {
  const rateLimit = (limit: number) =>
    z.strictObject({ limit: positiveInt().default(limit), windowSeconds: positiveInt(86_400).default(60) }).default({ limit, windowSeconds: 60 });
  const agentRateLimit = z
    .strictObject({ limit: positiveInt().default(600), windowSeconds: positiveInt(86_400).default(60), batch: positiveInt().optional() })
    .refine((r) => r.batch === undefined || r.batch <= r.limit, { path: ['batch'], message: 'must not exceed limit' })
    .default({ limit: 600, windowSeconds: 60 });
  return z
    .strictObject({
      dev: z.boolean().default(false),
      publicUrl: httpUrl(dev).refine((v) => !v.includes('?'), 'must not contain a query'),
      listen: z
        .strictObject({ host: z.string().min(1).default('0.0.0.0'), port: z.number().int().min(0).max(65_535).default(8080) })
        .default({ host: '0.0.0.0', port: 8080 }),
      storage: storageUrl(dev).default(DEFAULT_STORAGE),
      secrets: z
        .strictObject({
          cookieKey: key32.optional(),
          vaultKey: key32.optional(),
          adminKey: z.string().min(32, 'must be at least 32 characters').optional(),
        })
        .default({}),
      gatewayId: z.string().min(1).max(200).optional(),
      providersFile: z.string().min(1).optional(),
      limits: z
        .strictObject({
          athBodyBytes: z.number().int().min(1024).max(1024 * 1024).default(65_536),
          proxyBodyBytes: z.number().int().min(1024).max(1024 * 1024 * 1024).default(10 * 1024 * 1024),
          drainMs: z.number().int().min(0).max(600_000).default(10_000),
          requestTimeoutMs: z.number().int().min(1000).max(3_600_000).default(DEFAULT_REQUEST_TIMEOUT_MS),
          headersTimeoutMs: z.number().int().min(1000).max(3_600_000).default(DEFAULT_HEADERS_TIMEOUT_MS),
        })
        .refine((l) => l.headersTimeoutMs <= l.requestTimeoutMs, { path: ['headersTimeoutMs'], message: 'must not exceed limits.requestTimeoutMs' })
        .default({
          athBodyBytes: 65_536,
          proxyBodyBytes: 10 * 1024 * 1024,
          drainMs: 10_000,
          requestTimeoutMs: DEFAULT_REQUEST_TIMEOUT_MS,
          headersTimeoutMs: DEFAULT_HEADERS_TIMEOUT_MS,
        }),
      tokenTtlSeconds: positiveInt(MAX_TOKEN_TTL_SECONDS).default(MAX_TOKEN_TTL_SECONDS),
      sessionTtlSeconds: positiveInt(MAX_SESSION_TTL_SECONDS).default(MAX_SESSION_TTL_SECONDS),
      rateLimits: z.strictObject({ perAgent: z.union([z.literal(false), agentRateLimit]), perIp: z.union([z.literal(false), rateLimit(1200)]) }).default({
        perAgent: { limit: 600, windowSeconds: 60 },
        perIp: { limit: 1200, windowSeconds: 60 },
      }),
      approval: z
        .strictObject({
          autoApprove: z.union([z.literal(true), z.array(scopeToken)]).optional(),
          deny: z.array(scopeToken).default([]),
          denyReason: z.string().min(1).optional(),
        })
        .default({ deny: [] }),
      allowInsecureAgentHosts: z.array(hostPort).default([]),
      logLevel: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
      providers: z.array(providerSchema(dev)).default([]),
    })
    .superRefine((c, ctx) => {
      const seen = new Set<string>();
      c.providers.forEach((p, i) => {
        if (seen.has(p.provider_id)) {
          ctx.addIssue({ code: 'custom', path: ['providers', i, 'provider_id'], message: 'duplicate provider_id' });
        }
        seen.add(p.provider_id);
      });
      if (!dev) {
        for (const key of ['cookieKey', 'vaultKey'] as const) {
          if (!c.secrets[key]) {
            ctx.addIssue({ code: 'custom', path: ['secrets', key], message: 'is required outside dev mode' });
          }
        }
      }
    });
}

// --- messages --------------------------------------------------------------------------------

function formatPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const key of path) {
    if (typeof key === 'number') out += `[${key}]`;
    else out += out ? `.${String(key)}` : String(key);
  }
  return out || '(root)';
}

function envHint(path: string, sources: Map<string, string>): string {
  for (const [key, env] of sources) if (path === key || path.startsWith(key + '.') || path.startsWith(key + '[')) return ` (from ${env})`;
  return '';
}

function describeIssue(issue: z.core.$ZodIssue, sources: Map<string, string>, raw: unknown): string[] {
  const base = formatPath(issue.path);
  if (issue.code === 'unrecognized_keys') {
    return issue.keys.map((k) => {
      const key = base === '(root)' ? k : `${base}.${k}`;
      return `${key}: unknown key`;
    });
  }
  const hint = envHint(base, sources);
  if (SECRET_PATHS.has(base) || base.endsWith('.client_secret')) {
    // Never quote a secret, nor zod's description of what it received.
    return [`${base}${hint}: ${issue.code === 'custom' ? issue.message : 'invalid value'}`];
  }
  if (issue.code === 'invalid_type' && issue.input === undefined && hasNoValue(raw, issue.path)) {
    return [`${base}${hint}: is required`];
  }
  return [`${base}${hint}: ${issue.message}`];
}

function hasNoValue(raw: unknown, path: readonly PropertyKey[]): boolean {
  let node = raw;
  for (const key of path) {
    if (typeof node !== 'object' || node === null) return true;
    node = (node as Record<PropertyKey, unknown>)[key];
  }
  return node === undefined;
}

// --- loading ---------------------------------------------------------------------------------

/** Parses the text of a config file (YAML, or JSON for `.json`) without echoing its content in errors. */
export function parseConfigText(text: string, filename = 'config.yaml'): unknown {
  if (extname(filename).toLowerCase() === '.json') {
    try {
      return JSON.parse(text) as unknown;
    } catch (err) {
      const position = /position (\d+)/.exec((err as Error).message)?.[1];
      throw new ConfigError([`${filename}: not valid JSON${position ? ` (at character ${position})` : ''}`]);
    }
  }
  const doc = YAML.parseDocument(text, { prettyErrors: false });
  if (doc.errors.length) {
    // Only the position and error kind: yaml's own message quotes the source line, which may hold a secret.
    throw new ConfigError(
      doc.errors.map((e) => {
        const before = text.slice(0, e.pos[0]).split('\n');
        const at = `:${before.length}:${before[before.length - 1]!.length + 1}`;
        return `${filename}${at}: YAML ${e.code.toLowerCase().replace(/_/g, ' ')}`;
      }),
    );
  }
  return doc.toJS() as unknown;
}

/**
 * Validates a raw configuration object (as read from the file) with environment overrides applied.
 * Resolves every provider's `client_secret_env`, and in dev mode generates missing secrets.
 */
export function parseConfig(raw: unknown, env: Readonly<Record<string, string | undefined>> = {}, source?: string): GatewayConfig {
  if (raw === null || raw === undefined) raw = {};
  if (typeof raw !== 'object' || Array.isArray(raw)) throw new ConfigError(['(root): must be a mapping of keys'], source);
  const input = structuredClone(raw) as Record<string, unknown>;
  const sources = applyEnv(input, env);
  const dev = input['dev'] === true;
  const result = configSchema(dev).safeParse(input);
  if (!result.success) {
    throw new ConfigError(
      result.error.issues.flatMap((i) => describeIssue(i, sources, input)),
      source,
    );
  }
  const c = result.data;
  const warnings: string[] = [];
  const issues: string[] = [];

  const secret = (name: 'cookieKey' | 'vaultKey', what: string): Secret => {
    const value = c.secrets[name];
    if (value) return new Secret(value);
    warnings.push(`dev mode: generated an ephemeral ${what} (secrets.${name}); it is lost on restart`);
    return new Secret(randomBytes(32).toString('base64url'));
  };
  const cookieKey = secret('cookieKey', 'cookie/session key');
  const vaultKey = secret('vaultKey', 'vault encryption key (stored upstream tokens become unreadable after a restart)');

  const providers = c.providers.map((p, i): GatewayProviderConfig => {
    const value = env[p.oauth.client_secret_env];
    if (value === undefined || value === '') {
      issues.push(`providers[${i}].oauth.client_secret_env: environment variable ${p.oauth.client_secret_env} is not set`);
    }
    return withClientSecret(p, value ?? '');
  });
  if (issues.length) throw new ConfigError(issues, source);
  let adminKey: Secret | null = c.secrets.adminKey ? new Secret(c.secrets.adminKey) : null;
  if (!adminKey && c.dev) {
    adminKey = new Secret(randomBytes(32).toString('base64url'));
    warnings.push('dev mode: generated an ephemeral admin API key (secrets.adminKey)');
  } else if (!adminKey) warnings.push('no secrets.adminKey: the admin API is disabled');
  if (c.dev) warnings.push('dev mode: not for production (ephemeral secrets allowed, plain http accepted)');
  if (providers.length === 0) warnings.push('no providers configured');
  for (const p of providers) {
    if (p.scope_map.length === 0) warnings.push(`provider ${p.provider_id}: empty scope_map, every proxied call is denied`);
    // A warning, not an error: the operator's default may be an AS-defined identifier outside api_base (threats D9 binds agents only).
    if (p.oauth.resource !== undefined && resourceProblem(p.oauth.resource, p.api_base) !== null) {
      warnings.push(
        `provider ${p.provider_id}: oauth.resource is not api_base or a path below it; it is sent upstream when an agent names no resource, but an agent naming it gets 400 (threats D9)`,
      );
    }
  }

  return {
    dev: c.dev,
    publicUrl: c.publicUrl.replace(/\/+$/, ''),
    listen: c.listen,
    storage: new Secret(c.storage, redactUrlCredentials(c.storage)),
    secrets: { cookieKey, vaultKey, adminKey },
    gatewayId: c.gatewayId ?? new URL(c.publicUrl).host,
    providersFile: c.providersFile ?? defaultProvidersFile(c.storage),
    limits: c.limits,
    tokenTtlSeconds: c.tokenTtlSeconds,
    sessionTtlSeconds: c.sessionTtlSeconds,
    rateLimits: {
      perIp: c.rateLimits.perIp,
      perAgent: c.rateLimits.perAgent && { ...c.rateLimits.perAgent, batch: c.rateLimits.perAgent.batch ?? defaultAgentBatch(c.rateLimits.perAgent.limit) },
    },
    approval: {
      ...(c.approval.autoApprove !== undefined ? { autoApprove: c.approval.autoApprove } : {}),
      deny: c.approval.deny,
      ...(c.approval.denyReason !== undefined ? { denyReason: c.approval.denyReason } : {}),
    },
    allowInsecureAgentHosts: c.allowInsecureAgentHosts,
    logLevel: c.logLevel,
    providers,
    warnings,
  };
}

/** Admin-API provider changes live next to a SQLite database (`<db>.providers.json`); elsewhere only in memory unless `providersFile` is set. */
function defaultProvidersFile(storage: string): string | null {
  if (!storage.startsWith('sqlite:')) return null;
  let path = storage.slice('sqlite:'.length);
  if (path.startsWith('//')) path = path.slice(2);
  if (path === '' || path === ':memory:') return null;
  return `${path}.providers.json`;
}

/**
 * One provider as the admin API receives it (the config file's provider shape); the client secret is
 * read from `client_secret_env` in `env`.
 */
export function parseProviderConfig(
  raw: unknown,
  env: Readonly<Record<string, string | undefined>>,
  dev: boolean,
): GatewayProviderConfig {
  const result = providerSchema(dev).safeParse(raw);
  if (!result.success) throw new ConfigError(result.error.issues.flatMap((i) => describeIssue(i, new Map(), raw)));
  const p = result.data;
  const value = env[p.oauth.client_secret_env];
  if (value === undefined || value === '') {
    throw new ConfigError([`oauth.client_secret_env: environment variable ${p.oauth.client_secret_env} is not set`]);
  }
  return withClientSecret(p, value);
}

/** A validated provider with its client secret (read from `client_secret_env`) in place of any inline one. */
function withClientSecret(p: z.output<ReturnType<typeof providerSchema>>, value: string): GatewayProviderConfig {
  const { client_secret: _inline, ...oauth } = p.oauth;
  return { ...p, ...(p.categories ? { categories: p.categories } : {}), oauth: { ...oauth, client_secret: new Secret(value) } };
}

/** The JSON form of a provider for the providers file and admin views (the secret only by env name). */
export function providerToJson(p: GatewayProviderConfig): Record<string, unknown> {
  const { client_secret: _secret, ...oauth } = p.oauth;
  return { ...p, oauth };
}

/** Reads and validates the config file at `path` (YAML, or JSON for `.json`), then applies ATH_GATEWAY_* overrides. */
export async function loadConfig(
  path: string,
  env: Readonly<Record<string, string | undefined>> = process.env,
): Promise<GatewayConfig> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    throw new ConfigError([`${path}: cannot read (${(err as NodeJS.ErrnoException).code ?? 'error'})`]);
  }
  return parseConfig(parseConfigText(text, path), env, path);
}

export type CheckResult =
  | { ok: true; config: GatewayConfig; warnings: string[]; summary: string }
  | { ok: false; errors: string[] };

/** `ath-gateway check-config`: validates without starting anything; the summary is safe to print. */
export async function checkConfig(
  path: string,
  env: Readonly<Record<string, string | undefined>> = process.env,
): Promise<CheckResult> {
  try {
    const config = await loadConfig(path, env);
    const lines = [
      `config OK: ${path}`,
      `public URL: ${config.publicUrl}${config.dev ? ' (dev mode)' : ''}`,
      `listen: ${config.listen.host}:${config.listen.port}`,
      `storage: ${config.storage.toString()}`,
      ...config.providers.map(
        (p) => `provider ${p.provider_id}: ${p.available_scopes.length} scope(s), ${p.scope_map.length} scope-map rule(s), api ${p.api_base}`,
      ),
      ...config.warnings.map((w) => `warning: ${w}`),
    ];
    return { ok: true, config, warnings: config.warnings, summary: lines.join('\n') };
  } catch (err) {
    if (err instanceof ConfigError) return { ok: false, errors: [...err.issues] };
    throw err;
  }
}

/** The config as JSON-safe data with every secret redacted (for `check-config --print`, logs, admin views). */
export function serializeConfig(config: GatewayConfig): string {
  return JSON.stringify(config, null, 2);
}

/** One provider as the engine's catalog sees it (never the client secret, C-008 / C-214). */
export function toCoreProvider(p: GatewayProviderConfig): ProviderConfig {
  return {
    provider_id: p.provider_id,
    display_name: p.display_name,
    ...(p.categories ? { categories: p.categories } : {}),
    available_scopes: p.available_scopes,
    ...(p.agent_approval_required !== undefined ? { agent_approval_required: p.agent_approval_required } : {}),
    upstream_client_id: p.oauth.client_id,
    api_base: p.api_base, // agents' RFC 8707 resource must be under it (threats D9, decided in core)
  };
}

/** The engine's provider catalog entries for every configured provider. */
export function toCoreProviders(config: GatewayConfig): ProviderConfig[] {
  return config.providers.map(toCoreProvider);
}

/** The approval policy the config describes (core's default policy). */
export function toApprovalPolicy(config: GatewayConfig): ApprovalPolicy {
  return defaultApprovalPolicy({
    ...(config.approval.autoApprove !== undefined ? { autoApprove: config.approval.autoApprove } : {}),
    deny: config.approval.deny,
    ...(config.approval.denyReason !== undefined ? { denyReason: config.approval.denyReason } : {}),
  });
}

