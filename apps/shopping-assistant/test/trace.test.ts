import { describe, expect, it } from 'vitest';
import {
  formatCall,
  maskHeaders,
  maskJson,
  maskSecret,
  shortUrl,
  tracingFetch,
  type TracedCall,
} from '../src/index.js';

describe('what the demo prints', () => {
  it('masks secrets to a recognisable prefix and shortens attestations', () => {
    expect(maskSecret('ath_secret_AbCdEfGhIjKl')).toBe('ath_secret_AbCd…');
    expect(maskSecret('ath_tk_0123456789')).toBe('ath_tk_0123…');
    expect(maskSecret('ath_0123456789')).toBe('ath_0123…');
    expect(maskSecret('opaque-secret')).toBe('opaq…');
    expect(
      maskJson({
        client_id: 'ath_abc',
        client_secret: 'ath_secret_xyz123456',
        nested: [{ access_token: 'ath_tk_secure_token', token: 'ath_tk_other_token' }],
        agent_attestation: 'eyJhbGciOiJFUzI1NiIsInR5cCI6ImF0aCJ9.payload.signature',
        password: 'alice-password',
      }),
    ).toEqual({
      client_id: 'ath_abc',
      client_secret: 'ath_secret_xyz1…',
      nested: [{ access_token: 'ath_tk_secu…', token: 'ath_tk_othe…' }],
      agent_attestation: 'eyJhbGciOiJFUzI1NiIs...',
      password: 'alic…',
    });
  });

  it('keeps URLs under secret-looking keys (discovery names an endpoint "token") and shortens *_url queries', () => {
    expect(maskJson({ ath_endpoints: { token: 'http://127.0.0.1:1/ath/token' } })).toEqual({
      ath_endpoints: { token: 'http://127.0.0.1:1/ath/token' },
    });
    expect(
      maskJson({ authorization_url: 'http://127.0.0.1:1/start?state=0123456789abcdefghij&x=1' }),
    ).toEqual({
      authorization_url: 'http://127.0.0.1:1/start?state=0123456789…&x=1',
    });
    expect(shortUrl('http://127.0.0.1:1/a')).toBe('http://127.0.0.1:1/a');
  });

  it('cuts long lists of objects, not lists of scopes', () => {
    const scopes = ['a', 'b', 'c', 'd', 'e'];
    expect(maskJson({ scopes })).toEqual({ scopes });
    expect(maskJson({ products: [1, 2, 3, 4, 5].map((id) => ({ id })) })).toEqual({
      products: [{ id: 1 }, { id: 2 }, { id: 3 }, '… 2 more'],
    });
  });

  it('shows the bearer token masked and the agent id as is', () => {
    expect(
      maskHeaders(
        new Headers({
          authorization: 'Bearer ath_tk_abcdefgh',
          'x-ath-agent-id': 'https://a.example/agent.json',
          accept: 'x',
        }),
      ),
    ).toEqual({
      Authorization: 'Bearer ath_tk_abcd…',
      'X-ATH-Agent-ID': 'https://a.example/agent.json',
    });
  });

  it('records each call through the injected fetch and formats it like the seed', async () => {
    const calls: TracedCall[] = [];
    const fetch = tracingFetch(
      (call) => calls.push(call),
      () =>
        Promise.resolve(
          new Response(JSON.stringify({ client_secret: 'ath_secret_123456789' }), { status: 201 }),
        ),
    );
    const response = await fetch('http://127.0.0.1:1/ath/agents/register', {
      method: 'POST',
      body: JSON.stringify({ purpose: 'p' }),
    });
    expect(await response.json()).toEqual({ client_secret: 'ath_secret_123456789' }); // the agent still reads the body
    expect(calls).toHaveLength(1);
    expect(formatCall(calls[0]!)).toBe(
      [
        '  POST http://127.0.0.1:1/ath/agents/register',
        '  {',
        '    "purpose": "p"',
        '  }',
        '  → 201',
        '  {',
        '    "client_secret": "ath_secret_1234…"',
        '  }',
      ].join('\n'),
    );
  });
});
