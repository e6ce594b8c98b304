import { createServer, type IncomingMessage, type RequestListener, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { AgentIdentityDocument, DeveloperInfo } from '@athkit/schemas';
import { AthClientError } from '../errors.js';
import { createIdentityDocument, type AgentKey } from '../keys.js';

/**
 * A request listener that answers GET/HEAD on `path` with the identity document, `Cache-Control:
 * max-age=300` (CL-02), and 404/405 otherwise.
 */
export function identityDocumentListener(document: AgentIdentityDocument, path = new URL(document.agent_id).pathname): RequestListener {
  const body = JSON.stringify(document);
  return (req: IncomingMessage, res: ServerResponse) => {
    const reqPath = (req.url ?? '/').split('?')[0];
    if (reqPath !== path) {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
      return;
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD', 'content-type': 'text/plain' }).end('method not allowed\n');
      return;
    }
    res.writeHead(200, {
      'content-type': 'application/json',
      'cache-control': 'max-age=300',
      'content-length': Buffer.byteLength(body),
    });
    res.end(req.method === 'HEAD' ? undefined : body);
  };
}

export interface ServeIdentityOptions {
  key: AgentKey;
  name: string;
  developer: DeveloperInfo;
  capabilities?: string[];
  /**
   * The agent_id to publish. Default: `http://<host>:<port><path>` of this server, which only
   * loopback clients (tests, local development) accept; production agents serve over https.
   */
  agentId?: string;
  /** Default 127.0.0.1. */
  host?: string;
  /** Default 0 (any free port). */
  port?: number;
  /** Default `/.well-known/agent.json`. */
  path?: string;
}

export interface ServedIdentity {
  agentId: string;
  document: AgentIdentityDocument;
  /** The URL this server listens on (equals agentId unless agentId was given). */
  url: string;
  server: Server;
  close(): Promise<void>;
}

function listen(server: Server, port: number, host: string): Promise<AddressInfo> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve(server.address() as AddressInfo);
    });
  });
}

function closeServer(server: Server): Promise<void> {
  return new Promise((resolve) => {
    server.close(() => resolve());
    server.closeAllConnections();
  });
}

/**
 * Serves the agent's identity document with node:http (local agents and tests). The document is
 * built after the port is known, so the default agent_id is exactly the served URL.
 */
export async function serveIdentityDocument(options: ServeIdentityOptions): Promise<ServedIdentity> {
  const host = options.host ?? '127.0.0.1';
  const path = options.path ?? '/.well-known/agent.json';
  let listener: RequestListener = (_req, res) => void res.writeHead(503).end();
  const server = createServer((req, res) => listener(req, res));
  const address = await listen(server, options.port ?? 0, host);
  const hostPart = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  const url = `http://${hostPart}:${address.port}${path}`;
  const agentId = options.agentId ?? url;
  try {
    const document = await createIdentityDocument({
      agentId,
      name: options.name,
      developer: options.developer,
      key: options.key,
      ...(options.capabilities ? { capabilities: options.capabilities } : {}),
    });
    listener = identityDocumentListener(document, path);
    return { agentId, document, url, server, close: () => closeServer(server) };
  } catch (err) {
    await closeServer(server);
    throw err;
  }
}

export interface RedirectListener {
  /** The redirect URI to register and pass to authorize. */
  redirectUri: string;
  /** Resolves with the full URL the browser was redirected to. */
  result: Promise<URL>;
  close(): Promise<void>;
}

const PAGE = (title: string, text: string): string =>
  `<!doctype html><html><head><meta charset="utf-8"><title>${title}</title></head><body><h1>${title}</h1><p>${text}</p></body></html>`;

/**
 * Waits for the user's browser to come back to a loopback redirect URI such as
 * `http://127.0.0.1:8765/callback` (register it first: CL-07, C-051). The first GET on that path
 * that carries `state` resolves `result`; the page tells the user to return to the agent.
 */
export async function listenForRedirect(
  redirectUri: string,
  options: { timeoutMs?: number; signal?: AbortSignal } = {},
): Promise<RedirectListener> {
  const target = new URL(redirectUri);
  if (target.protocol !== 'http:' || !['127.0.0.1', 'localhost', '[::1]'].includes(target.hostname)) {
    throw new AthClientError('invalid_argument', `a local redirect listener needs an http loopback URI, got ${redirectUri}`);
  }
  let resolveResult!: (url: URL) => void;
  let rejectResult!: (err: unknown) => void;
  const result = new Promise<URL>((resolve, reject) => {
    resolveResult = resolve;
    rejectResult = reject;
  });
  result.catch(() => undefined);
  const server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', `${target.protocol}//${target.host}`);
    if (req.method !== 'GET' || url.pathname !== target.pathname || !url.searchParams.has('state')) {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
      return;
    }
    const denied = url.searchParams.get('error');
    res
      .writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store', 'referrer-policy': 'no-referrer' })
      .end(denied ? PAGE('Authorization refused', 'You can close this window.') : PAGE('Authorization complete', 'You can close this window and return to the agent.'));
    resolveResult(url);
  });
  const port = target.port === '' ? 80 : Number(target.port);
  await listen(server, port, target.hostname.replace(/^\[|\]$/g, ''));
  const timer = options.timeoutMs
    ? setTimeout(() => rejectResult(new AthClientError('wait_timeout', 'the browser did not come back to the redirect URI in time')), options.timeoutMs)
    : undefined;
  timer?.unref?.();
  const onAbort = (): void => rejectResult(new AthClientError('aborted', 'aborted'));
  options.signal?.addEventListener('abort', onAbort, { once: true });
  const close = async (): Promise<void> => {
    if (timer) clearTimeout(timer);
    options.signal?.removeEventListener('abort', onAbort);
    await closeServer(server);
  };
  return { redirectUri: target.href, result, close };
}
