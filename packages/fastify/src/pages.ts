import { randomBytes } from 'node:crypto';
import type { ConsentView } from '@athkit/core';
import type { FastifyReply } from 'fastify';
import { athHeaders, escapeHtml as e } from './http.js';

/** Where the consent form posts (native mode). */
export const CONSENT_PATH = '/ath/consent';

const STYLE = `
  :root { color-scheme: light; font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; }
  body { margin: 0; background: #f4f5f7; color: #1d2330; }
  main { max-width: 34rem; margin: 3rem auto; background: #fff; border-radius: 12px; padding: 2rem 2.25rem;
         box-shadow: 0 2px 12px rgba(20, 30, 60, .08); }
  h1 { font-size: 1.35rem; margin: 0 0 .25rem; }
  .sub { color: #5b6475; margin: 0 0 1.25rem; }
  .claimed { border: 1px solid #e3e6ec; border-radius: 8px; padding: .75rem 1rem; margin-bottom: 1.25rem; background: #fafbfc; }
  .claimed dt { font-size: .78rem; text-transform: uppercase; letter-spacing: .04em; color: #6b7383; margin-top: .5rem; }
  .claimed dd { margin: .1rem 0 0; word-break: break-word; }
  .tag { display: inline-block; font-size: .72rem; padding: .1rem .45rem; border-radius: 999px; background: #fff4d6; color: #7a5600; margin-left: .35rem; vertical-align: middle; }
  fieldset { border: 0; padding: 0; margin: 0 0 1.25rem; }
  legend { font-weight: 600; margin-bottom: .5rem; }
  label.scope { display: flex; gap: .6rem; align-items: flex-start; padding: .55rem .65rem; border: 1px solid #e3e6ec; border-radius: 8px; margin-bottom: .45rem; }
  label.scope code { font-size: .95rem; }
  ul.scopes { list-style: none; padding: 0; margin: 0; }
  li.scope { padding: .55rem .65rem; border: 1px solid #e3e6ec; border-radius: 8px; margin-bottom: .45rem; }
  .ok { color: #1c7c3c; font-size: .82rem; display: block; }
  .no { color: #a2281f; font-size: .82rem; display: block; }
  .buttons { display: flex; gap: .75rem; }
  button { font: inherit; padding: .6rem 1.3rem; border-radius: 8px; border: 1px solid #c5cad3; background: #fff; cursor: pointer; }
  button.primary { background: #2356d8; border-color: #2356d8; color: #fff; }
  .foot { color: #6b7383; font-size: .8rem; margin-top: 1.25rem; }
`;

function csp(nonce: string, formTargets: string[]): string {
  return [
    "default-src 'none'",
    `style-src 'nonce-${nonce}'`,
    `form-action 'self'${formTargets.map((t) => ' ' + t).join('')}`,
    "frame-ancestors 'none'",
    "base-uri 'none'",
  ].join('; ');
}

