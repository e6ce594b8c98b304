import type { ApprovalPolicy, AuditSink, Clock, DefaultPolicyOptions, DocumentFetcher, RandomSource, Store } from '@athkit/core';
import type { FastifyRequest } from 'fastify';
import { z } from 'zod';
import type { AthRateLimits } from './endpoints.js';

/** RFC 6749 §3.3 scope-token, as the ATH schema defines it. */
const SCOPE_TOKEN = /^[\x21\x23-\x5B\x5D-\x7E]+$/;
const HOST_PORT = /^[A-Za-z0-9.\-[\]:]+:[0-9]{1,5}$/;

/** Who the signed-in user of the service is; null when nobody is signed in. */
export type AuthenticateUser = (request: FastifyRequest) => Promise<string | null> | string | null;

/** Options of `app.register(athFastify, options)`. Checked with zod when the plugin is registered. */
export interface AthFastifyOptions {
  /** Public origin of the service, e.g. `https://shop.example` (no path, query or fragment). */
  baseUrl: string;
  /** The service's identity as ath-app.json publishes it. `app_id` is also the ATH provider_id (AMB-21). */
  service: {
    app_id: string;
    name: string;
    /** Base URL of the service's own API: absolute, or a path on `baseUrl` (e.g. `/api`). */
    api_base: string;
    /** Optional developer registration page (a human page, AMB-21). */
    registration_endpoint?: string;
  };
  /** Every scope the service offers agents: `scopes_supported` in ath-app.json. */
  scopes: string[];
  /** App-side approval (Phase A): an ApprovalPolicy function, or options of core's default policy. Default: every agent is held for review. */
  policy?: ApprovalPolicy | DefaultPolicyOptions;
  /** A Store from @athkit/storage, or core's MemoryStore. The plugin does not close it. */
  store: Store;
  /** The signed-in user of the request (your session), or null. */
  authenticateUser: AuthenticateUser;
  /**
   * Where a visitor who is not signed in is sent from the consent page: a path or absolute URL to
   * which `?return_to=<consent URL path>` is added, or a function building the URL from that path.
   */
  loginUrl: string | ((returnTo: string) => string);
  /** Name of the return-to query parameter added to a string `loginUrl` (default `return_to`). */
  returnToParam?: string;
  /** An administrator revoking tokens at POST /ath/revoke with your own credentials (C-187); returns an actor name or null. */
  authenticateAdmin?: AuthenticateUser;
  /** Access token lifetime in seconds, 1…3600 (default 3600). */
  tokenTtlSeconds?: number;
  /** Receives every audit event (e.g. a pino logger). */
  auditSink?: AuditSink;
  /** Identity-document fetching: `allowInsecure: ['127.0.0.1:PORT']` permits plain http to those hosts (tests, dev). */
  identity?: { allowInsecure?: string[]; fetcher?: DocumentFetcher; cacheTtlMs?: number };
  /**
   * Secure browser-binding cookie (default true): `__Host-ath_bind_…; Secure`. Set false only for
   * plain-http development; the cookie is then named `ath_bind_…` without `Secure`.
   */
  cookieSecure?: boolean;
  /**
   * Secret key (≥ 32 bytes) for the browser-binding cookie's digest on each consent session
   * (HMAC-SHA256 instead of SHA-256): write access to the store alone then cannot bind a session to
   * another browser. Give every instance sharing a store the same key.
   */
  bindingKey?: Uint8Array;
  /** Body limit of the ATH endpoints in bytes (default 65536). */
  bodyLimit?: number;
  /**
   * Deny by default under `api_base` (C-158, default true): routes there without `config.ath` and
   * unknown paths or methods there require a valid ATH token and then get 403 SCOPE_NOT_APPROVED.
   * Mark a public route with `config: { ath: false }`.
   */
  denyUnmappedApi?: boolean;
  /**
   * Rate limits counted in the store (so shared by every instance on one database): `perIp` on each
   * ATH endpoint, `perAgent` on guarded API routes. Over the limit → 429 RATE_LIMITED with Retry-After.
   * Default: none.
   */
  rateLimits?: AthRateLimits;
  /** Injected clock and randomness (tests). */
  clock?: Clock;
  random?: RandomSource;
}

export interface ResolvedOptions extends Omit<AthFastifyOptions, 'baseUrl' | 'service'> {
  baseUrl: string;
  service: AthFastifyOptions['service'] & { api_base: string };
  /** Path of api_base on this server, no trailing slash; null when api_base is on another origin or is the root. */
  apiBasePath: string | null;
  returnToParam: string;
  cookieSecure: boolean;
  bodyLimit: number;
  denyUnmappedApi: boolean;
}

const fn = (what: string) =>
  z.custom<(...args: never[]) => unknown>((v) => typeof v === 'function', { message: `must be a function (${what})` });

const absoluteHttpUrl = z.string().refine(
  (v) => {
    try {
      const u = new URL(v);
      return u.protocol === 'https:' || u.protocol === 'http:';
    } catch {
      return false;
    }
  },
  { message: 'must be an absolute http(s) URL', abort: true },
);

const rateLimitRule = z
  .object({ limit: z.number().int().min(1), windowSeconds: z.number().int().min(1).max(86_400), batch: z.number().int().min(1).optional() })
  .strict()
  .refine((r) => r.batch === undefined || r.batch <= r.limit, { path: ['batch'], message: 'must not exceed limit' });

