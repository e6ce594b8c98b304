/**
 * Test plumbing: a gateway-like OAuth client. A cookie jar that follows redirects by hand (like a
 * browser would, but visible), a redirect listener that receives the authorization response, and a
 * driver that fills in the login and consent forms.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import * as oauth from 'oauth4webapi';
import type { MailService } from '../src/index.js';

export const CLIENT_ID = 'ath-gateway';
export const CLIENT_SECRET = 'test-gateway-secret-0123456789';
const TIMEOUT = 10_000;

interface Cookie {
  origin: string;
  name: string;
  value: string;
  path: string;
  expires: number;
}

/** A minimal RFC 6265 cookie jar: host-only cookies, path prefix match, Max-Age/Expires. */
export class CookieJar {
  #cookies: Cookie[] = [];

  store(url: URL, setCookies: readonly string[]): void {
    for (const line of setCookies) {
      const [pair = '', ...attrs] = line.split(';').map((s) => s.trim());
      const eq = pair.indexOf('=');
      if (eq <= 0) continue;
      const cookie: Cookie = {
        origin: url.origin,
        name: pair.slice(0, eq),
        value: pair.slice(eq + 1),
        path: '/',
        expires: Infinity,
      };
      const defaultPath = url.pathname.slice(0, url.pathname.lastIndexOf('/')) || '/';
      cookie.path = defaultPath;
      for (const attr of attrs) {
        const [k = '', v = ''] = attr.split('=');
        const key = k.toLowerCase();
        if (key === 'path' && v.startsWith('/')) cookie.path = v;
        else if (key === 'max-age') cookie.expires = Date.now() + Number(v) * 1000;
        else if (key === 'expires' && cookie.expires === Infinity) cookie.expires = Date.parse(v);
      }
      this.#cookies = this.#cookies.filter(
        (c) => !(c.origin === cookie.origin && c.name === cookie.name && c.path === cookie.path),
      );
      if (cookie.expires > Date.now()) this.#cookies.push(cookie);
    }
  }

  header(url: URL): string {
    const now = Date.now();
    return this.#cookies
      .filter((c) => c.origin === url.origin && c.expires > now)
      .filter(
        (c) =>
          url.pathname === c.path || url.pathname.startsWith(c.path.endsWith('/') ? c.path : `${c.path}/`),
      )
      .map((c) => `${c.name}=${c.value}`)
      .join('; ');
  }
}

export interface Page {
  url: URL;
  status: number;
  headers: Headers;
  body: string;
}

/** One request with the jar's cookies; never follows redirects itself. */
export async function send(
  jar: CookieJar,
  url: URL,
  init: { method?: string; form?: URLSearchParams } = {},
): Promise<Page> {
  const cookie = jar.header(url);
  const res = await fetch(url, {
    method: init.method ?? (init.form ? 'POST' : 'GET'),
    redirect: 'manual',
    headers: {
      ...(cookie ? { cookie } : {}),
      ...(init.form ? { 'content-type': 'application/x-www-form-urlencoded' } : {}),
    },
    ...(init.form ? { body: init.form.toString() } : {}),
    signal: AbortSignal.timeout(TIMEOUT),
  });
  jar.store(url, res.headers.getSetCookie());
  return { url, status: res.status, headers: res.headers, body: await res.text() };
}

/** Follows redirects (GET) until a non-redirect answer; at most 10 hops. */
export async function follow(jar: CookieJar, page: Page): Promise<Page> {
  for (let hops = 0; page.status >= 300 && page.status < 400; hops++) {
    if (hops >= 10) throw new Error('too many redirects');
    const location = page.headers.get('location');
    if (!location) throw new Error(`redirect without location from ${page.url.href}`);
    page = await send(jar, new URL(location, page.url));
  }
  return page;
}

/** The form on a page: its absolute action and its field names. */
export function formOf(page: Page): { action: URL; fields: string[]; scopes: string[]; decisions: string[] } {
  const action = /<form method="post" action="([^"]+)">/.exec(page.body)?.[1];
  if (!action) throw new Error(`no form on ${page.url.href} (status ${page.status})`);
  const decode = (s: string) =>
    s
      .replace(/&amp;/g, '&')
      .replace(/&quot;/g, '"')
      .replace(/&#39;/g, "'")
      .replace(/&lt;/g, '<')
      .replace(/&gt;/g, '>');
  return {
    action: new URL(decode(action), page.url),
    fields: [...page.body.matchAll(/<input [^>]*name="([^"]+)"/g)].map((m) => m[1]!),
    scopes: [...page.body.matchAll(/<input type="checkbox" [^>]*name="scope" value="([^"]+)"/g)].map((m) =>
      decode(m[1]!),
    ),
    decisions: [...page.body.matchAll(/<button [^>]*name="decision" value="([^"]+)"/g)].map((m) => m[1]!),
  };
}

