import { validateTokenExchangeRequest, type TokenResponse } from '@athkit/schemas';
import { acceptedAudiences } from '../attestation/index.js';
import { sha256, timingSafeEqual } from '../digest.js';
import { AthError } from '../errors.js';
import { randomId } from '../random.js';
import { intersectScopes } from '../scopes.js';
import type { SessionRecord, TokenRecord } from '../store.js';
import { parseWire } from '../wire.js';
import { verifyOrAudit } from './attest.js';
import { approvedScopes, authenticateClient, requireApproved, type EngineContext } from './context.js';

export const TOKEN_PATH = '/ath/token';

/**
 * The session when it can be exchanged; otherwise throws why not (C-127…C-133, AMB-27).
 * Checked before anything is consumed.
 */
function exchangeableSession(ctx: EngineContext, session: SessionRecord | null, clientId: string): SessionRecord {
  if (!session) throw new AthError('SESSION_NOT_FOUND', 'Unknown ath_session_id');
  if (session.clientId !== clientId) {
    throw new AthError('AGENT_IDENTITY_MISMATCH', 'This session belongs to another client');
  }
  if (session.expiresAt <= ctx.clock.now()) throw new AthError('SESSION_EXPIRED', 'The authorization session has expired');
  switch (session.status) {
    case 'pending':
      throw new AthError('SESSION_NOT_FOUND', 'The user has not completed authorization yet', {
        reason: 'authorization_pending',
      });
    case 'denied':
      throw new AthError('USER_DENIED', 'The user denied the authorization');
    case 'failed':
      throw new AthError('OAUTH_ERROR', 'The upstream authorization failed');
    case 'consumed':
      throw new AthError('SESSION_NOT_FOUND', 'This session was already exchanged', { reason: 'consumed' });
    case 'consented':
      return session;
  }
}

/**
 * POST /ath/token (C-120…C-143). Order of AMB-26: schema → client authentication → attestation
 * (aud = this token endpoint, exactly) → approval re-check → session → completion code →
 * intersection. Only a successful exchange consumes the session (C-131), and exactly once (C-130).
 */
export async function exchangeToken(ctx: EngineContext, body: unknown): Promise<TokenResponse> {
  // C-123(a)/AMB-04: a missing client_secret is failed client authentication (403, the same body
  // as a wrong secret), not a malformed request; it is then refused by authenticateClient.
  const withSecret =
    body !== null && typeof body === 'object' && !Array.isArray(body) && !('client_secret' in body)
      ? { ...body, client_secret: '' }
      : body;
  const req = parseWire(validateTokenExchangeRequest, withSecret, 'agent_attestation');
  const agent = await authenticateClient(ctx, req.client_id, req.client_secret);
  await verifyOrAudit(ctx, req.agent_attestation, {
    agentId: agent.agentId,
    audiences: acceptedAudiences(ctx.baseUrl, TOKEN_PATH, 'exact'),
  });
  requireApproved(ctx, agent); // C-139(a): approval can be withdrawn after consent

  const session = exchangeableSession(ctx, await ctx.store.getSession(req.ath_session_id), agent.clientId);

  // AMB-02: a redirecting agent proves it saw the redirect; a local agent's code is a placeholder.
  if (session.completionCodeHash && !timingSafeEqual(await sha256(req.code), session.completionCodeHash)) {
    throw new AthError('SESSION_NOT_FOUND', 'Invalid authorization code for this session', { reason: 'invalid_code' });
  }

  // 9-step extension (step 9): a session created by a handshake is exchanged with its key agreement.
  const handshakeId = session.extra?.['handshake_id'];
  let handshake: Awaited<ReturnType<NonNullable<EngineContext['handshake']>['prepareToken']>> | null = null;
  if (handshakeId !== undefined) {
    if (!ctx.handshake) throw new AthError('SESSION_NOT_FOUND', 'This session belongs to a handshake this server no longer runs');
    handshake = await ctx.handshake.prepareToken({ agent, body: withSecret, session });
  }
  const ttlSeconds = handshake ? Math.min(ctx.tokenTtlSeconds, handshake.ttlSeconds) : ctx.tokenTtlSeconds;

  const intersection = intersectScopes({
    approved: approvedScopes(agent, session.providerId),
    consented: session.consentedScopes,
    requested: session.requestedScopes,
  });
  const now = ctx.clock.now();
  const audit = {
    agent_id: agent.agentId,
    client_id: agent.clientId,
    user_id: session.userId ?? undefined,
    provider_id: session.providerId,
    requested_scopes: session.requestedScopes,
    effective_scopes: intersection.effective,
    denied_scopes: session.requestedScopes.filter((s) => !intersection.effective.includes(s)),
  };

  const consume = () =>
    ctx.store.updateSession(session.id, { status: ['consented'] }, { status: 'consumed', updatedAt: now });
  const alreadyExchanged = () =>
    new AthError('SESSION_NOT_FOUND', 'This session was already exchanged', { reason: 'consumed' });

  if (intersection.effective.length === 0) {
    // C-136, AMB-28: no token, and the session ends.
    if (!(await consume())) throw alreadyExchanged();
    await ctx.auditor.emit('access_denied', { ...audit, denial_reason: 'empty_scope_intersection' });
    throw new AthError('SCOPE_NOT_APPROVED', 'No scope is approved, consented and requested at once', {
      scope_intersection: intersection,
    });
  }

  // The token row is written before the session is consumed, so a failed write leaves the session
  // usable (only success consumes, AMB-27). A request that then loses the consume race revokes the
  // token it wrote and never returns it: exactly one usable token per session (C-130).
  const accessToken = randomId(ctx.random, 'ath_tk_', 32);
  const record: TokenRecord = {
    tokenHash: await sha256(accessToken),
    clientId: agent.clientId,
    agentId: agent.agentId,
    userId: session.userId!,
    providerId: session.providerId,
    scopes: intersection.effective,
    sessionId: session.id,
    grantId: session.grantId,
    resource: session.resource,
    createdAt: now,
    expiresAt: now + ttlSeconds * 1000,
    revokedAt: null,
    ...(handshake?.restrictions ? { restrictions: handshake.restrictions } : {}),
  };
  await ctx.store.createToken(record);
  if (!(await consume())) {
    await ctx.store.revokeToken(record.tokenHash, now);
    throw alreadyExchanged();
  }
  await ctx.auditor.emit('access_granted', audit);

  const response: TokenResponse = {
    access_token: accessToken,
    token_type: 'Bearer',
    expires_in: ttlSeconds,
    effective_scopes: intersection.effective,
    provider_id: session.providerId,
    agent_id: agent.agentId,
    scope_intersection: intersection,
  };
  return handshake ? { ...response, ...(await handshake.finish(record)) } : response;
}
