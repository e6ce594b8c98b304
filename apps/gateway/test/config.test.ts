import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { inspect } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  checkConfig,
  ConfigError,
  loadConfig,
  parseConfig,
  parseConfigText,
  serializeConfig,
  toApprovalPolicy,
  toCoreProviders,
  type GatewayConfig,
} from '../src/config.js';

const examples = fileURLToPath(new URL('../examples/', import.meta.url));
const COOKIE_KEY = Buffer.alloc(32, 1).toString('base64url');
const VAULT_KEY = Buffer.alloc(32, 2).toString('base64url');
const MAIL_SECRET = 'mail-secret-s3cr3t-value-0001';
const CAL_SECRET = 'calendar-secret-s3cr3t-value-0002';
const ADMIN_KEY = 'admin-key-for-tests-0123456789-abcdefgh';
const PROD_ENV = {
  ATH_GATEWAY_COOKIE_KEY: COOKIE_KEY,
  ATH_GATEWAY_VAULT_KEY: VAULT_KEY,
  ATH_GATEWAY_ADMIN_KEY: ADMIN_KEY,
  MAIL_CLIENT_SECRET: MAIL_SECRET,
  CALENDAR_CLIENT_SECRET: CAL_SECRET,
};
const ALL_SECRETS = [COOKIE_KEY, VAULT_KEY, ADMIN_KEY, MAIL_SECRET, CAL_SECRET];

function provider(overrides: Record<string, unknown> = {}, oauth: Record<string, unknown> = {}) {
  return {
    provider_id: 'mail',
    display_name: 'Mail',
    available_scopes: ['mail:read', 'mail:send'],
    oauth: { issuer: 'https://as.example.com', client_id: 'gw', client_secret_env: 'MAIL_CLIENT_SECRET', ...oauth },
    api_base: 'https://api.example.com/v1/',
    scope_map: [{ methods: ['GET'], path: '/messages/{id}', scope: 'mail:read' }],
    ...overrides,
  };
}
function base(overrides: Record<string, unknown> = {}) {
  return { publicUrl: 'https://gw.example.com', providers: [provider()], ...overrides };
}
function issues(raw: unknown, env: Record<string, string> = PROD_ENV): string[] {
  try {
    parseConfig(raw, env);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    const e = err as ConfigError;
    for (const s of ALL_SECRETS) expect(e.message).not.toContain(s);
    return [...e.issues];
  }
  throw new Error('expected a ConfigError');
}
function expectNoSecrets(text: string): void {
  for (const s of ALL_SECRETS) expect(text).not.toContain(s);
}

