import { validateAuthorizationRequest, type AuthorizationResponse, type DeveloperInfo } from '@athkit/schemas';
import { acceptedAudiences } from '../attestation/index.js';
import { sha256, timingSafeEqual } from '../digest.js';
import { AthError } from '../errors.js';
import { base64url, randomId } from '../random.js';
import { checkResourceIndicator } from '../resource.js';
import { uniqueScopes } from '../scopes.js';
import type { AgentRecord, SessionRecord } from '../store.js';
import type { ProviderConfig } from '../providers.js';
import { parseWire } from '../wire.js';
import { approvedScopes, endpointUrl, requireApproved, type EngineContext } from './context.js';
import { unverifiedSubject, verifyOrAudit } from './attest.js';

export const AUTHORIZE_PATH = '/ath/authorize';
export const LAUNCH_PATH = '/ath/authorize/start';
export const CALLBACK_PATH = '/ath/callback';
/** Prefix of the browser-binding cookie; the full name adds a tag derived from the session's state. */
export const BINDING_COOKIE_PREFIX = '__Host-ath_bind_';

/** Cookie name for the session that `state` belongs to, so parallel sessions in one browser do not collide. */
export async function bindingCookieName(upstreamState: string): Promise<string> {
  return BINDING_COOKIE_PREFIX + (await sha256(upstreamState)).slice(0, 12);
}

/** RFC 7636 S256: base64url(SHA-256(code_verifier)), which is exactly what sha256() computes. */
const pkceChallenge = sha256;

/** POST /ath/authorize (C-070…C-093), checks in the order of AMB-26. */
export async function authorize(ctx: EngineContext, body: unknown): Promise<AuthorizationResponse> {
  const req = parseWire(validateAuthorizationRequest, body, 'agent_attestation');

  // 2-4: attestation, then client lookup, then sub = registered agent_id. The key comes from the
  // registered agent's document; for an unknown client_id the attestation is still verified
  // (against its own sub) first, so only a key holder learns that the client does not exist.
  const agent = await ctx.store.getAgent(req.client_id);
  await verifyOrAudit(ctx, req.agent_attestation, {
    agentId: agent?.agentId ?? unverifiedSubject(req.agent_attestation) ?? '',
    audiences: acceptedAudiences(ctx.baseUrl, AUTHORIZE_PATH, 'origin-or-endpoint'),
  });
  if (!agent) throw new AthError('AGENT_NOT_REGISTERED', 'Agent is not registered');

  requireApproved(ctx, agent); // 5
  const provider = requireProviderApproved(ctx, agent, req.provider_id); // 6
  const scopes = uniqueScopes(req.scopes);
  const approved = new Set(approvedScopes(agent, req.provider_id));
  const notApproved = scopes.filter((s) => !approved.has(s));
  if (notApproved.length) {
    // C-078/C-079: rejected as a whole, naming the offending scopes.
    throw new AthError('SCOPE_NOT_APPROVED', 'Requested scopes are not approved for this agent', { scopes: notApproved });
  }
  const userRedirectUri = checkRedirect(ctx, agent, req.user_redirect_uri); // 8
  if (req.resource !== undefined) checkResourceIndicator(req.resource, provider.api_base); // threats D9, C-086

  // 9-step extension (step 5): only when the handshake is enabled and the body names one.
  const handshake =
    ctx.handshake && body !== null && typeof body === 'object' && 'handshake_id' in body
      ? await ctx.handshake.prepareAuthorize({ agent, body, providerId: provider.provider_id, scopes })
      : null;

  const now = ctx.clock.now();
  const codeVerifier = base64url(ctx.random.bytes(32)); // 43 chars, RFC 7636
  const upstreamState = base64url(ctx.random.bytes(32)); // our own state, never the agent's (AMB-15)
  const session: SessionRecord = {
    id: randomId(ctx.random, 'ath_sess_', 32),
    clientId: agent.clientId,
    agentId: agent.agentId,
    providerId: provider.provider_id,
    requestedScopes: scopes,
    agentState: req.state,
    userRedirectUri,
    resource: req.resource ?? null,
    codeVerifier,
    upstreamStateHash: await sha256(upstreamState),
    bindingHash: null,
    status: 'pending',
    userId: null,
    consentedScopes: null,
    grantId: null,
    completionCodeHash: null,
    failure: null,
    extra: handshake?.extra ?? null,
    createdAt: now,
    expiresAt: now + ctx.sessionTtlSeconds * 1000,
    updatedAt: now,
  };
  await ctx.store.createSession(session);
  await ctx.auditor.emit('authorization_started', {
    agent_id: agent.agentId,
    client_id: agent.clientId,
    provider_id: provider.provider_id,
    requested_scopes: scopes,
  });

  const query = upstreamQuery(ctx, provider, session, upstreamState, await pkceChallenge(codeVerifier));
  const response = { authorization_url: `${endpointUrl(ctx, LAUNCH_PATH)}?${query.toString()}`, ath_session_id: session.id };
  return handshake ? { ...response, ...(await handshake.finish(session, response.authorization_url)) } : response;
}

