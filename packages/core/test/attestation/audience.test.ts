import { describe, expect, it } from 'vitest';
import { acceptedAudiences, audienceMatches } from '../../src/attestation/audience.js';

describe('acceptedAudiences (AMB-09)', () => {
  it('C-017 register/authorize/get-agent accept the origin, origin + "/", and the exact endpoint URL', () => {
    expect(
      [...acceptedAudiences('https://gw.example', '/ath/agents/register', 'origin-or-endpoint')].sort(),
    ).toEqual(['https://gw.example', 'https://gw.example/', 'https://gw.example/ath/agents/register']);
  });

  it('C-125 /ath/token accepts only its exact URL', () => {
    expect([...acceptedAudiences('https://gw.example/', '/ath/token', 'exact')]).toEqual([
      'https://gw.example/ath/token',
    ]);
  });

  it('normalises the base URL (case, default port, trailing slash) and keeps a path prefix', () => {
    expect([...acceptedAudiences('HTTPS://GW.example:443/', 'ath/authorize', 'exact')]).toEqual([
      'https://gw.example/ath/authorize',
    ]);
    expect(
      [...acceptedAudiences('https://host.example/gw/', '/ath/token', 'origin-or-endpoint')].sort(),
    ).toEqual(['https://host.example/gw', 'https://host.example/gw/', 'https://host.example/gw/ath/token']);
  });

  it('refuses a base URL with query, fragment or userinfo', () => {
    expect(() => acceptedAudiences('https://gw.example/?x', '/ath/token', 'exact')).toThrow(TypeError);
    expect(() => acceptedAudiences('https://u@gw.example', '/ath/token', 'exact')).toThrow(TypeError);
  });
});

describe('audienceMatches', () => {
  const accepted = acceptedAudiences('https://gw.example', '/ath/authorize', 'origin-or-endpoint');
  it('accepts a string or an array containing one accepted value', () => {
    expect(audienceMatches('https://gw.example', accepted)).toBe(true);
    expect(audienceMatches(['https://other.example', 'https://gw.example/ath/authorize'], accepted)).toBe(
      true,
    );
  });
  it('threats A9: rejects other gateways, http vs https, case variants, non-strings', () => {
    for (const aud of [
      'https://other.example',
      'http://gw.example',
      'https://GW.example',
      'https://gw.example/ath/token',
      [],
      [1],
      1,
      null,
      undefined,
      {},
    ]) {
      expect(audienceMatches(aud, accepted), JSON.stringify(aud)).toBe(false);
    }
  });
});
