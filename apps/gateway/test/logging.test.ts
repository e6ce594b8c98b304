/**
 * The gateway's log lines: no stack traces (brief: never log secrets, tokens or stack traces), and
 * the redaction of tokens, secrets and query strings (threats F8, C-221).
 */
import { describe, expect, it } from 'vitest';
import { createLogger, safeUrl } from '../src/observability.js';

function capture() {
  const lines: string[] = [];
  const logger = createLogger('info', { write: (line: string) => void lines.push(line) } as unknown as NodeJS.WritableStream);
  return { logger, lines };
}

describe('gateway logger', () => {
  it('logs an error as type, code and message (with its cause), never its stack', () => {
    const { logger, lines } = capture();
    const cause = Object.assign(new Error('read ECONNRESET'), { code: 'ECONNRESET' });
    logger.warn({ err: new Error('upstream response body failed', { cause }) }, 'upstream response body failed');
    expect(lines).toHaveLength(1);
    const entry = JSON.parse(lines[0]!) as { err: unknown };
    expect(entry.err).toEqual({ type: 'Error', message: 'upstream response body failed', cause: { type: 'Error', message: 'read ECONNRESET', code: 'ECONNRESET' } });
    expect(lines[0]).not.toContain('stack');
    expect(lines[0]).not.toMatch(/\bat .*\.(ts|js):\d+/);
  });

  it('redacts tokens, secrets and query strings', () => {
    const { logger, lines } = capture();
    logger.info({ req: { method: 'GET', url: '/ath/callback?code=SECRETCODE&state=s', headers: { authorization: 'Bearer TOKENVALUE' } }, body: { client_secret: 'CLIENTSECRET', token: 'ATHTOKEN' } }, 'request');
    expect(lines[0]).not.toMatch(/SECRETCODE|TOKENVALUE|CLIENTSECRET|ATHTOKEN/);
    expect(safeUrl('/ath/proxy/mail/v1?x=1')).toBe('/ath/proxy/mail/v1?[redacted]');
  });
});
