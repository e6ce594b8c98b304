/**
 * Example Mail, for real on 127.0.0.1: the test plays the gateway (a confidential OAuth client with
 * PKCE), a user's browser (cookie jar, manual redirects) and an API caller.
 */
import * as oauth from 'oauth4webapi';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createMailService, DEMO_USERS, MAIL_SCOPES, SCOPE_MAP, type MailService } from '../src/index.js';
import {
  api,
  authorizationRequest,
  CLIENT_ID,
  CLIENT_SECRET,
  CookieJar,
  decodeJwt,
  discover,
  follow,
  formOf,
  insecure,
  RedirectListener,
  runUserFlow,
  send,
  tokenRequest,
} from './helpers.js';

const ALL = MAIL_SCOPES.join(' ');
const client: oauth.Client = { client_id: CLIENT_ID };
const clientAuth = oauth.ClientSecretBasic(CLIENT_SECRET);

let listener: RedirectListener;
let svc: MailService;
let as: oauth.AuthorizationServer;

beforeAll(async () => {
  listener = await new RedirectListener().start();
  svc = await createMailService({
    gatewayRedirectUris: [listener.callback, `${listener.origin}/second/ath/callback`],
    clientId: CLIENT_ID,
    clientSecret: CLIENT_SECRET,
  });
  as = await discover(svc);
});

afterAll(async () => {
  await svc?.close();
  await listener?.close();
});

/** The whole gateway dance: authorize, user logs in and consents, code → tokens (oauth4webapi). */
async function connect(
  username: string,
  options: {
    scope?: string;
    grant?: string[];
    service?: MailService;
    server?: oauth.AuthorizationServer;
  } = {},
): Promise<oauth.TokenEndpointResponse> {
  const service = options.service ?? svc;
  const server = options.server ?? as;
  const req = await authorizationRequest(server, service, listener.callback, options.scope ?? ALL);
  const { callback } = await runUserFlow(new CookieJar(), listener, req.url, {
    username,
    password: `${username}-password`,
    ...(options.grant ? { grant: options.grant } : {}),
  });
  const params = oauth.validateAuthResponse(server, client, callback, req.state);
  const response = await oauth.authorizationCodeGrantRequest(
    server,
    client,
    clientAuth,
    params,
    req.redirectUri,
    req.verifier,
    {
      ...insecure,
      additionalParameters: { resource: service.resource },
    },
  );
  return oauth.processAuthorizationCodeResponse(server, client, response);
}

describe('authorization server metadata', () => {
  it('publishes discovery with S256-only PKCE, RFC 9207 iss, the mail scopes and public keys only', async () => {
    expect(svc.issuer).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect(svc.apiBase).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect(svc.resource).toBe(`${svc.apiBase}/`);
    expect(as.issuer).toBe(svc.issuer);
    expect(as.code_challenge_methods_supported).toEqual(['S256']);
    expect(as.authorization_response_iss_parameter_supported).toBe(true);
    expect(as.scopes_supported).toEqual(
      expect.arrayContaining(['openid', 'mail:read', 'mail:send', 'mail:delete']),
    );
    expect(as.grant_types_supported).toEqual(expect.arrayContaining(['authorization_code', 'refresh_token']));
    expect(as.token_endpoint_auth_methods_supported).toEqual(['client_secret_basic', 'client_secret_post']);
    const jwks = (await (await fetch(as.jwks_uri!)).json()) as { keys: Record<string, unknown>[] };
    expect(jwks.keys.length).toBeGreaterThan(0);
    for (const key of jwks.keys)
      for (const priv of ['d', 'p', 'q', 'dp', 'dq', 'qi']) expect(key).not.toHaveProperty(priv);
  });

  it('exports a scope map for the gateway and public demo users', () => {
    expect(SCOPE_MAP).toContainEqual({ methods: ['POST'], path: '/v1/messages/send', scope: 'mail:send' });
    expect(DEMO_USERS.map((u) => u.username)).toEqual(['alice', 'bob']);
    expect(JSON.stringify(DEMO_USERS)).not.toContain('password');
  });
});

