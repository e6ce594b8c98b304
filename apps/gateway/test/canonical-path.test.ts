import { AthError } from '@athkit/core';
import { describe, expect, it } from 'vitest';
import { buildUpstreamTarget, canonicalizeTarget, splitProxyUrl } from '../src/canonical-path.js';

function rejects(fn: () => unknown): AthError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(AthError);
    expect((err as AthError).code).toBe('INVALID_REQUEST');
    expect((err as AthError).status).toBe(400);
    return err as AthError;
  }
  throw new Error('expected a 400 INVALID_REQUEST');
}

describe('canonicalizeTarget — accepted paths stay byte for byte', () => {
  it.each([
    ['/v1/messages', ['v1', 'messages']],
    ['/v1/messages/', ['v1', 'messages', '']],
    ['/', ['']],
    ['/v1/messages/42', ['v1', 'messages', '42']],
    ['/v1/messages.json', ['v1', 'messages.json']],
    ['/v1/a%20b', ['v1', 'a%20b']],
    ['/v1/%252e%252e', ['v1', '%252e%252e']],
    ['/v1/~user/x-y_z', ['v1', '~user', 'x-y_z']],
    ['/v1/a:b@c!$&\'()*+,=', ['v1', "a:b@c!$&'()*+,="]],
    ['/v1/...', ['v1', '...']],
    ['/v1/%E2%82%AC', ['v1', '%E2%82%AC']],
  ])('%s', (path, segments) => {
    const t = canonicalizeTarget(path, null);
    expect(t.path).toBe(path);
    expect(t.segments).toEqual(segments);
    expect(t.query).toBeNull();
  });

  it('keeps the raw query exactly', () => {
    const q = 'x=1&y=%2F..%2F&z=a+b&w=%252e&v=;k';
    expect(canonicalizeTarget('/v1/items', q).query).toBe(q);
    expect(canonicalizeTarget('/v1/items', '').query).toBe('');
  });
});

describe('canonicalizeTarget — threats F1 dot segments (every variant → 400)', () => {
  const variants = [
    '../',
    '%2e%2e/',
    '.%2E/',
    '%2E%2e/',
    '%2E./',
    '%2e/',
    './',
    '..%2f',
    '%2f../',
    '..\\',
    '..;/',
    '%c0%ae%c0%ae/',
    '%C0%AE./',
    '%e0%80%ae%e0%80%ae/', // 3-byte overlong
    '．．/', // U+FF0E raw
    '%EF%BC%8E%EF%BC%8E/', // U+FF0E percent-encoded
    '．/',
    '%00',
    '..%00/',
    '%2e%2e%5c',
  ];
  it.each(variants)('/v1/messages/%sadmin', (variant) => {
    rejects(() => canonicalizeTarget(`/v1/messages/${variant}admin`));
  });

  it.each(['/v1/..', '/v1/.', '/..', '/.', '/v1/%2e%2e', '/v1/%2e', '/v1/..;', '/v1/..;x/a'])('%s', (path) => {
    rejects(() => canonicalizeTarget(path));
  });
});

describe('canonicalizeTarget — threats F2 encoded separators', () => {
  it.each([
    '/v1/messages%2F..%2Fadmin',
    '/v1/messages%2fadmin',
    '/v1/messages%5Cadmin',
    '/v1/messages%5cadmin',
    '/v1/messages\\admin',
    '/v1/%EF%BC%8Fadmin', // fullwidth solidus, encoded
    '/v1/／admin', // fullwidth solidus, raw
    '/v1/%EF%BC%BCadmin', // fullwidth reverse solidus
    '/%2Fadmin',
  ])('%s → 400', (path) => {
    rejects(() => canonicalizeTarget(path));
  });
});