describe('valid configurations', () => {
  it('loads the YAML example with secrets from the environment', async () => {
    const config = await loadConfig(join(examples, 'gateway.yaml'), PROD_ENV);
    expect(config.dev).toBe(false);
    expect(config.publicUrl).toBe('https://gateway.example.com');
    expect(config.listen).toEqual({ host: '0.0.0.0', port: 8080 });
    expect(config.storage.reveal()).toBe('sqlite:./data/gateway.db');
    expect(config.secrets.vaultKey.reveal()).toBe(VAULT_KEY);
    expect(config.secrets.cookieKey.reveal()).toBe(COOKIE_KEY);
    expect(config.tokenTtlSeconds).toBe(3600);
    expect(config.sessionTtlSeconds).toBe(600);
    expect(config.providers.map((p) => p.provider_id)).toEqual(['mail', 'calendar']);
    const [mail, cal] = config.providers;
    expect(mail!.oauth.client_secret.reveal()).toBe(MAIL_SECRET);
    expect(mail!.oauth.resource).toBe('https://api.mail.example.com/');
    expect(mail!.scope_map).toHaveLength(3);
    expect(cal!.oauth.client_secret.reveal()).toBe(CAL_SECRET);
    expect(cal!.oauth.token_endpoint_auth_method).toBe('client_secret_post');
    expect(cal!.timeout_ms).toBe(30_000);
    expect(config.warnings).toEqual([]);
  });

  it('loads the JSON dev example: ephemeral secrets are generated and announced', async () => {
    const config = await loadConfig(join(examples, 'gateway.dev.json'), { DEMO_CLIENT_SECRET: 'x' });
    expect(config.dev).toBe(true);
    expect(config.storage.reveal()).toBe('memory:');
    expect(Buffer.from(config.secrets.vaultKey.reveal(), 'base64url')).toHaveLength(32);
    expect(config.secrets.cookieKey.reveal()).not.toBe(config.secrets.vaultKey.reveal());
    expect(config.warnings.join('\n')).toMatch(/ephemeral vault encryption key/);
    expect(config.warnings.join('\n')).toMatch(/ephemeral cookie\/session key/);
    expect(config.allowInsecureAgentHosts).toEqual(['127.0.0.1:9001']);
  });

  it('applies ATH_GATEWAY_* overrides over the file', async () => {
    const config = await loadConfig(join(examples, 'gateway.yaml'), {
      ...PROD_ENV,
      ATH_GATEWAY_PUBLIC_URL: 'https://other.example.com/',
      ATH_GATEWAY_PORT: '9443',
      ATH_GATEWAY_HOST: '127.0.0.1',
      ATH_GATEWAY_STORAGE: 'postgres://ath:pw-s3cr3t@db.internal:5432/ath',
      ATH_GATEWAY_TOKEN_TTL_SECONDS: '900',
      ATH_GATEWAY_SESSION_TTL_SECONDS: '120',
      ATH_GATEWAY_RATE_LIMIT_PER_AGENT: '5',
      ATH_GATEWAY_ALLOW_INSECURE_AGENT_HOSTS: '127.0.0.1:4000, [::1]:4001',
      ATH_GATEWAY_LOG_LEVEL: 'debug',
    });
    expect(config.publicUrl).toBe('https://other.example.com');
    expect(config.listen).toEqual({ host: '127.0.0.1', port: 9443 });
    expect(config.storage.reveal()).toBe('postgres://ath:pw-s3cr3t@db.internal:5432/ath');
    expect(config.tokenTtlSeconds).toBe(900);
    expect(config.sessionTtlSeconds).toBe(120);
    expect(config.rateLimits.perAgent).toEqual({ limit: 5, windowSeconds: 60, batch: 1 });
    expect(config.allowInsecureAgentHosts).toEqual(['127.0.0.1:4000', '[::1]:4001']);
    expect(config.logLevel).toBe('debug');
    // the database password is masked wherever the config is shown
    expect(serializeConfig(config)).not.toContain('pw-s3cr3t');
    expect(String(config.storage)).toBe('postgres://ath:***@db.internal:5432/ath');
  });

  it('defaults: sqlite storage, listen 0.0.0.0:8080, TTL maxima, empty policy', () => {
    const c = parseConfig(base(), PROD_ENV);
    expect(c.storage.reveal()).toBe('sqlite:./data/gateway.db');
    expect(c.listen).toEqual({ host: '0.0.0.0', port: 8080 });
    expect(c.tokenTtlSeconds).toBe(3600);
    expect(c.sessionTtlSeconds).toBe(600);
    expect(c.approval).toEqual({ deny: [] });
    expect(c.providers[0]!.oauth.token_endpoint_auth_method).toBe('client_secret_basic');
    // The per-agent limit takes a twentieth of its units per store write by default (at most 100).
    expect(c.rateLimits).toEqual({ perAgent: { limit: 600, windowSeconds: 60, batch: 30 }, perIp: { limit: 1200, windowSeconds: 60 } });
    expect(parseConfig(base({ rateLimits: { perAgent: { limit: 100_000 } } }), PROD_ENV).rateLimits.perAgent).toMatchObject({ batch: 100 });
    expect(parseConfig(base({ rateLimits: { perAgent: { limit: 600, batch: 1 } } }), PROD_ENV).rateLimits.perAgent).toMatchObject({ batch: 1 });
  });

  it('explicit endpoints instead of discovery; http allowed for loopback hosts', () => {
    const c = parseConfig(
      base({
        providers: [
          provider(
            { api_base: 'http://127.0.0.1:9002/' },
            { issuer: undefined, authorization_endpoint: 'http://127.0.0.1:9000/auth', token_endpoint: 'http://localhost:9000/token' },
          ),
        ],
      }),
      PROD_ENV,
    );
    expect(c.providers[0]!.oauth.issuer).toBeUndefined();
  });

  it('maps to core provider configs and approval policy without the secret', () => {
    const c = parseConfig(base({ approval: { autoApprove: ['mail:read'], deny: ['mail:send'] } }), PROD_ENV);
    const core = toCoreProviders(c);
    expect(core).toEqual([
      { provider_id: 'mail', display_name: 'Mail', available_scopes: ['mail:read', 'mail:send'], upstream_client_id: 'gw', api_base: 'https://api.example.com/v1/' },
    ]);
    expectNoSecrets(JSON.stringify(core));
    expect(typeof toApprovalPolicy(c)).toBe('function');
  });
});