describe('authorization code + PKCE, login and consent', () => {
  it('full consent: JWT access token for the mail API, refresh token, working API calls', async () => {
    const jar = new CookieJar();
    const req = await authorizationRequest(as, svc, listener.callback, ALL);
    const { callback, consent, offered } = await runUserFlow(jar, listener, req.url, {
      username: 'alice',
      password: 'alice-password',
    });
    expect(offered).toEqual(['mail:read', 'mail:send', 'mail:delete']);
    expect(consent?.body).toContain('alice@example.mail');
    expect(formOf(consent!).decisions).toEqual(['approve', 'deny']);
    expect(callback.pathname).toBe('/ath/callback');
    expect(callback.searchParams.get('iss')).toBe(svc.issuer); // RFC 9207

    const params = oauth.validateAuthResponse(as, client, callback, req.state);
    const response = await oauth.authorizationCodeGrantRequest(
      as,
      client,
      clientAuth,
      params,
      req.redirectUri,
      req.verifier,
      {
        ...insecure,
        additionalParameters: { resource: svc.resource },
      },
    );
    const tokens = await oauth.processAuthorizationCodeResponse(as, client, response);
    expect(tokens.token_type.toLowerCase()).toBe('bearer');
    expect(tokens.scope?.split(' ').sort()).toEqual([...MAIL_SCOPES].sort());
    expect(tokens.refresh_token).toBeTruthy();
    expect(tokens.expires_in).toBeGreaterThan(0);

    const { header, payload } = decodeJwt(tokens.access_token);
    expect(header['typ']).toBe('at+jwt');
    expect(header['alg']).toBe('RS256');
    expect(payload).toMatchObject({ iss: svc.issuer, aud: svc.resource, sub: 'alice', client_id: CLIENT_ID });
    expect(String(payload['scope']).split(' ').sort()).toEqual([...MAIL_SCOPES].sort());

    const me = await api(svc, 'GET', '/v1/me', tokens.access_token);
    expect(me.status).toBe(200);
    expect(me.json).toMatchObject({ id: 'alice', username: 'alice', email: 'alice@example.mail' });
    expect(JSON.stringify(me.json)).not.toContain(tokens.access_token);

    const list = await api(svc, 'GET', '/v1/messages', tokens.access_token);
    expect(list.status).toBe(200);
    const messages = list.json?.['messages'] as { id: string; to: string; folder: string }[];
    expect(messages.length).toBeGreaterThanOrEqual(3);
    expect(messages.every((m) => m.folder === 'sent' || m.to === 'alice@example.mail')).toBe(true);
    const inbox = await api(svc, 'GET', '/v1/messages?folder=inbox&limit=2', tokens.access_token);
    expect(inbox.json?.['messages']).toHaveLength(2);

    const first = messages[0]!;
    const one = await api(svc, 'GET', `/v1/messages/${first.id}`, tokens.access_token);
    expect(one.status).toBe(200);
    expect(one.json).toMatchObject({ id: first.id });
    expect(typeof one.json?.['body']).toBe('string');

    const sent = await api(svc, 'POST', '/v1/messages/send', tokens.access_token, {
      to: 'bob@example.mail',
      subject: 'Hi Bob',
      body: 'From the test.',
    });
    expect(sent.status).toBe(201);
    expect(sent.json).toMatchObject({
      folder: 'sent',
      from: 'alice@example.mail',
      to: 'bob@example.mail',
      subject: 'Hi Bob',
    });
    const bad = await api(svc, 'POST', '/v1/messages/send', tokens.access_token, {
      to: 'not an address',
      subject: 'x',
      body: 'y',
    });
    expect(bad.status).toBe(400);

    const del = await api(svc, 'DELETE', `/v1/messages/${first.id}`, tokens.access_token);
    expect(del.status).toBe(204);
    expect((await api(svc, 'GET', `/v1/messages/${first.id}`, tokens.access_token)).status).toBe(404);
    expect((await api(svc, 'DELETE', `/v1/messages/${first.id}`, tokens.access_token)).status).toBe(404);
  });

  it('partial consent: only mail:read ticked → token has mail:read; send and delete are 403 insufficient_scope', async () => {
    const tokens = await connect('alice', { grant: ['mail:read'] });
    expect(tokens.scope).toBe('mail:read');
    expect(decodeJwt(tokens.access_token).payload['scope']).toBe('mail:read');

    expect((await api(svc, 'GET', '/v1/messages', tokens.access_token)).status).toBe(200);
    expect((await api(svc, 'GET', '/v1/me', tokens.access_token)).status).toBe(200);
    const send403 = await api(svc, 'POST', '/v1/messages/send', tokens.access_token, {
      to: 'bob@example.mail',
      subject: 's',
      body: 'b',
    });
    expect(send403.status).toBe(403);
    expect(send403.json).toMatchObject({ error: 'insufficient_scope', scope: 'mail:send' });
    const challenge = send403.headers.get('www-authenticate') ?? '';
    expect(challenge).toMatch(/^Bearer /);
    expect(challenge).toContain('error="insufficient_scope"');
    expect(challenge).toContain('scope="mail:send"');
    const del403 = await api(svc, 'DELETE', '/v1/messages/msg_whatever', tokens.access_token);
    expect(del403.status).toBe(403);
    expect(del403.headers.get('www-authenticate')).toContain('scope="mail:delete"');
  });

  it('consent only offers what was asked for, and approving with nothing ticked is refused', async () => {
    const jar = new CookieJar();
    const req = await authorizationRequest(as, svc, listener.callback, 'mail:read mail:send');
    let page = await follow(jar, await send(jar, req.url));
    page = await follow(
      jar,
      await send(jar, formOf(page).action, {
        form: new URLSearchParams({ username: 'bob', password: 'bob-password' }),
      }),
    );
    expect(formOf(page).scopes).toEqual(['mail:read', 'mail:send']);
    const before = listener.received.length;
    page = await follow(
      jar,
      await send(jar, formOf(page).action, { form: new URLSearchParams({ decision: 'approve' }) }),
    );
    expect(listener.received.length).toBe(before);
    expect(page.body).toContain('Tick at least one permission');
    // A scope that was not requested cannot be smuggled in through the form.
    page = await follow(
      jar,
      await send(jar, formOf(page).action, {
        form: new URLSearchParams([
          ['scope', 'mail:send'],
          ['scope', 'mail:delete'],
          ['decision', 'approve'],
        ]),
      }),
    );
    const callback = listener.received.at(-1)!;
    const params = oauth.validateAuthResponse(as, client, callback, req.state);
    const tokens = await oauth.processAuthorizationCodeResponse(
      as,
      client,
      await oauth.authorizationCodeGrantRequest(
        as,
        client,
        clientAuth,
        params,
        req.redirectUri,
        req.verifier,
        insecure,
      ),
    );
    expect(tokens.scope).toBe('mail:send');
    expect(decodeJwt(tokens.access_token).payload['aud']).toBe(svc.resource); // default resource
  });

  it('denial on the consent page → error=access_denied at the redirect URI, with state and iss', async () => {
    const req = await authorizationRequest(as, svc, listener.callback, ALL);
    const { callback } = await runUserFlow(new CookieJar(), listener, req.url, {
      username: 'bob',
      password: 'bob-password',
      decision: 'deny',
    });
    expect(callback.searchParams.get('error')).toBe('access_denied');
    expect(callback.searchParams.get('state')).toBe(req.state);
    expect(callback.searchParams.get('iss')).toBe(svc.issuer);
    expect(callback.searchParams.has('code')).toBe(false);
    expect(() => oauth.validateAuthResponse(as, client, callback, req.state)).toThrow();
  });

  it('cancel on the login page → error=access_denied too', async () => {
    const jar = new CookieJar();
    const req = await authorizationRequest(as, svc, listener.callback, ALL);
    const login = await follow(jar, await send(jar, req.url));
    await follow(
      jar,
      await send(jar, formOf(login).action, { form: new URLSearchParams({ decision: 'deny' }) }),
    );
    const callback = listener.received.at(-1)!;
    expect(callback.searchParams.get('error')).toBe('access_denied');
    expect(callback.searchParams.get('state')).toBe(req.state);
  });

  it('login page: wrong password re-renders with an error, values escaped, strict CSP allowing the redirect origin', async () => {
    const jar = new CookieJar();
    const req = await authorizationRequest(as, svc, listener.callback, ALL);
    const login = await follow(jar, await send(jar, req.url));
    expect(login.status).toBe(200);
    const form = formOf(login);
    expect(form.fields).toEqual(['username', 'password']);
    expect(form.action.origin).toBe(svc.issuer);
    const csp = login.headers.get('content-security-policy') ?? '';
    expect(csp).toContain("default-src 'none'");
    expect(csp).toContain("frame-ancestors 'none'");
    expect(csp).toMatch(/form-action 'self' http:\/\/127\.0\.0\.1:\d+/);
    expect(csp).toContain(listener.origin);
    expect(csp).not.toContain('unsafe-inline');
    expect(login.headers.get('cache-control')).toBe('no-store');

    const evil = '"><script>alert(1)</script>';
    const again = await follow(
      jar,
      await send(jar, form.action, { form: new URLSearchParams({ username: evil, password: 'nope' }) }),
    );
    expect(again.status).toBe(200);
    expect(again.body).toContain('Wrong username or password');
    expect(again.body).not.toContain('<script>');
    expect(again.body).toContain('&quot;&gt;&lt;script&gt;alert(1)&lt;/script&gt;');
    const wrong = await follow(
      jar,
      await send(jar, form.action, {
        form: new URLSearchParams({ username: 'alice', password: 'bob-password' }),
      }),
    );
    expect(wrong.body).toContain('Wrong username or password');
  });

  it('a second registered redirect URI works; an unregistered one is refused without redirecting', async () => {
    const second = `${listener.origin}/second/ath/callback`;
    const req = await authorizationRequest(as, svc, second, 'mail:read');
    const { callback } = await runUserFlow(new CookieJar(), listener, req.url, {
      username: 'alice',
      password: 'alice-password',
    });
    expect(callback.pathname).toBe('/second/ath/callback');
    expect(callback.searchParams.get('code')).toBeTruthy();

    const before = listener.received.length;
    const bad = await authorizationRequest(as, svc, `${listener.origin}/evil`, 'mail:read');
    const page = await follow(new CookieJar(), await send(new CookieJar(), bad.url));
    expect(page.status).toBe(400);
    expect(page.body).toContain('redirect_uri');
    expect(listener.received.length).toBe(before);
  });

  it('PKCE is required and S256 only: no challenge or plain → invalid_request; wrong verifier → invalid_grant', async () => {
    for (const extra of [
      { code_challenge: null, code_challenge_method: null },
      { code_challenge_method: 'plain', code_challenge: 'a'.repeat(43) },
    ]) {
      const req = await authorizationRequest(as, svc, listener.callback, ALL, extra);
      const before = listener.received.length;
      const page = await follow(new CookieJar(), await send(new CookieJar(), req.url));
      expect(page.status).toBe(200);
      expect(listener.received.length).toBe(before + 1);
      const callback = listener.received.at(-1)!;
      expect(callback.searchParams.get('error')).toBe('invalid_request');
      expect(callback.searchParams.has('code')).toBe(false);
      expect(callback.searchParams.get('iss')).toBe(svc.issuer);
    }

    const req = await authorizationRequest(as, svc, listener.callback, ALL);
    const { callback } = await runUserFlow(new CookieJar(), listener, req.url, {
      username: 'alice',
      password: 'alice-password',
    });
    const code = callback.searchParams.get('code')!;
    const noVerifier = await tokenRequest(as, {
      grant_type: 'authorization_code',
      code,
      redirect_uri: listener.callback,
    });
    expect(noVerifier.status).toBe(400);
    expect(noVerifier.json['error']).toBe('invalid_grant');
    // The failed attempt consumed nothing useful: the code is single-use and now dead either way.
    const wrong = await tokenRequest(as, {
      grant_type: 'authorization_code',
      code,
      redirect_uri: listener.callback,
      code_verifier: oauth.generateRandomCodeVerifier(),
    });
    expect(wrong.json['error']).toBe('invalid_grant');
  });

  it('token endpoint: client_secret_post works too; codes are single-use; a wrong client secret is invalid_client', async () => {
    const req = await authorizationRequest(as, svc, listener.callback, 'mail:read');
    const { callback } = await runUserFlow(new CookieJar(), listener, req.url, {
      username: 'bob',
      password: 'bob-password',
    });
    const code = callback.searchParams.get('code')!;
    const form = {
      grant_type: 'authorization_code',
      code,
      redirect_uri: listener.callback,
      code_verifier: req.verifier,
      resource: svc.resource,
    };
    const badSecret = await tokenRequest(as, form, { id: CLIENT_ID, secret: 'wrong-secret' });
    expect(badSecret.status).toBe(401);
    expect(badSecret.json['error']).toBe('invalid_client');
    const ok = await tokenRequest(as, form, { id: CLIENT_ID, secret: CLIENT_SECRET, method: 'post' });
    expect(ok.status).toBe(200);
    expect(ok.json['scope']).toBe('mail:read');
    const replay = await tokenRequest(as, form);
    expect(replay.json['error']).toBe('invalid_grant');
  });

  it('an unknown resource indicator is invalid_target', async () => {
    const req = await authorizationRequest(as, svc, listener.callback, ALL, {
      resource: 'https://other.example/',
    });
    await follow(new CookieJar(), await send(new CookieJar(), req.url));
    expect(listener.received.at(-1)!.searchParams.get('error')).toBe('invalid_target');
  });

  it('interaction pages need the interaction cookie (no cross-site or stale posts)', async () => {
    const jar = new CookieJar();
    const req = await authorizationRequest(as, svc, listener.callback, ALL);
    const login = await follow(jar, await send(jar, req.url));
    const action = formOf(login).action;
    const stranger = await send(new CookieJar(), action, {
      form: new URLSearchParams({ username: 'alice', password: 'alice-password' }),
    });
    expect(stranger.status).toBe(400);
    expect(stranger.body).toContain('expired');
    const otherUid = new URL(action.href.replace(/[^/]+$/, 'someone-elses-uid'));
    const mismatch = await send(jar, otherUid);
    expect(mismatch.status).toBe(400);
  });
});

