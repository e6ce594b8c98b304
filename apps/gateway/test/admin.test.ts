/**
 * The admin API (bearer admin key) and the `ath-gateway` CLI: providers CRUD live and persisted,
 * agents approve/deny/suspend/delete (suspend and delete kill live tokens, C-189, G5), tokens list and
 * revoke, audit query; check-config and --help.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HELP, main } from '../src/cli.js';
import { ADMIN_KEY, Stack } from './support/stack.js';

function io(env: Record<string, string> = {}) {
  const out: string[] = [];
  const err: string[] = [];
  return { out, err, io: { out: (t: string) => void out.push(t), err: (t: string) => void err.push(t), env } };
}

describe('admin API', () => {
  let s: Stack;
  let dir: string;
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'ath-admin-'));
    s = await Stack.start({ config: { providersFile: join(dir, 'providers.json') } });
  });
  afterAll(async () => {
    await s.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('refuses missing or wrong admin keys (401) and never reflects CORS', async () => {
    for (const auth of [undefined, 'Bearer wrong', `Basic ${ADMIN_KEY}`, `Bearer ${ADMIN_KEY}x`]) {
      const res = await fetch(`${s.url}/admin/agents`, { headers: auth ? { authorization: auth, origin: 'https://evil.test' } : {} });
      expect(res.status).toBe(401);
      expect(res.headers.get('access-control-allow-origin')).toBeNull();
    }
  });

  it('providers: add live (discovery shows it), replace, persist, delete', async () => {
    const def = {
      provider_id: 'calendar',
      display_name: 'Calendar',
      available_scopes: ['cal:read'],
      oauth: { issuer: s.as.issuer, client_id: s.as.clientId, client_secret_env: 'MAIL_SECRET' },
      api_base: `${s.upstream.origin}/cal/`,
      scope_map: [{ methods: ['GET'], path: '/events', scope: 'cal:read' }],
    };
    const created = await s.admin('POST', '/providers', def);
    expect(created.status).toBe(201);
    expect(JSON.stringify(created.body)).not.toContain(s.as.clientSecret);
    const disc = (await (await fetch(`${s.url}/.well-known/ath.json`)).json()) as { supported_providers: { provider_id: string }[] };
    expect(disc.supported_providers.map((p) => p.provider_id)).toEqual(['mail', 'calendar']);
    expect((await s.admin('POST', '/providers', def)).status).toBe(409);

    const bad = await s.admin('PUT', '/providers/calendar', { ...def, oauth: { ...def.oauth, client_secret: 'SUPERSECRETVALUE' } });
    expect(bad.status).toBe(400);
    expect(JSON.stringify(bad.body)).not.toContain('SUPERSECRETVALUE');

    const replaced = await s.admin('PUT', '/providers/calendar', { ...def, display_name: 'Team Calendar' });
    expect(replaced.status).toBe(200);
    const file = JSON.parse(readFileSync(join(dir, 'providers.json'), 'utf8')) as { upserts: Record<string, { display_name: string }> };
    expect(file.upserts['calendar']!.display_name).toBe('Team Calendar');
    expect(readFileSync(join(dir, 'providers.json'), 'utf8')).not.toContain(s.as.clientSecret);

    // A fresh instance on the same providers file sees it (survives a restart).
    const again = await Stack.start({ shareWith: s, config: { providersFile: join(dir, 'providers.json') } });
    try {
      expect((await again.admin('GET', '/providers/calendar')).body.display_name).toBe('Team Calendar');
    } finally {
      await again.close();
    }
    expect((await s.admin('DELETE', '/providers/calendar')).status).toBe(204);
    expect((await s.admin('GET', '/providers/calendar')).status).toBe(404);
    expect(((await s.admin('GET', '/providers')).body as { providers: { provider_id: string }[] }).providers.map((p) => p.provider_id)).toEqual(['mail']);
  });

  it('agents: list, suspend kills live tokens at once, approve again, delete', async () => {
    const { token } = await s.fullFlow(['mail:read']);
    const list = await s.admin('GET', '/agents?state=approved');
    expect((list.body as { agents: { client_id: string }[] }).agents.map((a) => a.client_id)).toContain(s.agent.clientId);
    expect(JSON.stringify(list.body)).not.toMatch(/secret/i);

    expect((await s.proxy('/v1/messages', token)).status).toBe(200);
    const suspended = await s.admin('POST', `/agents/${s.agent.clientId}/suspend`);
    expect(suspended.body.state).toBe('suspended');
    const after = await s.proxy('/v1/messages', token);
    expect(after.status).toBe(401);
    expect(((await after.json()) as { code: string }).code).toBe('TOKEN_REVOKED');
    expect((await s.authorize(s.agent, ['mail:read'])).body.code).toBe('AGENT_UNAPPROVED');

    expect((await s.admin('POST', `/agents/${s.agent.clientId}/approve`)).body.state).toBe('approved');
    const fresh = await s.fullFlow(['mail:read']);
    const tokens = await s.admin('GET', `/tokens?client_id=${encodeURIComponent(s.agent.clientId)}&live=1`);
    expect(tokens.body.tokens).toHaveLength(1);
    expect(JSON.stringify(tokens.body)).not.toContain(fresh.token);

    // Revoke by hash through the admin API.
    expect((await s.admin('POST', '/tokens/revoke', { token_hash: tokens.body.tokens[0].token_hash })).status).toBe(200);
    expect((await s.proxy('/v1/messages', fresh.token)).status).toBe(401);

    // Admin revocation through POST /ath/revoke with the admin key (C-187).
    const third = await s.fullFlow(['mail:read']);
    expect((await s.post('/ath/revoke', { token: third.token }, { authorization: 'Bearer wrong' })).status).toBe(403);
    expect((await s.proxy('/v1/messages', third.token)).status).toBe(200);
    expect((await s.post('/ath/revoke', { token: third.token }, { authorization: `Bearer ${ADMIN_KEY}` })).status).toBe(200);
    expect((await s.proxy('/v1/messages', third.token)).status).toBe(401);

    const fourth = await s.fullFlow(['mail:read']);
    expect((await s.admin('DELETE', `/agents/${s.agent.clientId}`)).status).toBe(204);
    expect((await s.proxy('/v1/messages', fourth.token)).status).toBe(401);
    expect((await s.admin('GET', `/agents/${s.agent.clientId}`)).status).toBe(404);
    s.agent.clientId = '';
  });

  it('audit: query by event', async () => {
    const res = await s.admin('GET', '/audit?event=token_revoked&limit=10');
    expect(res.status).toBe(200);
    expect(res.body.events.length).toBeGreaterThan(0);
    expect((res.body as { events: { event: string }[] }).events.every((e) => e.event === 'token_revoked')).toBe(true);
  });

  it('ath-gateway admin wraps the API', async () => {
    const t = io({ ATH_GATEWAY_URL: s.url, ATH_GATEWAY_ADMIN_KEY: ADMIN_KEY });
    expect(await main(['admin', 'providers', 'list'], t.io)).toBe(0);
    expect(JSON.parse(t.out[0]!).providers[0].provider_id).toBe('mail');
    const file = join(dir, 'p.yaml');
    writeFileSync(
      file,
      `provider_id: docs\ndisplay_name: Docs\navailable_scopes: [docs:read]\noauth:\n  issuer: ${s.as.issuer}\n  client_id: x\n  client_secret_env: MAIL_SECRET\napi_base: ${s.upstream.origin}/docs/\n`,
    );
    expect(await main(['admin', 'providers', 'put', file], t.io)).toBe(0);
    expect((await s.admin('GET', '/providers/docs')).status).toBe(200);
    expect(await main(['admin', 'providers', 'delete', 'docs'], t.io)).toBe(0);
    const wrong = io({ ATH_GATEWAY_URL: s.url, ATH_GATEWAY_ADMIN_KEY: 'nope' });
    expect(await main(['admin', 'agents', 'list'], wrong.io)).toBe(1);
    expect(await main(['admin', 'frobnicate'], t.io)).toBe(2);
    expect(await main(['admin', 'agents', 'list'], io({ ATH_GATEWAY_URL: s.url }).io)).toBe(2);
  });
});

describe('ath-gateway CLI', () => {
  it('--help prints usage; unknown commands exit 2', async () => {
    const t = io();
    expect(await main(['--help'], t.io)).toBe(0);
    expect(t.out[0]).toBe(HELP);
    expect(HELP).toMatch(/start \[--config FILE\]/);
    expect(HELP).toMatch(/check-config FILE/);
    expect(await main(['nope'], t.io)).toBe(2);
    expect(await main([], t.io)).toBe(2);
  });

  it('check-config: OK summary without secrets; errors name the key, never the value', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ath-cc-'));
    try {
      const good = join(dir, 'g.json');
      writeFileSync(good, JSON.stringify({ dev: true, publicUrl: 'http://127.0.0.1:8080', storage: 'memory:', secrets: { adminKey: 'k'.repeat(40) } }));
      const t = io();
      expect(await main(['check-config', good, '--print'], t.io)).toBe(0);
      expect(t.out.join('\n')).toContain('config OK');
      expect(t.out.join('\n')).not.toContain('k'.repeat(40));
      const bad = join(dir, 'b.yaml');
      writeFileSync(bad, 'publicUrl: http://gw.example.com\nsecrets:\n  vaultKey: not-a-key-SECRETVALUE\n');
      const b = io();
      expect(await main(['check-config', bad], b.io)).toBe(1);
      expect(b.err.join('\n')).toContain('publicUrl');
      expect(b.err.join('\n')).toContain('secrets.vaultKey');
      expect(b.err.join('\n')).not.toContain('SECRETVALUE');
      expect(await main(['check-config'], io().io)).toBe(2);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
