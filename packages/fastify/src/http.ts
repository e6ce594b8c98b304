import { AthError, errorHeaders, loggableError, toAthError, type AccessRequest } from '@athkit/core';
import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify';

/** Sent on every ATH response (C-212): 180 days. */
export const HSTS = 'max-age=15552000';

/** Headers every ATH endpoint answers with: HSTS, no sniffing, never cached (C-057, C-142). */
export function athHeaders(reply: FastifyReply, cache = 'no-store'): void {
  reply.header('strict-transport-security', HSTS);
  reply.header('x-content-type-options', 'nosniff');
  reply.header('cache-control', cache);
  if (cache === 'no-store') reply.header('pragma', 'no-cache');
}

/** Maps fastify's own request errors (body parsing, limits) onto ATH errors; never echoes parser text. */
export function fromFastifyError(err: FastifyError): AthError {
  switch (err.code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return new AthError('PAYLOAD_TOO_LARGE', 'Request body is too large');
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return new AthError('INVALID_REQUEST', 'Unsupported content type; send application/json', {
        reason: 'unsupported_media_type',
      });
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
      return new AthError('INVALID_REQUEST', 'Request body is empty', { reason: 'empty_body' });
    case 'FST_ERR_CTP_INVALID_CONTENT_LENGTH':
      return new AthError('INVALID_REQUEST', 'Content-Length does not match the body', { reason: 'invalid_content_length' });
    default:
      break;
  }
  if (err instanceof AthError) return err;
  const status = typeof err.statusCode === 'number' ? err.statusCode : 500;
  if (status === 413) return new AthError('PAYLOAD_TOO_LARGE', 'Request body is too large');
  if (status >= 400 && status < 500) {
    // JSON syntax errors and secure-json-parse's forbidden __proto__/constructor keys land here.
    return new AthError('INVALID_REQUEST', 'Malformed request body', { reason: 'malformed_body' });
  }
  return toAthError(err);
}

/**
 * Sends an ATHError body (C-200) with its status and extra headers (Allow, Retry-After). The
 * status comes from core (toAthError): an unreachable store is 503 with Retry-After (threats I3),
 * any other unexpected failure a generic 500 (C-204).
 */
export function sendAthError(request: FastifyRequest, reply: FastifyReply, error: unknown): FastifyReply {
  const err = error instanceof AthError ? error : fromFastifyError(error as FastifyError);
  // Type, code and message (and causes) only, under `error` so no `err` serializer of the app's
  // logger (pino's default adds a stack) sees it: no stack reaches the log.
  if (err.status >= 500) request.log.error({ error: loggableError(error) }, 'ATH request failed');
  return replyAthError(reply, err);
}

/** Renders an AthError as the response (status, ATHError body, ATH headers, Allow / Retry-After), without logging. */
export function replyAthError(reply: FastifyReply, err: AthError): FastifyReply {
  athHeaders(reply);
  for (const [k, v] of Object.entries(errorHeaders(err))) reply.header(k, v);
  return reply.code(err.status).type('application/json; charset=utf-8').send(JSON.stringify(err.toJSON()));
}

/** Parses a Cookie header (RFC 6265 §5.4) without any dependency; later duplicates do not override. */
export function parseCookies(header: string | undefined): Map<string, string> {
  const out = new Map<string, string>();
  if (!header) return out;
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    if (eq <= 0) continue;
    const name = part.slice(0, eq).trim();
    let value = part.slice(eq + 1).trim();
    if (value.startsWith('"') && value.endsWith('"') && value.length >= 2) value = value.slice(1, -1);
    if (!out.has(name)) out.set(name, value);
  }
  return out;
}

/** How many times a header occurs in the raw request (Node joins duplicates of unknown headers). */
export function headerCount(request: FastifyRequest, name: string): number {
  const raw = request.raw.rawHeaders;
  let n = 0;
  for (let i = 0; i < raw.length; i += 2) if (raw[i]!.toLowerCase() === name) n++;
  return n;
}

/** The single value of a header, or undefined when absent; null when it was sent more than once. */
export function singleHeader(request: FastifyRequest, name: string): string | undefined | null {
  const count = headerCount(request, name);
  if (count === 0) return undefined;
  if (count > 1) return null;
  const v = request.headers[name];
  return Array.isArray(v) ? null : v;
}

/**
 * What the engine checks for one API call (route guard, gateway proxy). The raw header lines go
 * along (the engine refuses duplicated access headers, threats F9), and the socket address, so the
 * engine enforces a handshake token's IP allow-list (C-270).
 */
export function accessRequest(request: FastifyRequest, providerId: string, requiredScope: string | null): AccessRequest {
  return {
    rawHeaders: request.raw.rawHeaders,
    authorization: request.headers.authorization,
    agentIdHeader: request.headers['x-ath-agent-id'],
    providerId,
    requiredScope,
    clientIp: request.ip,
  };
}

/** HTTP Basic client credentials (RFC 6749 §2.3.1: form-encoded id and secret); null when the header is not Basic. */
export function basicCredentials(authorization: string): { clientId: string; clientSecret: string } | null {
  const m = /^Basic[ ]+([A-Za-z0-9+/]+=*)[ ]*$/i.exec(authorization);
  if (!m) return null;
  const decoded = Buffer.from(m[1]!, 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  if (colon <= 0) return null;
  return { clientId: formDecode(decoded.slice(0, colon)), clientSecret: formDecode(decoded.slice(colon + 1)) };
}

function formDecode(value: string): string {
  try {
    return decodeURIComponent(value.replace(/\+/g, ' '));
  } catch {
    return value;
  }
}

/**
 * Deepest nesting of `[`/`{` in a JSON text, ignoring string contents; stops counting at `limit + 1`.
 * Run before parsing so a hostile body cannot make any later recursive walk blow the stack.
 */
export function jsonDepthExceeds(text: string, limit: number): boolean {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 0x5c) i++;
      else if (c === 0x22) inString = false;
    } else if (c === 0x22) inString = true;
    else if (c === 0x5b || c === 0x7b) {
      if (++depth > limit) return true;
    } else if (c === 0x5d || c === 0x7d) depth--;
  }
  return false;
}

/** Escapes a value for HTML text and double-quoted attributes. */
export function escapeHtml(value: unknown): string {
  return String(value)
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;')
    .replace(/'/g, '&#39;');
}