function requireProviderApproved(ctx: EngineContext, agent: AgentRecord, providerId: string): ProviderConfig {
  const provider = ctx.providers.get(providerId);
  if (!provider || approvedScopes(agent, providerId).length === 0) {
    throw new AthError('PROVIDER_NOT_APPROVED', 'Agent is not approved for this provider', { provider_id: providerId });
  }
  return provider;
}

/** C-084/C-085, AMB-14: exact string match; none registered → none allowed; our own callback = no redirect. */
function checkRedirect(ctx: EngineContext, agent: AgentRecord, uri: string | undefined): string | null {
  if (uri === undefined) return null;
  if (uri === endpointUrl(ctx, CALLBACK_PATH)) return null;
  if (!agent.redirectUris || !agent.redirectUris.includes(uri)) {
    throw new AthError('INVALID_REQUEST', 'user_redirect_uri does not exactly match a registered redirect URI', {
      field: 'user_redirect_uri',
    });
  }
  return uri;
}

/**
 * The upstream authorization query (C-088). The consent launch URL carries it in full, so the URL
 * the agent receives already shows code_challenge and code_challenge_method=S256 (AMB-03).
 */
function upstreamQuery(
  ctx: EngineContext,
  provider: ProviderConfig,
  session: SessionRecord,
  upstreamState: string,
  codeChallenge: string,
): URLSearchParams {
  const q = new URLSearchParams({ response_type: 'code' });
  if (provider.upstream_client_id) q.set('client_id', provider.upstream_client_id);
  q.set('redirect_uri', endpointUrl(ctx, CALLBACK_PATH));
  q.set('scope', session.requestedScopes.join(' '));
  q.set('state', upstreamState);
  q.set('code_challenge', codeChallenge);
  q.set('code_challenge_method', 'S256');
  if (session.resource) q.set('resource', session.resource);
  return q;
}

/** What a consent page shows (native consent page, gateway interstitial). Agent-supplied text is claimed, not verified (AMB-41). */
export interface ConsentView {
  agent: { agentId: string; name: string | null; developer: DeveloperInfo; purpose: string | null };
  provider: { providerId: string; displayName: string };
  scopes: { scope: string; approvedForAgent: boolean }[];
  expiresAt: number;
}

export interface LaunchResult {
  session: SessionRecord;
  /** A new browser-binding value to set as cookie `cookieName`; null when the browser was already bound. */
  setBinding: string | null;
  cookieName: string;
  /** The upstream authorization query rebuilt from the session (never trusted from the URL). */
  upstreamQuery: URLSearchParams;
  consent: ConsentView;
}

async function sessionForState(ctx: EngineContext, state: string | null): Promise<SessionRecord> {
  if (!state) throw new AthError('STATE_MISMATCH', 'Missing state');
  const session = await ctx.store.getSessionByUpstreamState(await sha256(state));
  if (!session) throw new AthError('STATE_MISMATCH', 'Unknown or already used state');
  if (session.expiresAt <= ctx.clock.now()) {
    throw new AthError('SESSION_EXPIRED', 'The authorization session has expired');
  }
  if (session.status !== 'pending') throw new AthError('STATE_MISMATCH', 'This authorization was already completed');
  return session;
}

/**
 * GET /ath/authorize/start: the page behind `authorization_url`. The first browser to open it is
 * bound to the session by a random cookie whose hash is stored (AMB-03, C-089); any other browser
 * is refused.
 */
