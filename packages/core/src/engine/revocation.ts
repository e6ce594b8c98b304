import { validateTokenRevocationRequest } from '@athkit/schemas';
import { sha256 } from '../digest.js';
import { AthError } from '../errors.js';
import { parseWire } from '../wire.js';
import type { TokenCache } from './access.js';
import { authenticateClient, type EngineContext } from './context.js';

/**
 * Who asks for a revocation: the agent (client credentials in the body, RFC 7009), or a caller the
 * implementer authenticated itself (admin API key, or a user's session: then only that user's tokens).
 */
export type RevocationCaller = { kind: 'agent' } | { kind: 'admin'; actor: string } | { kind: 'user'; userId: string };

/**
 * POST /ath/revoke (C-180…C-189, AMB-08): authenticate first (403 AGENT_NOT_REGISTERED); then
 * unknown, expired and already revoked tokens answer 200 alike; another agent's token is refused
 * (403 AGENT_IDENTITY_MISMATCH) and left alone. The revocation is durable before this returns and
 * takes effect on this instance's cache at once.
 */
export async function revokeToken(
  ctx: EngineContext,
  cache: TokenCache,
  body: unknown,
  caller: RevocationCaller = { kind: 'agent' },
): Promise<void> {
  const req = parseWire(validateTokenRevocationRequest, body);
  const agent = caller.kind === 'agent' ? await authenticateClient(ctx, req.client_id, req.client_secret) : null;

  await revokeTokenHash(ctx, cache, await sha256(req.token), caller, agent?.clientId ?? null);
}

/**
 * Revokes the token stored under `tokenHash` for a caller already authenticated (the agent's
 * `clientId`, an admin, or a user): unknown tokens are a no-op; a token of someone else is refused.
 */
export async function revokeTokenHash(
  ctx: EngineContext,
  cache: TokenCache,
  tokenHash: string,
  caller: RevocationCaller,
  agentClientId: string | null = null,
): Promise<void> {
  const record = await ctx.store.getToken(tokenHash);
  if (!record) return;
  const owner =
    caller.kind === 'admin' ||
    (caller.kind === 'user' && record.userId === caller.userId) ||
    (caller.kind === 'agent' && agentClientId !== null && record.clientId === agentClientId);
  if (!owner) throw new AthError('AGENT_IDENTITY_MISMATCH', 'This token was not issued to the caller');

  const changed = await ctx.store.revokeToken(tokenHash, ctx.clock.now());
  cache.invalidate({ kind: 'token', tokenHash });
  if (changed) {
    await ctx.auditor.emit('token_revoked', {
      agent_id: record.agentId,
      client_id: record.clientId,
      user_id: record.userId,
      provider_id: record.providerId,
      revoked_by: caller.kind === 'admin' ? `admin:${caller.actor}` : caller.kind,
    });
  }
}
