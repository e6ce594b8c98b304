/* eslint-disable @typescript-eslint/no-explicit-any -- JSON response bodies */
/**
 * threats D9 / C-086 over HTTP: the RFC 8707 `resource` an agent names at POST /ath/authorize must
 * be an absolute URI without fragment, in normalized form, and the provider's `api_base` or a path
 * below it (decided in @athkit/core from the api_base the gateway passes into core's provider
 * config). A valid one reaches the real upstream AS (oidc-provider) in the authorization and token
 * requests and is recorded in the ATH token binding. All traffic is on 127.0.0.1.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfig, toCoreProviders } from '../src/config.js';
import { Browser, Stack } from './support/stack.js';

/** The 400 ATHError of a refused resource: code INVALID_REQUEST naming the field (core's `field`, or the schema's pointer). */
function expectResourceRefused(res: { status: number; body: any }, label: string, reason?: string): void {
  expect(res.status, `${label}: ${JSON.stringify(res.body)}`).toBe(400);
  expect(res.body.code, label).toBe('INVALID_REQUEST');
  expect(typeof res.body.message, label).toBe('string');
  if (reason) expect(res.body.details, label).toEqual({ field: 'resource', reason });
  else expect(res.body.details, label).toMatchObject({ violations: [{ pointer: '/resource' }] });
}

describe('threats D9: resource indicator (gateway over HTTP)', () => {
  let s: Stack;
  /** The configured provider's api_base: `<recording upstream>/api/`. */
  let apiBase = '';
  let origin = '';

  beforeAll(async () => {
    s = await Stack.start();
    await s.register();
    origin = s.upstream.origin;
    apiBase = `${origin}/api/`;
    expect(s.config.providers[0]!.api_base).toBe(apiBase);
  });
  afterAll(() => s?.close());

  const started = () => s.audit.filter((e) => e.event === 'authorization_started').length;

  it('refuses a relative, fragment-carrying or not-under-api_base resource: 400 INVALID_REQUEST naming resource, no session, nothing upstream', async () => {
    const port = new URL(origin).port;
    const cases: [resource: string, reason: string | undefined][] = [
      ['/api/', undefined], // relative: the schema's format "uri"
      ['not a uri', undefined],
      [`${apiBase}#frag`, 'fragment'],
      [`${apiBase}v1/messages#`, 'fragment'],
      [s.as.resource, 'outside_api_base'], // a resource the AS knows, but another host:port than api_base
      [`${origin}/apix`, 'outside_api_base'], // same prefix, not on a segment boundary
      [`${origin}/ap`, 'outside_api_base'],
      [`${origin}/`, 'outside_api_base'], // the parent of api_base
      [`https://127.0.0.1:${port}/api/`, 'outside_api_base'], // other scheme
      [`http://localhost:${port}/api/`, 'outside_api_base'], // other host
      [`${apiBase}../admin`, 'not_normalized'], // dot-segments
      [`${apiBase}%2e%2e/admin`, 'not_normalized'],
      [`HTTP://127.0.0.1:${port}/api/`, 'not_normalized'],
      [`http://user@127.0.0.1:${port}/api/`, 'not_normalized'],
      [`${apiBase}..%2Fadmin`, 'ambiguous_path'], // an escaped separator a server may decode
      [`${apiBase}..;/admin`, 'ambiguous_path'],
    ];
    const before = { started: started(), upstream: s.as.authorizationRequests.length };
    for (const [resource, reason] of cases) {
      expectResourceRefused(await s.authorize(s.agent, ['mail:read'], { resource }), resource, reason);
    }
    expect(started()).toBe(before.started);
    expect(s.as.authorizationRequests.length).toBe(before.upstream);
  });

  it('admits api_base itself and paths below it (200, carried in the consent launch URL)', async () => {
    for (const resource of [apiBase, `${origin}/api`, `${apiBase}v1/messages`]) {
      const res = await s.authorize(s.agent, ['mail:read'], { resource });
      expect(res.status, JSON.stringify(res.body)).toBe(200);
      expect(new URL(res.body.authorization_url).searchParams.get('resource')).toBe(resource);
    }
  });

  it('a valid resource reaches the AS authorize and token requests and is recorded in the ATH token binding; api_base changes apply live', async () => {
    // The test AS accepts exactly one indicator, `<AS>/api/`; point the provider's api_base at it
    // through the admin API (the live catalog must hand the new api_base to core).
    const original = (await s.admin('GET', '/providers/mail')).body;
    const put = await s.admin('PUT', '/providers/mail', { ...original, api_base: s.as.resource });
    expect(put.status, JSON.stringify(put.body)).toBe(200);
    try {
      // The old api_base is no longer admitted.
      expectResourceRefused(await s.authorize(s.agent, ['mail:read'], { resource: apiBase }), 'old api_base', 'outside_api_base');

      const beforeAuth = s.as.authorizationRequests.length;
      const beforeTok = s.as.tokenRequests.length;
      const auth = await s.authorize(s.agent, ['mail:read'], { resource: s.as.resource });
      expect(auth.status, JSON.stringify(auth.body)).toBe(200);
      const page = await new Browser().consent(auth.body.authorization_url, 'approve', s.url);
      expect(page.status, page.text).toBe(200);
      expect(s.as.authorizationRequests.length).toBe(beforeAuth + 1);
      expect(s.as.authorizationRequests[beforeAuth]!.getAll('resource')).toEqual([s.as.resource]);
      const exchange = s.as.tokenRequests.slice(beforeTok).find((r) => r.grantType === 'authorization_code');
      expect(exchange?.status).toBe(200);
      expect(exchange!.params['resource']).toBe(s.as.resource);

      const tok = await s.token(s.agent, auth.body.ath_session_id);
      expect(tok.status, JSON.stringify(tok.body)).toBe(200);
      const tokens = await s.admin('GET', `/tokens?client_id=${encodeURIComponent(s.agent.clientId)}&live=1`);
      expect(tokens.status).toBe(200);
      const bound = (tokens.body.tokens as any[]).filter((t) => t.resource === s.as.resource);
      expect(bound).toHaveLength(1);
      expect(bound[0]).toMatchObject({ provider_id: 'mail', scopes: ['mail:read'], live: true });
    } finally {
      expect((await s.admin('PUT', '/providers/mail', original)).status).toBe(200);
    }
  });
});

