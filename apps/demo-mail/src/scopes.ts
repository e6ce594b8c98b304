/** The mail API's scopes, in the order the consent page lists them. */
export const MAIL_SCOPES = ['mail:read', 'mail:send', 'mail:delete'] as const;
export type MailScope = (typeof MAIL_SCOPES)[number];

/** OpenID Connect scopes the authorization server also accepts (granted with the consent, not ticked). */
export const OIDC_SCOPES = ['openid', 'offline_access'] as const;

/**
 * Which scope each API operation needs, as `{ methods, path, scope }` rules relative to the API base
 * (the shape of a gateway scope map). `GET /v1/me` needs a valid token and no particular scope, so it
 * is not listed; a deny-by-default gateway maps it to whichever scope it likes (e.g. `mail:read`).
 */
export const SCOPE_MAP: readonly {
  readonly methods: readonly string[];
  readonly path: string;
  readonly scope: MailScope;
}[] = [
  { methods: ['GET', 'HEAD'], path: '/v1/messages', scope: 'mail:read' },
  { methods: ['GET', 'HEAD'], path: '/v1/messages/{id}', scope: 'mail:read' },
  { methods: ['POST'], path: '/v1/messages/send', scope: 'mail:send' },
  { methods: ['DELETE'], path: '/v1/messages/{id}', scope: 'mail:delete' },
];
