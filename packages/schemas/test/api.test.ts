import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  ENDPOINTS,
  ERROR_STATUS,
  PROTOCOL_VERSION,
  SchemaValidationError,
  assertAuthorizationRequest,
  validateAuthorizationRequest,
  validateTokenResponse,
} from '../src/index.js';
import { hasUpstream, repoRoot, upstreamDir } from './paths.js';

describe('@athkit/schemas API', () => {
  it('PROTOCOL_VERSION is 0.1 (C-007)', () => {
    expect(PROTOCOL_VERSION).toBe('0.1');
  });

  it('ERROR_STATUS is the C-201 table plus the AMB-04 extension codes', () => {
    expect(ERROR_STATUS).toEqual({
      INVALID_ATTESTATION: 401,
      AGENT_NOT_REGISTERED: 403,
      AGENT_UNAPPROVED: 403,
      PROVIDER_NOT_APPROVED: 403,
      SCOPE_NOT_APPROVED: 403,
      SESSION_NOT_FOUND: 400,
      SESSION_EXPIRED: 400,
      STATE_MISMATCH: 400,
      TOKEN_INVALID: 401,
      TOKEN_EXPIRED: 401,
      TOKEN_REVOKED: 401,
      AGENT_IDENTITY_MISMATCH: 403,
      PROVIDER_MISMATCH: 403,
      USER_DENIED: 403,
      OAUTH_ERROR: 502,
      INTERNAL_ERROR: 500,
      INVALID_REQUEST: 400,
      NOT_FOUND: 404,
      METHOD_NOT_ALLOWED: 405,
      AGENT_ALREADY_REGISTERED: 409,
      PAYLOAD_TOO_LARGE: 413,
      RATE_LIMITED: 429,
      UPSTREAM_TIMEOUT: 504,
    });
  });

  it.runIf(hasUpstream)('ENDPOINTS covers every endpoint of the upstream meta.json with the same method and path', () => {
    const meta = JSON.parse(readFileSync(join(upstreamDir, 'meta.json'), 'utf8')) as {
      endpoints: Record<string, { method: string; path: string }>;
    };
    for (const [name, ep] of Object.entries(meta.endpoints)) {
      expect(ENDPOINTS, name).toHaveProperty(name);
      const ours = ENDPOINTS[name as keyof typeof ENDPOINTS];
      expect({ method: ours.method, path: ours.path }).toEqual(ep);
    }
  });

  it('register answers 201 and every listed error uses the status of ERROR_STATUS', () => {
    expect(ENDPOINTS.register.response.status).toBe(201);
    for (const ep of Object.values(ENDPOINTS)) {
      for (const e of ep.errors) expect(e.status, `${ep.path} ${e.code}`).toBe(ERROR_STATUS[e.code]);
    }
  });

  it('validate returns every violation with a JSON pointer', () => {
    const result = validateAuthorizationRequest({ client_id: 'c', agent_attestation: 'x', scopes: ['a b'], state: '' });
    expect(result.valid).toBe(false);
    const pointers = result.violations.map((v) => v.pointer);
    expect(pointers).toContain('/provider_id');
    expect(pointers).toContain('/scopes/0');
    expect(pointers).toContain('/state');
  });

  it('assert throws a SchemaValidationError listing the violations', () => {
    let caught: unknown;
    try {
      assertAuthorizationRequest({ client_id: 'c' });
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(SchemaValidationError);
    const err = caught as SchemaValidationError;
    expect(err.def).toBe('AuthorizationRequest');
    expect(err.violations.map((v) => v.pointer)).toEqual(
      expect.arrayContaining(['/agent_attestation', '/provider_id', '/scopes', '/state']),
    );
    expect(err.message).toContain('/provider_id: is required');
  });

  it('is() is a type guard that agrees with validate()', () => {
    const token = {
      access_token: 'ath_tk_x',
      token_type: 'Bearer',
      expires_in: 3600,
      effective_scopes: ['mail:read'],
      provider_id: 'mail',
      agent_id: 'https://agent.example/.well-known/agent.json',
      scope_intersection: { agent_approved: ['mail:read'], user_consented: ['mail:read'], effective: ['mail:read'] },
    };
    expect(validateTokenResponse.is(token)).toBe(true);
    expect(validateTokenResponse.is({ ...token, expires_in: 7200 })).toBe(false);
  });

  it('the OpenAPI document has a path for every endpoint and the schemas as components', () => {
    const openapi = JSON.parse(readFileSync(join(repoRoot, 'packages/schemas/json/openapi.json'), 'utf8')) as {
      openapi: string;
      paths: Record<string, unknown>;
      components: { schemas: Record<string, unknown> };
    };
    expect(openapi.openapi).toBe('3.1.0');
    for (const ep of Object.values(ENDPOINTS)) expect(openapi.paths).toHaveProperty([ep.path]);
    expect(Object.keys(openapi.components.schemas)).toContain('TokenResponse');
    expect(JSON.stringify(openapi)).not.toContain('#/$defs/');
  });
});
