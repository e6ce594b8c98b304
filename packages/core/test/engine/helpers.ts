/**
 * Small helpers shared by the engine tests (authorize, callback, token, access, revoke, security).
 * They only compose public engine calls; every decision under test is still the engine's.
 */
import { expect } from 'vitest';
import { ERROR_STATUS, validateATHError, type AgentRegistrationResponse, type TokenResponse } from '@athkit/schemas';
import type { AthEngine } from '../../src/engine/index.js';
import type { ConsentOutcome } from '../../src/engine/index.js';
import type { SessionRecord } from '../../src/store.js';
import { BASE, type Harness, type TestAgent } from '../support/engine-harness.js';

export const TOKEN_AUD = `${BASE}/ath/token`;
export const CALLBACK_URL = `${BASE}/ath/callback`;
export const AGENT_STATE = 'agent-state-0123456789abcdef';
export const TEN_MINUTES = 10 * 60 * 1000;

export interface RejectionLike {
  code: string;
  status: number;
  message: string;
  details?: Record<string, unknown>;
}

/**
 * Asserts the AthError a user of the engine observes: the code, the status the code↔status
 * table fixes (C-201/AMB-04), and a wire body that validates SCH#ATHError (C-200).
 */
export function expectAthError(err: RejectionLike, code: string): Record<string, unknown> {
  expect(err.code).toBe(code);
  expect(err.status).toBe(ERROR_STATUS[code as keyof typeof ERROR_STATUS]);
  const wire = JSON.parse(JSON.stringify(err)) as Record<string, unknown>;
  const v = validateATHError(wire);
  expect(v.valid, JSON.stringify(wire)).toBe(true);
  expect(wire['code']).toBe(code);
  return wire;
}

/** A complete /ath/authorize body for a registered agent (REG1 defaults: provider p, {p:read}). */
export async function authorizeBody(
  reg: AgentRegistrationResponse,
  agent: TestAgent,
  overrides: Record<string, unknown> = {},
): Promise<Record<string, unknown>> {
  return {
    client_id: reg.client_id,
    agent_attestation: await agent.att(),
    provider_id: 'p',
    scopes: ['p:read'],
    state: AGENT_STATE,
    ...overrides,
  };
}

export interface StartedFlow {
  sessionId: string;
  authorizationUrl: URL;
  /** The upstream state carried by the launch URL (what the AS sends back to the callback). */
  state: string;
  cookieName: string;
  /** The browser that opened the launch URL (jar J1). */
  cookies: Record<string, string>;
}

/** POST /ath/authorize, then the browser J1 opens the launch URL and gets its binding cookie. */
export async function startFlow(
  h: Harness,
  reg: AgentRegistrationResponse,
  agent: TestAgent,
  overrides: Record<string, unknown> = {},
): Promise<StartedFlow> {
  const res = await h.engine.authorize(await authorizeBody(reg, agent, overrides));
  const url = new URL(res.authorization_url);
  const launched = await h.engine.launch(url.searchParams, {});
  expect(launched.setBinding).toEqual(expect.any(String));
  return {
    sessionId: res.ath_session_id,
    authorizationUrl: url,
    state: url.searchParams.get('state')!,
    cookieName: launched.cookieName,
    cookies: { [launched.cookieName]: launched.setBinding! },
  };
}

/** The callback in J1: openCallback + completeConsent with the given outcome. */
export async function finishFlow(engine: AthEngine, flow: StartedFlow, outcome: ConsentOutcome) {
  const session = await engine.openCallback(flow.state, flow.cookies);
  return engine.completeConsent(session, outcome);
}

export function granted(consentedScopes: string[] | null, userId = 'user-1', grantId?: string): ConsentOutcome {
  return { kind: 'granted', userId, consentedScopes, ...(grantId ? { grantId } : {}) };
}

/** Registration + full flow + token for `scopes` (default p:read, p:write); returns the token response. */
export async function issueToken(
  h: Harness,
  reg: AgentRegistrationResponse,
  agent: TestAgent,
  options: { scopes?: string[]; userId?: string; consented?: string[] | null; grantId?: string } = {},
): Promise<TokenResponse & { session: SessionRecord }> {
  const scopes = options.scopes ?? ['p:read', 'p:write'];
  const flow = await startFlow(h, reg, agent, { scopes });
  await finishFlow(
    h.engine,
    flow,
    granted(options.consented === undefined ? scopes : options.consented, options.userId ?? 'user-1', options.grantId),
  );
  const res = await h.engine.exchangeToken(await h.tokenBody(reg, agent, flow.sessionId));
  return { ...res, session: (await h.store.getSession(flow.sessionId))! };
}

/** Access check with the token's own binding unless overridden. */
export function access(
  engine: AthEngine,
  token: string,
  agentId: string | readonly string[] | undefined,
  overrides: { providerId?: string; requiredScope?: string | null; authorization?: string | undefined } = {},
) {
  return engine.validateAccess({
    authorization: 'authorization' in overrides ? overrides.authorization : `Bearer ${token}`,
    agentIdHeader: agentId,
    providerId: overrides.providerId ?? 'p',
    requiredScope: overrides.requiredScope === undefined ? 'p:read' : overrides.requiredScope,
  });
}

export async function sha256b64url(value: string): Promise<string> {
  const digest = await globalThis.crypto.subtle.digest('SHA-256', new TextEncoder().encode(value));
  return Buffer.from(digest).toString('base64url');
}