/** Receives authorization responses, like the gateway's `/ath/callback`. */
export class RedirectListener {
  readonly received: URL[] = [];
  #server = http.createServer((req, res) => {
    const url = new URL(req.url ?? '/', this.origin);
    if (!url.pathname.endsWith('/ath/callback')) {
      res.statusCode = 404; // e.g. a browser's /favicon.ico
      res.end();
      return;
    }
    this.received.push(url);
    res.setHeader('content-type', 'text/plain; charset=utf-8');
    res.end('callback received');
  });
  origin = '';

  async start(): Promise<this> {
    await new Promise<void>((resolve) => this.#server.listen(0, '127.0.0.1', resolve));
    this.origin = `http://127.0.0.1:${(this.#server.address() as AddressInfo).port}`;
    return this;
  }

  get callback(): string {
    return `${this.origin}/ath/callback`;
  }

  close(): Promise<void> {
    this.#server.closeAllConnections();
    return new Promise((resolve) => this.#server.close(() => resolve()));
  }
}

export interface AuthorizationRequest {
  url: URL;
  state: string;
  verifier: string;
  redirectUri: string;
}

/** Builds an authorization request the way the gateway does: code + PKCE S256 + state + resource. */
export async function authorizationRequest(
  as: oauth.AuthorizationServer,
  svc: MailService,
  redirectUri: string,
  scope: string,
  extra: Record<string, string | null> = {},
): Promise<AuthorizationRequest> {
  const verifier = oauth.generateRandomCodeVerifier();
  const state = oauth.generateRandomState();
  const url = new URL(as.authorization_endpoint!);
  const params: Record<string, string | null> = {
    response_type: 'code',
    client_id: CLIENT_ID,
    redirect_uri: redirectUri,
    scope,
    state,
    code_challenge: await oauth.calculatePKCECodeChallenge(verifier),
    code_challenge_method: 'S256',
    resource: svc.resource,
    ...extra,
  };
  for (const [k, v] of Object.entries(params)) if (v !== null) url.searchParams.set(k, v);
  return { url, state, verifier, redirectUri };
}

export interface Consent {
  username: string;
  password: string;
  /** Scopes to leave ticked; absent: all that are offered. */
  grant?: readonly string[];
  decision?: 'approve' | 'deny';
}

/**
 * Drives the user's side: open the authorization URL, log in, (un)tick scopes, approve or deny.
 * Returns the consent page seen and the authorization response the redirect listener received.
 */
export async function runUserFlow(
  jar: CookieJar,
  listener: RedirectListener,
  url: URL,
  user: Consent,
): Promise<{ callback: URL; consent: Page | null; offered: string[] }> {
  const before = listener.received.length;
  let page = await follow(jar, await send(jar, url));
  let consent: Page | null = null;
  let offered: string[] = [];
  for (let step = 0; step < 4 && listener.received.length === before; step++) {
    const form = formOf(page);
    let body: URLSearchParams;
    if (form.fields.includes('password')) {
      body = new URLSearchParams({ username: user.username, password: user.password, decision: 'login' });
    } else {
      consent = page;
      offered = form.scopes;
      body = new URLSearchParams({ decision: user.decision ?? 'approve' });
      for (const scope of user.grant ?? form.scopes) body.append('scope', scope);
    }
    page = await follow(jar, await send(jar, form.action, { form: body }));
  }
  const callback = listener.received.at(-1);
  if (!callback || listener.received.length === before)
    throw new Error(`flow did not reach the redirect URI; last page ${page.url.href} ${page.status}`);
  return { callback, consent, offered };
}

export const insecure = { [oauth.allowInsecureRequests]: true } as const;

export async function discover(svc: MailService): Promise<oauth.AuthorizationServer> {
  const issuer = new URL(svc.issuer);
  return oauth.processDiscoveryResponse(
    issuer,
    await oauth.discoveryRequest(issuer, { ...insecure, signal: AbortSignal.timeout(TIMEOUT) }),
  );
}

export async function api(
  svc: MailService,
  method: string,
  path: string,
  token: string | null,
  body?: unknown,
): Promise<{ status: number; headers: Headers; json: Record<string, unknown> | null }> {
  const res = await fetch(`${svc.apiBase}${path}`, {
    method,
    headers: {
      ...(token !== null ? { authorization: `Bearer ${token}` } : {}),
      ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
    },
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
    signal: AbortSignal.timeout(TIMEOUT),
  });
  const text = await res.text();
  return {
    status: res.status,
    headers: res.headers,
    json: text ? (JSON.parse(text) as Record<string, unknown>) : null,
  };
}

/** Raw token endpoint call (form-encoded, client_secret_basic unless told otherwise). */
export async function tokenRequest(
  as: oauth.AuthorizationServer,
  params: Record<string, string>,
  auth: { id: string; secret: string; method?: 'basic' | 'post' } = { id: CLIENT_ID, secret: CLIENT_SECRET },
): Promise<{ status: number; json: Record<string, unknown> }> {
  const body = new URLSearchParams(params);
  const headers: Record<string, string> = { 'content-type': 'application/x-www-form-urlencoded' };
  if (auth.method === 'post') {
    body.set('client_id', auth.id);
    body.set('client_secret', auth.secret);
  } else {
    headers['authorization'] =
      `Basic ${Buffer.from(`${encodeURIComponent(auth.id)}:${encodeURIComponent(auth.secret)}`).toString('base64')}`;
  }
  const res = await fetch(as.token_endpoint!, {
    method: 'POST',
    headers,
    body,
    signal: AbortSignal.timeout(TIMEOUT),
  });
  return { status: res.status, json: (await res.json()) as Record<string, unknown> };
}

export function decodeJwt(token: string): {
  header: Record<string, unknown>;
  payload: Record<string, unknown>;
} {
  const [h = '', p = ''] = token.split('.');
  return {
    header: JSON.parse(Buffer.from(h, 'base64url').toString()) as Record<string, unknown>,
    payload: JSON.parse(Buffer.from(p, 'base64url').toString()) as Record<string, unknown>,
  };
}
