import { describe, expect, it } from 'vitest';
import { validateATHError } from '@athkit/schemas';
import { AthError, errorHeaders, loggableError, toAthError } from '../src/errors.js';

describe('AthError', () => {
  it('C-201: the status always comes from the code table', () => {
    expect(new AthError('INVALID_ATTESTATION', 'x').status).toBe(401);
    expect(new AthError('SCOPE_NOT_APPROVED', 'x').status).toBe(403);
    expect(new AthError('SESSION_EXPIRED', 'x').status).toBe(400);
    expect(new AthError('OAUTH_ERROR', 'x').status).toBe(502);
    expect(new AthError('AGENT_ALREADY_REGISTERED', 'x').status).toBe(409);
    expect(new AthError('RATE_LIMITED', 'x').status).toBe(429);
  });

  it('C-200: renders a wire body that validates as ATHError, without stack or cause', () => {
    const err = new AthError('TOKEN_REVOKED', 'token was revoked', { reason: 'revoked' }, { cause: new Error('db') });
    const body = JSON.parse(JSON.stringify(err)) as unknown;
    expect(validateATHError(body).valid).toBe(true);
    expect(body).toEqual({ code: 'TOKEN_REVOKED', message: 'token was revoked', details: { reason: 'revoked' } });
    expect(JSON.stringify(err)).not.toContain('stack');
  });

  it('omits empty details', () => {
    expect(new AthError('NOT_FOUND', 'no such route', {}).toJSON()).toEqual({ code: 'NOT_FOUND', message: 'no such route' });
  });

  it('C-204: unexpected failures become a generic 500 that reveals nothing', () => {
    const err = toAthError(new Error('SELECT * FROM agents WHERE secret = 42'));
    expect(err.status).toBe(500);
    expect(err.code).toBe('INTERNAL_ERROR');
    expect(JSON.stringify(err)).not.toContain('SELECT');
  });

  it('C-202: rate limits carry Retry-After and 405 carries Allow', () => {
    expect(errorHeaders(new AthError('RATE_LIMITED', 'slow down', { retry_after: 2.2 }))).toEqual({ 'retry-after': '3' });
    expect(errorHeaders(new AthError('METHOD_NOT_ALLOWED', 'no', { allow: ['POST'] }))).toEqual({ allow: 'POST' });
  });
});

describe('loggableError', () => {
  it('keeps type, code and message, follows causes, and never carries a stack', () => {
    const driver = Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:5432'), { code: 'ECONNREFUSED' });
    const logged = loggableError(new AthError('INTERNAL_ERROR', 'store failed', undefined, { cause: driver }));
    expect(logged).toEqual({
      type: 'AthError',
      message: 'store failed',
      code: 'INTERNAL_ERROR',
      cause: { type: 'Error', message: 'connect ECONNREFUSED 127.0.0.1:5432', code: 'ECONNREFUSED' },
    });
    expect(JSON.stringify(logged)).not.toMatch(/stack|\bat .*:\d+/);
  });

  it("keeps an AthError's details (what its wire body carries), here under a cause too", () => {
    const limited = new AthError('RATE_LIMITED', 'Too many requests', { retry_after: 7 });
    const wrapped = new AthError('OAUTH_ERROR', 'upstream refused', { reason: 'refresh_failed' }, { cause: limited });
    expect(loggableError(wrapped)).toEqual({
      type: 'AthError',
      message: 'upstream refused',
      code: 'OAUTH_ERROR',
      details: { reason: 'refresh_failed' },
      cause: { type: 'AthError', message: 'Too many requests', code: 'RATE_LIMITED', details: { retry_after: 7 } },
    });
    expect(loggableError(new AthError('NOT_FOUND', 'x', {}))).toEqual({ type: 'AthError', message: 'x', code: 'NOT_FOUND' });
  });

  it('bounds cause chains and accepts non-errors', () => {
    const a = new Error('a');
    const b = new Error('b', { cause: a });
    (a as { cause?: unknown }).cause = b; // a cycle
    expect(JSON.stringify(loggableError(b))).toBe(
      JSON.stringify({ type: 'Error', message: 'b', cause: { type: 'Error', message: 'a', cause: { type: 'Error', message: 'b', cause: { type: 'Error', message: 'a' } } } }),
    );
    expect(loggableError('plain string')).toEqual({ type: 'string', message: 'plain string' });
    expect(loggableError(undefined)).toEqual({ type: 'undefined', message: 'undefined' });
  });
});
