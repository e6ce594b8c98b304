/** threats D9 / C-086: which RFC 8707 resource indicators an agent may name (core's one rule). */
import { describe, expect, it } from 'vitest';
import { AthError } from '../src/errors.js';
import { checkResourceIndicator, resourceProblem, type ResourceProblem } from '../src/resource.js';

const BASE = 'https://api.x.test/v1';

describe('resourceProblem without an API base (RFC 8707 syntax only)', () => {
  it.each([
    ['https://api.p.test/v1', null],
    ['urn:example:resource', null],
    ['HTTPS://API.P.TEST:443/v1/../v1', null],
    ['not a uri', 'not_absolute'],
    ['/v1/relative', 'not_absolute'],
    ['', 'not_absolute'],
    ['https://api.p.test/v1#frag', 'fragment'],
    ['https://api.p.test/v1#', 'fragment'],
  ] as const)('%j → %j', (resource, expected) => {
    expect(resourceProblem(resource)).toBe(expected);
  });
});

describe('resourceProblem under an API base (threats D9)', () => {
  const admitted: [string, string][] = [
    [BASE, BASE],
    [`${BASE}/`, BASE],
    [BASE, `${BASE}/`],
    [`${BASE}/`, `${BASE}/`],
    [`${BASE}/mail`, BASE],
    [`${BASE}/mail/`, `${BASE}/`],
    [`${BASE}/mail?tenant=1`, BASE],
    [`${BASE}/a%20b`, BASE],
    ['https://api.x.test', 'https://api.x.test/'],
    ['https://api.x.test/', 'https://api.x.test'],
    ['https://api.x.test/anything', 'https://api.x.test/'],
    ['http://127.0.0.1:8080/api/', 'http://127.0.0.1:8080/api/'],
  ];
  it.each(admitted)('admits %s under %s', (resource, base) => {
    expect(resourceProblem(resource, base)).toBeNull();
    expect(() => checkResourceIndicator(resource, base)).not.toThrow();
  });

  const refused: [string, ResourceProblem][] = [
    ['/v1/mail', 'not_absolute'],
    ['v1', 'not_absolute'],
    [`${BASE}#x`, 'fragment'],
    [`${BASE}/mail#`, 'fragment'],
    // outside: other origin, scheme, port, sibling prefix, parent
    ['https://api.x.test/v10', 'outside_api_base'],
    ['https://api.x.test/v1x/mail', 'outside_api_base'],
    ['https://api.x.test/', 'outside_api_base'],
    ['https://api.x.test', 'outside_api_base'],
    ['https://api.x.test/v2/mail', 'outside_api_base'],
    ['https://api.x.test//v1/mail', 'outside_api_base'],
    ['http://api.x.test/v1', 'outside_api_base'],
    ['https://api.x.test:8443/v1', 'outside_api_base'],
    ['https://evil.test/v1', 'outside_api_base'],
    ['https://api.x.test.evil.test/v1', 'outside_api_base'],
    ['https://api.x.test./v1', 'outside_api_base'],
    ['urn:x:v1', 'outside_api_base'],
    ['https://api.x.test/%76%31/mail', 'outside_api_base'], // escapes are never decoded: no match
    ['https://api.x.test/V1', 'outside_api_base'],
    // not in normalized form: the string an AS would read differently from the one we compared
    ['https://api.x.test/v1/../admin', 'not_normalized'],
    ['https://api.x.test/v1/./mail', 'not_normalized'],
    ['https://api.x.test/v1/%2e%2e/admin', 'not_normalized'],
    ['https://api.x.test/v1/.%2E/admin', 'not_normalized'],
    ['https://api.x.test/v1/..', 'not_normalized'],
    ['HTTPS://api.x.test/v1', 'not_normalized'],
    ['https://API.X.TEST/v1', 'not_normalized'],
    ['https://api.x.test:443/v1', 'not_normalized'],
    ['https://api.x.test\\v1\\mail', 'not_normalized'],
    ['https:api.x.test/v1', 'not_normalized'],
    ['https://api.x.test/v1/a b', 'not_normalized'],
    [' https://api.x.test/v1', 'not_normalized'],
    ['https://api.x.test/v1/\tmail', 'not_normalized'],
    ['https://api.x.test/v1/é', 'not_normalized'],
    ['https://user@api.x.test/v1', 'not_normalized'],
    ['https://user:pw@api.x.test/v1', 'not_normalized'],
    ['https://evil.test@api.x.test/v1', 'not_normalized'],
    // ambiguous path bytes
    ['https://api.x.test/v1/..%2Fadmin', 'ambiguous_path'],
    ['https://api.x.test/v1/..%2fadmin', 'ambiguous_path'],
    ['https://api.x.test/v1/..%5Cadmin', 'ambiguous_path'],
    ['https://api.x.test/v1/%252e%252e/admin', 'ambiguous_path'],
    ['https://api.x.test/v1/a%2Eb', 'ambiguous_path'],
    ['https://api.x.test/v1/..;/admin', 'ambiguous_path'],
    ['https://api.x.test/v1/mail;x=1', 'ambiguous_path'],
    ['https://api.x.test/v1/%3B', 'ambiguous_path'],
    ['https://api.x.test/v1/a%00', 'ambiguous_path'],
    ['https://api.x.test/v1/a%0A', 'ambiguous_path'],
    ['https://api.x.test/v1/a%7f', 'ambiguous_path'],
  ];
  it.each(refused)('refuses %j (%s)', (resource, problem) => {
    expect(resourceProblem(resource, BASE)).toBe(problem);
  });

  it('refuses everything against an unusable or non-http(s) API base (fails closed)', () => {
    expect(resourceProblem('https://api.x.test/v1', 'not a url')).toBe('outside_api_base');
    expect(resourceProblem('ftp://api.x.test/v1', 'ftp://api.x.test/v1')).toBe('outside_api_base');
  });

  it('a percent-escaped base path matches only the same escape, literally', () => {
    expect(resourceProblem('https://api.x.test/a%20b/c', 'https://api.x.test/a%20b/')).toBeNull();
    expect(resourceProblem('https://api.x.test/a%20bc', 'https://api.x.test/a%20b/')).toBe('outside_api_base');
  });
});

describe('checkResourceIndicator', () => {
  it('throws 400 INVALID_REQUEST naming the field resource and the reason (AMB-04)', () => {
    let caught: unknown;
    try {
      checkResourceIndicator('https://api.x.test/v10', BASE);
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(AthError);
    const err = caught as AthError;
    expect(err.code).toBe('INVALID_REQUEST');
    expect(err.status).toBe(400);
    expect(err.details).toEqual({ field: 'resource', reason: 'outside_api_base' });
    expect(JSON.parse(JSON.stringify(err))).toMatchObject({ code: 'INVALID_REQUEST', details: { field: 'resource' } });
  });

  it('passes a valid indicator without an API base and under one', () => {
    expect(() => checkResourceIndicator('https://anything.test/x')).not.toThrow();
    expect(() => checkResourceIndicator(`${BASE}/mail`, BASE)).not.toThrow();
  });
});
