import { lookup as dnsLookup, type LookupAddress } from 'node:dns';
import { Agent, buildConnector, request } from 'undici';
import { AthError } from '../errors.js';
import { attestationFailure } from './failure.js';
import type { DocumentFetcher, FetchedDocument } from './fetcher.js';
import { isForbiddenAddress, isIpLiteral } from './ip.js';

/** Same shape as `dns.lookup(hostname, { all: true }, callback)`; injectable so tests never use real DNS. */
export type LookupAllFunction = (
  hostname: string,
  options: { all: true },
  callback: (err: NodeJS.ErrnoException | null, addresses: LookupAddress[]) => void,
) => void;

export interface SafeFetcherOptions {
  /**
   * Exact `host:port` entries (IPv6 in brackets: `[::1]:8080`) for tests and development. A URL
   * whose host:port is listed may use plain http, and a resolved address whose ip:port is listed
   * may be loopback/private. Other ports on the same host stay blocked (threats 3.0).
   */
  allowInsecure?: readonly string[];
  /** Resolver used for hostnames (default: `dns.lookup`). IP literals never reach it. */
  lookup?: LookupAllFunction;
  /** Body cap in bytes (default 65536); the transfer is aborted as soon as it is exceeded. */
  maxBytes?: number;
  /** DNS resolution + TCP/TLS connect (default 2000 ms). */
  connectTimeoutMs?: number;
  /** Response headers + body, in total (default 5000 ms). */
  readTimeoutMs?: number;
  /** Extra TLS options for the connection (e.g. `ca` for a test certificate authority). */
  tls?: { ca?: string | Buffer | Array<string | Buffer> };
  userAgent?: string;
}

export interface SafeFetcher extends DocumentFetcher {
  isInsecureAllowed(url: URL): boolean;
  /** Closes pooled connections. */
  close(): Promise<void>;
}

const DEFAULT_MAX_BYTES = 65_536;
const DEFAULT_CONNECT_TIMEOUT_MS = 2_000;
const DEFAULT_READ_TIMEOUT_MS = 5_000;

const defaultPort = (protocol: string): string => (protocol === 'https:' ? '443' : '80');

/** Canonical `host:port` key; WHATWG URL parsing canonicalises IPv4 forms, IPv6 text and case. */
function hostPortKey(host: string, port: string): string {
  const literal = host.includes(':') && !host.startsWith('[') ? `[${host}]` : host;
  return `${new URL(`http://${literal}`).hostname}:${port}`;
}

function parseAllowEntry(entry: string): string {
  const colon = entry.lastIndexOf(':');
  const port = entry.slice(colon + 1);
  if (colon <= 0 || !/^[0-9]{1,5}$/.test(port))
    throw new TypeError(`allowInsecure entry must be host:port, got ${entry}`);
  return hostPortKey(entry.slice(0, colon), port);
}

class DeadlineExceeded extends Error {}

/**
 * Creates the production fetcher for agent identity documents: an undici Agent whose connector
 * resolves the host itself, refuses the connection if ANY answer is a forbidden address (threats
 * B2: mixed answers), and dials exactly the address it validated (threats B3: no second
 * resolution for DNS rebinding to exploit). IP literals are checked the same way, before any
 * socket exists (threats B1). No redirects, no cookies, no credentials, a hard body cap.
 */
