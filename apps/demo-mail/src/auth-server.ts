import { randomBytes } from 'node:crypto';
import type { FastifyBaseLogger, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { calculateJwkThumbprint, exportJWK, generateKeyPair } from 'jose';
import Provider, {
  errors,
  type Client,
  type ErrorOut,
  type Interaction,
  type KoaContext,
} from 'oidc-provider';
import { MemoryStore } from './adapter.js';
import { consentPage, errorPage, esc, loginPage, page, type HtmlPage } from './html.js';
import { MAIL_SCOPES, OIDC_SCOPES } from './scopes.js';
import { authenticate, findUser } from './users.js';

export interface AuthServerOptions {
  issuer: string;
  /** The mail API's resource indicator (RFC 8707), canonical form (`new URL(x).href`). */
  resource: string;
  clientId: string;
  clientSecret: string;
  clientName: string;
  redirectUris: readonly string[];
  tokenEndpointAuthMethod: 'client_secret_basic' | 'client_secret_post';
  accessTokenTtlSeconds: number;
  refreshTokenTtlSeconds: number;
  logger?: FastifyBaseLogger | undefined;
}

export interface AuthServer {
  provider: Provider;
  store: MemoryStore;
}

const canonical = (value: string): string | undefined => URL.parse(value)?.href;

const isRecord = (value: unknown): value is Record<string, unknown> =>
  typeof value === 'object' && value !== null && !Array.isArray(value);

/** Builds the oidc-provider instance: the authorization server of Example Mail. */
export async function createAuthServer(options: AuthServerOptions): Promise<AuthServer> {
  const { resource } = options;
  const store = new MemoryStore();

  // Ephemeral signing key: tokens do not survive a restart, which suits a demo.
  const { privateKey } = await generateKeyPair('RS256', { extractable: true, modulusLength: 2048 });
  const jwk = await exportJWK(privateKey);
  jwk.kid = await calculateJwkThumbprint(jwk);
  jwk.alg = 'RS256';
  jwk.use = 'sig';

  const resourceServerInfo = {
    scope: MAIL_SCOPES.join(' '),
    audience: resource,
    accessTokenTTL: options.accessTokenTtlSeconds,
    accessTokenFormat: 'jwt',
    jwt: { sign: { alg: 'RS256' } },
  };

  const provider = new Provider(options.issuer, {
    adapter: store.adapterFactory(),
    clients: [
      {
        client_id: options.clientId,
        client_secret: options.clientSecret,
        client_name: options.clientName,
        redirect_uris: [...options.redirectUris],
        grant_types: ['authorization_code', 'refresh_token'],
        response_types: ['code'],
        token_endpoint_auth_method: options.tokenEndpointAuthMethod,
        id_token_signed_response_alg: 'RS256',
      },
    ],
    jwks: { keys: [jwk] },
    cookies: { keys: [randomBytes(32).toString('base64url')] },
    scopes: [...OIDC_SCOPES],
    claims: { openid: ['sub'] },
    responseTypes: ['code'],
    clientAuthMethods: ['client_secret_basic', 'client_secret_post'],
    pkce: { required: () => true },
    interactions: { url: (_ctx: unknown, interaction: { uid: string }) => `/interaction/${interaction.uid}` },
    findAccount: (_ctx: unknown, sub: string) => {
      const user = findUser(sub);
      return user ? { accountId: user.id, claims: () => ({ sub: user.id }) } : undefined;
    },
    features: {
      devInteractions: { enabled: false },
      userinfo: { enabled: false },
      revocation: {
        enabled: true,
        allowedPolicy: (_ctx: unknown, client: Client, token: { clientId?: string }) =>
          token.clientId === client.clientId,
      },
      resourceIndicators: {
        enabled: true,
        // No `resource` parameter means the mail API: the only resource server there is.
        defaultResource: (_ctx: unknown, _client: unknown, oneOf?: string | string[]) => oneOf ?? resource,
        // Tokens from a code or a refresh token are always for the resource that was granted.
        useGrantedResource: () => true,
        getResourceServerInfo: (_ctx: unknown, indicator: string) => {
          if (canonical(indicator) !== resource) throw new errors.InvalidTarget('unknown resource indicator');
          return resourceServerInfo;
        },
      },
    },
    // Refresh tokens for the client whenever it may use them, without needing offline_access (which
    // OpenID Connect would tie to prompt=consent), and not bound to the user's browser session here.
    issueRefreshToken: (_ctx: unknown, client: Client) => client.grantTypeAllowed('refresh_token'),
    expiresWithSession: () => false,
    rotateRefreshToken: true,
    clientBasedCORS: () => false,
    ttl: {
      AccessToken: options.accessTokenTtlSeconds,
      AuthorizationCode: 60,
      IdToken: 3600,
      RefreshToken: options.refreshTokenTtlSeconds,
      Interaction: 600,
      Session: 24 * 3600,
      Grant: options.refreshTokenTtlSeconds,
    },
    renderError: (ctx: KoaContext, out: ErrorOut) => {
      const html = errorPage(
        'Something went wrong',
        `${out.error}: ${out.error_description ?? 'the request could not be processed'}`,
        ctx.status || 400,
      );
      for (const [name, value] of Object.entries(html.headers)) ctx.set(name, value);
      ctx.type = 'html';
      ctx.body = html.body;
    },
  });

  // The mail API's scopes live on the resource server, not in `scopes`; advertise them anyway.
  provider.use(async (ctx, next) => {
    await next();
    if (ctx.path === '/.well-known/openid-configuration' && isRecord(ctx.body)) {
      const listed = Array.isArray(ctx.body['scopes_supported'])
        ? (ctx.body['scopes_supported'] as string[])
        : [];
      ctx.body['scopes_supported'] = [...new Set([...listed, ...MAIL_SCOPES])];
    }
  });

  const log = options.logger;
  if (log) {
    provider.on('server_error', (_ctx, err) => log.error({ err }, 'authorization server error'));
    for (const event of ['authorization.error', 'grant.error', 'revocation.error']) {
      provider.on(event, (_ctx, err) => {
        const e = err as { error?: string; error_description?: string };
        log.info({ event, error: e.error, error_description: e.error_description }, 'oauth error response');
      });
    }
  }

  return { provider, store };
}

// --- login and consent ------------------------------------------------------------------------

type FormBody = URLSearchParams;

function send(reply: FastifyReply, html: HtmlPage): FastifyReply {
  return reply.code(html.status).headers(html.headers).send(html.body);
}

/** No interaction cookie, an expired interaction, or a URL uid that is not the cookie's (stale tab, forged link). */
const EXPIRED = () =>
  errorPage(
    'This sign-in request has expired',
    'Go back to the application that sent you here and start again.',
    400,
  );

/**
 * The login and consent pages (oidc-provider's interaction flow): GET and POST `/interaction/:uid`.
 * Login asks for a username and password; consent lists the requested mail scopes as checkboxes
 * (ticked by default) and grants only the ticked ones, or denies (`error=access_denied`).
 */
export function registerInteractions(
  app: FastifyInstance,
  getProvider: () => Provider,
  options: { redirectUris: readonly string[] },
): void {
  const formTargets = [...new Set(options.redirectUris.map((u) => new URL(u).origin))];

  app.addContentTypeParser(
    'application/x-www-form-urlencoded',
    { parseAs: 'string', bodyLimit: 16 * 1024 },
    (_req, body, done) => {
      done(null, new URLSearchParams(body as string));
    },
  );

  async function load(request: FastifyRequest<{ Params: { uid: string } }>, reply: FastifyReply) {
    const provider = getProvider();
    try {
      const interaction = await provider.interactionDetails(request.raw, reply.raw);
      if (interaction.uid !== request.params.uid) return null;
      return { provider, interaction };
    } catch (err) {
      if (err instanceof errors.SessionNotFound) return null;
      throw err;
    }
  }

  async function clientName(provider: Provider, interaction: Interaction): Promise<string> {
    const clientId = interaction.params.client_id;
    const client = typeof clientId === 'string' ? await provider.Client.find(clientId) : undefined;
    return client?.clientName ?? clientId ?? 'An application';
  }

  function consentChoices(interaction: Interaction): { choices: string[]; fixed: string[] } {
    const { missingOIDCScope = [], missingResourceScopes = {} } = interaction.prompt.details;
    const choices = [...new Set(Object.values(missingResourceScopes).flat())];
    const ordered = [
      ...MAIL_SCOPES.filter((s) => choices.includes(s)),
      ...choices.filter((s) => !MAIL_SCOPES.includes(s as never)),
    ];
    return { choices: ordered, fixed: [...missingOIDCScope] };
  }

  async function render(
    provider: Provider,
    interaction: Interaction,
    extra: { error?: string; username?: string } = {},
  ) {
    const name = await clientName(provider, interaction);
    if (interaction.prompt.name === 'login') {
      return loginPage({ uid: interaction.uid, clientName: name, formTargets, ...extra });
    }
    if (interaction.prompt.name === 'consent') {
      const user = interaction.session ? findUser(interaction.session.accountId) : undefined;
      if (!user) return EXPIRED();
      return consentPage({
        uid: interaction.uid,
        clientName: name,
        user,
        ...consentChoices(interaction),
        formTargets,
        ...(extra.error ? { error: extra.error } : {}),
      });
    }
    return errorPage(
      'Unsupported request',
      `This server cannot handle the "${interaction.prompt.name}" step.`,
      400,
    );
  }

  app.get<{ Params: { uid: string } }>('/interaction/:uid', async (request, reply) => {
    const loaded = await load(request, reply);
    if (!loaded) return send(reply, EXPIRED());
    return send(reply, await render(loaded.provider, loaded.interaction));
  });

  app.post<{ Params: { uid: string }; Body: FormBody }>('/interaction/:uid', async (request, reply) => {
    const loaded = await load(request, reply);
    if (!loaded) return send(reply, EXPIRED());
    const { provider, interaction } = loaded;
    const form = request.body instanceof URLSearchParams ? request.body : new URLSearchParams();
    const finish = async (result: Parameters<Provider['interactionResult']>[2], merge = true) => {
      const returnTo = await provider.interactionResult(request.raw, reply.raw, result, {
        mergeWithLastSubmission: merge,
      });
      return reply.header('cache-control', 'no-store').redirect(returnTo, 303);
    };

    if (form.get('decision') === 'deny') {
      return finish({ error: 'access_denied', error_description: 'the user denied the request' }, false);
    }

    if (interaction.prompt.name === 'login') {
      const username = form.get('username') ?? '';
      const user = authenticate(username, form.get('password') ?? '');
      if (!user)
        return send(
          reply,
          await render(provider, interaction, { error: 'Wrong username or password.', username }),
        );
      return finish({ login: { accountId: user.id, amr: ['pwd'] } }, false);
    }

    if (interaction.prompt.name === 'consent') {
      const accountId = interaction.session?.accountId;
      const clientId = interaction.params.client_id;
      if (!accountId || typeof clientId !== 'string') return send(reply, EXPIRED());
      const ticked = new Set(form.getAll('scope'));
      const {
        missingOIDCScope = [],
        missingOIDCClaims = [],
        missingResourceScopes = {},
      } = interaction.prompt.details;

      const existing = interaction.grantId ? await provider.Grant.find(interaction.grantId) : undefined;
      const grant = existing ?? new provider.Grant({ accountId, clientId });
      let grantedAny = false;
      let requestedAny = false;
      for (const [indicator, scopes] of Object.entries(missingResourceScopes)) {
        const granted = scopes.filter((s) => ticked.has(s));
        const refused = scopes.filter((s) => !ticked.has(s));
        requestedAny ||= scopes.length > 0;
        grantedAny ||= granted.length > 0 || grant.getResourceScope(indicator) !== '';
        if (granted.length) grant.addResourceScope(indicator, granted.join(' '));
        if (refused.length) grant.rejectResourceScope(indicator, refused.join(' '));
      }
      if (requestedAny && !grantedAny) {
        return send(
          reply,
          await render(provider, interaction, { error: 'Tick at least one permission, or choose Deny.' }),
        );
      }
      if (missingOIDCScope.length) grant.addOIDCScope(missingOIDCScope.join(' '));
      if (missingOIDCClaims.length) grant.addOIDCClaims(missingOIDCClaims);
      const grantId = await grant.save();
      return finish({ consent: { grantId } });
    }

    return send(reply, EXPIRED());
  });

  app.get('/', (_request, reply) => {
    const issuer = getProvider().issuer;
    return send(
      reply,
      page(
        'Example Mail accounts',
        `<h1>Example Mail — authorization server</h1>
<p>Issuer <code>${esc(issuer)}</code>. Metadata: <a href="/.well-known/openid-configuration">/.well-known/openid-configuration</a>.</p>
<p class="muted">Applications send you here to sign in and approve their access to your mailbox.</p>`,
      ),
    );
  });
}