describe('each kind of bad key is named', () => {
  it.each<[string, Record<string, unknown>, string]>([
    ['unknown top-level key', base({ tokenTTL: 5 }), 'tokenTTL: unknown key'],
    ['missing publicUrl', { providers: [] }, 'publicUrl: is required'],
    ['publicUrl not a URL', base({ publicUrl: 'gateway' }), 'publicUrl: must be an absolute URL'],
    ['publicUrl plain http', base({ publicUrl: 'http://gw.example.com' }), 'publicUrl: must use https'],
    ['publicUrl with query', base({ publicUrl: 'https://gw.example.com/?a=1' }), 'publicUrl: must not contain a query'],
    ['port out of range', base({ listen: { port: 70000 } }), 'listen.port:'],
    ['port not a number', base({ listen: { port: 'http' } }), 'listen.port:'],
    ['unknown listen key', base({ listen: { hots: 'x' } }), 'listen.hots: unknown key'],
    ['storage scheme', base({ storage: 'mysql://db/x' }), 'storage: must be sqlite:<path>'],
    ['memory storage outside dev', base({ storage: 'memory:' }), 'storage: memory: storage is only allowed in dev mode'],
    ['token TTL above 3600', base({ tokenTtlSeconds: 7200 }), 'tokenTtlSeconds:'],
    ['session TTL above 600', base({ sessionTtlSeconds: 601 }), 'sessionTtlSeconds:'],
    ['session TTL zero', base({ sessionTtlSeconds: 0 }), 'sessionTtlSeconds:'],
    ['rate limit zero', base({ rateLimits: { perIp: { limit: 0 } } }), 'rateLimits.perIp.limit:'],
    ['per-agent batch above the limit', base({ rateLimits: { perAgent: { limit: 10, batch: 11 } } }), 'rateLimits.perAgent.batch: must not exceed limit'],
    ['per-agent batch zero', base({ rateLimits: { perAgent: { limit: 10, batch: 0 } } }), 'rateLimits.perAgent.batch:'],
    ['batch on the per-IP limit', base({ rateLimits: { perIp: { limit: 10, batch: 2 } } }), 'rateLimits.perIp.batch: unknown key'],
    ['approval scope with space', base({ approval: { deny: ['a b'] } }), 'approval.deny[0]: must be an RFC 6749 scope token'],
    ['insecure host without port', base({ allowInsecureAgentHosts: ['127.0.0.1'] }), 'allowInsecureAgentHosts[0]: must be host:port'],
    ['log level', base({ logLevel: 'loud' }), 'logLevel:'],
    ['provider_id pattern', base({ providers: [provider({ provider_id: 'Mail' })] }), 'providers[0].provider_id: must match'],
    ['provider_id too long', base({ providers: [provider({ provider_id: 'a'.repeat(65) })] }), 'providers[0].provider_id: must match'],
    ['duplicate provider_id', base({ providers: [provider(), provider()] }), 'providers[1].provider_id: duplicate provider_id'],
    ['display_name missing', base({ providers: [provider({ display_name: undefined })] }), 'providers[0].display_name: is required'],
    ['no scopes', base({ providers: [provider({ available_scopes: [] })] }), 'providers[0].available_scopes: must list at least one scope'],
    ['neither issuer nor endpoints', base({ providers: [provider({}, { issuer: undefined, token_endpoint: 'https://as/t' })] }), 'providers[0].oauth.issuer: set issuer'],
    ['client_id missing', base({ providers: [provider({}, { client_id: undefined })] }), 'providers[0].oauth.client_id: is required'],
    ['client_secret_env not a name', base({ providers: [provider({}, { client_secret_env: 'my secret' })] }), 'providers[0].oauth.client_secret_env: must be an environment variable name'],
    ['auth method', base({ providers: [provider({}, { token_endpoint_auth_method: 'private_key_jwt' })] }), 'providers[0].oauth.token_endpoint_auth_method:'],
    ['issuer http non-loopback', base({ providers: [provider({}, { issuer: 'http://as.example.com' })] }), 'providers[0].oauth.issuer: must use https'],
    ['issuer with credentials', base({ providers: [provider({}, { issuer: 'https://u:p@as.example.com' })] }), 'providers[0].oauth.issuer: must not contain credentials'],
    ['resource with fragment', base({ providers: [provider({}, { resource: 'https://api.example.com/#x' })] }), 'providers[0].oauth.resource: must not contain a fragment'],
    ['api_base ftp', base({ providers: [provider({ api_base: 'ftp://api.example.com/' })] }), 'providers[0].api_base: must be an https URL'],
    ['api_base with query', base({ providers: [provider({ api_base: 'https://api.example.com/?k=1' })] }), 'providers[0].api_base: must not contain a query'],
    ['scope_map lower-case method', base({ providers: [provider({ scope_map: [{ methods: ['get'], path: '/x', scope: 'mail:read' }] })] }), 'providers[0].scope_map[0].methods: unsupported method(s) get'],
    ['scope_map traversal', base({ providers: [provider({ scope_map: [{ methods: ['GET'], path: '/a/../b', scope: 'mail:read' }] })] }), 'providers[0].scope_map[0].path: invalid path template'],
    ['scope_map unknown scope', base({ providers: [provider({ scope_map: [{ methods: ['GET'], path: '/x', scope: 'mail:admin' }] })] }), 'providers[0].scope_map[0].scope: scope mail:admin is not in available_scopes'],
    ['scope_map extra key', base({ providers: [provider({ scope_map: [{ methods: ['GET'], path: '/x', scope: 'mail:read', to: 'x' }] })] }), 'providers[0].scope_map[0].to: unknown key'],
    ['timeout too small', base({ providers: [provider({ timeout_ms: 5 })] }), 'providers[0].timeout_ms:'],
  ])('%s', (_name, raw, expected) => {
    const found = issues(raw);
    expect(found.some((i) => i.startsWith(expected)), `${found.join('\n')}\nshould contain: ${expected}`).toBe(true);
  });

  it('an inline client secret is refused and not echoed', () => {
    const found = issues(base({ providers: [provider({}, { client_secret: MAIL_SECRET })] }));
    expect(found).toContain(
      'providers[0].oauth.client_secret: inline client secrets are not allowed; name an environment variable in client_secret_env',
    );
  });

  it('a client_secret_env that is not set is named', () => {
    expect(issues(base(), { ...PROD_ENV, MAIL_CLIENT_SECRET: '' })).toEqual([
      'providers[0].oauth.client_secret_env: environment variable MAIL_CLIENT_SECRET is not set',
    ]);
  });

  it('refuses to start without secrets outside dev mode', () => {
    expect(issues(base(), { MAIL_CLIENT_SECRET: MAIL_SECRET })).toEqual([
      'secrets.cookieKey: is required outside dev mode',
      'secrets.vaultKey: is required outside dev mode',
    ]);
  });

  it('a malformed key is named, with the variable it came from, and never quoted', () => {
    const bad = 'short-but-secret-key-material';
    const found = issues(base(), { ...PROD_ENV, ATH_GATEWAY_VAULT_KEY: bad });
    expect(found).toEqual(['secrets.vaultKey (from ATH_GATEWAY_VAULT_KEY): must be 32 random bytes encoded as base64url (43 characters)']);
    expect(found.join()).not.toContain(bad);
    // 43 characters that decode to 32 bytes but are given in the file
    const fileFound = issues(base({ secrets: { vaultKey: VAULT_KEY + 'x', cookieKey: COOKIE_KEY } }), { MAIL_CLIENT_SECRET: 'x' });
    expect(fileFound).toEqual(['secrets.vaultKey: must be 32 random bytes encoded as base64url (43 characters)']);
  });

  it('environment overrides are named by variable', () => {
    expect(issues(base(), { ...PROD_ENV, ATH_GATEWAY_PORT: 'eighty' })[0]).toMatch(/^listen\.port \(from ATH_GATEWAY_PORT\): /);
    expect(issues(base(), { ...PROD_ENV, ATH_GATEWAY_TOKEN_TTL_SECONDS: '7200' })[0]).toMatch(
      /^tokenTtlSeconds \(from ATH_GATEWAY_TOKEN_TTL_SECONDS\): /,
    );
  });

  it('a bad PostgreSQL URL does not reveal its password', () => {
    const found = issues(base({ storage: 'postgres://ath:pw-s3cr3t@[bad/ath' }));
    expect(found).toEqual(['storage: is not a valid PostgreSQL URL']);
  });

  it('the root must be a mapping', () => {
    expect(issues([1, 2])).toEqual(['(root): must be a mapping of keys']);
  });
});

