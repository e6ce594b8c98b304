import { describe, expect, it } from 'vitest';
import { Vault } from '../src/vault.js';
import { MemoryStore } from '../src/memory-store.js';
import { startPurger } from '../src/purger.js';
import { ManualClock } from '../src/clock.js';
import { intersectScopes, parseScopeString, uniqueScopes } from '../src/scopes.js';
import { gatewayDiscovery, serviceDiscovery } from '../src/discovery.js';
import { staticCatalog } from '../src/providers.js';
import { validateDiscoveryDocument, validateServiceDiscoveryDocument } from '@athkit/schemas';

const KEY = new Uint8Array(32).fill(7);

describe('Vault (upstream tokens encrypted at rest, C-221)', () => {
  it('round-trips and never stores plaintext', async () => {
    const vault = await Vault.create(KEY);
    const sealed = await vault.seal('grant-1', { access_token: 'upstream-secret-token', refresh_token: 'r1' });
    expect(sealed).toMatch(/^v1\./);
    expect(sealed).not.toContain('upstream-secret-token');
    expect(await vault.open('grant-1', sealed)).toEqual({ access_token: 'upstream-secret-token', refresh_token: 'r1' });
  });

  it('a ciphertext moved to another grant, tampered, or opened with another key fails', async () => {
    const vault = await Vault.create(KEY);
    const sealed = await vault.seal('grant-1', { access_token: 'x' });
    await expect(vault.open('grant-2', sealed)).rejects.toThrow();
    const flipped = sealed.slice(0, -2) + (sealed.endsWith('A') ? 'BB' : 'AA');
    await expect(vault.open('grant-1', flipped)).rejects.toThrow();
    const other = await Vault.create(new Uint8Array(32).fill(9));
    await expect(other.open('grant-1', sealed)).rejects.toThrow();
  });

  it('the v1 format is AES-256-GCM, iv ‖ ciphertext ‖ 16-byte tag, record id as AAD: Web Crypto opens what it seals and the other way round', async () => {
    const vault = await Vault.create(KEY);
    const key = await crypto.subtle.importKey('raw', KEY, 'AES-GCM', false, ['encrypt', 'decrypt']);
    const aad = new TextEncoder().encode('grant-7');
    const [, iv, ct] = (await vault.seal('grant-7', { access_token: 'á-token' })).split('.');
    const plain = await crypto.subtle.decrypt({ name: 'AES-GCM', iv: Buffer.from(iv!, 'base64url'), additionalData: aad }, key, Buffer.from(ct!, 'base64url'));
    expect(JSON.parse(new TextDecoder().decode(plain))).toEqual({ access_token: 'á-token' });

    const iv2 = crypto.getRandomValues(new Uint8Array(12));
    const ct2 = await crypto.subtle.encrypt({ name: 'AES-GCM', iv: iv2, additionalData: aad }, key, new TextEncoder().encode('{"n":2}'));
    const sealed = `v1.${Buffer.from(iv2).toString('base64url')}.${Buffer.from(ct2).toString('base64url')}`;
    expect(await vault.open('grant-7', sealed)).toEqual({ n: 2 });
    await expect(vault.open('grant-8', sealed)).rejects.toThrow();
    await expect(vault.open('grant-7', `v1.${Buffer.from(iv2).toString('base64url')}.AAAA`)).rejects.toThrow(); // shorter than a tag
  });

  it('accepts a base64url key and refuses a short one', async () => {
    const text = Buffer.from(KEY).toString('base64url');
    const vault = await Vault.create(text);
    expect(await vault.open('g', await (await Vault.create(KEY)).seal('g', 1))).toBe(1);
    await expect(Vault.create(new Uint8Array(16))).rejects.toThrow(/32 bytes/);
  });
});

describe('background purge', () => {
  it('purges expired replay-cache rows on its interval and stops when told', async () => {
    const store = new MemoryStore();
    const clock = new ManualClock(1_000_000);
    await store.markJtiUsed('a', 'j1', 1_000_500);
    await store.markJtiUsed('a', 'j2', 9_000_000);
    clock.advance(1000);
    const purged: number[] = [];
    const stop = startPurger(store, { intervalMs: 5, clock, onPurge: (c) => purged.push(c.jti) });
    await expect.poll(() => purged.length).toBeGreaterThan(0);
    stop();
    expect(purged[0]).toBe(1);
    expect(await store.markJtiUsed('a', 'j1', 2_000_000)).toBe(true); // expired row gone
    expect(await store.markJtiUsed('a', 'j2', 9_000_000)).toBe(false); // live row kept
  });
});

describe('scopes (AMB-10)', () => {
  it('C-134: effective = approved ∩ consented ∩ requested, in request order', () => {
    expect(
      intersectScopes({ approved: ['p:read', 'p:write'], consented: ['p:read'], requested: ['p:read', 'p:write'] }),
    ).toEqual({ agent_approved: ['p:read', 'p:write'], user_consented: ['p:read'], effective: ['p:read'] });
  });

  it('C-135: consent beyond the request grants nothing extra; C-110: absent consent = requested', () => {
    expect(intersectScopes({ approved: ['a', 'b', 'c'], consented: ['a', 'b', 'c'], requested: ['a'] }).effective).toEqual(['a']);
    expect(intersectScopes({ approved: ['a', 'b'], consented: null, requested: ['b', 'a'] })).toEqual({
      agent_approved: ['a', 'b'],
      user_consented: ['b', 'a'],
      effective: ['b', 'a'],
    });
  });

  it('comparison is exact and case-sensitive; duplicates collapse', () => {
    expect(intersectScopes({ approved: ['p:read'], consented: ['P:READ'], requested: ['p:read'] }).effective).toEqual([]);
    expect(uniqueScopes(['a', 'b', 'a'])).toEqual(['a', 'b']);
    expect(parseScopeString('a  b a')).toEqual(['a', 'b']);
    expect(parseScopeString(undefined)).toBeNull();
  });
});

describe('discovery documents', () => {
  const providers = staticCatalog([
    { provider_id: 'mail', display_name: 'Mail', available_scopes: ['mail:read'], upstream_client_id: 'secret-ish-client' },
  ]);

  it('C-001/C-002/C-008: the gateway catalog validates and carries no upstream client data', () => {
    const doc = gatewayDiscovery('https://gw.example', 'gw.example', providers);
    expect(validateDiscoveryDocument(doc).valid).toBe(true);
    expect(doc.agent_registration_endpoint).toBe('https://gw.example/ath/agents/register');
    expect(JSON.stringify(doc)).not.toContain('secret-ish-client');
    expect(doc.supported_providers[0]).toMatchObject({ auth_mode: 'OAUTH2', agent_approval_required: true });
  });

  it('C-005/C-006/C-007/C-009: the native service document validates', () => {
    const doc = serviceDiscovery('https://shop.example', {
      app_id: 'com.example.shop',
      name: 'Shop',
      api_base: 'https://shop.example/api',
      scopes_supported: ['products:read'],
    });
    expect(validateServiceDiscoveryDocument(doc).valid).toBe(true);
    expect(doc).toMatchObject({ ath_version: '0.1', auth: { type: 'oauth2', agent_attestation_required: true } });
  });

  it('C-003: duplicate provider ids are refused', () => {
    expect(() =>
      staticCatalog([
        { provider_id: 'x', display_name: 'X', available_scopes: [] },
        { provider_id: 'x', display_name: 'Y', available_scopes: [] },
      ]),
    ).toThrow(/unique/);
  });
});