describe('mail API access control', () => {
  let aliceToken: string;
  let bobToken: string;

  beforeAll(async () => {
    aliceToken = (await connect('alice')).access_token;
    bobToken = (await connect('bob')).access_token;
  });

  it("user isolation: alice's token never reads, lists or deletes bob's mail", async () => {
    const bobList = await api(svc, 'GET', '/v1/messages', bobToken);
    const bobIds = (bobList.json?.['messages'] as { id: string }[]).map((m) => m.id);
    expect(bobIds.length).toBeGreaterThan(0);
    const aliceList = await api(svc, 'GET', '/v1/messages', aliceToken);
    const aliceIds = (aliceList.json?.['messages'] as { id: string }[]).map((m) => m.id);
    expect(aliceIds.filter((id) => bobIds.includes(id))).toEqual([]);

    for (const id of bobIds) {
      const read = await api(svc, 'GET', `/v1/messages/${id}`, aliceToken);
      expect(read.status).toBe(404);
      expect(JSON.stringify(read.json)).not.toContain('bob@');
      expect((await api(svc, 'DELETE', `/v1/messages/${id}`, aliceToken)).status).toBe(404);
      expect((await api(svc, 'GET', `/v1/messages/${id}`, bobToken)).status).toBe(200);
    }
    expect((await api(svc, 'GET', '/v1/me', bobToken)).json).toMatchObject({ username: 'bob' });
  });

  it('mail sent by alice lands in her sent folder and in bob’s inbox, as separate messages', async () => {
    const subject = `isolation ${Date.now()}`;
    const sent = await api(svc, 'POST', '/v1/messages/send', aliceToken, {
      to: 'bob@example.mail',
      subject,
      body: 'hello',
    });
    expect(sent.status).toBe(201);
    const inbox = (await api(svc, 'GET', '/v1/messages?folder=inbox', bobToken)).json?.['messages'] as {
      id: string;
      subject: string;
    }[];
    const delivered = inbox.find((m) => m.subject === subject)!;
    expect(delivered).toBeTruthy();
    expect(delivered.id).not.toBe(sent.json?.['id']);
    expect((await api(svc, 'DELETE', `/v1/messages/${delivered.id}`, bobToken)).status).toBe(204);
    expect((await api(svc, 'GET', `/v1/messages/${String(sent.json?.['id'])}`, aliceToken)).status).toBe(200);
  });

  it('no token → 401 with a bare Bearer challenge; bad tokens → 401 invalid_token; nothing echoed', async () => {
    const none = await api(svc, 'GET', '/v1/messages', null);
    expect(none.status).toBe(401);
    expect(none.headers.get('www-authenticate')).toBe('Bearer realm="example-mail"');

    const [h, p, s] = aliceToken.split('.') as [string, string, string];
    const payload = JSON.parse(Buffer.from(p, 'base64url').toString()) as Record<string, unknown>;
    const forged = `${h}.${Buffer.from(JSON.stringify({ ...payload, sub: 'bob' })).toString('base64url')}.${s}`;
    const idToken = (await connect('alice', { scope: `openid ${ALL}` })).id_token!;
    expect(idToken).toBeTruthy();
    for (const bad of ['garbage', forged, `${h}.${p}.${s.slice(0, -4)}AAAA`, idToken]) {
      const res = await api(svc, 'GET', '/v1/me', bad);
      expect(res.status).toBe(401);
      expect(res.headers.get('www-authenticate')).toContain('error="invalid_token"');
      expect(res.json?.['error']).toBe('invalid_token');
      expect(JSON.stringify(res.json)).not.toContain(bad);
      expect(res.headers.get('www-authenticate')).not.toContain(bad);
    }

    const malformed = await fetch(`${svc.apiBase}/v1/me`, {
      headers: { authorization: 'Basic YWxpY2U6YWxpY2UtcGFzc3dvcmQ=' },
    });
    expect(malformed.status).toBe(401);
    expect(malformed.headers.get('www-authenticate')).toContain('error="invalid_token"');
  });

  it('a token from another Example Mail instance (other keys, issuer, audience) is rejected', async () => {
    const other = await createMailService({
      gatewayRedirectUris: [listener.callback],
      clientId: CLIENT_ID,
      clientSecret: CLIENT_SECRET,
    });
    try {
      const otherAs = await discover(other);
      const foreign = (await connect('alice', { service: other, server: otherAs })).access_token;
      expect((await api(other, 'GET', '/v1/me', foreign)).status).toBe(200);
      const res = await api(svc, 'GET', '/v1/me', foreign);
      expect(res.status).toBe(401);
      expect(res.json?.['error']).toBe('invalid_token');
    } finally {
      await other.close();
    }
  });
});