describe('files', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'ath-gw-config-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('YAML syntax errors give the position, not the (possibly secret) source line', async () => {
    const path = join(dir, 'broken.yaml');
    await writeFile(path, `publicUrl: https://gw.example.com\nsecrets:\n  vaultKey: "${VAULT_KEY}\n  cookieKey: [\n`);
    const err = await loadConfig(path, PROD_ENV).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConfigError);
    const text = (err as ConfigError).message;
    expect(text).toMatch(/broken\.yaml:\d+:\d+: YAML /);
    expectNoSecrets(text);
  });

  it('JSON syntax errors', async () => {
    const path = join(dir, 'broken.json');
    await writeFile(path, `{"publicUrl": "https://gw.example.com", "secrets": {"vaultKey": "${VAULT_KEY}" `);
    const err = (await loadConfig(path, PROD_ENV).catch((e: unknown) => e)) as ConfigError;
    expect(err.issues[0]).toMatch(/broken\.json: not valid JSON/);
    expectNoSecrets(err.message);
  });

  it('a missing file', async () => {
    const err = (await loadConfig(join(dir, 'nope.yaml'), PROD_ENV).catch((e: unknown) => e)) as ConfigError;
    expect(err.issues).toEqual([`${join(dir, 'nope.yaml')}: cannot read (ENOENT)`]);
  });

  it('duplicate YAML keys are an error', () => {
    expect(() => parseConfigText('publicUrl: a\npublicUrl: b\n')).toThrow(ConfigError);
  });

  it('an empty file is an empty mapping (then publicUrl is required)', () => {
    expect(issues(parseConfigText(''))).toContain('publicUrl: is required');
  });
});