describe('canonicalizeTarget — other refused forms', () => {
  it.each([
    ['empty segment //', '/v1//messages'],
    ['leading //', '//127.0.0.2:9/x'],
    ['backslash host escape', '/\\127.0.0.2:9/x'],
    ['trailing //', '/v1/messages//'],
    ['path parameter', '/v1/messages;jsessionid=1'],
    ['matrix on dot', '/v1/.;/admin'],
    ['NUL', '/v1/a%00b'],
    ['CR', '/v1/a%0db'],
    ['LF', '/v1/a%0Ab'],
    ['DEL', '/v1/a%7Fb'],
    ['raw space', '/v1/a b'],
    ['raw tab', '/v1/a\tb'],
    ['raw non-ASCII', '/v1/café'],
    ['malformed escape', '/v1/a%zz'],
    ['truncated escape', '/v1/a%2'],
    ['invalid UTF-8', '/v1/%ff'],
    ['fragment', '/v1/a#b'],
    ['no leading slash', 'v1/messages'],
    ['empty', ''],
    ['braces', '/v1/{id}'],
  ])('%s', (_name, path) => {
    rejects(() => canonicalizeTarget(path));
  });

  it.each([
    ['_method', '_method=DELETE'],
    ['_METHOD', 'a=1&_METHOD=DELETE'],
    ['encoded key', '%5Fmethod=DELETE'],
    ['x-http-method-override', 'X-HTTP-Method-Override=DELETE'],
    ['raw space', 'a=b c'],
    ['raw quote', 'a="b"'],
    ['fragment', 'a=1#x'],
    ['bad escape', 'a=%zz'],
    ['non-ASCII', 'q=café'],
  ])('query %s → 400 (threats F4)', (_name, query) => {
    rejects(() => canonicalizeTarget('/v1/messages', query));
  });

  it('never echoes the offending input', () => {
    const err = rejects(() => canonicalizeTarget('/v1/<script>'));
    expect(err.message).not.toContain('<script>');
    expect(JSON.stringify(err.toJSON())).not.toContain('script');
  });
});

describe('splitProxyUrl', () => {
  it('splits provider, raw path and raw query without decoding', () => {
    const { providerId, target } = splitProxyUrl('/ath/proxy/mail/v1/messages/%252e%252e?x=%2F&y');
    expect(providerId).toBe('mail');
    expect(target.path).toBe('/v1/messages/%252e%252e');
    expect(target.query).toBe('x=%2F&y');
  });

  it('a bare provider is the root path', () => {
    expect(splitProxyUrl('/ath/proxy/mail').target.path).toBe('/');
    expect(splitProxyUrl('/ath/proxy/mail/').target.segments).toEqual(['']);
  });

  it.each(['/ath/proxy/MAIL/x', '/ath/proxy/%6dail/x', '/ath/proxy/mail%2Fx/y', '/ath/proxy/mail@127.0.0.2/x', '/ath/proxy//x', '/ath/proxy/-mail/x'])(
    'provider segment %s → 404 (threats F10)',
    (url) => {
      try {
        splitProxyUrl(url);
        throw new Error('expected NOT_FOUND');
      } catch (err) {
        expect((err as AthError).code).toBe('NOT_FOUND');
      }
    },
  );

  it('absolute-form targets are not proxy URLs (threats F6)', () => {
    expect(() => splitProxyUrl('http://127.0.0.2:9/ath/proxy/mail/v1')).toThrow(AthError);
  });

  it.each(['/ath/proxy/mail//127.0.0.2:9/x', '/ath/proxy/mail/\\127.0.0.2:9/x', '/ath/proxy/mail/../admin'])(
    'host escapes in the path → 400 (threats F5) %s',
    (url) => {
      rejects(() => splitProxyUrl(url));
    },
  );
});

describe('buildUpstreamTarget', () => {
  it('appends the raw path and query to the parsed api_base path', () => {
    const base = new URL('https://api.example.com/api/');
    const t = buildUpstreamTarget(base, canonicalizeTarget('/v1/messages/%252e%252e', 'q=a%2Fb&x'));
    expect(t).toEqual({ origin: 'https://api.example.com', host: 'api.example.com', path: '/api/v1/messages/%252e%252e?q=a%2Fb&x' });
  });

  it('works with a root api_base and a port', () => {
    const t = buildUpstreamTarget(new URL('http://127.0.0.1:8080'), canonicalizeTarget('/x/', null));
    expect(t).toEqual({ origin: 'http://127.0.0.1:8080', host: '127.0.0.1:8080', path: '/x/' });
  });

  it('asserts same origin and base-path prefix even for a hand-made target (threats F5)', () => {
    const base = new URL('https://api.example.com/api');
    for (const path of ['/../admin', '/%2e%2e/admin', '/./x']) {
      rejects(() => buildUpstreamTarget(base, { path, segments: [], query: null }));
    }
    // `@host` cannot change the origin once a base path is parsed.
    const t = buildUpstreamTarget(new URL('https://api.example.com'), canonicalizeTarget('/@127.0.0.2/x'));
    expect(t.origin).toBe('https://api.example.com');
    expect(t.path).toBe('/@127.0.0.2/x');
  });
});