describe('short-lived access tokens and refresh', () => {
  let short: MailService;
  let shortAs: oauth.AuthorizationServer;

  beforeAll(async () => {
    short = await createMailService({
      gatewayRedirectUris: [listener.callback],
      clientId: CLIENT_ID,
      clientSecret: CLIENT_SECRET,
      tokenEndpointAuthMethod: 'client_secret_post',
      accessTokenTtlSeconds: 2, // 1 s could lapse between issuance and first use (whole-second exp)
    });
    shortAs = await discover(short);
  });
  afterAll(() => short?.close());

  it('expired access token → 401 invalid_token; refresh gives a working token and rotates; reuse kills the grant', async () => {
    const postAuth = oauth.ClientSecretPost(CLIENT_SECRET);
    const req = await authorizationRequest(shortAs, short, listener.callback, 'mail:read mail:send');
    const { callback } = await runUserFlow(new CookieJar(), listener, req.url, {
      username: 'alice',
      password: 'alice-password',
      grant: ['mail:read'],
    });
    const params = oauth.validateAuthResponse(shortAs, client, callback, req.state);
    const first = await oauth.processAuthorizationCodeResponse(
      shortAs,
      client,
      await oauth.authorizationCodeGrantRequest(
        shortAs,
        client,
        postAuth,
        params,
        req.redirectUri,
        req.verifier,
        insecure,
      ),
    );
    expect(first.expires_in).toBe(2);
    expect((await api(short, 'GET', '/v1/messages', first.access_token)).status).toBe(200);

    await new Promise((resolve) => setTimeout(resolve, 3_100));
    const expired = await api(short, 'GET', '/v1/messages', first.access_token);
    expect(expired.status).toBe(401);
    expect(expired.json).toMatchObject({
      error: 'invalid_token',
      error_description: 'the access token expired',
    });
    expect(expired.headers.get('www-authenticate')).toContain('error="invalid_token"');

    const second = await oauth.processRefreshTokenResponse(
      shortAs,
      client,
      await oauth.refreshTokenGrantRequest(shortAs, client, postAuth, first.refresh_token!, insecure),
    );
    expect(second.refresh_token).toBeTruthy();
    expect(second.refresh_token).not.toBe(first.refresh_token);
    expect(second.scope).toBe('mail:read');
    expect(decodeJwt(second.access_token).payload).toMatchObject({
      aud: short.resource,
      sub: 'alice',
      scope: 'mail:read',
    });
    expect((await api(short, 'GET', '/v1/messages', second.access_token)).status).toBe(200);

    // The rotated-out refresh token is dead, and presenting it revokes the whole grant (RFC 9700 §4.14).
    const reuse = await tokenRequest(
      shortAs,
      { grant_type: 'refresh_token', refresh_token: first.refresh_token! },
      { id: CLIENT_ID, secret: CLIENT_SECRET, method: 'post' },
    );
    expect(reuse.status).toBe(400);
    expect(reuse.json['error']).toBe('invalid_grant');
    const afterReuse = await tokenRequest(
      shortAs,
      { grant_type: 'refresh_token', refresh_token: second.refresh_token! },
      { id: CLIENT_ID, secret: CLIENT_SECRET, method: 'post' },
    );
    expect(afterReuse.json['error']).toBe('invalid_grant');
  });
});

describe('createMailService options', () => {
  it('rejects bad options before listening', async () => {
    const base = { clientId: CLIENT_ID, clientSecret: CLIENT_SECRET };
    await expect(createMailService({ ...base, gatewayRedirectUris: [] })).rejects.toThrow(/redirect/i);
    await expect(createMailService({ ...base, gatewayRedirectUris: ['not a url'] })).rejects.toThrow(
      /redirect URI/,
    );
    await expect(
      createMailService({ ...base, clientSecret: '', gatewayRedirectUris: [listener.callback] }),
    ).rejects.toThrow(/clientSecret/);
    await expect(
      createMailService({ ...base, gatewayRedirectUris: [listener.callback], accessTokenTtlSeconds: 0 }),
    ).rejects.toThrow(/TTL|Ttl/);
  });
});