export async function launch(
  ctx: EngineContext,
  query: URLSearchParams,
  cookies: Readonly<Record<string, string | undefined>>,
): Promise<LaunchResult> {
  const state = query.get('state');
  let session = await sessionForState(ctx, state);
  const cookieName = await bindingCookieName(state!);
  const presented = cookies[cookieName];
  let setBinding: string | null = null;

  if (session.bindingHash === null) {
    const value = randomId(ctx.random, '', 32);
    const bound = await ctx.store.updateSession(
      session.id,
      { status: ['pending'], bindingHash: null },
      { bindingHash: await ctx.bindingDigest(value), updatedAt: ctx.clock.now() },
    );
    if (bound) {
      session = bound;
      setBinding = value;
    } else {
      session = await sessionForState(ctx, state); // lost a race with another tab: check against the winner
    }
  }
  if (setBinding === null && !(presented && timingSafeEqual(await ctx.bindingDigest(presented), session.bindingHash ?? ''))) {
    throw new AthError('STATE_MISMATCH', 'This authorization link is bound to another browser');
  }

  const agent = await ctx.store.getAgent(session.clientId);
  const provider = ctx.providers.get(session.providerId);
  if (!agent || !provider) throw new AthError('SESSION_NOT_FOUND', 'The authorization session is no longer valid');
  const approved = new Set(approvedScopes(agent, session.providerId));
  return {
    session,
    setBinding,
    cookieName,
    upstreamQuery: upstreamQuery(ctx, provider, session, state!, await pkceChallenge(session.codeVerifier)),
    consent: {
      agent: { agentId: agent.agentId, name: agent.name, developer: agent.developer, purpose: agent.purpose },
      provider: { providerId: provider.provider_id, displayName: provider.display_name },
      scopes: session.requestedScopes.map((scope) => ({ scope, approvedForAgent: approved.has(scope) })),
      expiresAt: session.expiresAt,
    },
  };
}

/**
 * First half of GET /ath/callback: state and browser binding are checked before anything is sent
 * upstream (C-103, C-104, C-105, C-106). Returns the session, whose codeVerifier the gateway needs
 * for the upstream exchange.
 */
export async function openCallback(
  ctx: EngineContext,
  state: string | null,
  cookies: Readonly<Record<string, string | undefined>>,
): Promise<SessionRecord> {
  const session = await sessionForState(ctx, state);
  const presented = cookies[await bindingCookieName(state!)];
  if (!presented || !session.bindingHash || !timingSafeEqual(await ctx.bindingDigest(presented), session.bindingHash)) {
    throw new AthError('STATE_MISMATCH', 'This browser did not start the authorization');
  }
  return session;
}

/** What the user (through upstream OAuth or the native consent page) decided. */
export type ConsentOutcome =
  | {
      kind: 'granted';
      userId: string;
      /** Scopes the user consented to; null when the authorization server did not say (AMB-10: = requested). */
      consentedScopes: string[] | null;
      grantId?: string | null;
    }
  | { kind: 'denied' }
  | { kind: 'failed'; message: string };

/** How the callback answers the browser (AMB-02). Errors on unvalidated state never get here, so never redirect. */
export type CallbackResult =
  | { kind: 'redirect'; location: string; outcome: ConsentOutcome['kind'] }
  | { kind: 'page'; outcome: ConsentOutcome['kind']; session: SessionRecord };

/** Second half of the callback (or the native consent form): records the outcome exactly once. */
export async function completeConsent(
  ctx: EngineContext,
  session: SessionRecord,
  outcome: ConsentOutcome,
): Promise<CallbackResult> {
  const now = ctx.clock.now();
  let completionCode: string | null = null;
  const patch =
    outcome.kind === 'granted'
      ? {
          status: 'consented' as const,
          userId: outcome.userId,
          consentedScopes: outcome.consentedScopes === null ? null : uniqueScopes(outcome.consentedScopes),
          grantId: outcome.grantId ?? null,
          completionCodeHash: session.userRedirectUri
            ? await sha256((completionCode = randomId(ctx.random, 'ath_code_', 32)))
            : null,
          updatedAt: now,
        }
      : outcome.kind === 'denied'
        ? { status: 'denied' as const, updatedAt: now }
        : { status: 'failed' as const, failure: { code: 'OAUTH_ERROR', message: outcome.message }, updatedAt: now };

  const updated = await ctx.store.updateSession(
    session.id,
    { status: ['pending'], bindingHash: session.bindingHash },
    patch,
  );
  if (!updated) throw new AthError('STATE_MISMATCH', 'This authorization was already completed');

  if (outcome.kind === 'denied') {
    await ctx.auditor.emit('access_denied', {
      agent_id: session.agentId,
      client_id: session.clientId,
      provider_id: session.providerId,
      requested_scopes: session.requestedScopes,
      effective_scopes: [], // C-143: a denial grants nothing
      denied_scopes: session.requestedScopes,
      denial_reason: 'user_denied',
    });
  }
  if (outcome.kind === 'failed') {
    throw new AthError('OAUTH_ERROR', 'The upstream authorization server returned an error');
  }
  if (!session.userRedirectUri) return { kind: 'page', outcome: outcome.kind, session: updated };

  const location = new URL(session.userRedirectUri);
  if (outcome.kind === 'granted') location.searchParams.set('code', completionCode!);
  else location.searchParams.set('error', 'access_denied');
  location.searchParams.set('state', session.agentState);
  return { kind: 'redirect', location: location.toString(), outcome: outcome.kind };
}