describe('threats D9: provider config (api_base handed to core; oauth.resource default)', () => {
  const env = { MAIL_SECRET: 'x'.repeat(32) };
  const config = (resource?: string) =>
    parseConfig(
      {
        dev: true,
        publicUrl: 'https://gw.example.com',
        storage: 'memory:',
        providers: [
          {
            provider_id: 'mail',
            display_name: 'Mail',
            available_scopes: ['mail:read'],
            oauth: { issuer: 'https://as.example.com', client_id: 'gw', client_secret_env: 'MAIL_SECRET', ...(resource ? { resource } : {}) },
            api_base: 'https://api.example.com/v1/',
            scope_map: [{ methods: ['GET'], path: '/messages', scope: 'mail:read' }],
          },
        ],
      },
      env,
    );
  const resourceWarnings = (resource?: string) => config(resource).warnings.filter((w) => w.includes('oauth.resource'));

  it("core's provider config carries each provider's api_base", () => {
    expect(toCoreProviders(config())[0]).toMatchObject({ provider_id: 'mail', api_base: 'https://api.example.com/v1/' });
  });

  it('an oauth.resource default under api_base loads without a warning', () => {
    for (const r of [undefined, 'https://api.example.com/v1/', 'https://api.example.com/v1', 'https://api.example.com/v1/mail']) {
      expect(resourceWarnings(r), String(r)).toEqual([]);
    }
  });

  it('an oauth.resource default outside api_base still loads (AS-defined identifier) but warns, naming the provider and key', () => {
    for (const r of ['https://api.example.com/', 'https://api.example.com/v10', 'https://other.example.com/v1/']) {
      const c = config(r);
      expect(c.providers[0]!.oauth.resource).toBe(r);
      expect(resourceWarnings(r), r).toEqual([
        'provider mail: oauth.resource is not api_base or a path below it; it is sent upstream when an agent names no resource, but an agent naming it gets 400 (threats D9)',
      ]);
    }
  });
});