export function createSafeFetcher(options: SafeFetcherOptions = {}): SafeFetcher {
  const allow = new Set((options.allowInsecure ?? []).map(parseAllowEntry));
  const lookup: LookupAllFunction = options.lookup ?? dnsLookup;
  const maxBytes = options.maxBytes ?? DEFAULT_MAX_BYTES;
  const connectTimeoutMs = options.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS;
  const readTimeoutMs = options.readTimeoutMs ?? DEFAULT_READ_TIMEOUT_MS;
  const userAgent = options.userAgent ?? 'athkit-identity-fetcher/0.1';

  const addressAllowed = (address: string, port: string): boolean =>
    !isForbiddenAddress(address) || allow.has(hostPortKey(address, port));

  const resolveAll = (hostname: string): Promise<LookupAddress[]> =>
    new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new DeadlineExceeded()), connectTimeoutMs);
      try {
        lookup(hostname, { all: true }, (err, addresses) => {
          clearTimeout(timer);
          if (err || !Array.isArray(addresses) || addresses.length === 0) {
            reject(
              attestationFailure('identity_document_unavailable', 'The agent_id host could not be resolved'),
            );
          } else resolve(addresses);
        });
      } catch {
        clearTimeout(timer);
        reject(
          attestationFailure('identity_document_unavailable', 'The agent_id host could not be resolved'),
        );
      }
    });

  /** The one address we will dial, after every answer passed the policy. */
  const pickAddress = async (hostname: string, port: string): Promise<string> => {
    if (isIpLiteral(hostname)) {
      if (addressAllowed(hostname, port)) return hostname;
      throw attestationFailure('ssrf_blocked', 'The agent_id host is a non-public address');
    }
    const addresses = await resolveAll(hostname);
    for (const { address } of addresses) {
      // Deliberately no address in the message: it may be internal and the caller is untrusted.
      if (!addressAllowed(address, port))
        throw attestationFailure('ssrf_blocked', 'The agent_id host resolves to a non-public address');
    }
    return addresses[0]!.address;
  };

  const baseConnect = buildConnector({ timeout: connectTimeoutMs, ...(options.tls ?? {}) });
  const connect: buildConnector.connector = (opts, callback) => {
    const port = opts.port || defaultPort(opts.protocol);
    pickAddress(opts.hostname, port).then(
      (address) =>
        baseConnect(
          {
            ...opts,
            hostname: address,
            // Certificate and SNI stay bound to the name the agent published, not to the pinned IP.
            servername: opts.servername ?? (isIpLiteral(opts.hostname) ? undefined : opts.hostname),
          },
          callback,
        ),
      (err: unknown) => callback(err as Error, null),
    );
  };

  const agent = new Agent({
    connect,
    connections: 4,
    pipelining: 1,
    keepAliveTimeout: 4_000,
    headersTimeout: readTimeoutMs,
    bodyTimeout: readTimeoutMs,
    maxResponseSize: maxBytes,
  });

  const isInsecureAllowed = (url: URL): boolean =>
    url.protocol === 'http:' && allow.has(hostPortKey(url.hostname, url.port || defaultPort(url.protocol)));

  async function fetchDocument(url: URL, signal?: AbortSignal): Promise<FetchedDocument> {
    if (url.protocol !== 'https:' && !isInsecureAllowed(url)) {
      throw attestationFailure('invalid_agent_id', 'agent_id must be an https URL');
    }
    if (url.username !== '' || url.password !== '') {
      throw attestationFailure('invalid_agent_id', 'agent_id must not contain userinfo');
    }
    // Checked again in the connector; failing here avoids even creating a pool for the origin.
    const literalHost = url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname;
    if (isIpLiteral(literalHost) && !addressAllowed(literalHost, url.port || defaultPort(url.protocol))) {
      throw attestationFailure('ssrf_blocked', 'The agent_id host is a non-public address');
    }

    const deadline = new AbortController();
    const timer = setTimeout(() => deadline.abort(new DeadlineExceeded()), connectTimeoutMs + readTimeoutMs);
    const combined = signal ? AbortSignal.any([signal, deadline.signal]) : deadline.signal;
    try {
      const response = await request(url, {
        dispatcher: agent,
        method: 'GET',
        headers: { accept: 'application/json', 'user-agent': userAgent },
        signal: combined,
      });
      const { statusCode, headers, body } = response;
      if (statusCode >= 300 && statusCode < 400) {
        discard(body);
        throw attestationFailure(
          'identity_document_redirect',
          'The identity document URL answered with a redirect; redirects are not followed',
        );
      }
      if (statusCode < 200 || statusCode >= 300) {
        discard(body);
        return { status: statusCode, contentType: null, body: '' };
      }
      const declared = Number(headers['content-length']);
      if (Number.isFinite(declared) && declared > maxBytes) {
        discard(body);
        throw tooLarge(maxBytes);
      }
      const chunks: Buffer[] = [];
      let total = 0;
      for await (const chunk of body) {
        total += (chunk as Buffer).length;
        if (total > maxBytes) {
          discard(body);
          throw tooLarge(maxBytes);
        }
        chunks.push(chunk as Buffer);
      }
      const contentType = headers['content-type'];
      return {
        status: statusCode,
        contentType: typeof contentType === 'string' ? contentType : null,
        body: decodeUtf8(Buffer.concat(chunks, total)),
      };
    } catch (err) {
      throw toFetchFailure(err, deadline.signal);
    } finally {
      clearTimeout(timer);
    }
  }

  return {
    fetch: fetchDocument,
    isInsecureAllowed,
    close: () => agent.destroy(),
  };
}

/** Drops a response body we will not read; undici reports a bare destroy() as an 'error' event. */
function discard(body: { on(event: 'error', listener: () => void): unknown; destroy(): unknown }): void {
  body.on('error', () => {});
  body.destroy();
}

function tooLarge(maxBytes: number): AthError {
  return attestationFailure('identity_document_too_large', `The identity document exceeds ${maxBytes} bytes`);
}

const utf8 = new TextDecoder('utf-8', { fatal: true });
function decodeUtf8(bytes: Uint8Array): string {
  try {
    return utf8.decode(bytes);
  } catch {
    throw attestationFailure('invalid_identity_document', 'The identity document is not valid UTF-8');
  }
}

/** Maps anything thrown during a fetch to an AthError, without leaking addresses from socket errors. */
function toFetchFailure(err: unknown, deadline: AbortSignal): AthError {
  for (let e: unknown = err, depth = 0; e && depth < 5; e = (e as { cause?: unknown }).cause, depth++) {
    if (e instanceof AthError) return e;
  }
  const code = (err as { code?: unknown } | null)?.code;
  if (
    deadline.aborted ||
    err instanceof DeadlineExceeded ||
    code === 'UND_ERR_CONNECT_TIMEOUT' ||
    code === 'UND_ERR_HEADERS_TIMEOUT' ||
    code === 'UND_ERR_BODY_TIMEOUT'
  ) {
    return attestationFailure('identity_document_timeout', 'Fetching the identity document timed out');
  }
  if (code === 'UND_ERR_RES_EXCEEDED_MAX_SIZE') {
    return attestationFailure('identity_document_too_large', 'The identity document is too large');
  }
  return attestationFailure('identity_document_unavailable', 'The identity document could not be fetched');
}
