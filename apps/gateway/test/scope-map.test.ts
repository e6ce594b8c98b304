import { describe, expect, it } from 'vitest';
import { canonicalizeTarget } from '../src/canonical-path.js';
import { checkScopeRules, ScopeMap, type ScopeRule } from '../src/scope-map.js';

// The scope map of threats F: mail:read → GET|HEAD /v1/messages and /v1/messages/{id};
// mail:send → POST /v1/messages/send.
const RULES: ScopeRule[] = [
  { methods: ['GET', 'HEAD'], path: '/v1/messages', scope: 'mail:read' },
  { methods: ['GET', 'HEAD'], path: '/v1/messages/{id}', scope: 'mail:read' },
  { methods: ['POST'], path: '/v1/messages/send', scope: 'mail:send' },
  { methods: ['DELETE'], path: '/v1/messages/{id}', scope: 'mail:delete' },
  { methods: ['PUT', 'PATCH'], path: '/v1/messages/{id}/labels/', scope: 'mail:label' },
  { methods: ['GET'], path: '/', scope: 'mail:read' },
];
const map = ScopeMap.compile(RULES);
const scope = (method: string, path: string) => map.requiredScope(method, canonicalizeTarget(path));

describe('ScopeMap.requiredScope', () => {
  it.each([
    ['GET', '/v1/messages', 'mail:read'],
    ['HEAD', '/v1/messages', 'mail:read'],
    ['GET', '/v1/messages/42', 'mail:read'],
    ['GET', '/v1/messages/%252e%252e', 'mail:read'], // double-encoded: a literal id, never decoded twice
    ['GET', '/v1/messages/send', 'mail:read'], // {id} matches any one segment for GET
    ['POST', '/v1/messages/send', 'mail:send'],
    ['DELETE', '/v1/messages/42', 'mail:delete'],
    ['PUT', '/v1/messages/42/labels/', 'mail:label'],
    ['PATCH', '/v1/messages/42/labels/', 'mail:label'],
    ['GET', '/', 'mail:read'],
  ])('%s %s → %s', (method, path, expected) => {
    expect(scope(method, path)).toBe(expected);
  });

  it.each([
    // threats F3: prefix confusion, exact segment matching
    ['GET', '/v1/messagesX'],
    ['GET', '/v1/messages.json'],
    ['GET', '/v1/messages/'], // trailing slash is a different path
    ['GET', '/V1/Messages'],
    ['GET', '/v1/messages/42/'],
    ['GET', '/v1/messages/42/body'],
    ['GET', '/v1'],
    ['GET', '/v1/m%65ssages'], // encoded variant of a literal is not that literal
    ['PUT', '/v1/messages/42/labels'], // the map says trailing slash
    // threats F3: methods are exact and upper case
    ['get', '/v1/messages'],
    ['Get', '/v1/messages'],
    ['OPTIONS', '/v1/messages'],
    ['TRACE', '/v1/messages'],
    ['CONNECT', '/v1/messages'],
    ['PROPFIND', '/v1/messages'],
    ['POST', '/v1/messages'], // threats F4: a POST carrying _method=GET is still a POST
    ['DELETE', '/v1/unmapped'], // C-158
    // threats F13: batch and GraphQL are unmapped unless mapped explicitly
    ['POST', '/batch'],
    ['POST', '/graphql'],
  ])('%s %s → unmapped (null → 403 SCOPE_NOT_APPROVED)', (method, path) => {
    expect(scope(method, path)).toBeNull();
  });

  it('prefers literal segments over parameters, leftmost first', () => {
    const m = ScopeMap.compile([
      { methods: ['GET'], path: '/a/{x}/c', scope: 's1' },
      { methods: ['GET'], path: '/{y}/b/c', scope: 's2' },
      { methods: ['GET'], path: '/a/b/{z}', scope: 's3' },
    ]);
    expect(m.requiredScope('GET', canonicalizeTarget('/a/b/c'))).toBe('s3');
    expect(m.requiredScope('GET', canonicalizeTarget('/a/q/c'))).toBe('s1');
    expect(m.requiredScope('GET', canonicalizeTarget('/q/b/c'))).toBe('s2');
  });

  it('an empty map denies everything', () => {
    expect(ScopeMap.compile([]).requiredScope('GET', canonicalizeTarget('/'))).toBeNull();
  });
});

describe('checkScopeRules / compile refuse bad maps', () => {
  it.each<[string, ScopeRule, string, string]>([
    ['lower-case method', { methods: ['get'], path: '/x', scope: 's' }, 'methods', 'unsupported method'],
    ['TRACE', { methods: ['TRACE'], path: '/x', scope: 's' }, 'methods', 'unsupported method'],
    ['no methods', { methods: [], path: '/x', scope: 's' }, 'methods', 'at least one'],
    ['relative path', { methods: ['GET'], path: 'x', scope: 's' }, 'path', 'must start with /'],
    ['partial parameter', { methods: ['GET'], path: '/x-{id}', scope: 's' }, 'path', 'whole segment'],
    ['empty segment', { methods: ['GET'], path: '/a//b', scope: 's' }, 'path', 'empty segment'],
    ['dot segment', { methods: ['GET'], path: '/a/../b', scope: 's' }, 'path', 'dot segment'],
    ['encoded slash', { methods: ['GET'], path: '/a%2Fb', scope: 's' }, 'path', 'encoded slash'],
    ['path parameter', { methods: ['GET'], path: '/a;b', scope: 's' }, 'path', 'path parameters'],
  ])('%s', (_name, rule, field, message) => {
    const problems = checkScopeRules([rule]);
    expect(problems).toHaveLength(1);
    expect(problems[0]!.field).toBe(field);
    expect(problems[0]!.message).toContain(message);
    expect(() => ScopeMap.compile([rule])).toThrow(`scope_map[0].${field}`);
  });

  it('scopes must be offered by the provider', () => {
    expect(checkScopeRules([{ methods: ['GET'], path: '/x', scope: 'p:admin' }], ['p:read'])).toEqual([
      { index: 0, field: 'scope', message: 'scope p:admin is not in available_scopes' },
    ]);
  });

  it('the same method and path shape cannot map to two scopes', () => {
    const problems = checkScopeRules([
      { methods: ['GET'], path: '/m/{id}', scope: 'a' },
      { methods: ['POST', 'GET'], path: '/m/{other}', scope: 'b' },
    ]);
    expect(problems).toEqual([{ index: 1, field: 'path', message: 'GET /m/{other} is already mapped to a by rule 0' }]);
    // the same scope twice is harmless
    expect(checkScopeRules([RULES[0]!, RULES[0]!])).toEqual([]);
  });
});