const STORE_METHODS = ['createAgent', 'getAgent', 'createSession', 'updateSession', 'createToken', 'getToken', 'watchRevocations'] as const;

const optionsSchema = z
  .object({
    baseUrl: absoluteHttpUrl.refine(
      (v) => {
        if (!URL.canParse(v)) return true; // reported by the first check
        const u = new URL(v);
        return (u.pathname === '/' || u.pathname === '') && !u.search && !u.hash && !v.includes('#');
      },
      { message: 'must be an origin only (no path, query or fragment)' },
    ),
    service: z
      .object({
        app_id: z.string().min(1).regex(SCOPE_TOKEN, 'must not contain spaces, quotes or backslashes'),
        name: z.string().min(1),
        api_base: z.string().min(1),
        registration_endpoint: absoluteHttpUrl.optional(),
      })
      .strict(),
    scopes: z.array(z.string().regex(SCOPE_TOKEN, 'each scope must be an RFC 6749 scope-token')).min(1),
    policy: z
      .union([
        fn('ApprovalPolicy'),
        z
          .object({
            autoApprove: z.union([z.literal(true), z.array(z.string())]).optional(),
            deny: z.array(z.string()).optional(),
            denyReason: z.string().optional(),
          })
          .strict(),
      ])
      .optional(),
    store: z.custom<Store>(
      (v) =>
        typeof v === 'object' &&
        v !== null &&
        STORE_METHODS.every((m) => typeof (v as Record<string, unknown>)[m] === 'function'),
      { message: 'must be a Store (from @athkit/storage, or MemoryStore from @athkit/core)' },
    ),
    authenticateUser: fn('(request) => Promise<string | null>'),
    loginUrl: z.union([z.string().min(1), fn('(returnTo) => string')]),
    returnToParam: z.string().min(1).optional(),
    authenticateAdmin: fn('(request) => Promise<string | null>').optional(),
    tokenTtlSeconds: z.number().int().min(1).max(3600).optional(),
    auditSink: fn('(event) => void').optional(),
    identity: z
      .object({
        allowInsecure: z.array(z.string().regex(HOST_PORT, 'must be host:port')).optional(),
        fetcher: z.custom<DocumentFetcher>((v) => typeof v === 'object' && v !== null, { message: 'must be a DocumentFetcher' }).optional(),
        cacheTtlMs: z.number().int().min(0).optional(),
      })
      .strict()
      .optional(),
    cookieSecure: z.boolean().optional(),
    bindingKey: z
      .custom<Uint8Array>((v) => v instanceof Uint8Array && v.byteLength >= 32, { message: 'must be a Uint8Array of at least 32 bytes' })
      .optional(),
    bodyLimit: z.number().int().min(1024).max(10 * 1024 * 1024).optional(),
    denyUnmappedApi: z.boolean().optional(),
    rateLimits: z
      .object({ perIp: rateLimitRule.optional(), perAgent: rateLimitRule.optional() })
      .strict()
      .optional(),
    clock: z.custom<Clock>((v) => typeof v === 'object' && v !== null && typeof (v as Clock).now === 'function', {
      message: 'must be a Clock ({ now(): number })',
    }).optional(),
    random: z.custom<RandomSource>((v) => typeof v === 'object' && v !== null, { message: 'must be a RandomSource' }).optional(),
  })
  .strict();

/** Thrown at register time when an option is missing or wrong; the message names every bad key. */
export class AthFastifyOptionsError extends Error {
  override readonly name = 'AthFastifyOptionsError';
  constructor(readonly issues: readonly { path: string; message: string }[]) {
    super(`@athkit/fastify: invalid options:\n${issues.map((i) => `  - ${i.path || '(root)'}: ${i.message}`).join('\n')}`);
  }
}

export function resolveOptions(input: unknown): ResolvedOptions {
  const parsed = optionsSchema.safeParse(input);
  if (!parsed.success) {
    throw new AthFastifyOptionsError(
      parsed.error.issues.map((i) => ({
        path: i.path.map(String).join('.'),
        message:
          i.code === 'unrecognized_keys' ? `unknown option(s) ${i.keys.map((k) => `"${k}"`).join(', ')}` : i.message,
      })),
    );
  }
  const o = input as AthFastifyOptions;
  const baseUrl = new URL(o.baseUrl).origin;
  let apiBase: URL;
  try {
    apiBase = new URL(o.service.api_base, baseUrl + '/');
  } catch {
    throw new AthFastifyOptionsError([{ path: 'service.api_base', message: 'must be an absolute URL or a path' }]);
  }
  if (apiBase.search || apiBase.hash || (apiBase.protocol !== 'https:' && apiBase.protocol !== 'http:')) {
    throw new AthFastifyOptionsError([{ path: 'service.api_base', message: 'must be an http(s) URL without query or fragment' }]);
  }
  const path = apiBase.pathname.replace(/\/+$/, '');
  const apiBasePath = apiBase.origin === baseUrl && path !== '' && !path.startsWith('/ath') ? path : null;
  return {
    ...o,
    baseUrl,
    service: { ...o.service, api_base: apiBase.toString().replace(/\/+$/, '') },
    apiBasePath,
    returnToParam: o.returnToParam ?? 'return_to',
    cookieSecure: o.cookieSecure ?? true,
    bodyLimit: o.bodyLimit ?? 65_536,
    denyUnmappedApi: o.denyUnmappedApi ?? true,
  };
}