describe('secrets never leak', () => {
  let config: GatewayConfig;
  beforeAll(async () => {
    const env = { ...PROD_ENV, ATH_GATEWAY_STORAGE: 'postgres://ath:pw-s3cr3t@db.internal/ath' };
    config = await loadConfig(join(examples, 'gateway.yaml'), env);
    ALL_SECRETS.push('pw-s3cr3t');
  });
  afterAll(() => {
    ALL_SECRETS.pop();
  });

  it('not in serialized config', () => {
    const text = serializeConfig(config);
    expectNoSecrets(text);
    expect(text).toContain('[redacted]');
    expect(text).toContain('"client_secret_env": "MAIL_CLIENT_SECRET"');
  });

  it('not in JSON.stringify, String() or util.inspect (what loggers use)', () => {
    expectNoSecrets(JSON.stringify(config));
    expectNoSecrets(inspect(config, { depth: 10 }));
    expectNoSecrets(`${String(config.secrets.vaultKey)} ${String(config.providers[0]!.oauth.client_secret)}`);
    expectNoSecrets(JSON.stringify(structuredCloneSafe(config)));
  });

  it('not in the check-config summary', async () => {
    const result = await checkConfig(join(examples, 'gateway.yaml'), {
      ...PROD_ENV,
      ATH_GATEWAY_STORAGE: 'postgres://ath:pw-s3cr3t@db.internal/ath',
    });
    expect(result.ok).toBe(true);
    if (!result.ok) return;
    expect(result.summary).toContain('config OK');
    expect(result.summary).toContain('provider mail: 3 scope(s), 3 scope-map rule(s)');
    expectNoSecrets(result.summary);
  });

  it('check-config reports errors as a list', async () => {
    const result = await checkConfig(join(examples, 'gateway.yaml'), { MAIL_CLIENT_SECRET: 'x', CALENDAR_CLIENT_SECRET: 'y' });
    expect(result).toEqual({
      ok: false,
      errors: ['secrets.cookieKey: is required outside dev mode', 'secrets.vaultKey: is required outside dev mode'],
    });
  });
});

/** A spread copy (what a careless `{...config}` log line would print). */
function structuredCloneSafe(config: GatewayConfig): unknown {
  return { ...config, providers: config.providers.map((p) => ({ ...p, oauth: { ...p.oauth } })) };
}