function layout(title: string, nonce: string, body: string): string {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>${e(title)}</title>
<style nonce="${nonce}">${STYLE}</style>
</head>
<body>
<main>
${body}
</main>
</body>
</html>`;
}

function sendHtml(reply: FastifyReply, status: number, html: string, policy: string): FastifyReply {
  athHeaders(reply);
  reply.header('content-security-policy', policy);
  reply.header('referrer-policy', 'no-referrer');
  reply.header('x-frame-options', 'DENY');
  return reply.code(status).type('text/html; charset=utf-8').send(html);
}

/** What the agent says about itself, each value escaped and labelled as claimed (AMB-41). */
function claimedAgent(agent: ConsentView['agent'], agentName: string): string {
  return `<dl class="claimed">
  <dt>Agent <span class="tag">claimed by the agent</span></dt><dd>${e(agentName)}</dd>
  <dt>Developer <span class="tag">claimed by the agent</span></dt><dd>${e(agent.developer.name)} (${e(agent.developer.id)})</dd>
  <dt>Purpose <span class="tag">claimed by the agent</span></dt><dd>${agent.purpose ? e(agent.purpose) : '<em>not stated</em>'}</dd>
  <dt>Agent identity</dt><dd><code>${e(agent.agentId)}</code></dd>
</dl>`;
}

export interface ConsentPageInput {
  serviceName: string;
  userId: string;
  state: string;
  consent: ConsentView;
  /** Origin the form may be redirected to after submission (the agent's user_redirect_uri), for CSP form-action. */
  redirectOrigin: string | null;
}

/** The native consent page: every value escaped; agent-supplied text labelled as claimed (AMB-41). */
export function sendConsentPage(reply: FastifyReply, input: ConsentPageInput): FastifyReply {
  const nonce = randomBytes(16).toString('base64');
  const { agent, scopes } = input.consent;
  const agentName = agent.name ?? agent.agentId;
  const scopeRows = scopes
    .map(
      (s) => `<label class="scope">
  <input type="checkbox" name="scope" value="${e(s.scope)}"${s.approvedForAgent ? ' checked' : ' disabled'}>
  <span><code>${e(s.scope)}</code>
  ${
    s.approvedForAgent
      ? '<span class="ok">approved by the service for this agent</span>'
      : '<span class="no">not approved by the service for this agent (cannot be granted)</span>'
  }</span>
</label>`,
    )
    .join('\n');
  const body = `<h1>${e(agentName)} wants to access your ${e(input.serviceName)} account</h1>
<p class="sub">Signed in as <strong>${e(input.userId)}</strong>. Choose what this agent may do on your behalf.</p>
${claimedAgent(agent, agentName)}
<form method="post" action="${CONSENT_PATH}">
  <input type="hidden" name="state" value="${e(input.state)}">
  <fieldset>
    <legend>Requested permissions</legend>
${scopeRows}
  </fieldset>
  <div class="buttons">
    <button type="submit" name="decision" value="approve" class="primary">Approve selected</button>
    <button type="submit" name="decision" value="deny">Deny</button>
  </div>
</form>
<p class="foot">The agent never sees your password. You can revoke its access at any time.</p>`;
  return sendHtml(
    reply,
    200,
    layout(`Authorize ${agentName}`, nonce, body),
    csp(nonce, input.redirectOrigin ? [input.redirectOrigin] : []),
  );
}

/** Shown when the session has no user_redirect_uri (AMB-02): the user goes back to the agent by hand. */
export function sendCompletionPage(reply: FastifyReply, outcome: 'granted' | 'denied', serviceName: string): FastifyReply {
  const nonce = randomBytes(16).toString('base64');
  const body =
    outcome === 'granted'
      ? `<h1>Access granted</h1><p class="sub">You can close this page and return to your agent. It can now finish connecting to ${e(serviceName)}.</p>`
      : `<h1>Access denied</h1><p class="sub">The agent was not given access to your ${e(serviceName)} account. You can close this page and return to your agent.</p>`;
  return sendHtml(reply, 200, layout(outcome === 'granted' ? 'Access granted' : 'Access denied', nonce, body), csp(nonce, []));
}

/** Where the gateway interstitial posts (gateway mode): continue to the provider, or cancel. */
export const GATEWAY_CONTINUE_PATH = '/ath/authorize/continue';

export interface GatewayConsentPageInput {
  /** The gateway's name, e.g. "ATH Gateway". */
  gatewayName: string;
  state: string;
  consent: ConsentView;
  /** Origin of the provider's authorization endpoint (the form's redirect target, for CSP form-action). */
  upstreamOrigin: string;
  /** Origin of the agent's user_redirect_uri (the redirect after Cancel), for CSP form-action. */
  redirectOrigin: string | null;
}

/**
 * The gateway's own consent interstitial (threats D10, confused deputy): before the browser is sent
 * to the provider (whose consent screen only knows the gateway's client_id), the user sees which
 * agent asks, for what, and which scopes the gateway approved for it, and must confirm.
 */
export function sendGatewayConsentPage(reply: FastifyReply, input: GatewayConsentPageInput): FastifyReply {
  const nonce = randomBytes(16).toString('base64');
  const { agent, scopes, provider } = input.consent;
  const agentName = agent.name ?? agent.agentId;
  const scopeRows = scopes
    .map(
      (s) => `<li class="scope"><code>${e(s.scope)}</code>
  ${
    s.approvedForAgent
      ? '<span class="ok">approved by the gateway for this agent</span>'
      : '<span class="no">not approved by the gateway for this agent (will not be granted)</span>'
  }</li>`,
    )
    .join('\n');
  const body = `<h1>${e(agentName)} wants to access your ${e(provider.displayName)} account</h1>
<p class="sub">Through ${e(input.gatewayName)}. If you continue, ${e(provider.displayName)} will ask you to sign in and confirm; you can grant fewer permissions there.</p>
${claimedAgent(agent, agentName)}
<form method="post" action="${GATEWAY_CONTINUE_PATH}">
  <input type="hidden" name="state" value="${e(input.state)}">
  <fieldset>
    <legend>Requested permissions</legend>
<ul class="scopes">
${scopeRows}
</ul>
  </fieldset>
  <div class="buttons">
    <button type="submit" name="decision" value="approve" class="primary">Continue to ${e(provider.displayName)}</button>
    <button type="submit" name="decision" value="deny">Cancel</button>
  </div>
</form>
<p class="foot">The agent never sees your password or your ${e(provider.displayName)} tokens. You can revoke its access at any time.</p>`;
  const targets = [input.upstreamOrigin, ...(input.redirectOrigin ? [input.redirectOrigin] : [])];
  return sendHtml(reply, 200, layout(`Authorize ${agentName}`, nonce, body), csp(nonce, targets));
}
